"""The error taxonomy: one readable rules table that names database-connection failures.

Each :class:`ErrorRule` maps a regular expression (run by polars' Rust engine, linear time)
to an ``error_class``. When several rules match one event, the rule with the highest
``priority`` wins; ties go to the rule listed first. The tiers say what a postmortem wants
to know first:

* 100 — a specific reason the *server* gave (``sorry, too many clients already``,
  ``terminating connection due to administrator command``, ``deadlock detected``…). These
  win over the generic client text wrapped around them (``connection to server at …
  failed:``, ``server closed the connection unexpectedly``).
* 90 — detectors that name the application's own fault (leaks, gunicorn's WORKER TIMEOUT).
* 80 — network-level causes (refused, DNS, connect timeout, SSL EOF).
* 70 — waiting for a pool checkout (a pool timeout whose cause is known above is that cause).
* 60 — the pool discarding or recycling a stale connection.
* 50/40 — the generic "the connection went away" family, and use of an already closed one.

Messages are quoted from the libraries' sources; ``source`` on each rule says where.
:func:`classify_error` (plain values) and :func:`error_class_expr` (a polars expression,
used by ``read_app_log``) share the table, so both give the same answer for the same text.
"""

from __future__ import annotations

import functools
import operator
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import polars as pl


@dataclass(frozen=True)
class ErrorRule:
    """One row of the rules table: text matching ``pattern`` is an ``error_class`` event.

    ``pattern`` is a Rust-regex (no look-around, no back-references), searched anywhere in
    the event text (its first line with any decoration, plus its traceback).
    """

    error_class: str
    pattern: str
    priority: int = 100
    source: str = ""


R = ErrorRule

#: The built-in table. Read it top to bottom: it is the documentation of ``error_class``.
ERROR_RULES: tuple[ErrorRule, ...] = (
    # --- 100: what the server said -----------------------------------------------------------
    R("too_many_connections",
      r"sorry, too many clients already|remaining connection slots are reserved"
      r"|too many connections for (?:role|database)|TooManyConnectionsError|SQLSTATE\W{0,2}53300"
      r"|\bToo many connections\b|no more connections allowed \(max_client_conn\)",
      100, "PostgreSQL src/backend/utils/init/postinit.c (53300); asyncpg exceptions; MySQL ER_CON_COUNT_ERROR; "
           "PgBouncer client.c"),
    R("auth_failed",
      r"password authentication failed for user|no pg_hba\.conf entry for|pg_hba\.conf rejects connection"
      r"|\w+ authentication failed for user|InvalidPasswordError|Authentication failed against database server"
      r"|Access denied for user|SequelizeAccessDeniedError|SQLSTATE\W{0,2}28P01",
      100, "PostgreSQL src/backend/libpq/auth.c (28P01/28000); Prisma P1000; MySQL 1045; Sequelize errors"),
    R("idle_in_tx_timeout",
      r"idle-in-transaction timeout|IdleInTransactionSessionTimeout|SQLSTATE\W{0,2}25P03",
      100, "PostgreSQL postgres.c 'terminating connection due to idle-in-transaction timeout' (25P03); psycopg.errors"),
    R("idle_session_timeout",
      r"idle-session timeout|IdleSessionTimeout|SQLSTATE\W{0,2}57P05",
      100, "PostgreSQL 14+ postgres.c 'terminating connection due to idle-session timeout' (57P05)"),
    R("admin_shutdown",
      r"terminating connection due to administrator command|AdminShutdown|SQLSTATE\W{0,2}57P01",
      100, "PostgreSQL postgres.c ProcessInterrupts (57P01: pg_terminate_backend, fast shutdown)"),
    R("crash_restart",
      r"terminating connection because of crash of another server process|CrashShutdown|SQLSTATE\W{0,2}57P02",
      100, "PostgreSQL postgres.c quickdie (57P02)"),
    R("server_not_ready",
      r"the database system is (?:starting up|shutting down|in recovery mode|not yet accepting connections"
      r"|not accepting connections)|CannotConnectNow|SQLSTATE\W{0,2}57P03",
      100, "PostgreSQL postmaster.c canAcceptConnections (57P03)"),
    R("statement_timeout",
      r"canceling statement due to statement timeout|Query read timeout"
      r"|maximum statement execution time exceeded",
      100, "PostgreSQL postgres.c (57014); node-postgres client.js query_timeout; MySQL 3024"),
    R("lock_timeout",
      r"canceling statement due to lock timeout|could not obtain lock on (?:row|relation)|LockNotAvailable"
      r"|Lock wait timeout exceeded",
      100, "PostgreSQL postgres.c / heapam.c (55P03); MySQL 1205"),
    R("deadlock",
      r"deadlock detected|DeadlockDetected|Deadlock found when trying to get lock|SQLSTATE\W{0,2}40P01",
      100, "PostgreSQL deadlock.c (40P01); MySQL 1213"),
    R("pooler_error",
      r"server login has been failing, try again later|pgbouncer cannot connect to server|\bquery_wait_timeout\b"
      r"|client_login_timeout \(server down\)|server conn crashed\?|database \"[^\"]*\" is disabled"
      r"|\bsuspend_timeout\b",
      100, "PgBouncer's own error to a client it could not serve (client.c, janitor.c, objects.c "
           "disconnect_client): PostgreSQL behind it down or restarting, its pool paused or full; "
           "wording checked against a real pgBouncer 1.18 through psycopg"),
    # --- 90: the application's own fault, named by a detector ------------------------------------
    R("connection_leak",
      r"Apparent connection leak detected|Connection leak detection triggered"
      r"|garbage collector is trying to clean up (?:non-checked-in )?connection",
      90, "HikariCP ProxyLeakTask.java; SQLAlchemy lib/sqlalchemy/pool/base.py _finalize_fairy"),
    R("worker_timeout",
      r"WORKER TIMEOUT \(pid:\d+\)",
      90, "gunicorn arbiter.py murder_workers: self.log.critical('WORKER TIMEOUT (pid:%s)', pid)"),
    # --- 80: the network ------------------------------------------------------------------------
    R("dns_failure",
      r"could not translate host name|Name or service not known|nodename nor servname provided"
      r"|Temporary failure in name resolution|getaddrinfo (?:ENOTFOUND|EAI_AGAIN)|lookup \S+(?: on \S+)?: no such host"
      r"|UnknownHostException|SequelizeHostNotFoundError",
      80, "libpq fe-connect.c; glibc gai_strerror; Node dns; Go net/dnsclient; java.net"),
    R("connection_refused",
      r"(?i:connection refused)|ECONNREFUSED|Connect call failed|Connection to \S+ refused"
      r"|Can't reach database server|SequelizeConnectionRefusedError"
      r"|No connection could be made because the target machine actively refused it",
      80, "libpq fe-connect.c ('failed: Connection refused'); Node net; asyncpg connect_utils; "
          "pgjdbc ConnectionFactoryImpl ('Connection to %s refused'); Prisma P1001; Go net; "
          "Windows WSAECONNREFUSED (Go 'connectex: No connection could be made …', .NET SocketException)"),
    R("connect_timeout",
      r"timeout expired|Connection terminated due to connection timeout|connect ETIMEDOUT"
      r"|dial tcp [^\n]*(?:i/o timeout|connection timed out)|(?i:connect timed out)"
      r"|was reached but timed out|SequelizeConnectionTimedOutError",
      80, "libpq fe-connect.c connect_timeout; node-postgres pg/lib/client.js; Go net; java.net; Prisma P1002"),
    R("ssl_eof",
      r"SSL SYSCALL error: EOF detected|SSL connection has been closed unexpectedly"
      r"|(?i:unexpected eof while reading)|SSLEOFError|EOF occurred in violation of protocol",
      80, "libpq fe-secure-openssl.c; OpenSSL 3 SSL_R_UNEXPECTED_EOF_WHILE_READING; Python ssl"),
    # --- 70: waiting for a pool checkout ----------------------------------------------------------
    R("pool_timeout",
      r"QueuePool limit of size \d+ overflow -?\d+ reached|timeout exceeded when trying to connect"
      r"|Timed out fetching a new connection from the (?:connection )?pool|\bP2024\b"
      r"|Timeout acquiring a connection\. The pool is probably full|KnexTimeoutError"
      r"|Connection is not available, request timed out after|SQLTransientConnectionException"
      r"|could not obtain a (?:database )?connection (?:from the pool )?within|ActiveRecord::ConnectionTimeoutError"
      r"|couldn't get a connection after|ConnectionAcquireTimeoutError"
      r"|pool timed out while waiting for an open connection",
      70, "SQLAlchemy pool/impl.py (3o7r); pg-pool index.js; Prisma P2024 (2.x: 'from the pool', 3+: 'from the connection pool'); knex lib/client.js; "
          "HikariCP HikariPool.createTimeoutException; Rails connection_pool/queue.rb; psycopg_pool; Sequelize; "
          "Rust sqlx Error::PoolTimedOut"),
    # --- 60: the pool threw a stale connection away ----------------------------------------------
    R("conn_invalidated",
      r"Invalidate connection |Disconnection detected on checkout|exceeded timeout; recycling"
      r"|Pool pre-ping on connection \S+ failed|Failed to validate connection",
      60, "SQLAlchemy pool/base.py _log_invalidate, _checkout, get_connection; HikariCP PoolBase.isConnectionDead"),
    # --- 50: the connection went away -------------------------------------------------------------
    R("connection_reset",
      r"(?i:connection reset)|ECONNRESET|Broken pipe|EPIPE",
      50, "errno ECONNRESET/EPIPE as printed by libc, Node, Java (SocketException: Connection reset) and Go"),
    R("server_closed",
      r"server closed the connection unexpectedly|(?i:connection (?:was )?terminated unexpectedly)"
      r"|(?m:\bConnection terminated$)|MySQL server has gone away"
      r"|Lost connection to MySQL server|driver: bad connection|connection was closed in the middle of operation"
      r"|An I/O error occurred while sending to the backend|Server has closed the connection"
      r"|the connection is lost|consuming input failed|unexpected EOF",
      50, "libpq fe-misc.c; node-postgres client.js; MySQL 2006/2013; Go database/sql ErrBadConn; asyncpg; "
          "pgjdbc QueryExecutorImpl; Prisma P1017; psycopg 3 pq; lib/pq and pgx; node-postgres 'Connection terminated' "
          "(the client ended while a query ran)"),
    # --- 30: generic phrases of home-grown messages (the specific rules above win) -------------
    R("pool_timeout",
      r"(?i:pool (?:is )?exhausted|connection pool (?:is )?full|waiting for (?:an? )?(?:available|free|idle|db|database) "
      r"connection)",
      30, "home-grown wrappers, e.g. '[ERROR] Pool exhausted, waiting for available connection' "
          "(shared/seeds incident 000)"),
    R("connect_timeout",
      r"(?i:\bconnection time(?:d )?out\b|\bconnect(?:ion)? timeout\b)",
      30, "home-grown wrappers, e.g. '[ERROR] Database query failed: connection timeout' (shared/seeds incident 000)"),
    # --- 40: using a connection that is already closed --------------------------------------------
    R("conn_already_closed",
      r"connection already closed|the connection is closed|This Connection is closed|connection is closed"
      r"|This connection has been closed|Client was closed and is not queryable|sql: database is closed"
      r"|sql: connection is already closed|\bconn closed\b|Cannot use a pool after calling end",
      40, "psycopg2 InterfaceError; psycopg 3; SQLAlchemy ResourceClosedError; asyncpg InterfaceError; pgjdbc; "
          "node-postgres; Go database/sql ErrConnDone; pgx"),
)  # fmt: skip

#: every class name of the built-in table, in table order
ERROR_CLASSES: tuple[str, ...] = tuple(dict.fromkeys(r.error_class for r in ERROR_RULES))

_USER_RULES: list[ErrorRule] = []


def _check_rule(rule: ErrorRule) -> ErrorRule:
    if not isinstance(rule.error_class, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", rule.error_class):
        msg = f"error_class={rule.error_class!r} must be a lower_snake_case name such as 'pool_timeout'"
        raise ValueError(msg)
    problem = _regex_problem(rule.pattern)
    if problem is not None:
        msg = (
            f"pattern={rule.pattern!r} is not a valid Rust regex ({problem}); "
            "look-around and back-references are not supported"
        )
        raise ValueError(msg)
    return rule


@lru_cache(maxsize=1024)
def _regex_problem(pattern: str) -> str | None:
    """Why polars cannot compile ``pattern`` (None: it can); compiled once per pattern, since every
    chunk of a read checks its table."""
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError as exc:
        return str(exc).splitlines()[0]
    return None


def add_error_rule(error_class: str, pattern: str, *, priority: int = 200, source: str = "user") -> ErrorRule:
    """Add a rule to the table used by :func:`classify_error` and ``read_app_log``.

    The rule is process-wide (a notebook adds its rules once at the top). The default
    ``priority=200`` makes it win over every built-in rule; give a lower one to slot it into
    a tier. :func:`reset_error_rules` removes every added rule. To classify with an explicit
    table instead, pass ``rules=`` to :func:`classify_error` or ``read_app_log``.

    Examples
    --------
    >>> import loglib as ll
    >>> _ = ll.add_error_rule("pool_timeout", r"our pool is dry")
    >>> ll.classify_error("ERROR app: our pool is dry again")
    'pool_timeout'
    >>> ll.reset_error_rules()
    """
    rule = _check_rule(ErrorRule(error_class, pattern, int(priority), source))
    _USER_RULES.append(rule)
    return rule


def reset_error_rules() -> None:
    """Forget every rule added with :func:`add_error_rule`."""
    _USER_RULES.clear()


def error_rules() -> tuple[ErrorRule, ...]:
    """The table in force: the built-in rules, their translations from the installed PostgreSQL
    catalogs (:mod:`loglib.formats.client_catalogs`), then those added with :func:`add_error_rule`."""
    from loglib.formats.client_catalogs import localized_rules

    return (*ERROR_RULES, *localized_rules(), *_USER_RULES)


def _resolve(rules: Sequence[ErrorRule] | None) -> tuple[ErrorRule, ...]:
    if rules is None:
        return error_rules()
    out = tuple(rules)
    for rule in out:
        if not isinstance(rule, ErrorRule):
            msg = f"rules= must hold loglib.ErrorRule values, got {type(rule).__name__}"
            raise TypeError(msg)
        _check_rule(rule)
    return out


def _ordered(rules: tuple[ErrorRule, ...]) -> list[ErrorRule]:
    """Highest priority first; equal priorities keep table order."""
    return [r for _, r in sorted(enumerate(rules), key=lambda ir: (-ir[1].priority, ir[0]))]


@lru_cache(maxsize=32)
def _any_pattern(rules: tuple[ErrorRule, ...]) -> str:
    return "|".join(f"(?:{r.pattern})" for r in rules)


def error_class_expr(text: pl.Expr | str, *, rules: Sequence[ErrorRule] | None = None) -> pl.Expr:
    """A polars expression giving the ``error_class`` of each text (null when no rule matches).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"msg": ["sorry, too many clients already", "GET / 200"]})
    >>> df.select(error_class_expr("msg").alias("error_class"))["error_class"].to_list()
    ['too_many_connections', None]
    """
    col = pl.col(text) if isinstance(text, str) else text
    table = _resolve(rules)
    expr: pl.Expr | None = None
    for rule in _ordered(table):
        cond = col.str.contains(rule.pattern)
        expr = (
            pl.when(cond).then(pl.lit(rule.error_class))
            if expr is None
            else expr.when(cond).then(pl.lit(rule.error_class))
        )
    if expr is None:
        return pl.lit(None, dtype=pl.String)
    return expr.otherwise(pl.lit(None, dtype=pl.String))


def classify_frame(
    frame: pl.DataFrame, text: str, out: str = "error_class", *, rules: Sequence[ErrorRule] | None = None
) -> pl.DataFrame:
    """Add ``out`` = :func:`error_class_expr` of column ``text``, evaluating the rules only on rows
    that match any of them (one combined scan first: most log lines match none)."""
    table = _resolve(rules)
    if not table:
        return frame.with_columns(pl.lit(None, dtype=pl.String).alias(out))
    texts = frame.get_column(text)
    return frame.with_columns(_rules_thread().submit(_classes, texts, table).result().alias(out))


def classes_of(texts: pl.Series, table: tuple[ErrorRule, ...]) -> pl.Series:
    """:func:`classify_frame`'s classes of ``texts`` for a table already checked (``_resolve``):
    its patterns are not compiled again to be checked.

    The texts are expected to be candidates (``matches_any``): the union of the rules is not
    searched again first (a text that matches none still gets null, after every group).

    >>> classes_of(pl.Series(["sorry, too many clients already", "GET /"]), error_rules()).to_list()
    ['too_many_connections', None]
    """
    return _rules_thread().submit(_classes, texts, table, scan=False).result().alias(texts.name)


def select_warm(frame: pl.DataFrame, exprs: list[pl.Expr]) -> pl.DataFrame:
    """``frame.select_seq(exprs)`` in the rules thread, whose regex cache keeps the large patterns
    (message templates, request lines) compiled from chunk to chunk (see :data:`_GROUP`).

    >>> select_warm(pl.DataFrame({"m": ["took 5 ms"]}), [message_template_expr("m")]).item()
    'took <*> ms'
    """
    return _rules_thread().submit(frame.select_seq, exprs).result()


#: polars keeps the last 32 regexes it compiled, per thread. A chunk's parsing uses more than
#: that, so the rules (large alternations) would be compiled again for every chunk; they run in
#: threads of their own instead, tried in groups, and stay compiled from chunk to chunk. Two
#: threads, one per parse worker (``files.map_ordered``): with one, a worker waited for the other's
#: rules while a core idled (7-15% of a 100 MB read's wall time).
_GROUP = 5
_RULES_THREADS = 2
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _rules_thread() -> ThreadPoolExecutor:
    """This process's rules threads (a forked child starts its own: the parent's are not there)."""
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS.clear()
        _POOLS[pid] = ThreadPoolExecutor(max_workers=_RULES_THREADS, thread_name_prefix="loglib-rules")
    return _POOLS[pid]


@lru_cache(maxsize=32)
def _groups(rules: tuple[ErrorRule, ...]) -> list[tuple[str, list[ErrorRule]]]:
    """The rules in priority order, in groups with the pattern that matches where any of them does."""
    ordered = _ordered(rules)
    parts = [ordered[i : i + _GROUP] for i in range(0, len(ordered), _GROUP)]
    return [("|".join(f"(?:{r.pattern})" for r in part), part) for part in parts]


def matches_any(texts: Sequence[pl.Series], rules: tuple[ErrorRule, ...]) -> pl.Series:
    """Per row: does any rule match any of ``texts`` (null texts match nothing)?"""
    pattern = _any_pattern(rules)

    def scan() -> pl.Series:
        hits = [t.str.contains(pattern).fill_null(False) for t in texts]
        return functools.reduce(operator.or_, hits)

    return _rules_thread().submit(scan).result()


def _classes(texts: pl.Series, rules: tuple[ErrorRule, ...], *, scan: bool = True) -> pl.Series:
    """The class of each text as :func:`error_class_expr` gives it (the highest-priority rule that
    matches; null where none does): a group is tried on the rows still open, then its rules.
    ``scan=False`` skips the first search for any rule (texts mostly known to match one)."""
    out = pl.Series([None] * texts.len(), dtype=pl.String)
    if scan:
        idx = texts.str.contains(_any_pattern(rules)).fill_null(False).arg_true()
    else:
        idx = texts.is_not_null().arg_true()
    rest = texts.gather(idx)
    for pattern, members in _groups(rules):
        if not idx.len():
            break
        hit = rest.str.contains(pattern).fill_null(False)
        if not hit.any():
            continue
        where, inside = idx.filter(hit), rest.filter(hit)
        idx, rest = idx.filter(~hit), rest.filter(~hit)
        for rule in members:
            found = inside.str.contains(rule.pattern).fill_null(False)
            if found.any():
                out = out.scatter(where.filter(found), rule.error_class)
                where, inside = where.filter(~found), inside.filter(~found)
                if not where.len():
                    break
    return out


def classify_error(text: str | None, *, rules: Sequence[ErrorRule] | None = None) -> str | None:
    """The ``error_class`` of one message, or of one raw log line with its decoration on.

    This is exactly what ``read_app_log`` computes for an event (its first line plus its
    traceback), so a line copied out of a log classifies the same way here.

    Examples
    --------
    >>> classify_error("sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, "
    ...                "connection timed out, timeout 30.00")
    'pool_timeout'
    >>> classify_error('2024-03-01 10:00:00,123 ERROR app: connection to server at "db" (10.0.0.5), port 5432 '
    ...                'failed: FATAL:  sorry, too many clients already')
    'too_many_connections'
    >>> classify_error("GET /health 200") is None
    True
    """
    if text is None:
        return None
    frame = classify_frame(pl.DataFrame({"t": [str(text)]}, schema={"t": pl.String}), "t", "c", rules=rules)
    return frame["c"][0]


# --- message templates -------------------------------------------------------------------------

#: one scan masks quoted text, UUIDs, hex ids, IPv6, and numbers (with units) as ``<*>``
TEMPLATE_PATTERN = (
    r"\"[^\"\n]*\"|`[^`\n]*`|'[^'\s]*'"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|0x[0-9a-fA-F]+|\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b"
    r"|(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}"
    r"|\b\d+(?:[.:,]\d+)*(?:ms|us|ns|s|m|h|B|KB|MB|GB|KiB|MiB|GiB)?\b"
)
MASK = "<*>"


def message_template_expr(message: pl.Expr | str) -> pl.Expr:
    """A polars expression masking the variable parts of messages, so similar ones group together.

    Examples
    --------
    >>> import polars as pl
    >>> s = pl.Series(["QueuePool limit of size 20 overflow 10 reached, connection timed out, timeout 30.00",
    ...                "QueuePool limit of size 5 overflow 0 reached, connection timed out, timeout 2.00"])
    >>> pl.select(message_template_expr(pl.lit(s))).to_series().unique().to_list()
    ['QueuePool limit of size <*> overflow <*> reached, connection timed out, timeout <*>']
    """
    col = pl.col(message) if isinstance(message, str) else message
    return col.str.replace_all(TEMPLATE_PATTERN, MASK)


def message_template(message: str | None) -> str | None:
    """:func:`message_template_expr` for one message.

    Examples
    --------
    >>> message_template('HikariPool-1 - Connection is not available, request timed out after 30004ms.')
    'HikariPool-<*> - Connection is not available, request timed out after <*>.'
    """
    if message is None:
        return None
    return pl.select(message_template_expr(pl.lit(str(message), dtype=pl.String))).item()
