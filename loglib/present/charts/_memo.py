"""Each chart drawn once per Evidence and options: the notebook's cell and the export bundle share it.

A postmortem draws the overview in its own cell and again in :func:`loglib.export_bundle`
(``incident_charts``), the evidence charts in a cell and again for the bundle. Drawing is
mostly plotly building its objects (a few seconds for the overview, whatever the input size)
plus the aggregation of the frames; doing it twice doubles both. A chart called with an
Evidence (or an Incident) and only plain options (``every="1m"``, a title, numbers) is drawn
once per Evidence and options, kept in the Evidence's cache, and each call gets its own copy
(so changing the figure one call returned never changes what another call, or the bundle, gets).
Charts given frames, or options that are frames, are drawn each time.

Examples
--------
>>> from loglib.present.charts._memo import drawn_once
>>> @drawn_once
... def my_chart(data, *, every=None):
...     import plotly.graph_objects as go
...     return go.Figure()
>>> my_chart(None).__class__.__name__
'Figure'
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import plotly.graph_objects as go

from loglib.analysis.evidence import Evidence
from loglib.core.progress import step

F = TypeVar("F", bound=Callable[..., go.Figure])
_PLAIN = (str, int, float, bool, timedelta, datetime, date, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, tuple | list):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


def _evidence(data: Any) -> Evidence | None:
    if isinstance(data, Evidence):
        return data
    ev = getattr(data, "evidence", None) if data is not None and not hasattr(data, "columns") else None
    return ev if isinstance(ev, Evidence) else None


def _key_part(value: Any) -> Any:
    return tuple(_key_part(v) for v in value) if isinstance(value, tuple | list) else value


def drawn_once(chart: F) -> F:
    """Wrap a chart function ``chart(data, **options)``: drawn once per Evidence and options, copied out."""
    name = chart.__name__
    signature = inspect.signature(chart)
    first = next(iter(signature.parameters))
    variadic = [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]

    @functools.wraps(chart)
    def wrapper(data: Any = None, *args: Any, **options: Any) -> go.Figure:
        ev = _evidence(data)
        if ev is None or args or not all(_plain(v) for v in options.values()):
            with step(f"chart {name}"):
                return chart(data, *args, **options)
        # the options as the chart sees them, defaults filled in: overview(inc) is overview(inc, every=None)
        bound = signature.bind(data, **options)
        bound.apply_defaults()
        given = dict(bound.arguments)
        given.pop(first)
        for var in variadic:
            given.update(given.pop(var, None) or {})
        key = ("chart", name, *sorted((k, _key_part(v)) for k, v in given.items()))

        def draw() -> go.Figure:
            with step(f"chart {name}"):  # a heartbeat on long ones; quick ones say nothing
                return chart(data, **options)

        return go.Figure(ev.cached(key, draw, progress=False))

    wrapper.__wrapped__ = chart  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
