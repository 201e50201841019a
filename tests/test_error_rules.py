"""The error taxonomy: the rules table, precedence, user rules, templates."""

from __future__ import annotations

import polars as pl
import pytest

import loglib as ll
from loglib.formats.error_rules import classify_frame

# (message as the library prints it, class, where the text comes from)
SAMPLES = [
    ("QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00 "
     "(Background on this error at: https://sqlalche.me/e/20/3o7r)", "pool_timeout", "sqlalchemy/pool/impl.py"),
    ("Error: timeout exceeded when trying to connect", "pool_timeout", "pg-pool index.js"),
    ("Timed out fetching a new connection from the connection pool. More info: http://pris.ly/d/connection-pool "
     "(Current connection pool timeout: 10, connection limit: 5)", "pool_timeout", "Prisma P2024"),
    ("KnexTimeoutError: Knex: Timeout acquiring a connection. The pool is probably full. "
     "Are you missing a .transacting(trx) call?", "pool_timeout", "knex lib/client.js"),
    ("java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out "
     "after 30000ms.", "pool_timeout", "HikariCP HikariPool.createTimeoutException"),
    ("ActiveRecord::ConnectionTimeoutError (could not obtain a connection from the pool within 5.000 seconds "
     "(waited 5.001 seconds); all pooled connections were in use)", "pool_timeout", "Rails connection_pool/queue.rb"),
    ("psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec", "pool_timeout", "psycopg_pool pool.py"),
    ("java.lang.Exception: Apparent connection leak detected", "connection_leak", "HikariCP ProxyLeakTask.java"),
    ("The garbage collector is trying to clean up non-checked-in connection <psycopg.Connection>, which will be "
     "terminated.  Please ensure that SQLAlchemy pooled connections are returned to the pool explicitly",
     "connection_leak", "sqlalchemy/pool/base.py _finalize_fairy"),
    ('FATAL:  sorry, too many clients already', "too_many_connections", "PostgreSQL postinit.c"),
    ("FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
     "too_many_connections", "PostgreSQL 16 postinit.c"),
    ('FATAL:  too many connections for role "app"', "too_many_connections", "PostgreSQL postinit.c"),
    ('connection to server at "127.0.0.1", port 5432 failed: Connection refused\n\tIs the server running on that '
     "host and accepting TCP/IP connections?", "connection_refused", "libpq fe-connect.c"),
    ("Error: connect ECONNREFUSED 127.0.0.1:5432", "connection_refused", "Node net"),
    ("dial tcp 127.0.0.1:5432: connect: connection refused", "connection_refused", "Go net"),
    ("org.postgresql.util.PSQLException: Connection to localhost:5432 refused. Check that the hostname and port are "
     "correct and that the postmaster is accepting TCP/IP connections.", "connection_refused", "pgjdbc"),
    ("ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 5432)", "connection_refused", "asyncpg"),
    ('connection to server at "10.0.0.5", port 5432 failed: timeout expired', "connect_timeout", "libpq"),
    ("Error: Connection terminated due to connection timeout", "connect_timeout", "pg client.js"),
    ("read: connection reset by peer", "connection_reset", "Go net"),
    ("java.net.SocketException: Connection reset", "connection_reset", "java.net"),
    ("server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
     "server_closed", "libpq fe-misc.c"),
    ("Error: Connection terminated unexpectedly", "server_closed", "pg client.js"),
    ("(2006, 'MySQL server has gone away')", "server_closed", "MySQL"),
    ("driver: bad connection", "server_closed", "Go database/sql"),
    ("psycopg2.InterfaceError: connection already closed", "conn_already_closed", "psycopg2"),
    ("org.postgresql.util.PSQLException: This connection has been closed.", "conn_already_closed", "pgjdbc"),
    ("sql: database is closed", "conn_already_closed", "Go database/sql"),
    ("SSL SYSCALL error: EOF detected", "ssl_eof", "libpq fe-secure-openssl.c"),
    ('FATAL:  password authentication failed for user "app"', "auth_failed", "PostgreSQL auth.c"),
    ('FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "app", database "shop", no encryption',
     "auth_failed", "PostgreSQL auth.c"),
    ("FATAL:  terminating connection due to idle-in-transaction timeout", "idle_in_tx_timeout", "PostgreSQL"),
    ("FATAL:  terminating connection due to idle-session timeout", "idle_session_timeout", "PostgreSQL 14+"),
    ("FATAL:  terminating connection due to administrator command", "admin_shutdown", "PostgreSQL"),
    ("FATAL:  the database system is starting up", "server_not_ready", "PostgreSQL postmaster.c"),
    # pgBouncer's own errors, as psycopg printed them from a real pgBouncer 1.18
    ("psycopg.errors.ProtocolViolation: server login has been failing, try again later (server_login_retry)",
     "pooler_error", "PgBouncer client.c"),
    ("psycopg.errors.ProtocolViolation: query_wait_timeout", "pooler_error", "PgBouncer janitor.c"),
    ("psycopg.errors.ProtocolViolation: server conn crashed?", "pooler_error", "PgBouncer server.c"),
    ('connection failed: connection to server at "127.0.0.1", port 6432 failed: FATAL:  database "shop" is '
     "disabled", "pooler_error", "PgBouncer objects.c (DISABLE)"),
    ("ERROR:  pgbouncer cannot connect to server", "pooler_error", "PgBouncer client.c (before 1.12)"),
    ('connection to server at "127.0.0.1", port 6432 failed: FATAL:  no more connections allowed '
     "(max_client_conn)", "too_many_connections", "PgBouncer client.c"),
    ("FATAL:  the database system is in recovery mode", "server_not_ready", "PostgreSQL postmaster.c"),
    ("WARNING:  terminating connection because of crash of another server process", "crash_restart", "PostgreSQL"),
    ('could not translate host name "db" to address: Name or service not known', "dns_failure", "libpq"),
    ("Error: getaddrinfo ENOTFOUND db", "dns_failure", "Node dns"),
    ("dial tcp: lookup db on 10.96.0.10:53: no such host", "dns_failure", "Go net"),
    ("ERROR:  canceling statement due to statement timeout", "statement_timeout", "PostgreSQL postgres.c"),
    ("ERROR:  canceling statement due to lock timeout", "lock_timeout", "PostgreSQL postgres.c"),
    ("ERROR:  deadlock detected", "deadlock", "PostgreSQL deadlock.c"),
    ("Invalidate connection <psycopg.Connection [BAD] at 0x7f> (reason: OperationalError:server closed the "
     "connection unexpectedly)", "conn_invalidated", "sqlalchemy/pool/base.py _log_invalidate"),
    ("Connection <psycopg.Connection [IDLE] at 0x7f> exceeded timeout; recycling", "conn_invalidated",
     "sqlalchemy/pool/base.py get_connection"),
    ("HikariPool-1 - Failed to validate connection org.postgresql.jdbc.PgConnection@1d2e3f4a (This connection has "
     "been closed.). Possibly consider using a shorter maxLifetime value.", "conn_invalidated", "HikariCP PoolBase"),
    ("WORKER TIMEOUT (pid:13)", "worker_timeout", "gunicorn arbiter.py"),
    ("GET /health 200", None, "an ordinary line"),
    ("Worker (pid:7) was sent SIGKILL! Perhaps out of memory?", None, "gunicorn: not a database matter"),
]  # fmt: skip


class TestTable:
    """The built-in table classifies the libraries' real messages."""

    @pytest.mark.parametrize(
        ("text", "expected", "source"), SAMPLES, ids=[s[2] + ":" + str(s[1]) for s in SAMPLES]
    )
    def test_sample(self, text: str, expected: str | None, source: str) -> None:
        """One library message gets its class."""
        assert ll.classify_error(text) == expected

    def test_every_class_has_a_sample(self) -> None:
        """Every class of the table is exercised here."""
        assert set(ll.ERROR_CLASSES) <= {s[1] for s in SAMPLES}

    def test_every_rule_cites_a_source(self) -> None:
        """Each rule says where its messages come from."""
        assert all(rule.source for rule in ll.ERROR_RULES)

    def test_expr_agrees_with_values(self) -> None:
        """The polars expression and classify_error give the same answers."""
        df = pl.DataFrame({"t": [s[0] for s in SAMPLES]})
        got = df.select(ll.error_class_expr("t").alias("c"))["c"].to_list()
        assert got == [ll.classify_error(s[0]) for s in SAMPLES]

    def test_grouped_rules_agree_with_expr(self) -> None:
        """classify_frame (rules tried in groups, in a thread of their own) gives error_class_expr's
        answer on every sample, on every pair of samples joined (several rules match: the
        highest priority wins) and on lines that match none."""
        texts = [s[0] for s in SAMPLES]
        texts += [f"{a}\n{b}" for a in texts[::3] for b in texts[1::4]] + ["GET /health 200", None]
        df = pl.DataFrame({"t": texts}, schema={"t": pl.String})
        expected = df.select(ll.error_class_expr("t").alias("c"))["c"]
        got = classify_frame(df, "t", "c")["c"]
        assert got.null_count() < len(texts) - 1
        assert got.to_list() == expected.to_list()


class TestPrecedence:
    """When several rules match, the specific server reason wins."""

    def test_too_many_inside_connection_failed(self) -> None:
        """'too many clients' wins over the generic connection-failed text around it."""
        text = ('sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "db" '
                "(10.0.0.5), port 5432 failed: FATAL:  sorry, too many clients already")  # fmt: skip
        assert ll.classify_error(text) == "too_many_connections"

    def test_admin_shutdown_over_server_closed(self) -> None:
        """The server's reason wins over libpq's 'server closed the connection unexpectedly'."""
        text = ("terminating connection due to administrator command\nserver closed the connection unexpectedly\n"
                "\tThis probably means the server terminated abnormally")  # fmt: skip
        assert ll.classify_error(text) == "admin_shutdown"

    def test_hikari_validation_over_closed(self) -> None:
        """Hikari's failed validation is conn_invalidated even though it quotes 'has been closed'."""
        text = next(t for t, _, src in SAMPLES if src == "HikariCP PoolBase")
        assert ll.classify_error(text) == "conn_invalidated"

    def test_decorated_line(self) -> None:
        """A raw log line with its timestamp and level still on classifies like its message."""
        assert ll.classify_error("2024-03-01 10:00:00,000 ERROR app: deadlock detected") == "deadlock"


class TestUserRules:
    """Users add rules, process-wide or per call."""

    def test_add_and_reset(self) -> None:
        """add_error_rule takes effect for classify_error and read_app_log; reset removes it."""
        try:
            ll.add_error_rule("pool_timeout", r"bulkhead full")
            assert ll.classify_error("bulkhead full, rejecting") == "pool_timeout"
            df = ll.read_app_log(b"2024-03-01T10:00:00Z ERROR bulkhead full\n")
            assert df["error_class"][0] == "pool_timeout"
        finally:
            ll.reset_error_rules()
        assert ll.classify_error("bulkhead full, rejecting") is None

    def test_user_rule_wins_by_default(self) -> None:
        """A user rule outranks the built-ins unless given a lower priority."""
        rules = [*ll.error_rules(), ll.ErrorRule("vendor_outage", r"too many clients", priority=200)]
        assert ll.classify_error("sorry, too many clients already", rules=rules) == "vendor_outage"
        low = [*ll.error_rules(), ll.ErrorRule("vendor_outage", r"too many clients", priority=1)]
        assert ll.classify_error("sorry, too many clients already", rules=low) == "too_many_connections"

    def test_rules_argument_of_reader(self) -> None:
        """read_app_log(rules=...) classifies with that table."""
        rules = [ll.ErrorRule("mine", r"hello")]
        df = ll.read_app_log(b"2024-03-01T10:00:00Z INFO hello\n", rules=rules)
        assert df["error_class"][0] == "mine"

    def test_bad_regex(self) -> None:
        """A look-around pattern is refused with a clear message."""
        with pytest.raises(ValueError, match="not a valid Rust regex"):
            ll.add_error_rule("x", r"(?<=a)b")

    def test_bad_name(self) -> None:
        """Class names are lower_snake_case."""
        with pytest.raises(ValueError, match="lower_snake_case"):
            ll.add_error_rule("Pool Timeout", r"x")


class TestTemplates:
    """message_template masks what varies."""

    def test_pools_group(self) -> None:
        """QueuePool messages of different pools share one template."""
        a = ll.message_template(
            "QueuePool limit of size 20 overflow 10 reached, connection timed out, timeout 30.00"
        )
        b = ll.message_template(
            "QueuePool limit of size 5 overflow 0 reached, connection timed out, timeout 2.00"
        )
        assert a == b == "QueuePool limit of size <*> overflow <*> reached, connection timed out, timeout <*>"

    def test_hosts_ids_quotes(self) -> None:
        """Hosts, ports, quoted names, UUIDs and hex ids are masked."""
        t = ll.message_template(
            'connection to server at "db-7" (10.0.0.5), port 5432 failed for 123e4567-e89b-12d3-a456-426614174000 '
            "at PgConnection@5a3949ab"
        )
        assert t == "connection to server at <*> (<*>), port <*> failed for <*> at PgConnection@<*>"

    @pytest.mark.filterwarnings("ignore::loglib.NoTimestampWarning")
    def test_column_in_reader(self) -> None:
        """read_app_log fills message_template from the message."""
        df = ll.read_app_log(
            b"[ERROR] retry 3 of 5 failed\n[ERROR] retry 4 of 5 failed\n", raise_if_empty=False
        )
        assert df["message_template"].n_unique() == 1


def test_two_parse_workers_rules_run_at_once():
    """The two parse workers' rules calls run at the same time: with one rules thread a worker
    waited for the other's while a core idled (issue 17)."""
    import threading

    from loglib.formats.error_rules import _rules_thread

    barrier = threading.Barrier(2, timeout=5)
    futures = [_rules_thread().submit(barrier.wait) for _ in range(2)]
    assert sorted(f.result(timeout=10) for f in futures) == [0, 1]
