"""Leaks seen by PostgreSQL itself: sessions that go idle in a transaction and never come back.

The ``idle_in_transaction_gauge`` method of :func:`loglib.leak_rates`. A connection checked out and
abandoned on an error path sits ``idle in transaction`` until its process dies; a request's own
transaction is idle only for the moments between its statements. So the count of sessions idle
in a transaction has a **floor** that rises by one per leak. The floor here looks *forward*: the
least count over the next :data:`WINDOW_SAMPLES` samples, so a leak is counted at the sample it
appears and a request caught between two statements is never taken for one. A drop is leaked
sessions ending (the app restarted), never negative leaks; a rise after it is new leaks.

Evidence: postgres_exporter's ``pg_stat_activity_count{state="idle in transaction"}`` (one
scope per database and server), or ``loglib capture pg-activity`` samples (``pg_activity``).

Example
-------
>>> import polars as pl
>>> from datetime import datetime, timedelta, timezone
>>> from loglib.analysis.idle_tx import idle_in_transaction_leaks
>>> t0 = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
>>> counts = [0, 1, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]          # a blip, then two leaks
>>> m = pl.DataFrame({"ts": [t0 + timedelta(seconds=15 * i) for i in range(13)],
...     "metric": "pg_stat_activity_count", "value": [float(c) for c in counts],
...     "series": 'pg_stat_activity_count{datname="shop", state="idle in transaction"}'})
>>> idle_in_transaction_leaks(metrics=m)["leaked"].sum()
2.0
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.stop_leaks import DRAIN, StopEvidence
from loglib.core.schema import CONFIDENCE_LEVELS, LEAK_RATES, UTC_TS, conform

#: a leaked session stays idle in its transaction for at least this many samples (one minute at
#: postgres_exporter's usual 15 s scrape)
WINDOW_SAMPLES = 4
METHOD = "idle_in_transaction_gauge"
_LOW, _MEDIUM = (pl.lit(level) for level in CONFIDENCE_LEVELS[1:3])
#: the coarsest stamp of a PostgreSQL log (``%t``: whole seconds): a session idle in its
#: transaction across one is not a request between two statements
STAMP = timedelta(seconds=1)
_IDLE_TX = r'state="idle in transaction"'


def idle_in_transaction_series(
    metrics: pl.DataFrame | None = None, pg_activity: pl.DataFrame | None = None
) -> pl.DataFrame:
    """``ts``, ``scope``, ``value``: sessions idle in a transaction per sample, from either source."""
    parts = []
    if metrics is not None:
        m = to_polars(metrics)
        if m.height and "series" in m.columns:
            g = m.filter(
                pl.col("metric").cast(pl.String).str.contains("pg_stat_activity_count")
                & pl.col("series").cast(pl.String).str.contains(_IDLE_TX, literal=True)
                & pl.col("value").is_finite()
            )
            parts.append(g.select("ts", pl.col("series").cast(pl.String).alias("scope"), "value"))
    if pg_activity is not None:
        a = to_polars(pg_activity)
        if a.height and "state" in a.columns:
            scope = pl.format("pg_activity {}", pl.col("database").fill_null("?"))
            sampled = a.group_by("ts", scope.alias("scope")).agg(
                pl.col("state").str.starts_with("idle in transaction").sum().cast(pl.Float64).alias("value")
            )
            parts.append(sampled)
    if not parts:
        return pl.DataFrame(schema={"ts": UTC_TS, "scope": pl.String, "value": pl.Float64})
    out = pl.concat([p.with_columns(pl.col("ts").cast(UTC_TS)) for p in parts], how="vertical_relaxed")
    return out.unique(["scope", "ts"], keep="last").sort("scope", "ts")


def idle_in_transaction_leaks(
    *,
    metrics: pl.DataFrame | None = None,
    pg_activity: pl.DataFrame | None = None,
    every: str | timedelta = "1h",
    window_samples: int = WINDOW_SAMPLES,
    restarts: pl.Series | None = None,
    open_tx_ends: pl.DataFrame | None = None,
    final_stop: StopEvidence | None = None,
) -> pl.DataFrame:
    """Leaks per bucket from the count of sessions idle in a transaction (a ``LEAK_RATES`` frame).

    ``confidence`` is ``medium``: the gauge sees every leak that outlives ``window_samples``
    samples, but a leak and a release in the same interval cancel out. ``restarts`` (times of the
    app's, PostgreSQL's or pgBouncer's restarts): where the count drops there, the leaked sessions
    ended; the samples before it are their last (two suffice), so leaks a restart ended soon
    after they began are still counted. PostgreSQL's count covers every process, so a drop
    leaves the others' leaks: rises after it count from where it fell.

    The last samples before a drop or the end cannot fill the window, so the floor there is a
    guess; sessions that ended inside an open transaction settle it
    (``open_tx_ends``, :func:`loglib.analysis.stop_leaks.open_transaction_ends`). At a drop, the
    sessions that ended in a transaction from a step before its last sample to the next were leaks held
    until it: with statements logged, those idle in it across a whole second (the count's last
    sample can be a scrape old, so it does not bound them); without, up to that sample's count.
    The floor rises to that. At the app's final stop (``final_stop``), the
    sessions left in a transaction are the leaks still held: the tail's rises are replaced by
    the rise to that count (none when it left none).
    """
    from loglib.analysis.leaks import _every, _forward_floor, gauge_segments

    every = _every(every)
    series = idle_in_transaction_series(metrics, pg_activity)
    if series.height == 0:
        return LEAK_RATES.empty()
    n = max(1, int(window_samples))
    marks = restarts.cast(UTC_TS).sort() if restarts is not None and restarts.len() else None
    parts = []
    for (scope,), one in series.group_by("scope", maintain_order=True):
        one = one.select("ts", "value").sort("ts")
        step = one["ts"].diff().drop_nulls().median() or timedelta(seconds=15)
        # forward-looking floor per stretch between restarts (the least count over this sample
        # and the next n-1), as the checked-out gauge's
        one = one.with_row_index("_i").with_columns(
            gauge_segments(one, step=step, samples=n, restarts=marks).alias("_part")
        )
        g = _forward_floor(one, step=step, samples=n, restarts=marks, from_zero=False)  # type: ignore[arg-type]
        g = g.sort("_i")
        if open_tx_ends is not None:
            g = _settle_tails(g, open_tx_ends, final_stop, samples=n, step=step)
        if "_maybe" not in g.columns:
            g = g.with_columns(_maybe=pl.lit(0, dtype=pl.Int64))
        parts.append(g.select(pl.lit(str(scope)).alias("scope"), "rise", "rise_at", "_maybe"))
    g = pl.concat(parts)
    per = g.group_by(pl.col("rise_at").dt.truncate(every).alias("ts"), "scope").agg(
        pl.col("rise").sum().alias("leaked"), pl.col("_maybe").fill_null(0).sum()
    )
    maybe = pl.col("_maybe") > 0
    out = per.with_columns(
        method=pl.lit(METHOD),
        saturated=pl.lit(False),
        confidence=pl.when(maybe).then(_LOW).otherwise(_MEDIUM),
        note=pl.when(maybe)
        .then(
            pl.format(
                "lower bound: {} more session(s) ended inside a transaction at a restart within the second of "
                "their last statement (or without statements logged): leaks, or requests caught mid-way "
                "(PostgreSQL's log cannot tell)",
                pl.col("_maybe"),
            )
        )
        .otherwise(
            pl.format(
                "rises of the least count of sessions idle in a transaction over {} samples (PostgreSQL's own view)",
                pl.lit(n),
            )
        ),
    )
    return conform(out.sort("scope", "ts"), LEAK_RATES)  # type: ignore[return-value]


def _settle_tails(
    g: pl.DataFrame, ends: pl.DataFrame, stop: StopEvidence | None, *, samples: int, step: timedelta
) -> pl.DataFrame:
    """``g`` (``ts``, ``value``, ``floor``, ``rise``, ``rise_at``, ``_part``) with each stretch's
    tail settled by the sessions that ended inside an open transaction after it (see
    :func:`idle_in_transaction_leaks`)."""
    parts = g["_part"].unique(maintain_order=True).to_list()
    extra: list[tuple] = []  # (rise_at, rise, sessions that may have been leaks too)
    cuts: dict[int, int] = {}  # stretch -> rises after this sample of it are settled by the stop
    for k, part in enumerate(parts):
        seg = g.filter(pl.col("_part") == part)
        if k + 1 < len(parts):  # a drop: sessions that ended between its last sample and the next
            upto = g.filter(pl.col("_part") == parts[k + 1])["ts"][0]
            idle, unknown, busy = _ended_idle(ends, seg["ts"][-1] - step, upto)
            taken = min(unknown, max(0.0, seg["value"][-1] - idle))
            rise = idle + taken - seg["floor"][-1]
            if rise > 0 or busy or unknown > taken:
                extra.append((seg["rise_at"][-1], float(max(rise, 0)), int(busy + unknown - taken)))
            continue
        if stop is None:
            continue
        # the app's final stop: the samples up to it (the count falls after it, or the series ends)
        before = seg.filter(pl.col("ts") <= stop.first)
        if before.height == 0 or before["ts"][-1] < stop.first - 3 * step:
            continue
        full = before.height - samples  # the last sample before the stop whose window was full
        base = before["floor"][full] if full >= 0 else before["floor"][-1]
        if full >= 0:
            cuts[part] = full
        rise = stop.open_tx - base
        if rise > 0:
            extra.append((before["rise_at"][-1], float(rise), 0))
    if cuts:
        at = pl.int_range(pl.len()).over("_part")
        cut = pl.col("_part").replace_strict(cuts, default=None, return_dtype=pl.Int64)
        settled = cut.is_not_null() & (at > cut) & (pl.col("ts") <= stop.last + DRAIN)  # type: ignore[union-attr]
        g = g.with_columns(rise=pl.when(settled).then(0.0).otherwise(pl.col("rise")))
    if extra:
        schema = {"rise_at": UTC_TS, "rise": pl.Float64, "_maybe": pl.Int64}
        add = pl.DataFrame(extra, schema=schema, orient="row")
        g = pl.concat([g, add], how="diagonal_relaxed")
    return g


def _ended_idle(ends: pl.DataFrame, after: datetime, upto: datetime) -> tuple[int, int, int]:
    """Sessions that ended inside an open transaction at a drop (after ``after``, one step before
    its last sample, whose value can be a scrape old, until the next sample, ``upto``): those whose
    statements are logged and that sat idle in it across a whole second (:data:`STAMP`, the
    coarsest PostgreSQL stamp) before they ended (a request between two statements is idle for
    milliseconds), those whose statements are not logged (unknown), and those whose last statement
    came within the same second (busy: a request caught mid-way, or a leak made that second)."""
    hit = ends.filter((pl.col("end") > after) & (pl.col("end") <= upto))
    sec = lambda c: pl.col(c).dt.truncate("1s")  # noqa: E731
    idle = hit.filter(pl.col("last_activity").is_not_null() & (sec("end") - sec("last_activity") >= STAMP))
    n_idle = idle["pid"].n_unique()
    n_unknown = hit.filter(pl.col("last_activity").is_null())["pid"].n_unique()
    return n_idle, n_unknown, hit["pid"].n_unique() - n_idle - n_unknown
