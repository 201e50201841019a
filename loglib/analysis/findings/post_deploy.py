"""Post-deploy flakiness: connection errors after a deploy or restart, the time to recover, how the old
connections were closed (``detect``), what to change (``recommend``) and the charts that show it.

>>> import loglib as ll
>>> from loglib.analysis.findings import post_deploy
>>> inc = ll.Incident.load("data/incidents/post-deploy")         # doctest: +SKIP
>>> [f.numbers["recovery_s"] for f in post_deploy.detect(inc.evidence)]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import polars as pl

from loglib.analysis.evidence import Evidence
from loglib.analysis.findings.finding import Finding
from loglib.analysis.pgbouncer import pooler_refusals
from loglib.core.schema import CHANGE_KINDS, UTC_TS

#: the finding kind this module detects
KIND = "post_deploy"
#: the charts that show this finding's evidence (``loglib.charts`` names)
CHARTS: tuple[str, ...] = ("error_rate", "before_after")

#: app error classes of connection trouble around a deploy (pool timeouts are the pool detector's)
FLAKY_CLASSES = (
    "server_closed",
    "connection_reset",
    "admin_shutdown",
    "crash_restart",
    "server_not_ready",
    "connection_refused",
    "connect_timeout",
    "ssl_eof",
    "conn_invalidated",
    "conn_already_closed",
    "too_many_connections",
    "dns_failure",
    "pooler_error",
)
#: declared and detected events this close are one deploy/restart
MOMENT_GAP = timedelta(seconds=5)
#: how long after a deploy/restart errors are attributed to it
AFTER = timedelta(minutes=5)
#: at least this many errors after an event make a finding
MIN_ERRORS = 2
#: the error rate after the event must be this many times the rate before it
RATE_FACTOR = 3.0
#: sessions ending this close to the event were closed by it
CLOSE_WINDOW = (timedelta(seconds=-5), timedelta(seconds=30))


def _moments(events: pl.DataFrame) -> pl.DataFrame:
    """Deploys and restarts, one per minute-long cluster (a declared event names the cluster)."""
    ev = events.filter(pl.col("kind").is_in(CHANGE_KINDS) & pl.col("ts").is_not_null())
    if ev.height == 0:
        return ev
    ev = ev.sort("ts").with_columns(
        _o=pl.col("origin") != "declared",
        _cluster=(pl.col("ts").diff() > MOMENT_GAP).fill_null(True).cum_sum(),
    )
    return (
        ev.sort("_cluster", "_o", "ts")
        .group_by("_cluster", maintain_order=True)
        .agg(
            pl.col("ts").min(),
            pl.col("kind").first(),
            pl.col("text").first(),
            pl.col("origin").unique().sort().str.join("+").alias("origin"),
        )
        .sort("ts")
    )


#: levels of lines that note a problem without being a failed request
_BELOW_ERROR = ("trace", "debug", "info", "notice", "warning", "warn")


def connection_errors(inc: Evidence) -> pl.DataFrame:
    """The connection errors deploys are judged by (``ts``, ``source``, ``what``, ``file``, ``line``),
    one per failed request, from the closest witness there is:

    * app events of :data:`FLAKY_CLASSES` at level error or above;
    * with no app log, pgBouncer's refusals (``pooler_refusals``: ``what`` is ``pooler: <reason>``);
    * with neither, PostgreSQL's ``server_not_ready`` refusals. Behind a pgBouncer those are its own
      logins to the server (retried every ``server_login_retry``), not the app's requests.

    Examples
    --------
    >>> import loglib as ll
    >>> from loglib.analysis.findings.post_deploy import connection_errors
    >>> log = b"2024-03-01 10:00:04.000 UTC [7] WARNING C-0x3: shop/app@10.0.0.5:5002 pooler error: query_wait_timeout\\n"
    >>> connection_errors(ll.Evidence.from_frames(pgbouncer=ll.read_pgbouncer_log(log)))["what"].to_list()
    ['pooler: query_wait_timeout']
    """
    parts = []
    if inc.app is not None and inc.app.height:
        # a failed request is one error: a library's INFO/WARNING note about the same connection
        # (SQLAlchemy's "Invalidate connection") is not another one
        level = pl.col("level").fill_null("error").str.to_lowercase()
        parts.append(
            inc.app.filter(
                pl.col("error_class").is_in(list(FLAKY_CLASSES))
                & pl.col("ts").is_not_null()
                & ~level.is_in(list(_BELOW_ERROR))
            ).select("ts", pl.lit("app").alias("source"), pl.col("error_class").alias("what"), "file", "line")
        )
    witnessed = bool(parts and parts[0].height)
    # the pooler's and the server's refusal of an attempt are the app's error seen from them:
    # counted only when there is no app log to count the failed requests
    pgbouncer = inc.pgbouncer if inc.pgbouncer is not None and inc.pgbouncer.height else None
    if pgbouncer is not None and not witnessed:
        refused = pooler_refusals(inc).select(
            "ts",
            pl.lit("pgbouncer").alias("source"),
            pl.concat_str(pl.lit("pooler: "), pl.col("reason")).alias("what"),
            "file",
            "line",
        )
        if refused.height:
            parts.append(refused)
    if inc.pg is not None and inc.pg.height and not witnessed and pgbouncer is None:
        parts.append(
            inc.pg.filter((pl.col("event") == "server_not_ready") & pl.col("ts").is_not_null()).select(
                "ts", pl.lit("postgres").alias("source"), pl.col("event").alias("what"), "file", "line"
            )
        )
    return pl.concat(parts).sort("ts") if parts else pl.DataFrame(schema={"ts": UTC_TS, "what": pl.String})


def detect(inc: Evidence) -> list[Finding]:
    """For each deploy or restart (declared or detected): errors by class after it, recovery, graceful close.

    Errors are app events of :data:`FLAKY_CLASSES` (plus PostgreSQL ``server_not_ready``
    refusals) from the event until ``AFTER`` later or the next event. A finding is made when
    there are at least ``MIN_ERRORS`` and their rate is ``RATE_FACTOR`` times the rate in the
    same span before the event (a baseline that starts after the previous event's errors, so
    one deploy's errors are not the next one's "normal"). ``recovery_s`` is the time from the event to the last of them.
    Sessions PostgreSQL saw end from 5 s before to 30 s after the event tell whether the old
    connections were closed gracefully (``disconnection``) or dropped (resets, terminations,
    server shutdown).
    """
    moments = _moments(inc.events)
    if moments.height == 0:
        return []
    errors = connection_errors(inc)
    sessions = inc.sessions
    out = []
    times = moments["ts"].to_list()
    settled = None  # when the previous event's errors ended: the baseline starts after them
    for i, row in enumerate(moments.iter_rows(named=True)):
        at = row["ts"]
        until = min(at + AFTER, times[i + 1]) if i + 1 < len(times) else at + AFTER
        span = until - at
        after = errors.filter(pl.col("ts").is_between(at, until, closed="left"))
        since = at - span if settled is None else max(at - span, settled)
        before = errors.filter(pl.col("ts").is_between(since, at, closed="left"))
        rate_before = before.height / max((at - since).total_seconds(), 1.0)
        rate_after = after.height / max(span.total_seconds(), 1.0)
        if after.height:
            settled = after["ts"].max()
        if after.height < MIN_ERRORS or rate_after < RATE_FACTOR * max(rate_before, 1e-9):
            continue
        by_class = dict(after.group_by("what").len().sort("len", descending=True).iter_rows())
        recovery = (after["ts"].max() - at).total_seconds()
        numbers = {
            "at": at,
            "event": row["kind"],
            "origin": row["origin"],
            "errors": after.height,
            "errors_before": before.height,
            "errors_by_class": by_class,
            "recovery_s": round(recovery, 3),
        }
        close_text = ""
        if sessions is not None and sessions.height:
            ended = sessions.filter(pl.col("end").is_between(at + CLOSE_WINDOW[0], at + CLOSE_WINDOW[1]))
            reasons = dict(ended.group_by("end_reason").len().iter_rows())
            clean = int(reasons.get("disconnection", 0))
            dropped = int(sum(v for k, v in reasons.items() if k not in ("disconnection", "rejected")))
            numbers.update(closed_clean=clean, closed_dropped=dropped, closed_by_reason=reasons)
            if clean or dropped:
                graceful = (
                    "gracefully"
                    if dropped == 0
                    else ("not gracefully" if clean == 0 else "partly gracefully")
                )
                close_text = (
                    f" Old connections were closed {graceful}: {clean} clean disconnection(s), {dropped} "
                    "reset/terminated."
                )
        classes = ", ".join(f"{n} {k}" for k, n in by_class.items())
        statement = (
            f"After the {row['kind']} at {at:%H:%M:%S} UTC ({row['text']}), {after.height} connection error(s) "
            f"followed ({classes}) against {before.height} in the quiet time before; the last came "
            f"{recovery:.3g} s after it (time to recover).{close_text}"
        )
        evidence = after.with_columns(since_s=(pl.col("ts") - at).dt.total_microseconds() / 1e6)
        out.append(Finding("post_deploy", statement, numbers, evidence, at, after["ts"].max(), "medium"))
    return out


def recommend(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """What to change after a ``post_deploy`` finding: ``add(recommendation, because)`` for each.

    ``pre_ping`` is the app's ``pool_pre_ping`` setting (None when unknown): advice already in
    place is left out.

    Examples
    --------
    >>> from loglib.analysis.findings import Finding, post_deploy
    >>> f = Finding("post_deploy", "…", {"errors_by_class": {"admin_shutdown": 2}})
    >>> post_deploy.recommend(f, None, lambda rec, why: print(why))
    2 quer(ies) were terminated by the shutdown.
    """
    n = f.numbers or {}
    classes = n.get("errors_by_class") or {}
    rec_s = n.get("recovery_s")
    if classes.get("connection_refused"):
        add(
            "Roll the application only after PostgreSQL accepts connections again (a readiness "
            "check on the database in the deploy), and retry `connection refused` with backoff.",
            f"Connections were refused for up to {rec_s:g} s after a deploy restarted PostgreSQL."
            if rec_s
            else "Connections were refused after a deploy restarted PostgreSQL.",
        )
    if n.get("closed_dropped") and pre_ping is not True:
        add(
            "Enable pool_pre_ping=True so connections broken by the restart are replaced before use.",
            f"{n['closed_dropped']} pooled connection(s) were cut by the server restart.",
        )
    if classes.get("admin_shutdown"):
        add(
            "Drain the application before restarting PostgreSQL (or use a fast switchover) so "
            "in-flight queries are not terminated.",
            f"{classes['admin_shutdown']} quer(ies) were terminated by the shutdown.",
        )
