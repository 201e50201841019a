"""The pool-utilisation chart: connections checked out of the pool against its size and capacity."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl

from loglib.analysis.series import PoolSeries, firing_spans, pool_series
from loglib.present import _data as d
from loglib.present import theme
from loglib.present.charts._marks import (
    _TIME_HOVER,
    _add_alert_spans,
    _add_event_lines,
    _add_threshold,
    _event_legend,
    _events_frame,
    _new_figure,
    _time_range,
    _time_ticks,
)
from loglib.present.theme import (
    POOL_COLOR,
)

# --- pool utilisation ----------------------------------------------------------------------------


def pool_utilisation(
    data: Any = None,
    *,
    metrics: Any = None,
    events: Any = None,
    alerts: Any = None,
    pool_size: float | None = None,
    max_overflow: float | None = None,
    title: str | None = None,
) -> go.Figure:
    """Connections checked out of the pool, as % of capacity (``pool_size + max_overflow``), with pool_size.

    Parameters
    ----------
    data
        A long metrics frame (``read_prometheus``) holding a checked-out gauge
        (``db_pool_checked_out`` or a name matching ``loglib.formats.metric_names.CHECKED_OUT_PATTERN``),
        or an ``Evidence``/``Incident``.
    pool_size, max_overflow
        The pool's settings; default: the ``*pool_size*`` / ``*max_overflow*`` series with the
        same labels, else the Incident's ``[app]`` settings.

    Returns
    -------
    plotly.graph_objects.Figure
        One step line per pool (instance). 100 % is the capacity ``pool_size + max_overflow`` (a
        full pool; never more unless the settings are stale); the dashed line is ``pool_size``
        (overflow connections above it), or 80 % for a pool without overflow.
    """
    f = d.unpack(data, "metrics", metrics=metrics, marks=events)
    inc = f["incident"]
    pools = pool_series(d.evidence_of(f), pool_size=pool_size, max_overflow=max_overflow)
    if not pools:
        msg = (
            "pool_utilisation needs a checked-out gauge in the metrics (a series named like "
            "db_pool_checked_out / *checkedout* / *in_use*); none found"
        )
        raise ValueError(msg)
    span = d.window(inc, f["metrics"])
    fig = _new_figure(title or "Connection pool utilisation")
    _pool_traces(fig, pools, row=None)
    ev = _events_frame(f.get("marks"), span)
    _add_alert_spans(
        fig,
        firing_spans(alerts=alerts, metrics=f["metrics"]),
        span[1] if span else None,
    )
    _add_event_lines(fig, ev)
    _event_legend(fig, ev)
    _time_range(fig, span)
    _time_ticks(fig, span)
    return fig


#: at most this many points per pool trace, whatever the incident's length (a figure stays small)
MAX_POINTS = 1500
_NICE_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def bounded(frame: pl.DataFrame, *, max_points: int = MAX_POINTS) -> tuple[pl.DataFrame, str | None]:
    """A gauge (``ts``, ``value``) with at most ``max_points`` rows: the highest value per bucket.

    The bucket is the first of 1 s, 2 s, 5 s, … 1 d that fits the window in ``max_points``,
    so a peak (the pool full) survives; ``None`` when the samples already fit.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t0 = datetime(2024, 3, 1)
    >>> g = pl.DataFrame({"ts": [t0 + timedelta(seconds=5 * i) for i in range(5000)], "value": [i % 9 for i in range(5000)]})
    >>> b, every = bounded(g, max_points=100)
    >>> b.height <= 100, every, b["value"].max()
    (True, '5m', 8)
    """
    if frame.height <= max_points:
        return frame, None
    span = (frame["ts"].max() - frame["ts"].min()).total_seconds()
    seconds = next((n for n in _NICE_S if span / n < max_points), int(span / max_points) + 1)
    every = f"{seconds // 60}m" if seconds % 60 == 0 and seconds < 3600 else (
        f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"
    )  # fmt: skip
    out = (
        frame.group_by(pl.col("ts").dt.truncate(every), maintain_order=True)
        .agg(pl.col("value").max())
        .sort("ts")
    )
    return out, every


def _pool_traces(fig: go.Figure, pools: list[PoolSeries], *, row: int | None) -> None:
    """Checked-out connections as a share of capacity (``pool_size + max_overflow``): a full pool
    is 100 %; ``pool_size`` is a line below it when the pool may overflow."""
    kw = {"row": row, "col": 1} if row else {}
    relative = all(p.size for p in pools)
    top = 0.0
    for i, p in enumerate(pools):
        g, every = bounded(p.frame.select("ts", "value"))
        v = g["value"]
        capacity = (p.size or 0) + (p.overflow or 0)
        y = (v / capacity * 100) if relative else v
        top = max(top, float(y.max() or 0))
        cap = f"{p.size:g}+{(p.overflow or 0):g}" if p.size else "?"
        most = f" (highest in the {every} from this time)" if every else ""
        fig.add_trace(
            go.Scatter(
                x=g["ts"].to_list(),
                y=y.to_list(),
                mode="lines",
                line={
                    "shape": "hv",
                    "width": 2,
                    "color": POOL_COLOR if i == 0 else theme.COLORWAY[(i + 2) % len(theme.COLORWAY)],
                },
                name=f"checked out: {p.name}" if len(pools) > 1 else "checked out",
                customdata=[[c, p.series] for c in v.to_list()],
                hovertemplate=(
                    f"<b>{p.name}</b>: %{{customdata[0]:g}} checked out{most} (pool {cap})"
                    + (f" = %{{y:.0f}}% of capacity {capacity:g}" if relative else "")
                    + f"<br>{_TIME_HOVER}<br>series: %{{customdata[1]}}<extra></extra>"
                ),
            ),
            **kw,
        )
    if relative:
        size = pools[0].size
        over = pools[0].overflow or 0
        size_pct = size / (size + over) * 100
        _add_threshold(fig, 100, f"capacity {size:g}+{over:g} = {size + over:g}", row=row, dash="solid")
        if over > 0:
            fig.add_hrect(
                y0=size_pct, y1=100, fillcolor="rgba(230,159,0,0.10)", line_width=0, layer="below", **kw
            )
            _add_threshold(fig, size_pct, f"pool_size = {size:g} (overflow above)", row=row)
        else:
            _add_threshold(fig, 80, "80% of capacity", row=row, dash="dot")
        upper = max(100.0, top) * 1.12
        fig.update_yaxes(title={"text": "checked out, % of capacity"}, range=[0, upper], ticksuffix="%", **kw)
    else:
        fig.update_yaxes(title={"text": "connections checked out"}, rangemode="tozero", **kw)
