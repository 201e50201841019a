"""Connections leaked per time bucket, from the best evidence there is (``leak_rates``).

Methods, best first:

``pool_events`` (confidence ``high``)
    The pool's own checkout/checkin log (``loglib.pool_leak_rates``, when this loglib has it):
    a checkout never checked in is a leak, exactly.
``checked_out_gauge`` (``medium``)
    The pool's checked-out gauge (a metric named like ``*checked_out*`` / ``*checkedout*`` /
    ``*in_use*``): in-flight requests come and go, leaked connections stay, so the gauge's
    **floor** rises by one per leak. The floor looks *forward* (the least value over the next
    ``floor_window``), so a leak is counted at the sample where it appears, in its own bucket.
    A drop of the floor is a restart or a release, never negative leaks. A series that stops
    being scraped around a restart and comes back lower is a new process, which started with
    nothing checked out: its floor counts from 0 (leaks made while it came up are not lost).
    Buckets where the gauge sat at the pool's capacity are ``saturated``: new leaks could not
    happen or be seen there. A leak in the last sample before the app's final stop (or after
    its last scrape) is taken from the sessions PostgreSQL saw end inside an open transaction
    right after the app's stop line, less those the final floors hold (one row, scope
    ``final stop …``; :mod:`loglib.analysis.stop_leaks`).
``idle_in_transaction_gauge`` (``medium``)
    PostgreSQL's own count of sessions idle in a transaction (postgres_exporter's
    ``pg_stat_activity_count{state="idle in transaction"}`` or ``capture pg-activity``): its
    forward-looking floor rises by one per leak (:mod:`loglib.analysis.idle_tx`).
``pg_sessions`` (``high`` on direct evidence, ``medium`` when sessions are otherwise short, else ``low``)
    PostgreSQL sessions, per application and user, that PostgreSQL saw end inside an open
    transaction (``unexpected EOF on client connection with an open transaction``, an
    idle-in-transaction timeout: the app died holding a checked-out connection — direct
    evidence, no comparison needed), or that were still open at the log's end and lasted far
    longer than that group's clean sessions, or were terminated by an operator
    (``pg_terminate_backend``) after lasting that long. Sessions ended by a server shutdown or a
    plain reset (a middlebox, a restart) are not evidence of a leak. Counted at their last logged activity (a statement
    with ``log_statement``, else their start). A server shutdown ends leaked and pooled sessions
    alike: in a group that leaks, the buckets where such sessions were open are a lower bound
    (``low``; the note says how many more sessions may have been leaks). So is a session that
    ended inside a transaction within the second of its last logged statement: a leak, or a
    request caught mid-way when its app or pooler died. Buckets where the server refused connections
    (``too_many_clients``/``reserved_slots``) are ``saturated``.

In a saturated bucket the leak is **not** reported as stopped: ``leaked`` is null when nothing
could be seen there, or a lower bound (``confidence`` lowered, ``note`` says so) when part of
the bucket was visible.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.align import time_grid
from loglib.analysis.evidence import Evidence, HasEvidence, as_evidence
from loglib.analysis.idle_tx import STAMP, idle_in_transaction_leaks
from loglib.analysis.stop_leaks import (
    StopEvidence,
    final_stop_evidence,
    hidden_leak_row,
    open_transaction_ends,
)
from loglib.core.schema import CHANGE_KINDS, CONFIDENCE_LEVELS, LEAK_RATES, UTC_TS, conform
from loglib.core.timeparse import to_timedelta
from loglib.formats.metric_names import CHECKED_OUT_PATTERN, POOL_SIZE_PATTERN
from loglib.formats.pg_messages import REFUSAL_EVENTS
from loglib.formats.pgbouncer_lines import SERVER_CLOSED_MID_TRANSACTION

#: a session is a leak candidate when it lasted this many times its group's typical clean session
LONG_FACTOR = 20
_METHOD_RANK = {"pool_events": 0, "checked_out_gauge": 1, "pg_sessions": 2, "idle_in_transaction_gauge": 3}
#: every method :func:`leak_rates` knows, best first
METHODS = tuple(_METHOD_RANK)
#: the confidence levels a bucket states (``loglib.schema.CONFIDENCE_LEVELS``)
_NONE, _LOW, _MEDIUM, _HIGH = (pl.lit(level) for level in CONFIDENCE_LEVELS)
#: how far before the app's last line a session end makes its final stop worth looking for
DRAIN_CHECK = timedelta(minutes=1)


def _every(every: str | timedelta) -> str:
    if isinstance(every, timedelta):
        return f"{int(every.total_seconds() * 1_000_000)}us"
    to_timedelta(every, argument="every")
    return every


def gauge_leaks(
    metrics: pl.DataFrame,
    every: str | timedelta = "1h",
    *,
    capacity: float | None = None,
    floor_window: str | timedelta | None = None,
    restarts: pl.Series | None = None,
    pool_timeouts: pl.Series | None = None,
    app_start: datetime | None = None,
    final_stop: StopEvidence | None = None,
) -> pl.DataFrame:
    """Leaks per bucket from the pool's checked-out gauge (the ``checked_out_gauge`` method).

    Parameters
    ----------
    metrics
        A long metrics frame (``read_prometheus``); series whose metric matches
        :data:`loglib.formats.metric_names.CHECKED_OUT_PATTERN` are used, one ``scope`` per series.
    every
        Bucket width.
    capacity
        Connections the pool can hold (``pool_size + max_overflow``). When left out, a
        ``*pool_size*`` series with the same labels is used, else the gauge's own maximum.
    floor_window
        The trailing window of the floor; default four sample intervals (long enough that an
        in-flight request is not mistaken for a leak).
    restarts
        Times of restarts (UTC): where a series drops there, a new process starts from 0.
    pool_timeouts
        Times the app's requests timed out waiting for a connection (UTC). A floor that
        reaches the capacity is the last connection leaked only once requests fail for want
        of it; until then it can be the one connection waiting requests pass between them.
        That last leak counts at the first pool timeout (without pool timeouts: never).
    app_start
        The app's first log line (UTC). A series whose first sample comes less than one floor
        window after it started with its process, with nothing checked out: its first floor
        counts from 0. Otherwise the first floor is what leaked before the evidence began.
    final_stop
        The app's final stop and the sessions it left in a transaction
        (:func:`loglib.analysis.stop_leaks.final_stop_evidence`): those the final floors of the
        series scraped until the stop do not hold are leaks the gauge missed, one extra row
        (:func:`loglib.analysis.stop_leaks.hidden_leak_row`).
    """
    every = _every(every)
    seen_at_stop = 0.0
    m = to_polars(metrics)
    gauges = m.filter(
        pl.col("metric").cast(pl.String).str.contains(CHECKED_OUT_PATTERN) & pl.col("value").is_finite()
    )
    if gauges.height == 0:
        return LEAK_RATES.empty()
    sizes = m.filter(
        pl.col("metric").cast(pl.String).str.contains(POOL_SIZE_PATTERN) & pl.col("value").is_finite()
    )
    marks = restarts.cast(UTC_TS).sort() if restarts is not None and restarts.len() else None
    parts = []
    for (series,), g in gauges.sort("ts").group_by("series", maintain_order=True):
        g = g.select("ts", "value", "labels").unique("ts", keep="last", maintain_order=True).sort("ts")
        step = g["ts"].diff().drop_nulls().median() or timedelta(seconds=15)
        window = to_timedelta(floor_window, argument="floor_window") if floor_window else 4 * step
        cap = capacity
        if cap is None and sizes.height:
            same = sizes.filter(pl.col("labels") == g["labels"][0])
            cap = same["value"].max() if same.height else None
        if cap is None:
            cap = g["value"].max()
        fresh = app_start is not None and g["ts"][0] - app_start <= window
        g = _forward_floor(
            g, step=step, samples=max(1, round(window / step)), restarts=marks, capacity=cap,
            pool_timeouts=pool_timeouts, fresh=fresh,
        )  # fmt: skip
        if final_stop is not None:
            held, since = _held_at_stop(g, final_stop, step=step, capacity=cap)
            seen_at_stop += held
            final_stop = final_stop.with_earliest(since) if since is not None else final_stop
        g = g.with_columns(full=pl.col("value") >= cap)
        full = (
            g.filter(pl.col("ts").is_not_null())
            .group_by(pl.col("ts").dt.truncate(every))
            .agg(pl.col("full").mean().alias("_full"))
        )
        rises = g.group_by(pl.col("rise_at").dt.truncate(every).alias("ts")).agg(
            pl.col("rise").sum().alias("leaked")
        )
        per = full.join(rises, on="ts", how="full", coalesce=True).with_columns(
            pl.col("leaked").fill_null(0.0), pl.col("_full").fill_null(0.0)
        )
        parts.append(per.with_columns(scope=pl.lit(str(series)), _cap=pl.lit(float(cap))))
    out = pl.concat(parts).sort("scope", "ts")
    missed = (
        LEAK_RATES.empty()
        if final_stop is None
        else hidden_leak_row(final_stop, seen=seen_at_stop, every=every)
    )
    hidden = (pl.col("_full") >= 0.999) & (pl.col("leaked") == 0)
    out = out.with_columns(
        saturated=pl.col("_full") > 0,
        method=pl.lit("checked_out_gauge"),
        leaked=pl.when(hidden).then(None).otherwise(pl.col("leaked")),
        confidence=pl.when(hidden).then(_NONE).when(pl.col("_full") > 0).then(_LOW).otherwise(_MEDIUM),
        note=pl.when(hidden)
        .then(pl.lit("pool at capacity the whole bucket: leaks cannot be seen (requests fail instead)"))
        .when(pl.col("_full") > 0)
        .then(
            pl.format(
                "lower bound: pool at capacity ({}) for {}% of the bucket",
                pl.col("_cap").cast(pl.Int64),
                (pl.col("_full") * 100).round(0).cast(pl.Int64),
            )
        )
        .otherwise(pl.lit("rise of the checked-out gauge's floor")),
    )
    return pl.concat([conform(out, LEAK_RATES), missed], how="vertical_relaxed")  # type: ignore[list-item]


def _held_at_stop(
    g: pl.DataFrame, stop: StopEvidence, *, step: timedelta, capacity: float
) -> tuple[float, datetime | None]:
    """Leaks one series' final floor holds at the app's final stop, and the time after which a
    leak its floor misses was made (its second-to-last sample); (0, None) when the series was
    not scraped up to the stop (its process ended before)."""
    samples = g.filter(pl.col("ts").is_not_null()).sort("ts")
    if samples.height == 0 or not (stop.first - 3 * step <= samples["ts"][-1] <= stop.last + step):
        return 0.0, None
    since = samples["ts"][-2] if samples.height > 1 else samples["ts"][-1]
    return float(min(samples["floor"][-1], capacity)), since


def gauge_segments(
    g: pl.DataFrame, *, step: timedelta, samples: int, restarts: pl.Series | None
) -> pl.Series:
    """``_seg`` of each sample of one gauge series: a new segment where its process restarted.

    A process ends where the series stops being scraped (a gap of more than 1.5 steps), or at a
    known restart when the series drops around it: the segment ends at the largest fall among
    the samples from one step before the restart to ``samples`` steps after it (a scrape just
    after the restart may still show the old process). A restart of another process of the same
    app, where this series does not drop, splits nothing.
    """
    split = (g["ts"].diff() > step * 1.5).fill_null(False)
    if restarts is not None and restarts.len():
        span = step * samples
        for r in restarts.unique().sort():
            near = g.filter(pl.col("ts").is_between(r - step * 2, r + span)).with_columns(
                fall=pl.col("value").shift(1) - pl.col("value")
            )
            falls = near.filter(pl.col("ts") >= r - step)
            if falls.height and (falls["fall"].max() or 0) > 0:
                at = falls.sort("fall", descending=True, maintain_order=True)["ts"][0]
                split = split | (g["ts"] == at)
    return split.cum_sum().cast(pl.Int64).alias("_seg")


def _forward_floor(
    g: pl.DataFrame,
    *,
    step: timedelta,
    samples: int,
    restarts: pl.Series | None,
    capacity: float | None = None,
    pool_timeouts: pl.Series | None = None,
    fresh: bool = False,
    from_zero: bool = True,
) -> pl.DataFrame:
    """``g`` (one gauge series: ``ts``, ``value``) with ``floor``, ``rise`` and ``rise_at``.

    The floor is the least value over this sample and the next ``samples - 1`` of the same
    process (:func:`gauge_segments`); over a process's last samples, the least of those left,
    when at least two are (one sample cannot tell a leak from a request in flight). A process
    after a split that starts lower than the one before it is a new process with nothing
    checked out: its first floor is a rise from 0 (so is the series' first, when ``fresh``: it
    began with its process); ``from_zero=False`` for a count shared by several processes (a drop
    leaves the others' leaks). Elsewhere a rise is the floor's increase
    over the previous sample's (drops are releases or restarts, never negative leaks). A leak
    happened between the two samples: ``rise_at`` is their midpoint. A pool at ``capacity`` with
    requests waiting can keep its last connection busy without a pause: the floor's last step to
    the capacity counts at the first of ``pool_timeouts`` while it stays there (requests failing
    is the sign that the last connection is gone too), else not at all.
    """
    n = max(1, samples)
    g = g.with_columns(gauge_segments(g, step=step, samples=n, restarts=restarts))
    floor = pl.col("value").reverse().rolling_min(window_size=n, min_samples=min(2, n)).reverse()
    g = g.with_columns(floor=floor.over("_seg")).with_columns(pl.col("floor").forward_fill())
    g = g.with_columns(pl.col("floor").fill_null(pl.col("floor").backward_fill()).fill_null(0.0))
    ends = g.group_by("_seg", maintain_order=True).agg(
        pl.col("floor").first().alias("_f0"), pl.col("floor").last().alias("_f1")
    )
    new_process = (ends["_f0"] < ends["_f1"].shift(1)) & from_zero
    new_process = new_process.fill_null(fresh)
    g = g.join(ends.select("_seg", new_process.alias("_new")), on="_seg", how="left")
    first_of_seg = (pl.col("_seg") != pl.col("_seg").shift(1)).fill_null(True)
    base = pl.when(first_of_seg & pl.col("_new")).then(0.0).otherwise(pl.col("floor").shift(1))
    prev_ts = pl.col("ts").shift(1).fill_null(pl.col("ts"))
    top = float("inf") if capacity is None or capacity < 1 else capacity - 1
    g = g.with_columns(
        rise=(pl.col("floor").clip(upper_bound=top) - base.clip(upper_bound=top))
        .clip(lower_bound=0)
        .fill_null(0),
        rise_at=prev_ts + (pl.col("ts") - prev_ts) / 2,
        _last=(pl.col("floor") >= top + 1) & ((base < top + 1) | base.is_null()),
    )
    g = g.with_columns(rise=pl.col("rise").cast(pl.Float64))
    if g["_last"].any():
        g = _last_connection(g, prev_ts=prev_ts, top=top, pool_timeouts=pool_timeouts)
    return g.drop("_seg", "_new", "_last")


def _last_connection(
    g: pl.DataFrame, *, prev_ts: pl.Expr, top: float, pool_timeouts: pl.Series | None
) -> pl.DataFrame:
    """Count the step of the floor to the capacity (``_last`` rows) at the first pool timeout
    from the sample before it until the floor leaves the capacity; without one, not at all."""
    g = g.with_columns(_from=prev_ts)
    spell = (pl.col("floor") >= top + 1).rle_id()
    g = g.with_columns(_spell=spell)
    ends = g.group_by("_spell").agg(pl.col("ts").max().alias("_until"))
    g = g.join(ends, on="_spell", how="left")
    fails = pool_timeouts.cast(UTC_TS).sort() if pool_timeouts is not None else pl.Series([], dtype=UTC_TS)
    extra_at: list = []
    for a, b in g.filter(pl.col("_last")).select("_from", "_until").iter_rows():
        first = fails.filter((fails >= a) & (fails <= b))
        extra_at.append(first.min() if first.len() else None)
    extra = pl.DataFrame({"rise_at": extra_at}, schema={"rise_at": UTC_TS}).drop_nulls()
    if extra.height:
        g = pl.concat([g, extra.with_columns(rise=pl.lit(1.0))], how="diagonal_relaxed")
    return g.drop("_from", "_spell", "_until")


def session_leaks(
    events: pl.DataFrame,
    every: str | timedelta = "1h",
    *,
    sessions: pl.DataFrame | None = None,
    mid_transaction: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Leaks per bucket from PostgreSQL sessions that never ended cleanly (the ``pg_sessions`` method).

    A session of an (application, user) group is a leak when it did not end with a clean
    ``disconnection`` and lasted more than ``LONG_FACTOR`` times the group's median clean
    session (and longer than its slowest clean one). Groups without clean sessions (a pool
    that keeps its connections) cannot be told apart from pooling and are left out.

    ``mid_transaction`` (``pid``, ``end``): PostgreSQL sessions that pgBouncer closed because
    their client left inside a transaction (``pgbouncer_sessions``' server sessions with
    :data:`~loglib.formats.pgbouncer_lines.SERVER_CLOSED_MID_TRANSACTION`). PostgreSQL logs a
    plain disconnection for them, so this is the direct evidence pgBouncer alone keeps.
    """
    from loglib.analysis.sessions import pg_sessions

    every = _every(every)
    ev = to_polars(events)
    ss = sessions if sessions is not None else pg_sessions(ev)
    ss = ss.filter(pl.col("end_reason").fill_null("open") != "rejected")
    if ss.height == 0 or ev.height == 0:
        return LEAK_RATES.empty()
    log_end = ev["ts"].max()
    ss = ss.with_columns(
        scope=pl.concat_str(
            pl.col("application").fill_null("?"), pl.col("user").fill_null("?"), separator="/"
        ),
        age=pl.coalesce(pl.col("end"), pl.lit(log_end).cast(UTC_TS)) - pl.col("start"),
        clean=pl.col("end_reason") == "disconnection",
    )
    stats = (
        ss.filter(pl.col("clean"))
        .group_by("scope")
        .agg(
            pl.col("age").median().alias("_typical"),
            pl.col("age").max().alias("_longest"),
            pl.len().alias("_clean"),
        )
    )
    ss = _mark_mid_transaction(ss, mid_transaction)
    # direct evidence: PostgreSQL (or pgBouncer in front of it) saw the session end inside a
    # transaction (the app died holding it)
    ended_in_tx = pl.col("open_transaction").fill_null(False) | pl.col("_mid")
    # one that ended within the second of its last logged statement may be a request caught
    # mid-way (the app or its pooler died under it), not a leak: PostgreSQL's log cannot tell
    sec = lambda c: pl.col(c).dt.truncate("1s")  # noqa: E731
    logged = pl.col("last_activity") > pl.col("start")  # else its statements are not logged
    caught = ended_in_tx & logged & (sec("end") - sec("last_activity") < STAMP)
    ss = ss.with_columns(_caught=caught.fill_null(False))
    direct = ended_in_tx & ~pl.col("_caught")
    by_rule = (
        ~pl.col("clean")
        & (pl.col("open_at_end").fill_null(False) | (pl.col("end_reason") == "admin_termination"))
        & (pl.col("age") > pl.col("_typical") * LONG_FACTOR)
        & (pl.col("age") > pl.col("_longest"))
    )
    cand = (
        ss.join(stats, on="scope", how="left")
        .filter(
            pl.col("start").is_not_null()
            & ~pl.col("started_before_log").fill_null(False)
            & (direct | by_rule.fill_null(False))
        )
        .with_columns(_direct=direct, _at=pl.coalesce(pl.col("last_activity"), pl.col("start")))
    )
    # a server shutdown ends leaked and pooled sessions alike, without saying which was which:
    # in a group that leaks, each such session may have been a leak (a lower bound where they lived)
    maybe = ss.filter(
        (pl.col("end_reason") == "server_shutdown")
        & ~direct
        & pl.col("start").is_not_null()
        & pl.col("scope").is_in(cand["scope"].unique().implode())
    )
    grid = time_grid(ev["ts"].min(), log_end, every)
    undecided = _sessions_per_bucket(maybe, grid, every)
    mid_way = (
        ss.filter(pl.col("_caught"))
        .group_by(pl.col("last_activity").dt.truncate(every).alias("ts"), "scope")
        .agg(pl.len().cast(pl.UInt32).alias("_caught"))
    )
    scopes = pl.concat(
        [stats.select("scope", "_typical", "_clean"), cand.select("scope", "_typical", "_clean")],
        how="vertical_relaxed",
    ).unique("scope", keep="first")
    if cand.height:  # the groups that leak; without any, every group shows its zero
        scopes = scopes.filter(pl.col("scope").is_in(cand["scope"].unique().implode()))
    frame = grid.join(scopes, how="cross")
    counts = cand.group_by(pl.col("_at").dt.truncate(every).alias("ts"), "scope").agg(
        pl.len().alias("n"), pl.col("_direct").all().alias("_all_direct")
    )
    # refusals: the server was full; per bucket, the share of time from first to last refusal
    refused = ev.filter(pl.col("event").is_in(REFUSAL_EVENTS))
    full = _refusal_share(refused, every)
    frame = (
        frame.join(counts, on=["ts", "scope"], how="left")
        .join(full, on="ts", how="left")
        .join(undecided, on=["ts", "scope"], how="left")
        .join(mid_way, on=["ts", "scope"], how="left")
        .with_columns(
            pl.col("n").fill_null(0).cast(pl.Float64),
            pl.col("_full").fill_null(0.0),
            pl.col("_all_direct").fill_null(False),
            pl.col("_maybe").fill_null(0),
            pl.col("_caught").fill_null(0),
        )
    )
    short = pl.col("_typical") < pl.duration(seconds=60)
    exact = (pl.col("n") > 0) & pl.col("_all_direct")
    frame = frame.with_columns(
        method=pl.lit("pg_sessions"),
        saturated=pl.col("_full") > 0,
        leaked=pl.when((pl.col("_full") >= 0.999) & (pl.col("n") == 0)).then(None).otherwise(pl.col("n")),
        confidence=pl.when((pl.col("_full") >= 0.999) & (pl.col("n") == 0))
        .then(_NONE)
        .when((pl.col("_full") > 0) | (pl.col("_maybe") > 0) | (pl.col("_caught") > 0))
        .then(_LOW)
        .when(exact)
        .then(_HIGH)
        .when(short)
        .then(_MEDIUM)
        .otherwise(_LOW),
        note=pl.when((pl.col("_full") >= 0.999) & (pl.col("n") == 0))
        .then(pl.lit("server refused connections the whole bucket: leaks cannot be seen"))
        .when(pl.col("_full") > 0)
        .then(
            pl.format(
                "lower bound: the server refused connections for {}% of the bucket",
                (pl.col("_full") * 100).round(0).cast(pl.Int64),
            )
        )
        .when(pl.col("_maybe") > 0)
        .then(
            pl.format(
                "lower bound: {} more session(s) of this group, open in this bucket, were ended by a server "
                "shutdown, which ends leaked and pooled sessions alike (no sign which were leaks)",
                pl.col("_maybe"),
            )
        )
        .when(pl.col("_caught") > 0)
        .then(
            pl.format(
                "lower bound: {} more session(s) of this group ended inside a transaction within the second of "
                "their last statement: leaks, or requests caught mid-way when their app or pooler died (no sign "
                "which)",
                pl.col("_caught"),
            )
        )
        .when(exact)
        .then(
            pl.lit(
                "sessions PostgreSQL saw end inside an open transaction (direct evidence), by last activity"
            )
        )
        .otherwise(
            pl.format(
                "sessions ended inside a transaction, or still open at the log's end / terminated by an operator "
                "after over {}x the typical clean session; by last activity",
                pl.lit(LONG_FACTOR),
            )
        ),
    )
    return conform(frame.sort("scope", "ts"), LEAK_RATES)  # type: ignore[return-value]


def _mark_mid_transaction(ss: pl.DataFrame, mid: pl.DataFrame | None) -> pl.DataFrame:
    """``ss`` with ``_mid``: pgBouncer closed this session (same pid, end within 5 s) because its
    client left inside a transaction."""
    if mid is None or mid.height == 0 or "pid" not in ss.columns:
        return ss.with_columns(_mid=pl.lit(False))
    near = timedelta(seconds=5)
    keyed = ss.with_row_index("_k")
    hits = (
        keyed.filter(pl.col("end").is_not_null())
        .select("_k", "pid", "end")
        .join(mid.select(pl.col("pid").cast(ss.schema["pid"]), pl.col("end").alias("_pb_end")), on="pid")
        .filter((pl.col("end") - pl.col("_pb_end")).abs() <= near)
    )
    return keyed.with_columns(_mid=pl.col("_k").is_in(hits["_k"].implode())).drop("_k")


def _sessions_per_bucket(sessions: pl.DataFrame, grid: pl.DataFrame, every: str) -> pl.DataFrame:
    """``ts``, ``scope``, ``_maybe``: how many of ``sessions`` were open during each bucket."""
    if sessions.height == 0:
        return pl.DataFrame(schema={"ts": UTC_TS, "scope": pl.String, "_maybe": pl.UInt32})
    width = to_timedelta(every, argument="every")
    spans = sessions.select(
        "scope", pl.col("start").dt.truncate(every).alias("_a"), pl.col("end").alias("_b")
    )
    pairs = grid.join(spans, how="cross").filter(
        (pl.col("ts") >= pl.col("_a")) & (pl.col("ts") < pl.col("_b").fill_null(pl.col("ts") + width))
    )
    return pairs.group_by("ts", "scope").agg(pl.len().alias("_maybe"))


def _refusal_share(refused: pl.DataFrame, every: str) -> pl.DataFrame:
    """Per bucket, the share of time inside spells of refusals (refusals less than 5 minutes apart)."""
    if refused.height == 0:
        return pl.DataFrame(schema={"ts": UTC_TS, "_full": pl.Float64})
    r = refused.select("ts").sort("ts")
    gap = timedelta(minutes=5)
    r = r.with_columns(spell=(pl.col("ts").diff() > gap).fill_null(True).cum_sum())
    spells = r.group_by("spell").agg(pl.col("ts").min().alias("a"), pl.col("ts").max().alias("b"))
    grid = time_grid(r["ts"].min(), r["ts"].max(), every)
    width = grid.with_columns(end=pl.col("ts").dt.offset_by(every))
    rows = width.join(spells, how="cross").with_columns(
        overlap=(pl.min_horizontal("end", "b") - pl.max_horizontal("ts", "a")).clip(lower_bound=timedelta(0)),
        span=pl.col("end") - pl.col("ts"),
    )
    return rows.group_by("ts").agg(
        (pl.col("overlap").sum().dt.total_microseconds() / pl.col("span").first().dt.total_microseconds())
        .clip(upper_bound=1.0)
        .alias("_full")
    )


def _pool_event_rates(frame: pl.DataFrame, every: str) -> pl.DataFrame | None:
    from loglib.analysis.pool import pool_leak_rates

    out = pool_leak_rates(frame, every=every)
    if out.height == 0:
        return None
    exact = pl.col("exact").fill_null(False)
    return conform(
        out.with_columns(
            scope=pl.lit("pool"),
            saturated=pl.lit(False),
            # a sampled log (sample < 1) gives an estimate, scaled back from the sampled checkouts
            leaked=pl.when(exact).then(pl.col("leaked")).otherwise(pl.col("leaked_estimate")),
            method=pl.lit("pool_events"),
            confidence=pl.when(exact).then(_HIGH).otherwise(_MEDIUM),
            note=pl.when(exact)
            .then(pl.lit("checkouts never checked in, from the pool's own event log"))
            .otherwise(pl.lit("estimated from a sampled pool event log")),
        ),
        LEAK_RATES,
    )  # type: ignore[return-value]


def leak_rates(
    incident: Evidence | HasEvidence | None = None,
    every: str | timedelta = "1h",
    *,
    pg: pl.DataFrame | None = None,
    metrics: pl.DataFrame | None = None,
    pool_events: pl.DataFrame | None = None,
    capacity: float | None = None,
    floor_window: str | timedelta | None = None,
    best_only: bool = False,
    method: str | None = None,
    pg_activity: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Connections leaked per bucket, from every kind of evidence there is, best first.

    Parameters
    ----------
    incident
        An :class:`~loglib.Evidence` or an :class:`~loglib.Incident` (its ``.evidence``): its
        ``pool_events``, ``metrics``, ``pg``, restarts and pool
        settings (``[app] pool_size + max_overflow`` is the capacity) are used. Or pass the
        frames themselves with ``pg=``, ``metrics=``, ``pool_events=``.
    every
        Bucket width (``"1h"``: leaks per hour).
    capacity
        The pool's capacity, for the gauge method (overrides the incident's).
    floor_window
        Trailing window of the gauge's floor (see :func:`gauge_leaks`).
    best_only
        Keep only the rows of the best method available.
    method
        Only this method (one of :data:`METHODS`); its rows are empty when its evidence is missing.
    pg_activity
        ``pg_stat_activity`` samples (``loglib capture pg-activity``) for ``idle_in_transaction_gauge``.

    Returns
    -------
    polars.DataFrame
        ``loglib.schema.LEAK_RATES``: ``ts``, ``scope``, ``leaked``, ``method``,
        ``confidence`` (``high`` / ``medium`` / ``low`` / ``none``), ``saturated``, ``note``;
        methods in order ``pool_events``, ``checked_out_gauge``, ``pg_sessions``,
        ``idle_in_transaction_gauge``. The module
        docstring says how each is measured and how sure it is.

    Examples
    --------
    >>> import loglib as ll
    >>> pg = ll.read_pg_log("data/sample-pg/postgresql.log")
    >>> ll.leak_rates(pg=pg, every="1h").select("ts", "leaked", "confidence", "saturated")
    shape: (4, 4)
    ┌─────────────────────────┬────────┬────────────┬───────────┐
    │ ts                      ┆ leaked ┆ confidence ┆ saturated │
    │ ---                     ┆ ---    ┆ ---        ┆ ---       │
    │ datetime[μs, UTC]       ┆ f64    ┆ str        ┆ bool      │
    ╞═════════════════════════╪════════╪════════════╪═══════════╡
    │ 2026-11-21 08:00:00 UTC ┆ 17.0   ┆ low        ┆ true      │
    │ 2026-11-21 09:00:00 UTC ┆ 8.0    ┆ low        ┆ true      │
    │ 2026-11-21 10:00:00 UTC ┆ 8.0    ┆ medium     ┆ false     │
    │ 2026-11-21 11:00:00 UTC ┆ 0.0    ┆ medium     ┆ false     │
    └─────────────────────────┴────────┴────────────┴───────────┘
    """
    every = _every(every)
    if method is not None and method not in _METHOD_RANK:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    wanted = lambda m: method is None or method == m  # noqa: E731
    restarts = app_restarts = pool_timeouts = app_start = final_stop = None
    evidence = None if incident is None else as_evidence(incident)
    if evidence is not None:
        pg = evidence.pg if pg is None else pg
        metrics = evidence.metrics if metrics is None else metrics
        pool_events = evidence.pool_events if pool_events is None else pool_events
        pg_activity = evidence.pg_activity if pg_activity is None else pg_activity
        if capacity is None:
            capacity = evidence.app_settings.capacity
        moments = evidence.events.filter(pl.col("kind").is_in(CHANGE_KINDS))
        restarts = moments["ts"]
        # the app's pool keeps its checked-out count through a database or pooler restart
        app_restarts = moments.filter(~pl.col("origin").fill_null("").is_in(["postgres", "pgbouncer"]))["ts"]
        if evidence.app is not None and "error_class" in evidence.app.columns:
            pool_timeouts = evidence.app.filter(pl.col("error_class") == "pool_timeout")["ts"]
        if evidence.app is not None and evidence.app.height:
            app_start = evidence.app["ts"].min()
            if (metrics is not None or pg_activity is not None) and (
                wanted("checked_out_gauge") or wanted("idle_in_transaction_gauge")
            ):
                final_stop = _final_stop(evidence)
    parts: list[pl.DataFrame] = []
    if pool_events is not None and wanted("pool_events"):
        rates = _pool_event_rates(to_polars(pool_events), every)
        if rates is not None:
            parts.append(rates)
    if metrics is not None and wanted("checked_out_gauge"):
        parts.append(
            gauge_leaks(
                metrics,
                every,
                capacity=capacity,
                floor_window=floor_window,
                restarts=app_restarts,
                pool_timeouts=pool_timeouts,
                app_start=app_start,  # type: ignore[arg-type]
                final_stop=final_stop,
            )
        )
    if (metrics is not None or pg_activity is not None) and wanted("idle_in_transaction_gauge"):
        parts.append(
            idle_in_transaction_leaks(
                metrics=metrics,
                pg_activity=pg_activity,
                every=every,
                restarts=restarts,
                open_tx_ends=_open_tx_ends(evidence),
                final_stop=final_stop,
            )
        )
    if pg is not None and wanted("pg_sessions"):
        sessions = evidence.sessions if evidence is not None else None
        mid = _pgbouncer_mid_transaction(evidence) if evidence is not None else None
        parts.append(session_leaks(pg, every, sessions=sessions, mid_transaction=mid))
    parts = [p for p in parts if p.height]
    if not parts:
        return LEAK_RATES.empty()
    out = pl.concat(parts, how="vertical_relaxed")
    out = out.with_columns(_rank=pl.col("method").replace_strict(_METHOD_RANK, default=9)).sort(
        "_rank", "scope", "ts"
    )
    if best_only:
        out = out.filter(pl.col("_rank") == pl.col("_rank").min())
    return out.drop("_rank")


def _open_tx_ends(evidence: Evidence | None) -> pl.DataFrame | None:
    """Sessions that ended inside an open transaction (None without a PostgreSQL log)."""
    if evidence is None or evidence.sessions is None:
        return None
    return open_transaction_ends(evidence.sessions, _pgbouncer_mid_transaction(evidence))


def _final_stop(evidence: Evidence) -> StopEvidence | None:
    """The app's final stop and the sessions it left in a transaction (None without them)."""
    from loglib.analysis.restarts import final_stops

    sessions, mid = evidence.sessions, _pgbouncer_mid_transaction(evidence)
    end = evidence.app["ts"].max()  # type: ignore[index]
    near = [
        f for f in (sessions, mid) if f is not None and f.filter(pl.col("end") >= end - DRAIN_CHECK).height
    ]
    if not near:  # nothing ended near the app's last line: no need to look for its stop lines
        return None
    return final_stop_evidence(final_stops(evidence.app), sessions, mid)  # type: ignore[arg-type]


def _pgbouncer_mid_transaction(evidence: Evidence) -> pl.DataFrame | None:
    """``pid``, ``end`` of PostgreSQL sessions pgBouncer closed because their client left inside a
    transaction (None without a pgBouncer log)."""
    if evidence.pgbouncer is None or evidence.pgbouncer.height == 0:
        return None
    from loglib.analysis.pgbouncer import pgbouncer_sessions

    pb = pgbouncer_sessions(evidence)
    return pb.filter(
        (pl.col("side") == "server")
        & (pl.col("end_reason") == SERVER_CLOSED_MID_TRANSACTION)
        & pl.col("pg_pid").is_not_null()
    ).select(pid="pg_pid", end="end")
