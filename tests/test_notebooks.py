"""The workbook notebooks: stripped in git, public API only, and they run on the bundled incidents."""

from __future__ import annotations

import importlib.util
import json
import re

import nbformat
import pytest

import loglib as ll
from loglib import report
from tests.conftest import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"
PACKAGED = ROOT / "loglib" / "notebooks"
INCIDENTS = ROOT / "data" / "incidents"
#: (notebook, parameters): each investigation on its own incident; the postmortem on the two
#: incidents that tests/test_report.py does not run it on
RUNS = {
    "quickstart": {},
    "connection_leaks": {"incident_dir": str(INCIDENTS / "pool-exhaustion")},
    "post_deploy_resets": {"incident_dir": str(INCIDENTS / "post-deploy")},
    "idle_dropouts": {"incident_dir": str(INCIDENTS / "idle-drops")},
    "postmortem[post-deploy]": {"incident_dir": str(INCIDENTS / "post-deploy"), "chart_formats": ["html"]},
    "postmortem[idle-drops]": {"incident_dir": str(INCIDENTS / "idle-drops"), "chart_formats": ["html"]},
}


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "docs" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestInGit:
    def test_the_shipped_set(self):
        """One copy: the package holds the notebooks loglib ships; notebooks/ links to each of them."""
        assert sorted(p.stem for p in PACKAGED.glob("*.ipynb")) == sorted(report.NOTEBOOKS)
        assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(report.NOTEBOOKS)
        for name in report.NOTEBOOKS:
            link = NOTEBOOK_DIR / f"{name}.ipynb"
            assert link.is_symlink(), f"notebooks/{name}.ipynb is a copy; run `python docs/make_notebooks.py`"
            assert link.resolve() == (PACKAGED / f"{name}.ipynb").resolve()
            assert report.notebook_path(name) == PACKAGED / f"{name}.ipynb"

    @pytest.mark.parametrize("name", report.NOTEBOOKS)
    def test_no_outputs(self, name):
        """No outputs, execution counts or per-run metadata in git."""
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{name}: cell {cell.id} has outputs (strip them)"
                assert cell.execution_count is None, f"{name}: cell {cell.id} has an execution count"
            assert "execution" not in cell.metadata
        assert "widgets" not in nb.metadata

    def test_written_by_the_script(self):
        """The files are what docs/make_notebooks.py writes (the cells are reviewed there, as text)."""
        maker = _load_maker()
        for name, (cells, title) in maker.NOTEBOOKS.items():
            expected = maker.text(maker.build(cells, title))
            assert (PACKAGED / f"{name}.ipynb").read_text() == expected, (
                f"{name}: run `python docs/make_notebooks.py`"
            )

    @pytest.mark.parametrize("name", report.NOTEBOOKS)
    def test_public_api_only(self, name):
        """Cells import only polars and loglib, and use only loglib's public names."""
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        imports = {line.strip() for line in source.splitlines() if re.match(r"\s*(import|from)\s", line)}
        assert imports <= {"import polars as pl", "import loglib as ll"}, imports
        used = set(re.findall(r"\bll\.(\w+)", source))
        assert used <= set(ll.__all__), used - set(ll.__all__)
        for attr in re.findall(r"\bll\.report\.(\w+)", source):
            assert not attr.startswith("_") and hasattr(report, attr), attr
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every run of RUNS, executed once headless (the venv's python3 kernel), by key."""
    out = tmp_path_factory.mktemp("notebooks")
    done = {}
    for key, params in RUNS.items():
        name = key.split("[")[0]
        nb = report.parameterize(
            report.read_notebook(NOTEBOOK_DIR / f"{name}.ipynb"), **params, out_dir=str(out / key)
        )
        try:
            report.execute_notebook(nb, cwd=NOTEBOOK_DIR)
        except report.ReportError as exc:
            done[key] = exc
            continue
        done[key] = nb
    return done


def _outputs(nb, kind):
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == kind]


@pytest.mark.parametrize("key", list(RUNS))
def test_runs_headless(executed, key):
    """The notebook runs from its first cell to its last without an error, with the parameters given."""
    nb = executed[key]
    assert not isinstance(nb, Exception), str(nb)
    assert not _outputs(nb, "error")
    figures = [o for o in _outputs(nb, "display_data") + _outputs(nb, "execute_result")
               if "application/vnd.plotly.v1+json" in o.get("data", {})]  # fmt: skip
    assert figures, "no chart"
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "Traceback" not in text


def test_investigations_say_what_they_found(executed):
    """The correlations of the investigation notebooks find what the incidents' truth says."""
    streams = {k: "".join(o.get("text", "") for o in _outputs(nb, "stream")) for k, nb in executed.items()
               if not isinstance(nb, Exception)}  # fmt: skip
    assert "16 of 16 leaked sessions have a restart or deploy" in streams["connection_leaks"]
    assert "10 of 10" in streams["idle_dropouts"] and "client_reset" in streams["idle_dropouts"]
    assert re.search(r"(\d+) of \1 .*have a deploy", streams["post_deploy_resets"])
    outputs = json.dumps([c.get("outputs", []) for c in executed["postmortem[idle-drops]"].cells])
    assert "Set pool_recycle=16" in outputs  # the recommendation, from the finding's numbers


@pytest.mark.parametrize("key", list(RUNS))
def test_html_is_offline_with_figures(executed, key):
    """Each notebook's HTML inlines plotly.js once, holds its figures' JSON, and loads no script from a URL."""
    nb = executed[key]
    assert not isinstance(nb, Exception), str(nb)
    figures = sum("application/vnd.plotly.v1+json" in o.get("data", {})
                  for c in nb.cells for o in c.get("outputs", []))  # fmt: skip
    html = report.notebook_html(nb, title="t")
    assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", html)
    assert html.count("Plotly.newPlot(") == figures >= 1
    assert len(re.findall(r"plotly\.js v\d", html)) == 1 and len(html) > 3_000_000  # inlined, once
    assert '"type":"bar"' in html.replace(" ", "") or '"type":"scatter"' in html.replace(" ", "")
    if key == "postmortem[post-deploy]":
        assert figures >= 3  # overview, evidence charts, leak rate
        assert "Connection errors for minutes after every deploy" in html
