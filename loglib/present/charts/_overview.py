"""The overview chart a postmortem leads with: errors, pool, connections and events on one time axis."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from loglib.analysis.series import firing_spans, max_connections, open_connections, pool_series
from loglib.core.timeparse import to_timedelta
from loglib.formats.pg_messages import REFUSAL_EVENTS
from loglib.present import _data as d
from loglib.present.charts._connections import _db_open_traces
from loglib.present.charts._errors import _error_buckets
from loglib.present.charts._marks import (
    _TIME_HOVER,
    _add_threshold,
    _alert_legend_trace,
    _count_axis,
    _event_rows,
    _events_frame,
    _spanning,
    _time_range,
    _time_ticks,
)
from loglib.present.charts._pool import _pool_traces
from loglib.present.markup import short_label
from loglib.present.theme import (
    ALERT_FILL,
    ERROR_COLORS,
    EVENT_STYLE,
    OKABE_ITO,
    TIME_AXIS_TITLE,
)

# --- overview -------------------------------------------------------------------------------------


def overview(
    data: Any, *, every: str | timedelta | None = None, alerts: Any = None, title: str | None = None
) -> go.Figure:
    """The chart a postmortem leads with: errors, pool, database connections and events on one time axis.

    Parameters
    ----------
    data
        An ``Evidence``/``Incident`` (or an object with ``app``, ``pg``, ``metrics``, ``events`` frames).
    every
        Bucket width for counts; default: at most 90 buckets over the window.
    alerts
        A :func:`loglib.replay_alert` frame for the firing spans (default: ``ALERTS`` series).

    Returns
    -------
    plotly.graph_objects.Figure
        One panel per kind of evidence that exists (connection errors by class; pool checked out,
        % of capacity (pool_size + max_overflow); PostgreSQL connections open against max_connections; events), with
        deploy/restart/action lines and alert-firing bands across all of them.
    """
    f = d.unpack(data, "app", app=None, pg=None, metrics=None, marks=None)
    inc = f["incident"]
    app_f, pg_f, met = f["app"], f["pg"], f["metrics"]
    span = d.window(inc, app_f, pg_f, met)
    step = d.auto_every(span, every)
    unit = d.human_duration(step)
    evidence = d.evidence_of(f)
    pools = pool_series(evidence)
    ev = _events_frame(f.get("marks"), span)
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
            top = _db_open_traces(fig, open_connections(evidence), row=i)
            maxc = d.setting(inc, "postgres_settings", "max_connections") or max_connections(met)
            if maxc:
                _add_threshold(fig, float(maxc), f"max_connections = {maxc:g}", row=i)
                top = max(top, float(maxc))
            # one marker per bucket (bounded by the bucket count, not the number of lines)
            _pg_marks(
                fig, pg_f, REFUSAL_EVENTS, "connections refused", "x", "vermillion", top * 1.08, step, unit, i
            )
            _pg_marks(fig, pg_f, ("client_reset",), "PostgreSQL resets", "triangle-down", "purple",
                      top * 1.13, step, unit, i)  # fmt: skip
            fig.update_yaxes(title={"text": "DB connections"}, range=[0, top * 1.18], row=i, col=1)
            _count_axis(fig, top, row=i)
        elif panel == "events":
            _events_panel(fig, ev, row=i, span=span)
    spans = firing_spans(evidence, alerts=alerts)
    bands = [
        ("vrect", {"x0": s.start, "x1": s.end or (span[1] if span else None), "fillcolor": ALERT_FILL,
                   "line_width": 0, "layer": "below"})
        for s in spans
    ]  # fmt: skip
    _spanning(fig, bands, rows=len(panels))
    if spans:
        fig.add_trace(_alert_legend_trace("alert firing"), row=len(panels), col=1)
    lines = []
    for r in _event_rows(ev) if ev is not None else []:
        if r["kind"] == "note":
            continue
        style = EVENT_STYLE.get(r["kind"], EVENT_STYLE["note"])
        line = {"color": style["color"], "dash": style["dash"], "width": 1.3}
        lines += [
            ("vline", {"x": r["ts"], "line": line, "row": i, "col": 1}) for i in range(1, len(panels) + 1)
        ]
    _spanning(fig, lines, rows=len(panels))
    for i in range(1, len(panels)):
        fig.update_xaxes(title={"text": ""}, row=i, col=1)
    fig.update_xaxes(title={"text": TIME_AXIS_TITLE}, row=len(panels), col=1)
    _time_range(fig, span)
    _time_ticks(fig, span)
    return fig


def _pg_marks(
    fig: go.Figure, pg_f: pl.DataFrame, events: Any, name: str, symbol: str, color: str,
    y: float, step: Any, unit: str, row: int,
) -> None:  # fmt: skip
    """PostgreSQL events of ``events`` as one marker per bucket, the count and first line in the hover.

    ``_pg_marks(fig, pg, ("client_reset",), "PostgreSQL resets", "triangle-down", "purple", 33, "5s", "5 s", 3)``
    marks the 'could not receive data from client: Connection reset by peer' lines.
    """
    hits = pg_f.filter(pl.col("event").is_in(list(events)))
    if not hits.height:
        return
    r = (
        hits.sort("ts")
        .group_by(pl.col("ts").dt.truncate(step).alias("bucket"))
        .agg(n=pl.len(), **d.first_evidence())
        .pipe(d.with_evidence)
        .sort("bucket")
    )
    fig.add_trace(
        go.Scatter(
            x=(r["bucket"] + to_timedelta(step, argument="every") / 2).to_list(), y=[y] * r.height,
            mode="markers", marker={"symbol": symbol, "size": 7, "color": OKABE_ITO[color]},
            name=name, customdata=list(zip(r["n"].to_list(), r["evidence"].to_list(), strict=True)),
            hovertemplate=f"<b>%{{customdata[0]}}</b> {name} in {unit} from %{{x|%H:%M:%S}} UTC<br>first: %{{customdata[1]}}<extra></extra>",
        ),
        row=row, col=1,
    )  # fmt: skip


#: one character of a 12 px event label (≈ 7.2 px) and the marker's gap (≈ 18 px), as shares of the
#: ≈ 880 px axis of the 1,000 px document layout the charts are exported at
LABEL_CHAR_SHARE = 7.2 / 880
LABEL_PAD_SHARE = 18 / 880


def _overlap(lane: list[tuple[float, float]], a: float, b: float) -> float:
    """How much of ``a``–``b`` the spans already in ``lane`` cover."""
    return sum(max(0.0, min(b, hi) - max(a, lo)) for lo, hi in lane)


def _place_label(
    lanes: list[list[tuple[float, float]]], x: float, text: str, width: float
) -> tuple[int, str, str]:
    """A free lane and side for an event's label at ``x`` (seconds into an axis ``width`` long).

    The label opens to the right unless it would run past the right edge. Where no lane is free it
    is cut shorter, and where even that collides only the marker is drawn (the hover keeps the text),
    so labels never overlap or leave the chart.

    >>> lanes = [[], [], []]
    >>> _place_label(lanes, 95.0, "app checkout-api stopped", 100.0)
    (0, 'app checkout-api stopped', 'middle left')
    """
    for label in (short_label(text), short_label(text, 16)):
        need = width * (LABEL_CHAR_SHARE * len(label) + LABEL_PAD_SHARE)
        sides = [("middle right", x, x + need), ("middle left", x - need, x)]
        if x + need > width:
            sides.reverse()
        for pos, a, b in sides:
            if pos == sides[0][0] or (a >= -0.05 * width and b <= width):
                for k, lane in enumerate(lanes):
                    if _overlap(lane, a, b) == 0:
                        lane.append((a, b))
                        return k, label, pos
    k = min(range(len(lanes)), key=lambda i: _overlap(lanes[i], x - 1e-9, x + 1e-9))
    return k, "", "middle left" if x > width / 2 else "middle right"


def _events_panel(
    fig: go.Figure, ev: pl.DataFrame | None, *, row: int, span: tuple[datetime, datetime] | None
) -> None:
    """Events as labelled markers on staggered lanes, so close labels never overlap."""
    fig.update_yaxes(visible=False, range=[-0.6, 3.4], fixedrange=True, row=row, col=1)
    if ev is None:
        return
    rows = sorted(_event_rows(ev), key=lambda r: r["ts"])
    width = (span[1] - span[0]).total_seconds() if span else 1.0
    lanes: list[list[tuple[float, float]]] = [[], [], []]  # the spans (seconds) each lane's labels cover
    placed = []
    for r in rows:
        x = (r["ts"] - (span[0] if span else r["ts"])).total_seconds()
        lane, label, pos = _place_label(lanes, x, str(r["text"]), width)
        placed.append((r, 2.5 - lane, label, pos))
    for kind in [k for k in EVENT_STYLE if any(p[0]["kind"] == k for p in placed)]:
        mine = [p for p in placed if p[0]["kind"] == kind]
        style = EVENT_STYLE[kind]
        fig.add_trace(
            go.Scatter(
                x=[p[0]["ts"] for p in mine], y=[p[1] for p in mine], mode="markers+text",
                text=[p[2] for p in mine], textposition=[p[3] for p in mine], textfont={"size": 12, "color": "#222222"},
                marker={"symbol": style["symbol"], "size": 10, "color": style["color"]},
                name=kind, legendgroup=f"event:{kind}",
                customdata=[[p[0]["hover"], p[0]["evidence"]] for p in mine],
                hovertemplate=f"<b>{kind}</b>: %{{customdata[0]}}<br>{_TIME_HOVER}<br>evidence: %{{customdata[1]}}<extra></extra>",
                cliponaxis=False,
            ),
            row=row, col=1,
        )  # fmt: skip
