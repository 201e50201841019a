"""Metric-name patterns: which Prometheus series are the pool's gauge, its size, the server's limit.

One home for the names loglib recognises in a metrics frame (``read_prometheus``), used by
the leak counter, the pool-exhaustion detector, the charts and the timeline. Each is a regular
expression (case-insensitive) matched anywhere in the ``metric`` column.

Examples
--------
>>> import re
>>> from loglib.formats.metric_names import CHECKED_OUT_PATTERN, POOL_SIZE_PATTERN
>>> [bool(re.search(CHECKED_OUT_PATTERN, m)) for m in ("db_pool_checked_out", "sqlalchemy_pool_checkedout", "db_pool_size")]
[True, True, False]
>>> [bool(re.search(POOL_SIZE_PATTERN, m)) for m in ("db_pool_size", "db_pool_max_overflow")]
[True, True]
"""

from __future__ import annotations

#: "connections checked out of the pool" (SQLAlchemy ``checkedout``, ``in_use``, HikariCP ``active``…)
CHECKED_OUT_PATTERN = r"(?i)checked_?out|in_?use|pool_active|active_connections|busy"
#: "the pool's size" (also matches ``*max_overflow*``: exclude :data:`OVERFLOW_PATTERN` for the size)
POOL_SIZE_PATTERN = r"(?i)pool_?(?:size|max)"
#: "connections the pool may open beyond its size" (SQLAlchemy ``max_overflow``)
OVERFLOW_PATTERN = r"(?i)max_?overflow"
#: the server's ``max_connections`` (postgres_exporter ``pg_settings_max_connections``)
MAX_CONNECTIONS_PATTERN = r"(?i)max_connections"
#: a wait/latency histogram's ``*_bucket`` counters (with ``le`` labels)
HISTOGRAM_PATTERN = r"(?i)(wait|latency|duration).*_bucket$"
#: "answered HTTP requests" counters (with a ``code`` or ``status`` label): impact in requests
REQUESTS_TOTAL_PATTERN = r"(?i)^(?:http_(?:server_)?requests?(?:_received)?_total|requests_total)$"
