"""The timeline people paste (``timeline_table``, ``timeline_document``): Time, Event, Evidence, Action.

:func:`loglib.timeline` holds every derived row; this is the table for an incident document:
about 30 rows (bursts and spans widened step by step until it fits, and said so), times in UTC
with the date in the header when the incident fits in one UTC day, the ``action`` and ``owner``
of incident.toml's events, secrets removed before any cell is cut. ``timeline.md`` of the
bundle and ``loglib timeline`` are :meth:`TimelineDocument.render` of the same document.

Example
-------
>>> import loglib as ll
>>> doc = ll.timeline_document(ll.Incident.load("data/incidents/pool-exhaustion"))  # doctest: +SKIP
>>> print(doc.render("md"))                                                       # doctest: +SKIP
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from loglib.core.timeparse import check_tz, to_timedelta
from loglib.present.markup import csv_cell, md_cell, md_text, short_label
from loglib.present.redact import Redactor
from loglib.present.timeline import timeline

#: the paste formats of :meth:`TimelineDocument.render`
TIMELINE_FORMATS: tuple[str, ...] = ("md", "html", "csv")
#: (burst_gap, debounce) tried in turn until the table has at most ``max_rows`` rows
_WIDENING: tuple[tuple[str, str], ...] = (
    ("60s", "30s"),
    ("2m", "1m"),
    ("5m", "2m"),
    ("10m", "5m"),
    ("30m", "15m"),
    ("1h", "30m"),
)
#: longest Event cell; the rest is in timeline_full.csv (the cut falls after redaction)
EVENT_CHARS = 160
_CELL = "border:1px solid #c8c8c8;padding:4px 8px;vertical-align:top;text-align:left"
_TABLE = "border-collapse:collapse;font-family:Arial,Helvetica,sans-serif;font-size:13px;color:#1f1f1f"


@dataclass(frozen=True)
class TimelineDocument:
    """A timeline ready to paste: a title, one sentence on how to read it, and the table (text cells).

    ``table`` has the columns ``Time (UTC, <date>)`` (or ``Time (UTC)`` with dates in the cells),
    ``Time (<zone>)`` with ``tz=``, ``Event``, ``Evidence`` and ``Action``. ``full`` is the
    complete derived timeline (:func:`loglib.timeline` with every run), for ``timeline_full.csv``.
    """

    title: str
    note: str
    table: pl.DataFrame
    full: pl.DataFrame

    def render(self, format: str = "md") -> str:
        """The document as GitHub/GitLab Markdown (``md``), an HTML fragment with inline styles
        that pastes into Confluence and Google Docs (``html``), or CSV of the same cells (``csv``;
        a ``<`` that would open a tag is written ``&lt;``, as in every loglib CSV)."""
        fmt = format.lower().lstrip(".")
        fmt = {"markdown": "md", "htm": "html"}.get(fmt, fmt)
        if fmt == "md":
            return self._markdown()
        if fmt == "html":
            return self._html()
        if fmt == "csv":
            return self._csv()
        msg = f"format={format!r} is not a timeline format; choose one of {', '.join(TIMELINE_FORMATS)}"
        raise ValueError(msg)

    def _repr_html_(self) -> str:
        return self._html()

    def _repr_markdown_(self) -> str:
        return self._markdown()

    def _markdown(self) -> str:
        cols = self.table.columns
        lines = [f"# {md_text(self.title)}", "", md_text(self.note), ""]
        lines.append("| " + " | ".join(md_cell(c) for c in cols) + " |")
        lines.append("| " + " | ".join("---" for _ in cols) + " |")
        lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in self.table.iter_rows()]
        return "\n".join(lines) + "\n"

    def _html(self) -> str:
        def cell(tag: str, value: Any, extra: str = "") -> str:
            return f'<{tag} style="{_CELL}{extra}">{html.escape(value or "")}</{tag}>'

        nowrap = [c.startswith("Time") for c in self.table.columns]
        head = "".join(
            cell("th", c, ";background:#f0f0f0;font-weight:bold" + (";white-space:nowrap" if nw else ""))
            for c, nw in zip(self.table.columns, nowrap, strict=True)
        )
        body = "\n".join(
            "<tr>"
            + "".join(
                cell("td", v, ";white-space:nowrap" if nw else "") for v, nw in zip(row, nowrap, strict=True)
            )
            + "</tr>"
            for row in self.table.iter_rows()
        )
        return (
            f'<p style="font-family:Arial,Helvetica,sans-serif;font-size:14px"><b>{html.escape(self.title)}</b>'
            f"<br>{html.escape(self.note)}</p>\n"
            f'<table style="{_TABLE}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n'
        )

    def _csv(self) -> str:
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(self.table.columns)
        # a tag from the data stays text in any tool that renders cells ("<img" is written "&lt;img"),
        # and a cell starting with = + - @ is never run as a formula ("=HYPERLINK(" -> "'=HYPERLINK(")
        out.writerows([[csv_cell(v) for v in row] for row in self.table.iter_rows()])
        return buf.getvalue()


def _one_line(text: str | None) -> str:
    """A cell: one line, single spaces, nothing at either end (what every renderer shows)."""
    return " ".join((text or "").split())


def _day(times: list[datetime]) -> str | None:
    days = {t.date() for t in times}
    return str(days.pop()) if len(days) == 1 else None


def _time_cells(start: pl.Series, end: pl.Series, zone: str | None) -> tuple[str, list[str]]:
    """The header and cells of one time column: ``HH:MM:SS`` (``–HH:MM:SS`` for a span)."""
    if zone is not None:
        start, end = start.dt.convert_time_zone(zone), end.dt.convert_time_zone(zone)
    label = zone or "UTC"
    day = _day(start.to_list() + end.to_list()) if start.len() else None
    fmt = "%H:%M:%S" if day else "%Y-%m-%d %H:%M:%S"
    cells = []
    for a, b in zip(start.to_list(), end.to_list(), strict=True):
        text = a.strftime(fmt)
        if (b - a).total_seconds() >= 1:
            text += "–" + b.strftime("%H:%M:%S" if b.date() == a.date() else fmt)
        cells.append(text)
    return (f"Time ({label}, {day})" if day else f"Time ({label})"), cells


def timeline_table(
    incident: Any = None,
    *,
    tz: str | None = None,
    full: bool = False,
    max_rows: int = 30,
    redactor: Redactor | None = None,
    **frames: Any,
) -> pl.DataFrame:
    """The timeline as a document table: ``Time``, [``Time (<tz>)``], ``Event``, ``Evidence``, ``Action``.

    See :func:`timeline_document` (this is its ``table``).
    """
    return timeline_document(incident, tz=tz, full=full, max_rows=max_rows, redactor=redactor, **frames).table


def timeline_document(
    incident: Any = None,
    *,
    tz: str | None = None,
    full: bool = False,
    max_rows: int = 30,
    redact: bool = True,
    hosts: bool = False,
    redactor: Redactor | None = None,
    **frames: Any,
) -> TimelineDocument:
    """The incident's timeline as a document to paste (Markdown, HTML fragment, CSV).

    Parameters
    ----------
    incident
        An :class:`~loglib.Incident` or Evidence (or frames as keywords, like :func:`loglib.timeline`).
    tz
        An IANA zone: adds a local time column (times stay UTC in the first).
    full
        The long table: every burst of events 60 s apart and every run of a state (no widening,
        no row limit).
    max_rows
        Bursts (events of a kind closer than the gap) and spans (states pausing for less than
        the debounce) widen — 60 s/30 s, 2 min/1 min, 5 min/2 min … — until the table fits; the
        note says which were used.
    redact, hosts, redactor
        Secrets removed (default; and hosts pseudonymised with ``hosts=True``) before a cell is cut.

    Returns
    -------
    TimelineDocument
        ``title``, ``note``, ``table`` (text cells) and ``full`` (every derived row);
        ``.render("md" | "html" | "csv")``.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 9, 30, 12, tzinfo=UTC)
    >>> app = pl.DataFrame({"ts": [t0 + timedelta(seconds=7 * i) for i in range(37)],
    ...                     "error_class": "pool_timeout", "message": "QueuePool limit reached",
    ...                     "file": "app.log", "line": list(range(1, 38))})
    >>> ll.timeline_document(app=app).table.row(0)
    ('09:30:12–09:34:24', '37 × pool_timeout in 4 min 12 s: "QueuePool limit reached"', 'app.log:1 … app.log:37', '')
    """
    if tz is not None:
        check_tz(tz)
    red = redactor or (Redactor(hosts=hosts) if redact else None)
    steps = (("60s", "0s"),) if full else _WIDENING
    for gap, calm in steps:
        derived = timeline(incident, burst_gap=gap, debounce=calm, **frames)
        if derived.height <= max_rows:
            break
    if red is not None:
        derived = red.frame(derived)
    whole = derived if full else timeline(incident, debounce="0s", **frames)
    if red is not None and not full:
        whole = red.frame(whole)
    head, cells = _time_cells(derived["time"], derived["end"], None)
    columns: dict[str, list[str]] = {head: cells}
    if tz is not None:
        local_head, local = _time_cells(derived["time"], derived["end"], tz)
        columns[local_head] = local
    columns["Event"] = [_one_line(short_label(_one_line(w), EVENT_CHARS)) for w in derived["what"].to_list()]
    columns["Evidence"] = [_one_line(e) for e in derived["evidence"].to_list()]
    columns["Action"] = [_one_line(a) for a in derived["action"].to_list()]
    table = pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))
    title = getattr(incident, "title", "") or ""
    title = f"Timeline: {red.text(title) if red else title}" if title else "Timeline"
    return TimelineDocument(title, _note(table, gap, calm, full, tz), table, whole)


def _note(table: pl.DataFrame, gap: str, calm: str, full: bool, tz: str | None) -> str:
    zone = f" (and {tz})" if tz else ""
    day = table.columns[0].removeprefix("Time (UTC").strip(", )")
    when = f"Times in UTC on {day}{zone}" if day else f"Times in UTC{zone}"
    g = to_timedelta(gap, argument="burst_gap").total_seconds()
    burst = f"events of one kind less than {_words(g)} apart are one row"
    if full:
        state = "every run of a state (pool at capacity, an alert firing) is its own row"
    else:
        c = to_timedelta(calm, argument="debounce").total_seconds()
        state = f"a state (pool at capacity, an alert firing) pausing for less than {_words(c)} is one span"
    return (
        f"{when}; {burst}, {state}; {table.height} rows. Evidence is file:line in the incident folder "
        "or a Prometheus series. Every row: timeline_full.csv."
    )


def _words(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
