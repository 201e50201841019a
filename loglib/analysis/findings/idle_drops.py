"""Idle dropouts: connections a middlebox reset after sitting idle, the idle timeout that did it
(``detect``), what to change (``recommend``) and the charts that show it.

>>> import loglib as ll
>>> from loglib.analysis.findings import idle_drops
>>> inc = ll.Incident.load("data/incidents/idle-drops")                  # doctest: +SKIP
>>> [f.numbers["idle_timeout_s"] for f in idle_drops.detect(inc.evidence)]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

import polars as pl

from loglib.analysis.correlate import correlate
from loglib.analysis.evidence import Evidence
from loglib.analysis.findings.finding import Finding
from loglib.core.schema import CHANGE_KINDS

#: the finding kind this module detects
KIND = "idle_drops"
#: the charts that show this finding's evidence (``loglib.charts`` names)
CHARTS: tuple[str, ...] = ("session_durations", "error_rate")

#: PostgreSQL events of a connection the client side dropped
RESET_EVENTS = ("client_reset", "unexpected_eof")
#: app error classes of using a connection that is gone
APP_DROP_CLASSES = ("server_closed", "connection_reset", "ssl_eof", "conn_invalidated")
#: resets at least this many within ``BURST_WINDOW`` are a process dying or a restart, not idle drops
BURST_SIZE = 3
BURST_WINDOW = timedelta(seconds=1)
#: resets this close to a restart/deploy belong to it
NEAR_EVENT = timedelta(seconds=30)
#: at least this many isolated resets make a finding
MIN_DROPS = 3
#: idle times whose spread (IQR / median) is below this point to one timeout
CONSISTENT = 0.25
#: PostgreSQL entries that are not activity on the connection
_NOT_ACTIVITY = ("connection_received", "connection_authenticated", *RESET_EVENTS, "disconnection")


def _candidate_resets(inc: Evidence) -> pl.DataFrame:
    """One reset per backend, minus those near a declared or logged restart/deploy, with a
    ``burst`` flag (``BURST_SIZE`` within ``BURST_WINDOW``). A burst is ambiguous: a dying
    process resets all its connections at once, but so does a middlebox when a pool's
    connections went idle together; :func:`detect` keeps a burst only when its
    connections' measured idle times agree with the others'."""
    pg = inc.pg
    resets = pg.filter(pl.col("event").is_in(list(RESET_EVENTS)) & pl.col("ts").is_not_null())
    # one reset per backend (a client_reset is often followed by unexpected_eof)
    resets = resets.sort("ts").unique(["pid", "host"], keep="first", maintain_order=True)
    if resets.height == 0:
        return resets.with_columns(burst=pl.lit(False))
    window_us = int(BURST_WINDOW.total_seconds() * 1e6)
    us = resets["ts"].dt.epoch("us")
    lo = us.search_sorted(us - window_us, side="left")
    hi = us.search_sorted(us + window_us, side="right")
    resets = resets.with_columns(burst=pl.Series((hi - lo) >= BURST_SIZE))
    # sessions ending together (origin "connections") is what is being judged here, not a cause
    # a process stopping (with or without a start after it) resets its connections too
    stopped = (pl.col("kind") == "note") & pl.col("text").str.contains("stopped|shut down")
    events = inc.events.filter(
        (pl.col("kind").is_in(CHANGE_KINDS) | stopped) & (pl.col("origin") != "connections")
    )
    for at, kind in events.select("ts", "kind").iter_rows():
        # a stop resets connections at and after its line; a restart's time may be a declared one
        before = timedelta(seconds=1) if kind == "note" else NEAR_EVENT
        resets = resets.filter(~pl.col("ts").is_between(at - before, at + NEAR_EVENT))
    # when the app's own start/stop lines are in the evidence, every restart and stop is known and
    # left out above: a burst that remains is a middlebox dropping a pool idle together
    lifecycle_known = inc.events.filter(pl.col("origin") == "app").height > 0
    return resets.with_columns(burst=pl.col("burst") & ~pl.lit(lifecycle_known))


def _idle_times(pg: pl.DataFrame, resets: pl.DataFrame) -> pl.DataFrame:
    """Per reset: the backend's previous activity (statement/duration lines, else its login) and the gap."""
    activity = (  # lazy: only the three columns are read (an eager filter copied every column)
        pg.lazy()
        .filter(~pl.col("event").is_in(list(_NOT_ACTIVITY)) & pl.col("ts").is_not_null())
        .select("pid", pl.col("ts").alias("last_activity"), pl.col("event").alias("_what"))
        .collect()
    )
    joined = (
        resets.select("ts", "pid", "file", "line", "session_id")
        .sort("ts")
        .join_asof(
            activity.sort("last_activity"),
            left_on="ts",
            right_on="last_activity",
            by="pid",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
    )
    return joined.with_columns(
        idle_s=(pl.col("ts") - pl.col("last_activity")).dt.total_microseconds() / 1e6,
        measured=pl.col("_what").is_in(["other"]).fill_null(False),
    ).drop("_what")


def detect(inc: Evidence) -> list[Finding]:
    """Connections reset after sitting idle: infer the middlebox idle timeout, recommend ``pool_recycle``.

    PostgreSQL client resets not near a restart or deploy are the candidates; a burst
    (``BURST_SIZE`` within a second) counts only when its connections' measured idle times agree
    with the others' (a pool's connections idle together are dropped together; a dying process
    drops busy and idle ones alike). Where PostgreSQL logged statements or durations,
    each connection's idle time before its reset is measured (last activity → reset); when
    they agree (IQR under ``CONSISTENT`` × median) the timeout is their minimum (a timer fires
    at, not before, the limit) and the confidence is ``high``. Without statement logging only
    sessions' login → reset times are known: the timeout is at most the shortest of them
    (``low``). App ``server_closed``/``connection_reset`` errors after each reset are paired
    with it to show the delay until the next use.
    """
    if inc.pg is None or inc.pg.height == 0:
        return []
    candidates = _candidate_resets(inc)
    if candidates.height < MIN_DROPS:
        return []
    idle = _idle_times(inc.pg, candidates).filter(pl.col("idle_s").is_not_null())
    idle = idle.join(candidates.select("ts", "pid", "burst"), on=["ts", "pid"], how="left")
    typical = idle.filter(pl.col("measured"))["idle_s"].median()
    if typical is not None and typical > 0:
        # a burst stays only if each of its connections sat idle about as long as the others
        agrees = ((pl.col("idle_s") - typical).abs() <= CONSISTENT * typical) & pl.col("measured")
        idle = idle.filter(~pl.col("burst") | agrees)
    else:
        idle = idle.filter(~pl.col("burst"))
    if idle.height < MIN_DROPS:
        return []
    resets = candidates.join(idle.select("ts", "pid"), on=["ts", "pid"], how="semi")
    measured = idle.filter(pl.col("measured"))
    numbers: dict = {"drops": resets.height}
    if measured.height >= MIN_DROPS:
        gaps = measured["idle_s"]
        med = float(gaps.median())
        iqr = float(gaps.quantile(0.75) - gaps.quantile(0.25))
        if iqr > CONSISTENT * med:
            return []  # resets at all sorts of idle times: not one timeout
        timeout = float(gaps.min())
        confidence = "high"
        how = (
            f"measured per connection from PostgreSQL's statement logging: {measured.height} connections "
            f"were reset after {gaps.min():.3g}-{gaps.max():.3g} s idle (median {med:.3g} s)"
        )
        numbers.update(
            idle_timeout_s=round(timeout, 3),
            idle_median_s=round(med, 3),
            idle_max_s=round(float(gaps.max()), 3),
        )
        numbers["method"] = "per-connection last activity"
    else:
        timeout = float(idle["idle_s"].min())
        confidence = "low"
        how = (
            "PostgreSQL did not log statements, so idle time is not measured: the sessions were reset "
            f"{idle['idle_s'].min():.3g}-{idle['idle_s'].max():.3g} s after login, so the timeout is at most "
            f"{timeout:.3g} s"
        )
        numbers.update(idle_timeout_max_s=round(timeout, 3), method="session login to reset (upper bound)")
    app = inc.app
    lag_text = ""
    if app is not None and app.height:
        errs = app.filter(pl.col("error_class").is_in(list(APP_DROP_CLASSES)) & pl.col("ts").is_not_null())
        if errs.height:
            pairs = correlate(errs, resets, within="1h", direction="backward")
            numbers["app_errors"] = pairs.total
            numbers["app_errors_after_reset"] = pairs.matched
            lag = pairs.median_lag
            if lag is not None:
                numbers["next_use_delay_s"] = round(-lag.total_seconds(), 3)
                lag_text = (
                    f" {pairs.matched} of {pairs.total} application `server_closed`/`connection_reset` errors "
                    f"came after such a reset, a median {-lag.total_seconds():.3g} s later, on the next use."
                )
    recycle = max(1, math.floor(timeout * 0.8)) if timeout >= 2 else max(0.5, round(timeout * 0.5, 2))
    numbers.update(recommended_pool_recycle_s=recycle, recommended_pool_pre_ping=True)
    statement = (
        f"Connections are dropped after sitting idle about {timeout:.3g} s (a firewall, NAT or load-balancer "
        f"idle timeout): {resets.height} PostgreSQL client resets, {how}.{lag_text} "
        f"Set pool_recycle={recycle:g} (below the timeout) and pool_pre_ping=True."
    )
    return [
        Finding("idle_drops", statement, numbers, idle, resets["ts"].min(), resets["ts"].max(), confidence)
    ]


def recommend(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """What to change after an ``idle_drops`` finding: ``add(recommendation, because)`` for each.

    ``pre_ping`` is the app's ``pool_pre_ping`` setting (None when unknown): advice already in
    place is left out.

    Examples
    --------
    >>> from loglib.analysis.findings import Finding, idle_drops
    >>> f = Finding("idle_drops", "…", {"idle_timeout_s": 20.0, "recommended_pool_recycle_s": 16})
    >>> idle_drops.recommend(f, None, lambda rec, why: print(rec))  # doctest: +NORMALIZE_WHITESPACE
    Set pool_recycle=16 (below the 20 s idle timeout) so no pooled connection outlives it.
    Or keep connections alive through the middlebox: TCP keepalives shorter than 20 s
    (`keepalives_idle` in the DSN, or the server's tcp_keepalives_idle).
    """
    n = f.numbers or {}
    # measured (idle_timeout_s) or, without statement logging, only an upper bound
    timeout = n.get("idle_timeout_s")
    bound = n.get("idle_timeout_max_s")
    limit = timeout if timeout is not None else bound
    said = (
        f"the {timeout:.0f} s idle timeout"
        if timeout is not None
        else f"the idle timeout, which is at most {bound:.0f} s"
        if bound is not None
        else "the idle timeout"
    )
    recycle = n.get("recommended_pool_recycle_s")
    if recycle:
        because = (
            f"{n.get('drops', '?')} connection(s) were reset after about {timeout:.0f} s idle."
            if timeout is not None
            else f"{n.get('drops', '?')} connection(s) were reset at most {bound:.0f} s after they "
            "logged in (an upper bound: PostgreSQL did not log statements)."
            if bound is not None
            else "Connections were reset after sitting idle."
        )
        add(
            f"Set pool_recycle={recycle:g} (below {said}) so no pooled connection outlives it.",
            because,
        )
    if n.get("recommended_pool_pre_ping") and pre_ping is not True:
        add(
            "Enable pool_pre_ping=True so a dropped connection is replaced instead of failing a request.",
            f"{n.get('app_errors_after_reset', '?')} request(s) failed on the first use after a drop.",
        )
    if limit is not None:
        add(
            f"Or keep connections alive through the middlebox: TCP keepalives shorter than "
            f"{limit:.0f} s (`keepalives_idle` in the DSN, or the server's tcp_keepalives_idle).",
            "A firewall, NAT or load balancer drops connections idle longer than that.",
        )
