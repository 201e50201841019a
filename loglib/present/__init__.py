"""Presentation: charts (plotly, the loglib look), timeline tables, redaction and export."""

from loglib.present import charts, export, theme
from loglib.present.export import (
    BrowserNotFoundError,
    BrowserSession,
    export_figure,
    export_figures,
    export_table,
    find_browser,
)
from loglib.present.redact import Redactor, redact_figure, redact_frame, redact_text
from loglib.present.timeline import timeline
from loglib.present.timeline_doc import TimelineDocument, timeline_document, timeline_table


def __getattr__(name: str) -> object:
    """``Bundle`` and ``export_bundle`` live in :mod:`loglib.postmortem` (the layer above)."""
    if name in ("Bundle", "export_bundle"):
        from loglib import postmortem

        return getattr(postmortem, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "BrowserNotFoundError",
    "BrowserSession",
    "Bundle",
    "Redactor",
    "TimelineDocument",
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
    "timeline_document",
    "timeline_table",
]
