"""Connection counts per time bucket from PostgreSQL events (``pg_connections``)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.sessions import pg_sessions
from loglib.core.schema import PG_CONNECTIONS

_BY_ALLOWED = ("user", "database", "application", "client_host", "host")


def _by_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    cols = [by] if isinstance(by, str) else list(by)
    bad = [c for c in cols if c not in _BY_ALLOWED]
    if bad:
        msg = f"by={by!r}: {bad[0]!r} is not one of {', '.join(map(repr, _BY_ALLOWED))}"
        raise ValueError(msg)
    return cols


def pg_connections(
    events: pl.DataFrame,
    every: str = "1m",
    by: str | Sequence[str] | None = None,
    *,
    sessions: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """New connections, closed sessions and open connections per time bucket.

    Parameters
    ----------
    events
        A ``pg_events`` frame (``read_pg_log``); polars or pandas.
    every
        Bucket width as polars writes durations (``"1m"``, ``"5m"``, ``"1h"``). Buckets are
        aligned to UTC and cover the log from its first to its last entry, empty ones included.
    by
        Optional breakdown: ``"user"``, ``"database"``, ``"application"``, ``"client_host"``,
        ``"host"`` or a list of them.
    sessions
        ``pg_sessions(events)`` when the caller has them (an Evidence's ``sessions``), so they
        are not paired again; default: paired here (rows without a timestamp left out).

    Returns
    -------
    polars.DataFrame
        ``ts`` (bucket start), the ``by`` columns, ``new_connections`` (``connection received``
        lines, refused attempts included; ``connection authorized`` when the server does not log
        received ones), ``authorized`` (successful logins: what pgBadger counts),
        ``closed`` (sessions that ended), ``open_max`` (most sessions open at once during the
        bucket, from :func:`pg_sessions`) and ``open_end`` (open at the bucket's end). Sessions
        that began before the log count as open from its first entry.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\\n"
    ...        b"2024-03-01 10:00:30 UTC [8] LOG:  connection received: host=10.0.0.5 port=5001\\n"
    ...        b"2024-03-01 10:01:10 UTC [7] LOG:  disconnection: session time: 0:01:10.000 user=a database=b host=10.0.0.5 port=5000\\n")
    >>> ll.pg_connections(ll.read_pg_log(log), every="1m")
    shape: (2, 6)
    ┌─────────────────────────┬─────────────────┬────────────┬────────┬──────────┬──────────┐
    │ ts                      ┆ new_connections ┆ authorized ┆ closed ┆ open_max ┆ open_end │
    │ ---                     ┆ ---             ┆ ---        ┆ ---    ┆ ---      ┆ ---      │
    │ datetime[μs, UTC]       ┆ u32             ┆ u32        ┆ u32    ┆ u32      ┆ u32      │
    ╞═════════════════════════╪═════════════════╪════════════╪════════╪══════════╪══════════╡
    │ 2024-03-01 10:00:00 UTC ┆ 2               ┆ 0          ┆ 0      ┆ 2        ┆ 2        │
    │ 2024-03-01 10:01:00 UTC ┆ 0               ┆ 0          ┆ 1      ┆ 2        ┆ 1        │
    └─────────────────────────┴─────────────────┴────────────┴────────┴──────────┴──────────┘
    """
    raw = to_polars(events)
    keys = _by_list(by)
    ev = raw.filter(pl.col("ts").is_not_null())
    out_columns = ["ts", *keys, *(c for c in PG_CONNECTIONS.names if c != "ts")]
    if ev.height == 0:
        return pl.DataFrame(schema={c: PG_CONNECTIONS.polars_schema.get(c, pl.String) for c in out_columns})
    first, last = ev["ts"].min(), ev["ts"].max()
    grid = pl.DataFrame({"ts": pl.datetime_range(first, last, every, eager=True, time_zone="UTC")})
    grid = grid.with_columns(pl.col("ts").dt.truncate(every)).unique("ts", maintain_order=True)
    if grid["ts"][-1] < pl.select(pl.lit(last).dt.truncate(every)).item():
        grid = pl.concat([grid, pl.DataFrame({"ts": [last]}).with_columns(pl.col("ts").dt.truncate(every))])
    start_of_log = grid["ts"][0]

    # new connections: received lines, or authorized ones where received are not logged
    has_received = (ev["event"] == "connection_received").any()
    new_event = "connection_received" if has_received else "connection_authorized"
    if sessions is None:
        # with no row dropped the pairing is the incident's own (pg_sessions remembers it: an
        # Evidence's sessions are not paired again); rows without a time are not paired here
        sessions = pg_sessions(raw if ev.height == raw.height else ev)
    else:
        sessions = to_polars(sessions)
    if keys:
        # a received line has no user/database yet: count the sessions it opened instead
        new = (
            sessions.filter(~pl.col("started_before_log") & pl.col("start").is_not_null())
            .group_by(pl.col("start").dt.truncate(every).alias("ts"), *keys)
            .agg(pl.len().alias("new_connections"))
        )
    else:
        new = (
            ev.filter(pl.col("event") == new_event)
            .group_by(pl.col("ts").dt.truncate(every))
            .agg(pl.len().alias("new_connections"))
        )
    authorized = (
        ev.filter(pl.col("event") == "connection_authorized")
        # the events' keys are Categorical, the sessions' text: grouped as the sessions hold them
        .group_by(pl.col("ts").dt.truncate(every), *(pl.col(k).cast(sessions.schema[k]) for k in keys))
        .agg(pl.len().alias("authorized"))
    )
    closed = (
        sessions.filter(pl.col("end").is_not_null())
        .group_by(pl.col("end").dt.truncate(every).alias("ts"), *keys)
        .agg(pl.len().alias("closed"))
    )
    # concurrency: +1 at start, -1 at end; at equal times ends go first
    starts = sessions.select(
        *keys,
        pl.coalesce(pl.col("start"), pl.lit(start_of_log)).clip(lower_bound=start_of_log).alias("ts"),
        pl.lit(1, dtype=pl.Int64).alias("delta"),
    )
    ends = sessions.filter(pl.col("end").is_not_null()).select(
        *keys,
        pl.col("end").clip(lower_bound=start_of_log).alias("ts"),
        pl.lit(-1, dtype=pl.Int64).alias("delta"),
    )
    deltas = pl.concat([starts, ends]).sort(*keys, "ts", "delta")
    deltas = deltas.with_columns(
        running=pl.col("delta").cum_sum().over(keys) if keys else pl.col("delta").cum_sum()
    )
    per_bucket = deltas.group_by(pl.col("ts").dt.truncate(every), *keys).agg(
        pl.col("running").max().alias("_max"), pl.col("running").last().alias("_end")
    )
    if keys:
        groups = sessions.select(keys).unique()
        frame = grid.join(groups, how="cross")
    else:
        frame = grid
    frame = (
        frame.join(new, on=["ts", *keys], how="left")
        .join(authorized, on=["ts", *keys], how="left")
        .join(closed, on=["ts", *keys], how="left")
        .join(per_bucket, on=["ts", *keys], how="left")
        .sort(*keys, "ts")
    )
    fill = pl.col("_end").forward_fill()
    carried = fill.shift(1)
    if keys:
        fill = fill.over(keys)
        carried = pl.col("_end").forward_fill().shift(1).over(keys)
    frame = frame.with_columns(
        pl.col("new_connections").fill_null(0),
        pl.col("authorized").fill_null(0),
        pl.col("closed").fill_null(0),
        open_end=fill.fill_null(0),
        open_max=pl.max_horizontal(pl.col("_max"), carried).fill_null(0),
    )
    frame = frame.sort("ts", *keys).select(
        pl.col("ts"),
        *keys,
        pl.col("new_connections").cast(pl.UInt32),
        pl.col("authorized").cast(pl.UInt32),
        pl.col("closed").cast(pl.UInt32),
        pl.col("open_max").clip(lower_bound=0).cast(pl.UInt32),
        pl.col("open_end").clip(lower_bound=0).cast(pl.UInt32),
    )
    return frame
