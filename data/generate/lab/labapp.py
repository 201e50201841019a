"""checkout-api as the lab runs it: one real process, its own log, and its own truth stream.

A ``ThreadingHTTPServer`` in front of a SQLAlchemy 2 ``QueuePool`` engine (psycopg 3), as in
``data/generate/app.py``, with three additions:

* **leaks on one or two code paths**, each with a probability per request (``--leak
  /checkout=0.05``): ``POST /checkout`` commits an order, reads it back (autobegin: the
  connection is checked out again, in a transaction) and raises; ``GET /report`` opens
  ``engine.connect()``, queries and raises. The session / connection is kept in ``LEAKED``
  (as an exception kept for a debug page keeps its frame), so it is never checked in;
* **the log through logging, loguru or structlog JSON** (``--logger``), with the start and
  stop wording of a home-grown app, uvicorn or gunicorn (``--start-line``);
* **a truth stream** (``--truth``, JSON lines, never read by loglib): each request's start, end,
  status and outcome; each checkout and checkin with the process's checked-out count; each leak
  with its time, path and PostgreSQL backend pid; the process's start and stop and how.

Optional: the pool gauges on ``/metrics`` (``--pool-gauge``) and loglib's pool-event log
(``--pool-event-log``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import DateTime, Integer, create_engine, event, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

LEAKED: list[object] = []  # sessions/connections the buggy paths never give back


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now())


class LeakedError(RuntimeError):
    """The buggy path's business error (raised after the connection was taken)."""


class Truth:
    """The app's own event stream: one JSON object per line, ``t`` in epoch seconds."""

    def __init__(self, path: str, index: int) -> None:
        self.fh = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self.lock = threading.Lock()
        self.base = {"proc": index, "pid": os.getpid()}

    def write(self, ev: str, **fields: object) -> None:
        line = json.dumps({"t": time.time(), "ev": ev, **self.base, **fields})
        with self.lock:
            self.fh.write(line + "\n")


class Log:
    """info / warning / exception on the chosen library, one call per event."""

    def __init__(self, kind: str, path: str, pattern: str | None) -> None:
        self.kind = kind
        if kind == "logging":
            logging.Formatter.converter = time.gmtime
            handler = logging.FileHandler(path, mode="a", encoding="utf-8")
            handler.setFormatter(logging.Formatter(pattern))
            root = logging.getLogger()
            root.addHandler(handler)
            root.setLevel(logging.INFO)
            logging.getLogger("sqlalchemy.pool").setLevel(logging.INFO)
            self.impl = logging
        elif kind == "loguru":
            from loguru import logger

            logger.remove()
            logger.add(path, backtrace=False, diagnose=False, level="INFO")  # loguru's default format
            self.impl = logger
        else:
            import structlog

            self.fh = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            structlog.configure(
                processors=[
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(),
                ],
                logger_factory=structlog.PrintLoggerFactory(file=self.fh),
            )
            self.impl = structlog

    def _emit(self, level: str, name: str, msg: str, exc: bool = False) -> None:
        if self.kind == "logging":
            lg = logging.getLogger(name)
            (lg.exception if exc else getattr(lg, level))(msg)
        elif self.kind == "loguru":
            lg = self.impl.bind(name=name)
            (lg.opt(exception=True).error if exc else getattr(lg, level))(msg)
        else:
            lg = self.impl.get_logger().bind(logger=name)
            (lg.exception if exc else getattr(lg, level))(msg)

    def close(self) -> None:
        if self.kind == "logging":
            logging.shutdown()
        elif self.kind == "loguru":
            self.impl.remove()
        else:
            self.fh.flush()

    def info(self, name: str, msg: str) -> None:
        self._emit("info", name, msg)

    def warning(self, name: str, msg: str) -> None:
        self._emit("warning", name, msg)

    def exception(self, name: str, msg: str) -> None:
        self._emit("error", name, msg, exc=True)


START = {
    "starting": ("checkout.api", "checkout-api {version} starting pid {pid} on port {port}: {pool}"),
    "uvicorn": ("uvicorn.error", "Started server process [{pid}]"),
    "gunicorn": ("gunicorn.error", "Booting worker with pid: {pid}"),
}
STOP = {
    "starting": ("checkout.api", "received {signal}, shutting down", "checkout-api {version} stopped"),
    "uvicorn": ("uvicorn.error", "Shutting down", "Finished server process [{pid}]"),
    "gunicorn": ("gunicorn.error", "Handling signal: {sig}", "Worker exiting (pid: {pid})"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True, help="SQLAlchemy URL")
    p.add_argument("--log", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--logger", choices=["logging", "loguru", "structlog"], default="logging")
    p.add_argument("--pattern", default="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    p.add_argument("--start-line", choices=sorted(START), default="starting")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--pool-size", type=int, default=5)
    p.add_argument("--max-overflow", type=int, default=0)
    p.add_argument("--pool-timeout", type=float, default=2.0)
    p.add_argument("--pre-ping", action="store_true")
    p.add_argument("--leak", action="append", default=[], help="PATH=PROBABILITY")
    p.add_argument("--query-seconds", type=float, default=0.02)
    p.add_argument("--pool-gauge", action="store_true")
    p.add_argument("--pool-event-log")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-prepare",
        action="store_true",
        help="no server-side prepared statements (pgBouncer in transaction mode)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    leaks = {k: float(v) for k, v in (item.split("=") for item in args.leak)}
    rng = random.Random(f"{args.seed}:{args.index}:{os.getpid()}")
    rng_lock = threading.Lock()
    truth = Truth(args.truth, args.index)
    log = Log(args.logger, args.log, args.pattern)
    connect_args: dict = {"application_name": "checkout-api", "connect_timeout": 5}
    if args.no_prepare:
        connect_args["prepare_threshold"] = None
    engine = create_engine(
        args.db, pool_size=args.pool_size, max_overflow=args.max_overflow, pool_timeout=args.pool_timeout,
        pool_pre_ping=args.pre_ping, connect_args=connect_args,
    )  # fmt: skip
    held: set[int] = set()
    held_lock = threading.Lock()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, proxy):
        with held_lock:
            held.add(id(record))
            n = len(held)
        truth.write("checkout", conn=id(record), backend=dbapi_conn.info.backend_pid, out=n)

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn, record):
        with held_lock:
            held.discard(id(record))
            n = len(held)
        truth.write("checkin", conn=id(record), out=n)

    if args.pool_event_log:
        from loglib.instrument import log_pool_events

        log_pool_events(engine, path=args.pool_event_log, name=f"checkout-api-{args.index}")
    reg = CollectorRegistry()
    requests = Counter("http_requests", "HTTP requests by path and status", ["path", "status"], registry=reg)
    if args.pool_gauge:
        pool = engine.pool
        Gauge("db_pool_size", "QueuePool size", registry=reg).set_function(pool.size)
        Gauge("db_pool_max_overflow", "max_overflow setting", registry=reg).set(args.max_overflow)
        Gauge("db_pool_checked_out", "connections checked out", registry=reg).set_function(pool.checkedout)
        Gauge("db_pool_checked_in", "idle connections in the pool", registry=reg).set_function(pool.checkedin)
    sleep_sql = text("select pg_sleep(:s)")

    def leaks_now(path: str) -> bool:
        p = leaks.get(path, 0.0)
        with rng_lock:
            return p > 0 and rng.random() < p

    def backend_of(conn) -> dict:
        """The leaked connection's PostgreSQL backend pid and local port (the middlebox sees that port)."""
        raw = conn.connection.dbapi_connection
        dup = socket.socket(fileno=os.dup(raw.pgconn.socket))
        try:
            port = dup.getsockname()[1]
        finally:
            dup.close()
        return {"backend": raw.info.backend_pid, "port": port}

    def checkout(total: int) -> tuple[int, str]:
        if leaks_now("/checkout"):
            session = Session(engine)
            order = Order(total=total)
            session.add(order)
            session.commit()
            _ = order.total  # expired after commit: a new transaction checks a connection out again
            session.execute(sleep_sql, {"s": args.query_seconds})
            LEAKED.append(session)
            truth.write("leak", path="/checkout", in_tx=True, **backend_of(session.connection()))
            raise LeakedError(f"order {order.id}: payment provider declined, total {total}")
        with Session(engine) as session:
            order = Order(total=total)
            session.add(order)
            session.commit()
            session.execute(sleep_sql, {"s": args.query_seconds})
            order_id = order.id
            session.commit()
        return 200, f"order {order_id}\n"

    def report() -> tuple[int, str]:
        if leaks_now("/report"):
            conn = engine.connect()
            n = conn.execute(select(func.count()).select_from(Order)).scalar()
            LEAKED.append(conn)
            truth.write("leak", path="/report", in_tx=True, **backend_of(conn))
            raise LeakedError(f"report over {n} orders: template missing")
        with engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(Order)).scalar()
            conn.execute(sleep_sql, {"s": args.query_seconds})
        return 200, f"{n} orders\n"

    def catalog() -> tuple[int, str]:
        with Session(engine) as session:
            n = session.scalar(select(func.count()).select_from(Order))
            session.execute(sleep_sql, {"s": args.query_seconds})
        return 200, f"{n} orders\n"

    inflight = [0]
    inflight_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format, *a):
            pass

        def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            if url.path == "/health":
                return self._send(200, b"ok\n")
            if url.path == "/metrics":
                return self._send(200, generate_latest(reg), CONTENT_TYPE_LATEST)
            t0 = time.time()
            rid = f"{args.index}-{os.getpid()}-{threading.get_ident()}-{t0:.6f}"
            truth.write("req_start", rid=rid, path=url.path)
            with inflight_lock:
                inflight[0] += 1
            outcome = "ok"
            try:
                if method == "POST" and url.path == "/checkout":
                    status, body = checkout(int(parse_qs(url.query).get("total", ["100"])[0]))
                elif method == "GET" and url.path == "/report":
                    status, body = report()
                elif method == "GET" and url.path == "/catalog":
                    status, body = catalog()
                else:
                    status, body = 404, "not found\n"
            except LeakedError:
                log.exception("checkout.api", f"{method} {url.path} failed")
                status, body, outcome = 500, "internal error\n", "leak"
            except PoolTimeoutError:
                log.exception("checkout.api", f"{method} {url.path} failed: database pool exhausted")
                status, body, outcome = 503, "service unavailable\n", "pool_timeout"
            except (OperationalError, DBAPIError):
                log.exception("checkout.api", f"{method} {url.path} failed: database error")
                status, body, outcome = 503, "service unavailable\n", "db_error"
            except Exception:
                log.exception("checkout.api", f"{method} {url.path} failed")
                status, body, outcome = 500, "internal error\n", "error"
            elapsed = time.time() - t0
            requests.labels(url.path, str(status)).inc()
            log.info("checkout.access", f'"{method} {self.path}" {status} {elapsed:.3f}s')
            truth.write("req_end", rid=rid, path=url.path, status=status, outcome=outcome, start=t0)
            with inflight_lock:
                inflight[0] -= 1
            with contextlib.suppress(OSError):  # the client gave up
                self._send(status, body.encode())
            return None

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    fill = {"version": args.version, "pid": os.getpid(), "port": args.port,
            "pool": f"pool_size={args.pool_size} max_overflow={args.max_overflow} pool_timeout={args.pool_timeout}"}  # fmt: skip
    name, start_msg = START[args.start_line]
    log.info(name, start_msg.format(**fill))
    truth.write("process_start", version=args.version, leaks=leaks)
    stop_name, stop_msg, stopped_msg = STOP[args.start_line]

    def stop(signum, _frame):
        sig = signal.Signals(signum).name
        log.info(stop_name, stop_msg.format(signal=sig, sig=sig[3:].lower(), **fill))
        truth.write("stop_requested", signal=sig)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        deadline = time.time() + 3
        while inflight[0] > 0 and time.time() < deadline:
            time.sleep(0.05)
        engine.dispose()  # closes the idle pooled connections; leaked ones die with the process
        log.info(stop_name, stopped_msg.format(**fill))
        truth.write("process_stop", leaked_open=len(LEAKED))
        log.close()
        sys.stdout.flush()
    os._exit(0)  # like a forked worker: no teardown that would return the leaked connections


if __name__ == "__main__":
    main()
