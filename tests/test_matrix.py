"""Issue 13's matrix: every face completes on every bundled incident, cut to any subset of its
sources, with its Prometheus answers in every shape.

Cells (tests/matrix_folders.py writes each one as an incident.toml a person would write):

* each bundled incident × each non-empty subset of its sources (app, postgres, prometheus), with
  the metrics as recorded (recording rules and ALERTS included): 3 × 7 = 21 cells;
* each other Prometheus shape (no ``__name__``, empty matrices, NaN/±Inf, single samples, instant
  vectors, classic and native histograms) × each subset holding the metrics: 7 × 4 = 28 cells,
  the incident rotating so that each one meets every subset.

Every cell runs ``loglib timeline`` (in process) and ``export_bundle`` (SVG charts through the
one shared browser). The full postmortem notebook (``loglib report``: kernel, report.html, the
bundle) runs on four cells chosen to miss a different source each, one of them with damaged
files. A missing source is never an error: the faces say what they cannot show and go on.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import loglib as ll
from loglib.cli import main
from tests.matrix_folders import INCIDENTS, SHAPES, SUBSETS, write_cell

NAMES = ("pool-exhaustion", "idle-drops", "post-deploy")
CELLS = [(name, subset, "recorded") for name in NAMES for subset in SUBSETS]
_WITH_METRICS = [s for s in SUBSETS if "prometheus" in s]
CELLS += [
    (NAMES[(i * len(_WITH_METRICS) + j) % 3], subset, shape)
    for i, shape in enumerate(SHAPES[1:])
    for j, subset in enumerate(_WITH_METRICS)
]


def _id(cell: tuple) -> str:
    name, subset, shape = cell
    return f"{name}-{'+'.join(s[:4] for s in subset)}-{shape}"


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _check_reads(summary: str, subset: tuple[str, ...]) -> None:
    """summary.md's "What was read" table has one row per source of the cell, with its counts."""
    section = summary.split("## What was read", 1)[1]
    rows = [
        ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith(("| source", "| ---"))
    ]
    kinds = sorted(ln.split("|")[2].strip() for ln in rows)
    assert kinds == sorted(subset)
    for ln in rows:
        read, parsed, rejected = (int(c.strip().replace(",", "")) for c in ln.split("|")[4:7])
        assert read == parsed + rejected, ln


@pytest.mark.parametrize("cell", CELLS, ids=[_id(c) for c in CELLS])
def test_timeline_and_bundle(cell, tmp_path: Path) -> None:
    """``loglib timeline`` prints the table and what was read; ``export_bundle`` writes its
    documents and says which charts it could not draw, and why."""
    name, subset, shape = cell
    folder = write_cell(name, subset, shape, tmp_path / "incident")
    code, out, err = _cli("timeline", str(folder), "-q")
    assert code == 0, err
    assert "Traceback" not in err
    assert re.search(r"^\|(?: :?-+:? \|)+$", out, re.M), out[:300]  # a Markdown table
    assert err.count(" lines read in ") == len(subset), err

    inc = ll.Incident.load(folder)
    bundle = ll.export_bundle(inc, tmp_path / "out", formats=("svg",))
    for doc in ("summary.md", "findings.md", "timeline.md", "timeline.csv"):
        assert (tmp_path / "out" / doc).is_file(), doc
    assert all(reason.strip() for reason in bundle.skipped.values())
    summary = (tmp_path / "out" / "summary.md").read_text()
    _check_reads(summary, subset)
    if bundle.skipped:
        assert "Not drawn (no evidence for them)" in summary
    for files in bundle.charts.values():
        assert all(p.stat().st_size > 0 for p in files)


#: the full notebook on cells that each miss something different
REPORTS = [
    ("pool-exhaustion", ("app",), "recorded"),
    ("post-deploy", ("postgres",), "recorded"),
    ("idle-drops", ("prometheus",), "unnamed"),
    ("post-deploy", ("app", "prometheus"), "nan_inf"),
]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """post-deploy's app + metrics, with unparseable lines in its app log and one broken answer."""
    folder = write_cell("post-deploy", ("app", "prometheus"), "nan_inf", tmp_path_factory.mktemp("m") / "inc")
    app = next((INCIDENTS / "post-deploy" / "app").glob("*.log"))
    (folder / "app.log").write_bytes(
        app.read_bytes()[:200_000] + b"\x00\x01 binary junk\nnot a log line at all\n"
    )
    (folder / "prometheus" / "broken.json").write_text('{"status": "success", "data": {"resu')
    toml = re.sub(
        r'paths = \["[^"]*/app/\*\.log"\]', 'paths = ["app.log"]', (folder / "incident.toml").read_text()
    )
    assert 'paths = ["app.log"]' in toml
    (folder / "incident.toml").write_text(toml)
    return folder


@pytest.mark.parametrize("cell", REPORTS, ids=[_id(c) for c in REPORTS])
def test_report(cell, tmp_path: Path, damaged: Path) -> None:
    """``loglib report`` completes: report.html, report.ipynb and the bundle, with "What was read"."""
    name, subset, shape = cell
    folder = damaged if cell == REPORTS[-1] else write_cell(name, subset, shape, tmp_path / "incident")
    code, _, err = _cli("report", str(folder), "--out", str(tmp_path / "out"), "-q")
    assert code == 0, err
    html = (tmp_path / "out" / "report.html").read_text()
    assert "What was read" in html and "RejectedLinesWarning" not in html
    _check_reads((tmp_path / "out" / "summary.md").read_text(), subset)
    if folder == damaged:
        assert re.search(r"app\.log:\d+", html), "the rejected app lines are named as file:line"
        assert "broken.json:1" in html
        assert "broken.json:1" in (tmp_path / "out" / "summary.md").read_text()
