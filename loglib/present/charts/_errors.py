"""The error-rate chart: connection errors over time, stacked by class, with the alert threshold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl

from loglib.analysis.series import Span, firing_spans, threshold_spans
from loglib.core.timeparse import to_timedelta
from loglib.present import _data as d
from loglib.present.charts._marks import (
    _add_alert_spans,
    _add_event_lines,
    _add_threshold,
    _count_axis,
    _event_legend,
    _events_frame,
    _new_figure,
    _time_range,
    _time_ticks,
)
from loglib.present.theme import (
    ERROR_COLORS,
)

# --- error rate -----------------------------------------------------------------------------------


def _error_buckets(app: pl.DataFrame, every: str) -> pl.DataFrame:
    keep = [c for c in ("ts", "error_class", "level", "file", "line") if c in app.columns]
    err = app.select(keep).filter(pl.col("ts").is_not_null())  # narrow first: filters copy what they keep
    cls = pl.col("error_class") if "error_class" in err.columns else pl.lit(None, pl.String)
    level = pl.col("level") if "level" in err.columns else pl.lit(None, pl.String)
    err = err.with_columns(
        _class=pl.when(cls.is_not_null())
        .then(cls)
        .when(level.is_in(["error", "critical"]))
        .then(pl.lit("other error"))
    ).filter(pl.col("_class").is_not_null())
    if "file" not in err.columns:
        err = err.with_columns(file=pl.lit(None, pl.String), line=pl.lit(None, pl.Int64))
    return (
        err.sort("ts")
        .group_by(pl.col("ts").dt.truncate(every).alias("bucket"), "_class")
        .agg(n=pl.len(), **d.first_evidence())
        .pipe(d.with_evidence)
        .sort("bucket", "_class")
    )


def error_rate(
    data: Any = None,
    *,
    app: Any = None,
    events: Any = None,
    metrics: Any = None,
    alerts: Any = None,
    every: str | timedelta | None = None,
    threshold: float | None = None,
    alert_for: str | timedelta = "0s",
    title: str | None = None,
) -> go.Figure:
    """Connection errors over time, stacked by ``error_class``, with the alert threshold and firing spans.

    Parameters
    ----------
    data
        An application-log frame (``read_app_log``: ``ts``, ``error_class``, ``level``,
        ``file``, ``line``) or an ``Evidence``/``Incident``.
    app, events, metrics, alerts
        Frames that override (or stand in for) the Incident's. ``alerts`` is a
        :func:`loglib.replay_alert` frame; without it, Prometheus' ``ALERTS`` series in
        ``metrics`` give the firing spans, else ``threshold`` is replayed on the error count.
    every
        Bucket width (``"1m"``); default: the smallest of 1 s … 1 d giving at most 90 buckets.
    threshold
        Alert threshold in errors per bucket, drawn as a dashed line.
    alert_for
        The alert's ``for:`` when the threshold is replayed (``"0s"``: fires at once).
    title
        Chart title (default: "Connection errors by class").

    Returns
    -------
    plotly.graph_objects.Figure
        Stacked bars, one trace per class; hover: bucket, count, first ``file:line``.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, UTC
    >>> app = pl.DataFrame({"ts": [datetime(2024, 3, 1, 9, 30, s, tzinfo=UTC) for s in (1, 2, 40)],
    ...                     "error_class": ["pool_timeout"] * 3, "level": "error",
    ...                     "file": "app.log", "line": [10, 11, 12]})
    >>> fig = ll.charts.error_rate(app, every="30s", threshold=1)
    >>> [t.name for t in fig.data if t.type == "bar"]
    ['pool_timeout']
    """
    f = d.unpack(data, "app", app=app, marks=events, metrics=metrics)
    app_f = f["app"]
    if app_f is None:
        msg = "error_rate needs an application-log frame (read_app_log) or an Incident with app sources"
        raise ValueError(msg)
    span = d.window(f["incident"], app_f)
    step = d.auto_every(span, every)
    buckets = _error_buckets(app_f, step)
    unit = d.human_duration(step)
    fig = _new_figure(title or "Connection errors by class", barmode="stack")
    order = buckets.group_by("_class").agg(pl.col("n").sum()).sort("n", descending=True)["_class"].to_list()
    half = to_timedelta(step, argument="every") / 2
    for k, cls in enumerate(order):
        b = buckets.filter(pl.col("_class") == cls)
        fig.add_trace(
            go.Bar(
                x=(b["bucket"] + half).to_list(),
                y=b["n"].to_list(),
                width=to_timedelta(step, argument="every").total_seconds() * 1000 * 0.9,
                name=cls,
                showlegend=True,
                marker={"color": ERROR_COLORS[k % len(ERROR_COLORS)]},
                customdata=list(zip(b["bucket"].to_list(), b["evidence"].to_list(), strict=True)),
                hovertemplate=(
                    f"<b>{cls}</b>: %{{y}} in {unit} from %{{customdata[0]|%H:%M:%S}} UTC"
                    "<br>first: %{customdata[1]}<extra></extra>"
                ),
            )
        )
    if threshold is not None:
        _add_threshold(fig, float(threshold), f"alert threshold: {threshold:g} per {unit}")
    spans = _spans(alerts, f.get("metrics"), buckets, step, threshold, alert_for)
    _add_alert_spans(fig, spans, span[1] if span else None)
    ev = _events_frame(f.get("marks"), span)
    _add_event_lines(fig, ev)
    _event_legend(fig, ev)
    fig.update_yaxes(title={"text": f"errors per {unit}"}, rangemode="tozero")
    totals = buckets.group_by("bucket").agg(pl.col("n").sum())["n"]
    _count_axis(fig, max(float(totals.max() or 0), float(threshold or 0)))
    if buckets.height == 0:
        fig.add_annotation(
            text="no connection errors in the application log",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
    _time_range(fig, span)
    _time_ticks(fig, span)
    return fig


def _spans(
    alerts: Any, metrics: Any, buckets: pl.DataFrame, step: str, threshold: float | None, alert_for: Any
) -> list[Span]:
    if alerts is not None:
        return firing_spans(alerts=alerts)
    from_metrics = firing_spans(metrics=metrics)
    if from_metrics or threshold is None or buckets.height == 0:
        return from_metrics
    return threshold_spans(
        buckets,
        every=step,
        threshold=threshold,
        alert_for=alert_for,
        name=f"errors > {threshold:g} per {d.human_duration(step)}",
    )
