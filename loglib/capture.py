"""Live capture: sample ``pg_stat_activity`` into Parquet while an incident happens (``capture_pg_activity``).

Layout of the output directory (read it back with :func:`loglib.read_pg_activity`)::

    DIR/capture.json                      what was captured: server (password hidden), every, start, end
    DIR/activity/20240301T100000.123456Z.parquet   one file per sample: one row per backend
    DIR/gaps/20240301T100312.000000Z.parquet       one file per outage: start, end, attempts, error

Every file is written to a hidden temporary name and renamed into place, so a crash, a kill
or Ctrl-C loses at most the sample being taken and never leaves a half-written file. When the
server goes away the capture keeps trying with exponential backoff (up to ``max_backoff``) and
records the outage as a gap; the gap file is rewritten on each failed attempt and closed
with the first good sample. The password of the URL is never written to a file or a log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from loglib.core.schema import PG_ACTIVITY, PG_ACTIVITY_GAPS
from loglib.core.timeparse import to_timedelta

_LOG = logging.getLogger("loglib.capture")
APPLICATION_NAME = "loglib-capture"

_SAMPLE_SQL = """
select now() as ts, pid, backend_type, state, wait_event_type, wait_event,
       backend_start, xact_start, query_start, state_change,
       usename as "user", datname as database, application_name as application,
       host(client_addr) as client_addr, client_port, {query} as query,
       current_setting('max_connections')::int as max_connections,
       pg_postmaster_start_time() as server_start
from pg_stat_activity
where pid <> pg_backend_pid()
order by pid
"""
#: what a sample file holds: the pg_activity columns but the evidence ones (added when read)
SAMPLE_SCHEMA = pl.Schema({c.name: c.dtype for c in PG_ACTIVITY.columns if c.name not in ("file", "line")})
GAP_SCHEMA = pl.Schema({c.name: c.dtype for c in PG_ACTIVITY_GAPS.columns if c.name != "file"})


@dataclass
class CaptureSummary:
    """What a capture did."""

    out: Path
    server: str
    samples: int = 0
    failed_attempts: int = 0
    gaps: int = 0
    interrupted: bool = False
    files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"captured {self.samples} sample(s) of {self.server} into {self.out}; "
            f"{self.gaps} gap(s), {self.failed_attempts} failed attempt(s)"
        )
        return text + (" (interrupted)" if self.interrupted else "")


def _seconds(value: str | float | timedelta, *, argument: str) -> float:
    """Seconds of a duration: ``"5s"``, ``"1m30s"``, ``"500ms"``, ``"0.5s"``, a number or a ``timedelta``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\d+\.\d+s", value.strip()):
        return float(value.strip()[:-1])
    return to_timedelta(value, argument=argument).total_seconds()


def _stamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


class _Redactor:
    """Removes the password (and the raw URL) from any text before it is written or logged."""

    def __init__(self, raw: str, password: str | None) -> None:
        self._secrets = [s for s in (raw, password) if s]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _error_text(exc: BaseException, redact: _Redactor) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = f"{type(inner).__name__}: {inner}".strip().splitlines()
    return redact(" ".join(line.strip() for line in text))[:500]


def capture_pg_activity(
    url: Any,
    out: str | os.PathLike,
    *,
    every: str | float | timedelta = "5s",
    duration: str | float | timedelta | None = "30m",
    query: bool = False,
    max_backoff: str | float | timedelta = "30s",
    connect_timeout: int = 5,
    stop: threading.Event | None = None,
) -> CaptureSummary:
    """Sample ``pg_stat_activity`` and ``max_connections`` every ``every`` into Parquet files.

    The function behind ``loglib capture pg-activity URL --every 5s --for 30m --out DIR``. One
    connection (``application_name = 'loglib-capture'``, left out of the samples) is kept
    open; if the server goes away, the capture reconnects with backoff and records the gap.

    Parameters
    ----------
    url
        A SQLAlchemy URL of the PostgreSQL server (``postgresql+psycopg://user:pw@host/db``). Its
        password is never written; leave it out and use ``PGPASSWORD`` or ``~/.pgpass`` to keep
        it off the command line as well.
    out
        The output directory (created if missing; an existing capture there is added to).
    every
        Time between samples (``"5s"``, ``"500ms"``, ``"0.5s"``, seconds, a ``timedelta``).
    duration
        Stop after this long (``None``: run until ``stop`` is set or Ctrl-C).
    query
        Also keep each backend's query text (off by default: queries can hold personal data).
    max_backoff
        Longest wait between reconnection attempts while the server is unreachable.
    connect_timeout
        Seconds to wait for a connection before counting the attempt as failed.
    stop
        A ``threading.Event`` that ends the capture when set (for running it in a thread).

    Returns
    -------
    CaptureSummary
        Samples taken, failed attempts, gaps, and whether Ctrl-C ended it.

    See Also
    --------
    loglib.read_pg_activity, loglib.read_pg_activity_gaps : the capture as frames.

    Examples
    --------
    >>> from loglib.capture import capture_pg_activity
    >>> capture_pg_activity("postgresql+psycopg://app@db/shop", "incident/activity",
    ...                     every="5s", duration="30m")  # doctest: +SKIP
    """
    import sqlalchemy as sa

    interval = _seconds(every, argument="every")
    if interval <= 0:
        msg = f"every={every!r} must be a positive duration such as '5s'"
        raise ValueError(msg)
    limit = None if duration is None else _seconds(duration, argument="duration")
    backoff_cap = _seconds(max_backoff, argument="max_backoff")
    raw = url.render_as_string(hide_password=False) if isinstance(url, sa.engine.URL) else str(url)
    parsed = sa.engine.make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    redact = _Redactor(raw, parsed.password)
    if parsed.get_backend_name() != "postgresql":
        msg = f"pg-activity needs a PostgreSQL URL (postgresql+psycopg://...), got {shown!r}"
        raise ValueError(msg)
    out = Path(out)
    (out / "activity").mkdir(parents=True, exist_ok=True)
    (out / "gaps").mkdir(parents=True, exist_ok=True)
    summary = CaptureSummary(out=out, server=shown)
    meta_path = out / "capture.json"
    meta = {"server": shown, "every_seconds": interval, "query": query,
            "started": datetime.now(UTC).isoformat(), "ended": None}  # fmt: skip
    meta_path.write_text(json.dumps(meta, indent=1))
    engine = sa.create_engine(
        parsed,
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=connect_timeout,
        connect_args={"connect_timeout": connect_timeout, "application_name": APPLICATION_NAME},
    )
    statement = sa.text(_SAMPLE_SQL.format(query="query" if query else "null::text"))
    _LOG.info("capturing pg_stat_activity of %s every %ss into %s", shown, interval, out)
    started = time.monotonic()
    last_ok: datetime | None = None
    gap: dict[str, Any] | None = None
    gap_path: Path | None = None
    failures_in_row = 0
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            attempt_at = time.monotonic()
            if limit is not None and attempt_at - started >= limit:
                break
            try:
                with engine.connect() as conn:
                    rows = conn.execute(statement).all()
                    if not rows:  # nothing but us: still a sample, stamped by the server
                        rows_ts = conn.execute(sa.text("select now()")).scalar_one()
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                failures_in_row += 1
                summary.failed_attempts += 1
                now = datetime.now(UTC)
                if gap is None:
                    gap = {"start": last_ok or now, "end": None, "duration": None, "attempts": 0,
                           "error": _error_text(exc, redact), "server": shown}  # fmt: skip
                    gap_path = out / "gaps" / f"{_stamp(gap['start'])}.parquet"
                    summary.gaps += 1
                    _LOG.warning("cannot sample %s (%s); retrying with backoff", shown, gap["error"])
                    engine.dispose()  # drop the dead connection; the next attempt reconnects
                gap["attempts"] += 1
                _write_atomic(pl.DataFrame([gap], schema=GAP_SCHEMA), gap_path)
                wait = min(backoff_cap, min(interval, 1.0) * 2 ** (failures_in_row - 1))
                stop.wait(max(0.0, wait - (time.monotonic() - attempt_at)))
                continue
            frame = pl.DataFrame(
                [(*r, shown) for r in rows] if rows else None,
                schema=SAMPLE_SCHEMA,
                orient="row",
            )
            ts = frame["ts"][0] if frame.height else rows_ts
            path = out / "activity" / f"{_stamp(ts)}.parquet"
            _write_atomic(frame, path)
            summary.samples += 1
            summary.files.append(path)
            last_ok = ts
            failures_in_row = 0
            if gap is not None:
                gap["end"] = ts
                gap["duration"] = ts - gap["start"]
                _write_atomic(pl.DataFrame([gap], schema=GAP_SCHEMA), gap_path)
                _LOG.info("sampling %s again after %s (%d failed attempt(s))", shown, gap["duration"],
                          gap["attempts"])  # fmt: skip
                gap = None
            stop.wait(max(0.0, interval - (time.monotonic() - attempt_at)))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        engine.dispose()
        meta["ended"] = datetime.now(UTC).isoformat()
        meta["samples"] = summary.samples
        meta["gaps"] = summary.gaps
        meta_path.write_text(json.dumps(meta, indent=1))
    _LOG.info("%s", summary)
    return summary
