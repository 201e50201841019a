"""What the charts and the timeline draw, derived once: connections open, alert-firing spans, pool gauges
paired with their size, histogram quantiles, the chart's leak rates and the idle timeout.

Each function takes frames, or an :class:`~loglib.Evidence` (or an Incident, through its
``.evidence``); from an Evidence the result is cached (:meth:`Evidence.cached`), so the overview,
the single charts, the timeline and the bundle share one computation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib._compat import to_polars
from loglib.analysis.evidence import Evidence, as_evidence
from loglib.formats.metric_names import (
    CHECKED_OUT_PATTERN,
    HISTOGRAM_PATTERN,
    MAX_CONNECTIONS_PATTERN,
    OVERFLOW_PATTERN,
    POOL_SIZE_PATTERN,
)

# --- alert-firing spans ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """An alert-firing span: ``start``, ``end`` (None: still firing at the end), ``name``, ``evidence``."""

    start: datetime
    end: datetime | None
    name: str
    evidence: str = ""


def spans_from_transitions(alerts: pl.DataFrame | None) -> list[Span]:
    """Firing spans of a :func:`loglib.replay_alert` frame (``firing`` to the next ``resolved``).

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
    >>> series = pl.DataFrame({"ts": [t0 + timedelta(minutes=i) for i in range(4)], "series": "r",
    ...                        "value": [0.0, 1, 1, 0]})
    >>> [(s.start.minute, s.end.minute) for s in spans_from_transitions(ll.replay_alert(series, "r", ">", 0.5, for_="0s"))]
    [(1, 3)]
    """
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
    alerts = alerts.filter(pl.col("series").cast(pl.String).str.contains('alertstate="firing"'))
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


def firing_spans(data: Any = None, *, alerts: Any = None, metrics: Any = None) -> list[Span]:
    """Alert-firing spans: of ``alerts`` (a ``replay_alert`` frame) when given, else of ``ALERTS`` series.

    ``data`` is an Evidence (its metrics, cached) or None with ``metrics=`` a frame.
    """
    if alerts is not None:
        return spans_from_transitions(to_polars(alerts))
    if data is not None and metrics is None:
        ev = as_evidence(data)
        return ev.cached("firing_spans", lambda: spans_from_metrics(ev.metrics))
    return spans_from_metrics(None if metrics is None else to_polars(metrics))


def threshold_spans(
    counts: pl.DataFrame, *, every: str, threshold: float, alert_for: str | timedelta, name: str
) -> list[Span]:
    """Firing spans of ``count > threshold`` replayed (:func:`loglib.replay_alert`) on per-bucket counts.

    ``counts`` has ``bucket`` (the start of each bucket of width ``every``) and ``n``; missing
    buckets count zero.
    """
    from loglib.analysis.alerts import replay_alert

    if counts.height == 0:
        return []
    totals = counts.group_by("bucket").agg(pl.col("n").sum()).sort("bucket")
    grid = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                totals["bucket"].min(), totals["bucket"].max(), every, eager=True, time_zone="UTC"
            )
        }
    )
    series = grid.join(totals.rename({"bucket": "ts"}), on="ts", how="left").with_columns(
        pl.col("n").fill_null(0).cast(pl.Float64).alias("value"), series=pl.lit("errors")
    )
    rule = replay_alert(
        series.select("ts", "series", "value"), "errors", ">", threshold, alert_for, name=name
    )
    return spans_from_transitions(rule)


# --- the pool gauge and its size ------------------------------------------------------------------


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


def _pool_series(
    metrics: pl.DataFrame | None, pool_size: float | None, max_overflow: float | None
) -> list[PoolSeries]:
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
        same = cand.filter(pl.col("series").cast(pl.String).str.ends_with(labels))
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


def pool_series(
    data: Any, *, pool_size: float | None = None, max_overflow: float | None = None
) -> list[PoolSeries]:
    """The pool gauges in a long metrics frame, each paired with its size and overflow.

    Parameters
    ----------
    data
        A long metrics frame (``read_prometheus``), or an Evidence (its metrics; its ``[app]``
        settings are the default size and overflow; cached).
    pool_size, max_overflow
        Override the size and overflow; default: the Evidence's settings, else the
        ``*pool_size*`` / ``*max_overflow*`` series with the same labels as the gauge.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> t = datetime(2024, 3, 1, tzinfo=UTC)
    >>> m = pl.DataFrame({"ts": [t, t], "metric": ["db_pool_checked_out", "db_pool_size"],
    ...                   "series": ['db_pool_checked_out{pod="a"}', 'db_pool_size{pod="a"}'],
    ...                   "value": [3.0, 5.0], "file": "m.json"})
    >>> [(p.name, p.size) for p in pool_series(m)]
    [('a', 5.0)]
    """
    if isinstance(data, Evidence) or hasattr(data, "evidence"):
        ev = as_evidence(data)
        size = pool_size if pool_size is not None else ev.app_settings.pool_size
        over = max_overflow if max_overflow is not None else ev.app_settings.max_overflow
        return ev.cached(("pool_series", size, over), lambda: _pool_series(ev.metrics, size, over))
    return _pool_series(None if data is None else to_polars(data), pool_size, max_overflow)


def max_connections(metrics: pl.DataFrame | None) -> float | None:
    """``pg_settings_max_connections`` from a metrics frame, or None."""
    if metrics is None or metrics.height == 0 or "metric" not in metrics.columns:
        return None
    m = metrics.filter(pl.col("metric").cast(pl.String).str.contains(MAX_CONNECTIONS_PATTERN))
    return float(m["value"].max()) if m.height else None


# --- connections open -----------------------------------------------------------------------------


def _open_connections(sessions: pl.DataFrame) -> pl.DataFrame:
    # only the columns used: each filter copies what it keeps (all of a 120 MB frame at 1 GB)
    ss = sessions.select(c for c in ("start", "end", "end_reason", "file", "line") if c in sessions.columns)
    if "end_reason" in ss.columns:
        ss = ss.filter(pl.col("end_reason").fill_null("") != "rejected")
    ss = ss.filter(pl.col("start").is_not_null())
    starts = ss.select(ts=pl.col("start"), change=pl.lit(1, pl.Int32), file="file", line="line")
    ends = ss.filter(pl.col("end").is_not_null()).select(
        ts=pl.col("end"), change=pl.lit(-1, pl.Int32), file="file", line="line"
    )
    ev = pl.concat([starts, ends]).sort("ts", "change", descending=[False, True])
    return ev.with_columns(open=pl.col("change").cum_sum())


def open_connections(data: Any) -> pl.DataFrame:
    """Connections open after every session start and end: ``ts``, ``change``, ``file``, ``line``, ``open``.

    Parameters
    ----------
    data
        A :func:`loglib.pg_sessions` frame, a PostgreSQL log frame (its sessions), or an
        Evidence (its sessions; cached). Refused attempts are not sessions; a session still
        open at the end of the log stays counted.

    Examples
    --------
    >>> import loglib as ll
    >>> ev = ll.Evidence.from_frames(pg=ll.read_pg_log("data/sample-pg/postgresql.log"))
    >>> int(open_connections(ev)["open"].max())
    18
    """
    if isinstance(data, Evidence) or hasattr(data, "evidence"):
        ev = as_evidence(data)
        if ev.sessions is None:
            msg = "open_connections needs PostgreSQL logs (the Evidence has no pg frame)"
            raise ValueError(msg)
        return ev.cached("open_connections", lambda: _open_connections(ev.sessions))
    frame = to_polars(data)
    if "start" not in frame.columns and "event" in frame.columns:  # a PostgreSQL log
        return open_connections(Evidence.from_frames(pg=frame))
    return _open_connections(frame)


# --- histograms -----------------------------------------------------------------------------------


def histogram_quantile(
    metrics: pl.DataFrame | None, q: float, start: datetime, end: datetime
) -> tuple[float | None, str]:
    """The ``q`` quantile of a Prometheus wait/latency histogram over ``[start, end)``, and its name.

    The first ``*_bucket`` counter named like wait/latency/duration is used: its increase in
    the window per ``le`` bound, interpolated linearly inside the bucket (as PromQL's
    ``histogram_quantile`` does). ``(None, "")`` without such a histogram; ``(None, name)``
    when it saw nothing in the window.
    """
    if metrics is None or metrics.height == 0:
        return None, ""
    b = metrics.filter(pl.col("metric").cast(pl.String).str.contains(HISTOGRAM_PATTERN))
    if b.height == 0:
        return None, ""
    name = b["metric"][0]
    b = b.filter(pl.col("metric") == name).with_columns(
        le=pl.col("series").cast(pl.String).str.extract(r'le="([^"]*)"', 1)
    )
    w = b.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    if w.height == 0:
        return None, name
    inc = (
        w.sort("ts").group_by("series", "le").agg((pl.col("value").last() - pl.col("value").first()).clip(0).alias("n"))
        .group_by("le").agg(pl.col("n").sum())
        .with_columns(bound=pl.col("le").replace("+Inf", "inf").cast(pl.Float64)).sort("bound")
    )  # fmt: skip
    total = inc["n"].max()
    if not total:
        return None, name
    target = q * total
    prev_b, prev_n = 0.0, 0.0
    for bound, n in zip(inc["bound"].to_list(), inc["n"].to_list(), strict=True):
        if n >= target:
            if math.isinf(bound):
                return prev_b, name
            return prev_b + (bound - prev_b) * (target - prev_n) / max(n - prev_n, 1e-9), name
        prev_b, prev_n = bound, n
    return None, name


# --- leak rates and the idle timeout, as the charts show them -------------------------------------


def leak_series(
    data: Any = None, *, every: str | timedelta = "1h", pg: Any = None, metrics: Any = None
) -> pl.DataFrame:
    """:func:`loglib.leak_rates` of the best method only: of an Evidence (cached per ``every``), or of
    the frames ``pg=`` and ``metrics=``."""
    from loglib.analysis.leaks import leak_rates

    if data is None:
        return leak_rates(None, every, pg=pg, metrics=metrics, best_only=True)
    ev = as_evidence(data)
    return ev.cached(("leak_rates", str(every), "best"), lambda: leak_rates(ev, every, best_only=True))


def idle_timeout(data: Any) -> tuple[float | None, str | None]:
    """The idle timeout in seconds and where it comes from: ``"inferred"`` by the ``idle_drops``
    finding, else ``"idle_session_timeout"`` as configured; ``(None, None)`` when neither.

    A failing ``idle_drops`` detector raises: a bug is never read as "no timeout".
    """
    from loglib.analysis.findings import findings

    ev = as_evidence(data)

    def compute() -> tuple[float | None, str | None]:
        for fd in findings(ev, kinds=["idle_drops"]):
            value = fd.numbers.get("idle_timeout_s")
            if value:
                return float(value), "inferred"
        configured = ev.postgres_settings.idle_session_timeout
        if configured:
            return float(configured), "idle_session_timeout"
        return None, None

    return ev.cached("idle_timeout", compute)
