"""The before/after chart: :func:`loglib.before_after_table` as small bar charts, one panel per measure."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from loglib._compat import is_frame, to_polars
from loglib.analysis.before_after import before_after_table
from loglib.present import _data as d
from loglib.present.theme import GREY, OKABE_ITO


def before_after(data: Any, *, title: str | None = None, **windows: Any) -> go.Figure:
    """The :func:`loglib.before_after_table` as small bar charts: one panel per measure, before vs after.

    Parameters
    ----------
    data
        A ``before_after_table`` frame (drawn as it is), an ``Evidence``/``Incident`` or an
        application-log frame (the table is derived first).
    **windows
        ``before``, ``after``, ``at``, ``app``, ``pg``, ``metrics``: see :func:`before_after_table`.
    """
    if is_frame(data) and "measure" in to_polars(data).columns and not windows:
        table = to_polars(data)
    else:
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
