"""loglib: database-connection incidents as time-aligned polars frames.

Read the evidence (PostgreSQL logs, application logs, Prometheus exports) into canonical
frames, then ask the questions a postmortem asks.

>>> import loglib as ll
>>> pg = ll.read_pg_log("pg/postgresql.log*")          # doctest: +SKIP
>>> ll.pg_connections(pg, every="1h")                   # doctest: +SKIP
"""

import importlib
from typing import TYPE_CHECKING, Any

#: where each public name lives: imported on first use, so ``import loglib`` (and ``loglib --help``)
#: does not load polars, plotly and every reader up front
_LAZY: dict[str, str] = {
    "postmortem": "loglib.postmortem",
    "report": "loglib.report",
    "pg_activity_states": "loglib.analysis.activity",
    "pg_idle_in_transaction": "loglib.analysis.activity",
    "pg_oldest_xact": "loglib.analysis.activity",
    "replay_alert": "loglib.analysis.alerts",
    "align": "loglib.analysis.align",
    "before_after_table": "loglib.analysis.before_after",
    "pg_connections": "loglib.analysis.connections",
    "Correlation": "loglib.analysis.correlate",
    "correlate": "loglib.analysis.correlate",
    "compare_deploys": "loglib.analysis.deploys",
    "detect_events": "loglib.analysis.events",
    "Evidence": "loglib.analysis.evidence",
    "NoEvidenceError": "loglib.analysis.evidence",
    "Finding": "loglib.analysis.findings",
    "findings": "loglib.analysis.findings",
    "findings_frame": "loglib.analysis.findings",
    "leak_rates": "loglib.analysis.leaks",
    "metrics_wide": "loglib.analysis.metrics",
    "pgbouncer_processes": "loglib.analysis.pgbouncer",
    "pgbouncer_sessions": "loglib.analysis.pgbouncer",
    "pool_leak_rates": "loglib.analysis.pool",
    "pool_leak_sites": "loglib.analysis.pool",
    "pool_leaks": "loglib.analysis.pool",
    "RequestImpact": "loglib.analysis.requests",
    "request_impact": "loglib.analysis.requests",
    "pg_sessions": "loglib.analysis.sessions",
    "SkewEstimate": "loglib.analysis.skew",
    "apply_offset": "loglib.analysis.skew",
    "estimate_skew": "loglib.analysis.skew",
    "capture_pg_activity": "loglib.capture",
    "schema": "loglib.core.schema",
    "ReadReport": "loglib.core.rejects",
    "read_report": "loglib.core.rejects",
    "rejects": "loglib.core.rejects",
    "ALERT_STATES": "loglib.core.schema",
    "POOL_EVENT_KINDS": "loglib.core.schema",
    "SESSION_END_REASONS": "loglib.core.schema",
    "FormatError": "loglib.errors",
    "LoglibError": "loglib.errors",
    "LoglibWarning": "loglib.errors",
    "NoDataError": "loglib.errors",
    "ParseError": "loglib.errors",
    "RejectedLinesWarning": "loglib.errors",
    "TimezoneError": "loglib.errors",
    "APP_LOG_FORMATS": "loglib.formats.app_formats",
    "ERROR_CLASSES": "loglib.formats.error_rules",
    "ERROR_RULES": "loglib.formats.error_rules",
    "ErrorRule": "loglib.formats.error_rules",
    "add_error_rule": "loglib.formats.error_rules",
    "classify_error": "loglib.formats.error_rules",
    "error_class_expr": "loglib.formats.error_rules",
    "error_rules": "loglib.formats.error_rules",
    "message_template": "loglib.formats.error_rules",
    "message_template_expr": "loglib.formats.error_rules",
    "reset_error_rules": "loglib.formats.error_rules",
    "compile_log_pattern": "loglib.formats.log_pattern",
    "PG_EVENT_KINDS": "loglib.formats.pg_messages",
    "classify_pg_message": "loglib.formats.pg_messages",
    "compile_prefix": "loglib.formats.pg_prefix",
    "PGBOUNCER_EVENT_KINDS": "loglib.formats.pgbouncer_lines",
    "AppSettings": "loglib.incident",
    "Incident": "loglib.incident",
    "IncidentError": "loglib.incident",
    "PostgresSettings": "loglib.incident",
    "SourceSpec": "loglib.incident",
    "export_bundle": "loglib.postmortem",
    "charts": "loglib.present.charts",
    "export": "loglib.present.export",
    "BrowserNotFoundError": "loglib.present.export",
    "export_figure": "loglib.present.export",
    "export_figures": "loglib.present.export",
    "export_table": "loglib.present.export",
    "Redactor": "loglib.present.redact",
    "redact_displays": "loglib.present.redact",
    "redact_figure": "loglib.present.redact",
    "redact_frame": "loglib.present.redact",
    "redact_text": "loglib.present.redact",
    "timeline": "loglib.present.timeline",
    "TimelineDocument": "loglib.present.timeline_doc",
    "timeline_document": "loglib.present.timeline_doc",
    "timeline_table": "loglib.present.timeline_doc",
    "ReportError": "loglib.report",
    "build_report": "loglib.report",
    "NoTimestampWarning": "loglib.sources.app",
    "read_app_log": "loglib.sources.app",
    "scan_app_log": "loglib.sources.app",
    "read_pg_activity": "loglib.sources.pg_activity",
    "read_pg_activity_gaps": "loglib.sources.pg_activity",
    "read_pgbouncer_log": "loglib.sources.pgbouncer",
    "scan_pgbouncer_log": "loglib.sources.pgbouncer",
    "read_pool_events": "loglib.sources.pool_events",
    "read_pg_log": "loglib.sources.postgres",
    "scan_pg_log": "loglib.sources.postgres",
    "read_prometheus": "loglib.sources.prometheus",
    "read_sql": "loglib.store",
    "sql_incidents": "loglib.store",
    "to_sql": "loglib.store",
}
#: the names that are modules themselves (``ll.charts.overview``, ``ll.report.build_report``)
_MODULES = frozenset({"postmortem", "report", "schema", "charts", "export"})

if TYPE_CHECKING:  # editors and type checkers see the eager imports
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'loglib' has no attribute {name!r}"
        raise AttributeError(msg)
    imported = importlib.import_module(module)
    value = imported if name in _MODULES else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
