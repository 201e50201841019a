"""Deploys and restarts seen in the logs (``detect_events``) and post-deploy flakiness (``detect_post_deploy``)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.core.schema import INCIDENT_EVENTS, UTC_TS, conform

#: application log lines that say a process (re)started: uvicorn, gunicorn, Spring Boot, Rails/Puma,
#: Node and home-grown wording
APP_START_PATTERN = (
    r"Application startup complete|Started server process \[\d+\]|Starting gunicorn \d|Booting worker with pid"
    r"|Started \w+ in [\d.]+ seconds|Puma starting in|Listening on (?:tcp|http|unix)://"
    r"|(?i:\b(?:application|app|service|server|worker) (?:started|starting up|is starting|booted)\b)"
)
#: PostgreSQL events that make up a server restart
PG_RESTART_EVENTS = ("server_shutdown", "crash_restart", "server_starting", "server_ready")
#: app start lines (workers booting) of one start are at most this far apart
APP_START_GAP = timedelta(seconds=5)
#: events of one restart are at most this far apart
CLUSTER_GAP = timedelta(seconds=60)


def _clusters(frame: pl.DataFrame, key: str | None) -> pl.DataFrame:
    """Group rows (sorted by ``ts``) into clusters with gaps below ``CLUSTER_GAP``, per ``key``."""
    keys = [key] if key else []
    frame = frame.sort(*keys, "ts")
    gap = pl.col("ts").diff() > CLUSTER_GAP
    if keys:
        gap = gap.over(keys)
    return frame.with_columns(
        _cluster=gap.fill_null(True).cum_sum().over(keys) if keys else gap.fill_null(True).cum_sum()
    )


def detect_events(*, app: pl.DataFrame | None = None, pg: pl.DataFrame | None = None) -> pl.DataFrame:
    """Restarts seen in the logs, as an ``incident_events`` frame (``origin`` ``app`` or ``postgres``).

    * PostgreSQL: shutdown, crash, start and ready lines less than a minute apart are one
      restart, stamped at its first line (the moment connections went away).
    * Application: lines matching :data:`APP_START_PATTERN` (uvicorn's ``Application startup
      complete``, gunicorn's ``Booting worker``, Spring's ``Started X in 3.2 seconds``…), one
      event per service and minute.

    Both are ``kind = "restart"`` (a log cannot tell a deploy from a restart; a declared deploy
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
                        pl.col("_events").list.contains("server_shutdown")
                        | pl.col("_events").list.contains("crash_restart")
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
        app = to_polars(app)
        first_seen = (
            app.filter(pl.col("ts").is_not_null())
            .group_by(pl.col("service").fill_null(""))
            .agg(pl.col("ts").min().alias("_first"))
        )
        starts = app.filter(pl.col("message").str.contains(APP_START_PATTERN) & pl.col("ts").is_not_null())
        if starts.height:
            starts = starts.with_columns(pl.col("service").fill_null("")).sort("service", "ts")
            gap = pl.col("ts").diff().over("service") > APP_START_GAP
            starts = starts.with_columns(_cluster=gap.fill_null(True).cum_sum().over("service"))
            parts.append(
                starts.group_by("service", "_cluster")
                .agg(
                    pl.col("ts").first(),
                    pl.col("message").first(),
                    pl.col("file").first(),
                    pl.col("line").first(),
                )
                .join(first_seen, on="service", how="left")
                .select(
                    "ts",
                    pl.when(pl.col("_first") < pl.col("ts"))
                    .then(pl.lit("restart"))
                    .otherwise(pl.lit("note"))
                    .alias("kind"),
                    (
                        pl.lit("app ")
                        + pl.col("service")
                        + pl.lit(" started: ")
                        + pl.col("message").str.slice(0, 80)
                    ).alias("text"),
                    pl.lit("app").alias("origin"),
                    pl.lit("app").alias("source"),
                    "file",
                    "line",
                )
            )
    if not parts:
        return INCIDENT_EVENTS.empty()
    out = pl.concat([p.with_columns(pl.col("ts").cast(UTC_TS)) for p in parts], how="vertical_relaxed")
    return conform(out, INCIDENT_EVENTS).sort("ts")  # type: ignore[return-value]


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


def detect_post_deploy(inc) -> list:
    """For each deploy or restart (declared or detected): errors by class after it, recovery, graceful close.

    Errors are app events of :data:`FLAKY_CLASSES` (plus PostgreSQL ``server_not_ready``
    refusals) from the event until ``AFTER`` later or the next event. A finding is made when
    there are at least ``MIN_ERRORS`` and their rate is ``RATE_FACTOR`` times the rate in the
    same span before the event. ``recovery_s`` is the time from the event to the last of them.
    Sessions PostgreSQL saw end from 5 s before to 30 s after the event tell whether the old
    connections were closed gracefully (``disconnection``) or dropped (resets, terminations,
    server shutdown).
    """
    from loglib.analysis.findings import Finding

    moments = _moments(inc.events)
    if moments.height == 0:
        return []
    parts = []
    if inc.app is not None and inc.app.height:
        parts.append(
            inc.app.filter(
                pl.col("error_class").is_in(list(FLAKY_CLASSES)) & pl.col("ts").is_not_null()
            ).select("ts", pl.lit("app").alias("source"), pl.col("error_class").alias("what"), "file", "line")
        )
    if inc.pg is not None and inc.pg.height:
        parts.append(
            inc.pg.filter((pl.col("event") == "server_not_ready") & pl.col("ts").is_not_null()).select(
                "ts", pl.lit("postgres").alias("source"), pl.col("event").alias("what"), "file", "line"
            )
        )
    errors = pl.concat(parts).sort("ts") if parts else pl.DataFrame(schema={"ts": UTC_TS, "what": pl.String})
    sessions = inc.sessions
    out = []
    times = moments["ts"].to_list()
    for i, row in enumerate(moments.iter_rows(named=True)):
        at = row["ts"]
        until = min(at + AFTER, times[i + 1]) if i + 1 < len(times) else at + AFTER
        span = until - at
        after = errors.filter(pl.col("ts").is_between(at, until, closed="left"))
        before = errors.filter(pl.col("ts").is_between(at - span, at, closed="left"))
        if after.height < MIN_ERRORS or after.height < RATE_FACTOR * max(before.height, 1 / RATE_FACTOR):
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
            f"followed ({classes}) against {before.height} in the same time before; the last came "
            f"{recovery:.3g} s after it (time to recover).{close_text}"
        )
        evidence = after.with_columns(since_s=(pl.col("ts") - at).dt.total_microseconds() / 1e6)
        out.append(Finding("post_deploy", statement, numbers, evidence, at, after["ts"].max(), "medium"))
    return out
