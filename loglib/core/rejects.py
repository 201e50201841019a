"""The one rejects mechanism: lines that did not parse are kept, counted and reachable.

Every reader returns its frame through :func:`finish_read`, which

* attaches a :class:`ReadReport` (files, lines read, entries, rejects, format) to the frame,
  reachable with ``loglib.read_report(frame)`` and ``loglib.rejects(frame)``;
* warns with :class:`~loglib.errors.RejectedLinesWarning` when any line was rejected;
* raises :class:`~loglib.errors.ParseError` naming the first bad line when ``strict=True``.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, field

import polars as pl

from loglib.core.schema import REJECTS, conform
from loglib.errors import ParseError, RejectedLinesWarning

MAX_REJECT_TEXT = 2000

#: reasons (by prefix) for lines that are known not to be entries: kept and counted, but no warning
NOISE_REASONS = (
    "blank line", "pg_ctl output", "CloudNativePG ", "syslog line of another program",
    "PostgreSQL memory context dump", "archive_command/restore_command output",
)  # fmt: skip


def is_noise(reason: str) -> bool:
    """True for a reject reason that names known, harmless noise (blank lines, pg_ctl chatter)."""
    return reason.startswith(NOISE_REASONS)


@dataclass
class ReadReport:
    """What one read did: the accounting that proves nothing was lost.

    ``lines_read == lines_parsed + lines_rejected`` always holds; ``entries`` counts rows
    of the result (a multi-line entry is one row from several parsed lines).
    """

    reader: str
    files: list[str] = field(default_factory=list)
    format: str | None = None
    lines_read: int = 0
    lines_parsed: int = 0
    entries: int = 0
    rejects: pl.DataFrame = field(default_factory=REJECTS.empty)
    notes: list[str] = field(default_factory=list)

    @property
    def lines_rejected(self) -> int:
        return self.rejects.height

    @property
    def unexplained(self) -> pl.DataFrame:
        """Rejected lines that are not known noise: what a person should look at."""
        return self.rejects.filter(~pl.col("reason").map_elements(is_noise, return_dtype=pl.Boolean))

    def summary(self) -> str:
        """One paragraph a person can read."""
        text = (
            f"{self.reader}: {self.entries:,} entries from {self.lines_read:,} lines in "
            f"{len(self.files)} file(s) (format {self.format or 'unknown'}); "
            f"{self.lines_rejected:,} line(s) rejected"
        )
        if self.lines_rejected:
            first = self.rejects.row(0, named=True)
            text += f", first at {first['file']}:{first['line']}: {first['reason']}"
        for note in self.notes:
            text += f"\nnote: {note}"
        return text

    def __repr__(self) -> str:
        return f"ReadReport({self.summary()!r})"


_REPORTS: dict[int, tuple[weakref.ref, ReadReport]] = {}


def _forget(key: int) -> None:
    _REPORTS.pop(key, None)


def attach_report(frame: pl.DataFrame, report: ReadReport) -> pl.DataFrame:
    """Remember ``report`` for ``frame`` (for as long as the frame lives)."""
    key = id(frame)
    _REPORTS[key] = (weakref.ref(frame, lambda _ref, key=key: _forget(key)), report)
    return frame


def read_report(frame: pl.DataFrame) -> ReadReport:
    """The :class:`ReadReport` of a frame returned by a ``read_*`` function.

    Examples
    --------
    >>> import loglib as ll
    >>> df = ll.read_pg_log(b"2024-03-01 10:00:00 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\\ngarbage\\n")  # doctest: +SKIP
    >>> ll.read_report(df).lines_rejected  # doctest: +SKIP
    1
    """
    entry = _REPORTS.get(id(frame))
    if entry is None or entry[0]() is not frame:
        msg = (
            "this frame has no read report: only the frame a loglib read_* function returned has one "
            "(filtering or selecting makes a new frame). Keep the original, or call loglib.rejects() on it."
        )
        raise KeyError(msg)
    return entry[1]


def rejects(frame: pl.DataFrame) -> pl.DataFrame:
    """The lines a reader could not parse, with ``file``, ``line``, ``reason`` and ``text``."""
    return read_report(frame).rejects


def rejects_frame(file: str, lines: list[int], reasons: list[str], texts: list[str]) -> pl.DataFrame:
    """Build a canonical rejects frame from parallel lists."""
    return pl.DataFrame(
        {
            "file": [file] * len(lines),
            "line": lines,
            "reason": reasons,
            "text": [t[:MAX_REJECT_TEXT] for t in texts],
        },
        schema=REJECTS.polars_schema,
    )


def add_rejects(
    report: ReadReport, file: str, lines: list[int], reasons: list[str], texts: list[str]
) -> None:
    """Append rejected lines of ``file`` to the report (the caller counts them as read)."""
    if lines:
        report.rejects = pl.concat([report.rejects, rejects_frame(file, lines, reasons, texts)])


def record_damage(report: ReadReport, name: str, last_line: int, damage: str) -> None:
    """A truncated or corrupt compressed file: one reject after its last readable line, counted
    as read, so that ``lines_read == lines_parsed + lines_rejected`` still holds."""
    report.lines_read += 1
    add_rejects(report, name, [last_line + 1], [damage], [""])


def finish_read(
    frame: pl.DataFrame, report: ReadReport, *, strict: bool, stacklevel: int = 3
) -> pl.DataFrame:
    """Attach the report, then warn or raise about rejects as promised to the caller."""
    report.rejects = conform(report.rejects, REJECTS).sort("file", "line", maintain_order=True)
    report.entries = frame.height
    bad = report.unexplained
    if bad.height:
        first = bad.row(0, named=True)
        if strict:
            msg = (
                f"{first['file']}:{first['line']}: {first['reason']} (strict=True; "
                f"{bad.height:,} bad line(s) in all). Line: {first['text'][:200]!r}"
            )
            raise ParseError(msg, file=first["file"], line=first["line"], reason=first["reason"])
        warnings.warn(
            f"{report.summary()}. See loglib.rejects(frame) for every rejected line.",
            RejectedLinesWarning,
            stacklevel=stacklevel,
        )
    return attach_report(frame, report)
