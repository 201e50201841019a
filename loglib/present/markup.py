"""Text from the evidence made safe for the documents people paste: Markdown and HTML.

Log lines, metric labels and incident.toml notes can be written by anyone; in a report they must
read as text, never as markup, and a table cell must never break its table.

Example
-------
>>> from loglib.present.markup import md_cell, md_text
>>> md_cell("pool | <b>full</b>\\nretry")
'pool \\\\| &lt;b&gt;full&lt;/b&gt; retry'
>>> md_text("see `x` <img src=x onerror=alert(1)>")
'see \\\\`x\\\\` &lt;img src=x onerror=alert(1)&gt;'
"""

from __future__ import annotations

from typing import Any


def md_text(value: Any) -> str:
    """``value`` as Markdown prose that no renderer takes for HTML or code: ``<``, ``>`` and
    backticks escaped, line breaks kept (an entity such as ``&lt;`` only ever renders as text)."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("<", "&lt;").replace(">", "&gt;").replace("`", "\\`")


def md_cell(value: Any) -> str:
    """``value`` as one Markdown table cell: :func:`md_text`, pipes escaped, one line."""
    text = md_text(value).replace("|", "\\|")
    return " ".join(text.splitlines()).strip()


def short_label(text: Any, limit: int = 38) -> str:
    """A label cut to ``limit`` characters for a chart, with secrets removed *before* the cut.

    A cut secret still leaks its prefix ("PGPASSWORD=JJ8X1o…"), and once cut, no pattern knows
    it for a secret; so the text is redacted whole first (the full text belongs in the hover,
    which exports redact). The cut falls on a word boundary when one is near.

    >>> short_label("Operator restarted checkout-api: PGPASSWORD=JJ8X1o9585abcdef in env")
    'Operator restarted checkout-api:…'
    """
    from loglib.present.redact import redact_text

    clean = redact_text("" if text is None else str(text)) or ""
    if len(clean) <= limit:
        return clean
    cut = clean[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;") + "…"
