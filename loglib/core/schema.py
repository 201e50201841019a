"""The canonical frames: every column loglib produces, with its dtype and meaning.

All timestamps are ``Datetime("us", "UTC")``; every row of a source frame keeps its evidence
(``file`` and ``line``). Readers build their output with :func:`conform`, so a frame's
columns, order and dtypes are exactly what is written here.
"""

from __future__ import annotations

import polars as pl

# the machinery and the pool/capture frames live beside this module; every name stays importable here
from loglib.core.frames import UTC_TS as UTC_TS
from loglib.core.frames import Column as Column
from loglib.core.frames import FrameSchema as FrameSchema
from loglib.core.frames import conform as conform
from loglib.core.schema_pool import PG_ACTIVITY as PG_ACTIVITY
from loglib.core.schema_pool import PG_ACTIVITY_GAPS as PG_ACTIVITY_GAPS
from loglib.core.schema_pool import POOL_EVENT_KINDS as POOL_EVENT_KINDS
from loglib.core.schema_pool import POOL_EVENTS as POOL_EVENTS
from loglib.core.schema_pool import POOL_LEAKS as POOL_LEAKS

# --- PostgreSQL ---------------------------------------------------------------------------

#: the dtype of the repeated text columns of the event frames (``pg_events``, ``app_events``,
#: ``pgbouncer_events``: severity/level, user, database, application, hosts, event, error class,
#: logger, file…; ``FrameSchema.categorical`` lists them): one u32 code per row instead of a 16-byte
#: string view and its bytes. Compare with ``==`` / ``is_in`` / ``group_by`` / joins (of
#: Categorical keys) as with text; for string functions cast first:
#: ``pl.col("user").cast(pl.String).str.starts_with("app")``. The per-row text (messages, details,
#: session ids) stays ``String``.
EVENT_TEXT = pl.Categorical()

PG_EVENTS = FrameSchema(
    "pg_events",
    "one row per PostgreSQL log entry (`read_pg_log`, `scan_pg_log`); repeated text columns are `Categorical` "
    "(`==`/`is_in` as with text; `.cast(pl.String)` before `.str`)",
    (
        Column(
            "ts", UTC_TS, "when the server wrote the entry (`%m`/`%t`/`%n`, csv/json `timestamp`), in UTC"
        ),
        Column("pid", pl.Int64, "backend process id (`%p`)"),
        Column(
            "severity", EVENT_TEXT, "LOG, ERROR, FATAL, PANIC, WARNING, NOTICE, INFO, DEBUG1..5, STATEMENT…"
        ),
        Column(
            "sqlstate",
            EVENT_TEXT,
            "SQLSTATE error code (`%e`, csv/json), null when the format does not carry it",
        ),
        Column("user", EVENT_TEXT, "role name (`%u`), null when unknown"),
        Column("database", EVENT_TEXT, "database name (`%d`), null when unknown"),
        Column("application", EVENT_TEXT, "application_name (`%a`), null when unknown"),
        Column("client_host", EVENT_TEXT, "client host or IP (`%h`/`%r`), `[local]` for Unix sockets"),
        Column("client_port", pl.Int32, "client TCP port (`%r`, or `port=` of a connection-received line)"),
        Column("session_id", pl.String, "PostgreSQL session id (`%c`: start-time.pid in hex), when logged"),
        Column("message", pl.String, "the primary message, first line first; continuation lines kept"),
        Column(
            "detail", pl.String, "DETAIL/HINT/CONTEXT/STATEMENT/QUERY lines folded in, `KIND: text` per line"
        ),
        Column(
            "event",
            EVENT_TEXT,
            "the connection story: one of `loglib.PG_EVENT_KINDS` (e.g. `connection_authorized`, `client_reset`)",
        ),
        Column("session_duration", pl.Duration("us"), "session time of a `disconnection` entry"),
        Column(
            "host",
            EVENT_TEXT,
            "the machine that wrote the log (syslog hostname, Cloud SQL instance, CNPG pod)",
        ),
        Column("file", EVENT_TEXT, "source file the entry came from"),
        Column("line", pl.Int64, "1-based line number of the entry's first line in that file"),
    ),
)

SESSION_END_REASONS: tuple[str, ...] = (
    "disconnection",
    "client_reset",
    "idle_timeout",
    "admin_termination",
    "server_shutdown",
    "rejected",
    "unknown",
)

PG_SESSIONS = FrameSchema(
    "pg_sessions",
    "one row per backend session (`pg_sessions`)",
    (
        Column("pid", pl.Int64, "backend process id"),
        Column("start", UTC_TS, "connection received (or authorized) time; null if it began before the log"),
        Column("end", UTC_TS, "disconnection or termination time; null while still open at the log's end"),
        Column(
            "duration", pl.Duration("us"), "end - start; PostgreSQL's own session time when it logged one"
        ),
        Column("user", pl.String, "role name"),
        Column("database", pl.String, "database name"),
        Column("application", pl.String, "application_name"),
        Column("client_host", pl.String, "client host/IP or `[local]`"),
        Column("client_port", pl.Int32, "client TCP port"),
        Column(
            "end_reason",
            pl.String,
            "one of `loglib.SESSION_END_REASONS`; null while the session is open at the log's end",
        ),
        Column("open_at_end", pl.Boolean, "true when the session was still open when its log ended"),
        Column("started_before_log", pl.Boolean, "true when only the end of the session is in the log"),
        Column(
            "open_transaction",
            pl.Boolean,
            "true when PostgreSQL said the session ended inside a transaction (`unexpected EOF on client "
            "connection with an open transaction`, idle-in-transaction timeout): a connection left checked out",
        ),
        Column(
            "last_activity",
            UTC_TS,
            "the session's last logged entry before it ended (a statement with log_statement; else its start)",
        ),
        Column("host", pl.String, "the server that logged it"),
        Column("file", pl.String, "file of the session's first entry"),
        Column("line", pl.Int64, "line of the session's first entry"),
    ),
)

PG_CONNECTIONS = FrameSchema(
    "pg_connections",
    "connection counts per time bucket (`pg_connections`)",
    (
        Column("ts", UTC_TS, "bucket start"),
        Column("new_connections", pl.UInt32, "connections received (authorized when received is not logged)"),
        Column(
            "authorized", pl.UInt32, "connections authorized (successful logins; pgBadger's connection count)"
        ),
        Column("closed", pl.UInt32, "sessions that ended in the bucket"),
        Column("open_max", pl.UInt32, "most sessions open at once during the bucket"),
        Column("open_end", pl.UInt32, "sessions open at the end of the bucket"),
    ),
)

# --- the one rejects mechanism --------------------------------------------------------------

REJECTS = FrameSchema(
    "rejects",
    "input lines a reader could not parse (`loglib.rejects(frame)`)",
    (
        Column("file", pl.String, "source file"),
        Column("line", pl.Int64, "1-based line number"),
        Column("reason", pl.String, "why the line was rejected"),
        Column("text", pl.String, "the line itself (cut to 2,000 characters)"),
    ),
)

ALL_SCHEMAS: tuple[FrameSchema, ...] = (PG_EVENTS, PG_SESSIONS, PG_CONNECTIONS, REJECTS)

# --- metrics ---------------------------------------------------------------------------------

#: the dtype of every repeated text column of the metrics frame (``metric``, ``series``, the
#: ``labels`` fields, ``unit``, ``file``): one u32 code per row instead of a 16-byte string view, so
#: a 1,000 x 11,000 export is a third of the memory. Compare with ``==`` / ``is_in`` as with text;
#: for string functions cast first: ``pl.col("series").cast(pl.String).str.contains("api-1")``.
METRIC_TEXT = pl.Categorical()

METRICS = FrameSchema(
    "metrics",
    "one row per metric sample (`read_prometheus`: Prometheus API JSON, `promtool tsdb dump`, Grafana "
    "CSV); text columns are `Categorical` (`==`/`is_in` as with text; `.cast(pl.String)` before `.str`)",
    (
        Column("ts", UTC_TS, "sample time in UTC (Prometheus keeps milliseconds; so does loglib)"),
        Column(
            "metric",
            METRIC_TEXT,
            "the `__name__` label, or `name=` when the export has none (e.g. `rate(...)`)",
        ),
        Column(
            "labels",
            pl.Struct,
            "every label but `__name__`, one Categorical field per label name seen in the read (null where "
            "a series lacks it): `pl.col('labels').struct.field('instance')`, or `df.unnest('labels')`",
        ),
        Column(
            "series", METRIC_TEXT, 'stable, readable key: `db_pool_checked_out{instance="api-1", job="app"}`'
        ),
        Column(
            "value", pl.Float64, "sample value; NaN and ±inf kept as such; a missing step is a missing row"
        ),
        Column(
            "unit",
            METRIC_TEXT,
            "unit of `value` when the export printed one (Grafana formatted CSV), else null",
        ),
        Column("file", METRIC_TEXT, "source file the sample came from"),
        Column("line", pl.Int64, "1-based line of the sample (CSV, promtool dump); null for JSON documents"),
    ),
)

ALERT_STATES: tuple[str, ...] = ("pending", "firing", "resolved", "inactive")

ALERT_TRANSITIONS = FrameSchema(
    "alert_transitions",
    "state changes of a replayed alerting rule (`replay_alert`)",
    (
        Column("ts", UTC_TS, "when the rule evaluation changed state (a sample time)"),
        Column("alert", pl.String, "the rule, e.g. `error_ratio > 0.05 for 5m` (or `name=`)"),
        Column("series", pl.String, "the series (or expression column) the state belongs to"),
        Column("state", pl.String, "one of `loglib.ALERT_STATES`: pending, firing, resolved, inactive"),
        Column(
            "value", pl.Float64, "the evaluated value at `ts`; null when the change is due to missing data"
        ),
        Column("active_since", UTC_TS, "when the condition started to hold (Prometheus `activeAt`)"),
        Column("reason", pl.String, "`condition true`, `held for <for_>`, `condition false` or `no data`"),
    ),
)

ALL_SCHEMAS = (*ALL_SCHEMAS, METRICS, ALERT_TRANSITIONS)

# --- pool events and live capture (issue 8): loglib/core/schema_pool.py -----------------------

ALL_SCHEMAS = (*ALL_SCHEMAS, POOL_EVENTS, POOL_LEAKS, PG_ACTIVITY, PG_ACTIVITY_GAPS)


# --- application logs -----------------------------------------------------------------------

APP_EXTRA = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))

APP_EVENTS = FrameSchema(
    "app_events",
    "one row per application log event; a traceback or stack trace belongs to its event (`read_app_log`, "
    "`scan_app_log`); repeated text columns are `Categorical` (`==`/`is_in` as with text; `.cast(pl.String)` "
    "before `.str`)",
    (
        Column(
            "ts",
            UTC_TS,
            "when the application wrote the event, in UTC; null when the format carries no time (never invented)",
        ),
        Column(
            "level",
            EVENT_TEXT,
            "debug, info, warning, error or critical (normalised from the format's own names and numbers)",
        ),
        Column("logger", EVENT_TEXT, "logger / channel / category name, when the format has one"),
        Column("message", pl.String, "the first line of the message"),
        Column(
            "exc_type",
            EVENT_TEXT,
            "innermost exception type (the root cause; the last of `exc_chain`), null when there is none",
        ),
        Column(
            "exc_chain",
            pl.List(pl.String),
            "chained exception types, outermost first (Python `from`/context chains, Java `Caused by:`, Laravel previous)",
        ),
        Column(
            "traceback",
            pl.String,
            "everything after the first line: traceback, stack trace or continuation text; null when none",
        ),
        Column(
            "error_class",
            EVENT_TEXT,
            "one of `loglib.ERROR_CLASSES` (or a user rule's class), null when not a database-connection matter",
        ),
        Column(
            "message_template",
            EVENT_TEXT,
            "the message with numbers, ids, hosts and quoted names masked as `<*>`, for grouping",
        ),
        Column(
            "service",
            EVENT_TEXT,
            "service name: `service=`, else the record's own service field, else the file's base name",
        ),
        Column(
            "host",
            EVENT_TEXT,
            "host that wrote the event, when the format carries it (pino/bunyan `hostname`, JSON `host`)",
        ),
        Column(
            "pid", pl.Int64, "process id, when the format carries it (gunicorn, Rails, Spring Boot, pino…)"
        ),
        Column(
            "request_id",
            pl.String,
            "request / correlation id, when the format carries one (JSON keys, logfmt, Rails tags)",
        ),
        Column(
            "caller",
            EVENT_TEXT,
            "code location that logged (zap `caller`, loguru `name:function:line`, Go `file.go:line`)",
        ),
        Column(
            "extra",
            APP_EXTRA,
            "the format's remaining fields as key/value pairs (values as text; nested JSON as JSON text)",
        ),
        Column(
            "http_status",
            pl.Int16,
            'the response status of an access line (`"GET /x HTTP/1.1" 503 …` or a `status` field), null otherwise',
        ),
        Column(
            "http_duration_s",
            pl.Float64,
            "seconds the request of an access line took, when the line gives them with a unit after the status "
            "(`… 503 1.002s`, `… 200 34ms`), null otherwise",
        ),
        Column("format", EVENT_TEXT, "the format the event was parsed as (see `loglib.APP_LOG_FORMATS`)"),
        Column("file", EVENT_TEXT, "source file the event came from"),
        Column("line", pl.Int64, "1-based line number of the event's first line in that file"),
    ),
)

ALL_SCHEMAS = (*ALL_SCHEMAS, APP_EVENTS)

# --- incidents ------------------------------------------------------------------------------

INCIDENT_EVENT_KINDS: tuple[str, ...] = ("deploy", "restart", "action", "fix", "alert", "note")
#: how a restart or stop went down (``incident_events.stopped``), mildest first
STOP_KINDS: tuple[str, ...] = ("graceful", "fast", "mixed", "killed", "unknown")
#: the kinds that change the running app (a declared fix is usually a deploy): detectors split at them
CHANGE_KINDS: tuple[str, ...] = ("deploy", "restart", "fix")

INCIDENT_EVENTS = FrameSchema(
    "incident_events",
    "things that happened to the system, declared in `incident.toml` or detected in the logs (`Incident.events`)",
    (
        Column("ts", UTC_TS, "when it happened, in UTC"),
        Column(
            "kind",
            pl.String,
            "one of `loglib.schema.INCIDENT_EVENT_KINDS`: deploy, restart, action, fix (the change that "
            "ended the incident: the before/after table's split), alert, note",
        ),
        Column("text", pl.String, "what happened, in words"),
        Column(
            "stopped",
            pl.String,
            "how what restarted or stopped went down, from its own log: one of `loglib.schema.STOP_KINDS`: "
            "`graceful` (a stop line: SIGTERM, smart shutdown, its sessions closed), `fast` (pgBouncer's or "
            "PostgreSQL's fast shutdown: clients cut), `killed` (no stop line before the next start, a crash, "
            "an immediate shutdown, its sessions reset), `mixed` (processes of one rolling restart stopped "
            "both ways), `unknown` (it stopped, the evidence does not say how); null for events that are no "
            "stop (starts, deploys and restarts declared in incident.toml)",
        ),
        Column("action", pl.String, "what people did about it (`action` in incident.toml), for the timeline"),
        Column("owner", pl.String, "who did it or owns the follow-up (`owner` in incident.toml)"),
        Column(
            "origin",
            pl.String,
            "`declared` (incident.toml or code), `app` (an app start line), `postgres` (shutdown/ready lines)",
        ),
        Column("source", pl.String, "the incident source (name) that showed it; null when declared"),
        Column("file", pl.String, "file of the evidence line; null when declared"),
        Column("line", pl.Int64, "line of the evidence; null when declared"),
    ),
)

CORRELATION_PAIRS = FrameSchema(
    "correlation_pairs",
    "one row per `left` event, with its nearest plausible `right` event (`loglib.correlate(...).pairs`)",
    (
        Column("left_row", pl.UInt32, "row number of the event in `left` (0-based)"),
        Column("left_ts", UTC_TS, "time of the `left` event"),
        Column("right_row", pl.UInt32, "row number of the matched `right` event; null when none is `within`"),
        Column("right_ts", UTC_TS, "time of the matched `right` event; null when none"),
        Column(
            "lag", pl.Duration("us"), "`right_ts - left_ts`: positive when `right` came after; null when none"
        ),
        Column("matched", pl.Boolean, "true when a `right` event was found `within` the limit"),
    ),
)

#: how sure a figure is, weakest first (``none``: it cannot be told); a sum of figures is as sure
#: as its weakest part. Leak rates and findings state one of these.
CONFIDENCE_LEVELS: tuple[str, ...] = ("none", "low", "medium", "high")

LEAK_RATES = FrameSchema(
    "leak_rates",
    "connections leaked per time bucket, best evidence first (`loglib.leak_rates`)",
    (
        Column("ts", UTC_TS, "bucket start"),
        Column(
            "scope", pl.String, "whose leak: pool/instance (`api-1`), or `application/user` from PostgreSQL"
        ),
        Column(
            "leaked",
            pl.Float64,
            "connections leaked in the bucket; null when they could not be seen (`saturated`)",
        ),
        Column("method", pl.String, "`pool_events` (exact), `checked_out_gauge` or `pg_sessions`"),
        Column("confidence", pl.String, "`high`, `medium`, `low`, or `none` when the figure cannot be told"),
        Column(
            "saturated",
            pl.Boolean,
            "true when the pool or server was full: new leaks were invisible (requests failed instead)",
        ),
        Column("note", pl.String, "why the figure is as sure as it says, in words"),
    ),
)

FINDINGS = FrameSchema(
    "findings",
    "one row per finding of `loglib.findings` (`loglib.findings_frame`)",
    (
        Column("kind", pl.String, "`pool_exhaustion`, `connection_leak`, `post_deploy`, `idle_drops`"),
        Column("statement", pl.String, "what was found, in one or two plain sentences"),
        Column("start", UTC_TS, "start of the time the finding is about"),
        Column("end", UTC_TS, "end of that time"),
        Column("confidence", pl.String, "`high`, `medium` or `low`"),
        Column(
            "numbers", pl.String, "the figures behind the statement, as a JSON object (`Finding.numbers`)"
        ),
        Column("evidence_rows", pl.UInt32, "how many rows of evidence prove it (`Finding.evidence`)"),
    ),
)

ALL_SCHEMAS = (*ALL_SCHEMAS, INCIDENT_EVENTS, CORRELATION_PAIRS, LEAK_RATES, FINDINGS)


# --- pgBouncer (issue 16) --------------------------------------------------------------------

#: the numbers of a ``stats:`` line (1.21+ adds the parse and bind rates; null where a version lacks them)
PGBOUNCER_STATS = pl.Struct(
    {
        name: pl.Int64
        for name in (
            "xacts_per_s", "queries_per_s", "client_parses_per_s", "server_parses_per_s", "binds_per_s",
            "bytes_in_per_s", "bytes_out_per_s", "xact_us", "query_us", "wait_us",
        )
    }
)  # fmt: skip

PGBOUNCER_EVENTS = FrameSchema(
    "pgbouncer_events",
    "one row per pgBouncer log line (`read_pgbouncer_log`, `scan_pgbouncer_log`); repeated text columns are "
    "`Categorical` (`==`/`is_in` as with text; `.cast(pl.String)` before `.str`)",
    (
        Column("ts", UTC_TS, "when pgBouncer wrote the line, in UTC"),
        Column("pid", pl.Int64, "pgBouncer's process id: a new one after every restart"),
        Column(
            "level", EVENT_TEXT, "LOG, WARNING, ERROR, FATAL, DEBUG, NOISE; from PRI in syslog, else null"
        ),
        Column("side", EVENT_TEXT, "`client` (`C-0x…`), `server` (`S-0x…`), null for the pooler itself"),
        Column(
            "conn",
            pl.String,
            "the connection's id as logged (`C-0x55d1c0`); pgBouncer reuses ids, so a session is an id between "
            "its login and its close",
        ),
        Column("db", EVENT_TEXT, "database (null for `(nodb)`)"),
        Column("user", EVENT_TEXT, "user (null for `(nouser)`)"),
        Column(
            "addr",
            EVENT_TEXT,
            "the other end: the client's address for `client` rows, PostgreSQL's for `server` rows "
            "(`unix` for sockets)",
        ),
        Column("port", pl.Int32, "the other end's TCP port"),
        Column(
            "event", EVENT_TEXT, "one of `loglib.PGBOUNCER_EVENT_KINDS` (`login_attempt`, `client_close`…)"
        ),
        Column(
            "reason",
            pl.String,
            "why: the close reason (`client unexpected eof`, `server idle timeout`…), the pooler error "
            "(`server login failed: …` included), the shutdown line, the version of a `pooler_start`, or the "
            "admin command of an `other` row (`PAUSE 'shop'`, `RELOAD (SIGHUP)`)",
        ),
        Column("age_s", pl.Int64, "the connection's age in seconds at its close (`age=`)"),
        Column("message", pl.String, "the message after the connection prefix"),
        Column("file", EVENT_TEXT, "source file of the line"),
        Column("line", pl.Int64, "1-based line number in that file"),
        Column("stats", PGBOUNCER_STATS, "a `stats` line's numbers (per second, or microseconds)"),
        Column(
            "local_addr",
            EVENT_TEXT,
            "`server_connect`: pgBouncer's own address towards PostgreSQL (`(from …)`), which PostgreSQL "
            "logs as the client host",
        ),
        Column("local_port", pl.Int32, "`server_connect`: pgBouncer's own port, PostgreSQL's client port"),
    ),
)

PGBOUNCER_STOPS: tuple[str, ...] = ("graceful", "fast", "killed", "failed")

PGBOUNCER_PROCESSES = FrameSchema(
    "pgbouncer_processes",
    "one row per pgBouncer process in the log: how it started and how it stopped (`pgbouncer_processes`)",
    (
        Column("process", pl.UInt32, "0-based number of the process in the log, in time order"),
        Column("pid", pl.Int64, "its process id (the same in every restart of a container's PID 1)"),
        Column("start", UTC_TS, "its `process up` line; null when the log begins with it running"),
        Column(
            "end",
            UTC_TS,
            "its last shutdown line; for a killed one, when the next one started; null while running at the "
            "log's end",
        ),
        Column("version", pl.String, "`PgBouncer 1.18.0`, from `process up`"),
        Column(
            "stopped",
            pl.String,
            "one of `loglib.schema.PGBOUNCER_STOPS`: `graceful` (waited for clients or servers: SIGINT, "
            "SIGTERM from 1.23), `fast` (dropped them: SIGTERM up to 1.22, SIGQUIT), `killed` (no shutdown "
            "line before the next start: SIGKILL, OOM, crash), `failed` (never came up); null if still running",
        ),
        Column(
            "stop_reason", pl.String, "the shutdown line (`got SIGTERM, fast exit`), or what told the kill"
        ),
        Column("stale_pidfile", pl.Boolean, "the next process found this one's pidfile left behind"),
        Column("clients_dropped", pl.UInt32, "client sessions still open when it stopped"),
        Column("servers_dropped", pl.UInt32, "server connections still open when it stopped"),
        Column("file", pl.String, "file of its first line"),
        Column("line", pl.Int64, "its first line"),
    ),
)

PGBOUNCER_SESSIONS = FrameSchema(
    "pgbouncer_sessions",
    "one row per pgBouncer client or server connection, from its connect and close lines (`pgbouncer_sessions`)",
    (
        Column(
            "side", pl.String, "`client` (application to pgBouncer) or `server` (pgBouncer to PostgreSQL)"
        ),
        Column("process", pl.UInt32, "the pgBouncer process (`pgbouncer_processes`)"),
        Column("pid", pl.Int64, "pgBouncer's pid"),
        Column("conn", pl.String, "`C-0x…`/`S-0x…` (reused by later sessions)"),
        Column("start", UTC_TS, "login attempt or server connect; null if it began before the log"),
        Column("end", UTC_TS, "its close; or when its pgBouncer stopped; null while open at the log's end"),
        Column(
            "duration",
            pl.Duration("us"),
            "end - start, or pgBouncer's own `age` when the start is not logged",
        ),
        Column("db", pl.String, "database"),
        Column("user", pl.String, "user"),
        Column("addr", pl.String, "client address (client side) or PostgreSQL's (server side)"),
        Column("port", pl.Int32, "client port, or PostgreSQL's port"),
        Column("local_addr", pl.String, "server side: pgBouncer's own address, PostgreSQL's client host"),
        Column("local_port", pl.Int32, "server side: pgBouncer's own port, PostgreSQL's client port"),
        Column(
            "logged_in", pl.Boolean, "client side: the login was attempted and did not fail; null for servers"
        ),
        Column(
            "end_event",
            pl.String,
            "`client_close`, `server_close`, `login_failed`, `pooler_stopped` (its pgBouncer shut down), "
            "`pooler_killed` (its pgBouncer died without a word); null while open",
        ),
        Column(
            "end_reason",
            pl.String,
            "the close reason (`client unexpected eof`…) or the pooler's shutdown line",
        ),
        Column("open_at_end", pl.Boolean, "true when still open when the log ended"),
        Column("started_before_log", pl.Boolean, "true when only its end is in the log"),
        Column(
            "pg_pid",
            pl.Int64,
            "server side: the PostgreSQL backend of this connection (`pg_sessions` joined on local_addr/port)",
        ),
        Column("file", pl.String, "file of its first line"),
        Column("line", pl.Int64, "its first line"),
    ),
)

DEPLOY_COMPONENTS: tuple[str, ...] = ("app", "pgbouncer", "postgres")

DEPLOY_COMPARISON = FrameSchema(
    "deploy_comparison",
    "one row per deploy or restart, declared or detected, side by side (`compare_deploys`)",
    (
        Column("at", UTC_TS, "when it happened (the declared time when one was declared)"),
        Column("kind", pl.String, "`deploy` or `restart` (a log alone cannot tell a deploy from a restart)"),
        Column("text", pl.String, "what it was, as declared or detected"),
        Column(
            "origin", pl.String, "`declared`, `app`, `postgres`, `connections`, `pgbouncer` (joined by `+`)"
        ),
        Column(
            "errors",
            pl.UInt32,
            "connection errors from `at` to 5 minutes later or the next deploy: the app's failed requests, or "
            "without an app log pgBouncer's refusals, or without either PostgreSQL's",
        ),
        Column(
            "errors_before",
            pl.UInt32,
            "the same in a span as long before it, from after the previous row's last error (the baseline)",
        ),
        Column(
            "pool_timeouts",
            pl.UInt32,
            "the app's requests that failed waiting for a pool connection (`pool_timeout`, e.g. SQLAlchemy's "
            "QueuePool limit) in the span of `errors`: not connection errors, counted beside them; null "
            "without an app log",
        ),
        Column("pool_timeouts_before", pl.UInt32, "the same in the span of `errors_before`"),
        Column(
            "pooler_errors",
            pl.UInt32,
            "pgBouncer's pooler errors in the same span: its refusals of clients (`pooler_refusals`) and its "
            "failed logins to PostgreSQL; not clients' failed logins. Without an app log its refusals are "
            "`errors`",
        ),
        Column("first_error", UTC_TS, "first connection error after it"),
        Column("last_error", UTC_TS, "last connection error after it"),
        Column(
            "recovery_s",
            pl.Float64,
            "seconds from `at` to the last error: the time to recover; null without errors",
        ),
        Column(
            "restarted",
            pl.List(pl.String),
            "components restarted around it, from their logs: `app`, `pgbouncer`, `postgres` (in that order)",
        ),
        Column(
            "app_stopped",
            pl.String,
            "how the app's restarts around it went down, read from their `stopped` (`incident_events`): "
            "`graceful` (its stop line), `killed` (a start with no stop line before it; or, seen from "
            "PostgreSQL alone, its sessions reset at once), `mixed` (both) or `unknown`",
        ),
        Column("pgbouncer_stopped", pl.String, "`graceful`, `fast` or `killed` (`pgbouncer_processes`)"),
        Column(
            "postgres_stopped",
            pl.String,
            "from its restarts' `stopped`: `graceful` (smart shutdown), `fast` (fast shutdown), `killed` "
            "(immediate shutdown or a crash) or `unknown` (no shutdown request line)",
        ),
        Column(
            "sessions_dropped",
            pl.UInt32,
            "client sessions that were being served and were cut around it instead of closed: pgBouncer's "
            "logged-in clients when there is a pgBouncer (not those it refused: `sessions_refused`), else "
            "PostgreSQL's sessions reset, terminated or shut down (refused logins, `rejected`, are never counted)",
        ),
        Column(
            "sessions_refused",
            pl.UInt32,
            "pgBouncer's clients it refused around it: logins it closed with its own error "
            "(`pooler_refusals`: server login failing, query_wait_timeout…); null without a pgBouncer log",
        ),
        Column(
            "pg_sessions_dropped", pl.UInt32, "PostgreSQL sessions reset, terminated or shut down around it"
        ),
        Column(
            "pools",
            pl.List(pl.String),
            "the pgBouncer pools (`db/user`) whose clients were dropped or refused around it; null without a "
            "pgBouncer log",
        ),
        Column(
            "pgbouncer_paused",
            pl.Boolean,
            "pgBouncer was paused around it (PAUSE or SUSPEND on its console, or SIGUSR1); null without its log",
        ),
        Column(
            "pgbouncer_reloaded",
            pl.Boolean,
            "pgBouncer reloaded its configuration around it (RELOAD, SIGHUP); null without its log",
        ),
    ),
)

ALL_SCHEMAS = (*ALL_SCHEMAS, PGBOUNCER_EVENTS, PGBOUNCER_PROCESSES, PGBOUNCER_SESSIONS, DEPLOY_COMPARISON)


def schema_markdown() -> str:
    """Every canonical frame as Markdown (the README's "Canonical frames" section)."""
    return "\n\n".join(s.markdown() for s in ALL_SCHEMAS)


def update_readme(path: str) -> None:
    """Rewrite the README's section between ``<!-- schema:start -->`` and ``<!-- schema:end -->``."""
    from pathlib import Path

    text = Path(path).read_text()
    head, rest = text.split("<!-- schema:start -->", 1)
    _, tail = rest.split("<!-- schema:end -->", 1)
    Path(path).write_text(f"{head}<!-- schema:start -->\n{schema_markdown()}\n<!-- schema:end -->{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--readme"]:
        update_readme(sys.argv[2])
    else:
        print(schema_markdown())
