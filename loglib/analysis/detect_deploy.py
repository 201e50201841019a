"""Deploys and restarts seen in the logs (``detect_events``) and post-deploy flakiness (``detect_post_deploy``)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.restarts import APP_START_GAP, app_lifecycle
from loglib.core.schema import INCIDENT_EVENTS, UTC_TS, conform
from loglib.formats.lifecycle import APP_START_PATTERN, APP_STOP_PATTERN

__all__ = ["APP_START_GAP", "APP_START_PATTERN", "APP_STOP_PATTERN", "detect_events", "detect_post_deploy"]

#: PostgreSQL events that make up a server restart
PG_RESTART_EVENTS = ("server_shutdown", "crash_restart", "server_starting", "server_ready")
#: events of one restart are at most this far apart
CLUSTER_GAP = timedelta(seconds=60)
#: this many sessions of one application ending within ``MASS_END_WINDOW`` mean its process died
MASS_END_MIN = 5
MASS_END_WINDOW = timedelta(seconds=2)


def detect_events(*, app: pl.DataFrame | None = None, pg: pl.DataFrame | None = None) -> pl.DataFrame:
    """Restarts seen in the logs, as an ``incident_events`` frame (``origin`` ``app`` or ``postgres``).

    * PostgreSQL: shutdown, crash, start and ready lines less than a minute apart are one
      restart, stamped at its first line (the moment connections went away).
    * Application: lines matching :data:`APP_START_PATTERN` (uvicorn's ``Application startup
      complete``, gunicorn's ``Booting worker``, Spring's ``Started X in 3.2 seconds``…), one
      event per service and minute.

    * Connection patterns: ``MASS_END_MIN`` or more sessions of one application ending within
      ``MASS_END_WINDOW`` (resets, terminations or disconnections, not a server shutdown): its
      process died or was redeployed, even if its own log is silent.

    All are ``kind = "restart"`` (a log cannot tell a deploy from a restart; a declared deploy
    near one says which it was), except the first start of a server or service in its log,
    which is ``kind = "note"`` ("PostgreSQL started"): the log simply begins there.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00 UTC [1] LOG:  received fast shutdown request\\n"
    ...        b"2024-03-01 10:00:01 UTC [1] LOG:  database system is shut down\\n"
    ...        b"2024-03-01 10:00:03 UTC [9] LOG:  database system is ready to accept connections\\n")
    >>> ll.detect_events(pg=ll.read_pg_log(log)).select("ts", "kind", "origin")
    shape: (1, 3)
    ┌─────────────────────────┬─────────┬──────────┐
    │ ts                      ┆ kind    ┆ origin   │
    │ ---                     ┆ ---     ┆ ---      │
    │ datetime[μs, UTC]       ┆ str     ┆ str      │
    ╞═════════════════════════╪═════════╪══════════╡
    │ 2024-03-01 10:00:00 UTC ┆ restart ┆ postgres │
    └─────────────────────────┴─────────┴──────────┘
    """
    parts = []
    if pg is not None:
        pg = to_polars(pg)
        lines = pg.filter(pl.col("event").is_in(list(PG_RESTART_EVENTS)) & pl.col("ts").is_not_null())
        if lines.height:
            lines = lines.with_columns(pl.col("host").fill_null("")).sort("host", "ts")
            down = pl.col("event").is_in(["server_shutdown", "crash_restart"])
            was_up = pl.col("event").shift(1).over("host").is_in(["server_starting", "server_ready"])
            gap = (pl.col("ts").diff().over("host") > CLUSTER_GAP) | (down & was_up)
            lines = lines.with_columns(_cluster=gap.fill_null(True).cum_sum().over("host"))
            parts.append(
                lines.group_by("host", "_cluster")
                .agg(
                    pl.col("ts").first(),
                    pl.col("event").unique(maintain_order=True).alias("_events"),
                    pl.col("file").first(),
                    pl.col("line").first(),
                )
                .select(
                    "ts",
                    pl.when(
                        pl.col("_events").list.contains("crash_restart")
                        | (
                            pl.col("_events").list.contains("server_shutdown")
                            & (
                                pl.col("_events").list.contains("server_ready")
                                | pl.col("_events").list.contains("server_starting")
                            )
                        )
                    )
                    .then(pl.lit("restart"))
                    .otherwise(pl.lit("note"))
                    .alias("kind"),
                    (
                        pl.lit("PostgreSQL ")
                        + pl.when(pl.col("_events").list.contains("crash_restart"))
                        .then(pl.lit("crashed and restarted"))
                        .when(pl.col("_events").list.contains("server_shutdown"))
                        .then(
                            pl.when(
                                pl.col("_events").list.contains("server_ready")
                                | pl.col("_events").list.contains("server_starting")
                            )
                            .then(pl.lit("restarted"))
                            .otherwise(pl.lit("shut down"))
                        )
                        .otherwise(pl.lit("started"))
                    ).alias("text"),
                    pl.lit("postgres").alias("origin"),
                    pl.lit("postgres").alias("source"),
                    "file",
                    "line",
                )
            )
    if app is not None:
        life = app_lifecycle(to_polars(app))
        if life.height:
            parts.append(life)
    if pg is not None:
        mass = _mass_session_ends(pg)
        if mass.height:
            parts.append(mass)
    if not parts:
        return INCIDENT_EVENTS.empty()
    out = pl.concat([p.with_columns(pl.col("ts").cast(UTC_TS)) for p in parts], how="vertical_relaxed")
    out = _drop_echoes(conform(out, INCIDENT_EVENTS))
    return out.sort("ts")  # type: ignore[return-value]


def _drop_echoes(events: pl.DataFrame) -> pl.DataFrame:
    """Sessions ending at once within ``MASS_END_WINDOW`` + 5 s of a restart or stop the app or
    PostgreSQL logged themselves are that same moment seen from the connections: left out."""
    own = events.filter(
        (pl.col("origin") != "connections") & (pl.col("text").str.contains("restart|stop|shut|crash"))
    )
    mass = pl.col("origin") == "connections"
    if own.height == 0 or not events.select(mass.any()).item():
        return events
    gap = MASS_END_WINDOW + timedelta(seconds=5)
    near = pl.lit(False)
    for at in own["ts"]:
        near = near | pl.col("ts").is_between(at - gap, at + gap)
    return events.filter(~(mass & near))


def _mass_session_ends(pg: pl.DataFrame) -> pl.DataFrame:
    """An application's sessions ending all at once (``MASS_END_MIN`` within ``MASS_END_WINDOW``):
    its process was restarted, killed or redeployed, even when its own log says nothing. Ends
    caused by a server shutdown are left to the PostgreSQL restart they belong to."""
    from loglib.analysis.sessions import pg_sessions

    all_sessions = pg_sessions(pg)
    sessions = all_sessions.filter(
        pl.col("end").is_not_null()
        & pl.col("end_reason").is_in(["client_reset", "admin_termination", "disconnection"])
    )
    if sessions.height < MASS_END_MIN:
        return pl.DataFrame()
    app = pl.coalesce(pl.col("application"), pl.col("user"), pl.lit("?"))
    ends = sessions.with_columns(_app=app).sort("_app", "end")
    gap = (pl.col("end").diff() > MASS_END_WINDOW).over("_app")
    ends = ends.with_columns(_cluster=gap.fill_null(True).cum_sum().over("_app"))
    clusters = (
        ends.group_by("_app", "_cluster")
        .agg(
            pl.col("end").min().alias("ts"),
            pl.len().alias("n"),
            pl.col("end_reason").mode().first().alias("reason"),
            pl.col("file").first(),
            pl.col("line").first(),
        )
        .filter(pl.col("n") >= MASS_END_MIN)
    )
    last_start = (
        all_sessions.with_columns(_app=app).group_by("_app").agg(pl.col("start").max().alias("_last"))
    )
    clusters = clusters.join(last_start, on="_app", how="left").with_columns(
        _back=(pl.col("_last") > pl.col("ts")).fill_null(False)  # it connected again: restarted, not stopped
    )
    return clusters.select(
        "ts",
        pl.when("_back").then(pl.lit("restart")).otherwise(pl.lit("note")).alias("kind"),
        pl.when("_back")
        .then(
            pl.format(
                "{}: {} sessions ended at once ({}): the app was restarted or killed", "_app", "n", "reason"
            )
        )
        .otherwise(
            pl.format(
                "{}: {} sessions ended at once ({}) and it never connected again: it stopped",
                "_app",
                "n",
                "reason",
            )
        )
        .alias("text"),
        pl.lit("connections").alias("origin"),
        pl.lit("postgres").alias("source"),
        "file",
        "line",
    )


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
    ev = events.filter(pl.col("kind").is_in(["deploy", "restart"]) & pl.col("ts").is_not_null())
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


def connection_errors(inc) -> pl.DataFrame:
    """The connection errors deploys are judged by (``ts``, ``source``, ``what``, ``file``, ``line``):
    app events of :data:`FLAKY_CLASSES` at level error or above (one per failed request), or, with
    no app log, PostgreSQL's ``server_not_ready`` refusals."""
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
    # PostgreSQL's refusal of the same attempt is the app's error seen from the server: counted only
    # when there is no app log to count the failed requests
    if inc.pg is not None and inc.pg.height and not (parts and parts[0].height):
        parts.append(
            inc.pg.filter((pl.col("event") == "server_not_ready") & pl.col("ts").is_not_null()).select(
                "ts", pl.lit("postgres").alias("source"), pl.col("event").alias("what"), "file", "line"
            )
        )
    return pl.concat(parts).sort("ts") if parts else pl.DataFrame(schema={"ts": UTC_TS, "what": pl.String})


def detect_post_deploy(inc) -> list:
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
    from loglib.analysis.findings import Finding

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
