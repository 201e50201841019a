"""Postmortem charts (``loglib.charts``): plotly figures in the loglib look, from frames or an ``Incident``.

Every chart takes the frame it is about as its first argument, or an ``Incident`` (or any object
with the same attributes: ``app``, ``pg``, ``sessions``, ``metrics``, ``events``), polars or
pandas. Time axes are UTC and say so; deploys, restarts and actions are vertical lines in the
colours of :data:`loglib.present.theme.EVENT_STYLE`; alert-firing spans are light vermillion
bands; thresholds and capacities are dark dashed lines with their value written on them. Hover
text ends with the evidence: ``file:line`` of the first row behind a bar, or the series key.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from loglib.analysis.sessions import pg_sessions
from loglib.core.timeparse import to_timedelta
from loglib.present import _data as d
from loglib.present import theme
from loglib.present.theme import (
    ALERT_FILL,
    DB_COLOR,
    ERROR_COLORS,
    EVENT_STYLE,
    GREY,
    OKABE_ITO,
    POOL_COLOR,
    REFUSED_COLOR,
    THRESHOLD_COLOR,
    TIME_AXIS_TITLE,
)

__all__ = [
    "before_after",
    "before_after_table",
    "db_connections",
    "error_rate",
    "leak_rate",
    "overview",
    "pool_utilisation",
    "session_durations",
]

_TIME_HOVER = "%{x|%Y-%m-%d %H:%M:%S} UTC"
#: how sessions end, grouped for the duration histogram (label, colour)
_OUTCOMES: dict[str, tuple[str, str]] = {
    "disconnection": ("clean disconnect", DB_COLOR),
    "client_reset": ("reset / lost by client", OKABE_ITO["vermillion"]),
    "idle_timeout": ("idle timeout", OKABE_ITO["orange"]),
    "admin_termination": ("terminated by admin", OKABE_ITO["purple"]),
    "server_shutdown": ("server shutdown", OKABE_ITO["purple"]),
    "unknown": ("unknown end", GREY),
    "open": ("still open at end of log", OKABE_ITO["sky"]),
}


# --- shared marks ---------------------------------------------------------------------------------


def _new_figure(title: str | None, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template="loglib", title={"text": title or ""}, **layout)
    fig.update_xaxes(title={"text": TIME_AXIS_TITLE}, type="date")
    return fig


def _add_threshold(
    fig: go.Figure, y: float, text: str, *, row: int | None = None, dash: str = "dash"
) -> None:
    kw = {"row": row, "col": 1} if row else {}
    fig.add_hline(
        y=y,
        line={"color": THRESHOLD_COLOR, "dash": dash, "width": 1.5},
        annotation={
            "text": text,
            "font": {"size": 12, "color": THRESHOLD_COLOR},
            "bgcolor": "rgba(255,255,255,0.8)",
        },
        annotation_position="top left",
        **kw,
    )


def _events_frame(events: pl.DataFrame | None, span: tuple[datetime, datetime] | None) -> pl.DataFrame | None:
    if events is None or events.height == 0:
        return None
    ev = events.filter(pl.col("ts").is_not_null())
    if "kind" not in ev.columns:
        ev = ev.with_columns(kind=pl.lit("note"))
    if span is not None:
        pad = (span[1] - span[0]) * 0.02
        ev = ev.filter((pl.col("ts") >= span[0] - pad) & (pl.col("ts") <= span[1] + pad))
    return ev.sort("ts") if ev.height else None


def _event_rows(ev: pl.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in ev.iter_rows(named=True):
        text = r.get("text") or r.get("kind") or ""
        where = d.evidence(r.get("file"), r.get("line")) if r.get("file") else "incident.toml"
        rows.append({"ts": r["ts"], "kind": r.get("kind") or "note", "text": text, "evidence": where})
    return rows


def _add_event_lines(fig: go.Figure, ev: pl.DataFrame | None, *, notes: bool = False) -> None:
    """Deploys, restarts, actions (and alerts) as vertical lines over the whole plot area."""
    if ev is None:
        return
    for r in _event_rows(ev):
        if r["kind"] == "note" and not notes:
            continue
        style = EVENT_STYLE.get(r["kind"], EVENT_STYLE["note"])
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=r["ts"],
            x1=r["ts"],
            y0=0,
            y1=1,
            line={"color": style["color"], "dash": style["dash"], "width": 1.5},
            layer="above",
        )


def _event_legend(
    fig: go.Figure, ev: pl.DataFrame | None, *, notes: bool = False, row: int | None = None
) -> None:
    """One hoverable marker per event at the top of a panel, and a legend entry per kind."""
    if ev is None:
        return
    rows = [r for r in _event_rows(ev) if notes or r["kind"] != "note"]
    kinds = sorted({r["kind"] for r in rows}, key=list(EVENT_STYLE).index)
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        style = EVENT_STYLE.get(kind, EVENT_STYLE["note"])
        trace = go.Scatter(
            x=[r["ts"] for r in mine],
            y=[1.0] * len(mine),
            mode="markers",
            marker={
                "symbol": style["symbol"],
                "size": 11,
                "color": style["color"],
                "line": {"width": 1, "color": "white"},
            },
            line={"dash": style["dash"]},
            name=kind,
            legendgroup=f"event:{kind}",
            customdata=[[r["text"], r["evidence"]] for r in mine],
            hovertemplate=f"<b>{kind}</b>: %{{customdata[0]}}<br>{_TIME_HOVER}<br>evidence: %{{customdata[1]}}<extra></extra>",
            cliponaxis=False,
        )
        if row is None:
            # top of the plot area, whatever the y range
            trace.update(yaxis="y9")
            fig.add_trace(trace)
        else:
            fig.add_trace(trace, row=row, col=1)
    if row is None and kinds:
        fig.update_layout(yaxis9={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True})


def _add_alert_spans(fig: go.Figure, spans: list[d.Span], end: datetime | None) -> None:
    """Alert-firing spans as light vermillion bands, with one legend entry and a hover marker each."""
    if not spans:
        return
    for s in spans:
        fig.add_vrect(x0=s.start, x1=s.end or end, fillcolor=ALERT_FILL, line_width=0, layer="below")
    names = sorted({s.name for s in spans})
    fig.add_trace(_alert_legend_trace("alert firing" if len(names) != 1 else f"alert firing: {names[0]}"))
    # hover targets: invisible markers along the middle of each span
    xs, data = [], []
    for s in spans:
        stop = s.end or end or s.start
        for k in range(5):
            xs.append(s.start + (stop - s.start) * (k / 4))
            data.append([s.name, s.start, stop, s.evidence])
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[0.5] * len(xs),
            yaxis="y9",
            mode="markers",
            marker={"size": 16, "opacity": 0},
            showlegend=False,
            name="alert firing",
            customdata=data,
            hovertemplate=(
                "<b>alert firing</b>: %{customdata[0]}<br>from %{customdata[1]|%H:%M:%S} to %{customdata[2]|%H:%M:%S} UTC"
                "<br>evidence: %{customdata[3]}<extra></extra>"
            ),
        )
    )
    fig.update_layout(yaxis9={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True})


def _alert_legend_trace(name: str) -> go.Scatter:
    """A legend entry for alert-firing bands (the bands themselves are shapes)."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        marker={
            "symbol": "square",
            "size": 14,
            "color": ALERT_FILL,
            "line": {"width": 1, "color": REFUSED_COLOR},
        },
        name=name,
        hoverinfo="skip",
    )


def _count_axis(fig: go.Figure, top: float, *, row: int | None = None) -> None:
    """Whole-number ticks on an axis of counts (never 0.2, 0.4 … of a connection)."""
    kw = {"row": row, "col": 1} if row else {}
    if top <= 6:
        fig.update_yaxes(tick0=0, dtick=1, **kw)
    else:
        fig.update_yaxes(tickformat=",d", **kw)


def _time_range(fig: go.Figure, span: tuple[datetime, datetime] | None) -> None:
    if span is not None:
        fig.update_xaxes(range=[span[0], span[1]])


def _time_ticks(fig: go.Figure, span: tuple[datetime, datetime] | None) -> None:
    """Tick labels that fit the window: seconds only when the window is short, the date once."""
    fig.update_xaxes(type="date")
    if span is None:
        return
    seconds = (span[1] - span[0]).total_seconds()
    fmt = "%H:%M:%S" if seconds < 600 else "%H:%M"
    fig.update_xaxes(tickformat=fmt + ("\n%b %d, %Y" if seconds < 86400 else ""), hoverformat="%H:%M:%S")
    if seconds >= 86400:
        fig.update_xaxes(tickformat="%H:%M\n%b %d")


# --- error rate -----------------------------------------------------------------------------------


def _error_buckets(app: pl.DataFrame, every: str) -> pl.DataFrame:
    err = app.filter(pl.col("ts").is_not_null())
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
        .agg(n=pl.len(), evidence=d.evidence_expr().first())
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
        ``file``, ``line``) or an ``Incident``.
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
    f = d.unpack(data, "app", app=app, events=events, metrics=metrics)
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
    ev = _events_frame(f.get("events"), span)
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
) -> list[d.Span]:
    if alerts is not None:
        return d.spans_from_transitions(d.frame_or_none(alerts))
    from_metrics = d.spans_from_metrics(metrics)
    if from_metrics or threshold is None or buckets.height == 0:
        return from_metrics
    from loglib.analysis.alerts import replay_alert

    totals = buckets.group_by("bucket").agg(pl.col("n").sum()).sort("bucket")
    grid = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                totals["bucket"].min(), totals["bucket"].max(), step, eager=True, time_zone="UTC"
            )
        }
    )
    series = grid.join(totals.rename({"bucket": "ts"}), on="ts", how="left").with_columns(
        pl.col("n").fill_null(0).cast(pl.Float64).alias("value"), series=pl.lit("errors")
    )
    rule = replay_alert(
        series.select("ts", "series", "value"),
        "errors",
        ">",
        threshold,
        alert_for,
        name=f"errors > {threshold:g} per {d.human_duration(step)}",
    )
    return d.spans_from_transitions(rule)


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
    """Connections checked out of the pool, as % of ``pool_size``, with the 80 % line and capacity.

    Parameters
    ----------
    data
        A long metrics frame (``read_prometheus``) holding a checked-out gauge
        (``db_pool_checked_out`` or a name matching ``loglib.analysis.leaks.CHECKED_OUT_PATTERN``),
        or an ``Incident``.
    pool_size, max_overflow
        The pool's settings; default: the ``*pool_size*`` / ``*max_overflow*`` series with the
        same labels, else the Incident's ``[app]`` settings.

    Returns
    -------
    plotly.graph_objects.Figure
        One step line per pool (instance). 100 % is ``pool_size``; the solid line above it is the
        capacity ``pool_size + max_overflow`` (overflow connections); the dashed line is 80 %.
    """
    f = d.unpack(data, "metrics", metrics=metrics, events=events)
    inc = f["incident"]
    size = pool_size if pool_size is not None else d.setting(inc, "app_settings", "pool_size")
    over = max_overflow if max_overflow is not None else d.setting(inc, "app_settings", "max_overflow")
    pools = d.pool_series(f["metrics"], pool_size=size, max_overflow=over)
    if not pools:
        msg = (
            "pool_utilisation needs a checked-out gauge in the metrics (a series named like "
            "db_pool_checked_out / *checkedout* / *in_use*); none found"
        )
        raise ValueError(msg)
    span = d.window(inc, f["metrics"])
    fig = _new_figure(title or "Connection pool utilisation")
    _pool_traces(fig, pools, row=None)
    ev = _events_frame(f.get("events"), span)
    _add_alert_spans(
        fig,
        d.spans_from_transitions(d.frame_or_none(alerts))
        if alerts is not None
        else d.spans_from_metrics(f["metrics"]),
        span[1] if span else None,
    )
    _add_event_lines(fig, ev)
    _event_legend(fig, ev)
    _time_range(fig, span)
    _time_ticks(fig, span)
    return fig


def _pool_traces(fig: go.Figure, pools: list[d.PoolSeries], *, row: int | None) -> None:
    kw = {"row": row, "col": 1} if row else {}
    relative = all(p.size for p in pools)
    top = 0.0
    for i, p in enumerate(pools):
        v = p.frame["value"]
        y = (v / p.size * 100) if relative else v
        top = max(top, float(y.max() or 0))
        cap = f"{p.size:g}+{(p.overflow or 0):g}" if p.size else "?"
        fig.add_trace(
            go.Scatter(
                x=p.frame["ts"].to_list(),
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
                    f"<b>{p.name}</b>: %{{customdata[0]:g}} checked out (pool {cap})"
                    + (" = %{y:.0f}% of pool_size" if relative else "")
                    + f"<br>{_TIME_HOVER}<br>series: %{{customdata[1]}}<extra></extra>"
                ),
            ),
            **kw,
        )
    if relative:
        size = pools[0].size
        over = pools[0].overflow or 0
        cap_pct = (size + over) / size * 100
        _add_threshold(fig, 80, "80% of pool_size", row=row, dash="dot")
        _add_threshold(fig, 100, f"pool_size = {size:g}", row=row)
        if over > 0:
            fig.add_hrect(
                y0=100, y1=cap_pct, fillcolor="rgba(230,159,0,0.10)", line_width=0, layer="below", **kw
            )
            _add_threshold(
                fig, cap_pct, f"capacity {size:g}+{over:g} overflow = {size + over:g}", row=row, dash="solid"
            )
        upper = max(cap_pct, top) * 1.12
        fig.update_yaxes(
            title={"text": "checked out, % of pool_size"}, range=[0, upper], ticksuffix="%", **kw
        )
    else:
        fig.update_yaxes(title={"text": "connections checked out"}, rangemode="tozero", **kw)


# --- PostgreSQL connections ----------------------------------------------------------------------


def db_connections(
    data: Any = None,
    *,
    pg: Any = None,
    metrics: Any = None,
    events: Any = None,
    max_connections: int | None = None,
    reserved: int | None = None,
    every: str | timedelta | None = None,
    title: str | None = None,
) -> go.Figure:
    """PostgreSQL connections open against ``max_connections`` (top), new and refused connections (bottom).

    Parameters
    ----------
    data
        A PostgreSQL log frame (``read_pg_log``) or an ``Incident``.
    max_connections, reserved
        The server's ``max_connections`` and ``superuser_reserved_connections``; default: the
        Incident's ``[postgres]`` settings, else ``pg_settings_max_connections`` in the metrics.
    every
        Bucket width; default: at most 90 buckets.

    Returns
    -------
    plotly.graph_objects.Figure
        Two panels on one UTC time axis. Top: the most connections open in each bucket (step
        line) and the limits. Bottom: connections accepted and refused
        (``too_many_clients``/``reserved_slots``) per bucket, stacked. Hover gives the first
        ``file:line`` of the refusals.
    """
    f = d.unpack(data, "pg", pg=pg, metrics=metrics, events=events)
    pg_f, inc = f["pg"], f["incident"]
    if pg_f is None:
        msg = (
            "db_connections needs a PostgreSQL log frame (read_pg_log) or an Incident with a postgres source"
        )
        raise ValueError(msg)
    span = d.window(inc, pg_f)
    step = d.auto_every(span, every)
    unit = d.human_duration(step)
    maxc = (
        max_connections
        or d.setting(inc, "postgres_settings", "max_connections")
        or d.max_connections(f["metrics"])
    )
    res = (
        reserved
        if reserved is not None
        else d.setting(inc, "postgres_settings", "superuser_reserved_connections")
    )
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    fig.update_layout(
        template="loglib", title={"text": title or "PostgreSQL connections"}, barmode="stack", height=620,
        legend={"traceorder": "normal"},
    )  # fmt: skip
    top = _db_open_traces(fig, pg_f, step, row=1)
    if maxc:
        _add_threshold(fig, float(maxc), f"max_connections = {maxc:g}", row=1)
        if res:
            _add_threshold(
                fig,
                float(maxc - res),
                f"open to ordinary roles = {maxc - res:g} (reserved {res:g})",
                row=1,
                dash="dot",
            )
        top = max(top, float(maxc))
    fig.update_yaxes(title={"text": "connections open"}, range=[0, top * 1.15 or 1], row=1, col=1)
    _count_axis(fig, top, row=1)
    _db_new_traces(fig, pg_f, step, row=2)
    fig.update_yaxes(title={"text": f"new per {unit}"}, rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title={"text": ""}, row=1, col=1)
    fig.update_xaxes(title={"text": TIME_AXIS_TITLE}, row=2, col=1)
    ev = _events_frame(f.get("events"), span)
    _add_event_lines(fig, ev)
    _event_legend(fig, ev)
    _time_range(fig, span)
    _time_ticks(fig, span)
    fig.update_xaxes(
        showticklabels=True,
        row=1,
        col=1,
        tickformat=fig.layout.xaxis.tickformat.split("\n")[0] if fig.layout.xaxis.tickformat else None,
    )
    return fig


def open_connections(pg_f: pl.DataFrame) -> pl.DataFrame:
    """Connections open after every session start and end: ``ts``, ``open``, ``change``, ``file``, ``line``.

    Counted from :func:`loglib.pg_sessions` (refused attempts are not sessions); a session
    still open at the end of the log stays counted.
    """
    ss = pg_sessions(pg_f)
    if "end_reason" in ss.columns:
        ss = ss.filter(pl.col("end_reason").fill_null("") != "rejected")
    ss = ss.filter(pl.col("start").is_not_null())
    starts = ss.select(ts=pl.col("start"), change=pl.lit(1, pl.Int32), file="file", line="line")
    ends = ss.filter(pl.col("end").is_not_null()).select(
        ts=pl.col("end"), change=pl.lit(-1, pl.Int32), file="file", line="line"
    )
    ev = pl.concat([starts, ends]).sort("ts", "change", descending=[False, True])
    return ev.with_columns(open=pl.col("change").cum_sum())


def _fine_step(exact: pl.DataFrame) -> timedelta:
    span = exact["ts"].max() - exact["ts"].min()
    us = max(int(span.total_seconds() * 1e6 / 600), 1000)
    for nice in (
        1000,
        10_000,
        50_000,
        100_000,
        500_000,
        1e6,
        2e6,
        5e6,
        10e6,
        15e6,
        30e6,
        60e6,
        120e6,
        300e6,
        600e6,
        900e6,
        1800e6,
        3600e6,
    ):
        if nice >= us:
            return timedelta(microseconds=nice)
    return timedelta(hours=1)


def _db_open_traces(fig: go.Figure, pg_f: pl.DataFrame, step: str, *, row: int) -> float:
    """Connections open: the range (lowest to highest) in fine buckets, from every session start and end.

    Short sessions come and go within a bucket (the band's top); leaked ones stay (its floor).
    """
    exact = open_connections(pg_f)
    if exact.height == 0:
        return 1.0
    fine = _fine_step(exact)
    every = f"{int(fine.total_seconds() * 1e6)}us"
    b = (
        exact.with_columns(before=pl.col("open") - pl.col("change"))
        .group_by(pl.col("ts").dt.truncate(every).alias("bucket"))
        .agg(
            hi=pl.max_horizontal(pl.col("open").max(), pl.col("before").max()),
            lo=pl.min_horizontal(pl.col("open").min(), pl.col("before").min()),
            last=pl.col("open").last(),
            evidence=d.evidence_expr().first(),
        )
        .sort("bucket")
    )
    grid = pl.DataFrame(
        {
            "bucket": pl.datetime_range(
                b["bucket"].min(), b["bucket"].max(), every, eager=True, time_zone="UTC"
            )
        }
    )
    b = grid.join(b, on="bucket", how="left").with_columns(carry=pl.col("last").forward_fill())
    b = b.with_columns(
        hi=pl.col("hi").fill_null(pl.col("carry")), lo=pl.col("lo").fill_null(pl.col("carry")),
        evidence=pl.col("evidence").fill_null(""),
    )  # fmt: skip
    width = d.format_seconds(fine.total_seconds())
    fig.add_trace(
        go.Scatter(
            x=b["bucket"].to_list(), y=b["lo"].to_list(), mode="lines", line={"shape": "hv", "width": 0.8, "color": DB_COLOR},
            showlegend=False, hoverinfo="skip", name="connections open (lowest)",
        ),
        row=row, col=1,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=b["bucket"].to_list(),
            y=b["hi"].to_list(),
            mode="lines",
            line={"shape": "hv", "width": 2, "color": DB_COLOR},
            fill="tonexty",
            fillcolor="rgba(0, 158, 115, 0.25)",
            name="connections open",
            customdata=list(zip(b["lo"].to_list(), b["evidence"].to_list(), strict=True)),
            hovertemplate=(
                f"<b>%{{customdata[0]}}–%{{y}}</b> open in the {width} from {_TIME_HOVER}"
                "<br>first session event: %{customdata[1]}<br>series: pg_sessions start/end<extra></extra>"
            ),
        ),
        row=row,
        col=1,
    )
    return float(b["hi"].max() or 1)


def _db_new_traces(fig: go.Figure, pg_f: pl.DataFrame, step: str, *, row: int) -> None:
    ev = pg_f.filter(pl.col("ts").is_not_null())
    has_received = (ev["event"] == "connection_received").any()
    new_event = (
        "connection_authorized" if (ev["event"] == "connection_authorized").any() else "connection_received"
    )
    kinds = {"accepted": [new_event], "refused": list(d.REFUSAL_EVENTS)}
    colours = {"accepted": DB_COLOR, "refused": REFUSED_COLOR}
    width = to_timedelta(step, argument="every")
    for label, events in kinds.items():
        b = (
            ev.filter(pl.col("event").is_in(events))
            .sort("ts")
            .group_by(pl.col("ts").dt.truncate(step).alias("bucket"))
            .agg(n=pl.len(), evidence=d.evidence_expr().first())
            .sort("bucket")
        )
        if b.height == 0 and label == "refused":
            continue
        fig.add_trace(
            go.Bar(
                x=(b["bucket"] + width / 2).to_list(),
                y=b["n"].to_list(),
                width=width.total_seconds() * 1000 * 0.9,
                marker={"color": colours[label]},
                name=f"connections {label}",
                customdata=list(zip(b["bucket"].to_list(), b["evidence"].to_list(), strict=True)),
                hovertemplate=(
                    f"<b>%{{y}}</b> {label} from %{{customdata[0]|%H:%M:%S}} UTC"
                    "<br>first: %{customdata[1]}<extra></extra>"
                ),
            ),
            row=row,
            col=1,
        )
    del has_received


# --- leak rate ------------------------------------------------------------------------------------

_METHOD_TEXT = {
    "pool_events": "pool checkout/checkin log (exact)",
    "checked_out_gauge": "floor of the pool's checked-out gauge",
    "pg_sessions": "PostgreSQL sessions that never ended cleanly",
}


def leak_rate(
    data: Any = None,
    *,
    every: str | timedelta = "1h",
    pg: Any = None,
    metrics: Any = None,
    events: Any = None,
    title: str | None = None,
) -> go.Figure:
    """Connections leaked per hour (bars), with the method that counted them named in the title.

    Parameters
    ----------
    data
        A :func:`loglib.leak_rates` frame (``ts``, ``leaked``, ``method``, ``confidence``, …), a
        PostgreSQL log frame, or an ``Incident``; the last two are passed to ``leak_rates``.
    every
        Bucket width when ``leak_rates`` is run here.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar per bucket. Buckets where the pool or server was full are hatched: the count is a
        lower bound there (new leaks could not happen or be seen); a bucket with nothing visible
        is a hollow marker at zero, never a bar of 0.
    """
    from loglib.analysis.leaks import leak_rates

    rates: pl.DataFrame
    if data is not None and d.is_frame(data) and "leaked" in d.frame_or_none(data).columns:
        rates = d.frame_or_none(data)
        inc = None
    else:
        f = d.unpack(data, "pg", pg=pg, metrics=metrics, events=events)
        inc = f["incident"]
        if inc is not None and hasattr(inc, "sources"):
            rates = leak_rates(inc, every, best_only=True)
        else:
            rates = leak_rates(None, every, pg=f["pg"], metrics=f["metrics"], best_only=True)
        events = f.get("events")
    if rates.height == 0:
        msg = "leak_rate: no leak evidence (no pool events, checked-out gauge or PostgreSQL sessions)"
        raise ValueError(msg)
    methods = rates["method"].unique(maintain_order=True).to_list()
    method = methods[0]
    rates = rates.filter(pl.col("method") == method).sort("ts")
    visible = rates.filter(pl.col("leaked").is_not_null()) if "leaked" in rates.columns else rates
    conf = sorted(set((visible if visible.height else rates)["confidence"].drop_nulls().to_list()))
    unit = d.human_duration(every) if not isinstance(rates["ts"].dtype, pl.Null) else "hour"
    step = _infer_step(rates["ts"]) or to_timedelta(every, argument="every")
    unit = d.human_duration(step)
    fig = _new_figure(title or f"Connections leaked per {unit}")
    fig.add_annotation(
        text=f"method: <b>{method}</b> ({_METHOD_TEXT.get(method, method)}), confidence {', '.join(conf) or 'n/a'}",
        xref="paper", yref="paper", x=0, y=1.0, yanchor="bottom", showarrow=False, align="left",
        font={"size": 13, "color": GREY}, yshift=28,
    )  # fmt: skip
    agg = (
        rates.group_by("ts")
        .agg(
            leaked=pl.when(pl.col("leaked").is_not_null().any()).then(pl.col("leaked").sum()),
            saturated=pl.col("saturated").any() if "saturated" in rates.columns else pl.lit(False),
            confidence=pl.col("confidence").first(),
            note=pl.col("note").first() if "note" in rates.columns else pl.lit(""),
            scope=pl.col("scope").str.join(", ") if "scope" in rates.columns else pl.lit(""),
        )
        .sort("ts")
    )
    half = step / 2
    seen = agg.filter(pl.col("leaked").is_not_null())
    for sat, name, pattern in ((False, "leaked", ""), (True, "leaked (lower bound: pool/server full)", "/")):
        b = seen.filter(pl.col("saturated") == sat)
        if b.height == 0:
            continue
        fig.add_trace(
            go.Bar(
                x=(b["ts"] + half).to_list(),
                y=b["leaked"].to_list(),
                width=step.total_seconds() * 1000 * 0.85,
                name=name,
                marker={
                    "color": "rgba(213, 94, 0, 0.30)" if sat else REFUSED_COLOR,
                    "line": {"color": REFUSED_COLOR, "width": 1.5},
                    "pattern": {
                        "shape": pattern,
                        "fgcolor": REFUSED_COLOR,
                        "fillmode": "overlay",
                        "solidity": 0.3,
                    },
                },
                text=[f"{v:g}" + ("+" if sat else "") for v in b["leaked"].to_list()],
                textposition="outside",
                cliponaxis=False,
                customdata=list(
                    zip(
                        b["ts"].to_list(),
                        b["confidence"].to_list(),
                        b["note"].to_list(),
                        b["scope"].to_list(),
                        strict=True,
                    )
                ),
                hovertemplate=(
                    f"<b>%{{y:g}}</b> leaked in the {unit} from %{{customdata[0]|%H:%M}} UTC"
                    f"<br>method: {method}, confidence %{{customdata[1]}}<br>%{{customdata[2]}}"
                    "<br>series: %{customdata[3]}<extra></extra>"
                ),
            )
        )
    blind = agg.filter(pl.col("leaked").is_null())
    if blind.height:
        fig.add_trace(
            go.Scatter(
                x=(blind["ts"] + half).to_list(), y=[0] * blind.height, mode="markers+text",
                marker={"symbol": "x-thin-open", "size": 12, "color": GREY, "line": {"width": 2}},
                text=["?"] * blind.height, textposition="top center",
                name="not visible (pool/server full)",
                customdata=list(zip(blind["note"].to_list(), blind["scope"].to_list(), strict=True)),
                hovertemplate="not visible: %{customdata[0]}<br>series: %{customdata[1]}<extra></extra>",
                cliponaxis=False,
            )
        )  # fmt: skip
    span = (agg["ts"].min(), agg["ts"].max() + step)
    evidence_end = _evidence_end(inc, pg, metrics, data)
    if evidence_end is not None and span[0] < evidence_end < span[1]:
        span = (span[0], evidence_end)
    ev = _events_frame(d.frame_or_none(events) if d.is_frame(events) else None, span)
    _add_event_lines(fig, ev)
    _event_legend(fig, ev)
    top = float(seen["leaked"].max() or 1) if seen.height else 1.0
    fig.update_yaxes(title={"text": f"connections leaked per {unit}"}, range=[0, d.nice_ceiling(top * 1.15)])
    _count_axis(fig, d.nice_ceiling(top * 1.15))
    if seen.height and not (seen["leaked"] > 0).any():
        fig.add_annotation(
            text=f"no leaked connections seen ({method})", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
            font={"size": 15},
        )  # fmt: skip
    fig.update_layout(legend={"traceorder": "normal"})
    fig.update_layout(margin={"t": 110})
    _time_range(fig, span)
    _time_ticks(fig, span)
    return fig


def _evidence_end(inc: Any, *frames: Any) -> datetime | None:
    """Where the evidence ends: the incident's window end, else the latest ``ts`` of the frames."""
    win = d.window(
        inc,
        *[
            d.frame_or_none(f)
            for f in frames
            if f is not None
            and d.is_frame(f)
            and "ts" in d.frame_or_none(f).columns
            and "leaked" not in d.frame_or_none(f).columns
        ],
    )
    return win[1] if win else None


def _infer_step(ts: pl.Series) -> timedelta | None:
    diffs = ts.unique().sort().diff().drop_nulls()
    return diffs.min() if diffs.len() else None


# --- session durations ----------------------------------------------------------------------------

_TICKS = [
    (0.001, "1 ms"), (0.01, "10 ms"), (0.1, "100 ms"), (1, "1 s"), (10, "10 s"), (60, "1 min"),
    (600, "10 min"), (3600, "1 h"), (6 * 3600, "6 h"), (86400, "1 d"), (7 * 86400, "1 wk"),
]  # fmt: skip
#: extra ticks for a narrow range (less than two decades)
_FINE_TICKS = [
    (0.002, "2 ms"), (0.005, "5 ms"), (0.02, "20 ms"), (0.05, "50 ms"), (0.2, "200 ms"), (0.5, "500 ms"),
    (2, "2 s"), (5, "5 s"), (20, "20 s"), (30, "30 s"), (120, "2 min"), (300, "5 min"), (1200, "20 min"),
    (1800, "30 min"), (2 * 3600, "2 h"), (12 * 3600, "12 h"),
]  # fmt: skip


def session_durations(
    data: Any = None,
    *,
    sessions: Any = None,
    idle_timeout: float | timedelta | None = None,
    bins_per_decade: int = 8,
    title: str | None = None,
) -> go.Figure:
    """How long PostgreSQL sessions lasted: a histogram on a log time axis, stacked by how they ended.

    Parameters
    ----------
    data
        A :func:`loglib.pg_sessions` frame, a PostgreSQL log frame (sessions are derived), or an
        ``Incident``.
    idle_timeout
        Seconds (or a timedelta) to mark as the idle timeout. Default for an Incident: the one
        the ``idle_drops`` finding inferred, else ``[postgres] idle_session_timeout``.
    bins_per_decade
        Bins per factor of ten.

    Returns
    -------
    plotly.graph_objects.Figure
        Bars per log-spaced bin; refused connection attempts (``rejected``, no session) are left
        out and counted in the subtitle. Hover gives the bin's range, count and an example
        ``file:line``.
    """
    f = d.unpack(data, "sessions", sessions=sessions)
    ss, inc = f["sessions"], f["incident"]
    if ss is not None and "duration" not in ss.columns and "event" in ss.columns:
        ss = pg_sessions(ss)
    if ss is None:
        msg = "session_durations needs a pg_sessions frame, a PostgreSQL log frame or an Incident"
        raise ValueError(msg)
    how = None
    if idle_timeout is None and inc is not None:
        idle_timeout, how = _inferred_idle_timeout(inc)
    elif idle_timeout is not None:
        how = "given"
    rejected = ss.filter(pl.col("end_reason") == "rejected").height if "end_reason" in ss.columns else 0
    s = ss.filter(pl.col("duration").is_not_null())
    if "end_reason" in s.columns:
        s = s.filter(pl.col("end_reason") != "rejected")
    open_end = pl.col("open_at_end") if "open_at_end" in s.columns else pl.lit(False)
    s = s.with_columns(
        secs=pl.col("duration").dt.total_microseconds() / 1e6,
        outcome=pl.when(open_end).then(pl.lit("open")).otherwise(pl.col("end_reason").fill_null("unknown")),
    ).filter(pl.col("secs") > 0)
    if "file" not in s.columns:
        s = s.with_columns(file=pl.lit(None, pl.String), line=pl.lit(None, pl.Int64))
    sub = f"{s.height} sessions" + (f"; {rejected} refused connection attempts not shown" if rejected else "")
    fig = _new_figure(title or "How long PostgreSQL sessions lasted", barmode="stack")
    fig.add_annotation(
        text=sub,
        xref="paper",
        yref="paper",
        x=0,
        y=1.0,
        yanchor="bottom",
        yshift=28,
        showarrow=False,
        font={"size": 13, "color": GREY},
    )
    if s.height == 0:
        return fig
    lo = math.floor(math.log10(s["secs"].min()) * bins_per_decade) / bins_per_decade
    hi = math.ceil(math.log10(s["secs"].max()) * bins_per_decade + 1e-9) / bins_per_decade
    if hi <= lo:
        hi = lo + 1 / bins_per_decade
    s = s.with_columns(bin=((pl.col("secs").log10() - lo) * bins_per_decade).floor().cast(pl.Int32))
    present = s["outcome"].unique().to_list()
    order = [k for k in _OUTCOMES if k in present] + sorted(k for k in present if k not in _OUTCOMES)
    width = 1 / bins_per_decade
    # counts span orders of magnitude (hundreds of short sessions, a handful of leaked ones): then a
    # log count axis keeps the few long sessions visible, and bars stand side by side in their bin
    # (stacked bars on a log axis would misstate the upper segments)
    peak = int(s.group_by("bin", "outcome").len()["len"].max())
    log_y = peak >= 30
    slot = width * 0.92 / (len(order) if log_y else 1)
    for k, outcome in enumerate(order):
        b = (
            s.filter(pl.col("outcome") == outcome)
            .sort("secs")
            .group_by("bin")
            .agg(n=pl.len(), evidence=d.evidence_expr().first())
            .sort("bin")
        )
        left = lo + b["bin"].cast(pl.Float64) * width
        label, colour = _OUTCOMES.get(outcome, (outcome, GREY))
        fig.add_trace(
            go.Bar(
                x=(left + width / 2).to_list(),
                y=b["n"].to_list(),
                width=slot,
                offset=(-width * 0.46 + k * slot) if log_y else None,
                name=label,
                marker={"color": colour},
                showlegend=True,
                customdata=[
                    [d.format_seconds(10**a), d.format_seconds(10 ** (a + width)), e]
                    for a, e in zip(left.to_list(), b["evidence"].to_list(), strict=True)
                ],
                hovertemplate=f"<b>%{{y}}</b> {label}, lasting %{{customdata[0]}} – %{{customdata[1]}}<br>e.g. %{{customdata[2]}}<extra></extra>",
            )
        )
    xlo, xhi = lo - width, hi + width
    if idle_timeout is not None:
        secs = idle_timeout.total_seconds() if isinstance(idle_timeout, timedelta) else float(idle_timeout)
        if secs > 0:
            xlo, xhi = min(xlo, math.log10(secs) - width), max(xhi, math.log10(secs) + width)
    pool = _TICKS + (_FINE_TICKS if xhi - xlo < 2.5 else [])
    ticks = sorted((math.log10(v), t) for v, t in pool if xlo <= math.log10(v) <= xhi)
    fig.update_xaxes(
        title={"text": "session duration (log scale)"},
        type="linear",
        tickvals=[t[0] for t in ticks],
        ticktext=[t[1] for t in ticks],
        range=[xlo, xhi],
    )
    # counts span orders of magnitude (hundreds of short sessions, a handful of leaked ones):
    # a log count axis keeps the few long sessions visible
    if log_y:
        vals = [
            m * 10**e for e in range(int(math.log10(peak)) + 2) for m in (1, 2, 5) if m * 10**e <= peak * 1.6
        ]
        fig.update_yaxes(
            type="log", range=[math.log10(0.7), math.log10(peak * 1.6)], title={"text": "sessions (log scale)"},
            tickvals=vals, ticktext=[f"{v:g}" for v in vals],
        )  # fmt: skip
        fig.update_layout(barmode="overlay")
    else:
        stacked = int(s.group_by("bin").len()["len"].max())
        fig.update_yaxes(title={"text": "sessions"}, range=[0, stacked * 1.2])  # room for the timeout label
        _count_axis(fig, peak)
    fig.update_layout(legend={"traceorder": "normal"})
    if idle_timeout is not None:
        secs = idle_timeout.total_seconds() if isinstance(idle_timeout, timedelta) else float(idle_timeout)
        if secs > 0:
            x = math.log10(secs)
            fig.add_shape(
                type="line",
                x0=x,
                x1=x,
                y0=0,
                y1=1,
                xref="x",
                yref="paper",
                line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 1.5},
            )
            fig.add_annotation(
                x=x, y=1, xref="x", yref="paper", yanchor="top", xanchor="left", showarrow=False,
                text=f"idle timeout ≈ {d.format_seconds(secs)} ({how})", font={"size": 12}, bgcolor="rgba(255,255,255,0.85)",
                xshift=4,
            )  # fmt: skip
    return fig


def _inferred_idle_timeout(inc: Any) -> tuple[float | None, str | None]:
    try:
        from loglib.analysis.findings import findings

        for fd in findings(inc, kinds=["idle_drops"]):
            value = fd.numbers.get("idle_timeout_s")
            if value:
                return float(value), "inferred"
    except Exception:
        pass
    configured = d.setting(inc, "postgres_settings", "idle_session_timeout")
    if configured:
        return float(configured), "idle_session_timeout"
    return None, None


# --- overview -------------------------------------------------------------------------------------


def overview(
    data: Any, *, every: str | timedelta | None = None, alerts: Any = None, title: str | None = None
) -> go.Figure:
    """The chart a postmortem leads with: errors, pool, database connections and events on one time axis.

    Parameters
    ----------
    data
        An ``Incident`` (or an object with ``app``, ``pg``, ``metrics``, ``events`` frames).
    every
        Bucket width for counts; default: at most 90 buckets over the window.
    alerts
        A :func:`loglib.replay_alert` frame for the firing spans (default: ``ALERTS`` series).

    Returns
    -------
    plotly.graph_objects.Figure
        One panel per kind of evidence that exists (connection errors by class; pool checked out,
        % of pool_size; PostgreSQL connections open against max_connections; events), with
        deploy/restart/action lines and alert-firing bands across all of them.
    """
    f = d.unpack(data, "app", app=None, pg=None, metrics=None, events=None)
    inc = f["incident"]
    app_f, pg_f, met = f["app"], f["pg"], f["metrics"]
    span = d.window(inc, app_f, pg_f, met)
    step = d.auto_every(span, every)
    unit = d.human_duration(step)
    size = d.setting(inc, "app_settings", "pool_size")
    over = d.setting(inc, "app_settings", "max_overflow")
    pools = d.pool_series(met, pool_size=size, max_overflow=over)
    ev = _events_frame(f.get("events"), span)
    panels = []
    if app_f is not None:
        panels.append("errors")
    if pools:
        panels.append("pool")
    if pg_f is not None:
        panels.append("db")
    panels.append("events")
    heights = {"errors": 1.0, "pool": 1.0, "db": 1.0, "events": 0.55}
    fig = make_subplots(
        rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.035,
        row_heights=[heights[p] for p in panels],
    )  # fmt: skip
    fig.update_layout(
        template="loglib",
        title={"text": title or getattr(inc, "title", None) or "Incident overview"},
        barmode="stack",
        height=int(190 * sum(heights[p] for p in panels) + 170),
        legend={"y": 1.0, "yanchor": "bottom"},
        margin={"t": 100},
    )
    for i, panel in enumerate(panels, start=1):
        if panel == "errors":
            buckets = _error_buckets(app_f, step)
            half = to_timedelta(step, argument="every") / 2
            order = (
                buckets.group_by("_class")
                .agg(pl.col("n").sum())
                .sort("n", descending=True)["_class"]
                .to_list()
            )
            for k, cls in enumerate(order):
                b = buckets.filter(pl.col("_class") == cls)
                fig.add_trace(
                    go.Bar(
                        x=(b["bucket"] + half).to_list(), y=b["n"].to_list(), name=cls, showlegend=True,
                        marker={"color": ERROR_COLORS[k % len(ERROR_COLORS)]},
                        width=to_timedelta(step, argument="every").total_seconds() * 1000 * 0.9,
                        customdata=list(zip(b["bucket"].to_list(), b["evidence"].to_list(), strict=True)),
                        hovertemplate=f"<b>{cls}</b>: %{{y}} in {unit} from %{{customdata[0]|%H:%M:%S}} UTC<br>first: %{{customdata[1]}}<extra></extra>",
                    ),
                    row=i, col=1,
                )  # fmt: skip
            fig.update_yaxes(title={"text": f"errors / {unit}"}, rangemode="tozero", row=i, col=1)
            _count_axis(fig, float(buckets.group_by("bucket").agg(pl.col("n").sum())["n"].max() or 0), row=i)
            if buckets.height == 0:
                # an empty panel still shows its axes and says why it is empty
                fig.add_trace(
                    go.Scatter(x=[span[0], span[1]] if span else [], y=[0, 0], mode="lines", line={"width": 0},
                               showlegend=False, hoverinfo="skip"),
                    row=i, col=1,
                )  # fmt: skip
                fig.update_yaxes(range=[0, 1], row=i, col=1)
                fig.add_annotation(
                    text="no connection errors in the application log", showarrow=False, x=0.5, y=0.5,
                    xref="x domain" if i == 1 else f"x{i} domain", yref="y domain" if i == 1 else f"y{i} domain",
                )  # fmt: skip
        elif panel == "pool":
            _pool_traces(fig, pools, row=i)
            fig.update_yaxes(title={"text": "pool use"}, row=i, col=1)
        elif panel == "db":
            top = _db_open_traces(fig, pg_f, step, row=i)
            maxc = d.setting(inc, "postgres_settings", "max_connections") or d.max_connections(met)
            if maxc:
                _add_threshold(fig, float(maxc), f"max_connections = {maxc:g}", row=i)
                top = max(top, float(maxc))
            refused = pg_f.filter(pl.col("event").is_in(d.REFUSAL_EVENTS))
            if refused.height:
                r = (
                    refused.sort("ts")
                    .group_by(pl.col("ts").dt.truncate(step).alias("bucket"))
                    .agg(n=pl.len(), evidence=d.evidence_expr().first())
                    .sort("bucket")
                )
                fig.add_trace(
                    go.Scatter(
                        x=(r["bucket"] + to_timedelta(step, argument="every") / 2).to_list(), y=[top * 1.08] * r.height,
                        mode="markers", marker={"symbol": "x", "size": 7, "color": OKABE_ITO["vermillion"]},
                        name="connections refused", customdata=list(zip(r["n"].to_list(), r["evidence"].to_list(), strict=True)),
                        hovertemplate=f"<b>%{{customdata[0]}}</b> refused in {unit} from %{{x|%H:%M:%S}}<br>first: %{{customdata[1]}}<extra></extra>",
                    ),
                    row=i, col=1,
                )  # fmt: skip
            fig.update_yaxes(title={"text": "DB connections"}, range=[0, top * 1.18], row=i, col=1)
            _count_axis(fig, top, row=i)
        elif panel == "events":
            _events_panel(fig, ev, row=i, span=span)
    spans = (
        d.spans_from_transitions(d.frame_or_none(alerts)) if alerts is not None else d.spans_from_metrics(met)
    )
    for s in spans:
        fig.add_vrect(
            x0=s.start,
            x1=s.end or (span[1] if span else None),
            fillcolor=ALERT_FILL,
            line_width=0,
            layer="below",
        )
    if spans:
        fig.add_trace(_alert_legend_trace("alert firing"), row=len(panels), col=1)
    for r in _event_rows(ev) if ev is not None else []:
        if r["kind"] == "note":
            continue
        style = EVENT_STYLE.get(r["kind"], EVENT_STYLE["note"])
        for i in range(1, len(panels) + 1):
            fig.add_vline(
                x=r["ts"], line={"color": style["color"], "dash": style["dash"], "width": 1.3}, row=i, col=1
            )
    for i in range(1, len(panels)):
        fig.update_xaxes(title={"text": ""}, row=i, col=1)
    fig.update_xaxes(title={"text": TIME_AXIS_TITLE}, row=len(panels), col=1)
    _time_range(fig, span)
    _time_ticks(fig, span)
    return fig


def _events_panel(
    fig: go.Figure, ev: pl.DataFrame | None, *, row: int, span: tuple[datetime, datetime] | None
) -> None:
    """Events as labelled markers on staggered lanes, so close labels never overlap."""
    fig.update_yaxes(visible=False, range=[-0.6, 3.4], fixedrange=True, row=row, col=1)
    if ev is None:
        return
    rows = _event_rows(ev)
    width = (span[1] - span[0]).total_seconds() if span else 1.0
    lanes: list[float] = []  # x (seconds) where each lane's last label ends
    placed = []
    for r in rows:
        x = (r["ts"] - (span[0] if span else r["ts"])).total_seconds()
        label = r["text"] if len(r["text"]) <= 38 else r["text"][:36] + "…"
        need = width * (0.012 * len(label) + 0.03)  # label width as a share of the axis (≈ doc width)
        lane = next((k for k, end in enumerate(lanes) if x > end), None)
        if lane is None:
            lane = len(lanes) if len(lanes) < 3 else min(range(3), key=lambda k: lanes[k])
            lanes.append(0.0) if lane == len(lanes) else None
        lanes[lane] = x + need
        placed.append((r, 2.5 - lane, label))
    for kind in [k for k in EVENT_STYLE if any(p[0]["kind"] == k for p in placed)]:
        mine = [p for p in placed if p[0]["kind"] == kind]
        style = EVENT_STYLE[kind]
        fig.add_trace(
            go.Scatter(
                x=[p[0]["ts"] for p in mine], y=[p[1] for p in mine], mode="markers+text",
                text=[p[2] for p in mine], textposition="middle right", textfont={"size": 12, "color": "#222222"},
                marker={"symbol": style["symbol"], "size": 10, "color": style["color"]},
                name=kind, legendgroup=f"event:{kind}",
                customdata=[[p[0]["text"], p[0]["evidence"]] for p in mine],
                hovertemplate=f"<b>{kind}</b>: %{{customdata[0]}}<br>{_TIME_HOVER}<br>evidence: %{{customdata[1]}}<extra></extra>",
                cliponaxis=False,
            ),
            row=row, col=1,
        )  # fmt: skip


# --- before / after -------------------------------------------------------------------------------


def _windows_for(inc: Any, before: Any, after: Any, at: Any, span: tuple[datetime, datetime] | None):
    if before is not None and after is not None:
        return (d.as_utc(before[0]), d.as_utc(before[1])), (d.as_utc(after[0]), d.as_utc(after[1])), "given"
    wins = getattr(inc, "windows", ()) or ()
    named = {w.name.lower(): w for w in wins}
    b = next((w for n, w in named.items() if "before" in n), None)
    a = next((w for n, w in named.items() if "after" in n), None)
    if at is None and b is not None and a is not None:
        return (b.start, b.end), (a.start, a.end), "incident windows"
    how = "given"
    if at is None:
        events = getattr(inc, "events", None)
        if events is not None and events.height:
            fixes = events.filter(pl.col("kind") == "deploy")
            if fixes.height == 0:
                fixes = events.filter(pl.col("kind").is_in(["action", "restart"]))
            if fixes.height:
                row = fixes.sort("ts").row(-1, named=True)
                at, how = row["ts"], f"{row['kind']}: {row['text']}"
    if at is None or span is None:
        msg = "before/after needs before=(start, end) and after=(start, end), at=<time of the fix>, or an Incident with a deploy event or windows named 'before'/'after'"
        raise ValueError(msg)
    at = d.as_utc(at)
    length = min(at - span[0], span[1] - at)
    if length <= timedelta(0):
        msg = f"at={at.isoformat()} is not inside the evidence window {span[0].isoformat()} – {span[1].isoformat()}"
        raise ValueError(msg)
    return (at - length, at), (at, at + length), how


def _histogram_p95(metrics: pl.DataFrame | None, start: datetime, end: datetime) -> tuple[float | None, str]:
    """p95 from a Prometheus histogram (``*_bucket`` counters with ``le``) over [start, end)."""
    if metrics is None or metrics.height == 0:
        return None, ""
    b = metrics.filter(pl.col("metric").str.contains(r"(?i)(wait|latency|duration).*_bucket$"))
    if b.height == 0:
        return None, ""
    name = b["metric"][0]
    b = b.filter(pl.col("metric") == name).with_columns(le=pl.col("series").str.extract(r'le="([^"]*)"', 1))
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
    target = 0.95 * total
    prev_b, prev_n = 0.0, 0.0
    for bound, n in zip(inc["bound"].to_list(), inc["n"].to_list(), strict=True):
        if n >= target:
            if math.isinf(bound):
                return prev_b, name
            return prev_b + (bound - prev_b) * (target - prev_n) / max(n - prev_n, 1e-9), name
        prev_b, prev_n = bound, n
    return None, name


def before_after_table(
    data: Any,
    *,
    before: tuple[Any, Any] | None = None,
    after: tuple[Any, Any] | None = None,
    at: Any = None,
    app: Any = None,
    pg: Any = None,
    metrics: Any = None,
) -> pl.DataFrame:
    """Before/after figures of a fix: error rate, p95 wait, pool utilisation, refused connections.

    Parameters
    ----------
    data
        An ``Incident`` or an application-log frame.
    before, after
        ``(start, end)`` of each window (datetimes or ISO text, UTC). Default: the Incident's
        windows named ``before``/``after``; else equal windows either side of ``at``.
    at
        The time of the fix; default: the Incident's last deploy (else action/restart) event.

    Returns
    -------
    polars.DataFrame
        ``measure``, ``unit``, ``before``, ``after``, ``change`` (text, e.g. ``-92%``),
        ``evidence`` (where each figure comes from), plus ``window_before``/``window_after``.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
    >>> app = pl.DataFrame({"ts": [t0 + timedelta(seconds=s) for s in (5, 20, 50, 100)],
    ...                     "error_class": ["pool_timeout"] * 3 + [None], "level": "error",
    ...                     "file": "app.log", "line": [1, 2, 3, 4]})
    >>> tbl = ll.charts.before_after_table(app, at=t0 + timedelta(minutes=1))
    >>> tbl.select("measure", "before", "after", "change").row(0)
    ('error rate', 3.0, 0.0, '-100%')
    """
    f = d.unpack(data, "app", app=app, pg=pg, metrics=metrics)
    inc = f["incident"]
    app_f, pg_f, met = f["app"], f["pg"], f["metrics"]
    span = d.window(inc, app_f, pg_f, met)
    (b0, b1), (a0, a1), how = _windows_for(inc, before, after, at, span)
    rows = []

    def per_minute(frame: pl.DataFrame | None, cond: pl.Expr, s: datetime, e: datetime) -> float | None:
        if frame is None:
            return None
        n = d.in_window(frame, s, e).filter(cond).height
        return n / max((e - s).total_seconds() / 60, 1e-9)

    if app_f is not None:
        cond = (
            pl.col("error_class").is_not_null()
            if "error_class" in app_f.columns
            else pl.col("level").is_in(["error", "critical"])
        )
        rows.append(
            (
                "error rate",
                "errors/min",
                per_minute(app_f, cond, b0, b1),
                per_minute(app_f, cond, a0, a1),
                "app log: rows with an error_class",
            )
        )
    p_b, name = _histogram_p95(met, b0, b1)
    p_a, _ = _histogram_p95(met, a0, a1)
    rows.append(
        (
            "p95 wait",
            "s",
            p_b,
            p_a,
            f"histogram {name}" if name else "no latency/wait histogram in the metrics",
        )
    )
    size = d.setting(inc, "app_settings", "pool_size")
    pools = d.pool_series(met, pool_size=size, max_overflow=d.setting(inc, "app_settings", "max_overflow"))
    if pools:

        def util(s: datetime, e: datetime, fn: str) -> float | None:
            vals = []
            for p in pools:
                w = d.in_window(p.frame, s, e)
                if w.height and p.size:
                    vals.append(getattr(w["value"] / p.size * 100, fn)())
            return max(vals) if vals else None

        rows.append(
            (
                "pool utilisation, mean",
                "% of pool_size",
                util(b0, b1, "mean"),
                util(a0, a1, "mean"),
                f"series {pools[0].series}",
            )
        )
        rows.append(
            (
                "pool utilisation, peak",
                "% of pool_size",
                util(b0, b1, "max"),
                util(a0, a1, "max"),
                f"series {pools[0].series}",
            )
        )
    if pg_f is not None:
        cond = pl.col("event").is_in(d.REFUSAL_EVENTS)
        rows.append(
            (
                "connections refused by PostgreSQL",
                "per min",
                per_minute(pg_f, cond, b0, b1),
                per_minute(pg_f, cond, a0, a1),
                "PostgreSQL log: too_many_clients / reserved_slots",
            )
        )
    out = pl.DataFrame(
        rows,
        schema={
            "measure": pl.String,
            "unit": pl.String,
            "before": pl.Float64,
            "after": pl.Float64,
            "evidence": pl.String,
        },
        orient="row",
    )
    change = (
        pl.when(pl.col("before").is_null() | pl.col("after").is_null()).then(pl.lit("n/a"))
        .when(pl.col("before") == 0).then(pl.when(pl.col("after") == 0).then(pl.lit("0%")).otherwise(pl.lit("new")))
        .otherwise(((pl.col("after") / pl.col("before") - 1) * 100).round(0).cast(pl.Int64).map_elements(lambda v: f"{v:+d}%", return_dtype=pl.String))
    )  # fmt: skip
    return out.with_columns(
        pl.col("before").round(3), pl.col("after").round(3), change=change,
        window_before=pl.lit(f"{b0:%H:%M:%S}–{b1:%H:%M:%S} UTC"), window_after=pl.lit(f"{a0:%H:%M:%S}–{a1:%H:%M:%S} UTC"),
        split=pl.lit(how),
    ).select("measure", "unit", "before", "after", "change", "evidence", "window_before", "window_after", "split")  # fmt: skip


def before_after(data: Any, *, title: str | None = None, **windows: Any) -> go.Figure:
    """The :func:`before_after_table` as small bar charts: one panel per measure, before vs after.

    Parameters
    ----------
    data
        An ``Incident`` or an application-log frame.
    **windows
        ``before``, ``after``, ``at``, ``app``, ``pg``, ``metrics``: see :func:`before_after_table`.
    """
    table = before_after_table(data, **windows)
    split = table["split"][0] if table.height else ""
    # a measure with no data, or zero on both sides, says nothing in a chart (the table keeps it)
    table = table.filter(pl.col("before").is_not_null() | pl.col("after").is_not_null())
    table = table.filter(~((pl.col("before").fill_null(0) == 0) & (pl.col("after").fill_null(0) == 0)))
    n = max(table.height, 1)
    titles = [
        f"{m}<br><span style='font-size:12px;color:{GREY}'>{u}</span>"
        for m, u in zip(table["measure"], table["unit"], strict=True)
    ]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles or [""], horizontal_spacing=0.07)
    wb = table["window_before"][0] if table.height else ""
    wa = table["window_after"][0] if table.height else ""
    fig.update_layout(
        template="loglib",
        title={"text": title or "Before and after the fix"},
        showlegend=True, height=460, bargap=0.25, margin={"t": 110, "b": 90},
        legend={"orientation": "h", "y": -0.12, "yanchor": "top", "x": 0.5, "xanchor": "center"},
    )  # fmt: skip
    for i, r in enumerate(table.iter_rows(named=True), start=1):
        for which, colour, window in (("before", GREY, wb), ("after", OKABE_ITO["blue"], wa)):
            value = r[which]
            fig.add_trace(
                go.Bar(
                    x=[which], y=[value if value is not None else 0], name=f"{which} ({window})",
                    marker={"color": colour}, showlegend=i == 1, legendgroup=which,
                    text=[_fmt_value(value)], textposition="outside", cliponaxis=False,
                    customdata=[[r["measure"], r["unit"], r["evidence"], r["change"]]],
                    hovertemplate="<b>%{customdata[0]}</b> " + which + ": %{text} %{customdata[1]}<br>change: %{customdata[3]}<br>evidence: %{customdata[2]}<extra></extra>",
                ),
                row=1, col=i,
            )  # fmt: skip
        top = max(v for v in (r["before"], r["after"], 0) if v is not None)
        fig.update_yaxes(
            range=[0, d.nice_ceiling(top * 1.25) if top else 1], row=1, col=i, title={"text": ""}
        )
        fig.update_xaxes(title={"text": ""}, row=1, col=i)
    for ann in fig.layout.annotations:
        ann.update(font={"size": 14})
    fig.add_annotation(
        text=f"split at {split}" if split != "given" else "windows as given", xref="paper", yref="paper", x=0, y=1,
        yanchor="bottom", yshift=62, showarrow=False, font={"size": 13, "color": GREY}, align="left",
    )  # fmt: skip
    if table.height == 0:
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(
            text="no measure differs: no errors, refusals or pool data in either window",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
    return fig


def _fmt_value(v: float | None) -> str:
    if v is None:
        return "no data"
    if v == 0:
        return "0"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
