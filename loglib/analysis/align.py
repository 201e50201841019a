"""One wide frame on a common UTC grid: app errors, PostgreSQL connections and metrics side by side.

Column naming rule (the aligned frame is wide and its columns depend on the evidence):

* ``ts`` -- bucket start (UTC); buckets cover ``[ts, ts + every)``.
* ``app:events``, ``app:errors`` -- application events, and those at level error/critical.
* ``app:<error_class>`` -- application events of that ``error_class`` (``app:pool_timeout``).
* ``pg:new``, ``pg:closed`` -- connections received and sessions ended (``pg_connections``).
* ``pg:open``, ``pg:open_max`` -- sessions open at the bucket's end, and the most open at once.
* ``pg:<event>`` -- PostgreSQL entries of that ``event`` (``pg:client_reset``, ``pg:too_many_clients``),
  every kind but ``other`` and the connection lines already counted by ``pg:new``/``pg:closed``.
* ``metric:<series>`` -- each metric series by its ``series`` key (``metric:db_pool_checked_out{...}``).
* ``event:<kind>`` -- incident events (deploy, restart, ...) in the bucket.

Fill rules, by column kind:

* **counts** (``app:*``, ``pg:new``, ``pg:closed``, ``pg:<event>``, ``event:*``): an empty bucket is
  ``0``, inside the source's own time range; outside it (the source had not started or had
  ended) the count is null, because nothing was observed there.
* **PostgreSQL open sessions** (``pg:open``, ``pg:open_max``): a state, carried forward from the
  last bucket with a connection event inside the log's range; null outside it.
* **gauges** (``metric:*``): the last sample at or before the bucket's end, if it is no older than
  ``staleness`` (default ``5m``, Prometheus' own lookback); otherwise null. Never interpolated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.connections import pg_connections
from loglib.core.schema import UTC_TS
from loglib.core.timeparse import to_timedelta

#: PostgreSQL events that pg:new / pg:closed already count
_PG_CONNECTION_LINES = (
    "connection_received",
    "connection_authenticated",
    "connection_authorized",
    "disconnection",
)


def _duration_text(every: str | timedelta) -> str:
    if isinstance(every, timedelta):
        return f"{int(every.total_seconds() * 1_000_000)}us"
    to_timedelta(every, argument="every")
    return every


def _bounds(
    frames: Sequence[pl.DataFrame | None], column: str = "ts"
) -> tuple[datetime | None, datetime | None]:
    lows, highs = [], []
    for frame in frames:
        if frame is None or frame.height == 0 or column not in frame.columns:
            continue
        col = frame[column].drop_nulls()
        if col.len():
            lows.append(col.min())
            highs.append(col.max())
    return (min(lows) if lows else None, max(highs) if highs else None)


def time_grid(start: datetime, end: datetime, every: str | timedelta) -> pl.DataFrame:
    """Bucket starts from ``start`` (truncated to ``every``) through ``end``, as a one-column ``ts`` frame."""
    every = _duration_text(every)
    first = pl.select(pl.lit(start).cast(UTC_TS).dt.truncate(every)).item()
    last = pl.select(pl.lit(end).cast(UTC_TS)).item()
    return pl.DataFrame({"ts": pl.datetime_range(first, last, every, eager=True, time_zone="UTC")}).select(
        pl.col("ts").cast(UTC_TS)
    )


def _counts(frame: pl.DataFrame, key: str, prefix: str, every: str) -> pl.DataFrame:
    if frame.height == 0:
        return pl.DataFrame(schema={"ts": UTC_TS})
    return (
        frame.filter(pl.col(key).is_not_null() & pl.col("ts").is_not_null())
        .group_by(pl.col("ts").dt.truncate(every), pl.col(key))
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .with_columns((pl.lit(prefix) + pl.col(key)).alias(key))
        .pivot(on=key, index="ts", values="n", sort_columns=True)
    )


def _in_range(grid: pl.DataFrame, frame: pl.DataFrame | None, every: str) -> pl.Expr:
    low, high = _bounds([frame])
    if low is None:
        return pl.lit(False)
    low = pl.lit(low).cast(UTC_TS).dt.truncate(every)
    return (pl.col("ts") >= low) & (pl.col("ts") <= pl.lit(high).cast(UTC_TS))


def _fill_counts(out: pl.DataFrame, columns: list[str], in_range: pl.Expr) -> pl.DataFrame:
    if not columns:
        return out
    return out.with_columns(
        pl.when(in_range).then(pl.col(c).fill_null(0)).otherwise(pl.col(c)).cast(pl.Int64).alias(c)
        for c in columns
    )


def align(
    *,
    app: pl.DataFrame | None = None,
    pg: pl.DataFrame | None = None,
    metrics: pl.DataFrame | None = None,
    events: pl.DataFrame | None = None,
    every: str | timedelta = "1m",
    start: datetime | None = None,
    end: datetime | None = None,
    staleness: str | timedelta = "5m",
    sessions: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Put every source on one UTC grid: one row per ``every`` bucket, one column per measure.

    Parameters
    ----------
    app
        An ``app_events`` frame (``read_app_log``): ``app:events``, ``app:errors`` and one
        ``app:<error_class>`` count column per class seen.
    pg
        A ``pg_events`` frame (``read_pg_log``): ``pg:new``, ``pg:closed``, ``pg:open``,
        ``pg:open_max`` and one ``pg:<event>`` count column per event kind seen.
    metrics
        A long ``metrics`` frame (``read_prometheus``): one ``metric:<series>`` gauge column per series.
    events
        An ``incident_events`` frame: one ``event:<kind>`` count column per kind.
    every
        Bucket width, as polars writes durations (``"1m"``, ``"10s"``).
    start, end
        The window (UTC datetimes); by default from the earliest to the latest timestamp of
        all sources. Rows outside it are left out.
    staleness
        How old a metric sample may be and still stand for a bucket (see the fill rules).
    sessions
        ``pg_sessions(pg)`` when the caller has them (an Evidence's), so they are not paired again.

    Returns
    -------
    polars.DataFrame
        ``ts`` and the columns named by the rule in this module's docstring; count columns
        are ``Int64``, gauges ``Float64``, ``pg:open``/``pg:open_max`` ``Int64``. Count columns
        are 0 for empty buckets inside their source's time range, null outside it; gauges are
        the last sample no older than ``staleness``, else null.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:05 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\\n"
    ...        b"2024-03-01 10:02:10 UTC [7] LOG:  disconnection: session time: 0:02:05.000 user=a "
    ...        b"database=b host=10.0.0.5 port=5000\\n")
    >>> ll.align(pg=ll.read_pg_log(log), every="1m")
    shape: (3, 5)
    ┌─────────────────────────┬────────┬───────────┬─────────┬─────────────┐
    │ ts                      ┆ pg:new ┆ pg:closed ┆ pg:open ┆ pg:open_max │
    │ ---                     ┆ ---    ┆ ---       ┆ ---     ┆ ---         │
    │ datetime[μs, UTC]       ┆ i64    ┆ i64       ┆ i64     ┆ i64         │
    ╞═════════════════════════╪════════╪═══════════╪═════════╪═════════════╡
    │ 2024-03-01 10:00:00 UTC ┆ 1      ┆ 0         ┆ 1       ┆ 1           │
    │ 2024-03-01 10:01:00 UTC ┆ 0      ┆ 0         ┆ 1       ┆ 1           │
    │ 2024-03-01 10:02:00 UTC ┆ 0      ┆ 1         ┆ 0       ┆ 1           │
    └─────────────────────────┴────────┴───────────┴─────────┴─────────────┘
    """
    every = _duration_text(every)
    stale = to_timedelta(staleness, argument="staleness")
    app = to_polars(app) if app is not None else None
    pg = to_polars(pg) if pg is not None else None
    metrics = to_polars(metrics) if metrics is not None else None
    events = to_polars(events) if events is not None else None
    if start is None or end is None:
        low, high = _bounds([app, pg, metrics, events])
        if low is None:
            msg = "align() needs at least one non-empty source (app=, pg=, metrics= or events=) or start= and end="
            raise ValueError(msg)
        start = start or low
        end = end or high
    if start > end:
        msg = f"start={start} is after end={end}"
        raise ValueError(msg)
    grid = time_grid(start, end, every)
    out = grid
    window = (pl.col("ts") >= pl.lit(start).cast(UTC_TS)) & (pl.col("ts") <= pl.lit(end).cast(UTC_TS))

    if app is not None:
        app_w = app.filter(window)
        totals = (
            app_w.filter(pl.col("ts").is_not_null())
            .group_by(pl.col("ts").dt.truncate(every))
            .agg(
                pl.len().cast(pl.Int64).alias("app:events"),
                pl.col("level").is_in(["error", "critical"]).sum().cast(pl.Int64).alias("app:errors"),
            )
        )
        classes = _counts(app_w, "error_class", "app:", every)
        out = out.join(totals, on="ts", how="left").join(classes, on="ts", how="left")
        cols = ["app:events", "app:errors", *(c for c in classes.columns if c != "ts")]
        out = _fill_counts(out, cols, _in_range(grid, app, every))

    if pg is not None:
        pg_range = _in_range(grid, pg, every)
        if pg.height:
            conns = pg_connections(pg, every=every, sessions=sessions).select(
                "ts",
                pl.col("new_connections").cast(pl.Int64).alias("pg:new"),
                pl.col("closed").cast(pl.Int64).alias("pg:closed"),
                pl.col("open_end").cast(pl.Int64).alias("pg:open"),
                pl.col("open_max").cast(pl.Int64).alias("pg:open_max"),
            )
            out = out.join(conns, on="ts", how="left")
        else:
            out = out.with_columns(
                pl.lit(None, pl.Int64).alias(c) for c in ("pg:new", "pg:closed", "pg:open", "pg:open_max")
            )
        out = _fill_counts(out, ["pg:new", "pg:closed"], pg_range)
        out = out.with_columns(
            pl.when(pg_range).then(pl.col(c).forward_fill()).otherwise(None).alias(c)
            for c in ("pg:open", "pg:open_max")
        )
        kinds = _counts(
            pg.filter(window & ~pl.col("event").is_in([*_PG_CONNECTION_LINES, "other"])),
            "event",
            "pg:",
            every,
        )
        out = out.join(kinds, on="ts", how="left")
        out = _fill_counts(out, [c for c in kinds.columns if c != "ts"], pg_range)

    if metrics is not None and metrics.height:
        out = out.join(_gauges(metrics, grid, every, stale), on="ts", how="left")

    if events is not None and events.height:
        kinds = _counts(events.filter(window), "kind", "event:", every)
        out = out.join(kinds, on="ts", how="left")
        out = out.with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in kinds.columns if c != "ts")

    return out.sort("ts")


def _gauges(metrics: pl.DataFrame, grid: pl.DataFrame, every: str, stale: timedelta) -> pl.DataFrame:
    """Last sample at or before each bucket's end, no older than ``stale``, per series (wide)."""
    samples = metrics.select(pl.col("ts").cast(UTC_TS), "series", pl.col("value").cast(pl.Float64)).sort("ts")
    series = samples["series"].unique(maintain_order=True).sort()
    probe = (
        grid.join(pl.DataFrame({"series": series}), how="cross")
        .with_columns(
            (pl.col("ts").dt.offset_by(every) - pl.duration(microseconds=1)).alias("_at"),
        )
        .sort("_at")
    )
    joined = probe.join_asof(
        samples.rename({"ts": "_at"}),
        on="_at",
        by="series",
        strategy="backward",
        tolerance=stale,
        check_sortedness=False,
    )
    wide = (
        joined.with_columns((pl.lit("metric:") + pl.col("series")).alias("series"))
        .pivot(on="series", index="ts", values="value", sort_columns=True)
        .sort("ts")
    )
    return wide
