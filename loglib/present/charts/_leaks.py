"""The leak-rate chart: connections leaked per bucket, with the method that counted them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl

from loglib.analysis.evidence import Evidence
from loglib.analysis.series import leak_series
from loglib.core.timeparse import to_timedelta
from loglib.present import _data as d
from loglib.present.charts._marks import (
    _add_event_lines,
    _count_axis,
    _event_legend,
    _events_frame,
    _new_figure,
    _time_range,
    _time_ticks,
)
from loglib.present.theme import (
    GREY,
    REFUSED_COLOR,
)

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
        PostgreSQL log frame, or an ``Evidence``/``Incident``; for the last two the leak rates
        of the best method are derived (:func:`loglib.analysis.series.leak_series`, once
        per Evidence).
    every
        Bucket width of the derived leak rates.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar per bucket. Buckets where the pool or server was full are hatched: the count is a
        lower bound there (new leaks could not happen or be seen); a bucket with nothing visible
        is a hollow marker at zero, never a bar of 0.
    """
    rates: pl.DataFrame
    if data is not None and d.is_frame(data) and "leaked" in d.frame_or_none(data).columns:
        rates = d.frame_or_none(data)
        inc = None
    else:
        f = d.unpack(data, "pg", pg=pg, metrics=metrics, marks=events)
        inc = f["incident"]
        if isinstance(inc, Evidence):
            rates = leak_series(d.evidence_of(f), every=every)
        else:
            rates = leak_series(pg=f["pg"], metrics=f["metrics"], every=every)
        events = f.get("marks")
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
            # a bucket whose figure is a labelled lower bound (any of its rows) says so: "3+"
            bound=pl.col("note").str.starts_with("lower bound").any()
            if "note" in rates.columns
            else pl.lit(False),
            note=pl.col("note")
            .sort_by(~pl.col("note").str.starts_with("lower bound").fill_null(False))
            .first()
            if "note" in rates.columns
            else pl.lit(""),
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
                text=[
                    f"{v:g}" + ("+" if sat or lb else "")
                    for v, lb in zip(b["leaked"], b["bound"], strict=True)
                ],
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
