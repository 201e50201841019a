"""The one chunk driver of the line-based readers (PostgreSQL stderr/syslog/Cloud SQL, application logs).

A source's lines come in chunks (:func:`~loglib.sources.files.iter_line_chunks`, read ahead in
a background thread); two chunks are parsed at once in worker threads (polars releases the
GIL, so both cores work). An entry's continuation lines may cross a chunk boundary, so each
chunk hands back the lines before its first entry (``lead``) and its last entry (``tail``)
unfinished; the driver stitches them to their neighbours in file order and keeps the read
report's counts: ``lines_read == lines_parsed + lines_rejected``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from loglib.core.rejects import ReadReport, record_damage
from loglib.sources.files import LineChunk, Source, iter_line_chunks, map_ordered, prefetch


class EntryParser(Protocol):
    """What a line-based reader tells the driver about its format. A parser whose
    ``keeps_body`` is true is given each chunk's bytes too: ``parse_lines(frame, body)``, with
    ``body`` the chunk's ``"\\n".join(lines)`` as read, or None (see ``LineChunk.body``)."""

    source: Source

    def parse_lines(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``line`` + ``text`` rows -> the same rows with the format's fields (row order kept)."""

    def starts_entry(self, parsed: pl.DataFrame) -> pl.Series:
        """Per parsed row: does it start an entry (a continuation never does)?"""

    def fold(self, rows: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        """Whole entries' rows -> (finished canonical rows or None, rejected line rows)."""

    def reject(self, report: ReadReport, rejected: pl.DataFrame) -> None:
        """Record rejected line rows (with their reasons) in ``report``."""


@dataclass
class _Work:
    """One chunk worked alone: the entries wholly inside it are finished, ``lead`` and ``tail``
    wait for the neighbouring chunks (``tail`` is None when no entry starts in the chunk)."""

    chunk: LineChunk
    lead: pl.DataFrame
    tail: pl.DataFrame | None
    finished: pl.DataFrame | None = None
    rejected: pl.DataFrame | None = None
    core_rows: int = 0


def _work(parser: EntryParser, chunk: LineChunk) -> _Work:
    n = chunk.lines.len()
    frame = pl.DataFrame(
        {
            "line": pl.int_range(chunk.first_line, chunk.first_line + n, eager=True, dtype=pl.Int64),
            "text": chunk.lines,
        }
    )
    if getattr(parser, "keeps_body", False):
        parsed = parser.parse_lines(frame, chunk.body)  # type: ignore[call-arg]
    else:
        parsed = parser.parse_lines(frame)
    starts = parser.starts_entry(parsed).fill_null(False).arg_true()
    if starts.len() == 0:  # no entry starts here: all of it continues the open one
        return _Work(chunk, parsed, None)
    first, last = int(starts[0]), int(starts[-1])
    core = parsed.slice(first, last - first)
    finished, rejected = parser.fold(core) if core.height else (None, None)
    return _Work(chunk, parsed.slice(0, first), parsed.slice(last), finished, rejected, core.height)


def _account(parser: EntryParser, report: ReadReport, rows: int, rejected: pl.DataFrame | None) -> None:
    report.lines_parsed += rows - (0 if rejected is None else rejected.height)
    if rejected is not None and rejected.height:
        parser.reject(report, rejected)


def read_entries(parser: EntryParser, report: ReadReport, *, chunk_bytes: int) -> Iterator[pl.DataFrame]:
    """Every finished entry of ``parser.source``, in file order (about a frame per chunk); the
    counts, notes (Latin-1 lines) and damage (a truncated ``.gz``) go to ``report``."""
    name = parser.source.name
    keep = bool(getattr(parser, "keeps_body", False))
    chunks = prefetch(iter_line_chunks(parser.source, chunk_bytes=chunk_bytes, keep_body=keep))
    open_rows: pl.DataFrame | None = None  # the last entry seen, maybe still growing

    def finish(rows: pl.DataFrame) -> Iterator[pl.DataFrame]:
        finished, rejected = parser.fold(rows)
        _account(parser, report, rows.height, rejected)
        if finished is not None and finished.height:
            yield finished

    for work in map_ordered(lambda c: _work(parser, c), chunks):
        chunk = work.chunk
        report.lines_read += chunk.lines.len()
        if chunk.fallback_decoded:
            report.notes.append(
                f"{name}: {chunk.fallback_decoded} line(s) were not UTF-8 and were read as Latin-1"
            )
        joined = (
            work.lead
            if open_rows is None
            else pl.concat([open_rows, work.lead], how="vertical_relaxed", rechunk=False)
        )
        if work.tail is None:
            open_rows = joined
        else:
            if joined.height:
                yield from finish(joined)
            _account(parser, report, work.core_rows, work.rejected)
            if work.finished is not None and work.finished.height:
                yield work.finished
            open_rows = work.tail
        if chunk.damage:
            record_damage(report, name, chunk.first_line + chunk.lines.len() - 1, chunk.damage)
    if open_rows is not None and open_rows.height:
        yield from finish(open_rows)
