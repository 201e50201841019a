"""Small evidence for the detectors' own tests: real log and export formats, parsed by loglib's readers.

Each builder takes ``(seconds after T0, text)`` pairs and returns the canonical frame, so a test
states its incident in a few lines and runs a detector on ``ll.Evidence.from_frames(...)``
(no incident.toml). The texts are what the software writes: Python ``logging`` lines with
SQLAlchemy/psycopg errors, PostgreSQL ``stderr`` lines with ``log_line_prefix = '%m [%p] '``,
and Prometheus ``/api/v1/query_range`` JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import polars as pl

import loglib as ll

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
PG_PREFIX = "%m [%p] "

POOL_TIMEOUT = (
    "ERROR app.db: sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 0 reached, "
    "connection timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)"
)
SERVER_CLOSED = "ERROR app.db: psycopg.OperationalError: server closed the connection unexpectedly"
REFUSED = (
    'ERROR app.db: psycopg.OperationalError: connection failed: connection to server at "10.0.0.9", '
    "port 5432 failed: Connection refused"
)
REQUEST = 'INFO uvicorn.access: 10.0.0.1:5000 - "GET /orders HTTP/1.1" 200'


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def app_log(lines: Iterable[tuple[float, str]]) -> pl.DataFrame:
    """Python ``logging`` lines (``%(asctime)s %(levelname)s %(name)s: %(message)s``), read by ``read_app_log``."""
    text = "".join(
        f"{at(s):%Y-%m-%d %H:%M:%S},{at(s).microsecond // 1000:03d} {line}\n" for s, line in sorted(lines)
    )
    return ll.read_app_log(text.encode(), tz="UTC")


def pg_log(lines: Iterable[tuple[float, int, str]]) -> pl.DataFrame:
    """PostgreSQL stderr lines ``(seconds, pid, "LOG:  message")`` with prefix ``%m [%p] ``."""
    text = "".join(
        f"{at(s):%Y-%m-%d %H:%M:%S}.{at(s).microsecond // 1000:03d} UTC [{pid}] {line}\n"
        for s, pid, line in sorted(lines)
    )
    return ll.read_pg_log(text.encode(), prefix=PG_PREFIX)


def session(
    pid: int, start: float, end: float | None, *, statements: Iterable[float] = (), end_line: str = ""
) -> list:
    """One backend's lines: connection received/authorized at ``start``, statements, and its end.

    ``end_line`` defaults to a clean disconnection; pass e.g. ``"LOG:  could not receive data
    from client: Connection reset by peer"`` for a reset.
    """
    out = [
        (start, pid, f"LOG:  connection received: host=10.0.0.5 port={40000 + pid}"),
        (start + 0.005, pid, "LOG:  connection authorized: user=app database=shop application_name=web"),
    ]
    out += [(s, pid, "LOG:  statement: SELECT 1") for s in statements]
    if end is not None:
        if end_line:
            out.append((end, pid, end_line))
        else:
            minutes, seconds = divmod(end - start, 60)
            hours, minutes = divmod(int(minutes), 60)
            out.append(
                (
                    end,
                    pid,
                    f"LOG:  disconnection: session time: {hours}:{minutes:02d}:{seconds:06.3f} user=app "
                    "database=shop host=10.0.0.5 port=40000",
                )
            )
    return out


def prometheus(name: str, points: Iterable[tuple[float, float]], **labels: str) -> pl.DataFrame:
    """One series as Prometheus ``/api/v1/query_range`` JSON, read by ``read_prometheus``."""
    doc = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": name, **labels},
                    "values": [[at(s).timestamp(), f"{v:g}"] for s, v in points],
                }
            ],
        },
    }
    return ll.read_prometheus(json.dumps(doc).encode())
