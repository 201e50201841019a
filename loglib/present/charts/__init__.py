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
package is their one public door. Each chart called with an Evidence (or an Incident) is drawn
once per Evidence and options and handed out as a copy (``_memo.drawn_once``).
"""

from loglib.analysis.series import open_connections as open_connections  # where it lived before
from loglib.present.charts import _before_after, _connections, _errors, _leaks, _overview, _pool, _sessions
from loglib.present.charts._before_after import before_after_table
from loglib.present.charts._memo import drawn_once

# drawn once per Evidence and options (the notebook's cells and the export bundle share them)
before_after = drawn_once(_before_after.before_after)
db_connections = drawn_once(_connections.db_connections)
error_rate = drawn_once(_errors.error_rate)
leak_rate = drawn_once(_leaks.leak_rate)
overview = drawn_once(_overview.overview)
pool_utilisation = drawn_once(_pool.pool_utilisation)
session_durations = drawn_once(_sessions.session_durations)

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
