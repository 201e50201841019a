"""Export (``loglib.export``): charts to PNG/SVG/PDF/HTML, tables to Markdown/HTML/CSV.

Static images are drawn by kaleido in one headless Chrome/Chromium that stays open for the
process (:mod:`loglib.present._browser`, :class:`BrowserSession`): exporting 20 charts starts
one browser, not 20. HTML is self-contained (plotly.js inlined, no CDN, MathJax off) and works
offline. The incident bundle (:func:`loglib.export_bundle`) is part of the postmortem
(:mod:`loglib.postmortem`); ``loglib.present.export.export_bundle`` still finds it.

Everything is redacted on the way out (:mod:`loglib.present.redact`) unless ``redact=False``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from loglib._compat import to_polars
from loglib.present._browser import (
    BROWSER_NAMES,
    INSTALL_HINT,
    RENDER_TIMEOUT,
    START_TIMEOUT,
    BrowserNotFoundError,
    BrowserSession,
    ExportError,
    browser_session,
    close_browser,
    find_browser,
)
from loglib.present._browser import _layout_size as _layout_size  # tests size figures as the browser does
from loglib.present.markup import csv_safe, md_cell
from loglib.present.redact import Redactor

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf", "html")
TABLE_FORMATS: tuple[str, ...] = ("md", "html", "csv")
_TABLE_ALIASES = {"markdown": "md", "htm": "html"}
_FIGURE_ALIASES = {"htm": "html"}
__all__ = [
    "BROWSER_NAMES",
    "FIGURE_FORMATS",
    "INSTALL_HINT",
    "RENDER_TIMEOUT",
    "START_TIMEOUT",
    "TABLE_FORMATS",
    "BrowserNotFoundError",
    "BrowserSession",
    "ExportError",
    "browser_session",
    "close_browser",
    "display_frame",
    "export_figure",
    "export_figures",
    "export_table",
    "find_browser",
    "to_html_table",
    "to_markdown",
    "write_html",
]
#: names that moved to the postmortem layer, still found here (``from loglib.present.export import export_bundle``)
_MOVED = ("Bundle", "export_bundle", "incident_charts")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from loglib import postmortem

        return getattr(postmortem, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


# --- figures -------------------------------------------------------------------------------------


def _format_of(
    path: Path, fmt: str | None, allowed: Sequence[str], aliases: Mapping[str, str], default: str
) -> tuple[Path, str]:
    """Check an export target: the format from ``fmt`` or the suffix; a default suffix when none."""
    if fmt is not None:
        f = aliases.get(fmt.lower().lstrip("."), fmt.lower().lstrip("."))
        if f not in allowed:
            msg = f"format={fmt!r} is not supported; choose one of {', '.join(allowed)}"
            raise ValueError(msg)
        if not path.suffix:
            path = path.with_suffix("." + f)
        return path, f
    if not path.suffix:
        return path.with_suffix("." + default), default
    suffix = path.suffix.lower().lstrip(".")
    f = aliases.get(suffix, suffix)
    if f not in allowed:
        msg = f"cannot export to {path.name!r}: unknown extension {path.suffix!r}; supported: {', '.join('.' + a for a in allowed)}"
        raise ValueError(msg)
    return path, f


def _prepare(fig: Any, redact: bool, redactor: Redactor | None, hosts: bool) -> Any:
    if not redact:
        return fig
    return (redactor or Redactor(hosts=hosts)).figure(fig)


def write_html(fig: Any, path: str | os.PathLike) -> Path:
    """A self-contained HTML file: plotly.js inlined, no CDN, no MathJax; opens offline."""
    path = Path(path)
    fig.write_html(
        path,
        include_plotlyjs=True,
        include_mathjax=False,
        full_html=True,
        config={"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}},
    )
    return path


def export_figure(
    fig: Any,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    scale: float = 2,
    redact: bool = True,
    hosts: bool = False,
    redactor: Redactor | None = None,
) -> Path:
    """Write one chart: PNG (at ``scale``, 2× by default), SVG, PDF or self-contained HTML.

    Parameters
    ----------
    fig
        A plotly figure.
    path
        Target file; the suffix picks the format (``.png`` is added when there is none).
    format
        ``"png"``, ``"svg"``, ``"pdf"`` or ``"html"``, overriding the suffix.
    scale
        Pixel scale of PNGs (2: crisp in documents).
    redact
        Remove secrets from every text of the chart first (default). ``redact=False`` must be
        explicit.
    hosts
        Also replace hosts and IPs by stable pseudonyms.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    return export_figures(
        {Path(path).stem: fig},
        Path(path).parent,
        formats=None,
        scale=scale,
        redact=redact,
        hosts=hosts,
        redactor=redactor,
        paths=[Path(path)],
        format=format,
    )[0]


def export_figures(
    figs: Mapping[str, Any] | Iterable[Any],
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] | None = ("png", "svg"),
    scale: float = 2,
    redact: bool = True,
    hosts: bool = False,
    redactor: Redactor | None = None,
    paths: Sequence[Path] | None = None,
    format: str | None = None,
    defer: str | os.PathLike | None = None,
) -> list[Path]:
    """Write many charts with one browser: every figure in every format of ``formats``.

    Parameters
    ----------
    figs
        ``{name: figure}`` (file names are the names) or a list (``figure-1`` …).
    out_dir
        Folder to write to (created).
    formats
        Any of ``png``, ``svg``, ``pdf``, ``html``.
    defer
        A folder: queue the PNG/SVG/PDF images there (redacted figure JSON and a job list)
        instead of drawing them; :func:`loglib.present._deferred.draw_queued` draws them later,
        in another process (``loglib report`` does, once its notebook's kernel has exited).
        HTML charts are written at once.

    Returns
    -------
    list of pathlib.Path
        The files written (with ``defer``: those HTML ones written and the images to be drawn), in order.
    """
    named = (
        dict(figs)
        if isinstance(figs, Mapping)
        else {f"figure-{i}": fig for i, fig in enumerate(figs, start=1)}
    )
    out = Path(out_dir)
    targets: list[tuple[Any, Path, str]] = []
    red = redactor or (Redactor(hosts=hosts) if redact else None)
    if paths is not None:
        for (_, fig), p in zip(named.items(), paths, strict=True):
            p2, f = _format_of(p, format, FIGURE_FORMATS, _FIGURE_ALIASES, "png")
            targets.append((fig, p2, f))
    else:
        for fmt in formats or ("png",):
            _format_of(Path("x"), fmt, FIGURE_FORMATS, _FIGURE_ALIASES, "png")
        for name, fig in named.items():
            for fmt in formats or ("png",):
                f = _FIGURE_ALIASES.get(fmt.lower(), fmt.lower())
                targets.append((fig, out / f"{name}.{f}", f))
    cleaned: dict[int, Any] = {}
    jobs, written = [], []
    for fig, p, f in targets:
        if id(fig) not in cleaned:
            cleaned[id(fig)] = _prepare(fig, redact, red, hosts)
        p.parent.mkdir(parents=True, exist_ok=True)
        if f == "html":
            write_html(cleaned[id(fig)], p)
        else:
            jobs.append((cleaned[id(fig)], p, f))
        written.append(p)
    if jobs and defer is not None:
        from loglib.present._deferred import queue_figures

        queue_figures(jobs, defer, scale=scale)
    elif jobs:
        browser_session().write(jobs, scale=scale)
    return written


# --- tables --------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def display_frame(frame: Any) -> pl.DataFrame:
    """A frame of text for people: times as ``YYYY-MM-DD HH:MM:SS`` with the zone in the header,
    durations as seconds, lists and structs flattened."""
    df = to_polars(frame)
    cols = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        header = name
        if isinstance(dtype, pl.Datetime):
            tz = dtype.time_zone or "UTC"
            header = f"{name} ({tz})" if "(" not in name else name
            cols.append(col.dt.strftime("%Y-%m-%d %H:%M:%S").alias(header))
        elif isinstance(dtype, pl.Duration):
            cols.append((col.dt.total_microseconds() / 1e6).round(3).cast(pl.String).alias(f"{name} (s)"))
        elif dtype == pl.String or dtype == pl.Categorical:
            cols.append(col.cast(pl.String))
        else:
            cols.append(col.map_elements(_cell, return_dtype=pl.String, skip_nulls=True).alias(header))
    return df.select(cols)


def to_markdown(frame: Any) -> str:
    """A GitHub-flavoured Markdown table (pastes into Confluence, Google Docs, Notion).

    Pipes, ``<``, ``>`` and backticks are escaped (no renderer sees markup from the data),
    line breaks become spaces, numeric columns are right-aligned.

    Examples
    --------
    >>> import polars as pl
    >>> from loglib.present.export import to_markdown
    >>> print(to_markdown(pl.DataFrame({"event": ["a|b"], "count": [3]})))
    | event | count |
    | --- | ---: |
    | a\\|b | 3 |
    """
    df = to_polars(frame)
    numeric = [dtype.is_numeric() for dtype in df.dtypes]
    shown = display_frame(df)

    esc = md_cell
    lines = ["| " + " | ".join(esc(c) for c in shown.columns) + " |"]
    lines.append("| " + " | ".join("---:" if n else "---" for n in numeric) + " |")
    lines.extend("| " + " | ".join(esc(v) for v in row) + " |" for row in shown.iter_rows())
    return "\n".join(lines)


def to_html_table(frame: Any, *, title: str | None = None) -> str:
    """A standalone HTML page holding the table (escaped; numbers right-aligned)."""
    df = to_polars(frame)
    numeric = [dtype.is_numeric() for dtype in df.dtypes]
    shown = display_frame(df)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if n else "txt"}">{html.escape(v or "")}</td>'
            for v, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in shown.iter_rows()
    )
    style = (
        "body{font-family:Inter,'Helvetica Neue',Arial,sans-serif;font-size:14px;color:#222}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
        "th{background:#f2f2f2;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    )
    cap = f"<h2>{html.escape(title)}</h2>" if title else ""
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>{style}</style></head><body>{cap}\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></body></html>\n'


def export_table(
    frame: Any,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    redact: bool = True,
    hosts: bool = False,
    redactor: Redactor | None = None,
    title: str | None = None,
) -> Path:
    """Write a table as GitHub-flavoured Markdown (``.md``), HTML (``.html``) or CSV (``.csv``).

    Parameters
    ----------
    frame
        A polars or pandas frame (a timeline, findings, a before/after table …).
    path
        Target; the suffix picks the format (``.md`` is added when there is none; unknown
        suffixes are refused with the list of supported ones).
    redact
        Remove secrets from every text cell first (default). ``redact=False`` must be explicit.
    hosts
        Also replace hosts and IPs by stable pseudonyms.

    Returns
    -------
    pathlib.Path
        The file written.

    Notes
    -----
    Text from the data never becomes markup: HTML cells are escaped, Markdown cells escape
    ``<``, ``>``, ``|`` and backticks, and in CSV a ``<`` that could open a tag is written
    ``&lt;`` (``wait < 5 s`` stays as it is), so a viewer that renders HTML shows it as text;
    a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` so no
    spreadsheet runs it as a formula (numbers, and numeric columns, stay as they are).
    """
    path, fmt = _format_of(Path(path), format, TABLE_FORMATS, _TABLE_ALIASES, "md")
    df = to_polars(frame)
    if redact:
        df = (redactor or Redactor(hosts=hosts)).frame(df)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "md":
        text = (f"## {title}\n\n" if title else "") + to_markdown(df) + "\n"
        path.write_text(text, encoding="utf-8")
    elif fmt == "html":
        path.write_text(to_html_table(df, title=title), encoding="utf-8")
    else:  # a CSV opened by a viewer that renders HTML shows no markup from the data either
        csv_safe(display_frame(df)).write_csv(path)  # no tags, no formulas (= + - @ get a leading ')
    return path
