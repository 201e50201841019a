"""Presentation: charts (plotly, the loglib look), timeline tables, redaction and export."""

from loglib.present import charts, theme
from loglib.present.redact import Redactor, redact_figure, redact_frame, redact_text

__all__ = ["Redactor", "charts", "redact_figure", "redact_frame", "redact_text", "theme"]
