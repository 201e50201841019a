"""The ``loglib`` command: thin faces over the library (report, parse, timeline, connections, demo, capture)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path

import polars as pl

from loglib.analysis.connections import pg_connections
from loglib.analysis.sessions import pg_sessions
from loglib.core.rejects import read_report
from loglib.errors import LoglibError, RejectedLinesWarning
from loglib.sources.postgres import FORMATS, read_pg_log

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample-pg"
#: the bundled incidents, in a source checkout (an editable install)
INCIDENTS = Path(__file__).resolve().parent.parent / "data" / "incidents"
DEMO_INCIDENT = "pool-exhaustion"
#: what `loglib parse` reads, by KIND
PARSE_KINDS = ("postgres", "app", "prometheus", "pool_events", "pg_activity")


def _error(message: str) -> int:
    print(f"loglib: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _report(args: argparse.Namespace) -> int:
    from loglib.report import build_report

    result = build_report(
        args.incident_dir,
        args.out,
        notebook=args.notebook,
        tz=args.tz,
        progress=None if args.quiet else _progress,
    )
    print(f"Postmortem of {Path(args.incident_dir).name} written in {result.seconds:.0f} s:")
    print(result)
    if result.findings:
        print("Findings:")
        for statement in result.findings:
            print(f"  - {statement[:200]}{'…' if len(statement) > 200 else ''}")
    print(f"Open {result.html} in a browser (works offline).")
    if result.browser_error:
        return _error(
            f"no PNG/SVG charts in the bundle (HTML charts instead): {result.browser_error} "
            "(report.html was written)"
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    folder = INCIDENTS / DEMO_INCIDENT
    if not folder.is_dir():
        return _error(
            f"the bundled incidents are not here ({folder}): run `loglib demo` from a clone of the "
            "repository installed with `pip install -e .`, or `loglib report INCIDENT_DIR --out OUT_DIR`"
        )
    print(f"loglib demo: the postmortem of the bundled incident {DEMO_INCIDENT} into {args.out}", file=sys.stderr)
    return _report(
        argparse.Namespace(incident_dir=str(folder), out=args.out, notebook=None, tz=None, quiet=args.quiet)
    )


def _csv_column(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column CSV can hold: structs as JSON, lists joined by newlines, durations in seconds."""
    col = pl.col(name)
    if isinstance(dtype, pl.Struct):
        return col.struct.json_encode()
    if isinstance(dtype, pl.List):
        return col.cast(pl.List(pl.String)).list.join("\n")
    if isinstance(dtype, pl.Duration):
        return col.dt.total_microseconds() / 1e6
    return col


def _parse(args: argparse.Namespace) -> int:
    from loglib.incident import reader

    out = Path(args.out)
    fmt = args.to or (out.suffix.lstrip(".").lower() or "parquet")
    if fmt not in ("parquet", "csv"):
        return _error(f"--out {out}: write .parquet or .csv (or say --to parquet|csv)")
    options = {k: v for k, v in (("format", args.format), ("prefix", args.prefix), ("tz", args.tz)) if v}
    if args.pattern:
        options["pattern"] = args.pattern
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RejectedLinesWarning)  # counted in the summary below
            frame = reader(args.kind)(args.paths, **options)
    except (OSError, UnicodeError) as exc:
        return _error(f"cannot read {' '.join(args.paths)}: {exc}")
    except TypeError as exc:  # an option the reader of this kind does not take
        return _error(f"loglib parse {args.kind}: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.write_parquet(out)
    else:
        flat = frame.select(_csv_column(c, t) for c, t in frame.schema.items())
        flat.write_csv(out)
    with contextlib.suppress(Exception):  # readers without a read report (pool events, pg_activity)
        print(read_report(frame).summary())
    print(f"{frame.height:,} rows × {frame.width} columns -> {out}")
    return 0


def _timeline(args: argparse.Namespace) -> int:
    from loglib.present.timeline import timeline
    from loglib.report import check_incident

    inc = check_incident(args.incident_dir)
    table = timeline(inc, tz=args.tz)
    print(f"# {inc.title}")
    days = table["time"].dt.date().unique() if table.height else pl.Series([], dtype=pl.Date)
    one_day = days.len() == 1
    on = f" on {days[0]}" if one_day else ""
    print(f"Times in UTC{on}{' and ' + args.tz if args.tz else ''}; `evidence` is file:line.\n")
    fmt = "%H:%M:%S%.3f" if one_day else "%Y-%m-%d %H:%M:%S%.3f"
    shown = table.with_columns(pl.col(pl.Datetime).dt.strftime(fmt)).drop("end", strict=False)
    with pl.Config(tbl_rows=500, tbl_cols=20, tbl_width_chars=200, fmt_str_lengths=90, tbl_hide_dataframe_shape=True,
                   tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True):  # fmt: skip
        print(shown)
    return 0


def _print_table(frame: pl.DataFrame) -> None:
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=True,
                   tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True):  # fmt: skip
        print(frame)


def _connections(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedLinesWarning)  # reported below, with the rest
        events = read_pg_log(args.paths, format=args.format, prefix=args.prefix, tz=args.tz, year=args.year)
    report = read_report(events)
    print(report.summary())
    sessions = pg_sessions(events)
    reasons = sessions.group_by("end_reason").len().sort("len", descending=True)
    first, last = events["ts"].min(), events["ts"].max()
    print(f"time range (UTC): {first} .. {last}")
    print(f"sessions: {sessions.height:,} ("
          + ", ".join(f"{r or 'still open'}: {n}" for r, n in reasons.iter_rows()) + ")")  # fmt: skip
    kinds = events.filter(pl.col("event") != "other").group_by("event").len().sort("len", descending=True)
    print("connection events: " + ", ".join(f"{e} {n}" for e, n in kinds.iter_rows()))
    print()
    print(f"Connections per {args.every} (UTC):")
    table = pg_connections(events, every=args.every, by=args.by)
    _print_table(table)
    if report.unexplained.height:
        print(f"\n{report.unexplained.height} line(s) did not parse; first ones:")
        _print_table(report.unexplained.head(10))
    return 0


def _capture_pg_activity(args: argparse.Namespace) -> int:
    import logging

    from loglib.capture import capture_pg_activity

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = capture_pg_activity(
            args.url, args.out, every=args.every, duration=args.duration, query=args.query,
            max_backoff=args.max_backoff,
        )  # fmt: skip
    except ValueError as exc:  # bad --every/--for or not a PostgreSQL URL (messages hide the password)
        print(f"loglib: error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


def _add_capture(sub: argparse._SubParsersAction) -> None:
    capture = sub.add_parser("capture", help="sample live evidence during an incident")
    what = capture.add_subparsers(dest="what", required=True)
    act = what.add_parser(
        "pg-activity",
        help="sample pg_stat_activity into Parquet (read back with loglib.read_pg_activity)",
        description="The URL's password is never written; prefer PGPASSWORD or ~/.pgpass to keep it "
        "off the command line. Ctrl-C stops cleanly (at most the sample being taken is lost).",
    )
    act.add_argument("url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/db")
    act.add_argument("--every", default="5s", help="time between samples (default 5s)")
    act.add_argument("--for", dest="duration", default="30m", help="how long to capture (default 30m)")
    act.add_argument("--out", required=True, help="output directory")
    act.add_argument("--query", action="store_true", help="also keep query texts (may hold personal data)")
    act.add_argument("--max-backoff", default="30s", help="longest wait between reconnection attempts")
    act.set_defaults(func=_capture_pg_activity)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="loglib", description="Incident analysis for database-connection incidents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    conn = sub.add_parser("connections", help="per-bucket connection table from PostgreSQL logs")
    conn.add_argument("paths", nargs="+", help="log files, globs or directories (.gz/.bz2/.xz ok)")
    conn.add_argument("--every", default="1h", help="bucket width, e.g. 1m, 5m, 1h (default 1h)")
    conn.add_argument("--by", choices=["user", "database", "application", "client_host", "host"])
    conn.add_argument("--format", choices=FORMATS)
    conn.add_argument("--prefix", help="the server's log_line_prefix, verbatim")
    conn.add_argument("--tz", help="the server's log_timezone, for naive or ambiguous times")
    conn.add_argument("--year", type=int, help="year of BSD syslog timestamps")
    conn.set_defaults(func=_connections)

    rep = sub.add_parser(
        "report",
        help="the postmortem of an incident folder: report.html and the export bundle",
        description="Executes the postmortem notebook headless for the incident and writes OUT_DIR/report.html "
        "(interactive, offline), report.ipynb and the export bundle (charts/*.png|svg, timeline.md, "
        "findings.md, summary.md).",
    )
    rep.add_argument("incident_dir", help="folder with incident.toml")
    rep.add_argument("--out", required=True, help="output folder (created)")
    rep.add_argument("--tz", help="also show timeline times in this IANA zone, e.g. Europe/Berlin")
    rep.add_argument("--notebook", help="run this notebook instead of the shipped postmortem")
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    rep.set_defaults(func=_report)

    parse = sub.add_parser("parse", help="read any source into one Parquet or CSV file")
    parse.add_argument("kind", choices=PARSE_KINDS, help="which reader")
    parse.add_argument("paths", nargs="+", help="files, globs or directories (.gz/.bz2/.xz ok)")
    parse.add_argument("--out", required=True, help="frames.parquet or frames.csv")
    parse.add_argument("--to", choices=["parquet", "csv"], help="format (default: from --out's suffix)")
    parse.add_argument("--format", help="source format (default: detected per file)")
    parse.add_argument("--prefix", help="postgres: the server's log_line_prefix, verbatim")
    parse.add_argument("--pattern", help="app: the logging format string, e.g. '%%(asctime)s %%(message)s'")
    parse.add_argument("--tz", help="zone of naive timestamps")
    parse.set_defaults(func=_parse)

    tl = sub.add_parser("timeline", help="print the timeline table of an incident folder")
    tl.add_argument("incident_dir", help="folder with incident.toml")
    tl.add_argument("--tz", help="also show times in this IANA zone")
    tl.set_defaults(func=_timeline)

    demo = sub.add_parser("demo", help=f"the report on the bundled incident {DEMO_INCIDENT}, into ./out/demo")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(func=_demo)
    _add_capture(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LoglibError as exc:
        return _error(str(exc))
    except BrokenPipeError:  # `loglib timeline ... | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
