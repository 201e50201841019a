"""The postmortem report (``loglib report``): a parameterised notebook, executed headless, as offline HTML.

:func:`build_report` checks the incident folder (so a wrong folder, ``incident.toml`` or
source fails fast with a one-line message), executes the ``postmortem`` notebook with the
folder as its parameter (nbclient, the interpreter's own ``python3`` kernel), writes
``report.html`` and lets the notebook's last cell write the export bundle (charts PNG+SVG,
``timeline.md``, ``findings.md``, ``summary.md``) beside it. The bundle's PNG/SVG images are
queued by the kernel and drawn here once it has exited (:mod:`loglib.present._deferred`): the
browser (≈1 GB) never runs beside the kernel's frames.

The notebooks ship inside the package (``loglib/notebooks/*.ipynb``, a byte-for-byte mirror of
the repository's ``notebooks/``), so a non-editable ``pip install`` finds them too.

The HTML works offline: the kernel runs with ``PLOTLY_RENDERER=plotly_mimetype+notebook`` so
plotly.js is inlined once and every figure is drawn from its embedded JSON; the nbconvert
template drops the CDN scripts (require.js, MathJax, mermaid) that the notebook does not need.

This module only runs the notebook. What its cells call (impact, summary, recommendations,
chart choice, the export bundle) is :mod:`loglib.postmortem`; ``loglib.report.summary`` and the
other helpers that used to live here are still found here, as aliases of those.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from loglib.cache import cache_dir, cache_enabled
from loglib.errors import LoglibError
from loglib.postmortem import (  # the notebook helpers live there; these names keep ll.report.summary(...) working
    EVIDENCE_CHARTS,
    Markdown,
    evidence_charts,
    impact,
    recommendations,
    summary,
    window_around,
)
from loglib.present._browser import ExportError
from loglib.present._deferred import DEFER_ENV, draw_queued, queued_count

#: notebooks shipped with loglib, in reading order
NOTEBOOKS: tuple[str, ...] = (
    "quickstart",
    "postmortem",
    "connection_leaks",
    "post_deploy_resets",
    "idle_dropouts",
)
#: the renderer that keeps JupyterLab interactivity and inlines plotly.js for offline HTML
PLOTLY_RENDERER = "plotly_mimetype+notebook"
#: seconds one notebook cell may run
CELL_TIMEOUT = 600
#: the template blocks that would load scripts from a CDN; the report needs none of them
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
"""

#: polars' allocator (jemalloc) reads its options from this variable when the process starts. loglib
#: leaves it to the user: ``dirty_decay_ms:0,muzzy_decay_ms:0`` (freed pages back at once, not ~10 s
#: later) took 86 MB off the kernel's peak at 1.1 GB for +3.9 CPU-s (+24 %), not worth it by default
MALLOC_CONF_ENV = "_RJEM_MALLOC_CONF"

Progress = Callable[[str], None]


class ReportError(LoglibError, RuntimeError):
    """The report could not be built: the message says which step failed and why, in one line."""


# --- notebooks ------------------------------------------------------------------------------------


def notebook_path(name: str = "postmortem") -> Path:
    """The shipped notebook ``name`` (one of :data:`NOTEBOOKS`), from the installed package.

    Raises
    ------
    ReportError
        When ``name`` is not a shipped notebook (the message lists them).
    """
    stem = name.removesuffix(".ipynb")
    if stem not in NOTEBOOKS:
        msg = f"no notebook {name!r}; loglib ships {', '.join(NOTEBOOKS)}"
        raise ReportError(msg)
    path = Path(str(resources.files("loglib") / "notebooks" / f"{stem}.ipynb"))
    if not path.is_file():  # pragma: no cover - a broken install
        msg = f"{path} is missing: reinstall loglib (`pip install loglib`)"
        raise ReportError(msg)
    return path


def read_notebook(path: str | os.PathLike) -> Any:
    """Read a notebook (nbformat 4)."""
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        msg = f"notebook {path} does not exist"
        raise ReportError(msg) from None
    except (ValueError, KeyError, TypeError, nbformat.ValidationError) as exc:  # not JSON, not nbformat 4
        msg = f"notebook {path} cannot be read: {exc}"
        raise ReportError(msg) from None


def parameterize(nb: Any, **params: Any) -> Any:
    """A copy of ``nb`` with ``params`` set, the way papermill does it.

    A code cell tagged ``injected-parameters`` holding ``name = value`` lines is put right after
    the cell tagged ``parameters`` (or first, when there is none), replacing an earlier injected
    cell. Values are written with ``repr``: strings, numbers, booleans, None, lists and dicts.
    """
    import nbformat

    nb = copy.deepcopy(nb)
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    lines = ["# Parameters injected by loglib"] + [f"{k} = {v!r}" for k, v in params.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    cell["id"] = "injected-parameters"
    at = next(
        (i + 1 for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0
    )
    cells.insert(at, cell)
    nb.cells = cells
    nbformat.validator.normalize(nb)
    return nb


def kernel_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment notebooks are executed in: this one, plus the plotly renderer for offline HTML."""
    env = dict(os.environ)
    env["PLOTLY_RENDERER"] = PLOTLY_RENDERER
    # the kernel imports the loglib that runs this, wherever the notebook's folder is
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silences a debugger warning in outputs
    env.update(extra or {})
    return env


def _cell_label(source: str) -> str:
    """``": ll.export_bundle(inc, …"``: the cell's first line of code, short, for progress lines."""
    for line in source.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "%", "import ", "from ")):
            return f": {line[:48]}{'…' if len(line) > 48 else ''}"
    return ""


def execute_notebook(
    nb: Any,
    *,
    cwd: str | os.PathLike,
    progress: Progress | None = None,
    timeout: int = CELL_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Execute ``nb`` headless in a fresh ``python3`` kernel of this interpreter; return it with outputs.

    Parameters
    ----------
    nb
        A notebook (``nbformat.NotebookNode``); it is executed in place.
    cwd
        The kernel's working directory (relative paths in the notebook resolve against it).
    progress
        Called with ``"executing notebook cell i/n"`` before each code cell.
    timeout
        Seconds one cell may run.
    env
        Extra environment variables for the kernel.

    Raises
    ------
    ReportError
        When a cell raises: the message names the cell and the exception. The partly executed
        notebook is in ``exc.notebook``.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]

    def on_start(cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        if progress is not None and cell_index in code:
            what = _cell_label(nb.cells[cell_index].source)
            progress(f"executing notebook cell {code.index(cell_index) + 1}/{len(code)}{what}")

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        on_cell_execute=on_start,
    )
    try:
        # the kernel's own stderr is noise here (a TCP transport warning); cell errors come over iopub
        client.execute(env=kernel_env(env), cwd=str(cwd), stderr=subprocess.DEVNULL)
    except CellExecutionError as exc:
        n = _failed_cell(nb, code)
        err = ReportError(f"notebook cell {n}/{len(code)} failed: {exc.ename}: {_one_line(exc.evalue)}")
        err.notebook = nb  # type: ignore[attr-defined]
        raise err from None
    except (CellTimeoutError, DeadKernelError) as exc:
        err = ReportError(f"notebook execution stopped: {_one_line(str(exc))}")
        err.notebook = nb  # type: ignore[attr-defined]
        raise err from None
    return nb


def _failed_cell(nb: Any, code: list[int]) -> int:
    for n, i in enumerate(code, start=1):
        if any(o.get("output_type") == "error" for o in nb.cells[i].get("outputs", [])):
            return n
    return len(code)


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


_EXTERNAL_SCRIPT = re.compile(
    r"<script\b[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>", re.IGNORECASE
)


def offline_outputs(nb: Any) -> int:
    """Remove ``<script src="http…">`` tags from the notebook's HTML outputs, in place; return how many.

    plotly's notebook renderer always adds MathJax from a CDN to each figure (for LaTeX labels,
    which loglib's charts do not use); offline it would only fail to load.
    """
    removed = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html = data.get("text/html")
            if not html:
                continue
            text = "".join(html) if isinstance(html, list) else html
            clean, n = _EXTERNAL_SCRIPT.subn("", text)
            if n:
                data["text/html"] = clean
                removed += n
    return removed


def notebook_html(nb: Any, *, title: str | None = None) -> str:
    """The executed notebook as one self-contained HTML page that works offline.

    JupyterLab's look (nbconvert ``lab`` template) without its CDN scripts; plotly figures
    rendered by the inlined plotly.js of the ``plotly_mimetype+notebook`` renderer. External
    scripts in the outputs are dropped first (:func:`offline_outputs`).
    """
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"loglib_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="loglib_offline.html.j2",
    )
    nb = copy.deepcopy(nb)
    offline_outputs(nb)
    if title:
        nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return body


# --- the report -----------------------------------------------------------------------------------


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    out_dir: Path
    html: Path
    notebook: Path
    files: list[Path] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    #: "the <kind> detector failed: <error>", for each detector that raised
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: set when static charts could not be drawn (no browser); report.html was still written
    browser_error: str | None = None
    #: the read report of every source, by source name (what was read, rejected, noted)
    reads: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"report:  {self.html}", f"bundle:  {self.out_dir}"]
        lines += [f"  {p.relative_to(self.out_dir)}" for p in self.files]
        return "\n".join(lines)


def _timer(progress: Progress | None) -> Progress:
    start = time.monotonic()

    def say(message: str) -> None:
        if progress is not None:
            progress(f"[{time.monotonic() - start:5.1f}s] {message}")

    return say


def check_incident(incident_dir: str | os.PathLike, *, frames: bool = True) -> Any:
    """Load the incident and read every source once: a missing folder, a bad ``incident.toml`` or an
    unreadable source is a :class:`ReportError` with a one-line message naming it.

    With ``frames=False`` the sources are read into the parse cache and only their read reports
    are kept (:meth:`Incident.check_source`): what a process that hands the analysis to another
    (the notebook's kernel) needs."""
    from loglib.incident import Incident
    from loglib.present._browser import BrowserNotFoundError

    folder = Path(incident_dir)
    if not folder.exists():
        msg = f"incident folder {folder} does not exist"
        raise ReportError(msg)
    if not folder.is_dir():
        msg = f"{folder} is not a folder (give the folder that holds incident.toml)"
        raise ReportError(msg)
    if not (folder / "incident.toml").is_file():
        msg = f"{folder} has no incident.toml (see README: 'Incidents: one folder, every question')"
        raise ReportError(msg)
    try:
        inc = Incident.load(folder)
    except LoglibError as exc:
        raise ReportError(f"bad incident.toml: {_one_line(str(exc))}") from None
    for spec in inc.sources:
        try:
            with warnings.catch_warnings():  # the notebook shows what was rejected
                warnings.simplefilter("ignore")
                if frames:
                    inc.read(spec.name or spec.kind)
                else:
                    inc.check_source(spec.name or spec.kind)
        except BrowserNotFoundError:  # pragma: no cover - not raised by readers
            raise
        except (LoglibError, OSError, UnicodeError) as exc:
            msg = f"cannot read source {spec.name or spec.kind!r} ({', '.join(spec.paths)}): {_one_line(str(exc))}"
            raise ReportError(msg) from None
    return inc


#: the last cell ``build_report`` adds (and removes before saving): the kernel's own detector
#: results, so the CLI neither keeps the frames nor runs the detectors a second time
_RESULTS = ".loglib-results.json"
_RESULTS_CELL = """import json as _json
if "inc" in globals():
    _res = ll.postmortem.run_detectors(inc)
    with open({path!r}, "w") as _fh:
        _json.dump({{"found": [f.statement for f in _res.found], "failed": [str(f) for f in _res.failed]}}, _fh)"""


def _with_results_cell(nb: Any, out: Path) -> Any:
    import nbformat

    cell = nbformat.v4.new_code_cell(
        _RESULTS_CELL.format(path=str(out / _RESULTS)), metadata={"tags": ["loglib-results"]}
    )
    cell["id"] = "loglib-results"
    nb.cells.append(cell)
    return nb


def _take_results(nb: Any, out: Path) -> dict[str, list[str]] | None:
    """Drop the results cell from ``nb``; the kernel's results, or None when it wrote none."""
    import json

    nb.cells = [c for c in nb.cells if "loglib-results" not in c.get("metadata", {}).get("tags", [])]
    path = out / _RESULTS
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)
    return {"found": list(doc.get("found", [])), "failed": list(doc.get("failed", []))}


#: where the notebook's kernel writes its progress lines (loglib.core.progress), followed here
_KERNEL_LOG = ".loglib-progress.log"
#: where the kernel queues the bundle's static charts for :func:`build_report` to draw after it
_PENDING_CHARTS = ".loglib-charts"


def _parse_in_child(folder: Path, say: Progress | None) -> None:
    """Read the incident's sources into the parse cache in a child process (its progress lines
    printed here): the memory the parse leaves behind (the allocator keeps freed pages, ~1 GB for
    seconds after a 1 GB read) goes with the child, not beside the kernel. A failure is left to
    :func:`check_incident` in this process, which then reads the source and says what is wrong.

    >>> _parse_in_child(Path("data/incidents/pool-exhaustion"), print)  # doctest: +SKIP
    """
    import tempfile

    code = (
        "import sys, warnings; warnings.simplefilter('ignore'); from loglib.report import check_incident; "
        "check_incident(sys.argv[1], frames=False)"
    )
    with tempfile.TemporaryDirectory(prefix="loglib-parse-") as tmp:
        log = Path(tmp) / "progress.log"
        log.write_text("")
        stop = _follow(log, say, "parse") if say is not None else lambda: None
        try:
            env = kernel_env({"LOGLIB_CACHE_DIR": str(cache_dir().resolve())})
            if say is not None:
                env["LOGLIB_PROGRESS_FILE"] = str(log)
            subprocess.run([sys.executable, "-c", code, str(folder)], env=env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        finally:
            stop()


def _follow(path: Path, say: Progress, who: str = "kernel") -> Callable[[], None]:
    """Print the lines the kernel (``who``) appends to ``path`` while it runs (a long cell is not silent)."""
    import threading

    stop = threading.Event()

    def tail() -> None:
        with open(path, encoding="utf-8", errors="replace") as fh:
            while True:
                finished = stop.wait(0.5)
                for line in fh.read().splitlines():
                    if line.strip():
                        say(f"  {who}: {line}")
                if finished:
                    return

    follower = threading.Thread(target=tail, name="loglib-kernel-log", daemon=True)
    follower.start()

    def stop_following() -> None:
        stop.set()
        follower.join(5)

    return stop_following


def _redaction_line(redact: bool, hosts: bool) -> str:
    if not redact:
        return "**Secrets NOT redacted** (`redact=False` / `--no-redact`): do not share this report."
    extra = ", host names and IP addresses replaced by pseudonyms" if hosts else ""
    return f"*Secrets redacted{extra} (loglib's default).*"


def _share_parameters(nb: Any, ran_with: str, name: str) -> None:
    """The saved notebook's ``incident_dir`` names the incident folder, not where it was on the
    machine that ran it (``../../home/ana/…``): a report is shared."""
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = cell.source.replace(
                f"incident_dir = {ran_with!r}",
                f"incident_dir = {name!r}  # the incident folder: set where it is on your machine to re-run",
            )


def build_report(
    incident_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    notebook: str | os.PathLike | None = None,
    progress: Progress | None = None,
    tz: str | None = None,
    timeout: int = CELL_TIMEOUT,
    redact: bool = True,
    hosts: bool = False,
    leak_every: str | None = None,
) -> ReportResult:
    """Execute the postmortem notebook for an incident; write ``report.html`` and the export bundle.

    Parameters
    ----------
    incident_dir
        A folder with ``incident.toml``.
    out_dir
        Where ``report.html``, ``report.ipynb`` (the executed notebook) and the bundle go (created).
    notebook
        Another notebook with the same parameters (``incident_dir``, ``out_dir``, ``tz``,
        ``chart_formats``); default: the shipped ``postmortem``.
    progress
        Called with one line per step, ``"[  3.1s] executing notebook cell 7/18"``.
    tz
        Also show timeline times in this IANA zone.
    timeout
        Seconds one notebook cell may run.
    redact
        Remove secrets from everything written (default): the notebook displays redacted frames,
        and every output is redacted again before report.html/report.ipynb are saved.
        ``redact=False`` must be explicit; the report's first line says which it was.
    hosts
        Also replace host names and IP addresses by stable pseudonyms.
    leak_every
        Bucket of the leak-rate table and chart, the same in the report and the bundle
        (``"1m"``); default: chosen from the incident's length (:func:`loglib.postmortem.leak_every`).

    Returns
    -------
    ReportResult
        Paths written, the findings' statements, the time taken; ``browser_error`` is set when no
        Chrome/Chromium was found: then the bundle's charts are interactive HTML instead of PNG/SVG,
        and ``report.html`` and the Markdown documents are written as usual.

    Raises
    ------
    ReportError
        Missing folder, bad ``incident.toml``, unreadable source, or a failing notebook cell
        (``report.html`` is still written, with the error in it).

    Examples
    --------
    >>> from loglib.report import build_report
    >>> print(build_report("data/incidents/pool-exhaustion", "out/demo"))   # doctest: +SKIP
    """
    from loglib.postmortem import run_detectors
    from loglib.present._browser import BrowserNotFoundError, find_browser

    say = _timer(progress)
    t0 = time.monotonic()
    folder = Path(incident_dir).resolve()
    say(f"reading {folder}")
    if cache_enabled():  # the kernel loads the Parquet cache: this process need not hold the frames
        _parse_in_child(folder, say if progress is not None else None)
        inc = check_incident(folder, frames=False)  # every source cached now: reports only
        title = f"Postmortem: {inc.title}"
        reads = inc.read_reports(frames=False)  # checked above: nothing is read again
        inc = None
    else:
        inc = check_incident(folder)
        title = f"Postmortem: {inc.title}"
        reads = inc.read_reports()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    browser_error = None
    formats = ["png", "svg"]
    try:
        find_browser()
    except BrowserNotFoundError as exc:
        browser_error, formats = str(exc), ["html"]
        say("no browser for static charts: the bundle gets interactive HTML charts instead of PNG/SVG")
    nb_path = Path(notebook) if notebook else notebook_path("postmortem")
    nb = parameterize(
        read_notebook(nb_path),
        # relative to the report's folder (the kernel runs there): report.ipynb names no local path
        incident_dir=os.path.relpath(folder, out),
        out_dir=".",
        tz=tz,
        chart_formats=formats,
        redact=redact,
        hosts=hosts,
        leak_every=leak_every,
    )
    say(f"executing {nb_path.name} ({sum(c.cell_type == 'code' for c in nb.cells)} code cells)")
    nb = _with_results_cell(nb, out)
    failure: ReportError | None = None
    kernel_log = out / _KERNEL_LOG
    kernel_log.write_text("")
    pending = out / _PENDING_CHARTS
    shutil.rmtree(pending, ignore_errors=True)
    stop_following = _follow(kernel_log, say)
    try:
        # the kernel runs in OUT: the parse cache's folder is handed over as an absolute path; the
        # bundle's images are queued there and drawn below, once the kernel and its frames are gone
        kernel = {"LOGLIB_PROGRESS_FILE": str(kernel_log), "LOGLIB_CACHE_DIR": str(cache_dir().resolve()),
                  DEFER_ENV: str(pending)}  # fmt: skip
        execute_notebook(nb, cwd=out, progress=say, timeout=timeout, env=kernel)
    except ReportError as exc:
        failure = exc
        nb = getattr(exc, "notebook", nb)
    finally:
        stop_following()
        kernel_log.unlink(missing_ok=True)
    try:
        if failure is None and queued_count(pending):
            say(f"drawing {queued_count(pending)} chart image(s) in one browser (the kernel has exited)")
            draw_queued(pending)
    except ExportError as exc:
        failure = ReportError(f"drawing the bundle's charts failed: {_one_line(str(exc))}")
    finally:
        shutil.rmtree(pending, ignore_errors=True)
    results = _take_results(nb, out)
    say("writing report.html")
    import nbformat

    from loglib.present.markup import neutralise_outputs
    from loglib.present.redact import Redactor, local_paths

    _share_parameters(nb, os.path.relpath(folder, out), folder.name)
    # paths always made relative to the folder; secrets kept only with redact=False (paths-only mode)
    red = Redactor(hosts=hosts, secrets=redact, paths=local_paths(folder, out))
    red.notebook(nb)
    title = red.text(title) or ""
    neutralise_outputs(nb)  # markup from the data stays text, redacted or not
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(_redaction_line(redact, hosts)))
    offline_outputs(nb)
    nbformat.write(nb, str(out / "report.ipynb"))
    html_path = out / "report.html"
    html_path.write_text(notebook_html(nb, title=title), encoding="utf-8")
    if failure is not None:
        raise ReportError(f"{failure} (the partial report is in {html_path})")
    keep = (
        "report.html",
        "summary.md",
        "findings.md",
        "timeline.md",
        "timeline.html",
        "timeline.csv",
        "timeline_full.csv",
        "before_after.md",
    )
    files = [out / n for n in keep if (out / n).is_file()]
    if (out / "charts").is_dir():
        files += sorted((out / "charts").iterdir())
    if results is None:  # a notebook without ``inc``: the detectors run here
        detected = run_detectors(inc if inc is not None else check_incident(folder))
        results = {
            "found": [f.statement for f in detected.found],
            "failed": [str(f) for f in detected.failed],
        }
    say("done")
    return ReportResult(
        out_dir=out,
        html=html_path,
        notebook=out / "report.ipynb",
        files=files,
        findings=results["found"],
        failed=results["failed"],
        seconds=time.monotonic() - t0,
        browser_error=browser_error,
        reads=reads,
    )


__all__ = [
    "CELL_TIMEOUT",
    "EVIDENCE_CHARTS",
    "NOTEBOOKS",
    "PLOTLY_RENDERER",
    "Markdown",
    "ReportError",
    "ReportResult",
    "build_report",
    "check_incident",
    "evidence_charts",
    "execute_notebook",
    "impact",
    "kernel_env",
    "notebook_html",
    "notebook_path",
    "offline_outputs",
    "parameterize",
    "read_notebook",
    "recommendations",
    "summary",
    "window_around",
]
