"""No exported file names a local absolute path: a bundle and a report are shared.

The incident folder, the output folder, the repository and the home directory of whoever built
them must not appear in any file ``export_bundle`` or ``loglib report`` writes (evidence is
file:line relative to the incident folder; report.ipynb's parameters are relative to it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import loglib as ll
from loglib.present.redact import Redactor, local_paths
from loglib.report import build_report

ROOT = Path(__file__).resolve().parents[1]
INCIDENTS = sorted(p for p in (ROOT / "data" / "incidents").iterdir() if (p / "incident.toml").is_file())


def local_names(*folders: Path) -> list[str]:
    names = [str(ROOT), os.path.expanduser("~") + "/"]
    for f in folders:
        names += [str(f), str(f.resolve())]
    return [n for n in names if n not in ("/", "~/")]


def offenders(out: Path, names: list[str]) -> list[str]:
    found = []
    for path in out.rglob("*"):
        if path.is_file() and path.suffix not in (".png", ".pdf"):
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(out)}: {n}" for n in names if n in text]
    return found


@pytest.mark.parametrize("inc_dir", INCIDENTS, ids=lambda p: p.name)
def test_bundle_names_no_local_path(inc_dir, tmp_path):
    """findings.md, summary.md, the timeline files, before_after.md and the SVG/HTML charts."""
    out = tmp_path / "bundle"
    ll.export_bundle(ll.Incident.load(inc_dir), out, formats=("svg",))
    assert (out / "findings.md").is_file()
    assert offenders(out, local_names(inc_dir, out)) == []


@pytest.mark.parametrize("inc_dir", INCIDENTS, ids=lambda p: p.name)
def test_no_redact_bundle_names_no_local_path(inc_dir, tmp_path):
    """--no-redact keeps secrets, not local paths: every file is still relative to the incident folder."""
    out = tmp_path / "bundle"
    ll.export_bundle(ll.Incident.load(inc_dir), out, formats=("svg",), html=True, redact=False)
    assert (out / "findings.md").is_file()
    assert "NOT redacted" in (out / "summary.md").read_text()
    assert offenders(out, local_names(inc_dir, out)) == []


def test_paths_only_mode_keeps_secrets():
    """Redactor(secrets=False) rewrites local paths and nothing else."""
    red = Redactor(secrets=False, paths=local_paths("/srv/inc/x", "/srv/out"))
    text = "postgresql://app:hunter2@db:5432/x at /srv/inc/x/app.log:3, mail ops@example.com"
    assert red.text(text) == "postgresql://app:hunter2@db:5432/x at app.log:3, mail ops@example.com"
    assert "[REDACTED]" in Redactor(paths=local_paths("/srv/inc/x", "/srv/out")).text(text)


def test_no_redact_report_names_no_local_path(tmp_path):
    """report.html and report.ipynb under --no-redact name no local folder either."""
    inc_dir = ROOT / "data" / "incidents" / "pool-exhaustion"
    out = tmp_path / "report"
    build_report(inc_dir, out, redact=False)
    assert "Secrets NOT redacted" in (out / "report.html").read_text()
    assert offenders(out, local_names(inc_dir, out)) == []


def test_report_names_no_local_path(tmp_path):
    """report.html and report.ipynb (its parameters name the incident folder, not where it was)."""
    inc_dir = ROOT / "data" / "incidents" / "pool-exhaustion"
    out = tmp_path / "report"
    build_report(inc_dir, out, leak_every="10s")
    assert offenders(out, local_names(inc_dir, out)) == []
    # --leak-every: one bucket for the report's leak table and chart and the bundle's chart
    assert "leak_every = '10s'" in (out / "report.ipynb").read_text()
    assert "Connections leaked per 10 s" in (out / "charts" / "leak_rate.svg").read_text()
    assert "Connections leaked per 10 s" in (out / "report.html").read_text()
    nb = (out / "report.ipynb").read_text()
    assert "incident_dir = 'pool-exhaustion'  # the incident folder" in nb and "out_dir = '.'" in nb


def test_cut_paths_are_caught():
    """A display that cut a local path short ("/srv/inc/pool-e…", a polars column edge) leaks no prefix."""
    red = Redactor(paths=local_paths("/srv/inc/pool-exhaustion", "/srv/out"))
    text = (
        "a /srv/inc/pool-exhaustion/app/app.log:3 b /srv/inc/pool-e… c /srv/inc/poo ┆ d /srv/out/charts/x.svg"
    )
    assert red.text(text) == "a app/app.log:3 b … c … ┆ d charts/x.svg"
    assert red.text("/srv/outside/x and /srv/inc/pool-exhaustion.") == "/srv/outside/x and pool-exhaustion."
