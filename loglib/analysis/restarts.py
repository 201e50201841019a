"""Application restarts from the application's own lines: a stop followed by a start.

A restart is a process stopping and a process starting again in the same log stream (service and
file). Its time is the application's own stop line ("received SIGTERM, shutting down", uvicorn's
"Shutting down", gunicorn's "Worker exiting") — the moment connections went away. A start with
no stop line before it, in a stream that was already writing, is a restart of a killed process
(SIGKILL, OOM kill) stamped at its start line. A stop with nothing after it is a stop, never a
restart; a stream's first start is only a note. Processes of one service restarting in turn
(a rolling deploy) within :data:`ROLLING_GAP` are one restart; one process restarting twice is two.

Example
-------
>>> import polars as pl
>>> from datetime import datetime, timezone
>>> from loglib.analysis.restarts import app_lifecycle
>>> t = lambda s: datetime(2026, 1, 1, 10, 0, s, tzinfo=timezone.utc)
>>> app = pl.DataFrame({"ts": [t(0), t(5), t(9), t(12), t(40)],
...     "message": ["api starting pid 1", "GET / 200", "received SIGTERM, shutting down",
...                 "api starting pid 2", "received SIGTERM, shutting down"],
...     "service": ["api"] * 5, "file": ["app.log"] * 5, "line": [1, 2, 3, 4, 5]})
>>> app_lifecycle(app).select("ts", "kind", "text", "stopped").rows()[1:]   # doctest: +NORMALIZE_WHITESPACE
[(datetime.datetime(2026, 1, 1, 10, 0, 9, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 'restart',
  'app api restarted (1 process, graceful: stop line, then start)', 'graceful'),
 (datetime.datetime(2026, 1, 1, 10, 0, 40, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 'note',
  'app api stopped (1 process; nothing started after it in these logs)', 'graceful')]
"""

from __future__ import annotations

import weakref
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib.core.schema import INCIDENT_EVENTS, UTC_TS, conform
from loglib.formats.lifecycle import APP_LIFECYCLE_PATTERN, APP_START_PATTERN

#: start lines of one start (workers booting) are at most this far apart
APP_START_GAP = timedelta(seconds=5)
#: processes of one service restarting within this gap of each other are one (rolling) restart
ROLLING_GAP = timedelta(seconds=30)


def app_lifecycle(app: pl.DataFrame) -> pl.DataFrame:
    """Starts, restarts and stops of the application's processes, as an ``incident_events`` frame.

    ``kind`` is ``restart`` for a stop followed by a start (or a killed process started again),
    ``note`` for a stream's first start and for a stop with nothing after it; ``stopped`` is
    ``graceful`` (its stop line), ``killed`` (a start with no stop line before it), ``mixed``
    (processes of one rolling restart, both ways) or null (a first start); ``origin`` is
    ``app``; ``file``/``line`` point at the line the event is stamped at.
    """
    moments = _moments(app)
    if not moments:
        return INCIDENT_EVENTS.empty()
    return _rolling(moments)


def final_stops(app: pl.DataFrame) -> pl.Series:
    """Times (UTC) of the application's stop lines that nothing started after, one per stream.

    >>> from datetime import datetime, timezone
    >>> t = lambda s: datetime(2026, 1, 1, 10, 0, s, tzinfo=timezone.utc)
    >>> app = pl.DataFrame({"ts": [t(0), t(9)], "message": ["api starting pid 1", "received SIGTERM"],
    ...     "service": ["api"] * 2, "file": ["app.log"] * 2, "line": [1, 2]})
    >>> final_stops(app).to_list()
    [datetime.datetime(2026, 1, 1, 10, 0, 9, tzinfo=zoneinfo.ZoneInfo(key='UTC'))]
    """
    at = [m["at"]["ts"] for m in _moments(app) if m["what"] == "stopped"]
    return pl.Series("ts", sorted(at), dtype=UTC_TS)


#: the start/stop lines of the app frames seen lately, by ``id`` (with a weak reference to check it)
_LINES: dict[int, tuple[weakref.ref, pl.DataFrame]] = {}


def lifecycle_lines(app: pl.DataFrame) -> pl.DataFrame:
    """The app frame's start and stop lines (ts, file, line, message, ``_svc``, ``_file``, ``_start``),
    null times included: every message searched once per frame, whoever asks (the restarts,
    the services that log their restarts, the final stops).

    >>> app = pl.DataFrame({"ts": [None], "message": ["received SIGTERM"], "service": ["api"],
    ...     "file": ["app.log"], "line": [7]}, schema_overrides={"ts": UTC_TS})
    >>> lifecycle_lines(app).select("_svc", "line", "_start").rows()
    [('api', 7, False)]
    """
    got = _LINES.get(id(app))
    if got is not None and got[0]() is app:
        return got[1]
    service = pl.col("service").fill_null("") if "service" in app.columns else pl.lit("")
    lines = (
        app.lazy()  # lazy, so the query reads only its columns (an eager filter copied the app frame)
        .filter(pl.col("message").str.contains(APP_LIFECYCLE_PATTERN))
        .select("ts", "file", "line", "message", _svc=service, _file=pl.col("file").fill_null(""))
        .with_columns(_start=pl.col("message").str.contains(APP_START_PATTERN))
        .collect()
    )
    key = id(app)
    _LINES[key] = (weakref.ref(app, lambda _: _LINES.pop(key, None)), lines)
    return lines


def _moments(app: pl.DataFrame) -> list[dict[str, Any]]:
    """Every stream's lifecycle moments (:func:`_stream_moments`), ``stream`` added."""
    if app.height == 0 or "message" not in app.columns:
        return []
    service = pl.col("service").fill_null("") if "service" in app.columns else pl.lit("")
    base = (
        app.lazy()
        .filter(pl.col("ts").is_not_null())
        .with_columns(_svc=service, _file=pl.col("file").fill_null(""))
    )
    first = base.group_by("_svc", "_file").agg(pl.col("ts").min().alias("_first")).collect()
    lines = (
        lifecycle_lines(app)
        .filter(pl.col("ts").is_not_null())
        .join(first, on=["_svc", "_file"], how="left")
        .sort("_svc", "_file", "ts", "line")
    )
    moments: list[dict[str, Any]] = []
    for (svc, file), stream in lines.group_by("_svc", "_file", maintain_order=True):
        moments += [{**m, "stream": file} for m in _stream_moments(str(svc), stream)]
    return moments


def _stream_moments(svc: str, stream: pl.DataFrame) -> list[dict[str, Any]]:
    """One stream's lifecycle: a small state machine over its few start/stop lines, in file order."""
    out: list[dict[str, Any]] = []
    stop: dict[str, Any] | None = None
    last_start: datetime | None = None
    for row in stream.iter_rows(named=True):
        if not row["_start"]:
            stop = stop or row
            continue
        if last_start is not None and stop is None and row["ts"] - last_start <= APP_START_GAP:
            last_start = row["ts"]  # another worker of the same start
            continue
        last_start = row["ts"]
        if stop is not None:
            out.append({"svc": svc, "what": "graceful", "at": stop, "start": row})
        elif row["_first"] < row["ts"]:
            out.append({"svc": svc, "what": "killed", "at": row, "start": row})
        else:
            out.append({"svc": svc, "what": "first", "at": row, "start": row})
        stop = None
    if stop is not None:
        out.append({"svc": svc, "what": "stopped", "at": stop, "start": None})
    return out


def _rolling(moments: list[dict[str, Any]]) -> pl.DataFrame:
    """Merge the moments of one service within :data:`ROLLING_GAP` (processes in turn) into one."""
    moments.sort(key=lambda m: (m["svc"], m["what"] == "first", m["at"]["ts"]))
    rows: list[dict[str, Any]] = []
    group: list[dict[str, Any]] = []

    def flush() -> None:
        if not group:
            return
        head = group[0]
        kinds = {m["what"] for m in group}
        n = len(group)
        procs = f"{n} process{'es' if n > 1 else ''}"
        svc = head["svc"] or "the application"
        # how it went down: a stop line is graceful, a start with none before it was killed
        downs = {"graceful" if w == "stopped" else w for w in kinds} - {"first"}
        stopped = None if not downs else downs.pop() if len(downs) == 1 else "mixed"
        if kinds <= {"first"}:
            kind, text = "note", f"app {svc} started ({procs}): {head['at']['message'][:80]}"
        elif kinds <= {"stopped"}:
            kind, text = "note", f"app {svc} stopped ({procs}; nothing started after it in these logs)"
        else:
            how = []
            if "graceful" in kinds:
                how.append("graceful: stop line, then start")
            if "killed" in kinds:
                how.append("killed: no stop line before the start")
            kind, text = "restart", f"app {svc} restarted ({procs}, {'; '.join(how)})"
        rows.append({"ts": head["at"]["ts"], "kind": kind, "text": text, "stopped": stopped, "origin": "app",
                     "source": "app", "file": head["at"]["file"], "line": head["at"]["line"]})  # fmt: skip
        group.clear()

    for m in moments:
        if group and (
            m["svc"] != group[0]["svc"]
            or (m["what"] == "first") != (group[0]["what"] == "first")
            or m["at"]["ts"] - group[-1]["at"]["ts"] > ROLLING_GAP
            or any(g["stream"] == m["stream"] for g in group)  # a process restarting twice: two moments
        ):
            flush()
        group.append(m)
    flush()
    out = pl.DataFrame(rows).with_columns(pl.col("ts").cast(UTC_TS))
    return conform(out, INCIDENT_EVENTS).sort("ts")  # type: ignore[return-value]
