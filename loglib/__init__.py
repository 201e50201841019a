"""loglib: database-connection incidents as time-aligned polars frames.

Read the evidence (PostgreSQL logs, application logs, Prometheus exports) into canonical
frames, then ask the questions a postmortem asks.

>>> import loglib as ll
>>> pg = ll.read_pg_log("pg/postgresql.log*")          # doctest: +SKIP
>>> ll.pg_connections(pg, every="1h")                   # doctest: +SKIP
"""

from loglib import postmortem, report
from loglib.analysis.activity import pg_activity_states, pg_idle_in_transaction, pg_oldest_xact
from loglib.analysis.alerts import replay_alert
from loglib.analysis.align import align
from loglib.analysis.before_after import before_after_table
from loglib.analysis.connections import pg_connections
from loglib.analysis.correlate import Correlation, correlate
from loglib.analysis.deploys import compare_deploys
from loglib.analysis.events import detect_events
from loglib.analysis.evidence import Evidence, NoEvidenceError
from loglib.analysis.findings import Finding, findings, findings_frame
from loglib.analysis.leaks import leak_rates
from loglib.analysis.metrics import metrics_wide
from loglib.analysis.pgbouncer import pgbouncer_processes, pgbouncer_sessions
from loglib.analysis.pool import pool_leak_rates, pool_leak_sites, pool_leaks
from loglib.analysis.requests import RequestImpact, request_impact
from loglib.analysis.sessions import pg_sessions
from loglib.analysis.skew import SkewEstimate, apply_offset, estimate_skew
from loglib.capture import capture_pg_activity
from loglib.core import schema
from loglib.core.rejects import ReadReport, read_report, rejects
from loglib.core.schema import ALERT_STATES, POOL_EVENT_KINDS, SESSION_END_REASONS
from loglib.errors import (
    FormatError,
    LoglibError,
    LoglibWarning,
    NoDataError,
    ParseError,
    RejectedLinesWarning,
    TimezoneError,
)
from loglib.formats.app_formats import APP_LOG_FORMATS
from loglib.formats.error_rules import (
    ERROR_CLASSES,
    ERROR_RULES,
    ErrorRule,
    add_error_rule,
    classify_error,
    error_class_expr,
    error_rules,
    message_template,
    message_template_expr,
    reset_error_rules,
)
from loglib.formats.log_pattern import compile_log_pattern
from loglib.formats.pg_messages import PG_EVENT_KINDS, classify_pg_message
from loglib.formats.pg_prefix import compile_prefix
from loglib.formats.pgbouncer_lines import PGBOUNCER_EVENT_KINDS
from loglib.incident import AppSettings, Incident, IncidentError, PostgresSettings, SourceSpec
from loglib.postmortem import export_bundle
from loglib.present import charts, export
from loglib.present.export import (
    BrowserNotFoundError,
    export_figure,
    export_figures,
    export_table,
)
from loglib.present.redact import Redactor, redact_displays, redact_figure, redact_frame, redact_text
from loglib.present.timeline import timeline
from loglib.present.timeline_doc import TimelineDocument, timeline_document, timeline_table
from loglib.report import ReportError, build_report
from loglib.sources.app import NoTimestampWarning, read_app_log, scan_app_log
from loglib.sources.pg_activity import read_pg_activity, read_pg_activity_gaps
from loglib.sources.pgbouncer import read_pgbouncer_log, scan_pgbouncer_log
from loglib.sources.pool_events import read_pool_events
from loglib.sources.postgres import read_pg_log, scan_pg_log
from loglib.sources.prometheus import read_prometheus
from loglib.store import read_sql, sql_incidents, to_sql

__version__ = "0.1.0"

__all__ = [
    "ALERT_STATES",
    "APP_LOG_FORMATS",
    "ERROR_CLASSES",
    "ERROR_RULES",
    "PGBOUNCER_EVENT_KINDS",
    "PG_EVENT_KINDS",
    "POOL_EVENT_KINDS",
    "SESSION_END_REASONS",
    "AppSettings",
    "BrowserNotFoundError",
    "Correlation",
    "ErrorRule",
    "Evidence",
    "Finding",
    "FormatError",
    "Incident",
    "IncidentError",
    "LoglibError",
    "LoglibWarning",
    "NoDataError",
    "NoEvidenceError",
    "NoTimestampWarning",
    "ParseError",
    "PostgresSettings",
    "ReadReport",
    "Redactor",
    "RejectedLinesWarning",
    "ReportError",
    "RequestImpact",
    "SkewEstimate",
    "SourceSpec",
    "TimelineDocument",
    "TimezoneError",
    "add_error_rule",
    "align",
    "apply_offset",
    "before_after_table",
    "build_report",
    "capture_pg_activity",
    "charts",
    "classify_error",
    "classify_pg_message",
    "compare_deploys",
    "compile_log_pattern",
    "compile_prefix",
    "correlate",
    "detect_events",
    "error_class_expr",
    "error_rules",
    "estimate_skew",
    "export",
    "export_bundle",
    "export_figure",
    "export_figures",
    "export_table",
    "findings",
    "findings_frame",
    "leak_rates",
    "message_template",
    "message_template_expr",
    "metrics_wide",
    "pg_activity_states",
    "pg_connections",
    "pg_idle_in_transaction",
    "pg_oldest_xact",
    "pg_sessions",
    "pgbouncer_processes",
    "pgbouncer_sessions",
    "pool_leak_rates",
    "pool_leak_sites",
    "pool_leaks",
    "postmortem",
    "read_app_log",
    "read_pg_activity",
    "read_pg_activity_gaps",
    "read_pg_log",
    "read_pgbouncer_log",
    "read_pool_events",
    "read_prometheus",
    "read_report",
    "read_sql",
    "redact_displays",
    "redact_figure",
    "redact_frame",
    "redact_text",
    "rejects",
    "replay_alert",
    "report",
    "request_impact",
    "reset_error_rules",
    "scan_app_log",
    "scan_pg_log",
    "scan_pgbouncer_log",
    "schema",
    "sql_incidents",
    "timeline",
    "timeline_document",
    "timeline_table",
    "to_sql",
]
