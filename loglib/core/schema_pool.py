"""Canonical frames of pool events and live capture: ``pool_events``, ``pool_leaks``, ``pg_activity``
and its gaps (re-exported by :mod:`loglib.core.schema`, which lists every frame).
"""

from __future__ import annotations

import polars as pl

from loglib.core.frames import UTC_TS, Column, FrameSchema

POOL_EVENT_KINDS: tuple[str, ...] = (
    "first_connect",
    "connect",
    "checkout",
    "checkin",
    "reset",
    "invalidate",
    "soft_invalidate",
    "close",
    "close_detached",
    "detach",
)

POOL_EVENTS = FrameSchema(
    "pool_events",
    "one row per SQLAlchemy pool event written by `loglib.instrument.log_pool_events` (`read_pool_events`)",
    (
        Column("ts", UTC_TS, "when the pool fired the event, in UTC"),
        Column("event", pl.String, "one of `loglib.POOL_EVENT_KINDS` (`checkout`, `checkin`, `connect`…)"),
        Column(
            "conn",
            pl.Int64,
            "connection id: a counter per DBAPI connection, unique within `process` and `pool`",
        ),
        Column(
            "backend_pid",
            pl.Int64,
            "PostgreSQL backend pid of the connection (joins `pg_sessions.pid`), when known",
        ),
        Column("pool", pl.String, "which pool: the engine URL with the password hidden, or `name=`"),
        Column("process", pl.Int64, "OS process id of the application"),
        Column("thread", pl.String, "name of the thread that caused the event"),
        Column("task", pl.String, "name of the asyncio task that caused the event, null outside asyncio"),
        Column("size", pl.Int32, "the pool's configured size (`pool.size()`), null for pools without one"),
        Column(
            "checked_out", pl.Int32, "connections checked out right after the event (`pool.checkedout()`)"
        ),
        Column(
            "overflow",
            pl.Int32,
            "overflow connections in use (`pool.overflow()`; negative: room left in `size`)",
        ),
        Column("call_file", pl.String, "checkout: file of the first caller outside SQLAlchemy and loglib"),
        Column("call_line", pl.Int64, "checkout: line in `call_file`"),
        Column("call_function", pl.String, "checkout: function at `call_file:call_line`"),
        Column(
            "stack", pl.String, "checkout: up to 5 application frames, innermost first, `file:line function`"
        ),
        Column(
            "gc", pl.Boolean, "checkin: true when the garbage collector returned a connection nobody closed"
        ),
        Column("error", pl.String, "invalidate: the exception that invalidated the connection"),
        Column(
            "sample", pl.Float64, "the sampling rate of checkouts/checkins in force (1.0: every one logged)"
        ),
        Column("file", pl.String, "source file of the event line"),
        Column("line", pl.Int64, "1-based line of the event in that file"),
    ),
)

POOL_LEAKS = FrameSchema(
    "pool_leaks",
    "checkouts never checked in, or held longer than a limit (`pool_leaks`)",
    (
        Column("checkout_ts", UTC_TS, "when the connection was checked out"),
        Column("held", pl.Duration("us"), "how long it was held: to its checkin, or to the end of the log"),
        Column("open_at_end", pl.Boolean, "true when it was never checked in before the log ended"),
        Column(
            "end_event",
            pl.String,
            "what ended the hold: `checkin`, `gc_checkin` (garbage collector), `detach`, null if open",
        ),
        Column("conn", pl.Int64, "connection id"),
        Column("backend_pid", pl.Int64, "PostgreSQL backend pid, when known"),
        Column("pool", pl.String, "the pool"),
        Column("process", pl.Int64, "OS process id"),
        Column("thread", pl.String, "thread that checked it out"),
        Column("task", pl.String, "asyncio task that checked it out"),
        Column("call_file", pl.String, "file of the call site that checked it out"),
        Column("call_line", pl.Int64, "line of the call site"),
        Column("call_function", pl.String, "function of the call site"),
        Column("stack", pl.String, "application frames of the checkout"),
        Column("file", pl.String, "pool-event file of the checkout"),
        Column("line", pl.Int64, "line of the checkout in that file"),
    ),
)

PG_ACTIVITY = FrameSchema(
    "pg_activity",
    "one row per backend per `pg_stat_activity` sample (`loglib capture pg-activity`, `read_pg_activity`)",
    (
        Column("ts", UTC_TS, "when the sample was taken (the server's `now()` at the sample)"),
        Column("pid", pl.Int64, "backend process id"),
        Column("backend_type", pl.String, "`client backend`, `autovacuum worker`, `checkpointer`…"),
        Column(
            "state", pl.String, "`active`, `idle`, `idle in transaction`, `idle in transaction (aborted)`…"
        ),
        Column(
            "wait_event_type", pl.String, "wait event type (`Client`, `Lock`, `IO`…), null when not waiting"
        ),
        Column("wait_event", pl.String, "wait event name (`ClientRead`, `relation`…)"),
        Column("backend_start", UTC_TS, "when the backend (the connection) started"),
        Column("xact_start", UTC_TS, "when the current transaction started, null outside a transaction"),
        Column("query_start", UTC_TS, "when the current (or last) query started"),
        Column("state_change", UTC_TS, "when `state` last changed"),
        Column("user", pl.String, "role name"),
        Column("database", pl.String, "database name"),
        Column("application", pl.String, "application_name"),
        Column("client_addr", pl.String, "client IP address, null for Unix sockets and background workers"),
        Column("client_port", pl.Int32, "client TCP port (-1 for Unix sockets)"),
        Column("query", pl.String, "current or last query text, only when captured with `query=True`"),
        Column("max_connections", pl.Int32, "the server's `max_connections` at the sample"),
        Column(
            "server_start",
            UTC_TS,
            "when the server started (`pg_postmaster_start_time()`): a change is a restart",
        ),
        Column("server", pl.String, "the server sampled: its URL with the password hidden"),
        Column("file", pl.String, "Parquet file of the sample"),
        Column("line", pl.Int64, "1-based row of this backend in that file"),
    ),
)

PG_ACTIVITY_GAPS = FrameSchema(
    "pg_activity_gaps",
    "times a capture could not sample the server (`read_pg_activity_gaps`)",
    (
        Column("start", UTC_TS, "last successful sample before the gap (or the capture start)"),
        Column("end", UTC_TS, "first successful sample after the gap; null when the capture ended first"),
        Column("duration", pl.Duration("us"), "end - start"),
        Column("attempts", pl.Int64, "failed sampling attempts in the gap"),
        Column("error", pl.String, "the first error (password removed)"),
        Column("server", pl.String, "the server, password hidden"),
        Column("file", pl.String, "Parquet file recording the gap"),
    ),
)
