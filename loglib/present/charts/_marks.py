"""Shared marks of every chart: the figure, thresholds, event lines and legends, alert bands, time axes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import plotly.graph_objects as go
import polars as pl

from loglib.analysis.series import Span
from loglib.present import _data as d
from loglib.present.theme import (
    ALERT_FILL,
    EVENT_STYLE,
    REFUSED_COLOR,
    THRESHOLD_COLOR,
    TIME_AXIS_TITLE,
)

_TIME_HOVER = "%{x|%Y-%m-%d %H:%M:%S} UTC"


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


def _spanning(fig: go.Figure, marks: list[tuple[str, dict[str, Any]]], *, rows: int) -> None:
    """Add vertical lines and bands (``("vline", {x, row, ...})``, ``("vrect", {x0, x1, ...})``)
    across the ``rows`` subplots of a one-column figure at once, as plotly's ``add_vline`` /
    ``add_vrect`` would one by one.

    Each of those calls checks every subplot against every trace and re-validates every shape
    added so far: an overview with a few dozen events spent seconds there, whatever the input
    size. Here each mark becomes its shapes directly (``row`` given: that subplot; else every
    one), skipping subplots with nothing in them like plotly does, and the figure's shapes are
    set once. ``tests/test_scale_once.py`` pins the result to plotly's own calls.
    """
    if not marks:
        return
    refs = {}
    for r in range(1, rows + 1):
        sub = fig.get_subplot(r, 1)
        refs[r] = (sub.xaxis.plotly_name.replace("axis", ""), sub.yaxis.plotly_name.replace("axis", ""))
    used = {(t.xaxis or "x", t.yaxis or "y") for t in fig.data}
    for kind in ("shapes", "annotations", "images"):
        used |= {(o.xref or "x", o.yref or "y") for o in fig.layout[kind]}
    shapes = []
    for kind, options in marks:
        opts = dict(options)
        row = opts.pop("row", None)
        opts.pop("col", None)
        if kind == "vline":
            x = opts.pop("x")
            opts.update(type="line", x0=x, x1=x)
        elif kind == "vrect":
            opts.update(type="rect")
        else:
            msg = f"{kind!r}: only 'vline' and 'vrect' span subplots here"
            raise ValueError(msg)
        for r in refs if row is None else [row]:
            x, y = refs[r]
            if (x, y) in used:
                shapes.append(go.layout.Shape(y0=0, y1=1, xref=x, yref=f"{y} domain", **opts))
    fig.layout.shapes = (*fig.layout.shapes, *shapes)


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
        # the hover says more than the label: an Evidence's marks carry a ``detail`` (what followed)
        hover = f"{text} ({r['detail']})" if r.get("detail") else text
        rows.append(
            {"ts": r["ts"], "kind": r.get("kind") or "note", "text": text, "hover": hover, "evidence": where}
        )
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
            customdata=[[r["hover"], r["evidence"]] for r in mine],
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


def _add_alert_spans(fig: go.Figure, spans: list[Span], end: datetime | None) -> None:
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
