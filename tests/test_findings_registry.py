"""The detector registry (``loglib.analysis.findings``): every shape module registered, and a new one
reaches ``ll.findings``, ``run_detectors``, the recommendations and the chart choice with no other change."""

from __future__ import annotations

import pkgutil
import types

import polars as pl
import pytest

import loglib as ll
from loglib.analysis import findings as registry
from tests.conftest import ROOT
from tests.evidence_frames import POOL_TIMEOUT, REQUEST, app_log


def test_every_shape_module_is_registered():
    """A module in ``loglib/analysis/findings/`` is a detector, and each is in ``SHAPES`` once."""
    modules = {m.name for m in pkgutil.iter_modules(registry.__path__) if m.name not in ("finding",)}
    assert {shape.__name__.rsplit(".", 1)[1] for shape in registry.SHAPES} == modules
    assert list(registry.DETECTORS) == list(registry.FINDING_KINDS) == [s.KIND for s in registry.SHAPES]
    for shape in registry.SHAPES:
        assert callable(shape.detect) and callable(shape.recommend)
        assert shape.CHARTS and all(callable(getattr(ll.charts, name)) for name in shape.CHARTS)


def _slow_checkout_shape() -> types.ModuleType:
    """A fourth detector, written as its module would be: ``KIND``, ``detect``, ``recommend``, ``CHARTS``."""
    shape = types.ModuleType("loglib.analysis.findings.slow_checkout")
    shape.KIND = "slow_checkout"
    shape.CHARTS = ("error_rate",)

    def detect(ev: ll.Evidence) -> list[ll.Finding]:
        slow = ev.app.filter(pl.col("error_class") == "pool_timeout")
        if slow.height < 2:
            return []
        return [ll.Finding("slow_checkout", f"{slow.height} slow checkouts.", {"slow": slow.height}, slow)]

    def recommend(f, pre_ping, add) -> None:
        add("Look at the slowest checkouts.", f"{f.numbers['slow']} checkouts waited.")

    shape.detect, shape.recommend = detect, recommend
    return shape


@pytest.fixture
def fourth(monkeypatch):
    """The fourth shape registered (as adding it to ``SHAPES`` would)."""
    shape = _slow_checkout_shape()
    monkeypatch.setitem(registry.DETECTORS, shape.KIND, shape)
    return shape


@pytest.fixture
def evidence() -> ll.Evidence:
    lines = [(10.0 * i, REQUEST) for i in range(30)] + [(100 + i, POOL_TIMEOUT) for i in range(4)]
    return ll.Evidence.from_frames(app=app_log(lines), pool_size=5, max_overflow=0)


def test_a_fourth_detector_is_one_module(fourth, evidence):
    assert [f.kind for f in ll.findings(evidence)] == ["pool_exhaustion", "slow_checkout"]
    assert [f.kind for f in ll.findings(evidence, kinds=["slow_checkout"])] == ["slow_checkout"]
    res = ll.postmortem.run_detectors(evidence)
    assert [f.kind for f in res.found] == ["pool_exhaustion", "slow_checkout"] and res.failed == ()
    table = ll.postmortem.recommendations(res.found)
    assert table.filter(pl.col("finding") == "slow_checkout")["because"].to_list() == ["4 checkouts waited."]
    assert set(ll.postmortem.evidence_charts(evidence, [res.found[1]])) == {"error_rate"}


def test_a_failing_detector_is_reported_by_name(fourth, evidence, monkeypatch):
    def broken(ev):
        return ev.app["no_such_column"]

    monkeypatch.setattr(fourth, "detect", broken)
    res = ll.postmortem.run_detectors(evidence)
    assert [f.kind for f in res.found] == ["pool_exhaustion"]
    (failure,) = res.failed
    assert failure.kind == "slow_checkout" and "ColumnNotFoundError" in str(failure)
    with pytest.raises(pl.exceptions.ColumnNotFoundError):  # ll.findings itself never hides it
        ll.findings(evidence)


def test_unknown_kind_names_the_detectors(evidence):
    with pytest.raises(ValueError, match=f"choose from {', '.join(registry.DETECTORS)}$"):
        ll.findings(evidence, kinds=["pool_exhausted"])


def test_an_incident_and_its_evidence_give_the_same_findings():
    inc = ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion")
    assert [str(f) for f in ll.findings(inc)] == [str(f) for f in ll.findings(inc.evidence)]
