"""Deploys and restarts seen in the logs (``detect_events``): PostgreSQL restarts, the app's own start
and stop lines, and sessions of one application ending all at once."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.restarts import APP_START_GAP, app_lifecycle, lifecycle_lines
from loglib.core.schema import INCIDENT_EVENTS, UTC_TS, conform
from loglib.formats.lifecycle import APP_START_PATTERN, APP_STOP_PATTERN

__all__ = ["APP_START_GAP", "APP_START_PATTERN", "APP_STOP_PATTERN", "detect_events"]

#: PostgreSQL events that make up a server restart
PG_RESTART_EVENTS = ("server_shutdown", "crash_restart", "server_starting", "server_ready")
#: events of one restart are at most this far apart
CLUSTER_GAP = timedelta(seconds=60)
#: PostgreSQL's shutdown request lines -> how it stopped (``stopped``); a crash is ``killed``
PG_STOPS = (("smart", "graceful"), ("fast", "fast"), ("immediate", "killed"))
_PG_RANK = {"graceful": 0, "fast": 1, "killed": 2}
#: how an application's sessions ending at once tell how it stopped
_MASS_STOPPED = {"client_reset": "killed", "disconnection": "graceful"}
#: this many sessions of one application ending within ``MASS_END_WINDOW`` mean its process died
MASS_END_MIN = 5
#: the coarsest stamp of a PostgreSQL log (``%t``, whole seconds): a session end logged up to this
#: much before pgBouncer's last line can still be that pgBouncer's kill
PG_STAMP = timedelta(seconds=1)
MASS_END_WINDOW = timedelta(seconds=2)


def detect_events(
    *,
    app: pl.DataFrame | None = None,
    pg: pl.DataFrame | None = None,
    pgbouncer: pl.DataFrame | None = None,
    sessions: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Restarts seen in the logs, as an ``incident_events`` frame (``origin`` ``app``, ``postgres``,
    ``pgbouncer`` or ``connections``).

    * PostgreSQL: shutdown, crash, start and ready lines less than a minute apart are one
      restart, stamped at its first line (the moment connections went away).
    * Application: lines matching :data:`APP_START_PATTERN` (uvicorn's ``Application startup
      complete``, gunicorn's ``Booting worker``, Spring's ``Started X in 3.2 seconds``…), one
      event per service and minute.

    * pgBouncer (``read_pgbouncer_log``): a process that stopped (its shutdown line, or killed:
      silence, then the next ``process up``) and a next one that came up is a restart, stamped
      where the first one stopped; a stop with nothing after it is a note.

    * Connection patterns: ``MASS_END_MIN`` or more sessions of one application ending within
      ``MASS_END_WINDOW`` (resets, terminations or disconnections, not a server shutdown): its
      process died or was redeployed, even if its own log is silent.

    All are ``kind = "restart"`` (a log cannot tell a deploy from a restart; a declared deploy
    near one says which it was), except the first start of a server or service in its log,
    which is ``kind = "note"`` ("PostgreSQL started"): the log simply begins there.

    ``stopped`` says how each restart or stop went down, where it is detected: the app's stop
    line or none (``graceful`` / ``killed`` / ``mixed``), pgBouncer's process (``graceful``,
    ``fast``, ``killed``), PostgreSQL's shutdown request (smart ``graceful``, ``fast``,
    immediate or a crash ``killed``, else ``unknown``), sessions ending at once (resets
    ``killed``, disconnections ``graceful``, else ``unknown``); null for a start.

    ``sessions`` is ``pg_sessions(pg)`` when the caller has it already (an Evidence pairs them
    once and passes them in); without it they are paired here, at most once.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00 UTC [1] LOG:  received fast shutdown request\\n"
    ...        b"2024-03-01 10:00:01 UTC [1] LOG:  database system is shut down\\n"
    ...        b"2024-03-01 10:00:03 UTC [9] LOG:  database system is ready to accept connections\\n")
    >>> ll.detect_events(pg=ll.read_pg_log(log)).select("ts", "kind", "stopped", "origin").rows()
    [(datetime.datetime(2024, 3, 1, 10, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 'restart', 'fast', 'postgres')]
    """
    parts = []
    if pg is not None:
        pg = to_polars(pg)
        from loglib.analysis.sessions import pg_sessions

        sessions = pg_sessions(pg) if sessions is None else to_polars(sessions)
        lines = pg.filter(pl.col("event").is_in(list(PG_RESTART_EVENTS)) & pl.col("ts").is_not_null())
        if lines.height:
            lines = lines.with_columns(pl.col("host").fill_null("")).sort("host", "ts")
            down = pl.col("event").is_in(["server_shutdown", "crash_restart"])
            was_up = pl.col("event").shift(1).over("host").is_in(["server_starting", "server_ready"])
            gap = (pl.col("ts").diff().over("host") > CLUSTER_GAP) | (down & was_up)
            lines = lines.with_columns(_cluster=gap.fill_null(True).cum_sum().over("host"), _how=_pg_how())
            parts.append(
                lines.group_by("host", "_cluster")
                .agg(
                    pl.col("ts").first(),
                    pl.col("event").unique(maintain_order=True).alias("_events"),
                    pl.col("_how").max(),
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
                    # a stop says how: its worst shutdown request line (a crash: killed), else unknown
                    pl.when(
                        pl.col("_events").list.contains("crash_restart")
                        | pl.col("_events").list.contains("server_shutdown")
                    )
                    .then(
                        pl.col("_how")
                        .replace_strict(
                            {v: k for k, v in _PG_RANK.items()}, default=None, return_dtype=pl.String
                        )
                        .fill_null("unknown")
                    )
                    .alias("stopped"),
                    pl.lit("postgres").alias("origin"),
                    pl.lit("postgres").alias("source"),
                    "file",
                    "line",
                )
            )
    logged: set[str] = set()
    if app is not None:
        app = to_polars(app)
        life = app_lifecycle(app)
        if life.height:
            parts.append(life)
            logged = _services_with_lifecycle(app)
    if pgbouncer is not None and to_polars(pgbouncer).height:
        pooler = _pgbouncer_restarts(to_polars(pgbouncer), pg, sessions)
        if pooler.height:
            parts.append(pooler)
    if pg is not None:
        mass = _mass_session_ends(sessions, logged=logged)
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


def _pg_how() -> pl.Expr:
    """Per PostgreSQL line, how the server stopped (``_PG_RANK``, worse is higher): its shutdown
    request line (:data:`PG_STOPS`) or a crash; null for other lines."""
    how = pl.when(pl.col("event") == "crash_restart").then(pl.lit(_PG_RANK["killed"]))
    for word, stop in PG_STOPS:
        how = how.when(
            (pl.col("event") == "server_shutdown")
            & pl.col("message").str.starts_with(f"received {word} shutdown request")
        ).then(pl.lit(_PG_RANK[stop]))
    return how.otherwise(None)


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


def _pgbouncer_restarts(
    lines: pl.DataFrame, pg: pl.DataFrame | None, pgs: pl.DataFrame | None = None
) -> pl.DataFrame:
    """pgBouncer's restarts and final stop from its own log, at its shutdown line. A killed one
    wrote none: its connections went away when PostgreSQL saw its server sessions end (the first
    such end after its last line), else, without PostgreSQL's log, at the next start."""
    from loglib.analysis.pgbouncer import pgbouncer_processes, pgbouncer_sessions

    procs = pgbouncer_processes(lines).sort("process")
    kill_ends = pl.DataFrame(schema={"process": pl.UInt32, "_end": UTC_TS})
    if pg is not None and pgs is not None and (procs["stopped"] == "killed").any():
        servers = pgbouncer_sessions(lines, pg_sessions=pgs).filter(
            (pl.col("side") == "server")
            & (pl.col("end_event") == "pooler_killed")
            & pl.col("pg_pid").is_not_null()
        )
        last = lines.with_columns(pl.col("pid")).group_by("pid").agg(pl.col("ts").max().alias("_last"))
        kill_ends = (
            servers.select("process", "pid", pl.col("pg_pid").alias("_pg"), pl.col("start").alias("_s"))
            .join(last, on="pid", how="left")
            .join(
                pgs.select(
                    pl.col("pid").alias("_pg"), pl.col("start").alias("_pgs"), pl.col("end").alias("_end")
                ),
                on="_pg",
            )
            .filter(
                pl.col("_end").is_not_null()
                & (pl.col("_end") >= pl.col("_last") - PG_STAMP)  # PostgreSQL's %t: whole seconds
                & (pl.col("_pgs") <= pl.col("_s") + timedelta(seconds=5))
            )
            .group_by("process")
            .agg(pl.col("_end").min())
        )
    marks = lines.filter(
        pl.col("event").is_in(["pooler_shutdown", "pooler_start"]) & pl.col("ts").is_not_null()
    )
    rows = []
    for i, p in enumerate(procs.iter_rows(named=True)):
        if p["stopped"] is None or p["stopped"] == "failed" or p["end"] is None:
            continue
        back = i + 1 < procs.height and procs["start"][i + 1] is not None
        how = p["stopped"]
        at = marks.filter(pl.col("ts") <= p["end"]).tail(1) if p["stopped"] != "killed" else marks.head(0)
        when = p["end"]
        if p["stopped"] == "killed":
            at = marks.filter((pl.col("ts") >= p["end"]) & (pl.col("event") == "pooler_start")).head(1)
            seen = kill_ends.filter(pl.col("process") == p["process"])["_end"]
            if seen.len() and seen[0] <= when:
                when, how = seen[0], f"{how}, when PostgreSQL saw its server sessions end"
        rows.append(
            {
                "ts": when,
                "kind": "restart" if back else "note",
                "text": f"pgBouncer stopped ({how})" + (" and restarted" if back else ""),
                "stopped": p["stopped"],
                "origin": "pgbouncer",
                "source": "pgbouncer",
                "file": at["file"][0] if at.height and "file" in at.columns else None,
                "line": at["line"][0] if at.height and "line" in at.columns else None,
            }
        )
    if not rows:
        return INCIDENT_EVENTS.empty()
    return conform(pl.DataFrame(rows).with_columns(pl.col("ts").cast(UTC_TS)), INCIDENT_EVENTS)  # type: ignore[return-value]


def _services_with_lifecycle(app: pl.DataFrame) -> set[str]:
    """Services (lower case) whose own log has start or stop lines: their restarts are known."""
    if "message" not in app.columns:
        return set()
    return {str(s).lower() for s in lifecycle_lines(app)["_svc"].unique()}


def _mass_session_ends(all_sessions: pl.DataFrame, *, logged: set[str] | None = None) -> pl.DataFrame:
    """An application's sessions ending all at once (``MASS_END_MIN`` within ``MASS_END_WINDOW``):
    its process was restarted, killed or redeployed, even when its own log says nothing. Ends
    caused by a server shutdown are left to the PostgreSQL restart they belong to.

    An application whose own log has start or stop lines (``logged``: the service names of the
    app log, matched to PostgreSQL's ``application_name``, case aside) says itself when it
    restarted: its sessions ending together without such a line are something
    else (a middlebox dropping a pool idle together), never a restart."""
    logged = logged or set()
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
        .filter((pl.col("n") >= MASS_END_MIN) & ~pl.col("_app").str.to_lowercase().is_in(sorted(logged)))
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
        pl.col("reason")
        .replace_strict(_MASS_STOPPED, default="unknown", return_dtype=pl.String)
        .alias("stopped"),
        pl.lit("connections").alias("origin"),
        pl.lit("postgres").alias("source"),
        "file",
        "line",
    )
