"""The postmortem layer (loglib.postmortem): detectors run once and fail by name, summary, chart choice, bundle."""

from __future__ import annotations

import pytest

import loglib as ll
from loglib.postmortem import _detectors
from tests.conftest import FILES, ROOT

POOL = ROOT / "data" / "incidents" / "pool-exhaustion"
IDLE = FILES / "incidents" / "idle-drops"


@pytest.fixture
def broken_idle(monkeypatch):
    """The idle_drops detector raises a KeyError (a bug); the other detectors work."""
    real = _detectors.findings

    def findings(ev, *, kinds=None):
        if kinds == ["idle_drops"]:
            raise KeyError("idle_s")
        return real(ev, kinds=kinds)

    monkeypatch.setattr(_detectors, "findings", findings)


class TestRunDetectors:
    def test_same_findings_once_per_evidence(self):
        """run_detectors gives what ll.findings gives, computed once per Evidence."""
        inc = ll.Incident.load(POOL)
        res = ll.postmortem.run_detectors(inc)
        assert [f.statement for f in res.found] == [f.statement for f in ll.findings(inc)]
        assert ll.postmortem.run_detectors(inc.evidence) is res and res.failed == ()

    def test_failing_detector_is_named(self, broken_idle):
        """A detector that raises is reported by name with its error; the others still report."""
        res = ll.postmortem.run_detectors(ll.Incident.load(POOL))
        assert [f.kind for f in res.found] == ["pool_exhaustion"]
        (fail,) = res.failed
        assert fail.kind == "idle_drops" and str(fail) == "the idle_drops detector failed: KeyError: 'idle_s'"


class TestFailuresAreLoud:
    def test_summary_names_the_failed_detector(self, broken_idle):
        """The summary says the detector failed, never that no shape was found (issue 11)."""
        text = ll.postmortem.summary(ll.Incident.load(IDLE))
        assert "The idle_drops detector failed** (KeyError: 'idle_s')" in text
        assert "No known incident shape" not in text

    def test_bundle_names_the_failed_detector(self, broken_idle, tmp_path):
        """findings.md and summary.md of the bundle name the failed detector and its error."""
        inc = ll.Incident.load(IDLE)
        bundle = ll.export_bundle(inc, tmp_path, formats=("html",))
        assert bundle.failed == {"idle_drops": "KeyError: 'idle_s'"}
        for doc in ("findings.md", "summary.md"):
            text = (tmp_path / doc).read_text()
            assert "The idle_drops detector failed" in text and "KeyError: 'idle_s'" in text
            assert "No known incident shape" not in text
        assert "idle_drops detector failed" in bundle.skipped["session_durations"]


class TestCharts:
    def test_evidence_charts_follow_the_findings(self):
        """The pool-exhaustion finding brings the pool and connection charts."""
        assert list(ll.postmortem.evidence_charts(ll.Incident.load(POOL))) == [
            "pool_utilisation",
            "db_connections",
        ]

    def test_incident_charts_say_why_one_is_skipped(self):
        """A chart the evidence cannot draw is skipped with the reason; a bug would propagate."""
        figs, skipped = ll.postmortem.incident_charts(ll.Incident.load(IDLE))
        assert "overview" in figs
        assert all(isinstance(why, str) and why for why in skipped.values())


class TestOldPaths:
    def test_names_still_found_where_they_were(self):
        """export_bundle, Bundle and the notebook helpers keep their old import paths."""
        from loglib.present.export import Bundle, export_bundle

        assert export_bundle is ll.export_bundle is ll.present.export_bundle
        assert Bundle is ll.postmortem.Bundle
        assert (
            ll.report.summary is ll.postmortem.summary
            and ll.report.recommendations is ll.postmortem.recommendations
        )
