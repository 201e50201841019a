"""The loglib look: one plotly template (``"loglib"``), a colour-blind-safe palette and the marks
every chart draws the same way (events, alert-firing spans, thresholds).

Two presets, after great-tables' ``opt_stylize``: ``"doc"`` (the default: sized for a page of an
incident document, 1000 × 520 px, readable at 2× scale) and ``"slides"`` (bigger type). Both are
registered as plotly templates (``"loglib"``, ``"loglib_slides"``) on import.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

#: Okabe & Ito (2008), the colour-blind-safe qualitative palette, by name
OKABE_ITO: dict[str, str] = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "orange": "#E69F00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
#: trace colours in order (yellow last: weak on white paper)
COLORWAY: tuple[str, ...] = tuple(
    OKABE_ITO[k] for k in ("blue", "vermillion", "green", "orange", "purple", "sky", "black", "yellow")
)
#: colours of error classes (blue is kept for the pool, green for database connections, purple for restarts)
ERROR_COLORS: tuple[str, ...] = tuple(
    OKABE_ITO[k] for k in ("vermillion", "orange", "sky", "black", "yellow", "purple")
)
#: fixed meanings, the same in every chart
POOL_COLOR = OKABE_ITO["blue"]
DB_COLOR = OKABE_ITO["green"]
REFUSED_COLOR = OKABE_ITO["vermillion"]
GREY = "#6E6E6E"
LIGHT_GREY = "#E5E5E5"
FONT = "Inter, 'Source Sans 3', 'Helvetica Neue', Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
TIME_AXIS_TITLE = "time (UTC)"

#: how each kind of incident event is drawn: colour, line dash, short label
EVENT_STYLE: dict[str, dict[str, str]] = {
    "deploy": {"color": OKABE_ITO["blue"], "dash": "dash", "symbol": "triangle-up"},
    "restart": {"color": OKABE_ITO["purple"], "dash": "dot", "symbol": "circle"},
    "action": {"color": OKABE_ITO["green"], "dash": "dashdot", "symbol": "diamond"},
    "fix": {"color": OKABE_ITO["green"], "dash": "solid", "symbol": "star"},
    "alert": {"color": OKABE_ITO["orange"], "dash": "dot", "symbol": "square"},
    "note": {"color": GREY, "dash": "dot", "symbol": "circle-open"},
}
#: the fill of an alert-firing span (vermillion, light)
ALERT_FILL = "rgba(213, 94, 0, 0.13)"
#: the colour of a threshold or capacity line
THRESHOLD_COLOR = "#333333"

PRESETS: dict[str, dict[str, float]] = {
    "doc": {"font": 14, "title": 18, "width": 1000, "height": 520},
    "slides": {"font": 20, "title": 26, "width": 1280, "height": 720},
}
TEMPLATE_NAMES: dict[str, str] = {"doc": "loglib", "slides": "loglib_slides"}


def make_template(preset: str = "doc") -> go.layout.Template:
    """The loglib plotly template for a preset (``"doc"`` or ``"slides"``).

    Examples
    --------
    >>> from loglib.present.theme import make_template
    >>> make_template("doc").layout.font.size
    14
    """
    if preset not in PRESETS:
        msg = f"preset={preset!r} is not one of {', '.join(map(repr, PRESETS))}"
        raise ValueError(msg)
    p = PRESETS[preset]
    axis = {
        "showline": True,
        "linecolor": "#444444",
        "linewidth": 1,
        "ticks": "outside",
        "tickcolor": "#444444",
        "ticklen": 5,
        "gridcolor": LIGHT_GREY,
        "zeroline": False,
        "automargin": True,
        "title": {"standoff": 8},
    }
    layout = go.Layout(
        font={"family": FONT, "size": p["font"], "color": "#222222"},
        title={"font": {"size": p["title"]}, "x": 0.0, "xanchor": "left", "xref": "paper", "y": 0.97},
        colorway=list(COLORWAY),
        paper_bgcolor="white",
        plot_bgcolor="white",
        width=p["width"],
        height=p["height"],
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        xaxis={**axis, "title": {"text": TIME_AXIS_TITLE, "standoff": 8}},
        yaxis={**axis, "rangemode": "tozero"},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0,
            "xanchor": "left",
            "x": 0.0,
            "bgcolor": "rgba(255,255,255,0)",
            "font": {"size": p["font"] - 1},
        },
        hoverlabel={"font": {"family": FONT, "size": p["font"] - 1}, "align": "left"},
        hovermode="closest",
        bargap=0.1,
    )
    return go.layout.Template(layout=layout)


def register() -> None:
    """Register the templates ``"loglib"`` and ``"loglib_slides"`` with plotly (done on import)."""
    for preset, name in TEMPLATE_NAMES.items():
        pio.templates[name] = make_template(preset)


register()
