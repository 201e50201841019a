"""The one way a reader becomes lazy: a polars IO source over its batch generator."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

import polars as pl

from loglib.core.rejects import ReadReport, attach_report
from loglib.core.schema import FrameSchema

#: a clock that goes back this far within one file is a step (NTP, a VM restored, a wrong manual set)
CLOCK_STEP = timedelta(seconds=1)


def scan_batches(
    batches: Callable[[ReadReport], Iterator[pl.DataFrame]],
    schema: FrameSchema,
    report: ReadReport,
    name: str,
    sources: Iterable = (),
) -> pl.LazyFrame:
    """A LazyFrame whose rows are ``batches(report)``, produced while a query runs.

    Projection, filter and row-limit pushdowns are applied per batch, so a filtered scan of
    a file larger than memory keeps only what passes. ``report`` is reset at the start of
    every collect and holds the counts of the last one (``loglib.read_report(lazy_frame)``),
    with the notes of ``sources`` (a rotation during the read: where the lines were found).
    """

    notes = list(report.notes)  # what the scan knew before reading (a file reached twice)
    sources = list(sources)

    def fresh() -> Iterator[pl.DataFrame]:
        report.__init__(report.reader)
        report.notes.extend(notes)
        for source in sources:
            source.notes.clear()  # this pass's rotations, not an earlier collect's
        yield from batches(report)
        add_source_notes(report, sources)

    def source(with_columns, predicate, n_rows, batch_size):
        produced = 0
        for batch in fresh():
            if predicate is not None:
                batch = batch.filter(predicate)
            if with_columns is not None:
                batch = batch.select(with_columns)
            if n_rows is not None:
                batch = batch.head(n_rows - produced)
            produced += batch.height
            yield batch
            if n_rows is not None and produced >= n_rows:
                return

    from polars.io.plugins import register_io_source

    lazy = register_io_source(source, schema=schema.polars_schema, explain_name=name)
    key = id(lazy)
    _BATCHES[key] = (weakref.ref(lazy, lambda _ref, key=key: _BATCHES.pop(key, None)), fresh)
    return attach_report(lazy, report)  # type: ignore[arg-type]


_BATCHES: dict[int, tuple[weakref.ref, Callable[[], Iterator[pl.DataFrame]]]] = {}


def iter_batches(lazy: pl.LazyFrame) -> Iterator[pl.DataFrame]:
    """The batches of a loglib ``scan_*`` frame, in file order, read in this thread (no polars
    engine, so no buffering beyond the chunk driver's two chunks in flight).

    Like a collect, it resets the scan's report, which then holds this pass's counts.

    Examples
    --------
    >>> import loglib as ll
    >>> log = b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=a port=1\\n"
    >>> [b.height for b in iter_batches(ll.scan_pg_log(log))]
    [1]
    """
    hit = _BATCHES.get(id(lazy))
    if hit is None or hit[0]() is not lazy:
        msg = "iter_batches takes the LazyFrame of a loglib scan_* function"
        raise TypeError(msg)
    return hit[1]()


def add_source_notes(report: ReadReport, sources: Iterable) -> None:
    """What happened to the files while they were read (a rotation: where the lines were found)."""
    for source in sources:
        report.notes.extend(n for n in getattr(source, "notes", ()) if n not in report.notes)


def collect_batches(
    batches: Iterator[pl.DataFrame],
    schema: FrameSchema,
    sources: list,
    report: ReadReport,
    *,
    what: str,
    raise_if_empty: bool,
) -> pl.DataFrame:
    """The eager read: all batches in one frame, sorted by ``ts`` (ties keep file order).

    An empty result is a :class:`~loglib.errors.NoDataError` naming the files and counts,
    unless ``raise_if_empty=False``.
    """
    from loglib.errors import NoDataError

    parts = list(batches)
    add_source_notes(report, sources)
    frame = pl.concat(parts, rechunk=False) if parts else schema.empty()
    del parts  # the frame shares their buffers: the sort below can free each column as it goes
    if frame.height == 0 and raise_if_empty:
        msg = (
            f"no {what} in {', '.join(s.name for s in sources)} "
            f"({report.lines_read} line(s) read, {report.lines_rejected} rejected); "
            "pass raise_if_empty=False to get an empty frame"
        )
        raise NoDataError(msg)
    ts = frame["ts"]
    in_order = ts.null_count() == 0 and ts.is_sorted()  # one file in time order: no copy needed
    if ts.is_not_null().any() and not in_order:
        report.notes.extend(clock_steps(frame))  # in file order, before the sort hides them
        columns = frame.get_columns()
        del frame, ts  # the columns list is now their only holder: the sort frees each as it goes
        frame = sort_by_ts(columns)
    return frame


def sort_by_ts(columns: list[pl.Series]) -> pl.DataFrame:
    """The frame of ``columns`` sorted by its ``ts`` (nulls last, ties in their order), one
    column at a time.

    ``DataFrame.sort`` builds every sorted column while the unsorted ones are alive (the whole
    frame twice, plus scratch). Here each entry of ``columns`` is replaced by its sorted gather in
    turn, so when the list holds the only references the unsorted buffers go column by column
    and the sort adds about one column. String columns are views: a gather copies the 16-byte
    views, not the text.

    Examples
    --------
    >>> cols = [pl.Series("ts", [2, None, 1, 2]), pl.Series("n", ["a", "b", "c", "d"])]
    >>> sort_by_ts(cols)["n"].to_list()
    ['c', 'a', 'd', 'b']
    """
    ts = next(c for c in columns if c.name == "ts")
    order = ts.to_frame().select(pl.arg_sort_by("ts", nulls_last=True, maintain_order=True)).to_series()
    del ts
    for i, col in enumerate(columns):
        if col.null_count() == col.len():  # all null: no views to keep (a gather would write them)
            columns[i] = pl.repeat(None, col.len(), dtype=col.dtype, eager=True).alias(col.name)
        else:  # a gather of many chunks writes their strings anew; of one, views only
            columns[i] = col.rechunk().gather(order)
        del col
    return pl.DataFrame(columns)


def clock_steps(frame: pl.DataFrame, *, at_least: timedelta = CLOCK_STEP, show: int = 3) -> list[str]:
    """Notes naming where a file's clock steps back by ``at_least`` or more, in file order.

    A step is a line whose time is ``at_least`` before the line above it in the same file
    while the line after it stays back too (one late line among concurrent writers is not a
    step). Eager reads are then sorted by time, so ``file``/``line`` keep the order the lines
    were written in; ``pg_sessions`` pairs a pid's sessions in that order.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = [datetime(2024, 3, 1, 10, m) for m in (0, 59, 0, 1)]
    >>> clock_steps(pl.DataFrame({"ts": t, "file": ["a.log"] * 4, "line": [1, 2, 3, 4]}))[0]
    'a.log:3: the clock steps back 59 min (10:59:00 -> 10:00:00 on 2024-03-01); times are kept as logged, and lines are read in file order'
    """
    if not {"ts", "file", "line"} <= set(frame.columns):
        return []
    steps = step_rows(frame, at_least=at_least)
    return step_notes(steps.head(show), steps.height, at_least=at_least)


def step_rows(frame: pl.DataFrame, *, at_least: timedelta = CLOCK_STEP) -> pl.DataFrame:
    """The rows of :func:`clock_steps` (``ts``, ``file``, ``line``, ``_prev``: the time above),
    with ``_row``, their position in ``frame``."""
    prev, nxt = pl.col("ts").shift(1), pl.col("ts").shift(-1)
    same_prev = (pl.col("file") == pl.col("file").shift(1)).fill_null(False)
    same_next = (pl.col("file") == pl.col("file").shift(-1)).fill_null(False)
    stays_back = ~same_next | (nxt <= prev - at_least).fill_null(True)
    return (
        frame.select("ts", "file", "line")
        .with_row_index("_row")
        .with_columns(
            _prev=prev, _step=same_prev & (pl.col("ts") <= prev - at_least).fill_null(False) & stays_back
        )
        .filter("_step")
        .drop("_step")
    )


def step_notes(shown: pl.DataFrame, total: int, *, at_least: timedelta = CLOCK_STEP) -> list[str]:
    """The notes of :func:`clock_steps`: one per row of ``shown`` (:func:`step_rows`), then how
    many more of ``total`` there were."""
    notes = []
    for r in shown.iter_rows(named=True):
        back = (r["_prev"] - r["ts"]).total_seconds()
        span = (
            f"{back / 3600:.1f} h"
            if back >= 3600
            else f"{back / 60:.0f} min"
            if back >= 60
            else f"{back:.0f} s"
        )
        notes.append(
            f"{r['file']}:{r['line']}: the clock steps back {span} ({r['_prev']:%H:%M:%S} -> {r['ts']:%H:%M:%S} "
            f"on {r['ts']:%Y-%m-%d}); times are kept as logged, and lines are read in file order"
        )
    if total > shown.height:
        notes.append(
            f"… and {total - shown.height} more step(s) back of {at_least.total_seconds():.0f} s or more"
        )
    return notes
