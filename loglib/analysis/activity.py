"""Questions for ``pg_stat_activity`` samples: connections by state, idle-in-transaction sessions, oldest
transaction (``pg_activity_states``, ``pg_idle_in_transaction``, ``pg_oldest_xact``)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.core.timeparse import to_timedelta

#: state columns of ``pg_activity_states``, in pg_stat_activity's spelling -> column name
STATES = {
    "active": "active",
    "idle": "idle",
    "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
}
_IDLE_TX = ("idle in transaction", "idle in transaction (aborted)")
_HOLDER = ("state", "user", "database", "application", "client_addr", "client_port", "query")


def _check(activity: pl.DataFrame) -> pl.DataFrame:
    activity = to_polars(activity)
    missing = {"ts", "pid", "state", "backend_type"} - set(activity.columns)
    if missing:
        msg = (
            f"activity lacks column(s) {sorted(missing)}: pass the pg_activity frame loglib.read_pg_activity "
            "returns"
        )
        raise ValueError(msg)
    return activity


def pg_activity_states(
    activity: pl.DataFrame,
    *,
    every: str | None = None,
    backend_type: str | None = "client backend",
) -> pl.DataFrame:
    """Connections by state at each sample (or the peak of each bucket), against ``max_connections``.

    Parameters
    ----------
    activity
        A ``pg_activity`` frame (``read_pg_activity``).
    every
        Bucket width (``"1m"``); each column is then the most seen in one sample of the bucket.
        ``None`` keeps one row per sample.
    backend_type
        Count only these backends (default client connections); ``None`` counts every backend.

    Returns
    -------
    polars.DataFrame
        ``ts``, ``total``, ``active``, ``idle``, ``idle_in_transaction``,
        ``idle_in_transaction_aborted``, ``other`` (any other state), ``max_connections`` and
        ``used`` (``total / max_connections``). A sample with no such backend counts zeros.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> import polars as pl
    >>> import loglib as ll
    >>> t = datetime(2024, 3, 1, 10, tzinfo=UTC)
    >>> activity = pl.DataFrame({"ts": [t, t, t], "pid": [1, 2, 3], "max_connections": [20] * 3,
    ...     "backend_type": ["client backend", "client backend", "checkpointer"],
    ...     "state": ["active", "idle in transaction", None]})
    >>> ll.pg_activity_states(activity).select("ts", "total", "active", "idle_in_transaction", "used")
    shape: (1, 5)
    ┌─────────────────────────┬───────┬────────┬─────────────────────┬──────┐
    │ ts                      ┆ total ┆ active ┆ idle_in_transaction ┆ used │
    │ ---                     ┆ ---   ┆ ---    ┆ ---                 ┆ ---  │
    │ datetime[μs, UTC]       ┆ u32   ┆ u32    ┆ u32                 ┆ f64  │
    ╞═════════════════════════╪═══════╪════════╪═════════════════════╪══════╡
    │ 2024-03-01 10:00:00 UTC ┆ 2     ┆ 1      ┆ 1                   ┆ 0.1  │
    └─────────────────────────┴───────┴────────┴─────────────────────┴──────┘
    """
    activity = _check(activity)
    if "max_connections" not in activity.columns:
        activity = activity.with_columns(pl.lit(None, pl.Int32).alias("max_connections"))
    samples = activity.group_by("ts").agg(pl.col("max_connections").max()).sort("ts")
    counted = activity if backend_type is None else activity.filter(pl.col("backend_type") == backend_type)
    counts = counted.group_by("ts").agg(
        pl.len().alias("total"),
        *[(pl.col("state") == state).sum().alias(name) for state, name in STATES.items()],
        (~pl.col("state").is_in(list(STATES)) | pl.col("state").is_null()).sum().alias("other"),
    )
    cols = ["total", *STATES.values(), "other"]
    table = samples.join(counts, on="ts", how="left").with_columns(
        [pl.col(c).fill_null(0).cast(pl.UInt32) for c in cols]
    )
    if every is not None:
        table = (
            table.group_by(pl.col("ts").dt.truncate(every))
            .agg(*[pl.col(c).max() for c in cols], pl.col("max_connections").max())
            .sort("ts")
        )
    return table.select(
        "ts",
        *cols,
        pl.col("max_connections").cast(pl.Int32),
        (pl.col("total") / pl.col("max_connections")).alias("used"),
    )


def pg_idle_in_transaction(
    activity: pl.DataFrame,
    *,
    older_than: str | timedelta = "1m",
) -> pl.DataFrame:
    """Transactions seen idle (``idle in transaction``) for longer than ``older_than``.

    An idle transaction holds its connection, its locks and its snapshot: the usual way a
    leaked session shows on the server.

    Parameters
    ----------
    activity
        A ``pg_activity`` frame (``read_pg_activity``).
    older_than
        The shortest idle time listed (``"30s"``, ``"5m"``, a ``timedelta``), measured at the
        samples as ``ts - state_change``.

    Returns
    -------
    polars.DataFrame
        One row per transaction (``pid``, ``backend_start``, ``xact_start``): ``first_seen`` and
        ``last_seen`` idle in it, ``max_idle``, ``xact_age`` at the last sample, ``samples``,
        ``state`` (last), ``user``, ``database``, ``application``, ``client_addr``,
        ``client_port`` and ``query`` (last, when captured); longest idle first.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> import polars as pl
    >>> import loglib as ll
    >>> t = datetime(2024, 3, 1, 10, tzinfo=UTC)
    >>> activity = pl.DataFrame({"ts": [t, t + timedelta(minutes=2)], "pid": [7, 7],
    ...     "backend_type": "client backend", "state": "idle in transaction",
    ...     "backend_start": t, "xact_start": t, "state_change": t, "application": "api"})
    >>> ll.pg_idle_in_transaction(activity, older_than="1m").select("pid", "max_idle", "samples")
    shape: (1, 3)
    ┌─────┬──────────────┬─────────┐
    │ pid ┆ max_idle     ┆ samples │
    │ --- ┆ ---          ┆ ---     │
    │ i64 ┆ duration[μs] ┆ u32     │
    ╞═════╪══════════════╪═════════╡
    │ 7   ┆ 2m           ┆ 2       │
    └─────┴──────────────┴─────────┘
    """
    activity = _check(activity)
    limit = to_timedelta(older_than, argument="older_than")
    for col in ("backend_start", "xact_start", "state_change", "user", "database", "application",
                "client_addr", "client_port", "query"):  # fmt: skip
        if col not in activity.columns:
            activity = activity.with_columns(pl.lit(None).alias(col))
    idle = activity.filter(pl.col("state").is_in(_IDLE_TX)).with_columns(
        (pl.col("ts") - pl.col("state_change")).cast(pl.Duration("us")).alias("idle")
    )
    return (
        idle.sort("ts")
        .group_by("pid", "backend_start", "xact_start")
        .agg(
            pl.col("ts").min().alias("first_seen"),
            pl.col("ts").max().alias("last_seen"),
            pl.col("idle").max().alias("max_idle"),
            (pl.col("ts").max() - pl.col("xact_start").first()).cast(pl.Duration("us")).alias("xact_age"),
            pl.len().alias("samples"),
            *[pl.col(c).last() for c in _HOLDER],
        )
        .filter(pl.col("max_idle") > limit)
        .sort("max_idle", descending=True)
    )


def pg_oldest_xact(activity: pl.DataFrame, *, every: str | None = None) -> pl.DataFrame:
    """The oldest open transaction at each sample (or the oldest of each bucket), and who holds it.

    Parameters
    ----------
    activity
        A ``pg_activity`` frame (``read_pg_activity``).
    every
        Bucket width (``"1m"``): the oldest transaction seen in the bucket. ``None``: per sample.

    Returns
    -------
    polars.DataFrame
        ``ts``, ``oldest_xact_age`` (null when no transaction was open), and the holder's ``pid``,
        ``state``, ``xact_start``, ``application``, ``user``.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> import polars as pl
    >>> import loglib as ll
    >>> t = datetime(2024, 3, 1, 10, tzinfo=UTC)
    >>> activity = pl.DataFrame({"ts": [t, t, t], "pid": [1, 2, 3], "state": ["active", "idle", None],
    ...     "backend_type": "client backend", "xact_start": [t - timedelta(seconds=90), None, None]})
    >>> ll.pg_oldest_xact(activity).select("ts", "oldest_xact_age", "pid").rows()[0][1:]
    (datetime.timedelta(seconds=90), 1)
    """
    activity = _check(activity)
    for col in ("xact_start", "application", "user"):
        if col not in activity.columns:
            activity = activity.with_columns(pl.lit(None).alias(col))
    ages = activity.with_columns(
        (pl.col("ts") - pl.col("xact_start")).cast(pl.Duration("us")).alias("oldest_xact_age")
    )
    key = pl.col("ts") if every is None else pl.col("ts").dt.truncate(every)
    return (
        ages.sort("oldest_xact_age", descending=True, nulls_last=True)
        .group_by(key.alias("ts"))
        .agg(pl.col("oldest_xact_age", "pid", "state", "xact_start", "application", "user").first())
        .sort("ts")
    )
