"""``loglib parse`` without holding the input: a log of any size streamed to Parquet (or CSV).

A ``scan_*`` reader's batches (file order, one chunk driver) are redacted one by one, sorted
one by one and written as *runs* to a temporary Parquet file beside ``--out``. When the whole
input was in time order (the common case) that file is the output. Otherwise the runs are
merged by time with a bounded window: a run is read only once the merge reaches its first
time, a row group at a time, so memory follows how far the runs overlap, not the file size.
The result is the frame the eager reader returns (sorted by ``ts``, ties and null times in
file order), with the same read report: counts, rejects with file:line, and the same notes.

Peak memory is about two chunks being parsed, plus the row groups of the runs that overlap in
time (:data:`GROUP_ROWS` rows each); the parse cache is not used (it would hold the frame).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from loglib.core.rejects import ReadReport, read_report
from loglib.core.schema import REJECTS, conform
from loglib.errors import NoDataError
from loglib.sources._lazy import iter_batches, step_notes, step_rows

#: rows per Parquet row group of the runs (and of the output): the merge's unit of reading
GROUP_ROWS = 16_384
#: what each streamed kind's rows are called in the "no data" error (as the eager readers say)
_WHAT = {
    "postgres": "PostgreSQL log entries",
    "app": "application log events",
    "pgbouncer": "pgBouncer log lines",
}


def _scanner(kind: str) -> Callable[..., pl.LazyFrame]:
    from loglib.sources.app import scan_app_log
    from loglib.sources.pgbouncer import scan_pgbouncer_log
    from loglib.sources.postgres import scan_pg_log

    return {"postgres": scan_pg_log, "app": scan_app_log, "pgbouncer": scan_pgbouncer_log}[kind]


#: the kinds ``loglib parse`` streams; the others are read whole
STREAMED = tuple(_WHAT)


@dataclass
class Streamed:
    """What :func:`stream_parse` wrote: ``rows`` × ``columns`` into ``out``, and its read report."""

    out: Path
    rows: int
    columns: int
    report: ReadReport
    merged: bool = False  # the input was not in time order: the runs were merged


@dataclass
class _Run:
    first_ts: Any  # the run's earliest time (None: the run has only null times)
    groups: list[int] = field(default_factory=list)  # its row groups in the runs file


class _Steps:
    """Clock steps back (``loglib.sources._lazy.clock_steps``) found batch by batch: each batch
    is looked at with the row before it and the row after it, as in the whole frame."""

    def __init__(self) -> None:
        self.shown: list[pl.DataFrame] = []
        self.total = 0
        self.before: pl.DataFrame | None = None  # the last row of the batch already looked at
        self.pending: pl.DataFrame | None = None

    def add(self, batch: pl.DataFrame) -> None:
        rows = batch.select("ts", "file", "line")
        if self.pending is not None:
            self._look(self.pending, rows.head(1))
        self.pending = rows

    def finish(self) -> list[str]:
        if self.pending is not None:
            self._look(self.pending, rows_after=None)
        shown = pl.concat(self.shown).head(3) if self.shown else None
        return step_notes(shown, self.total) if shown is not None else []

    def _look(self, rows: pl.DataFrame, rows_after: pl.DataFrame | None) -> None:
        parts = [p for p in (self.before, rows, rows_after) if p is not None]
        offset = 0 if self.before is None else 1
        found = step_rows(pl.concat(parts)).filter(
            (pl.col("_row") >= offset) & (pl.col("_row") < offset + rows.height)
        )
        self.total += found.height
        if found.height and sum(s.height for s in self.shown) < 3:
            self.shown.append(found.head(3))
        self.before, self.pending = rows.tail(1), None


class _RunWriter:
    """Writes each batch, redacted and sorted by time, as one run of row groups (in a thread of
    its own, one batch behind); tracks whether the input as a whole was in order."""

    def __init__(
        self, path: Path, group_rows: int, redact: Callable[[pl.DataFrame], pl.DataFrame] | None
    ) -> None:
        self.path = path
        self.group_rows = group_rows
        self.redact = redact
        self.writer: Any = None
        self.schema: Any = None
        self.runs: list[_Run] = []
        self.nulls: list[int] = []  # row groups holding rows without a time, in file order
        self.groups = 0
        self.rows = 0
        self.in_order = True
        self.last_ts: Any = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loglib-write")
        self._pending: deque[Future[None]] = deque()

    def _groups(self, rows: int) -> list[int]:
        start = self.groups
        self.groups += -(-rows // self.group_rows)
        return list(range(start, self.groups))

    def add(self, batch: pl.DataFrame) -> None:
        """Queue ``batch`` (file order) as the next run."""
        if batch.height == 0:
            return
        self.rows += batch.height
        ts = batch["ts"]
        nulls = ts.null_count()
        timed = ts.drop_nulls() if nulls else ts
        if nulls:
            self.in_order = False  # the eager read sorts: rows without a time go last
            self.nulls.extend(self._groups(nulls))
        if timed.len():
            if self.in_order and not (
                timed.is_sorted() and (self.last_ts is None or timed[0] >= self.last_ts)
            ):
                self.in_order = False
            self.last_ts = timed[-1]
            self.runs.append(_Run(timed.min(), self._groups(timed.len())))
        self._pending.append(self._pool.submit(self._job, batch, nulls, not self.in_order))
        while len(self._pending) > 1:  # one batch written while the next is parsed
            self._pending.popleft().result()

    def _job(self, batch: pl.DataFrame, nulls: int, sort: bool) -> None:
        if self.redact is not None:
            batch = self.redact(batch)
        if nulls:
            self._write(batch.filter(pl.col("ts").is_null()))
            batch = batch.filter(pl.col("ts").is_not_null())
        if batch.height:
            self._write(batch.sort("ts", maintain_order=True) if sort else batch)

    def _write(self, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        for at in range(0, frame.height, self.group_rows):
            self.writer.write_table(table.slice(at, self.group_rows))

    def close(self) -> None:
        """Wait for the queued runs (raising the first failure) and close the file."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self.writer is not None:
                self.writer.close()


def _merge(runs_file: Path, runs: list[_Run], nulls: list[int], out: Path, group_rows: int) -> None:
    """Merge the sorted runs of ``runs_file`` into ``out`` by time (ties in run order, then
    the rows without a time in file order), holding only the runs that overlap in time.

    A row is written once no run can still hold an earlier time: the bound is the smallest
    of each open run's last loaded time and each unopened run's first time.
    """
    import pyarrow.parquet as pq

    source = pq.ParquetFile(runs_file)
    writer = pq.ParquetWriter(out, source.schema_arrow, compression="zstd")
    loaded: dict[int, pl.DataFrame] = {}  # open runs' loaded rows not yet written
    left = {i: list(r.groups) for i, r in enumerate(runs)}  # row groups not yet loaded
    waiting = [(r.first_ts, i) for i, r in enumerate(runs)]  # unopened runs by first time
    heapq.heapify(waiting)
    pending: list[pl.DataFrame] = []
    pending_rows = 0

    def load(i: int) -> None:
        group = pl.from_arrow(source.read_row_group(left[i].pop(0)))
        loaded[i] = pl.concat([loaded[i], group]) if i in loaded else group  # type: ignore[list-item]

    def flush(force: bool = False) -> None:
        nonlocal pending_rows
        if pending and (force or pending_rows >= 4 * group_rows):
            writer.write_table(pl.concat(pending).to_arrow().cast(source.schema_arrow))
            pending.clear()
            pending_rows = 0

    while loaded or waiting:
        frontier = [(frame["ts"][-1], i) for i, frame in loaded.items() if left[i]]
        bound = min([*frontier, *waiting[:1]], default=None)
        parts = []
        for i in sorted(loaded):
            frame = loaded[i]
            cut = frame.height if bound is None else frame["ts"].search_sorted(bound[0], side="left")
            if cut:
                parts.append(frame.head(cut))
                loaded[i] = frame.slice(cut)
            if loaded[i].height == 0 and not left[i]:
                del loaded[i]
        if parts:
            ready = parts[0] if len(parts) == 1 else pl.concat(parts).sort("ts", maintain_order=True)
            pending.append(ready)
            pending_rows += ready.height
            flush()
        if bound is None:
            continue
        for ts, i in frontier:
            if ts == bound[0]:
                load(i)
        while waiting and waiting[0][0] == bound[0]:
            load(heapq.heappop(waiting)[1])
    flush(force=True)
    for g in nulls:
        writer.write_table(source.read_row_group(g))
    writer.close()


def _write_csv(parquet: Path, out: Path, column: Callable[[str, pl.DataType], pl.Expr]) -> None:
    """``parquet`` as CSV, a row group at a time (text cells as :func:`~loglib.present.markup.csv_safe` writes them)."""
    import pyarrow.parquet as pq

    from loglib.present.markup import csv_safe

    source = pq.ParquetFile(parquet)
    with open(out, "wb") as fh:
        for n in range(source.num_row_groups):
            frame = pl.from_arrow(source.read_row_group(n))
            flat = frame.select(column(c, t) for c, t in frame.schema.items())  # type: ignore[union-attr]
            csv_safe(flat).write_csv(fh, include_header=n == 0)


def stream_parse(
    kind: str,
    paths: Sequence[str],
    options: Mapping[str, Any],
    out: Path,
    *,
    to: str = "parquet",
    redact: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    csv_column: Callable[[str, pl.DataType], pl.Expr] | None = None,
    chunk_bytes: int | None = None,
    group_rows: int = GROUP_ROWS,
) -> Streamed:
    """Read ``paths`` with the ``kind`` scanner and write the eager reader's frame to ``out``.

    ``redact`` is applied to every batch (a :class:`~loglib.present.redact.Redactor`'s
    ``frame``); ``chunk_bytes`` sets the reader's chunk size and ``group_rows`` the rows per
    Parquet row group (the merge reads the runs in those). The output is written to a
    temporary file beside ``out`` and renamed when complete.

    Examples
    --------
    >>> from pathlib import Path
    >>> log = b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=a port=1\\n"
    >>> done = stream_parse("postgres", [log], {}, Path("/tmp/pg.parquet"))  # doctest: +SKIP
    >>> done.rows, done.report.lines_read  # doctest: +SKIP
    (1, 1)
    """
    lazy = _scanner(kind)(list(paths), **options, **({"chunk_bytes": chunk_bytes} if chunk_bytes else {}))
    report = read_report(lazy)
    tag = f".{out.name}.{os.getpid()}"
    runs_file, merged_file = out.with_name(tag + ".runs.tmp"), out.with_name(tag + ".merged.tmp")
    writer = _RunWriter(runs_file, group_rows, redact)
    steps = _Steps()
    try:
        try:
            for batch in iter_batches(lazy):
                if batch.height == 0:
                    continue
                steps.add(batch)
                writer.add(batch)
        finally:
            writer.close()
        if writer.rows == 0:
            msg = (
                f"no {_WHAT[kind]} in {', '.join(report.files) or ' '.join(map(str, paths))} "
                f"({report.lines_read} line(s) read, {report.lines_rejected} rejected)"
            )
            raise NoDataError(msg)
        report.notes.extend(steps.finish())
        final = runs_file
        if not writer.in_order:
            _merge(runs_file, writer.runs, writer.nulls, merged_file, group_rows)
            final = merged_file
        if kind == "app":
            from loglib.sources.app import NoTimestampWarning, no_timestamp_note

            missing = pl.scan_parquet(final).select(pl.col("ts").null_count()).collect().item()
            if missing:
                note = no_timestamp_note(missing, writer.rows, report.format)
                report.notes.append(note)
                warnings.warn(note, NoTimestampWarning, stacklevel=2)
        report.rejects = conform(report.rejects, REJECTS).sort("file", "line", maintain_order=True)
        report.entries = writer.rows
        if to == "csv":
            if csv_column is None:
                msg = "to='csv' needs csv_column"
                raise ValueError(msg)
            _write_csv(final, out, csv_column)
        else:
            os.replace(final, out)
    finally:
        for tmp in (runs_file, merged_file):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return Streamed(out, writer.rows, len(writer.schema.names), report, merged=not writer.in_order)


__all__ = ["GROUP_ROWS", "STREAMED", "Streamed", "stream_parse"]
