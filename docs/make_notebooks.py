"""Write the notebooks: ``loglib/notebooks/*.ipynb`` (the one copy, no outputs) and the links to them in ``notebooks/``.

Run from the project root: ``python docs/make_notebooks.py``. The notebooks are authored here as
lists of Markdown and code cells, so that a review reads as a diff of text; the written files are
the product. They live in the package (``loglib/notebooks/``, found through
``importlib.resources``: ``loglib report`` runs them, and a non-editable ``pip install`` ships
them); ``notebooks/<name>.ipynb`` is a symbolic link to each, so ``jupyter lab notebooks/`` opens
them with ``notebooks/`` as the working directory. ``tests/test_notebooks.py`` checks that the
files are what this script writes, without outputs, and that every notebook runs on the bundled
incidents.

Editing a notebook in JupyterLab instead is fine (saving writes through the link into the
package): ``python docs/make_notebooks.py --from-lab`` then strips the outputs in place (and this
script's cells are stale: port the edit back here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
#: the one copy of the notebooks, inside the package
PACKAGED = ROOT / "loglib" / "notebooks"
#: where users open them: a symbolic link per notebook, into the package
LINKS = ROOT / "notebooks"

SETUP = """import polars as pl

import loglib as ll

# tables: more rows, whole sentences, no dtype row
pl.Config(tbl_rows=40, fmt_str_lengths=300, tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True)"""


def md(text: str) -> tuple[str, str, list[str]]:
    return ("markdown", text.strip("\n"), [])


def code(text: str, *tags: str) -> tuple[str, str, list[str]]:
    return ("code", text.strip("\n"), list(tags))


POSTMORTEM = [
    md("""
# Postmortem

This notebook *is* the postmortem of one incident: summary and impact, timeline, the overview
chart, the evidence for the root cause, the leak rate, findings with recommendations and, at the
end, the export bundle to paste into the incident document.

Point `incident_dir` at a folder with an `incident.toml` (see the README, *Incidents: one folder,
every question*) and run all cells. `loglib report INCIDENT_DIR --out OUT_DIR` runs this same
notebook headless and writes it as `report.html`.
"""),
    code(
        """
incident_dir = "../data/incidents/pool-exhaustion"  # the folder with incident.toml
out_dir = "out/postmortem"  # where the export bundle is written
tz = None  # also show timeline times in this IANA zone, e.g. "Europe/Berlin"
chart_formats = ["png", "svg"]  # chart files of the bundle; PNG/SVG/PDF need Chrome/Chromium, "html" does not
leak_every = None  # bucket of the leak-rate table and chart (e.g. "1m"); None: from the incident's length, as the bundle
redact = True  # remove secrets from every table, chart and file (False only on purpose)
hosts = False  # also replace host names and IP addresses by stable pseudonyms
""",
        "parameters",
    ),
    code(SETUP + """

if redact:  # every frame shown below is redacted whole before it is drawn
    ll.redact_displays(hosts=hosts)
inc = ll.Incident.load(incident_dir)
reads = ll.postmortem.what_was_read(inc)  # reads every source once; its rejects are shown below
found = ll.findings(inc)
inc"""),
    md("""
## Summary and impact

What happened, in the words of the findings, and what it cost, counted from the evidence.
"""),
    code("ll.postmortem.summary(inc, found)"),
    code("ll.postmortem.impact(inc)"),
    md("""
## What was read

Every source, with the lines read, parsed and rejected; the first lines no reader understood are
named as `file:line`, so nothing is left out without a word.
"""),
    code("reads"),
    md("""
## Timeline

Derived from the logs and metrics, plus the events declared in `incident.toml` (with their
`action` and `owner`). Bursts of the same event are one row, a state (the pool at capacity, an
alert firing) is one span; Evidence points back to `file:line` (or the metric series). This is
the bundle's `timeline.md`; every derived row is in `ll.timeline(inc)` and `timeline_full.csv`.
"""),
    code("ll.timeline_document(inc, tz=tz)"),
    md("""
## Overview

Errors, the application's pool, PostgreSQL connections and the events on one UTC axis. Hover
for the numbers; deploys, restarts and alert-firing spans are drawn the same way in every chart.
"""),
    code("ll.charts.overview(inc)"),
    md("""
## Root cause: the evidence

Each finding with the rows that prove it (the first ones, each pointing to its `file:line`), then
the charts that show it.
"""),
    code("""
for f in found:
    print(f"{f.kind.replace('_', ' ')} ({f.confidence} confidence)\\n{f.statement}")
    display(f.evidence.head(8))"""),
    code("""
for fig in ll.postmortem.evidence_charts(inc, found).values():
    fig.show()"""),
    md("""
## Deploys side by side

Every deploy and restart (declared or seen in the logs) in one table: the connection errors each
brought against the quiet time before it, how long they lasted, what restarted (app, pgBouncer,
PostgreSQL) and how it stopped, the sessions it dropped. What the rows with errors share and the
clean ones do not is the post-deploy finding above; this is the bundle's `deploys.md`.
"""),
    code("""
deploys = ll.postmortem.deploy_table(inc)
display(ll.postmortem.Markdown(ll.postmortem.DEPLOY_TABLE_NOTE))
deploys if deploys.height else "no deploys or restarts in this incident's evidence"
"""),
    md("""
## Leak rate per hour

Connections leaked per bucket, from the best evidence there is: the pool's own event log
(exact), the rising floor of the checked-out gauge, or PostgreSQL sessions that never closed.
A bucket in which the pool was full says `null`: new leaks could not happen or be seen there,
which is not the same as "the leak stopped".
"""),
    code("""
leak_every = leak_every or ll.postmortem.leak_every(inc)  # the bundle below uses the same bucket
rates = ll.leak_rates(inc, every=leak_every, best_only=True)
rates"""),
    code('ll.charts.leak_rate(inc, every=leak_every) if rates.height else "no leak evidence in these sources"'),
    md("""
## Findings and recommendations
"""),
    code('ll.findings_frame(found).select("kind", "confidence", "start", "end", "statement")'),
    code("ll.postmortem.recommendations(found, inc)"),
    md("""
## Export bundle

Charts as PNG and SVG, `timeline.md`, `findings.md` and a `summary.md` that links them, ready to
drop into the incident document. Secrets are redacted (`redact=False` must be explicit;
`hosts=True` also replaces host names and IPs).
"""),
    code("""
bundle = ll.export_bundle(
    inc, out_dir, tz=tz, formats=chart_formats, redact=redact, hosts=hosts, leak_every=leak_every
)
print(f"{len(bundle.files)} files in {bundle.out_dir.resolve()}")
sorted(str(p.relative_to(bundle.out_dir)) for p in bundle.files)"""),
]

LEAKS = [
    md("""
# Investigating a connection leak

The ad-hoc workflow behind a postmortem: **load** the evidence, **filter** a time window,
**correlate** two sources, **chart**, **export**. The bundled incident: a service leaks one pooled
connection on an error path; after eight leaks the pool (5 + 3 overflow) is full and every request
fails with `QueuePool limit … reached`. A restart buys two minutes; a deploy fixes it.
"""),
    code(
        """
incident_dir = "../data/incidents/pool-exhaustion"
out_dir = "out/connection_leaks"
""",
        "parameters",
    ),
    md("## Load"),
    code(SETUP + """

inc = ll.Incident.load(incident_dir)
inc.app.group_by("error_class").len().sort("len", descending=True)"""),
    md("Group the application's errors by their message template: the top line is the symptom."),
    code("""
errors = inc.app.filter(pl.col("error_class").is_not_null())
errors.group_by("error_class", "message_template").len().sort("len", descending=True)"""),
    md("""
The pool's checked-out gauge tells the story at a glance: it climbs in steps and never comes
back down until the process restarts.
"""),
    code("ll.charts.pool_utilisation(inc)"),
    md("""
## Filter a window

The two minutes before the first pool timeout: which PostgreSQL sessions opened then and how did
they end? Leaked connections end in `unexpected_eof` / `client_reset` when the process dies,
never in a clean `disconnection`.
"""),
    code("""
first_timeout = errors.filter(pl.col("error_class") == "pool_timeout")["ts"].min()
start, end = ll.postmortem.window_around(first_timeout, before="2m", after="0s")
opened = inc.sessions.filter(pl.col("start").is_between(start, end))
opened.group_by("end_reason").len()"""),
    code("""
leaked = inc.sessions.filter(pl.col("end_reason").is_in(["unexpected_eof", "client_reset"]))
leaked.select("start", "end", "duration", "user", "application", "end_reason", "file", "line")"""),
    md("""
## Correlate

Did the leaked sessions end because the application went away? Pair each one's end with the
nearest restart or deploy.
"""),
    code("""
ends = leaked.select(pl.col("end").alias("ts"), "file", "line")
restarts = inc.events.filter(pl.col("kind").is_in(["restart", "deploy"]))
c = ll.correlate(ends, restarts, within="5s", left_label="leaked sessions", right_label="a restart or deploy")
print(c.summary)"""),
    md("""
## Chart: how fast it leaked

`leak_rates` picks the best evidence; a bucket where the pool was full is `null` (leaks could not
be seen there), never zero.
"""),
    code("""
rates = ll.leak_rates(inc, every="1m", best_only=True)
ll.charts.leak_rate(rates, title="Connections leaked per minute")"""),
    md("""
## Export

Tables to Markdown or CSV, charts to self-contained HTML (PNG/SVG/PDF too, with Chromium);
redacted by default.
"""),
    code("""
ll.export_table(
    leaked.select("start", "end", "user", "application", "end_reason", "file", "line"),
    f"{out_dir}/leaked_sessions.md",
)
ll.export_figure(ll.charts.pool_utilisation(inc), f"{out_dir}/pool_utilisation.html")"""),
]

DEPLOY = [
    md("""
# Investigating errors after deploys

Connection errors for a while after every deploy: the migration step restarts PostgreSQL, the
pool keeps connections the restart cut, and the application retries against a server that is
still starting. Load, filter a window around one deploy, correlate errors with the restart,
chart before and after, export.
"""),
    code(
        """
incident_dir = "../data/incidents/post-deploy"
out_dir = "out/post_deploy_resets"
""",
        "parameters",
    ),
    md("## Load"),
    code(SETUP + """

inc = ll.Incident.load(incident_dir)
inc.events.select("ts", "kind", "text", "origin")"""),
    md("""
`origin` says where an event came from: `declared` in `incident.toml`, or seen in the PostgreSQL
log (a server restart). Both are drawn on every chart.
"""),
    code("ll.charts.error_rate(inc)"),
    md("""
## Filter a window

One minute before to two minutes after the first deploy: which errors, and which PostgreSQL
events?
"""),
    code("""
deploys = inc.events.filter(pl.col("kind") == "deploy")
start, end = ll.postmortem.window_around(deploys["ts"][0], before="1m", after="2m")
app_w = inc.app.filter(pl.col("ts").is_between(start, end), pl.col("error_class").is_not_null())
pg_w = inc.pg.filter(pl.col("ts").is_between(start, end), pl.col("event") != "other")
app_w.group_by("error_class").len()"""),
    code('pg_w.group_by("event").len().sort("len", descending=True)'),
    md("""
## Correlate

Does every connection error follow a deploy closely? `direction="backward"` looks only for a
deploy *before* each error.
"""),
    code("""
errors = inc.app.filter(pl.col("error_class").is_not_null())
c = ll.correlate(errors, deploys, within="60s", direction="backward", right_label="a deploy")
print(c.summary)
c.pairs.group_by(pl.col("lag").dt.total_seconds() // 5 * 5).len().sort("lag")"""),
    md("How the sessions of the pool ended: a server shutdown cuts them, and without pre-ping the pool hands them out."),
    code('inc.sessions.group_by("end_reason").len().sort("len", descending=True)'),
    md("## Chart: before and after the last deploy"),
    code("ll.charts.db_connections(inc)"),
    md("""
No deploy here fixed anything (each brought its own errors), so `before_after_table(inc)` says
there is no fix to compare around. Around the last deploy, with `at=`, it shows what that deploy did.
"""),
    code("""
last_deploy = inc.events.filter(pl.col("kind") == "deploy")["ts"].max()
ll.charts.before_after_table(inc, at=last_deploy)"""),
    md("## Export"),
    code("""
ll.export_table(ll.timeline_table(inc), f"{out_dir}/timeline.md")
ll.export_figure(ll.charts.error_rate(inc), f"{out_dir}/error_rate.html")"""),
]

IDLE = [
    md("""
# Investigating connections dropped when idle

A NAT gateway (or firewall, or load balancer) silently drops TCP flows idle for longer than its
timeout. The pool does not know: the next request that takes that connection fails with
`server closed the connection unexpectedly`, while PostgreSQL logs a client reset. Load, filter,
correlate the two sides, chart the idle times, export.
"""),
    code(
        """
incident_dir = "../data/incidents/idle-drops"
out_dir = "out/idle_dropouts"
""",
        "parameters",
    ),
    md("## Load"),
    code(SETUP + """

inc = ll.Incident.load(incident_dir)
failed = inc.app.filter(
    pl.col("error_class").is_in(["server_closed", "conn_invalidated", "connection_reset"])
)
resets = inc.pg.filter(pl.col("event") == "client_reset")
print(f"{failed.height} application errors, {resets.height} PostgreSQL client resets")
failed.select("ts", "error_class", "message", "file", "line").head(10)"""),
    md("""
## Are the two clocks the same?

Pairing the two sides needs the same clock. `estimate_skew` pairs events both sides log at the
same instant; when there are too few it says so rather than guess.
"""),
    code("print(ll.estimate_skew(inc.app, inc.pg))"),
    md("""
## Correlate

A reset happens when the middlebox drops the flow; the application notices only on the next use.
So look for a reset *before* each error.
"""),
    code("""
c = ll.correlate(failed, resets, within="60s", direction="backward")
print(c.summary)
c.pairs.select("left_ts", "right_ts", "lag").head(10)"""),
    md("""
## Filter a window: the quiet gap before the first failure

What did PostgreSQL see on the dropped connection? The session's last statement, then silence,
then the reset.
"""),
    code("""
first = failed["ts"].min()
start, end = ll.postmortem.window_around(first, before="40s", after="1s")
inc.pg.filter(pl.col("ts").is_between(start, end), pl.col("event") != "other").select(
    "ts", "pid", "event", "message"
)"""),
    md("""
## Chart: how long sessions lived

Sessions that were reset cluster at one idle time: the middlebox's timeout. The finding names
it and what to set.
"""),
    code("ll.charts.session_durations(inc)"),
    code("""
for f in ll.findings(inc):
    print(f.statement)"""),
    md("## Export"),
    code("""
ll.export_table(c.pairs, f"{out_dir}/errors_and_resets.csv")
ll.export_figure(ll.charts.session_durations(inc), f"{out_dir}/session_durations.html")"""),
]

QUICKSTART = [
    md("""
# Quickstart: your own logs

No `incident.toml` needed: point the readers at your files. Every reader detects the format; the
options say what cannot be detected (the server's `log_line_prefix`, the zone of naive times).
Replace the paths below with yours (globs, rotated sets and `.gz` files are fine).
"""),
    code(
        """
pg_logs = "../data/incidents/idle-drops/pg/postgresql.log*"
pg_prefix = "%m [%p] %q%u@%d "  # the server's log_line_prefix, verbatim (None: detect)
app_logs = "../data/incidents/idle-drops/app/*.log"
app_tz = "UTC"  # zone of the app's naive timestamps
metrics = "../data/incidents/idle-drops/prometheus/*.json"  # Prometheus query_range answers or Grafana CSV
""",
        "parameters",
    ),
    code(SETUP + """

pg = ll.read_pg_log(pg_logs, prefix=pg_prefix)
print(ll.read_report(pg).summary())"""),
    md("""
Every row keeps `file` and `line`; lines that did not parse are *rejects* with a reason, never
silently dropped (`ll.rejects(pg)`).
"""),
    code('pg.filter(pl.col("event") != "other").select("ts", "pid", "user", "event", "message", "file", "line").head()'),
    md("Sessions, and how they ended; connections per minute."),
    code('ll.pg_sessions(pg).group_by("end_reason").len().sort("len", descending=True)'),
    code('ll.pg_connections(pg, every="1m").head(10)'),
    md("""
The application's log: one row per event, tracebacks folded in, connection errors classified
(`error_class`) from one rules table of real driver messages.
"""),
    code("""
app = ll.read_app_log(app_logs, tz=app_tz)
app.filter(pl.col("error_class").is_not_null()).group_by("error_class", "message_template").len()"""),
    code("""
m = ll.read_prometheus(metrics)
m.group_by("metric").len().sort("metric").head(20)"""),
    md("""
## All of it as one incident

`Incident.from_dict` takes what `incident.toml` would say, in code; everything else (the aligned
frame, findings, charts, the export bundle, the postmortem notebook) works on it.
"""),
    code("""
inc = ll.Incident.from_dict(
    {
        "title": "My incident",
        "sources": [
            {"kind": "postgres", "paths": [pg_logs], "prefix": pg_prefix},
            {"kind": "app", "paths": [app_logs], "tz": app_tz},
            {"kind": "prometheus", "paths": [metrics]},
        ],
    }
)
ll.charts.overview(inc)"""),
    code("""
for f in ll.findings(inc):
    print(f)"""),
    code('inc.aligned(every="1m").head()'),
]

NOTEBOOKS = {
    "postmortem": (POSTMORTEM, "Postmortem"),
    "connection_leaks": (LEAKS, "Investigating a connection leak"),
    "post_deploy_resets": (DEPLOY, "Investigating errors after deploys"),
    "idle_dropouts": (IDLE, "Investigating connections dropped when idle"),
    "quickstart": (QUICKSTART, "Quickstart: your own logs"),
}


def build(cells: list[tuple[str, str, list[str]]], title: str) -> nbformat.NotebookNode:
    """One notebook without outputs, with stable cell ids (so re-running the script changes nothing)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "title": title,
    }
    for n, (kind, text, tags) in enumerate(cells):
        meta = {"tags": tags} if tags else {}
        cell = (nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell)(
            text, metadata=meta
        )
        cell["id"] = f"cell-{n:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without outputs, execution counts and per-run metadata."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    return nb


def text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def link(name: str) -> None:
    """``notebooks/<name>.ipynb`` -> ``../loglib/notebooks/<name>.ipynb`` (replacing a file of that name)."""
    path = LINKS / f"{name}.ipynb"
    target = Path("..") / "loglib" / "notebooks" / f"{name}.ipynb"
    if path.is_symlink() and Path(path.readlink()) == target:
        return
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def main(argv: list[str]) -> int:
    PACKAGED.mkdir(exist_ok=True)
    LINKS.mkdir(exist_ok=True)
    if "--from-lab" in argv:
        for path in sorted(PACKAGED.glob("*.ipynb")):
            path.write_text(text(strip(nbformat.read(path, as_version=4))), encoding="utf-8")
        return 0
    for name, (cells, title) in NOTEBOOKS.items():
        (PACKAGED / f"{name}.ipynb").write_text(text(build(cells, title)), encoding="utf-8")
        link(name)
    print(f"wrote {len(NOTEBOOKS)} notebooks to {PACKAGED.relative_to(ROOT)}, linked from {LINKS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
