"""Presentation: charts (plotly, the loglib look), timeline tables, redaction and export."""

from loglib.present import charts, export, theme
from loglib.present.export import (
    BrowserNotFoundError,
    BrowserSession,
    Bundle,
    export_bundle,
    export_figure,
    export_figures,
    export_table,
    find_browser,
)
from loglib.present.redact import Redactor, redact_figure, redact_frame, redact_text
from loglib.present.timeline import timeline

__all__ = [
    "BrowserNotFoundError",
    "BrowserSession",
    "Bundle",
    "Redactor",
    "charts",
    "export",
    "export_bundle",
    "export_figure",
    "export_figures",
    "export_table",
    "find_browser",
    "redact_figure",
    "redact_frame",
    "redact_text",
    "theme",
    "timeline",
]
