"""The export bundle (``export_bundle``): a folder of charts and Markdown ready for an incident document."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from loglib.analysis.before_after import NeedsFixError, before_after_table
from loglib.analysis.evidence import NoEvidenceError
from loglib.core.progress import step
from loglib.postmortem._charts import CHART_TITLES, incident_charts
from loglib.postmortem._deploys import DEPLOY_TABLE_NOTE, deploy_table
from loglib.postmortem._detectors import DetectorFailure, run_detectors
from loglib.postmortem._reads import what_was_read
from loglib.postmortem._summary import impact
from loglib.present._deferred import deferred_folder
from loglib.present.export import _cell, export_figures, export_table, to_markdown
from loglib.present.markup import md_text
from loglib.present.redact import Redactor, local_paths
from loglib.present.timeline_doc import TIMELINE_FORMATS, TimelineDocument, timeline_document


@dataclass
class Bundle:
    """What :func:`export_bundle` wrote: the folder, the charts (name -> files) and the documents."""

    out_dir: Path
    charts: dict[str, list[Path]] = field(default_factory=dict)
    documents: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: detector kind -> its error, for each detector that failed
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        """Every file written."""
        return [p for ps in self.charts.values() for p in ps] + list(self.documents.values())


def export_bundle(
    incident: Any,
    out_dir: str | os.PathLike,
    *,
    redact: bool = True,
    hosts: bool = False,
    tz: str | None = None,
    formats: Sequence[str] = ("png", "svg"),
    html: bool = False,
    every: str | None = None,
    leak_every: str | None = None,
) -> Bundle:
    """A folder ready to drop into an incident document.

    Writes ``charts/<name>.png`` and ``.svg`` for every chart the evidence supports, the
    timeline to paste (:func:`loglib.timeline_document`) as ``timeline.md``, ``timeline.html``
    (a fragment with inline styles) and ``timeline.csv`` (the same cells), every derived row in
    ``timeline_full.csv``, ``findings.md``, ``deploys.md`` (every deploy and restart side by side,
    :func:`deploy_table`) when there are any, ``before_after.md`` when a fix can be compared, and
    ``summary.md`` that links them all.

    Parameters
    ----------
    incident
        An :class:`~loglib.Incident`.
    out_dir
        The folder (created; files in it are overwritten).
    redact
        Redact every chart text and table cell (default). ``redact=False`` must be explicit.
    hosts
        Also replace hosts and IPs by stable pseudonyms, the same ones in every file.
    tz
        Also show timeline times in this IANA time zone (``"Europe/Berlin"``).
    formats
        Chart formats (``png``, ``svg``, ``pdf``, ``html``).
    html
        Also write each chart as self-contained interactive HTML.
    every, leak_every
        Bucket widths of the time charts and of the leak-rate chart (default: chosen from the
        incident's length, the same way the report chooses them).

    Returns
    -------
    Bundle
        The folder, chart files, documents, the charts skipped (with the reason) and the
        detectors that failed (with their error; findings.md and summary.md say so too).

    Examples
    --------
    >>> import loglib as ll
    >>> inc = ll.Incident.load("data/incidents/pool-exhaustion")   # doctest: +SKIP
    >>> ll.export_bundle(inc, "out/pool-exhaustion").files          # doctest: +SKIP
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # paths are always made relative to the incident folder; secrets are kept only with redact=False
    red = Redactor(hosts=hosts, secrets=redact, paths=local_paths(getattr(incident, "root", None), out))
    bundle = Bundle(out)
    figs, bundle.skipped = incident_charts(incident, every=every, leak_every=leak_every)
    results = run_detectors(incident)
    bundle.failed = {f.kind: f.reason for f in results.failed}
    fmts = list(formats) + (["html"] if html and "html" not in formats else [])
    # under ``loglib report`` the images are drawn after the kernel (and its frames) are gone
    defer = deferred_folder()
    what = "queueing" if defer is not None and set(fmts) - {"html"} else "writing"
    with step(f"{what} {len(figs)} chart(s) as {', '.join(fmts)}"):
        written = export_figures(figs, out / "charts", formats=fmts, redactor=red, defer=defer)
    for name in figs:
        bundle.charts[name] = [p for p in written if p.stem == name]
    doc = timeline_document(incident, tz=tz, redactor=red)
    for fmt in TIMELINE_FORMATS:
        path = out / f"timeline.{fmt}"
        path.write_text(doc.render(fmt), encoding="utf-8")
        bundle.documents[path.name] = path
    bundle.documents["timeline_full.csv"] = export_table(doc.full, out / "timeline_full.csv", redactor=red)
    found = list(results.found)
    bundle.documents["findings.md"] = _write_findings(out / "findings.md", found, results.failed, red)
    deploys = deploy_table(incident)
    if deploys.height:
        bundle.documents["deploys.md"] = _write_doc(
            out / "deploys.md", "Deploys compared", deploys, red, note=DEPLOY_TABLE_NOTE
        )
    ba = before_after_doc(incident)
    path = out / "before_after.md"
    body = ba if isinstance(ba, str) else to_markdown(red.frame(ba) if red else ba)
    note = "" if isinstance(ba, str) else md_text(_split_note(incident)) + "\n\n"
    path.write_text(f"# Before and after the fix\n\n{note}{body}\n", encoding="utf-8")
    bundle.documents["before_after.md"] = path
    bundle.documents["summary.md"] = _write_summary(out / "summary.md", incident, bundle, found, doc, ba, red)
    return bundle


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.1f}".removesuffix(".0")
    return f"{text} %" if unit.startswith("%") else text


def before_after_doc(incident: Any) -> pl.DataFrame | str:
    """The before/after table as a document: Measure, Unit, Before (window), After (window), Change,
    Evidence — or, without a declared fix, the sentence saying what it needs (never a guess)."""
    try:
        ba = before_after_table(incident)
    except NeedsFixError as exc:
        return needs_fix_md(exc)
    except ValueError as exc:
        return md_text(str(exc))
    if ba.height == 0:
        return "No measure could be compared before and after the fix."
    wb, wa = ba["window_before"][0], ba["window_after"][0]
    return pl.DataFrame(
        {
            "Measure": ba["measure"],
            "Unit": ba["unit"],
            f"Before ({wb})": [_number(v, u) for v, u in zip(ba["before"], ba["unit"], strict=True)],
            f"After ({wa})": [_number(v, u) for v, u in zip(ba["after"], ba["unit"], strict=True)],
            "Change": ba["change"],
            "Evidence": ba["evidence"],
        }
    )


def needs_fix_md(exc: NeedsFixError) -> str:
    """What the before/after document says without a declared fix: how to declare it, and the candidate."""
    cand = (
        f"loglib's candidate: the {md_text(exc.step)} at {exc.at:%Y-%m-%d %H:%M:%S} UTC, {md_text(exc.why)}."
        if exc.at is not None
        else f"loglib found no candidate: {md_text(exc.reason)}."
    )
    return (
        "This table needs the fix declared: add a `fix` event to incident.toml. No before/after "
        "numbers are computed from a guess.\n\n```toml\n" + exc.toml() + "\n```\n\n" + cand
    )


def _split_note(incident: Any) -> str:
    split = before_after_table(incident)["split"][0]
    return f"Windows of equal length either side of the fix ({split}). Times UTC."


def _write_doc(path: Path, title: str, frame: pl.DataFrame, red: Redactor | None, *, note: str = "") -> Path:
    df = red.frame(frame) if red else frame
    text = f"# {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(df) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def _write_findings(
    path: Path, found: list[Any], failed: tuple[DetectorFailure, ...], red: Redactor | None
) -> Path:
    clean = (lambda s: md_text(red.text(s))) if red else md_text
    lines = ["# Findings", ""]
    for fail in failed:
        lines += [
            f"**The {fail.kind} detector failed** ({clean(fail.reason)}): that shape could not be checked.",
            "",
        ]
    if not found and not failed:
        lines.append(
            "No known incident shape (pool exhaustion, post-deploy errors, idle drops) was found in the evidence."
        )
    for n, f in enumerate(found, start=1):
        lines += [
            f"## {n}. {f.kind.replace('_', ' ')} ({f.confidence} confidence)",
            "",
            clean(f.statement),
            "",
        ]
        if f.numbers:
            rows = pl.DataFrame({"figure": list(f.numbers), "value": [_cell(v) for v in f.numbers.values()]})
            lines += [to_markdown(red.frame(rows) if red else rows), ""]
        ev = getattr(f, "evidence", None)
        if ev is not None and ev.height:
            keep = [c for c in ("ts", "source", "what", "file", "line") if c in ev.columns]
            head = ev.select(keep).head(10)
            lines += [
                f"Evidence ({ev.height} rows{', first 10' if ev.height > 10 else ''}):",
                "",
                to_markdown(red.frame(head) if red else head),
                "",
            ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_summary(
    path: Path,
    incident: Any,
    bundle: Bundle,
    found: list[Any],
    doc: TimelineDocument,
    ba: pl.DataFrame | str,
    red: Redactor | None,
) -> Path:
    clean = (lambda s: md_text(red.text(s))) if red else md_text
    title = clean(getattr(incident, "title", "Incident"))
    try:
        imp: pl.DataFrame | None = impact(incident, found)
    except NoEvidenceError:  # nothing has a timestamp: nothing to count
        imp = None
    lines = [f"# {title}", ""]
    try:
        start, end = incident.window()
        lines += [f"Evidence window: {start:%Y-%m-%d %H:%M:%S} – {end:%Y-%m-%d %H:%M:%S} UTC.", ""]
    except NoEvidenceError:  # nothing has a timestamp: no window to state
        pass
    desc = getattr(incident, "description", "")
    if desc:
        lines += [clean(desc), ""]
    if imp is not None:
        lines += ["## Impact", "", to_markdown(red.frame(imp) if red else imp), ""]
    lines += ["## What happened", ""]
    lines += [f"- {clean(f.statement)}" for f in found]
    lines += [
        f"- **The {k} detector failed** ({clean(v)}); that shape could not be checked."
        for k, v in bundle.failed.items()
    ]
    if not found and not bundle.failed:
        lines.append("- No known incident shape was found; see the timeline.")
    lines += ["", "Details: [findings.md](findings.md) · full timeline: [timeline.md](timeline.md)", ""]
    if "deploys.md" in bundle.documents:  # what the deploys with errors share is read off this table
        deploys = deploy_table(incident)
        lines += ["## Deploys compared", "", to_markdown(red.frame(deploys) if red else deploys), ""]
        lines += [DEPLOY_TABLE_NOTE, ""]
    if "overview" in bundle.charts:
        lines += ["![Incident overview](charts/overview.png)", ""]
    rows = min(doc.table.height, 12)
    lines += [
        f"## Timeline (first {rows} of {doc.table.height} rows)"
        if rows < doc.table.height
        else "## Timeline",
        "",
        to_markdown(doc.table.head(12)),
        "",
    ]
    lines += ["## Before and after the fix", ""]
    if isinstance(ba, str):
        lines += [ba, ""]
    else:
        lines += [md_text(_split_note(incident)), "", to_markdown(red.frame(ba) if red else ba), ""]
    lines += ["## Charts", ""]
    for name, files in bundle.charts.items():
        if name == "overview":
            continue
        png = next((p for p in files if p.suffix == ".png"), None)
        others = " · ".join(f"[{p.suffix.lstrip('.')}](charts/{p.name})" for p in files)
        label = CHART_TITLES.get(name, name)
        lines += [f"### {label}", ""] + ([f"![{label}](charts/{png.name})", ""] if png else []) + [others, ""]
    if bundle.skipped:
        lines += [
            "Not drawn (no evidence for them): "
            + "; ".join(f"{k} ({clean(v)})" for k, v in bundle.skipped.items()),
            "",
        ]
    if hasattr(incident, "read_reports"):  # an Incident: its sources, as read
        lines += ["## What was read", "", what_was_read(incident, redactor=red), ""]
    lines += ["", f"_Generated by loglib; secrets {'redacted' if red and red.secrets else 'NOT redacted'}._"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
