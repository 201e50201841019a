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
>>> plain_text("retry <script>alert(1)</script> if latency < 5 s")
'retry &lt;script>alert(1)&lt;/script> if latency < 5 s'
>>> md_text("__init__ *x* [a](b) &amp; pool_size")
'\\\\_\\\\_init\\\\_\\\\_ \\\\*x\\\\* \\\\[a](b) &amp;amp; pool_size'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: a ``<`` that opens a tag, a closing tag, a comment or a processing instruction
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
#: the same for polars (no look-ahead there): replace with ``"&lt;${1}"``
TAG_OPEN_POLARS = r"<([A-Za-z/!?])"
#: the formatting tags plotly draws (loglib's own hover templates use them), without attributes
_PLOTLY_TAG = re.compile(r"(</?(?:br|b|i|em|sup|sub|extra)\s*/?>)", re.I)

#: what CommonMark/GFM would read as markup: emphasis (``*``, ``_`` at a word's edge, ``~``),
#: links and images (``[``), entities (``&name;``); intraword ``_`` (``pool_size``) is left alone
_MARKUP = re.compile(r"[*~\[]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|&(?=#?\w+;)")


def _escape_markup(m: re.Match[str]) -> str:
    return "&amp;" if m.group(0) == "&" else "\\" + m.group(0)


def md_text(value: Any) -> str:
    """``value`` as Markdown prose that no renderer takes for markup: ``<``, ``>``, backticks,
    emphasis, link brackets and entities escaped, line breaks kept; a CommonMark renderer shows
    exactly ``value``."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("`", "\\`")
    text = _MARKUP.sub(_escape_markup, text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


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


def plain_text(value: Any) -> str:
    """``value`` with every ``<`` that could open a tag written ``&lt;``: no HTML, SVG or
    Markdown renderer sees an element, whatever shows the text (``a < b`` stays as it is)."""
    text = "" if value is None else str(value)
    return _TAG_OPEN.sub("&lt;", text)


#: a cell a spreadsheet would run as a formula (OWASP "CSV injection": = + - @ tab CR first)
FORMULA_START_POLARS = r"^[=+\-@\t\r]"
#: a number written as text (``-3``, ``+1.5e3``): a value, not a formula; it stays numeric
NUMBER_POLARS = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
#: the same two tests for one Python string (one pattern each, shared with the polars path)
_FORMULA_START = re.compile(FORMULA_START_POLARS)
_NUMBER = re.compile(NUMBER_POLARS)


def csv_cell(value: Any) -> str:
    """A CSV cell no spreadsheet runs as a formula: :func:`plain_text`, and a cell starting with
    ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` (OWASP's rule); a number stays a
    number.

    >>> csv_cell("=SUM(A1:A9)"), csv_cell("-3.5"), csv_cell("-- retry"), csv_cell("@x")
    ("'=SUM(A1:A9)", '-3.5', "'-- retry", "'@x")
    """
    text = plain_text(value)
    if _FORMULA_START.match(text) and not _NUMBER.match(text):
        return "'" + text
    return text


def csv_safe(frame: Any) -> Any:
    """``frame`` (polars) with every text cell as :func:`csv_cell` writes it; other columns as
    they are, so numbers stay numeric in the CSV.

    >>> import polars as pl
    >>> csv_safe(pl.DataFrame({"m": ["=1+1", "-2", "<b>"], "n": [-1, 2, 3]})).rows()
    [("'=1+1", -1), ('-2', 2), ('&lt;b>', 3)]
    """
    import polars as pl

    text = [c for c, t in frame.schema.items() if t == pl.String or t == pl.Categorical]
    frame = frame.with_columns(pl.col(text).cast(pl.String))  # a Categorical cell is text too
    tagless = [pl.col(c).str.replace_all(TAG_OPEN_POLARS, "&lt;${1}") for c in text]
    safe = [
        pl.when(pl.col(c).str.contains(FORMULA_START_POLARS) & ~pl.col(c).str.contains(NUMBER_POLARS))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    ]
    return frame.with_columns(tagless).with_columns(safe)


def figure_text(value: str) -> str:
    """A string for a plotly figure: :func:`plain_text`, except the formatting tags plotly draws
    itself (``<br>``, ``<b>``, ``<i>``, ``<sup>``, ``<sub>``, ``<em>``, ``<extra>``, no attributes).

    plotly shows ``&lt;`` as ``<``, so a chart reads the same; the figure's JSON carries no markup.

    >>> figure_text("%{x}<br>note: <img src=x onerror=alert(1)><extra></extra>")
    '%{x}<br>note: &lt;img src=x onerror=alert(1)><extra></extra>'
    """
    parts = _PLOTLY_TAG.split(value)
    return "".join(p if i % 2 else plain_text(p) for i, p in enumerate(parts))


def _figure_strings(obj: Any) -> Any:
    if isinstance(obj, str):
        return figure_text(obj)
    if isinstance(obj, dict):
        return {k: _figure_strings(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_figure_strings(v) for v in obj]
    return obj


def map_outputs(nb: Any, fn: Callable[[Any, str], Any]) -> int:
    """Replace every output of an executed notebook by ``fn(value, mime)``, in place; return
    how many changed. Streams and tracebacks come as ``text/plain``; a list of lines as one string.

    >>> nb = {"cells": [{"outputs": [{"output_type": "stream", "text": ["a", "b"]}]}]}
    >>> map_outputs(nb, lambda v, mime: v.upper()), nb["cells"][0]["outputs"][0]["text"]
    (1, 'AB')
    """
    changed = 0

    def one(value: Any, mime: str = "text/plain") -> Any:
        nonlocal changed
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = "".join(value)
        new = fn(value, mime)
        changed += new != value
        return new

    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                out["text"] = one(out.get("text", ""))
            elif kind in ("display_data", "execute_result"):
                data = out.get("data", {})
                for mime in list(data):
                    data[mime] = one(data[mime], mime)
            elif kind == "error":
                out["evalue"] = one(out.get("evalue", ""))
                out["traceback"] = [one(t) for t in out.get("traceback", [])]
    return changed


def neutralise_outputs(nb: Any) -> int:
    """Make every output of an executed notebook inert, in place; return how many changed.

    Text outputs (``text/plain``, ``text/markdown``, streams, tracebacks) get :func:`plain_text`;
    JSON outputs (plotly figures) get :func:`figure_text` on every string. ``text/html`` is
    left: it is markup by design, and the frames and figures in it escape their text already.
    A report made from logs that carry ``<script>`` then holds it nowhere as markup, in
    report.ipynb or report.html, whichever viewer renders which output.
    """

    def inert(value: Any, mime: str) -> Any:
        if mime.endswith("json"):
            return figure_text(value) if isinstance(value, str) else _figure_strings(value)
        if mime in ("text/plain", "text/markdown", "text/latex") and isinstance(value, str):
            return plain_text(value)
        return value

    return map_outputs(nb, inert)
