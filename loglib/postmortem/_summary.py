"""The postmortem's words: what the incident cost (``impact``) and what happened (``summary``)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib.formats.pg_messages import PG_IMPACT_LABELS
from loglib.postmortem._detectors import DetectorFailure, run_detectors
from loglib.present.markup import md_text


class Markdown(str):
    """Text that notebooks render as Markdown (``_repr_markdown_``) and ``print`` shows as is."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _fmt_time(t: datetime | None) -> str:
    return "?" if t is None else f"{t:%H:%M:%S}"


def _fmt_span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _source_names(incident: Any) -> list[str]:
    """The incident's source names; for an Evidence, the frames it holds."""
    sources = getattr(incident, "sources", None)
    if sources is not None:
        return [s.name for s in sources]
    return list(incident.frames())


def _request_rows(incident: Any, found: list[Any]) -> list[dict[str, str]]:
    """Requests answered and failed (5xx, 503), when users were affected, the worst minute, leaks."""
    from loglib.analysis.requests import request_impact

    imp = request_impact(incident.evidence if hasattr(incident, "evidence") else incident)
    if imp is None:
        return [
            {
                "measure": "requests answered and failed",
                "value": "not measured: no access lines in the app log and no http_requests_total{code|status}",
                "evidence": "app log, metrics",
            }
        ]
    least = "at least " if imp.bound == "at least" else ""
    rows = [
        {"measure": "requests answered", "value": f"{least}{imp.answered:,}", "evidence": imp.evidence},
        {
            "measure": "requests failed (5xx)",
            "value": f"{least}{imp.failed:,} of {imp.answered:,} answered ({imp.failed_share or 0:.1%})",
            "evidence": imp.evidence,
        },
        {
            "measure": "503 responses",
            "value": f"{least}{imp.status_503:,} ({imp.status_503 / imp.answered if imp.answered else 0:.1%} of answered)",
            "evidence": imp.evidence,
        },
    ]
    if imp.first_failed is not None and imp.last_failed is not None and imp.affected is not None:
        rows.append(
            {
                "measure": "users affected (UTC)",
                "value": f"first failed request {_fmt_time(imp.first_failed)}, last {_fmt_time(imp.last_failed)} "
                f"({_fmt_span(imp.affected.total_seconds())}, a lower bound on how long users saw errors)",
                "evidence": imp.evidence,
            }
        )
    if imp.peak_minute is not None and imp.peak_answered:
        rows.append(
            {
                "measure": "peak error rate (1-minute bucket, UTC)",
                "value": f"{imp.peak_failed:,} of {imp.peak_answered:,} requests failed in the minute from "
                f"{imp.peak_minute:%H:%M} ({imp.peak_failed / imp.peak_answered:.0%})",
                "evidence": imp.evidence,
            }
        )
    for f in found:
        n = getattr(f, "numbers", {}) or {}
        if n.get("leaked_total") is not None:
            rate = n.get("leaks_per_hour")
            per = f", {rate:g} per hour ({n.get('leaks_per_hour_over', '')})" if rate is not None else ""
            rows.append(
                {
                    "measure": "connections leaked",
                    "value": f"{n['leaked_total']:g} in all{per}; {n.get('leak_confidence', '?')} confidence",
                    "evidence": f"leak method {n.get('leak_method', '?')}",
                }
            )
            break
    return rows


def impact(incident: Any, found: Iterable[Any] | None = None) -> pl.DataFrame:
    """What the incident cost, as a table: ``measure``, ``value``, ``evidence``.

    Requests answered and failed (5xx, and 503 on its own) with the failed share, the first and
    last failed request, the worst minute (from access lines, else ``http_requests_total`` as a
    lower bound), connections leaked (from ``found``, default: the detectors' findings),
    application connection errors by class (count, first and last), PostgreSQL refusals and
    resets, and the evidence window. Only measures the sources can tell are listed; requests
    that cannot be counted say so.
    """
    rows: list[dict[str, str]] = []
    with _quiet():
        if found is None:
            found = run_detectors(incident).found
        start, end = incident.window()
        rows.append(
            {
                "measure": "evidence window (UTC)",
                "value": f"{start:%Y-%m-%d %H:%M:%S} – {end:%H:%M:%S} ({_fmt_span((end - start).total_seconds())})",
                "evidence": ", ".join(_source_names(incident)),
            }
        )
        rows += _request_rows(incident, list(found))
        app = incident.app
        if app is not None and "error_class" in app.columns:
            errs = app.filter(pl.col("error_class").is_not_null())
            by = errs.group_by("error_class").agg(
                pl.len().alias("n"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
            )
            for cls, n, first, last in by.sort("n", descending=True).iter_rows():
                rows.append(
                    {
                        "measure": f"application errors: {cls}",
                        "value": f"{n:,} between {_fmt_time(first)} and {_fmt_time(last)} UTC",
                        "evidence": "app log",
                    }
                )
            if errs.height == 0:
                rows.append(
                    {"measure": "application errors", "value": "none classified", "evidence": "app log"}
                )
        pg = incident.pg
        if pg is not None:
            for event, label in PG_IMPACT_LABELS.items():
                n = pg.filter(pl.col("event") == event).height
                if n:
                    rows.append({"measure": label, "value": f"{n:,}", "evidence": f"PostgreSQL {event}"})
    return pl.DataFrame(rows, schema={"measure": pl.String, "value": pl.String, "evidence": pl.String})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Warnings off: the notebook shows rejects and skew on purpose, not as noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def summary(incident: Any, found: Iterable[Any] | None = None) -> Markdown:
    """The opening of a postmortem, as Markdown: title, window, impact and what happened, in words.

    ``found`` defaults to :func:`run_detectors` of the incident; a detector that failed is listed
    as failed, with its error.
    """
    failed: tuple[DetectorFailure, ...] = ()
    with _quiet():
        if found is None:
            results = run_detectors(incident)
            found, failed = results.found, results.failed
        found = list(found)
        start, end = incident.window()
    lines = [f"### {md_text(incident.title)}", ""]
    desc = getattr(incident, "description", "")
    if desc:
        lines += [md_text(desc), ""]
    lines += [
        f"**Evidence window:** {start:%Y-%m-%d %H:%M:%S} – {end:%H:%M:%S} UTC "
        f"({_fmt_span((end - start).total_seconds())}).",
        "",
        "**Impact:**",
        "",
    ]
    lines += [
        f"- {md_text(m)}: {md_text(v)}" for m, v, _ in impact(incident, found).slice(1).iter_rows()
    ] or ["- nothing measurable"]
    lines += ["", "**What happened:**", ""]
    lines += [
        f"- *{f.kind.replace('_', ' ')}* ({f.confidence} confidence): {md_text(f.statement)}" for f in found
    ]
    lines += [
        f"- **The {fail.kind} detector failed** ({md_text(fail.reason)}); that shape could not be checked."
        for fail in failed
    ]
    if not found and not failed:
        lines.append(
            "- No known incident shape (pool exhaustion, post-deploy errors, idle drops) was found; "
            "read the timeline below."
        )
    return Markdown("\n".join(lines) + "\n")


def window_around(when: datetime, before: str | timedelta = "1m", after: str | timedelta = "2m"):
    """``(start, end)`` around a moment, for ``pl.col("ts").is_between(start, end)``."""
    from loglib.analysis.skew import parse_offset

    return when - parse_offset(before), when + parse_offset(after)
