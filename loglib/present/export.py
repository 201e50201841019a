"""Export (``loglib.export``): charts to PNG/SVG/PDF/HTML, tables to Markdown/HTML/CSV, and the incident bundle.

Static images are drawn by kaleido in one headless Chrome/Chromium that stays open for the
process (:class:`BrowserSession`): exporting 20 charts starts one browser, not 20. The browser
is looked up once (``LOGLIB_BROWSER``, then kaleido's ``BROWSER_PATH``, then ``chromium``,
``chromium-browser``, ``google-chrome`` … on ``PATH``); when there is none the error says how
to install one, and every wait on the browser has a timeout, so nothing hangs. Nothing is ever
downloaded. HTML is self-contained (plotly.js inlined, no CDN, MathJax off) and works offline.

Everything is redacted on the way out (:mod:`loglib.present.redact`) unless ``redact=False``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import html
import os
import shutil
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from loglib._compat import to_polars
from loglib.errors import LoglibError
from loglib.present.markup import md_cell, md_text
from loglib.present.redact import Redactor

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf", "html")
TABLE_FORMATS: tuple[str, ...] = ("md", "html", "csv")
_TABLE_ALIASES = {"markdown": "md", "htm": "html"}
_FIGURE_ALIASES = {"htm": "html"}
#: executables tried, in order, when no browser is named
BROWSER_NAMES: tuple[str, ...] = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "microsoft-edge",
)
_WELL_KNOWN = (
    "/usr/bin/chromium",
    "/usr/lib/chromium/chromium",
    "/snap/bin/chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
)
INSTALL_HINT = (
    "install one: `apt-get install chromium` (Debian/Ubuntu), `dnf install chromium` (Fedora), "
    "`brew install --cask chromium` (macOS), or point LOGLIB_BROWSER at a Chrome/Chromium executable"
)
#: seconds to wait for the browser to start, and for one image
START_TIMEOUT = 60.0
RENDER_TIMEOUT = 60.0


class BrowserNotFoundError(LoglibError, RuntimeError):
    """No Chrome/Chromium for kaleido to draw static images with; the message says how to install one."""


class ExportError(LoglibError, RuntimeError):
    """The browser started but could not draw a figure (or took longer than the timeout)."""


# --- browser -------------------------------------------------------------------------------------


def find_browser() -> str:
    """The Chrome/Chromium executable kaleido will use (never downloads one).

    Looked up in order: ``LOGLIB_BROWSER``, ``BROWSER_PATH`` (kaleido's own variable), the
    names in :data:`BROWSER_NAMES` on ``PATH``, well-known install locations.

    Raises
    ------
    BrowserNotFoundError
        When a variable names a file that is not an executable, or nothing is found.
    """
    for var in ("LOGLIB_BROWSER", "BROWSER_PATH"):
        value = os.environ.get(var)
        if value:
            path = shutil.which(value) or value
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                msg = f"{var}={value!r} is not an executable Chrome/Chromium; fix the variable or {INSTALL_HINT}"
                raise BrowserNotFoundError(msg)
            return path
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for path in _WELL_KNOWN:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    msg = f"no Chrome/Chromium found for static chart export (PNG/SVG/PDF); {INSTALL_HINT}. HTML export needs no browser."
    raise BrowserNotFoundError(msg)


class BrowserSession:
    """One headless browser (kaleido) for many figures; a context manager, or the shared one.

    Use :func:`browser_session` for the process-wide session that every export shares; it is
    closed at exit. ``starts`` counts browser launches across all sessions (for tests).

    Examples
    --------
    >>> from loglib.present.export import BrowserSession
    >>> with BrowserSession() as session:                                  # doctest: +SKIP
    ...     session.write([(fig1, "a.png", "png"), (fig2, "b.svg", "svg")])
    """

    starts = 0

    def __init__(self, *, browser: str | None = None, timeout: float = RENDER_TIMEOUT) -> None:
        self.browser = browser or find_browser()
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while the browser is running."""
        return self._kaleido is not None

    def open(self) -> BrowserSession:
        """Start the browser (once); raises :class:`ExportError` if it does not come up in time."""
        if self.is_open:
            return self
        try:
            from kaleido import Kaleido
        except ImportError:  # pragma: no cover - kaleido is a dependency
            msg = "static chart export needs kaleido: `pip install kaleido` (and a Chrome/Chromium)"
            raise ExportError(msg) from None
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="loglib-kaleido", daemon=True)
        thread.start()

        async def start() -> Any:
            k = Kaleido(path=self.browser, mathjax=False, timeout=self.timeout)
            await k.open()
            return k

        future = asyncio.run_coroutine_threadsafe(start(), loop)
        try:
            self._kaleido = future.result(timeout=START_TIMEOUT)
        except Exception as exc:
            future.cancel()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            kind = (
                "did not start within {START_TIMEOUT:g} s"
                if isinstance(exc, TimeoutError)
                else f"failed to start ({exc})"
            )
            msg = f"the browser {self.browser!r} {kind.format(START_TIMEOUT=START_TIMEOUT)}; {INSTALL_HINT}"
            raise ExportError(msg) from exc
        self._loop, self._thread = loop, thread
        BrowserSession.starts += 1
        return self

    def write(
        self,
        jobs: Sequence[tuple[Any, str | os.PathLike, str]],
        *,
        scale: float = 2,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        """Draw ``(figure, path, format)`` jobs in this one browser (PNG at ``scale``, SVG/PDF at 1)."""
        self.open()
        objs = []
        for fig, path, fmt in jobs:
            w = width or _layout_size(fig, "width", 1000)
            h = height or _layout_size(fig, "height", 520)
            opts = {"format": fmt, "scale": scale if fmt == "png" else 1, "width": w, "height": h}
            objs.append({"fig": fig, "path": str(path), "opts": opts})
        with self._lock:
            future = asyncio.run_coroutine_threadsafe(
                self._kaleido.write_fig_from_object(objs, cancel_on_error=True), self._loop
            )
            try:
                future.result(timeout=self.timeout * max(1, len(objs)) + 10)
            except TimeoutError as exc:
                future.cancel()
                msg = f"drawing {len(objs)} figure(s) took longer than {self.timeout:g} s each"
                raise ExportError(msg) from exc
            except Exception as exc:
                msg = f"the browser could not draw a figure: {exc}"
                raise ExportError(msg) from exc

    def close(self) -> None:
        """Stop the browser."""
        if not self.is_open:
            return
        loop, k = self._loop, self._kaleido
        self._kaleido = None
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(k.close(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> BrowserSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _layout_size(fig: Any, key: str, default: int) -> int:
    """The figure's own width/height, else its template's, else ``default``."""
    layout = getattr(fig, "layout", None)
    if layout is None:
        return default
    own = getattr(layout, key, None)
    if own:
        return int(own)
    template = getattr(layout, "template", None)
    value = getattr(getattr(template, "layout", None), key, None) if template is not None else None
    return int(value) if value else default


_SHARED: BrowserSession | None = None
_SHARED_LOCK = threading.Lock()


def browser_session() -> BrowserSession:
    """The process-wide browser session (started on first use, closed at exit)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or not _SHARED.is_open:
            _SHARED = BrowserSession().open()
            atexit.register(_SHARED.close)
        return _SHARED


def close_browser() -> None:
    """Close the shared browser session, if one is open."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is not None:
            _SHARED.close()
            _SHARED = None


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

    Returns
    -------
    list of pathlib.Path
        The files written, in order.
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
    if jobs:
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
        elif dtype == pl.String:
            cols.append(col)
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
    else:
        display_frame(df).write_csv(path)
    return path


# --- bundle --------------------------------------------------------------------------------------


@dataclass
class Bundle:
    """What :func:`export_bundle` wrote: the folder, the charts (name -> files) and the documents."""

    out_dir: Path
    charts: dict[str, list[Path]] = field(default_factory=dict)
    documents: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        """Every file written."""
        return [p for ps in self.charts.values() for p in ps] + list(self.documents.values())


_CHART_TITLES = {
    "overview": "Incident overview",
    "error_rate": "Connection errors by class",
    "pool_utilisation": "Pool utilisation",
    "db_connections": "PostgreSQL connections",
    "leak_rate": "Leak rate",
    "session_durations": "Session durations",
    "before_after": "Before and after the fix",
}


def incident_charts(incident: Any, *, every: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Every chart that the incident's evidence supports: ``({name: figure}, {name: why skipped})``."""
    from loglib.present import charts

    makers = {
        "overview": lambda: charts.overview(incident, every=every),
        "error_rate": lambda: charts.error_rate(incident, every=every),
        "pool_utilisation": lambda: charts.pool_utilisation(incident),
        "db_connections": lambda: charts.db_connections(incident, every=every),
        "leak_rate": lambda: charts.leak_rate(incident, every=_leak_every(incident)),
        "session_durations": lambda: charts.session_durations(incident),
        "before_after": lambda: charts.before_after(incident),
    }
    figs, skipped = {}, {}
    for name, make in makers.items():
        try:
            fig = make()
        except (ValueError, TypeError, KeyError) as exc:
            skipped[name] = str(exc).splitlines()[0]
            continue
        if name == "before_after" and not any(t.type == "bar" for t in fig.data):
            skipped[name] = "no measure differs between the windows before and after the fix"
            continue
        figs[name] = fig
    return figs, skipped


def _leak_every(incident: Any) -> str:
    """``1h``, or a finer step when the evidence is shorter than a few hours."""
    try:
        start, end = incident.window()
    except Exception:
        return "1h"
    seconds = (end - start).total_seconds()
    for step, size in (("1h", 3600), ("10m", 600), ("1m", 60), ("10s", 10)):
        if seconds >= 4 * size:
            return step
    return "1s"


def export_bundle(
    incident: Any,
    out_dir: str | os.PathLike,
    *,
    redact: bool = True,
    hosts: bool = False,
    tz: str | None = None,
    formats: Sequence[str] = ("png", "svg"),
    html: bool = False,
    every: str | None = None,
) -> Bundle:
    """A folder ready to drop into an incident document.

    Writes ``charts/<name>.png`` and ``.svg`` for every chart the evidence supports,
    ``timeline.md`` (and ``timeline.csv``), ``findings.md``, ``before_after.md`` when a fix can
    be compared, and ``summary.md`` that links them all.

    Parameters
    ----------
    incident
        An :class:`~loglib.Incident`.
    out_dir
        The folder (created; files in it are overwritten).
    redact
        Redact every chart text and table cell (default). ``redact=False`` must be explicit.
    hosts
        Also replace hosts and IPs by stable pseudonyms, the same ones in every file.
    tz
        Also show timeline times in this IANA time zone (``"Europe/Berlin"``).
    formats
        Chart formats (``png``, ``svg``, ``pdf``, ``html``).
    html
        Also write each chart as self-contained interactive HTML.

    Returns
    -------
    Bundle
        The folder, chart files, documents and the charts skipped (with the reason).

    Examples
    --------
    >>> import loglib as ll
    >>> inc = ll.Incident.load("data/incidents/pool-exhaustion")   # doctest: +SKIP
    >>> ll.export_bundle(inc, "out/pool-exhaustion").files          # doctest: +SKIP
    """
    from loglib.present.timeline import timeline

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    red = Redactor(hosts=hosts) if redact else None
    bundle = Bundle(out)
    figs, bundle.skipped = incident_charts(incident, every=every)
    fmts = list(formats) + (["html"] if html and "html" not in formats else [])
    written = export_figures(figs, out / "charts", formats=fmts, redact=redact, redactor=red)
    for name in figs:
        bundle.charts[name] = [p for p in written if p.stem == name]
    tl = timeline(incident, tz=tz)
    bundle.documents["timeline.md"] = _write_doc(
        out / "timeline.md", "Timeline", tl, red, note=_timeline_note(tz)
    )
    bundle.documents["timeline.csv"] = export_table(tl, out / "timeline.csv", redact=redact, redactor=red)
    found = _findings(incident)
    bundle.documents["findings.md"] = _write_findings(out / "findings.md", found, red)
    ba = None
    if "before_after" in figs:
        from loglib.present.charts import before_after_table

        ba = before_after_table(incident)
        bundle.documents["before_after.md"] = _write_doc(
            out / "before_after.md", "Before and after the fix", ba, red
        )
    bundle.documents["summary.md"] = _write_summary(out / "summary.md", incident, bundle, found, tl, ba, red)
    return bundle


def _timeline_note(tz: str | None) -> str:
    return (
        "Times in UTC"
        + (f" and {tz}" if tz else "")
        + ". Bursts of the same event are one row; `evidence` is file:line."
    )


def _write_doc(path: Path, title: str, frame: pl.DataFrame, red: Redactor | None, *, note: str = "") -> Path:
    df = red.frame(frame) if red else frame
    text = f"# {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(df) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def _findings(incident: Any) -> list[Any]:
    try:
        from loglib.analysis.findings import findings

        return findings(incident)
    except Exception:
        return []


def _write_findings(path: Path, found: list[Any], red: Redactor | None) -> Path:
    clean = (lambda s: md_text(red.text(s))) if red else md_text
    lines = ["# Findings", ""]
    if not found:
        lines.append(
            "No known incident shape (pool exhaustion, post-deploy errors, idle drops) was found in the evidence."
        )
    for n, f in enumerate(found, start=1):
        lines += [
            f"## {n}. {f.kind.replace('_', ' ')} ({f.confidence} confidence)",
            "",
            clean(f.statement),
            "",
        ]
        if f.numbers:
            rows = pl.DataFrame({"figure": list(f.numbers), "value": [_cell(v) for v in f.numbers.values()]})
            lines += [to_markdown(red.frame(rows) if red else rows), ""]
        ev = getattr(f, "evidence", None)
        if ev is not None and ev.height:
            keep = [c for c in ("ts", "source", "what", "file", "line") if c in ev.columns]
            head = ev.select(keep).head(10)
            lines += [
                f"Evidence ({ev.height} rows{', first 10' if ev.height > 10 else ''}):",
                "",
                to_markdown(red.frame(head) if red else head),
                "",
            ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_summary(
    path: Path,
    incident: Any,
    bundle: Bundle,
    found: list[Any],
    tl: pl.DataFrame,
    ba: pl.DataFrame | None,
    red: Redactor | None,
) -> Path:
    clean = (lambda s: md_text(red.text(s))) if red else md_text
    title = clean(getattr(incident, "title", "Incident"))
    lines = [f"# {title}", ""]
    try:
        start, end = incident.window()
        lines += [f"Evidence window: {start:%Y-%m-%d %H:%M:%S} – {end:%Y-%m-%d %H:%M:%S} UTC.", ""]
    except Exception:
        pass
    desc = getattr(incident, "description", "")
    if desc:
        lines += [clean(desc), ""]
    lines += ["## What happened", ""]
    lines += [f"- {clean(f.statement)}" for f in found] or [
        "- No known incident shape was found; see the timeline."
    ]
    lines += ["", "Details: [findings.md](findings.md) · full timeline: [timeline.md](timeline.md)", ""]
    if "overview" in bundle.charts:
        lines += ["![Incident overview](charts/overview.png)", ""]
    lines += ["## Timeline (first rows)", "", to_markdown((red.frame(tl) if red else tl).head(12)), ""]
    if ba is not None:
        lines += ["## Before and after the fix", "", to_markdown(red.frame(ba) if red else ba), ""]
    lines += ["## Charts", ""]
    for name, files in bundle.charts.items():
        if name == "overview":
            continue
        png = next((p for p in files if p.suffix == ".png"), None)
        others = " · ".join(f"[{p.suffix.lstrip('.')}](charts/{p.name})" for p in files)
        label = _CHART_TITLES.get(name, name)
        lines += [f"### {label}", ""] + ([f"![{label}](charts/{png.name})", ""] if png else []) + [others, ""]
    if bundle.skipped:
        lines += [
            "Not drawn (no evidence for them): "
            + "; ".join(f"{k} ({clean(v)})" for k, v in bundle.skipped.items()),
            "",
        ]
    lines += ["", f"_Generated by loglib; secrets {'redacted' if red else 'NOT redacted (redact=False)'}._"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
