"""Postmortem charts (``loglib.charts``): plotly figures in the loglib look, from frames or an ``Evidence``.

Charts only draw. Every chart takes the frame it is about as its first argument, or an
``Evidence`` (an ``Incident`` gives its ``.evidence``; or any object
with the same attributes: ``app``, ``pg``, ``sessions``, ``metrics``, ``events``), polars or
pandas. Time axes are UTC and say so; deploys, restarts and actions are vertical lines in the
colours of :data:`loglib.present.theme.EVENT_STYLE`; alert-firing spans are light vermillion
bands; thresholds and capacities are dark dashed lines with their value written on them. Hover
text ends with the evidence: ``file:line`` of the first row behind a bar, or the series key.

What a chart shows beyond its own frame (sessions, connections open, alert spans, pool gauges
with their size, leak rates, the idle timeout, the before/after table) is derived in
:mod:`loglib.analysis.series` and :mod:`loglib.analysis.before_after`, once per Evidence.

The charts live in one private module per chart family (``_errors``, ``_pool``, ``_connections``,
``_leaks``, ``_sessions``, ``_overview``, ``_before_after``; shared marks in ``_marks``); this
package is their one public door.
"""

from loglib.analysis.series import open_connections as open_connections  # where it lived before
from loglib.present.charts._before_after import before_after, before_after_table
from loglib.present.charts._connections import db_connections
from loglib.present.charts._errors import error_rate
from loglib.present.charts._leaks import leak_rate
from loglib.present.charts._overview import overview
from loglib.present.charts._pool import pool_utilisation
from loglib.present.charts._sessions import session_durations

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
