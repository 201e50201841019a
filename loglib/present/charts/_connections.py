"""The PostgreSQL-connections chart: connections open against max_connections, new and refused ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from loglib.analysis.series import max_connections as metric_max_connections
from loglib.analysis.series import open_connections
from loglib.core.timeparse import to_timedelta
from loglib.formats.pg_messages import REFUSAL_EVENTS
from loglib.present import _data as d
from loglib.present.charts._marks import (
    _TIME_HOVER,
    _add_event_lines,
    _add_threshold,
    _count_axis,
    _event_legend,
    _events_frame,
    _time_range,
    _time_ticks,
)
from loglib.present.theme import (
    DB_COLOR,
    REFUSED_COLOR,
    TIME_AXIS_TITLE,
)

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
        A PostgreSQL log frame (``read_pg_log``) or an ``Evidence``/``Incident``.
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
    f = d.unpack(data, "pg", pg=pg, metrics=metrics, marks=events)
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
        or metric_max_connections(f["metrics"])
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
    top = _db_open_traces(fig, open_connections(d.evidence_of(f)), row=1)
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
    ev = _events_frame(f.get("marks"), span)
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


def _db_open_traces(fig: go.Figure, exact: pl.DataFrame, *, row: int) -> float:
    """Connections open (``exact``: :func:`loglib.analysis.series.open_connections`): the range
    (lowest to highest) in fine buckets, from every session start and end.

    Short sessions come and go within a bucket (the band's top); leaked ones stay (its floor).
    """
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
            **d.first_evidence(),
        )
        .pipe(d.with_evidence)
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
    # the four columns first: a filter copies every column of what it keeps (most of the log)
    ev = pg_f.select("ts", "event", "file", "line").filter(pl.col("ts").is_not_null())
    has_received = (ev["event"] == "connection_received").any()
    new_event = (
        "connection_authorized" if (ev["event"] == "connection_authorized").any() else "connection_received"
    )
    kinds = {"accepted": [new_event], "refused": list(REFUSAL_EVENTS)}
    colours = {"accepted": DB_COLOR, "refused": REFUSED_COLOR}
    width = to_timedelta(step, argument="every")
    for label, events in kinds.items():
        b = (
            ev.filter(pl.col("event").is_in(events))
            .sort("ts")
            .group_by(pl.col("ts").dt.truncate(step).alias("bucket"))
            .agg(n=pl.len(), **d.first_evidence())
            .pipe(d.with_evidence)
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
