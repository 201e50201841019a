"""read_app_log against logs written by real software: SQLAlchemy + psycopg 3 against a throwaway
PostgreSQL, driven into pool timeouts, idle-in-transaction timeouts, pg_terminate_backend, too many
clients and refused connections, logged through Python logging, loguru and structlog (JSON)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from tests.conftest import require
from tests.pgserver import find_pg_bin, start_server

sa = pytest.importorskip("sqlalchemy")
loguru = pytest.importorskip("loguru")
structlog = pytest.importorskip("structlog")

pytestmark = pytest.mark.postgres

LOGGING_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the example format


class _Recorded(logging.Handler):
    """Counts the records a logger emits whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.count = text, 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += self.text in record.getMessage()


@dataclass
class Incident:
    """The logs one scripted incident produced, and what the script caused."""

    logging_file: Path
    loguru_file: Path
    structlog_file: Path
    pool_file: Path
    expected: list[tuple[str, str, list[str]]]  # (message, error_class, exc_chain outermost first)
    infos: int
    recycles: int
    start: datetime
    end: datetime


class _Sinks:
    """One application logger per library, all fed the same events."""

    def __init__(self, root: Path) -> None:
        self.logging_file = root / "app_logging.log"
        self.loguru_file = root / "app_loguru.log"
        self.structlog_file = root / "app_structlog.json"
        self.pool_file = root / "pool.log"
        fmt = logging.Formatter(LOGGING_FORMAT)
        fmt.converter = time.gmtime  # asctime in UTC, read back with tz="UTC"
        self.handler = logging.FileHandler(self.logging_file)
        self.handler.setFormatter(fmt)
        self.log = logging.getLogger("app.orders")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        self.log.addHandler(self.handler)
        # SQLAlchemy's own pool logger (INFO shows invalidations and recycles)
        self.pool_handler = logging.FileHandler(self.pool_file)
        self.pool_handler.setFormatter(fmt)
        self.pool_log = logging.getLogger("sqlalchemy.pool")
        self.pool_log.setLevel(logging.INFO)
        self.pool_log.addHandler(self.pool_handler)
        # loguru with its default format (local time: the fixture pins TZ=UTC)
        from loguru import logger

        self.loguru = logger
        self.loguru_id = logger.add(self.loguru_file, colorize=False)
        # structlog JSON lines, exceptions rendered by format_exc_info
        self.structlog_fh = open(self.structlog_file, "w")  # noqa: SIM115
        self.slog = structlog.wrap_logger(
            structlog.PrintLogger(file=self.structlog_fh),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )

    def info(self, msg: str) -> None:
        self.log.info(msg)
        self.loguru.info(msg)
        self.slog.info(msg)

    def error(self, msg: str, exc: BaseException) -> None:
        self.log.error(msg, exc_info=exc)
        self.loguru.opt(exception=exc).error(msg)
        self.slog.error(msg, exc_info=exc)

    def close(self) -> None:
        self.log.removeHandler(self.handler)
        self.handler.close()
        self.pool_log.removeHandler(self.pool_handler)
        self.pool_log.setLevel(logging.WARNING)
        self.pool_handler.close()
        self.loguru.remove(self.loguru_id)
        self.structlog_fh.close()


def _run_incident(root: Path) -> Incident:
    import psycopg

    server = start_server()
    sinks = _Sinks(root)
    expected: list[tuple[str, str, list[str]]] = []
    infos = 0
    start = datetime.now(UTC)
    op_err = ["sqlalchemy.exc.OperationalError", "psycopg.OperationalError"]
    try:
        # 1. pool timeouts: one connection held, two more checkouts wait 0.2 s and give up
        engine = sa.create_engine(server.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
        held = engine.connect()
        for n in range(2):
            try:
                engine.connect()
            except sa.exc.TimeoutError as exc:
                sinks.error(f"checkout {n} failed", exc)
                expected.append((f"checkout {n} failed", "pool_timeout", ["sqlalchemy.exc.TimeoutError"]))
        held.close()
        engine.dispose()
        sinks.info("pool recovered")
        infos += 1
        # 2. idle-in-transaction timeout
        engine = sa.create_engine(server.url)
        with engine.connect() as conn:
            conn.exec_driver_sql("set idle_in_transaction_session_timeout = '200ms'")
            conn.exec_driver_sql("select 1")
            time.sleep(0.6)
            try:
                conn.exec_driver_sql("select 1")
            except sa.exc.DBAPIError as exc:
                sinks.error("transaction abandoned", exc)
                expected.append(
                    (
                        "transaction abandoned",
                        "idle_in_tx_timeout",
                        ["sqlalchemy.exc.InternalError", "psycopg.errors.IdleInTransactionSessionTimeout"],
                    )
                )
        # 3. pg_terminate_backend from another session
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("select pg_backend_pid()").scalar()
            with psycopg.connect(server.dsn, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(%s)", (pid,))
            time.sleep(0.2)
            try:
                conn.exec_driver_sql("select 1")
            except sa.exc.DBAPIError as exc:
                sinks.error("session killed", exc)
                expected.append(
                    (
                        "session killed",
                        "admin_shutdown",
                        ["sqlalchemy.exc.OperationalError", "psycopg.errors.AdminShutdown"],
                    )
                )
        engine.dispose()
        sinks.info("between incidents")
        infos += 1
        # 4. pool recycling (SQLAlchemy logs 'exceeded timeout; recycling' at INFO)
        # The truth is what SQLAlchemy itself emitted (an in-memory handler, not the file loglib
        # reads): on a loaded machine the first connect alone can outlive pool_recycle, and then
        # the first checkout recycles too (3, not 2, at load 15).
        recycled = _Recorded("exceeded timeout; recycling")
        sinks.pool_log.addHandler(recycled)
        engine = sa.create_engine(server.url, pool_size=1, pool_recycle=0.05)
        for _ in range(3):
            with engine.connect() as conn:
                conn.exec_driver_sql("select 1")
            time.sleep(0.15)
        engine.dispose()
        sinks.pool_log.removeHandler(recycled)
        recycles = recycled.count
        assert recycles >= 2
        # 5. too many clients: fill every slot, then one more connection through SQLAlchemy
        hogs = []
        try:
            for _ in range(30):
                hogs.append(psycopg.connect(server.dsn))  # noqa: PERF401 (stops at the refusal)
        except psycopg.OperationalError:
            pass
        engine = sa.create_engine(server.url, poolclass=sa.pool.NullPool)
        try:
            engine.connect()
        except sa.exc.OperationalError as exc:
            sinks.error("signup failed", exc)
            expected.append(("signup failed", "too_many_connections", op_err))
        for hog in hogs:
            hog.close()
        # 6. the server goes away: refused connections
        server.stop()
        for n in range(2):
            try:
                engine.connect()
            except sa.exc.OperationalError as exc:
                sinks.error(f"retry {n} failed", exc)
                expected.append((f"retry {n} failed", "connection_refused", op_err))
        sinks.info("giving up")
        infos += 1
    finally:
        sinks.close()
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
    return Incident(
        sinks.logging_file,
        sinks.loguru_file,
        sinks.structlog_file,
        sinks.pool_file,
        expected,
        infos,
        recycles,
        start - timedelta(seconds=1),
        datetime.now(UTC) + timedelta(seconds=1),
    )


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Incident:
    """Run the scripted incident once for the module."""
    require(find_pg_bin() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield _run_incident(tmp_path_factory.mktemp("app-real"))
    finally:
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()


SINKS = ["logging_file", "loguru_file", "structlog_file"]
FORMATS = {"logging_file": "python", "loguru_file": "loguru", "structlog_file": "json"}


class TestRealIncident:
    """Every event the script caused comes back once, with its class and exception chain."""

    @pytest.mark.parametrize("sink", SINKS)
    def test_errors_recovered_exactly(self, incident: Incident, sink: str) -> None:
        """Error events, in order, carry the message, error_class and chain the script caused."""
        df = ll.read_app_log(getattr(incident, sink), tz="UTC")
        errors = df.filter(pl.col("level") == "error")
        got = list(zip(errors["message"], errors["error_class"], errors["exc_chain"].to_list(), strict=True))
        assert got == incident.expected
        assert errors["exc_type"].to_list() == [chain[-1] for _, _, chain in incident.expected]

    @pytest.mark.parametrize("sink", SINKS)
    def test_no_extra_events(self, incident: Incident, sink: str) -> None:
        """Info events are the script's own, unclassified; tracebacks never become rows."""
        df = ll.read_app_log(getattr(incident, sink), tz="UTC")
        assert df.height == len(incident.expected) + incident.infos
        assert df.filter(pl.col("level") == "info")["error_class"].null_count() == incident.infos
        assert set(df["format"]) == {FORMATS[sink]}

    @pytest.mark.parametrize("sink", SINKS)
    def test_every_line_accounted(self, incident: Incident, sink: str) -> None:
        """No line is rejected, and lines read = lines parsed."""
        df = ll.read_app_log(getattr(incident, sink), tz="UTC")
        report = ll.read_report(df)
        assert report.lines_rejected == 0
        assert report.lines_read == report.lines_parsed
        assert report.lines_read == len(getattr(incident, sink).read_text().splitlines())

    @pytest.mark.parametrize("sink", SINKS)
    def test_times_inside_the_run(self, incident: Incident, sink: str) -> None:
        """Every event time lies inside the script's run, in UTC."""
        df = ll.read_app_log(getattr(incident, sink), tz="UTC")
        assert df["ts"].null_count() == 0
        assert df["ts"].min() >= incident.start
        assert df["ts"].max() <= incident.end

    def test_tracebacks_kept_whole(self, incident: Incident) -> None:
        """The chained traceback of a refused connection is kept, with libpq's second line."""
        df = ll.read_app_log(incident.logging_file, tz="UTC")
        tb = df.filter(pl.col("error_class") == "connection_refused")["traceback"][0]
        assert "The above exception was the direct cause of the following exception" in tb
        assert "Is the server running on that host and accepting TCP/IP connections?" in tb

    def test_services_read_together(self, incident: Incident) -> None:
        """Three services' files read at once stay apart by service and agree on the classes."""
        df = ll.read_app_log([incident.logging_file, incident.loguru_file, incident.structlog_file], tz="UTC")
        per = df.filter(pl.col("error_class").is_not_null()).group_by("service").agg(pl.len()).sort("service")
        assert per.to_dicts() == [
            {"service": s, "len": len(incident.expected)}
            for s in ("app_logging", "app_loguru", "app_structlog")
        ]
        assert df["ts"].is_sorted()

    def test_pool_recycles_are_invalidations(self, incident: Incident) -> None:
        """SQLAlchemy's own 'exceeded timeout; recycling' log lines are conn_invalidated."""
        df = ll.read_app_log(incident.pool_file, tz="UTC")
        recycled = df.filter(pl.col("message").str.contains("exceeded timeout; recycling"))
        assert recycled.height == incident.recycles
        assert set(recycled["error_class"]) == {"conn_invalidated"}
        assert set(recycled["logger"]) == {"sqlalchemy.pool.impl.QueuePool"}
        assert ll.read_report(df).lines_rejected == 0

    def test_classify_error_agrees(self, incident: Incident) -> None:
        """classify_error on each event's raw first line plus traceback gives the reader's class."""
        df = ll.read_app_log(incident.logging_file, tz="UTC")
        lines = incident.logging_file.read_text().splitlines()
        for row in df.iter_rows(named=True):
            raw = "\n".join(x for x in (lines[row["line"] - 1], row["traceback"]) if x)
            assert ll.classify_error(raw) == row["error_class"]

    def test_templates_group_pool_timeouts(self, incident: Incident) -> None:
        """Both pool timeouts share one exception-line template (pool sizes and timeouts masked)."""
        df = ll.read_app_log(incident.logging_file, tz="UTC").filter(pl.col("error_class") == "pool_timeout")
        last_lines = df["traceback"].str.extract(r"(QueuePool limit[^\n]*)", 1)
        templates = pl.select(ll.message_template_expr(pl.lit(last_lines))).to_series()
        assert templates.n_unique() == 1
        assert templates[0].startswith("QueuePool limit of size <*> overflow <*> reached")
