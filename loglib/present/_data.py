"""Shared plumbing of the presentation layer: frames from an ``Incident`` or plain frames, windows,
buckets, evidence strings, alert spans and the pool gauge."""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib._compat import to_polars
from loglib.core.timeparse import to_timedelta
from loglib.formats.metric_names import (
    CHECKED_OUT_PATTERN,
    MAX_CONNECTIONS_PATTERN,
    OVERFLOW_PATTERN,
    POOL_SIZE_PATTERN,
)

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
REFUSAL_EVENTS = ("too_many_clients", "reserved_slots")


def is_frame(obj: Any) -> bool:
    """True for a polars DataFrame/LazyFrame or a pandas DataFrame (pandas never imported for it)."""
    if isinstance(obj, pl.DataFrame | pl.LazyFrame):
        return True
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def frame_or_none(obj: Any) -> pl.DataFrame | None:
    """``obj`` as polars, or None."""
    return None if obj is None else to_polars(obj)


def unpack(data: Any, primary: str, **given: Any) -> dict[str, Any]:
    """Frames for a chart: ``data`` is the primary frame or an Incident; explicit keywords win.

    Incident attributes are read duck-typed (``getattr(data, "app", None)``), so any object with
    the same attribute names works.
    """
    out: dict[str, Any] = {}
    incident = None
    if data is not None and is_frame(data):
        out[primary] = to_polars(data)
    elif data is not None:
        incident = data
    for name, value in given.items():
        if value is not None:
            out[name] = to_polars(value) if is_frame(value) else value
        elif name not in out and incident is not None:
            try:
                attr = getattr(incident, name, None)
            except Exception:  # an Incident source whose reader is missing
                attr = None
            out[name] = to_polars(attr) if is_frame(attr) else attr
        else:
            out.setdefault(name, None)
    out.setdefault(primary, None)
    out["incident"] = incident
    return out


def setting(incident: Any, group: str, name: str) -> Any:
    """``incident.<group>.<name>`` (e.g. ``app_settings.pool_size``), or None."""
    return getattr(getattr(incident, group, None), name, None)


def window(incident: Any, *frames: pl.DataFrame | None) -> tuple[datetime, datetime] | None:
    """The incident's window, else the span of the ``ts`` columns of ``frames``."""
    if incident is not None and hasattr(incident, "window"):
        try:
            return incident.window()
        except Exception:
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


@dataclass(frozen=True)
class Span:
    """An alert-firing span: ``start``, ``end`` (None: still firing at the end), ``name``, ``evidence``."""

    start: datetime
    end: datetime | None
    name: str
    evidence: str = ""


def spans_from_transitions(alerts: pl.DataFrame) -> list[Span]:
    """Firing spans of a ``replay_alert`` frame (``firing`` to the next ``resolved``)."""
    out: list[Span] = []
    if alerts is None or alerts.height == 0:
        return out
    for (alert, series), group in alerts.sort("ts").group_by(["alert", "series"], maintain_order=True):
        start = None
        for row in group.iter_rows(named=True):
            if row["state"] == "firing":
                start = row["ts"]
            elif row["state"] == "resolved" and start is not None:
                out.append(Span(start, row["ts"], str(alert), f"replay_alert series {series}"))
                start = None
        if start is not None:
            out.append(Span(start, None, str(alert), f"replay_alert series {series}"))
    return out


def spans_from_metrics(metrics: pl.DataFrame | None) -> list[Span]:
    """Firing spans from Prometheus' own ``ALERTS{alertstate="firing"}`` series in a metrics frame."""
    if metrics is None or metrics.height == 0 or "metric" not in metrics.columns:
        return []
    alerts = metrics.filter(pl.col("metric") == "ALERTS", pl.col("value") > 0)
    if alerts.height == 0:
        return []
    alerts = alerts.filter(pl.col("series").str.contains('alertstate="firing"'))
    out = []
    for (series,), group in alerts.sort("ts").group_by(["series"], maintain_order=True):
        ts = group["ts"]
        name = re.search(r'alertname="([^"]*)"', series)
        label = name.group(1) if name else series
        step = ts.diff().drop_nulls()
        gap = step.median() * 2.5 if step.len() else timedelta(minutes=5)
        start = prev = ts[0]
        for t in ts[1:]:
            if t - prev > gap:
                out.append(Span(start, prev, label, f"series {series}"))
                start = t
            prev = t
        out.append(Span(start, prev, label, f"series {series}"))
    return out


@dataclass(frozen=True)
class PoolSeries:
    """One pool's checked-out gauge with its size and overflow (from series or settings)."""

    name: str
    series: str
    frame: pl.DataFrame  # ts, value, file
    size: float | None
    overflow: float | None


def _label_part(series: str, metric: str) -> str:
    return series[len(metric) :] if series.startswith(metric) else series


def _instance_name(series: str) -> str:
    for key in ("instance_name", "pod", "instance", "job"):
        m = re.search(rf'\b{key}="([^"]*)"', series)
        if m:
            return m.group(1)
    return series


def pool_series(
    metrics: pl.DataFrame | None, *, pool_size: float | None, max_overflow: float | None
) -> list[PoolSeries]:
    """The pool gauges in a long metrics frame, each paired with its size and overflow."""
    if metrics is None or metrics.height == 0 or "metric" not in metrics.columns:
        return []
    names = metrics["metric"].drop_nulls().unique().to_list()  # frames built by hand may lack names
    gauges = [
        m for m in names if re.search(CHECKED_OUT_PATTERN, m) and m != "ALERTS" and not m.startswith("pg_")
    ]
    sizes = [m for m in names if re.search(POOL_SIZE_PATTERN, m) and not re.search(OVERFLOW_PATTERN, m)]
    overflows = [m for m in names if re.search(OVERFLOW_PATTERN, m)]
    out = []

    def constant(metric_names: list[str], labels: str) -> float | None:
        cand = metrics.filter(pl.col("metric").is_in(metric_names))
        if cand.height == 0:
            return None
        same = cand.filter(
            pl.col("series").map_elements(lambda s: s.endswith(labels), return_dtype=pl.Boolean)
        )
        pick = same if same.height else cand
        return float(pick["value"].max())

    for metric in sorted(gauges):
        for (series,), group in metrics.filter(pl.col("metric") == metric).group_by(
            ["series"], maintain_order=True
        ):
            labels = _label_part(series, metric)
            size = pool_size if pool_size is not None else constant(sizes, labels)
            over = max_overflow if max_overflow is not None else constant(overflows, labels)
            frame = group.sort("ts").select("ts", "value", "file")
            out.append(PoolSeries(_instance_name(series), series, frame, size, over))
    return out


def max_connections(metrics: pl.DataFrame | None) -> float | None:
    """``pg_settings_max_connections`` from a metrics frame, or None."""
    if metrics is None or metrics.height == 0 or "metric" not in metrics.columns:
        return None
    m = metrics.filter(pl.col("metric").str.contains(MAX_CONNECTIONS_PATTERN))
    return float(m["value"].max()) if m.height else None


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
