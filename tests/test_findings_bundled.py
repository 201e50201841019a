"""The detectors on the three bundled incidents (real software, data/incidents/): each finds its
own shape with the numbers its generator recorded, and raises no false alarm of another kind."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

import loglib as ll
from tests.conftest import ROOT

INCIDENTS = ROOT / "data" / "incidents"


def _truth(name: str) -> dict:
    return json.loads((INCIDENTS / name / "truth.json").read_text())


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module", params=["pool-exhaustion", "post-deploy", "idle-drops"])
def case(request):
    inc = ll.Incident.load(INCIDENTS / request.param)
    return request.param, inc, ll.findings(inc)


class TestBundledIncidents:
    def test_only_its_own_shape(self, case):
        """Each incident yields findings of its own kind only."""
        name, _, found = case
        expected = {
            "pool-exhaustion": "pool_exhaustion",
            "post-deploy": "post_deploy",
            "idle-drops": "idle_drops",
        }
        assert {f.kind for f in found} == {expected[name]}

    def test_pool_exhaustion_numbers(self):
        """Pool exhaustion: every pool timeout counted, all 16 leaks seen, the configured pool judged."""
        truth = _truth("pool-exhaustion")
        (f,) = ll.findings(ll.Incident.load(INCIDENTS / "pool-exhaustion"))
        assert f.numbers["pool_timeouts"] == truth["pool_timeouts"]
        assert f.numbers["leaked_total"] == truth["leaked_total"]
        assert f.numbers["capacity"] == truth["pool"]["pool_size"] + truth["pool"]["max_overflow"]
        first = min(_t(t) for t in truth["first_pool_timeout_per_phase"] if t)
        # the truth stamps when the request began to wait; the app logs the error a pool_timeout later
        lag = (f.start - first).total_seconds()
        assert 0 <= lag <= truth["pool"]["pool_timeout"] + 0.5

    def test_pool_exhaustion_windows_are_the_two_fills(self):
        """Issue 12 defect 9: the pool filled twice, with the operator's restart between (truth:
        pool timeouts in two phases); two windows, not "1 window"."""
        truth = _truth("pool-exhaustion")
        (f,) = ll.findings(ll.Incident.load(INCIDENTS / "pool-exhaustion"))
        phases = [n for n in truth["pool_timeouts_per_phase"] if n]
        assert f.numbers["windows"] == len(phases) == 2
        assert "The pool ran out of connections in 2 window(s)" in f.statement

    def test_demand_sentence_labels_observed_and_modelled(self):
        """The sizing sentence says which number was seen in the samples and which is modelled
        ("held at most 0 … 99.9% of the time at most 2" read as a contradiction)."""
        (f,) = ll.findings(ll.Incident.load(INCIDENTS / "pool-exhaustion"))
        text = " ".join(str(v) for v in vars(f).values() if isinstance(v, str | list | tuple))
        assert "Observed: requests held at most" in text and "in the samples" in text
        if "of the time" in text:
            assert "modelled:" in text and "Poisson" in text

    def test_post_deploy_numbers(self):
        """Post-deploy: one finding per deploy, at its time, with its errors, recovering within the truth's time."""
        truth = _truth("post-deploy")
        found = ll.findings(ll.Incident.load(INCIDENTS / "post-deploy"))
        # first the deploys compared: the three with errors restarted PostgreSQL (fast), the app's own
        # restarts after them did not
        compared, found = found[0], sorted(found[1:], key=lambda f: f.start)
        assert {"postgres_restarted", "postgres_abrupt"} <= set(compared.numbers["shared"])
        assert compared.numbers["errors"] == sum(f.numbers["errors"] for f in found)
        assert len(found) == len(truth["deploys"])
        for f, d in zip(found, truth["deploys"], strict=True):
            assert abs((f.start - _t(d["deploy"])).total_seconds()) < 2
            assert abs(f.numbers["errors"] - d["errors_503"]) <= 2
            # recovery counts database-connection errors; the truth's last 503 may come from the app restart
            assert 0 < f.numbers["recovery_s"] <= d["recovery_seconds"]

    def test_idle_drops_numbers(self):
        """Idle drops: all 20 resets, and the middlebox's 20 s timeout measured per connection."""
        truth = _truth("idle-drops")
        (f,) = ll.findings(ll.Incident.load(INCIDENTS / "idle-drops"))
        assert f.numbers["drops"] == truth["drops"]
        assert f.numbers["idle_timeout_s"] == pytest.approx(truth["idle_timeout_seconds"], abs=0.5)
        assert f.numbers["recommended_pool_recycle_s"] < truth["idle_timeout_seconds"]
        assert f.confidence == "high"


@pytest.mark.parametrize("every", ["1h", "1m"])
def test_finding_states_no_more_confidence_than_the_leak_table(case, every):
    """findings.md / summary.md print the finding's leak confidence; the report's leak table prints
    each bucket's. A total is as sure as its weakest bucket, so the finding never claims more
    (pool-exhaustion once said 'medium' beside an hourly table that said 'low')."""
    order = ["none", "low", "medium", "high"]
    _, inc, found = case
    for f in found:
        stated = f.numbers.get("leak_confidence")
        if stated is None:
            continue
        rates = ll.leak_rates(inc, every=every)
        best = rates.filter((rates["method"] == f.numbers["leak_method"]) & (rates["leaked"] > 0))
        assert best.height, f"{f.kind}: no leak in the {every} table for {f.numbers['leak_method']}"
        weakest = min(best["confidence"].to_list(), key=order.index)
        assert order.index(stated) <= order.index(weakest), (f.kind, every, stated, weakest)
