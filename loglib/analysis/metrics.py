"""Metric samples from long (one row per sample) to wide (one column per series), resampled on request."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from loglib.core.schema import UTC_TS

AGGREGATIONS = ("last", "mean", "min", "max", "rate")


def _check_long(frame: pl.DataFrame) -> pl.DataFrame:
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if not isinstance(frame, pl.DataFrame):
        msg = f"frame must be a polars DataFrame from loglib.read_prometheus, got {type(frame).__name__}"
        raise TypeError(msg)
    missing = {"ts", "series", "value"} - set(frame.columns)
    if missing:
        msg = (
            f"frame lacks column(s) {sorted(missing)}: pass the long frame loglib.read_prometheus returns "
            f"(columns ts, series, value); got {frame.columns}"
        )
        raise ValueError(msg)
    return frame


def _rate() -> pl.Expr:
    """Per-sample counter increase (a drop is a counter reset: the new value is the increase)."""
    diff = pl.col("value") - pl.col("value").shift(1).over("series")
    return pl.when(diff < 0).then(pl.col("value")).otherwise(diff)


def resample(frame: pl.DataFrame, every: str | timedelta, *, agg: str = "last") -> pl.DataFrame:
    """Long samples to one value per series and ``every``-long bucket (``ts``, ``series``, ``value``).

    Buckets are labelled by their start and cover ``[start, start + every)``. A bucket without
    a sample has no row (:func:`metrics_wide` shows it as null).
    """
    if agg not in AGGREGATIONS:
        msg = f"agg={agg!r} is not one of {', '.join(map(repr, AGGREGATIONS))}"
        raise ValueError(msg)
    frame = _check_long(frame).select("ts", "series", "value").sort("series", "ts")
    if isinstance(every, timedelta):
        every = f"{int(every.total_seconds() * 1_000_000)}us"
    bucket = pl.col("ts").dt.truncate(every).alias("bucket")
    if agg == "rate":
        frame = frame.with_columns(increase=_rate())
        seconds = (pl.col("ts").dt.offset_by(every) - pl.col("ts")).dt.total_microseconds() / 1e6
        out = (
            frame.group_by("series", bucket, maintain_order=True)
            .agg(
                pl.col("increase").drop_nulls().sum().alias("s"),
                pl.col("increase").is_not_null().any().alias("any"),
            )
            .with_columns(value=pl.when(pl.col("any")).then(pl.col("s")).otherwise(None))
            .rename({"bucket": "ts"})
            .with_columns(pl.col("value") / seconds)
        )
    else:
        aggregate = {"last": pl.col("value").last(), "mean": pl.col("value").mean()}.get(agg)
        if aggregate is None:
            aggregate = getattr(pl.col("value"), agg)()
        out = (
            frame.group_by("series", bucket, maintain_order=True)
            .agg(aggregate.alias("value"))
            .rename({"bucket": "ts"})
        )
    return out.select(pl.col("ts").cast(UTC_TS), "series", pl.col("value").cast(pl.Float64))


def metrics_wide(
    frame: pl.DataFrame, every: str | timedelta | None = None, *, agg: str = "last"
) -> pl.DataFrame:
    """One column per series on a time index: for plotting and for aligning with other frames.

    Parameters
    ----------
    frame
        The long frame of :func:`loglib.read_prometheus` (columns ``ts``, ``series``, ``value``).
    every
        Resample to buckets of this length (``"1m"``, ``"15s"``, a ``timedelta``), labelled by
        their start and covering ``[start, start + every)``, on a regular grid from the first
        bucket to the last. Without it, rows are the exact sample times of all series.
    agg
        How a bucket gets its value: ``"last"`` (the default: the bucket's last sample, what a
        gauge shows), ``"mean"``, ``"min"``, ``"max"``, or ``"rate"``: the per-second increase of
        a counter over the bucket (increases between consecutive samples summed, a drop taken as
        a counter reset, divided by the bucket length); a bucket whose only sample is a series'
        first has no rate.

    Returns
    -------
    polars.DataFrame
        ``ts`` then one Float64 column per series, named by its ``series`` key, sorted by name.
        Missing samples are nulls, never zeros: a gap in the data stays a gap in the plot.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timezone
    >>> t = [datetime(2024, 3, 1, 10, 0, s, tzinfo=timezone.utc) for s in (0, 15, 30, 50)]
    >>> long = pl.DataFrame({"ts": t, "series": ["a", "b", "a", "a"], "value": [1.0, 5.0, 2.0, 3.0]})
    >>> ll.metrics_wide(long, every="20s")
    shape: (3, 3)
    ┌─────────────────────────┬─────┬──────┐
    │ ts                      ┆ a   ┆ b    │
    │ ---                     ┆ --- ┆ ---  │
    │ datetime[μs, UTC]       ┆ f64 ┆ f64  │
    ╞═════════════════════════╪═════╪══════╡
    │ 2024-03-01 10:00:00 UTC ┆ 1.0 ┆ 5.0  │
    │ 2024-03-01 10:00:20 UTC ┆ 2.0 ┆ null │
    │ 2024-03-01 10:00:40 UTC ┆ 3.0 ┆ null │
    └─────────────────────────┴─────┴──────┘
    """
    if every is None:
        long = _check_long(frame).select(
            pl.col("ts").cast(UTC_TS), "series", pl.col("value").cast(pl.Float64)
        )
    else:
        long = resample(frame, every, agg=agg)
    if long.height == 0:
        return pl.DataFrame(schema={"ts": UTC_TS})
    if every is None:
        index = long["ts"].unique().sort()
    else:
        step = every if isinstance(every, str) else f"{int(every.total_seconds() * 1_000_000)}us"
        index = pl.datetime_range(
            long["ts"].min(), long["ts"].max(), interval=step, eager=True, time_zone="UTC"
        )
    return _pivot(long, index.cast(UTC_TS))


def _pivot(long: pl.DataFrame, index: pl.Series) -> pl.DataFrame:
    """One column per series (sorted by name) on ``index``: each series' values scattered to its rows.

    Much faster than ``DataFrame.pivot`` for a thousand series, and never aggregates: the
    reader keeps one point per series and time, and resampling one per bucket.
    """
    positions = pl.DataFrame({"ts": index, "row": pl.int_range(0, index.len(), dtype=pl.UInt32, eager=True)})
    rows = long.join(positions, on="ts")
    columns = [index.alias("ts")]
    for (name,), part in sorted(rows.partition_by("series", as_dict=True).items()):
        column = pl.repeat(None, index.len(), dtype=pl.Float64, eager=True).alias(name)
        columns.append(column.scatter(part["row"], part["value"]))
    return pl.DataFrame(columns)
