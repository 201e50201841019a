"""Pool exhaustion and leaks: when the pool (or the server) was full, what failed, how fast it leaked,
what size fits (``detect``), what to change (``recommend``) and the charts that show it.

>>> import loglib as ll
>>> from loglib.analysis.findings import pool_exhaustion
>>> inc = ll.Incident.load("data/incidents/pool-exhaustion")
>>> [f.kind for f in pool_exhaustion.detect(inc.evidence)]
['pool_exhaustion']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib.analysis.evidence import AppSettings, Evidence, PostgresSettings
from loglib.analysis.findings.finding import Finding
from loglib.analysis.leaks import gauge_segments, leak_rates
from loglib.core.schema import CHANGE_KINDS, CONFIDENCE_LEVELS
from loglib.core.timeparse import to_timedelta
from loglib.formats.metric_names import CHECKED_OUT_PATTERN
from loglib.formats.pg_messages import REFUSAL_EVENTS

#: the finding kind this module detects
KIND = "pool_exhaustion"
#: the charts that show this finding's evidence (``loglib.charts`` names)
CHARTS: tuple[str, ...] = ("pool_utilisation", "db_connections")

#: app error classes that mean "no connection could be had"
EXHAUSTION_CLASSES = ("pool_timeout", "too_many_connections")
#: at least this many failures make a finding
MIN_FAILURES = 3
#: failures closer than this belong to one window
WINDOW_GAP = timedelta(minutes=2)
#: after a restart, a pause this long in the failures ends the window (the new process starts afresh)
RESTART_PAUSE = timedelta(seconds=5)
#: a restart this long before the last failure still belongs to the pause after it
RESTART_SLACK = timedelta(seconds=10)
#: headroom over the p99 of observed concurrency in the recommendation
HEADROOM = 1.25
#: the buffer of the rule of thumb ``pool_size = workers × 2 + buffer`` (the seed write-up's 20),
#: shown beside the measured size for comparison, never used for it
RULE_OF_THUMB_BUFFER = 20
#: requests arriving independently keep a Poisson number of connections busy: size for this
#: quantile of it (at the mean demand's upper bound), so a quiet sample is not a pool of one
DEMAND_QUANTILE = 0.999


def _windows(ts: pl.Series, cuts: pl.Series | None = None) -> pl.DataFrame:
    """Failures less than ``WINDOW_GAP`` apart form one window. A restart or deploy (``cuts``) ends
    the window at the first pause in the failures (over ``RESTART_PAUSE``) after it: requests in
    flight while the old process stops still fail, and the emptied pool fills again afresh."""
    frame = pl.DataFrame({"ts": ts.sort()})
    new = pl.col("ts").diff() > WINDOW_GAP
    if cuts is not None and cuts.len():
        marks = cuts.cast(frame["ts"].dtype).sort()
        prev = frame["ts"].shift(1)
        upto = pl.Series(marks.search_sorted(frame["ts"], side="right"))
        before = pl.Series(marks.search_sorted((prev - RESTART_SLACK).fill_null(frame["ts"][0]), side="left"))
        frame = frame.with_columns(_restart_between=(upto - before) > 0)
        new = new | ((pl.col("ts").diff() > RESTART_PAUSE) & pl.col("_restart_between"))
    frame = frame.with_columns(w=new.fill_null(True).cum_sum())
    return (
        frame.group_by("w")
        .agg(pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end"), pl.len().alias("failures"))
        .sort("start")
    )


def _concurrency(inc: Evidence, windows: pl.DataFrame) -> tuple[float | None, float | None, str]:
    """Peak and p99 of concurrent checkouts by requests (leaks excluded), outside the full windows."""
    outside = pl.lit(True)
    for start, end in windows.select("start", "end").iter_rows():
        outside = outside & ~pl.col("ts").is_between(start, end)
    busy = _gauge_requests(inc, windows)
    if busy is not None and busy.height:
        return (
            float(busy["busy"].max()),
            float(busy["busy"].quantile(0.99)),
            "checked-out gauge minus its floor, per process",
        )
    s = inc.sessions
    if s is not None and s.height:
        # sessions that closed cleanly are requests' connections: their overlap is the concurrency
        clean = s.filter((pl.col("end_reason") == "disconnection") & pl.col("start").is_not_null())
        if clean.height:
            d = pl.concat(
                [
                    clean.select(pl.col("start").alias("ts"), pl.lit(1).alias("d")),
                    clean.select(pl.col("end").alias("ts"), pl.lit(-1).alias("d")),
                ]
            ).sort("ts", "d")
            d = d.with_columns(open=pl.col("d").cum_sum()).filter(outside)
            if d.height:
                return (
                    float(d["open"].max()),
                    float(d["open"].quantile(0.99)),
                    "PostgreSQL sessions that closed cleanly",
                )
    return None, None, ""


def _full_spans(inc: Evidence, windows: pl.DataFrame) -> tuple[list[tuple[datetime, datetime]], str]:
    """How long each window had its pool full, and from what.

    With the pool's checked-out gauge and a known capacity: each failure window joined with the
    spans where a process's gauge sat at the capacity around it (edges at the midpoints of the
    samples either side), since a full pool with nobody waiting fails no request but is still
    full. Otherwise the failures' own span, first to last: a lower bound.
    """
    spans = [(a, b) for a, b in windows.select("start", "end").iter_rows()]
    cap = inc.app_settings.capacity
    m = inc.metrics
    if not cap or m is None or m.height == 0:
        return spans, "first to last failure (a lower bound)"
    g = m.filter(
        pl.col("metric").cast(pl.String).str.contains(CHECKED_OUT_PATTERN) & pl.col("value").is_finite()
    )
    if g.height == 0:
        return spans, "first to last failure (a lower bound)"
    full: list[tuple[datetime, datetime]] = []
    for _, one in g.sort("ts").group_by("series", maintain_order=True):
        one = one.select("ts", "value").unique("ts", keep="last").sort("ts")
        one = one.with_columns(
            _a=pl.col("ts").shift(1).fill_null(pl.col("ts")),
            _b=pl.col("ts").shift(-1).fill_null(pl.col("ts")),
            _full=pl.col("value") >= cap,
        ).with_columns(_run=pl.col("_full").rle_id())
        runs = (
            one.filter("_full")
            .group_by("_run")
            .agg(
                (pl.col("_a").first() + (pl.col("ts").first() - pl.col("_a").first()) / 2).alias("s"),
                (pl.col("ts").last() + (pl.col("_b").last() - pl.col("ts").last()) / 2).alias("e"),
            )
        )
        full += list(runs.select("s", "e").iter_rows())
    out = []
    for a, b in spans:
        for s, e in full:
            if s <= b and e >= a:  # a full span of the gauge overlaps this window of failures
                a, b = min(a, s), max(b, e)
        out.append((a, b))
    return out, "the checked-out gauge at the pool's capacity, joined with the failures"


def _poisson_quantile(mean: float, q: float) -> int:
    """The least k with P(X ≤ k) ≥ q for X ~ Poisson(mean) (connections busy at once).

    The terms are summed from their logarithms: ``exp(-mean)`` is 0.0 in floating point from a
    mean of about 745, and a sum of zeros never reaches ``q``.

    >>> _poisson_quantile(0.4, 0.999), _poisson_quantile(0.0, 0.999), _poisson_quantile(5.0, 0.999)
    (3, 0, 13)
    >>> _poisson_quantile(1000.0, 0.999)
    1099
    """
    if mean <= 0:
        return 0
    k, log_term = 0, -mean
    total = math.exp(log_term)
    while total < q:
        k += 1
        log_term += math.log(mean / k)
        total += math.exp(log_term)
    return k


def _outside(windows: pl.DataFrame, col: str = "ts") -> pl.Expr:
    keep = pl.lit(True)
    for start, end in windows.select("start", "end").iter_rows():
        keep = keep & ~pl.col(col).is_between(start, end)
    return keep


#: clean PostgreSQL sessions this short mean one connection per request (no pool): they are holds
PER_REQUEST_SESSION = timedelta(seconds=5)


def _demand(inc: Evidence, windows: pl.DataFrame) -> tuple[float | None, float | None, float, str] | str:
    """Mean connections busy with requests, outside the full windows, from request-scoped holds.

    Returns ``(checkouts per second, mean hold in s, mean busy, source)``, or the reason there is
    no request-scoped evidence. Sources, best first: the pool's own event log (every checkout and
    its checkin: Little's law); the checked-out gauge minus its floor (the floor is the leaked
    connections); PostgreSQL sessions only when the app opens one per request (clean sessions
    shorter than ``PER_REQUEST_SESSION``). A pool's sessions live as long as the pool and are
    never taken for request holds.
    """
    events = inc.pool_events
    if events is not None and events.height:
        from loglib.analysis.pool import _holds

        holds = _holds(events, None).filter(
            (pl.col("end_event") == "checkin") & _outside(windows, "checkout_ts")
        )
        return _littles(holds["checkout_ts"], holds["held"], windows, "pool events (Little's law)")
    served = _served_requests(inc, windows)
    if served is not None:
        return _littles(
            served["_start"], served["_held"], windows,
            "access-line durations of served requests (Little's law; a request holds its connection "
            "at most that long: an upper bound)",
        )  # fmt: skip
    busy = _gauge_busy(inc, windows)
    if busy is not None:
        return None, None, busy, "the checked-out gauge minus its floor (leaked connections excluded)"
    s = inc.sessions
    if s is not None and s.height:
        clean = s.filter((pl.col("end_reason") == "disconnection") & pl.col("start").is_not_null())
        clean = clean.filter(_outside(windows, "start"))
        if clean.height >= 2 and clean["duration"].median() <= PER_REQUEST_SESSION:
            return _littles(
                clean["start"], clean["duration"], windows, "per-request PostgreSQL sessions (Little's law)"
            )
    return (
        "no request-scoped holds in the evidence (pool events, the checked-out gauge, or per-request "
        "PostgreSQL sessions); a pool's long-lived sessions say nothing about demand"
    )


#: this many served requests with a duration in their access line make it a demand source
MIN_SERVED = 20


def _served_requests(inc: Evidence, windows: pl.DataFrame) -> pl.DataFrame | None:
    """Requests answered 2xx/3xx whose access line says how long they took, started outside the
    full windows: ``_start`` and ``_held`` (their duration). Requests that failed waiting for a
    connection held none and are left out; so are the leaking ones (they failed too)."""
    app = inc.app
    if app is None or "http_duration_s" not in app.columns or "http_status" not in app.columns:
        return None
    served = (  # lazy: only ts and the two http columns are read (an eager filter copied every column)
        app.lazy()
        .filter(
            pl.col("http_duration_s").is_not_null()
            & (pl.col("http_status") < 400)
            & pl.col("ts").is_not_null()
        )
        .select(
            _start=pl.col("ts") - pl.duration(microseconds=(pl.col("http_duration_s") * 1e6).cast(pl.Int64)),
            _held=pl.duration(microseconds=(pl.col("http_duration_s") * 1e6).cast(pl.Int64)),
        )
        .collect()
    )
    served = served.filter(_outside(windows, "_start")).sort("_start")
    return served if served.height >= MIN_SERVED else None


def _littles(times: pl.Series, held: pl.Series, windows: pl.DataFrame, source: str):
    if times.len() < 2:
        return f"too few holds in {source}"
    span = (times.max() - times.min()).total_seconds()
    full = sum(
        (min(e, times.max()) - max(st, times.min())).total_seconds()
        for st, e in windows.select("start", "end").iter_rows()
        if e > times.min() and st < times.max()
    )
    busy_span = span - max(0.0, full)
    if busy_span <= 0:
        return f"no time outside the full windows in {source}"
    rate = times.len() / busy_span
    hold = float(held.dt.total_microseconds().mean() / 1e6)
    return rate, hold, rate * hold, source


def _gauge_requests(inc: Evidence, windows: pl.DataFrame) -> pl.DataFrame | None:
    """``series``, ``ts``, ``busy``: the checked-out gauge minus its floor, per process, outside the
    full windows and where the leaks did not hold every connection (requests got none there)."""
    m = inc.metrics
    if m is None or m.height == 0:
        return None
    g = m.filter(
        pl.col("metric").cast(pl.String).str.contains(CHECKED_OUT_PATTERN) & pl.col("value").is_finite()
    )
    if g.height == 0:
        return None
    restarts = inc.events.filter(pl.col("kind").is_in(CHANGE_KINDS))["ts"].cast(g["ts"].dtype).sort()
    cap = inc.app_settings.capacity
    parts = []
    for (series,), one in g.sort("ts").group_by("series", maintain_order=True):
        one = one.select("ts", "value").unique("ts", keep="last").sort("ts")
        step = one["ts"].diff().drop_nulls().median() or timedelta(seconds=15)
        seg = gauge_segments(one, step=step, samples=4, restarts=restarts)  # type: ignore[arg-type]
        # the floor looks forward (this sample and the next three) within one process: a leak
        # raises it at once, so only the connections requests hold stay above it
        fwd = pl.col("value").reverse().rolling_min(window_size=4, min_samples=1).reverse().over("_seg")
        one = one.with_columns(seg).with_columns(_floor=fwd)
        outside = one.filter(_outside(windows, "ts"))
        if cap:
            outside = outside.filter(pl.col("_floor") < cap)
        parts.append(
            outside.select(pl.lit(str(series)).alias("series"), "ts", busy=pl.col("value") - pl.col("_floor"))
        )
    return pl.concat(parts) if parts else None


def _gauge_busy(inc: Evidence, windows: pl.DataFrame) -> float | None:
    """Mean of (checked-out gauge − its forward floor) outside the full windows, summed over the
    app's processes: the connections requests held, the leaked ones (the floor) left out."""
    busy = _gauge_requests(inc, windows)
    if busy is None:
        return None
    return float(busy.group_by("series").agg(pl.col("busy").mean())["busy"].sum())


def _carry_limit(cfg: AppSettings, pgs: PostgresSettings) -> tuple[int, str] | None:
    """The most connections the app can hold at once, and what says so, or None when unknown.

    The pools' capacity counts only when ``[app] instances`` is set (an undeclared second process
    would hold more); the server's slots for ordinary roles bound it in any case.

    >>> _carry_limit(AppSettings(pool_size=5, max_overflow=1, instances=2), PostgresSettings())
    (12, 'what the pools can hold: (5+1) × 1 worker(s) × 2 instance(s)')
    >>> _carry_limit(AppSettings(pool_size=5), PostgresSettings(max_connections=20))
    (20, "the server's 20 slot(s) for ordinary roles")
    """
    limits = []
    if cfg.capacity is not None and cfg.instances is not None:
        workers = cfg.workers or 1
        limits.append((
            cfg.capacity * workers * cfg.instances,
            f"what the pools can hold: ({cfg.pool_size}+{max(0, cfg.max_overflow or 0)}) × {workers} "
            f"worker(s) × {cfg.instances} instance(s)",
        ))  # fmt: skip
    if pgs.app_slots is not None:
        limits.append((pgs.app_slots, f"the server's {pgs.app_slots} slot(s) for ordinary roles"))
    return min(limits, key=lambda c: c[0]) if limits else None


def _app_run(app: pl.DataFrame) -> tuple[datetime, datetime] | None:
    """The app's run time in the evidence: its first to its last timestamped line."""
    ts = app["ts"].drop_nulls()
    return (ts.min(), ts.max()) if ts.len() else None


def _span_text(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {sec} s" if minutes else f"{sec} s"


#: the overall leak rate's denominator without an app log (``summarize_leaks``' per hour)
NO_APP_RATE_OVER = "leaks ÷ the hours from the first to the last bucket with a leak (no app log)"


def overall_leak_rate(
    total: float, app: pl.DataFrame | None, fallback: float | None
) -> tuple[float | None, str]:
    """The overall leak rate and its denominator in words: leaks ÷ the app's run time (its first
    to its last timestamped line), else (no app log) ``fallback`` over :data:`NO_APP_RATE_OVER`.

    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    >>> app = pl.DataFrame({"ts": [t0, t0 + timedelta(minutes=45)]})
    >>> overall_leak_rate(18, app, None)
    (24.0, "leaks ÷ the app's run time, 10:00:00–10:45:00 UTC (45 min 0 s, its first to its last log line)")
    """
    run = _app_run(app) if app is not None and app.height else None
    if run is None or run[1] <= run[0]:
        return fallback, NO_APP_RATE_OVER
    seconds = (run[1] - run[0]).total_seconds()
    over = (
        f"leaks ÷ the app's run time, {run[0]:%H:%M:%S}–{run[1]:%H:%M:%S} UTC "
        f"({_span_text(seconds)}, its first to its last log line)"
    )
    return round(total / (seconds / 3600), 1), over


def rate_words(numbers: dict[str, Any]) -> str:
    """``", about 24 per hour (leaks ÷ the app's run time)"``: a finding's overall leak rate with
    its denominator, short, for a recommendation ("" without a rate)."""
    rate = numbers.get("leaks_per_hour")
    if not rate:
        return ""
    over = str(numbers.get("leaks_per_hour_over") or "").split(", ")[0]
    return f", about {rate:g} per hour" + (f" ({over})" if over else "")


def summarize_leaks(rates: pl.DataFrame, every: str | timedelta = "1h") -> dict[str, Any]:
    """Headline figures of a ``leak_rates`` frame (its best method): total, per hour while leaking, saturation.

    ``leaks_per_hour`` is the total over the visible buckets from the first to the last one
    with a leak (saturated buckets, whose leaks could not be seen, are left out).
    ``confidence`` is the weakest of the buckets with a leak, so it never claims more than the
    leak table at any bucket size.
    """
    if rates.height == 0:
        return {}
    best = rates.filter(pl.col("method") == rates["method"][0])
    per_ts = (
        best.group_by("ts")
        .agg(pl.col("leaked").sum().alias("leaked"), pl.col("leaked").is_null().all().alias("hidden"))
        .sort("ts")
    )
    leaking = per_ts.filter(pl.col("leaked") > 0)
    step = every if isinstance(every, timedelta) else to_timedelta(every, argument="every")
    hours = step.total_seconds() / 3600
    total = float(per_ts["leaked"].sum())
    per_hour = 0.0
    if leaking.height:
        span = per_ts.filter(
            pl.col("ts").is_between(leaking["ts"].min(), leaking["ts"].max()) & ~pl.col("hidden")
        )
        per_hour = total / (span.height * hours)
    return {
        "method": best["method"][0],
        "leaked_total": total,
        "leaks_per_hour": round(per_hour, 1),
        "saturated_buckets": int(best["saturated"].sum()),
        "confidence": _weakest(best.filter(pl.col("leaked") > 0)["confidence"].to_list()),
    }


def _weakest(levels: list[str]) -> str:
    """The least sure of the buckets a total adds up: a sum is only as sure as its weakest part.

    So the finding and every leak table (whatever its bucket) state the same confidence.

    >>> _weakest(["high", "low", "medium"]), _weakest([])
    ('low', 'none')
    """
    known = [level for level in levels if level in CONFIDENCE_LEVELS]
    return min(known, key=CONFIDENCE_LEVELS.index) if known else "none"


def detect(inc: Evidence) -> list[Finding]:
    """Windows where no connection could be had, with the leak rate and a pool size recommendation.

    Fires when at least ``MIN_FAILURES`` app errors of class ``pool_timeout`` /
    ``too_many_connections`` or PostgreSQL refusals (``too_many_clients``, ``reserved_slots``)
    occurred; failures less than ``WINDOW_GAP`` apart form one window, and a restart or deploy
    between two failures ends the window. The recommendation is
    ``ceil(p99 concurrent checkouts × 1.25)``, with concurrency measured outside the windows
    and without leaked connections; it is compared with the configured pool and, times
    ``workers × instances``, with PostgreSQL's ``max_connections``. Little's law (checkout
    rate × mean hold time, from pool events or clean sessions) gives the mean demand beside it.
    """
    parts = []
    app, pg = inc.app, inc.pg
    if app is not None and app.height:
        parts.append(
            app.filter(
                pl.col("error_class").is_in(list(EXHAUSTION_CLASSES)) & pl.col("ts").is_not_null()
            ).select("ts", pl.lit("app").alias("source"), pl.col("error_class").alias("what"), "file", "line")
        )
    if pg is not None and pg.height:
        parts.append(
            pg.filter(pl.col("event").is_in(list(REFUSAL_EVENTS)) & pl.col("ts").is_not_null()).select(
                "ts", pl.lit("postgres").alias("source"), pl.col("event").alias("what"), "file", "line"
            )
        )
    evidence = pl.concat(parts) if parts else pl.DataFrame()
    if evidence.height < MIN_FAILURES:
        return []
    evidence = evidence.sort("ts")
    restarts = inc.events.filter(pl.col("kind").is_in(CHANGE_KINDS))["ts"]
    windows = _windows(evidence["ts"], restarts)
    full, full_from = _full_spans(inc, windows)
    full_s = float(sum((e - s).total_seconds() for s, e in full))
    app_fail = int((evidence["source"] == "app").sum())
    pg_fail = int((evidence["source"] == "postgres").sum())
    start, end = inc.window()
    every = f"{max(1, round((end - start).total_seconds() / 40))}s"  # about 40 buckets over the incident
    rates = leak_rates(inc, every=every)
    leaks = summarize_leaks(rates, every)
    if leaks.get("leaked_total") is not None:
        leaks["leaks_per_hour"], leaks["rate_over"] = overall_leak_rate(
            leaks["leaked_total"], app, leaks.get("leaks_per_hour")
        )
    peak, p99, conc_from = _concurrency(inc, windows)
    cfg = inc.app_settings
    pgs = inc.postgres_settings
    numbers: dict = {
        "windows": windows.height,
        "full_s": round(full_s, 3),
        "full_s_from": full_from,
        "pool_timeouts": int((evidence["what"] == "pool_timeout").sum()),
        "app_refusals": int((evidence["what"] == "too_many_connections").sum()),
        "server_refusals": pg_fail,
        "pool_size": cfg.pool_size,
        "max_overflow": cfg.max_overflow,
        "capacity": cfg.capacity,
        "max_connections": pgs.max_connections,
        "leaks_per_hour": leaks.get("leaks_per_hour"),
        "leaks_per_hour_over": leaks.get("rate_over"),
        "leaked_total": leaks.get("leaked_total"),
        "leak_method": leaks.get("method"),
        "leak_confidence": leaks.get("confidence"),
        "peak_concurrent": peak,
        "p99_concurrent": p99,
        "concurrency_from": conc_from or None,
    }
    first, last = windows["start"].min(), windows["end"].max()
    where = "pool" if app_fail >= pg_fail else "database server"
    sentences = [
        f"The {where} ran out of connections in {windows.height} window(s) between "
        f"{first:%H:%M:%S} and {last:%H:%M:%S} UTC: {app_fail} application request(s) failed waiting for a "
        f"connection and PostgreSQL refused {pg_fail} connection(s)."
    ]
    if leaks.get("leaked_total"):
        sentences.append(
            f"Connections leaked: {leaks['leaked_total']:g} in all, {leaks['leaks_per_hour']:g} per hour "
            f"({leaks['rate_over']}; {leaks['method']}, {leaks['confidence']} confidence); a leak, not load, "
            "filled it."
        )
    demand = _demand(inc, windows)
    if isinstance(demand, str):
        numbers["demand_from"] = demand
        sentences.append(f"Demand is not measured: {demand}.")
    else:
        rate, hold, busy, demand_from = demand
        carry = _carry_limit(cfg, pgs)
        if carry is not None and busy > carry[0]:
            # more busy than the connections can hold: the holds measured include waiting for one
            numbers["mean_busy_uncapped"] = round(busy, 3)
            busy, demand_from = float(carry[0]), f"{demand_from}; capped at {carry[0]}, {carry[1]}"
        numbers.update(mean_busy_littles_law=round(busy, 3), demand_from=demand_from)
        if rate is not None and hold is not None:
            numbers.update(request_rate_per_s=round(rate, 4), mean_hold_s=round(hold, 4))
            what = "served requests/s" if demand_from.startswith("access-line") else "checkouts/s"
            product = rate * hold
            said = f"{product:.2g}" if product <= busy else f"{product:.2g}, so at most {busy:.2g}"
            sentences.append(
                f"Demand by Little's law: {rate:.3g} {what} × {hold:.3g} s held = {said} connection(s) "
                f"busy on average, outside the full windows ({demand_from})."
            )
        else:
            caught = _gauge_requests(inc, windows) if "gauge" in demand_from else None
            n = 0 if caught is None else caught.height // max(1, caught["series"].n_unique())
            if busy == 0 and n:
                sentences.append(
                    f"Demand: none of the gauge's {n} samples per process outside the full windows caught a "
                    f"request holding a connection, so on average fewer than {3 / n:.2g} were busy "
                    f"(95% bound; {demand_from})."
                )
            else:
                sentences.append(
                    f"Demand: {busy:.2g} connection(s) busy with requests on average ({demand_from}"
                    + (f"; {n} samples per process" if n else "")
                    + ")."
                )
    rule = (cfg.workers or 1) * 2 + RULE_OF_THUMB_BUFFER
    numbers["rule_of_thumb_pool_size"] = rule
    if p99 is not None:
        mean = numbers.get("mean_busy_littles_law")
        samples = _gauge_requests(inc, windows) if "gauge" in str(numbers.get("demand_from")) else None
        if mean is not None and samples is not None and samples.height:
            # a few point samples can miss short holds: size for the mean's upper bound (rule of three)
            per_series = samples.height / max(1, samples["series"].n_unique())
            mean = max(mean, 3 / per_series)
            numbers["mean_busy_upper"] = round(mean, 3)
        need = p99
        if mean is not None:
            need = max(need, _poisson_quantile(mean, DEMAND_QUANTILE))
        rec = max(1, math.ceil(need * HEADROOM))
        numbers["recommended_pool_size"] = rec
        text = (
            f"Observed: requests held at most {peak:g} connection(s) at once in the samples "
            f"(p99 of the samples {p99:g}; {conc_from}; point samples can miss short holds)"
        )
        if mean is not None:
            q = _poisson_quantile(mean, DEMAND_QUANTILE)
            text += (
                f"; modelled: with a mean of {mean:.2g} connection(s) busy (upper bound), a Poisson "
                f"demand needs at most {q:g} connection(s) {DEMAND_QUANTILE:.1%} of the time"
            )
        text += f". Once the leak is fixed, pool_size {rec} per process carries that demand (× {HEADROOM:g} headroom)"
        if cfg.capacity is not None:
            verdict = "enough" if cfg.capacity >= rec else "too small"
            text += f"; the configured {cfg.pool_size}+{cfg.max_overflow or 0} is {verdict}"
        text += (
            f". For comparison, the rule of thumb workers × 2 + buffer gives {cfg.workers or 1} × 2 + "
            f"{RULE_OF_THUMB_BUFFER} = {rule}: it ignores both the demand and the leak."
        )
        sentences.append(text)
        per_process = cfg.capacity if cfg.capacity is not None else rec
        total = per_process * (cfg.workers or 1) * (cfg.instances or 1)
        numbers["total_app_connections"] = total
        if pgs.app_slots is not None:
            fits = "fits within" if total <= pgs.app_slots else "exceeds"
            sentences.append(
                f"All app processes together may open {total} connection(s), which {fits} the server's "
                f"{pgs.app_slots} slot(s) for ordinary roles (max_connections {pgs.max_connections})."
            )
    confidence = "high" if evidence.height >= 10 else "medium"
    return [
        Finding(
            "pool_exhaustion",
            " ".join(sentences),
            numbers,
            evidence,
            first,
            last,
            confidence,
        )
    ]


def recommend(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """What to change after a ``pool_exhaustion`` finding: ``add(recommendation, because)`` for each.

    ``pre_ping`` is the app's ``pool_pre_ping`` setting (None when unknown; unused here).

    Examples
    --------
    >>> from loglib.analysis.findings import Finding, pool_exhaustion
    >>> f = Finding("pool_exhaustion", "…", {"server_refusals": 4})
    >>> pool_exhaustion.recommend(f, None, lambda rec, why: print(why))
    PostgreSQL refused 4 connection(s).
    """
    n = f.numbers or {}
    leaked = n.get("leaked_total")
    if leaked:
        add(
            "Fix the leak: return every connection on every path, errors included "
            "(`with Session(engine) as session:`, `try/finally: conn.close()`); do not keep "
            "exceptions or tracebacks that hold a session.",
            f"{leaked:g} connection(s) leaked{rate_words(n)}"
            f" ({n.get('leak_method', '?')}, {n.get('leak_confidence', '?')} confidence).",
        )
        add(
            "Alert on the leak, not the outage: the floor of the pool's checked-out gauge rising, "
            "or PostgreSQL sessions `idle in transaction` older than a few minutes.",
            "The pool filled long before the 503s were noticed.",
        )
    rec = n.get("recommended_pool_size")
    if rec and rec != n.get("pool_size"):
        first = "Then, once the leak is fixed, size" if leaked else "Size"
        rule = n.get("rule_of_thumb_pool_size")
        add(
            f"{first} the pool for the measured demand: pool_size={rec} per process (with max_overflow "
            "for bursts). A bigger pool only delays the next outage while connections leak.",
            f"Peak concurrent use was {n.get('peak_concurrent', '?')} connection(s) "
            f"(p99 {n.get('p99_concurrent', '?')}; mean {n.get('mean_busy_upper', n.get('mean_busy_littles_law', '?'))}); "
            f"configured {n.get('pool_size')}+{n.get('max_overflow')}"
            + (
                f"; the rule of thumb workers × 2 + {RULE_OF_THUMB_BUFFER} would say {rule}, for comparison"
                if rule
                else ""
            )
            + ".",
        )
    if n.get("server_refusals"):
        add(
            "Cap the connections all processes can open below the server's slots "
            "(pool_size+max_overflow × processes ≤ max_connections − reserved), or add PgBouncer.",
            f"PostgreSQL refused {n['server_refusals']} connection(s).",
        )
