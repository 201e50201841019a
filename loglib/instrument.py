"""SQLAlchemy pool-event logging: one JSON line per pool event, with the call site of each checkout.

Logs show *that* connections leaked; only the pool knows *who* took them. Attach
:func:`log_pool_events` to an engine and every checkout records the first frame of the
application (outside SQLAlchemy and loglib) that asked for a connection; read the lines back
with :func:`loglib.read_pool_events` and find the culprits with :func:`loglib.pool_leaks`.

The line format (keys with a null value are left out; ``read_pool_events`` fills them)::

    {"ts": "2024-03-01T10:00:00.123456+00:00", "event": "checkout", "conn": 3, "backend_pid": 4711,
     "pool": "postgresql+psycopg://app:***@db/shop", "process": 812, "thread": "MainThread",
     "task": "Task-7", "size": 5, "checked_out": 2, "overflow": -3,
     "call_file": "/srv/app/orders.py", "call_line": 42, "call_function": "create_order",
     "stack": "/srv/app/orders.py:42 create_order < /srv/app/api.py:17 post_order", "sample": 1.0}
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

from loglib.core.schema import POOL_EVENT_KINDS

try:  # orjson is a dependency; json gives the same lines
    import orjson

    def _dumps(record: dict) -> bytes:
        return orjson.dumps(record) + b"\n"

except ImportError:  # pragma: no cover - exercised only without orjson

    def _dumps(record: dict) -> bytes:
        return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


_LOG = logging.getLogger("loglib.instrument")
#: application frames kept in ``stack`` (innermost first)
STACK_DEPTH = 5
_HANDLED_BY_RECORD = ("checkout", "checkin", "reset", "invalidate", "soft_invalidate", "close", "detach")


def _library_dirs() -> tuple[str, ...]:
    """Directories whose frames are never the call site: SQLAlchemy, loglib, greenlet, asyncio, contextlib."""
    import contextlib

    import sqlalchemy

    dirs = [
        str(Path(sqlalchemy.__file__).resolve().parent),
        str(Path(__file__).resolve().parent),
        str(Path(asyncio.__file__).resolve().parent),
        str(Path(contextlib.__file__).resolve()),
        str(Path(threading.__file__).resolve()),
    ]
    greenlet = sys.modules.get("greenlet")
    if greenlet is not None and getattr(greenlet, "__file__", None):
        dirs.append(str(Path(greenlet.__file__).resolve().parent))
    # unresolved spellings too: frames carry the path the module was imported by
    dirs += [str(Path(d)) for d in (sqlalchemy.__file__, __file__)]
    return tuple(dict.fromkeys(dirs))


class PoolEventLog:
    """The listeners :func:`log_pool_events` attached; ``remove()`` detaches them.

    Attributes
    ----------
    written
        Event lines written so far.
    failures
        Events that could not be logged (the first one was logged to ``loglib.instrument``).
    """

    def __init__(
        self,
        target: Any,
        *,
        path: str | os.PathLike | None,
        logger: logging.Logger | str | None,
        capture_stack: bool,
        sample: float,
        name: str | None,
        events: Iterable[str] | None,
    ) -> None:
        if not 0.0 <= float(sample) <= 1.0:
            msg = f"sample={sample!r} must be a fraction between 0.0 (no checkouts) and 1.0 (every checkout)"
            raise ValueError(msg)
        chosen = tuple(POOL_EVENT_KINDS if events is None else events)
        unknown = sorted(set(chosen) - set(POOL_EVENT_KINDS))
        if unknown:
            msg = f"events={unknown!r} are not pool events; choose from {', '.join(POOL_EVENT_KINDS)}"
            raise ValueError(msg)
        engine = getattr(target, "sync_engine", target)  # an AsyncEngine wraps a sync one
        from sqlalchemy.engine import Engine
        from sqlalchemy.pool import Pool

        if isinstance(engine, Engine):
            self._get_pool: Callable[[], Any] = lambda: engine.pool  # dispose() replaces the pool
            default_name = engine.url.render_as_string(hide_password=True)
        elif isinstance(engine, Pool):
            self._get_pool = lambda: engine
            default_name = f"{type(engine).__name__}@{id(engine):x}"
        else:
            msg = (
                f"engine must be a SQLAlchemy Engine, AsyncEngine or Pool, got {type(target).__name__}; "
                "pass the object create_engine() or create_async_engine() returned"
            )
            raise TypeError(msg)
        self._target = engine
        self.name = name or default_name
        self.sample = float(sample)
        self.capture_stack = capture_stack
        self.written = 0
        self.failures = 0
        self._process = os.getpid()
        self._ids: dict[
            int, tuple[int, int | None]
        ] = {}  # id(record) or id(dbapi conn) -> (conn, backend pid)
        self._sampled: dict[int, bool] = {}  # id(record) -> this checkout is logged
        self._counter = count(1)
        self._first: tuple[int, tuple[int, int | None]] | None = None
        self._status_pool: Any = None
        self._status: list[tuple[str, Callable[[], int]]] = []
        self._skip_code: dict[Any, bool] = {}
        self._lib_dirs = _library_dirs()
        self._fd: int | None = None
        self._logger: logging.Logger | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: one write() per line, so processes sharing the file never interleave lines
            self._fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if logger is not None or path is None:
            self._logger = (
                logging.getLogger(logger or "loglib.pool")
                if not isinstance(logger, logging.Logger)
                else logger
            )
        self._listeners: list[tuple[str, Callable]] = []
        from sqlalchemy import event

        for kind in chosen:
            handler = self._make_handler(kind)
            event.listen(engine, kind, handler)
            self._listeners.append((kind, handler))

    # -- the handlers --------------------------------------------------------------------------

    def _make_handler(self, kind: str) -> Callable:
        guard = self._guard
        if kind == "checkout":

            def on_checkout(dbapi_connection, connection_record, connection_proxy):
                guard(kind, self._on_checkout, dbapi_connection, connection_record)

            return on_checkout
        if kind in ("checkin", "reset"):
            if kind == "checkin":

                def on_checkin(dbapi_connection, connection_record):
                    guard(kind, self._on_return, kind, dbapi_connection, connection_record)

                return on_checkin

            def on_reset(dbapi_connection, connection_record, reset_state):
                guard(kind, self._on_return, kind, dbapi_connection, connection_record)

            return on_reset
        if kind in ("connect", "first_connect"):

            def on_connect(dbapi_connection, connection_record):
                guard(kind, self._on_connect, kind, dbapi_connection, connection_record)

            return on_connect
        if kind == "close_detached":

            def on_close_detached(dbapi_connection):
                guard(kind, self._on_close_detached, dbapi_connection)

            return on_close_detached

        if kind in ("invalidate", "soft_invalidate"):

            def on_invalidate(dbapi_connection, connection_record, exception):
                guard(kind, self._on_other, kind, dbapi_connection, connection_record, exception)

            return on_invalidate

        def on_other(dbapi_connection, connection_record):
            guard(kind, self._on_other, kind, dbapi_connection, connection_record, None)

        return on_other

    def _guard(self, kind: str, handle: Callable[..., None], *args: Any) -> None:
        """Run one event's handler; a failure is counted (:meth:`_fail`), never raised."""
        try:
            handle(*args)
        # blanket on purpose (1 of 3 in loglib/): this runs inside the application's connection
        # pool, so a bug in loglib or an odd driver must never fail the application's request;
        # the first failure is logged with its error and all are counted (PoolEventLog.failures)
        except Exception as exc:
            self._fail(kind, exc)

    def _on_checkout(self, dbapi_connection: Any, connection_record: Any) -> None:
        logged = self.sample >= 1.0 or random.random() < self.sample
        self._sampled[id(connection_record)] = logged
        if logged:
            record = self._base("checkout", connection_record, dbapi_connection)
            if self.capture_stack:
                self._add_call_site(record)
            self._emit(record)

    def _on_connect(self, kind: str, dbapi_connection: Any, connection_record: Any) -> None:
        first = self._first
        if kind == "connect" and first is not None and first[0] == id(dbapi_connection):
            ident = first[1]  # first_connect already named this connection
        else:
            ident = (next(self._counter), _backend_pid(dbapi_connection))
        self._first = (id(dbapi_connection), ident) if kind == "first_connect" else None
        self._ids[id(connection_record)] = ident
        self._ids[id(dbapi_connection)] = ident
        self._emit(self._base(kind, connection_record, dbapi_connection))

    def _on_close_detached(self, dbapi_connection: Any) -> None:
        record = self._base("close_detached", None, dbapi_connection)
        self._ids.pop(id(dbapi_connection), None)
        self._emit(record)

    def _on_return(self, kind: str, dbapi_connection: Any, connection_record: Any) -> None:
        key = id(connection_record)
        logged = self._sampled.get(key, True)
        if kind == "checkin":
            self._sampled.pop(key, None)
        if logged:
            record = self._base(kind, connection_record, dbapi_connection)
            if kind == "checkin" and _returned_by_gc():
                record["gc"] = True
            self._emit(record)

    def _on_other(self, kind: str, dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
        record = self._base(kind, connection_record, dbapi_connection)
        if exception is not None:
            record["error"] = f"{type(exception).__name__}: {exception}"[:500]
        if kind == "detach":
            self._sampled.pop(id(connection_record), None)
            self._ids.pop(id(connection_record), None)  # the record gets a new connection
        elif kind == "close":
            self._ids.pop(id(dbapi_connection), None)
        self._emit(record)

    def _base(self, kind: str, connection_record: Any, dbapi_connection: Any) -> dict:
        ident = None
        if connection_record is not None:
            ident = self._ids.get(id(connection_record))
        if ident is None and dbapi_connection is not None:
            ident = self._ids.get(id(dbapi_connection))
        if ident is None:  # a connection made before logging started
            ident = (next(self._counter), _backend_pid(dbapi_connection))
            if connection_record is not None:
                self._ids[id(connection_record)] = ident
            if dbapi_connection is not None:
                self._ids[id(dbapi_connection)] = ident
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
            "event": kind,
            "conn": ident[0],
        }
        if ident[1] is not None:
            record["backend_pid"] = ident[1]
        record["pool"] = self.name
        record["process"] = self._process
        record["thread"] = threading.current_thread().name
        loop = asyncio._get_running_loop()
        if loop is not None:
            task = asyncio.current_task(loop)
            if task is not None:
                record["task"] = task.get_name()
        pool = self._get_pool()
        if pool is not self._status_pool:  # first event, or engine.dispose() made a new pool
            self._status_pool = pool
            self._status = [
                (key, method)
                for key, name in (("size", "size"), ("checked_out", "checkedout"), ("overflow", "overflow"))
                if callable(method := getattr(pool, name, None))
            ]
        for key, method in self._status:
            record[key] = method()
        if self.sample < 1.0:
            record["sample"] = self.sample
        return record

    def _add_call_site(self, record: dict) -> None:
        frames = []
        # past this method, _on_checkout, _guard and the listener: SQLAlchemy's first frame
        frame = sys._getframe(4)
        crossed = False
        while frame is not None and len(frames) < STACK_DEPTH:
            code = frame.f_code
            skip = self._skip_code.get(code)
            if skip is None:
                name = code.co_filename
                skip = name.startswith(self._lib_dirs) or name.startswith("<sqlalchemy")
                self._skip_code[code] = skip
            if not skip:
                frames.append(frame)
            frame = frame.f_back
            if frame is None and not crossed:
                # asyncio: SQLAlchemy runs the sync code in a greenlet; the awaiting coroutine is in its parent
                crossed = True
                frame = _greenlet_parent_frame()
        if not frames:
            return
        top = frames[0]
        record["call_file"] = top.f_code.co_filename
        record["call_line"] = top.f_lineno
        record["call_function"] = top.f_code.co_name
        record["stack"] = " < ".join(
            f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in frames
        )

    def _emit(self, record: dict) -> None:
        line = _dumps(record)
        if self._fd is not None:
            os.write(self._fd, line)
        if self._logger is not None:
            self._logger.info("%s", line[:-1].decode())
        self.written += 1

    def _fail(self, kind: str, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            _LOG.warning(
                "loglib could not log a pool %s event (%s: %s); the application is unaffected, and further "
                "failures are counted silently (PoolEventLog.failures)",
                kind,
                type(exc).__name__,
                exc,
            )

    # -- life cycle ----------------------------------------------------------------------------

    def remove(self) -> None:
        """Detach every listener and close the file."""
        from sqlalchemy import event

        for kind, handler in self._listeners:
            if event.contains(self._target, kind, handler):
                event.remove(self._target, kind, handler)
        self._listeners.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PoolEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"PoolEventLog(pool={self.name!r}, written={self.written}, failures={self.failures})"


def _backend_pid(dbapi_connection: Any) -> int | None:
    """The PostgreSQL backend pid of a psycopg 3 / psycopg2 / asyncpg connection, without a round trip."""
    if dbapi_connection is None:
        return None
    # a driver without this spelling (AttributeError), or one that refuses to say (psycopg2's
    # InterfaceError on a closed connection): try the next spelling
    unknown = _driver_errors(dbapi_connection)
    for attempt in (
        lambda c: c.info.backend_pid,  # psycopg 3
        lambda c: c.driver_connection.info.backend_pid,  # SQLAlchemy's asyncio adapter around psycopg 3
        lambda c: c.get_backend_pid(),  # psycopg2
        lambda c: c.driver_connection.get_server_pid(),  # asyncpg
    ):
        try:
            pid = attempt(dbapi_connection)
        except unknown:
            continue
        if isinstance(pid, int) and not isinstance(pid, bool):
            return pid
    return None


def _driver_errors(dbapi_connection: Any) -> tuple[type[Exception], ...]:
    """``AttributeError`` and the DB-API ``Error`` (PEP 249: at the top of the driver's module) of the
    connection's driver and of the driver connection it wraps (SQLAlchemy's asyncio adapters)."""
    errors: list[type[Exception]] = [AttributeError]
    for conn in (dbapi_connection, getattr(dbapi_connection, "driver_connection", None)):
        if conn is None:
            continue
        driver = sys.modules.get(type(conn).__module__.partition(".")[0])
        error = getattr(driver, "Error", None)
        if isinstance(error, type) and issubclass(error, Exception) and error not in errors:
            errors.append(error)
    return tuple(errors)


def _returned_by_gc() -> bool:
    """True when this checkin is SQLAlchemy finalising a connection object nobody closed."""
    frame = sys._getframe(3)  # the listener (past _on_return and _guard), then SQLAlchemy's frames
    for _ in range(8):
        if frame is None:
            return False
        if frame.f_code.co_name == "_finalize_fairy":
            caller = frame.f_back
            return caller is None or caller.f_code.co_name != "_checkin"
        frame = frame.f_back
    return False


def _greenlet_parent_frame() -> Any:
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    parent = greenlet.getcurrent().parent
    return getattr(parent, "gr_frame", None) if parent is not None else None


def log_pool_events(
    engine: Any,
    *,
    path: str | os.PathLike | None = None,
    logger: logging.Logger | str | None = None,
    capture_stack: bool = True,
    sample: float = 1.0,
    name: str | None = None,
    events: Iterable[str] | None = None,
) -> PoolEventLog:
    """Log every pool event of a SQLAlchemy engine as one JSON line, with the call site of each checkout.

    Works for sync engines, asyncio engines (``create_async_engine``) and bare pools. Logging
    never raises into the application: a failure is logged once to the ``loglib.instrument``
    logger and then only counted (``PoolEventLog.failures``).

    Parameters
    ----------
    engine
        A SQLAlchemy ``Engine``, ``AsyncEngine`` or ``Pool``.
    path
        Append the lines to this file (created if missing). One ``write()`` per line on a file
        opened with ``O_APPEND``, so several worker processes may share one file.
    logger
        Also (or, without ``path``, only) send each line as an INFO message to this logger (or
        logger name). Without ``path`` and ``logger`` lines go to the ``loglib.pool`` logger.
        ``read_pool_events`` finds the JSON object inside formatted log lines.
    capture_stack
        Record the checkout's call site (``call_file``, ``call_line``, ``call_function``) and up
        to 5 application frames (``stack``): the first frames outside SQLAlchemy, loglib,
        asyncio, contextlib and greenlet. ``False`` saves the stack walk.
    sample
        Fraction of checkouts logged (chosen at random per checkout). The checkin and reset of a
        checkout are logged exactly when the checkout was, so a sampled log pairs up and never
        shows a false leak; connection life-cycle events (connect, close, invalidate, detach)
        are always logged. Lines carry ``"sample"`` so rates can be scaled back.
    name
        The pool's name in the ``pool`` column (default: the engine URL, password hidden).
    events
        Only these events (default: all of ``loglib.POOL_EVENT_KINDS``).

    Returns
    -------
    PoolEventLog
        Call ``remove()`` (or use it as a context manager) to detach the listeners.

    See Also
    --------
    loglib.read_pool_events : the lines as a ``pool_events`` frame.
    loglib.pool_leaks : checkouts never checked in, with their call site.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sqlalchemy import create_engine, text
    >>> import loglib as ll
    >>> from loglib.instrument import log_pool_events
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pool.jsonl"
    >>> engine = create_engine("sqlite://")
    >>> with log_pool_events(engine, path=path):
    ...     with engine.connect() as conn:
    ...         _ = conn.execute(text("select 1"))
    >>> ll.read_pool_events(path)["event"].to_list()
    ['first_connect', 'connect', 'checkout', 'reset', 'checkin']
    """
    return PoolEventLog(
        engine, path=path, logger=logger, capture_stack=capture_stack, sample=sample, name=name, events=events
    )
