"""The one way a reader becomes lazy: a polars IO source over its batch generator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import polars as pl

from loglib.core.rejects import ReadReport, attach_report
from loglib.core.schema import FrameSchema


def scan_batches(
    batches: Callable[[ReadReport], Iterator[pl.DataFrame]],
    schema: FrameSchema,
    report: ReadReport,
    name: str,
) -> pl.LazyFrame:
    """A LazyFrame whose rows are ``batches(report)``, produced while a query runs.

    Projection, filter and row-limit pushdowns are applied per batch, so a filtered scan of
    a file larger than memory keeps only what passes. ``report`` is reset at the start of
    every collect and holds the counts of the last one (``loglib.read_report(lazy_frame)``).
    """

    def source(with_columns, predicate, n_rows, batch_size):
        report.__init__(report.reader)
        produced = 0
        for batch in batches(report):
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
    return attach_report(lazy, report)  # type: ignore[arg-type]


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
    frame = pl.concat(parts, rechunk=False) if parts else schema.empty()
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
        frame = frame.sort("ts", maintain_order=True, nulls_last=True)
    return frame
