"""pgBouncer processes and sessions from its log lines (``pgbouncer_processes``, ``pgbouncer_sessions``).

A pgBouncer *process* runs from its start-up lines (``listening on``, ``process up``) to its
shutdown lines; a process that falls silent and is followed by another start was killed
(SIGKILL, OOM, crash). A *session* is one client or server connection: pgBouncer reuses the
``C-0x…``/``S-0x…`` ids, so a session is an id from its login (or connect) to its close. One
that never closes ends when its pgBouncer stops: that is a session dropped by a restart.

Both take a ``pgbouncer_events`` frame (``read_pgbouncer_log``) or an Evidence (``ev.pgbouncer``,
computed once per Evidence). They expect the log of one pgBouncer (a file and its rotations);
read each host's log into its own frame.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.evidence import Evidence, as_evidence
from loglib.core.schema import PGBOUNCER_EVENTS, PGBOUNCER_PROCESSES, PGBOUNCER_SESSIONS, conform
from loglib.formats.pgbouncer_lines import LOGIN_FAILURE_REASONS, STALE_PIDFILE, shutdown_kind

#: lines of a pgBouncer coming up (main.c, pooler.c): they belong to the process that starts
STARTUP = (
    r"^(?:kernel file descriptor limit|File descriptor limit|listening on |stale pidfile|process up: "
    r"|old process not found|Online restart is deprecated)"
)
_CLOSES = ("client_close", "server_close", "login_failed")
#: a PostgreSQL backend is this server connection when it started this close to it
PG_MATCH_TOLERANCE = "1m"


def _source(data: Any) -> tuple[pl.DataFrame | None, Evidence | None]:
    if isinstance(data, Evidence) or hasattr(data, "evidence"):
        ev = as_evidence(data)
        return ev.pgbouncer, ev
    return (None if data is None else to_polars(data)), None


def _numbered(events: pl.DataFrame) -> pl.DataFrame:
    """Rows in time order with ``process``: a new process at each start-up run of a pid."""
    f = events.sort("ts", maintain_order=True, nulls_last=True).with_row_index("_r")
    startup = pl.col("message").str.contains(STARTUP).fill_null(False) | (pl.col("event") == "pooler_start")
    f = f.with_columns(_pidkey=pl.col("pid").fill_null(-1), _startup=startup)
    boundary = pl.col("_startup") & ~pl.col("_startup").shift(1).over("_pidkey").fill_null(False)
    f = f.with_columns(_boot=boundary.cast(pl.UInt32).cum_sum().over("_pidkey"))
    firsts = (
        f.group_by("_pidkey", "_boot")
        .agg(_first=pl.col("_r").min())
        .sort("_first")
        .with_row_index("process")
        .drop("_first")
    )
    return f.join(firsts, on=["_pidkey", "_boot"], how="left", maintain_order="left")


def _processes_core(f: pl.DataFrame) -> pl.DataFrame:
    """Per process: start, version, its shutdown lines and how it stopped (without dropped counts)."""
    ev = pl.col("event")
    shut = ev == "pooler_shutdown"
    g = (
        f.group_by("process", maintain_order=True)
        .agg(
            pid=pl.col("pid").first(),
            start=pl.col("ts").filter(ev == "pooler_start").first(),
            version=pl.col("reason").filter(ev == "pooler_start").first(),
            first_ts=pl.col("ts").min(),
            stop_ts=pl.col("ts").filter(shut).last(),
            stop_reason=pl.col("reason").filter(shut).first(),
            kinds=shutdown_kind(pl.col("reason")).filter(shut).drop_nulls(),
            has_shutdown=shut.any(),
            fatal=pl.col("reason").filter(pl.col("level") == "FATAL").last(),
            stale=pl.col("message").str.contains(STALE_PIDFILE).fill_null(False).any(),
            file=pl.col("file").first(),
            line=pl.col("line").first(),
        )
        .sort("process")
    )
    nxt_first, nxt_stale = pl.col("first_ts").shift(-1), pl.col("stale").shift(-1).fill_null(False)
    has_next = pl.col("process").shift(-1).is_not_null()
    failed = pl.col("start").is_null() & pl.col("fatal").is_not_null() & ~pl.col("has_shutdown")
    stopped = (
        pl.when(pl.col("has_shutdown") & pl.col("kinds").list.contains("fast"))
        .then(pl.lit("fast"))
        .when(pl.col("has_shutdown"))
        .then(pl.lit("graceful"))  # waited, or only "server connections dropped, exiting" was logged
        .when(failed)
        .then(pl.lit("failed"))
        .when(has_next)
        .then(pl.lit("killed"))
    )
    killed_reason = pl.concat_str(
        pl.lit("no shutdown line before the next start"),
        pl.when(nxt_stale)
        .then(pl.lit("; the next start found its pidfile (stale pidfile)"))
        .otherwise(pl.lit("")),
    )
    return g.with_columns(stopped=stopped).with_columns(
        end=pl.when(pl.col("has_shutdown"))
        .then(pl.col("stop_ts"))
        .when(pl.col("stopped") == "killed")
        .then(nxt_first)
        .when(pl.col("stopped") == "failed")
        .then(pl.col("first_ts")),
        stop_reason=pl.when(pl.col("has_shutdown"))
        .then(pl.col("stop_reason"))
        .when(pl.col("stopped") == "killed")
        .then(killed_reason)
        .when(pl.col("stopped") == "failed")
        .then(pl.col("fatal")),
        stale_pidfile=nxt_stale & (pl.col("stopped") == "killed"),
    )


def _segments(f: pl.DataFrame) -> pl.DataFrame:
    """Connection rows with ``_seg``: a new session where the id's previous one closed."""
    c = f.filter(pl.col("side").is_not_null())
    key = ["process", "conn"]
    prev = pl.col("event").shift(1).over(key)
    after_close = prev.is_in(list(_CLOSES)).fill_null(False)
    moved = (pl.col("addr") != pl.col("addr").shift(1).over(key)) | (
        pl.col("port") != pl.col("port").shift(1).over(key)
    )
    client = prev.is_null() | moved.fill_null(False) | (after_close & (pl.col("event") != "pooler_error"))
    server = prev.is_null() | after_close | (pl.col("event") == "server_connect")
    new = pl.when(pl.col("side") == "server").then(server).otherwise(client)
    return c.with_columns(_seg=new.cast(pl.UInt32).cum_sum().over(key))


def _sessions(f: pl.DataFrame, procs: pl.DataFrame) -> pl.DataFrame:
    ev = pl.col("event")
    close = ev.is_in(list(_CLOSES))
    s = (
        _segments(f)
        .group_by("process", "conn", "_seg", maintain_order=True)
        .agg(
            side=pl.col("side").first(),
            pid=pl.col("pid").first(),
            first_ts=pl.col("ts").first(),
            closed=close.any(),
            close_ts=pl.col("ts").filter(close).last(),
            close_event=ev.filter(close).last(),
            close_reason=pl.col("reason").filter(close).last(),
            age_s=pl.col("age_s").filter(close).last(),
            db=pl.col("db").drop_nulls().last(),
            user=pl.col("user").drop_nulls().last(),
            addr=pl.col("addr").first(),
            port=pl.col("port").first(),
            local_addr=pl.col("local_addr").drop_nulls().first(),
            local_port=pl.col("local_port").drop_nulls().first(),
            has_start=ev.is_in(["login_attempt", "server_connect"]).any(),
            attempted=(ev == "login_attempt").any(),
            failed=(ev == "login_failed").any(),
            file=pl.col("file").first(),
            line=pl.col("line").first(),
            _r=pl.col("_r").first(),
        )
        .join(
            procs.select("process", p_end="end", p_stopped="stopped", p_reason="stop_reason"),
            on="process",
            how="left",
        )
        .sort("_r")
    )
    pooler = pl.col("p_stopped").is_in(["graceful", "fast"])
    before = ~pl.col("has_start") & (pl.col("db").is_not_null() | (pl.col("side") == "server"))
    s = s.with_columns(
        started_before_log=before,
        start=pl.when(before).then(None).otherwise(pl.col("first_ts")),
        end=pl.when(pl.col("closed")).then(pl.col("close_ts")).otherwise(pl.col("p_end")),
        end_event=pl.when(pl.col("closed"))
        .then(pl.col("close_event"))
        .when(pooler)
        .then(pl.lit("pooler_stopped"))
        .when(pl.col("p_stopped").is_not_null())
        .then(pl.lit("pooler_killed")),
        end_reason=pl.when(pl.col("closed")).then(pl.col("close_reason")).otherwise(pl.col("p_reason")),
        open_at_end=~pl.col("closed") & pl.col("p_stopped").is_null(),
        logged_in=pl.when(pl.col("side") == "client").then(pl.col("attempted") & ~pl.col("failed")),
    )
    s = s.with_columns(
        duration=pl.when(pl.col("start").is_not_null() & pl.col("end").is_not_null())
        .then(pl.col("end") - pl.col("start"))
        .when(pl.col("age_s").is_not_null())
        .then(pl.duration(seconds=pl.col("age_s"), time_unit="us"))
    )
    return s


def _match_pg(sessions: pl.DataFrame, pg_sessions: pl.DataFrame | None) -> pl.DataFrame:
    """``pg_pid`` of server sessions: the PostgreSQL backend whose client host/port is pgBouncer's end."""
    if pg_sessions is None or not pg_sessions.height:
        return sessions.with_columns(pg_pid=pl.lit(None, pl.Int64))
    left = (
        sessions.with_row_index("_i")
        .filter(
            (pl.col("side") == "server") & pl.col("local_port").is_not_null() & pl.col("start").is_not_null()
        )
        .select("_i", "start", pl.col("local_addr").cast(pl.String), pl.col("local_port").cast(pl.Int32))
        .sort("start")
    )
    right = (
        pg_sessions.filter(pl.col("client_port").is_not_null())
        .select(
            pg_pid="pid",
            start=pl.coalesce("start", "end"),
            local_addr=pl.col("client_host").cast(pl.String),
            local_port=pl.col("client_port").cast(pl.Int32),
        )
        .drop_nulls("start")
        .sort("start")
    )
    found = left.join_asof(
        right,
        on="start",
        by=["local_addr", "local_port"],
        strategy="nearest",
        tolerance=PG_MATCH_TOLERANCE,
        check_sortedness=False,  # both sorted by start above; polars cannot check it per group
    )
    return (
        sessions.with_row_index("_i")
        .join(found.select("_i", "pg_pid"), on="_i", how="left", maintain_order="left")
        .drop("_i")
    )


def _compute(
    events: pl.DataFrame | None, pg_sessions: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    if events is None or not events.height:
        return PGBOUNCER_PROCESSES.empty(), PGBOUNCER_SESSIONS.empty()
    f = _numbered(events)
    procs = _processes_core(f)
    sessions = _match_pg(_sessions(f, procs), pg_sessions)
    dropped = (
        sessions.filter(pl.col("end_event").is_in(["pooler_stopped", "pooler_killed"]))
        .group_by("process")
        .agg(
            clients_dropped=(pl.col("side") == "client").sum().cast(pl.UInt32),
            servers_dropped=(pl.col("side") == "server").sum().cast(pl.UInt32),
        )
    )
    procs = procs.join(dropped, on="process", how="left", maintain_order="left").with_columns(
        pl.col("clients_dropped", "servers_dropped").fill_null(0)
    )
    return conform(procs, PGBOUNCER_PROCESSES), conform(sessions, PGBOUNCER_SESSIONS)  # type: ignore[return-value]


def _both(data: Any, pg_sessions: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    events, ev = _source(data)
    if ev is None:
        return _compute(events, None if pg_sessions is None else to_polars(pg_sessions))
    pgs = ev.sessions if pg_sessions is None else to_polars(pg_sessions)
    return ev.cached(("pgbouncer", id(pg_sessions)), lambda: _compute(events, pgs))


def pgbouncer_processes(data: Any) -> pl.DataFrame:
    """One row per pgBouncer process in the log: start, end and how it stopped.

    ``stopped`` is ``graceful`` (SIGINT; SIGTERM from 1.23; it waited), ``fast`` (``got SIGTERM,
    fast exit`` up to 1.22: every client dropped at once), ``killed`` (silence, then another
    start: SIGKILL, OOM, crash; ``stale_pidfile`` when the next start found its pidfile),
    ``failed`` (a FATAL before ``process up``) or null (still running at the log's end).

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00.000 UTC [7] LOG process up: PgBouncer 1.18.0, libevent 2.1.12\\n"
    ...        b"2024-03-01 10:00:01.000 UTC [7] LOG C-0x1: shop/app@10.0.0.5:5000 login attempt: db=shop user=app tls=no\\n"
    ...        b"2024-03-01 10:05:00.000 UTC [9] LOG stale pidfile, removing\\n"
    ...        b"2024-03-01 10:05:00.100 UTC [9] LOG process up: PgBouncer 1.18.0, libevent 2.1.12\\n")
    >>> ll.pgbouncer_processes(ll.read_pgbouncer_log(log)).select("pid", "stopped", "stale_pidfile", "clients_dropped").rows()
    [(7, 'killed', True, 1), (9, None, False, 0)]
    """
    return _both(data, None)[0]


def pgbouncer_sessions(data: Any, *, pg_sessions: Any = None) -> pl.DataFrame:
    """One row per pgBouncer client or server connection, from its login/connect and close lines.

    A session that never closes ends when its pgBouncer stops (``end_event`` ``pooler_stopped`` or
    ``pooler_killed``): the sessions a restart dropped. Server sessions get ``pg_pid``, the
    PostgreSQL backend whose client address and port are pgBouncer's end of the connection
    (``pg_sessions``, by default the Evidence's own, when PostgreSQL logs ``%h``/``%r`` or
    connection lines).

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:01.000 UTC [7] LOG C-0x1: shop/app@10.0.0.5:5000 login attempt: db=shop user=app tls=no\\n"
    ...        b"2024-03-01 10:00:02.000 UTC [7] LOG C-0x1: shop/app@10.0.0.5:5000 closing because: client close request (age=1s)\\n"
    ...        b"2024-03-01 10:00:03.000 UTC [7] LOG C-0x1: shop/app@10.0.0.6:5001 login attempt: db=shop user=app tls=no\\n"
    ...        b"2024-03-01 10:00:03.000 UTC [7] LOG C-0x1: shop/app@10.0.0.6:5001 closing because: password authentication failed (age=0s)\\n")
    >>> ll.pgbouncer_sessions(ll.read_pgbouncer_log(log)).select("conn", "port", "logged_in", "end_event", "duration").rows()
    [('C-0x1', 5000, True, 'client_close', datetime.timedelta(seconds=1)), ('C-0x1', 5001, False, 'login_failed', datetime.timedelta(0))]
    """
    return _both(data, pg_sessions)[1]


def pooler_refusals(data: Any) -> pl.DataFrame:
    """pgBouncer's refusals: each ``pooler_error`` it sent a client (``side`` client), failed logins aside.

    One row per client pgBouncer refused or dropped with its own error (``no more connections
    allowed (max_client_conn)``, ``query_wait_timeout``, ``server login has been failing, try again
    later (server_login_retry)``, ``server conn crashed?``, ``database "shop" is disabled``…): a
    failed request seen from the pooler. A wrong password is the client's mistake, not a refusal,
    and ``server login failed: …`` (pgBouncer's own login to PostgreSQL failing) is their cause,
    not a client's error. pgBouncer logs them with ``log_pooler_errors = 1`` (its default).
    Columns: those of ``read_pgbouncer_log``.

    Examples
    --------
    >>> import loglib as ll
    >>> from loglib.analysis.pgbouncer import pooler_refusals
    >>> log = (b"2024-03-01 10:00:01.000 UTC [7] WARNING C-0x1: (nodb)/(nouser)@10.0.0.5:5000 pooler error: no more connections allowed (max_client_conn)\\n"
    ...        b"2024-03-01 10:00:02.000 UTC [7] WARNING C-0x2: shop/app@10.0.0.5:5001 pooler error: password authentication failed\\n"
    ...        b"2024-03-01 10:00:03.000 UTC [7] WARNING server login failed: FATAL the database system is starting up\\n"
    ...        b"2024-03-01 10:00:04.000 UTC [7] WARNING C-0x3: shop/app@10.0.0.5:5002 pooler error: query_wait_timeout\\n")
    >>> pooler_refusals(ll.read_pgbouncer_log(log))["reason"].to_list()
    ['no more connections allowed (max_client_conn)', 'query_wait_timeout']
    """
    events, ev = _source(data)
    if events is None:
        return PGBOUNCER_EVENTS.empty()

    def compute() -> pl.DataFrame:
        return events.filter(
            (pl.col("event") == "pooler_error")
            & (pl.col("side") == "client")
            & ~pl.col("reason").cast(pl.String).fill_null("").str.contains(LOGIN_FAILURE_REASONS)
            & pl.col("ts").is_not_null()
        )

    return compute() if ev is None else ev.cached("pooler_refusals", compute)
