"""Leaked pool checkouts from pool events (``pool_leaks``, ``pool_leak_sites``, ``pool_leak_rates``)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.core.schema import POOL_LEAKS, UTC_TS, conform
from loglib.core.timeparse import to_timedelta

_KEYS = ("process", "pool", "conn")
_ENDS = ("checkout", "checkin", "detach")


def _check_events(events: pl.DataFrame) -> pl.DataFrame:
    events = to_polars(events)
    missing = {"ts", "event", "conn"} - set(events.columns)
    if missing:
        msg = (
            f"events lacks column(s) {sorted(missing)}: pass the pool_events frame loglib.read_pool_events "
            f"returns (got columns {events.columns[:8]})"
        )
        raise ValueError(msg)
    return events


def _holds(events: pl.DataFrame, end: object | None) -> pl.DataFrame:
    """Every checkout with what ended it (next checkin/detach/checkout of the same connection)."""
    for key in (*_KEYS, "gc", "sample", "backend_pid", "thread", "task", "call_file", "call_line",
                "call_function", "stack", "file", "line"):  # fmt: skip
        if key not in events.columns:
            events = events.with_columns(pl.lit(None).alias(key))
    log_end = end if end is not None else events["ts"].max()
    ordered = (
        events.with_row_index("_order")
        .filter(pl.col("event").is_in(_ENDS))
        .sort(*_KEYS, "ts", "_order", nulls_last=True)
        .with_columns(
            pl.col("event").shift(-1).over(_KEYS).alias("_next"),
            pl.col("ts").shift(-1).over(_KEYS).alias("_next_ts"),
            pl.col("gc").shift(-1).over(_KEYS).alias("_next_gc"),
        )
    )
    return ordered.filter(pl.col("event") == "checkout").with_columns(
        pl.col("ts").alias("checkout_ts"),
        pl.col("_next").is_null().alias("open_at_end"),
        pl.when(pl.col("_next").is_null())
        .then(None)
        .when((pl.col("_next") == "checkin") & pl.col("_next_gc").fill_null(False))
        .then(pl.lit("gc_checkin"))
        .when(pl.col("_next") == "checkout")
        .then(pl.lit("next_checkout"))
        .otherwise(pl.col("_next"))
        .alias("end_event"),
        (pl.col("_next_ts").fill_null(pl.lit(log_end).cast(UTC_TS)) - pl.col("ts"))
        .cast(pl.Duration("us"))
        .alias("held"),
    )


def pool_leaks(
    events: pl.DataFrame,
    *,
    hold_longer_than: str | timedelta = "60s",
    end: object | None = None,
) -> pl.DataFrame:
    """Checkouts never checked in, returned only by the garbage collector, or held too long.

    A checkout ends at the next ``checkin`` or ``detach`` of the same connection (``process``,
    ``pool``, ``conn``). It is a leak when

    * it never ended before the log did (``open_at_end``; ``held`` runs to the log's end), or
    * the garbage collector returned it (``end_event == "gc_checkin"``: nobody closed it), or
    * it was held longer than ``hold_longer_than``.

    Parameters
    ----------
    events
        A ``pool_events`` frame (``read_pool_events``), polars or pandas.
    hold_longer_than
        A checkout held longer than this is listed even though it was returned (``"60s"``,
        ``"5m"``, a ``timedelta``).
    end
        The end of the log, for the ``held`` time of open checkouts (default: the last event).

    Returns
    -------
    polars.DataFrame
        One row per leaked checkout (``loglib.schema.POOL_LEAKS``), oldest first, with the call
        site that took the connection. ``pool_leak_sites`` sums them up per call site.

    Examples
    --------
    >>> import loglib as ll
    >>> log = b"\\n".join([
    ...     b'{"ts":"2024-03-01T10:00:00Z","event":"checkout","conn":1,"call_function":"ok","call_line":3}',
    ...     b'{"ts":"2024-03-01T10:00:01Z","event":"checkin","conn":1}',
    ...     b'{"ts":"2024-03-01T10:00:02Z","event":"checkout","conn":2,"call_function":"leaky","call_line":9}',
    ...     b'{"ts":"2024-03-01T10:05:00Z","event":"checkout","conn":1,"call_function":"ok","call_line":3}',
    ...     b'{"ts":"2024-03-01T10:05:00.5Z","event":"checkin","conn":1}'])
    >>> ll.pool_leaks(ll.read_pool_events(log)).select("conn", "held", "open_at_end", "call_function", "call_line")
    shape: (1, 5)
    ┌──────┬──────────────┬─────────────┬───────────────┬───────────┐
    │ conn ┆ held         ┆ open_at_end ┆ call_function ┆ call_line │
    │ ---  ┆ ---          ┆ ---         ┆ ---           ┆ ---       │
    │ i64  ┆ duration[μs] ┆ bool        ┆ str           ┆ i64       │
    ╞══════╪══════════════╪═════════════╪═══════════════╪═══════════╡
    │ 2    ┆ 4m 58s 500ms ┆ true        ┆ leaky         ┆ 9         │
    └──────┴──────────────┴─────────────┴───────────────┴───────────┘
    """
    events = _check_events(events)
    limit = to_timedelta(hold_longer_than, argument="hold_longer_than")
    if events.height == 0:
        return POOL_LEAKS.empty()
    holds = _holds(events, end)
    leaks = holds.filter(
        pl.col("open_at_end") | (pl.col("end_event") == "gc_checkin") | (pl.col("held") > limit)
    ).sort("checkout_ts", "_order")
    return conform(leaks, POOL_LEAKS)


def pool_leak_sites(leaks: pl.DataFrame) -> pl.DataFrame:
    """Leaked checkouts per call site: who took the connections that never came back.

    Parameters
    ----------
    leaks
        The frame ``pool_leaks`` returned (a ``pool_events`` frame is run through ``pool_leaks``
        with its defaults first).

    Returns
    -------
    polars.DataFrame
        ``call_function``, ``call_file``, ``call_line``, ``leaks`` (count), ``open_at_end``
        (count still open), ``first`` and ``last`` checkout, ``max_held``; most leaks first.

    Examples
    --------
    >>> import loglib as ll
    >>> log = b'{"ts":"2024-03-01T10:00:00Z","event":"checkout","conn":2,"call_function":"leaky","call_line":9}'
    >>> ll.pool_leak_sites(ll.read_pool_events(log)).select("call_function", "call_line", "leaks").rows()
    [('leaky', 9, 1)]
    """
    leaks = to_polars(leaks)
    if "event" in leaks.columns:
        leaks = pool_leaks(leaks)
    return (
        leaks.group_by("call_function", "call_file", "call_line")
        .agg(
            pl.len().cast(pl.Int64).alias("leaks"),
            pl.col("open_at_end").sum().cast(pl.Int64).alias("open_at_end"),
            pl.col("checkout_ts").min().alias("first"),
            pl.col("checkout_ts").max().alias("last"),
            pl.col("held").max().alias("max_held"),
        )
        .sort(["leaks", "call_function", "call_line"], descending=[True, False, False], nulls_last=True)
    )


def pool_leak_rates(
    events: pl.DataFrame,
    *,
    every: str = "1h",
    hold_longer_than: str | timedelta = "60s",
) -> pl.DataFrame:
    """Leaked checkouts per time bucket, from pool events: the most exact leak evidence there is.

    Parameters
    ----------
    events
        A ``pool_events`` frame (``read_pool_events``).
    every
        Bucket width as polars writes durations (``"1m"``, ``"1h"``).
    hold_longer_than
        As in ``pool_leaks``.

    Returns
    -------
    polars.DataFrame
        ``ts`` (bucket start, every bucket from the first to the last event), ``checkouts``
        logged, ``leaked`` (leaked checkouts that started in the bucket), ``leaked_estimate``
        (``leaked`` scaled by the sampling rate), ``method`` (``"pool_events"``) and ``exact``
        (true when every checkout of the bucket was logged, ``sample == 1``).

    Examples
    --------
    >>> import loglib as ll
    >>> log = b'{"ts":"2024-03-01T10:00:00Z","event":"checkout","conn":2,"call_function":"leaky","call_line":9}'
    >>> ll.pool_leak_rates(ll.read_pool_events(log), every="1h").select("ts", "checkouts", "leaked", "exact").rows()
    [(datetime.datetime(2024, 3, 1, 10, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 1, 1, True)]
    """
    events = _check_events(events)
    schema = {"ts": UTC_TS, "checkouts": pl.Int64, "leaked": pl.Int64, "leaked_estimate": pl.Float64,
              "method": pl.String, "exact": pl.Boolean}  # fmt: skip
    if events.height == 0:
        return pl.DataFrame(schema=schema)
    if "sample" not in events.columns:
        events = events.with_columns(pl.lit(None, pl.Float64).alias("sample"))
    events = events.with_columns(pl.col("sample").fill_null(1.0))
    limit = to_timedelta(hold_longer_than, argument="hold_longer_than")
    holds = _holds(events, None).with_columns(
        (pl.col("open_at_end") | (pl.col("end_event") == "gc_checkin") | (pl.col("held") > limit)).alias(
            "leak"
        )
    )
    first, last = events["ts"].min(), events["ts"].max()
    grid = pl.DataFrame({"ts": pl.datetime_range(first, last, every, eager=True, time_zone="UTC")})
    grid = pl.concat([grid, pl.DataFrame({"ts": [last]}, schema={"ts": UTC_TS})])
    grid = grid.select(pl.col("ts").dt.truncate(every)).unique("ts").sort("ts")
    per = holds.group_by(pl.col("checkout_ts").dt.truncate(every).alias("ts")).agg(
        pl.len().cast(pl.Int64).alias("checkouts"),
        pl.col("leak").sum().cast(pl.Int64).alias("leaked"),
        (pl.col("leak").cast(pl.Float64) / pl.col("sample").clip(lower_bound=1e-9))
        .sum()
        .alias("leaked_estimate"),
        (pl.col("sample") >= 1.0).all().alias("exact"),
    )
    return (
        grid.join(per, on="ts", how="left")
        .with_columns(
            pl.col("checkouts", "leaked").fill_null(0),
            pl.col("leaked_estimate").fill_null(0.0),
            pl.col("exact").fill_null(True),
            pl.lit("pool_events").alias("method"),
        )
        .select(list(schema))
        .cast(schema)
    )
