"""The session-durations chart: how long PostgreSQL sessions lasted, by how they ended."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl

from loglib.analysis.evidence import Evidence
from loglib.analysis.series import idle_timeout as inferred_idle_timeout
from loglib.present import _data as d
from loglib.present.charts._marks import (
    _count_axis,
    _new_figure,
)
from loglib.present.theme import (
    DB_COLOR,
    GREY,
    OKABE_ITO,
    THRESHOLD_COLOR,
)

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
        ``Evidence``/``Incident``.
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
        ss = Evidence.from_frames(pg=ss).sessions  # a PostgreSQL log: its sessions
    if ss is None:
        msg = "session_durations needs a pg_sessions frame, a PostgreSQL log frame or an Incident"
        raise ValueError(msg)
    how = None
    if idle_timeout is None and isinstance(inc, Evidence):
        idle_timeout, how = inferred_idle_timeout(inc)
    elif idle_timeout is None and inc is not None:
        configured = d.setting(inc, "postgres_settings", "idle_session_timeout")
        idle_timeout, how = (float(configured), "idle_session_timeout") if configured else (None, None)
    elif idle_timeout is not None:
        how = "given"
    rejected = int((ss["end_reason"] == "rejected").sum()) if "end_reason" in ss.columns else 0
    # only the columns drawn: each filter below copies what it keeps (all of a 120 MB frame at 1 GB)
    s = ss.select(c for c in ("duration", "end_reason", "open_at_end", "file", "line") if c in ss.columns)
    s = s.filter(pl.col("duration").is_not_null())
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
            .agg(n=pl.len(), **d.first_evidence())
            .pipe(d.with_evidence)
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
