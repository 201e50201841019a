"""Before and after a fix: the table of measures and its small bar charts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from loglib.core.timeparse import parse_instant
from loglib.formats.metric_names import HISTOGRAM_PATTERN
from loglib.present import _data as d
from loglib.present.theme import (
    GREY,
    OKABE_ITO,
)

# --- before / after -------------------------------------------------------------------------------


def _windows_for(inc: Any, before: Any, after: Any, at: Any, span: tuple[datetime, datetime] | None):
    if before is not None and after is not None:
        b0, b1, a0, a1 = (
            parse_instant(v, argument=f"{name}[{i}]")
            for name, pair in (("before", before), ("after", after))
            for i, v in enumerate(pair)
        )
        return (b0, b1), (a0, a1), "given"
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
    at = parse_instant(at, argument="at")
    length = min(at - span[0], span[1] - at)
    if length <= timedelta(0):
        msg = f"at={at.isoformat()} is not inside the evidence window {span[0].isoformat()} – {span[1].isoformat()}"
        raise ValueError(msg)
    return (at - length, at), (at, at + length), how


def _histogram_p95(metrics: pl.DataFrame | None, start: datetime, end: datetime) -> tuple[float | None, str]:
    """p95 from a Prometheus histogram (``*_bucket`` counters with ``le``) over [start, end)."""
    if metrics is None or metrics.height == 0:
        return None, ""
    b = metrics.filter(pl.col("metric").str.contains(HISTOGRAM_PATTERN))
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
        ``(start, end)`` of each window: aware datetimes or ISO text with ``Z``/an offset (a naive
        time is refused, never taken as UTC). Default: the Incident's
        windows named ``before``/``after``; else equal windows either side of ``at``.
    at
        The time of the fix (aware, like ``before``); default: the Incident's last deploy (else
        action/restart) event.

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

    .. versionchanged:: 0.1
       Naive times in ``before``/``after``/``at`` raise :class:`~loglib.TimezoneError` instead
       of being taken as UTC.
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
