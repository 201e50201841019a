"""Shared plumbing of the presentation layer: frames from an Evidence, an Incident or plain frames,
windows, bucket widths, durations and evidence strings for people. What is derived from the
evidence (sessions, spans, pool gauges, leak rates) comes from :mod:`loglib.analysis.series`."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib._compat import is_frame, to_polars
from loglib.analysis.evidence import FRAME_NAMES, Evidence, NoEvidenceError, as_evidence
from loglib.core.timeparse import to_timedelta

#: bucket widths tried, smallest first, to get at most ``_MAX_BUCKETS`` buckets over a window
_STEPS = (
    "1s",
    "2s",
    "5s",
    "10s",
    "15s",
    "30s",
    "1m",
    "2m",
    "5m",
    "10m",
    "15m",
    "30m",
    "1h",
    "2h",
    "6h",
    "1d",
)
_MAX_BUCKETS = 90
#: a frame a chart asks for -> the one to use when the source has no such attribute: an
#: Evidence's ``marks`` (events plus pgBouncer restarts); a plain object's ``events``
_FALLBACK = {"marks": "events"}


def frame_or_none(obj: Any) -> pl.DataFrame | None:
    """``obj`` as polars, or None."""
    return None if obj is None else to_polars(obj)


def unpack(data: Any, primary: str, **given: Any) -> dict[str, Any]:
    """Frames for a chart: ``data`` is the primary frame, an Evidence or an Incident; explicit keywords win.

    ``marks`` (what a chart marks) is the Evidence's ``marks``, else the source's ``events``.

    ``out["incident"]`` is the Evidence (an Incident's ``.evidence``), or any other object whose
    attributes are read the same way (``getattr(data, "app", None)``), or None for frames.
    """
    out: dict[str, Any] = {}
    source = None
    if data is not None and is_frame(data):
        out[primary] = to_polars(data)
    elif data is not None:
        source = as_evidence(data) if isinstance(data, Evidence) or hasattr(data, "evidence") else data
    for name, value in given.items():
        if value is not None:
            out[name] = to_polars(value) if is_frame(value) else value
        elif name not in out and source is not None:
            attr = getattr(source, name, None)
            if attr is None and name in _FALLBACK:
                attr = getattr(source, _FALLBACK[name], None)
            out[name] = to_polars(attr) if is_frame(attr) else attr
        else:
            out.setdefault(name, None)
    out.setdefault(primary, None)
    out["incident"] = source
    return out


def evidence_of(f: dict[str, Any]) -> Evidence:
    """The Evidence behind an :func:`unpack` result, with the frames given explicitly in place of its own.

    Frames alone (no Evidence) become ``Evidence.from_frames``; analysis derives and caches on it.
    """
    source = f["incident"]
    frames = {k: f[k] for k in FRAME_NAMES if k in f and f[k] is not None}
    if isinstance(source, Evidence):
        changed = {k: v for k, v in frames.items() if v is not getattr(source, k)}
        return source.replace(**changed) if changed else source
    return Evidence.from_frames(
        **frames,
        pool_size=setting(source, "app_settings", "pool_size"),
        max_overflow=setting(source, "app_settings", "max_overflow"),
        max_connections=setting(source, "postgres_settings", "max_connections"),
    )


def setting(incident: Any, group: str, name: str) -> Any:
    """``incident.<group>.<name>`` (e.g. ``app_settings.pool_size``), or None."""
    return getattr(getattr(incident, group, None), name, None)


def window(incident: Any, *frames: pl.DataFrame | None) -> tuple[datetime, datetime] | None:
    """The incident's window, else the span of the ``ts`` columns of ``frames``."""
    if incident is not None and hasattr(incident, "window"):
        try:
            return incident.window()
        except NoEvidenceError:  # no timestamps anywhere: the frames' own span, if any
            pass
    lows, highs = [], []
    for f in frames:
        if f is not None and f.height and "ts" in f.columns:
            ts = f["ts"].drop_nulls()
            if ts.len():
                lows.append(ts.min())
                highs.append(ts.max())
    if not lows:
        return None
    return min(lows), max(highs)


def auto_every(span: tuple[datetime, datetime] | None, every: str | timedelta | None) -> str:
    """``every`` as a polars duration string; when None, the smallest step giving ≤ 90 buckets."""
    if every is not None:
        return duration_str(every)
    if span is None:
        return "1m"
    seconds = max((span[1] - span[0]).total_seconds(), 1.0)
    for step in _STEPS:
        if seconds / to_timedelta(step, argument="every").total_seconds() <= _MAX_BUCKETS:
            return step
    return _STEPS[-1]


def duration_str(every: str | timedelta) -> str:
    """A polars duration string for ``every`` (checked)."""
    if isinstance(every, timedelta):
        us = int(every.total_seconds() * 1_000_000)
        return f"{us}us"
    to_timedelta(every, argument="every")
    return every


def human_duration(every: str | timedelta) -> str:
    """``"1m"`` -> ``"1 min"``, ``"30s"`` -> ``"30 s"``, ``"1h"`` -> ``"hour"`` for axis titles."""
    seconds = to_timedelta(every, argument="every").total_seconds()
    return format_seconds(seconds, unit_one=True)


def format_seconds(seconds: float, *, unit_one: bool = False) -> str:
    """A duration for people: ``0.15`` -> ``150 ms``, ``90`` -> ``1.5 min``, ``3600`` -> ``1 h``."""
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            value = seconds / size
            if unit_one and value == 1:
                return {"d": "day", "h": "hour", "min": "minute", "s": "second"}[unit]
            return f"{value:.3g} {unit}"
    return f"{seconds:.3g} s"


def evidence(file: Any, line: Any) -> str:
    """``"app/app.log:123"``: the last two parts of the path and the line (or just the file)."""
    if file is None:
        return ""
    parts = re.split(r"[\\/]", str(file))
    short = "/".join(parts[-2:])
    return f"{short}:{line}" if line is not None else short


def evidence_expr(file: str = "file", line: str = "line") -> pl.Expr:
    """:func:`evidence` as a polars expression."""
    short = pl.col(file).cast(pl.String).str.extract(r"([^\\/]*[\\/]?[^\\/]+)$", 1)
    return (
        pl.when(pl.col(line).is_not_null())
        .then(pl.concat_str(short, pl.lit(":"), pl.col(line).cast(pl.String)))
        .otherwise(short)
    )


def first_evidence(file: str = "file", line: str = "line") -> dict[str, pl.Expr]:
    """Aggregations that keep each group's first ``file`` and ``line``; :func:`with_evidence` makes
    them ``evidence``. (``evidence_expr().first()`` formats every row before taking one: seconds
    at a million rows.)

    >>> import polars as pl
    >>> f = pl.DataFrame({"k": [1, 1, 2], "file": ["pg/a.log"] * 3, "line": [3, 4, 9]})
    >>> f.group_by("k").agg(**first_evidence()).pipe(with_evidence).sort("k")["evidence"].to_list()
    ['pg/a.log:3', 'pg/a.log:9']
    """
    return {"_ev_file": pl.col(file).first(), "_ev_line": pl.col(line).first()}


def with_evidence(frame: pl.DataFrame) -> pl.DataFrame:
    """``evidence`` (``"pg/postgresql.log:123"``) from the columns :func:`first_evidence` kept."""
    return frame.with_columns(evidence=evidence_expr("_ev_file", "_ev_line")).drop("_ev_file", "_ev_line")


def in_window(frame: pl.DataFrame | None, start: datetime, end: datetime) -> pl.DataFrame | None:
    """Rows of ``frame`` with ``start <= ts < end``."""
    if frame is None or "ts" not in frame.columns:
        return frame
    return frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))


def nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= value:
            return m * exp
    return 10 * exp
