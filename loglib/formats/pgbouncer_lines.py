"""The words pgBouncer 1.9–1.24 writes to its log: line headers, the socket prefix and the event rules.

Every pattern here is the wording of pgBouncer's own source (``src/client.c``, ``src/server.c``,
``src/objects.c``, ``src/janitor.c``, ``src/main.c``, ``src/stats.c``) and of libusual's
``logging.c``, which writes the header:

* log file / stderr, 1.12+: ``2024-03-01 10:00:00.123 UTC [1234] LOG <message>``
* log file / stderr, up to 1.11: ``2024-03-01 10:00:00.123 1234 LOG <message>`` (local time, no zone)
* syslog (``syslog = 1``), as a syslog daemon or ``journalctl`` writes it:
  ``Mar  1 10:00:00 db1 pgbouncer[1234]: <message>`` (no level: pgBouncer hands it to
  syslog as the priority), or with an RFC 3339 time, or RFC 5424 (``<134>1 2024-03-01T…``).

A message about one connection starts with the socket prefix of ``log_socket_prefix``
(``src/util.c``): ``C-0x55d1c0: shop/app@10.0.0.5:51234 `` (``S-`` for a server connection;
``(nodb)``/``(nouser)`` before the login is known; ``[::1]`` for IPv6; ``unix``/``unix(pid)``).

Examples
--------
>>> import re
>>> m = re.match(SOCKET_PREFIX, "C-0x55d1c0: shop/app@10.0.0.5:51234 login attempt: db=shop user=app tls=no")
>>> m["side"], m["db"], m["user"], m["addr"], m["port"], m["body"]
('C', 'shop', 'app', '10.0.0.5', '51234', 'login attempt: db=shop user=app tls=no')
"""

from __future__ import annotations

import polars as pl

#: the event names of ``read_pgbouncer_log`` (column ``event``)
PGBOUNCER_EVENT_KINDS: tuple[str, ...] = (
    "login_attempt",
    "login_failed",
    "client_close",
    "server_connect",
    "server_close",
    "pooler_start",
    "pooler_shutdown",
    "pooler_error",
    "stats",
    "other",
)

_LEVELS = r"LOG|WARNING|ERROR|FATAL|DEBUG|NOISE|NOTICE|INFO"
_TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?"

#: libusual's header, ``%s [%u] %s %s`` (1.12+) or ``%s %u %s %s`` (older, whose time has no zone)
STDERR_HEADER = (
    rf"^(?P<ts_text>{_TS})(?: (?P<zone>[A-Za-z][A-Za-z0-9+\-/_]*|[+-]\d\d(?::?\d\d)?))? "
    rf"(?:\[(?P<pid_b>\d+)\]|(?P<pid_n>\d+)) (?P<level>{_LEVELS}) (?P<msg>.*)$"
)
#: a syslog daemon's line: optional ``<PRI>``, BSD time (no year, no zone), host, ident[pid]
SYSLOG_BSD = (
    r"^(?:<(?P<pri_b>\d{1,3})>)?(?P<sys_ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host_b>\S+) "
    r"(?P<ident_b>[^\s\[:]+)\[(?P<pid_sb>\d+)\]: (?P<msg_b>.*)$"
)
#: the same with an RFC 3339 time (rsyslog's high-precision format, ``journalctl -o short-iso``)
SYSLOG_ISO = (
    r"^(?:<(?P<pri_i>\d{1,3})>)?(?P<iso_i>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) "
    r"(?P<host_i>\S+) (?P<ident_i>[^\s\[:]+)\[(?P<pid_si>\d+)\]: (?P<msg_i>.*)$"
)
#: RFC 5424: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG``
SYSLOG_5424 = (
    r"^<(?P<pri_r>\d{1,3})>1 (?P<iso_r>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) "
    r"(?P<host_r>\S+) (?P<ident_r>\S+) (?P<pid_sr>\d+|-) \S+ (?:-|\[.*?\]) ?(?P<msg_r>.*)$"
)
#: syslog severities (the low three bits of PRI) as pgBouncer's level names (``log_level_list``)
SYSLOG_LEVELS = {0: "FATAL", 1: "FATAL", 2: "FATAL", 3: "ERROR", 4: "WARNING", 5: "LOG", 6: "LOG", 7: "DEBUG"}

#: ``log_socket_prefix``: ``%c-%p: %s/%s@%s:%d `` (IPv6 in brackets); user names may hold ``@``
SOCKET_PREFIX = (
    r"^(?P<side>[CS])-(?P<ptr>0x[0-9A-Fa-f]+|\(nil\)|[0-9A-Fa-f]+): (?P<db>[^/]*)/(?P<user>.*?)"
    r"@(?P<addr>\[[^\]]*\]|unix\(\d+\)|unix|[^\s:@\[\]]+):(?P<port>\d+) (?P<body>.*)$"
)

#: ``closing because: %s (age=%llus)`` (``(age=%llu)`` before 1.13)
CLOSING = r"^closing because: (?P<reason>.*) \(age=(?P<age>\d+)s?\)$"
LOGIN_ATTEMPT = r"^login attempt: db=(?P<db>\S*) user=(?P<user>\S*) tls=(?P<tls>.*?)(?: replication=\S+)?$"
#: ``new connection to server (from %s)``: the pooler's own address and port, which PostgreSQL logs
#: as the client's (``%h``/``%r``, csvlog ``connection_from``)
SERVER_CONNECT = r"^new connection to server(?: \(from (?P<laddr>\[[^\]]*\]|[^\s()]*?):(?P<lport>\d+)\))?$"
PROCESS_UP = r"^process up: (?P<version>(?i:pgbouncer) [^,]+)"
POOLER_ERROR = r"^(?i:pooler error): (?P<reason>.*)$"
#: ``log_fatal``: ``@src/main.c:123 in function main(): text``
FATAL_LOCATION = r"^@\S+:\d+ in function \S+\(\): (?P<reason>.*)$"
#: how a pgBouncer process says it is going away (main.c signal handlers, janitor.c, admin.c)
SHUTDOWN = (
    r"^(?i:got SIG(?:TERM|INT|QUIT))(?:,| while)"
    r"|^(?:server|client) connections dropped, exiting$"
    r"|^SHUTDOWN(?: WAIT_FOR_(?:CLIENTS|SERVERS))? command issued"
    r"|^(?i:takeover|suspend) was in progress, going down immediately$"
)
STATS = r"^(?i:stats): "
#: pgBouncer could not log in to PostgreSQL (``server.c``: ``server login failed: FATAL the database
#: system is starting up``): an error of the pooler, the cause of the refusals its clients then get
SERVER_LOGIN_FAILED = r"^server login failed: .*$"
#: the pooler paused, resumed, reloaded…: an admin console command (``admin.c``: ``PAUSE 'shop'
#: command issued``) or its signal (``main.c``: SIGUSR1 pauses, SIGUSR2 resumes, SIGHUP reloads).
#: ``reason`` of such an ``other`` row is the command (``PAUSE 'shop'``, ``RELOAD (SIGHUP)``).
ADMIN_COMMAND = r"^((?:PAUSE|RESUME|RELOAD|SUSPEND|DISABLE|ENABLE|RECONNECT|KILL|WAIT_CLOSE)(?: '[^']*')?) command issued$"
CONTROL_SIGNALS: tuple[tuple[str, str], ...] = (
    (r"^got SIGUSR1, pausing all activity$", "PAUSE (SIGUSR1)"),
    (r"^got SIGUSR2, continuing from (?:PAUSE|SUSPEND)$", "RESUME (SIGUSR2)"),
    (r"^got SIGHUP, re-reading config$", "RELOAD (SIGHUP)"),
)
#: the previous process died without removing its pidfile (SIGKILL, OOM, crash)
STALE_PIDFILE = r"^stale pidfile, removing$"

#: pgBouncer's own errors to a client it never gave a server: refused, not cut while it was served
#: (``server conn crashed?``, a reset, a shutdown or a kill are cuts). ``client.c``/``janitor.c``:
#: ``no more connections allowed (max_client_conn)``, ``server login has been failing, try again
#: later (server_login_retry)``, ``pgbouncer cannot connect to server``, ``query_wait_timeout`` (it
#: waited for a server and got none), ``client_login_timeout``, ``database "shop" is disabled``.
REFUSAL_REASONS = (
    r"^(?:no more connections allowed|server login has been failing|pgbouncer cannot connect to server"
    r"|query_wait_timeout|client_login_timeout|database \S+ is disabled)"
)
#: client close reasons that mean the login failed (``src/client.c``, ``src/scram.c``, ``src/pam.c``,
#: ``src/hba.c``); such a close is the ``login_failed`` row. The ``login failed: db=… user=…`` line
#: some of them follow is only a precursor (``other``), so each failed login is counted once.
LOGIN_FAILURE_REASONS = (
    r"^(?:password authentication failed|SASL authentication failed|\"trust\" authentication failed"
    r"|PAM authentication failed|certificate authentication failed|LDAP authentication failed"
    r"|auth failed|no such user|No such user|no such database|login rejected|unix socket login rejected"
    r"|not allowed|SCRAM authentication failed|cannot do (?:MD5|SCRAM) authentication"
    r"|client selected an invalid SASL|client uses authorization identity"
    r"|client requires an unsupported SCRAM|invalid SCRAM response|malformed SCRAM message"
    r"|password too long|no pg_hba\.conf entry)"
)

#: a server connection's close reason when its client went away inside a transaction (session or
#: transaction pooling): pgBouncer drops the server, so PostgreSQL sees a plain disconnection
#: although the session ended with its transaction open (a leaked connection dying with its app)
SERVER_CLOSED_MID_TRANSACTION = "client disconnect while server was not ready"

#: graceful: the process waits for clients or servers (SIGINT; SIGTERM from 1.23; SHUTDOWN
#: WAIT_FOR_*); fast: connections dropped at once (SIGTERM up to 1.22, SIGQUIT, a second signal)
GRACEFUL_SHUTDOWN = (
    r"^(?i:got SIGINT), shutting down$|^(?i:got SIG(?:TERM|INT)), shutting down, waiting"
    r"|^SHUTDOWN WAIT_FOR_(?:CLIENTS|SERVERS) command issued"
)
FAST_SHUTDOWN = r"fast exit$|^SHUTDOWN command issued|going down immediately$"

#: ``stats:`` numbers (1.21+ adds parses and binds; before 1.8 "req/s" and "b/s"): field -> pattern
STATS_FIELDS: dict[str, str] = {
    "xacts_per_s": r"(\d+) xacts/s",
    "queries_per_s": r"(\d+) (?:queries|req)/s",
    "client_parses_per_s": r"(\d+) client parses/s",
    "server_parses_per_s": r"(\d+) server parses/s",
    "binds_per_s": r"(\d+) binds/s",
    "bytes_in_per_s": r"in (\d+) [Bb]/s",
    "bytes_out_per_s": r"out (\d+) [Bb]/s",
    "xact_us": r"xact (\d+) us",
    "query_us": r",\s*query (\d+) us",
    "wait_us": r"wait(?: time)? (\d+) us",
}


def classify(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (columns ``body``: the message after the socket prefix, ``side``: ``C``/``S``/null,
    ``level``) with ``event`` and ``reason`` added. Each pattern runs once over the column.

    Examples
    --------
    >>> df = pl.DataFrame({"body": ["closing because: client unexpected eof (age=12s)",
    ...                             "closing because: password authentication failed (age=0s)",
    ...                             "got SIGTERM, fast exit"], "side": ["C", "C", None], "level": "LOG"})
    >>> classify(df).select("event", "reason").rows()
    [('client_close', 'client unexpected eof'), ('login_failed', 'password authentication failed'), ('pooler_shutdown', 'got SIGTERM, fast exit')]
    """
    body = pl.col("body")
    f = frame.with_columns(
        _closing=body.str.extract(CLOSING, 1),
        _error=pl.coalesce(
            body.str.extract(POOLER_ERROR, 1),
            body.str.extract(FATAL_LOCATION, 1),
            body.str.extract(f"({SERVER_LOGIN_FAILED})", 1),
        ),
        _command=_command(body),
        _version=body.str.extract(PROCESS_UP, 1),
        _shutdown=body.str.contains(SHUTDOWN),
        _error_level=pl.col("level").is_in(["ERROR", "FATAL"]).fill_null(False),
    )
    closing, error, version = pl.col("_closing"), pl.col("_error"), pl.col("_version")
    shutdown, error_level, command = pl.col("_shutdown"), pl.col("_error_level"), pl.col("_command")
    event = (
        pl.when(body.str.starts_with("login attempt: "))
        .then(pl.lit("login_attempt"))
        .when(closing.is_not_null() & (pl.col("side") == "S"))
        .then(pl.lit("server_close"))
        .when(closing.is_not_null() & closing.str.contains(LOGIN_FAILURE_REASONS))
        .then(pl.lit("login_failed"))
        .when(closing.is_not_null())
        .then(pl.lit("client_close"))
        .when(body.str.starts_with("new connection to server"))
        .then(pl.lit("server_connect"))
        .when(version.is_not_null())
        .then(pl.lit("pooler_start"))
        .when(shutdown)
        .then(pl.lit("pooler_shutdown"))
        .when(error.is_not_null() | error_level)
        .then(pl.lit("pooler_error"))
        .when(body.str.contains(STATS))
        .then(pl.lit("stats"))
        .otherwise(pl.lit("other"))
    )
    reason = (
        pl.when(closing.is_not_null())
        .then(closing)
        .when(version.is_not_null())
        .then(version)
        .when(shutdown)
        .then(body)
        .when(error.is_not_null())
        .then(error)
        .when(error_level)
        .then(body)
        .when(body.str.contains(STALE_PIDFILE))
        .then(pl.lit("stale pidfile: the previous process did not exit cleanly"))
        .when(command.is_not_null())
        .then(command)
    )
    return f.with_columns(event=event, reason=reason).drop(
        "_closing", "_error", "_version", "_shutdown", "_error_level", "_command"
    )


def _command(body: pl.Expr) -> pl.Expr:
    """The admin command or control signal of a line (``PAUSE 'shop'``, ``RELOAD (SIGHUP)``), else null."""
    out = body.str.extract(ADMIN_COMMAND, 1)
    for pattern, name in CONTROL_SIGNALS:
        out = pl.when(body.str.contains(pattern)).then(pl.lit(name)).otherwise(out)
    return out


def stats_struct(body: pl.Expr) -> pl.Expr:
    """The numbers of a ``stats:`` line as a struct (``loglib.schema.PGBOUNCER_STATS``); null on other lines."""
    fields = [
        body.str.extract(pattern, 1).cast(pl.Int64).alias(name) for name, pattern in STATS_FIELDS.items()
    ]
    return pl.when(body.str.contains(STATS)).then(pl.struct(fields))


def shutdown_kind(reason: pl.Expr) -> pl.Expr:
    """``graceful`` or ``fast`` for a ``pooler_shutdown`` reason; null for the follow-up lines
    (``server connections dropped, exiting``) that say neither."""
    return (
        pl.when(reason.str.contains(GRACEFUL_SHUTDOWN))
        .then(pl.lit("graceful"))
        .when(reason.str.contains(FAST_SHUTDOWN))
        .then(pl.lit("fast"))
    )
