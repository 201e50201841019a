"""checkout-api: the small real web app the incident generators run (one process per instance).

A ``ThreadingHTTPServer`` (one thread per request, as a threaded WSGI server does) in front of a
SQLAlchemy 2 engine with a ``QueuePool``. Endpoints:

* ``POST /checkout?total=N``: stores an order (ORM insert + commit, then a short query), 200.
  Orders over ``ORDER_LIMIT`` are a business error. In ``--bug leak`` the handler opens
  ``Session(engine)`` without a context manager, commits, then reads ``order.total`` (which
  starts a new transaction: a connection is checked out again) and raises; the exception is
  kept in the in-memory ``RECENT_ERRORS`` buffer behind ``/debug/errors``, and its traceback
  keeps the session alive, so the connection is never returned: a leak of one pooled
  connection per big order. ``--bug none`` uses ``with Session(engine)`` and answers 422.
* ``GET /catalog``: a read query.
* ``GET /health`` (no database) and ``GET /metrics`` (prometheus_client).

Database errors answer 503 (``sqlalchemy.exc.TimeoutError`` when the pool is exhausted,
``OperationalError`` when the server is gone); anything else 500. Every failure is logged with
``logger.exception`` (a real traceback). Logs go to ``--log`` with
``%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s`` in UTC; ``sqlalchemy.pool``
logs at INFO (invalidated connections).
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import DateTime, Integer, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

ORDER_LIMIT = 10_000
RECENT_ERRORS: collections.deque[BaseException] = collections.deque(maxlen=500)

log = logging.getLogger("checkout.api")
access = logging.getLogger("checkout.access")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderLimitError(ValueError):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True, help="SQLAlchemy URL")
    p.add_argument("--log", required=True)
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--pool-size", type=int, default=5)
    p.add_argument("--max-overflow", type=int, default=3)
    p.add_argument("--pool-timeout", type=float, default=30.0)
    p.add_argument("--pool-recycle", type=int, default=-1)
    p.add_argument("--pre-ping", action="store_true")
    p.add_argument("--bug", choices=["leak", "none"], default="none")
    p.add_argument("--query-seconds", type=float, default=0.02, help="pg_sleep per request")
    return p.parse_args(argv)


def setup_logging(path: str) -> None:
    logging.Formatter.converter = time.gmtime
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.INFO)


def build(args: argparse.Namespace):
    engine = create_engine(
        args.db,
        pool_size=args.pool_size,
        max_overflow=args.max_overflow,
        pool_timeout=args.pool_timeout,
        pool_recycle=args.pool_recycle,
        pool_pre_ping=args.pre_ping,
        connect_args={"application_name": "checkout-api", "connect_timeout": 5},
    )
    reg = CollectorRegistry()
    requests = Counter("http_requests", "HTTP requests by path and status", ["path", "status"], registry=reg)
    latency = Histogram(
        "http_request_duration_seconds", "request latency", ["path"], registry=reg,
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    )  # fmt: skip
    pool = engine.pool
    Gauge("db_pool_size", "QueuePool size (pool.size())", registry=reg).set_function(pool.size)
    Gauge("db_pool_max_overflow", "max_overflow setting", registry=reg).set(args.max_overflow)
    Gauge("db_pool_checked_out", "connections checked out (pool.checkedout())", registry=reg).set_function(
        pool.checkedout
    )
    Gauge("db_pool_checked_in", "idle connections in the pool (pool.checkedin())", registry=reg).set_function(
        pool.checkedin
    )
    Gauge("db_pool_overflow", "pool.overflow(): negative until the pool is full", registry=reg).set_function(
        pool.overflow
    )
    Gauge("app_info", "version", ["version"], registry=reg).labels(args.version).set(1)
    return engine, reg, requests, latency


def make_handler(args, engine, reg, requests, latency):
    sleep_sql = text("select pg_sleep(:s)")

    def checkout(total: int) -> tuple[int, str]:
        if args.bug == "leak":
            session = Session(engine)
            order = Order(total=total)
            session.add(order)
            session.commit()
            session.execute(sleep_sql, {"s": args.query_seconds})
            if order.total > ORDER_LIMIT:
                raise OrderLimitError(f"order {order.id} total {order.total} exceeds limit {ORDER_LIMIT}")
            order_id = order.id
            session.commit()
            session.close()
            return 200, f"order {order_id}\n"
        with Session(engine) as session:
            order = Order(total=total)
            session.add(order)
            session.commit()
            session.execute(sleep_sql, {"s": args.query_seconds})
            if order.total > ORDER_LIMIT:
                raise OrderLimitError(f"order {order.id} total {order.total} exceeds limit {ORDER_LIMIT}")
            order_id = order.id
            session.commit()
            return 200, f"order {order_id}\n"

    def catalog() -> tuple[int, str]:
        with Session(engine) as session:
            n = session.scalar(select(func.count()).select_from(Order))
            session.execute(sleep_sql, {"s": args.query_seconds})
            return 200, f"{n} orders\n"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format, *a):
            pass  # the access log below replaces http.server's stderr lines

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
            if url.path == "/debug/errors":
                return self._send(200, f"{len(RECENT_ERRORS)} recent errors\n".encode())
            t0 = time.perf_counter()
            try:
                if method == "POST" and url.path == "/checkout":
                    total = int(parse_qs(url.query).get("total", ["100"])[0])
                    status, body = checkout(total)
                elif method == "GET" and url.path == "/catalog":
                    status, body = catalog()
                else:
                    status, body = 404, "not found\n"
            except OrderLimitError as exc:
                if args.bug == "leak":
                    RECENT_ERRORS.append(exc)  # for /debug/errors; its traceback holds the session
                    log.exception("%s %s failed", method, url.path)
                    status, body = 500, "internal error\n"
                else:
                    log.warning("%s %s rejected: %s", method, url.path, exc)
                    status, body = 422, f"{exc}\n"
            except PoolTimeoutError:
                log.exception("%s %s failed: database pool exhausted", method, url.path)
                status, body = 503, "service unavailable\n"
            except (OperationalError, DBAPIError):
                log.exception("%s %s failed: database error", method, url.path)
                status, body = 503, "service unavailable\n"
            except Exception:
                log.exception("%s %s failed", method, url.path)
                status, body = 500, "internal error\n"
            elapsed = time.perf_counter() - t0
            requests.labels(url.path, str(status)).inc()
            latency.labels(url.path).observe(elapsed)
            access.info('"%s %s" %d %.3fs', method, self.path, status, elapsed)
            self._send(status, body.encode())
            return None

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

    return Handler


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.log)
    engine, reg, requests, latency = build(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args, engine, reg, requests, latency))
    server.daemon_threads = True
    log.info(
        "checkout-api %s starting on port %d: pool_size=%d max_overflow=%d pool_timeout=%.1f "
        "pool_recycle=%d pool_pre_ping=%s",
        args.version, args.port, args.pool_size, args.max_overflow, args.pool_timeout, args.pool_recycle,
        args.pre_ping,
    )  # fmt: skip

    def stop(signum, _frame):
        log.info("received %s, shutting down", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.dispose()  # closes the idle pooled connections; checked-out ones die with the process
        log.info("checkout-api %s stopped", args.version)
        logging.shutdown()
    # like a forked gunicorn/uwsgi worker: no interpreter teardown, so connections still
    # checked out (leaked) are not returned; the kernel closes their sockets
    os._exit(0)


if __name__ == "__main__":
    main()
