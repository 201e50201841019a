"""Deploys and restarts seen in the logs (``detect_events``): PostgreSQL restarts, the app's own start
and stop lines, and sessions of one application ending all at once."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.restarts import APP_START_GAP, app_lifecycle
from loglib.core.schema import INCIDENT_EVENTS, UTC_TS, conform
from loglib.formats.lifecycle import APP_START_PATTERN, APP_STOP_PATTERN

__all__ = ["APP_START_GAP", "APP_START_PATTERN", "APP_STOP_PATTERN", "detect_events"]

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
    out = pl.concat(
        [conform(p.with_columns(pl.col("ts").cast(UTC_TS)), INCIDENT_EVENTS) for p in parts],
        how="vertical_relaxed",
    )
    out = _drop_echoes(out)
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
