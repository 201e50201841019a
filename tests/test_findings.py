"""findings on real data: each detector fires on the incident that has its shape and stays quiet elsewhere."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl
import pytest

import loglib as ll
from tests.conftest import FILES, ROOT

INCIDENTS = FILES / "incidents"
SAMPLE = ROOT / "data" / "sample-pg"


def _load(name: str) -> ll.Incident:
    if name == "sample-pg":
        truth = json.loads((SAMPLE / "truth.json").read_text())
        doc = {
            "title": "sample",
            "sources": [{"kind": "postgres", "paths": ["postgresql.log"]}],
            "postgres": {"max_connections": 20, "superuser_reserved_connections": 3},
            "events": truth["events"],
        }
        return ll.Incident.from_dict(doc, root=SAMPLE)
    return ll.Incident.load(INCIDENTS / name)


@pytest.fixture(scope="module")
def found() -> dict[str, list[ll.Finding]]:
    """Every detector on every real incident."""
    names = ["pool-leak", "deploy", "idle-drops", "healthy", "sample-pg"]
    return {name: ll.findings(_load(name)) for name in names}


class TestNoFalseAlarms:
    """Each incident shows its own shape and no other."""

    def test_kinds(self, found):
        """pool-leak and sample-pg: exhaustion; deploy: post_deploy; idle-drops: idle_drops; healthy: nothing."""
        assert {name: [f.kind for f in fs] for name, fs in found.items()} == {
            "pool-leak": ["pool_exhaustion"],
            "deploy": ["post_deploy", "post_deploy"],  # the deploys compared, then the one with errors
            "idle-drops": ["idle_drops"],
            "healthy": [],
            "sample-pg": ["pool_exhaustion"],
        }


class TestPoolExhaustion:
    """Pool exhaustion from leaks on error paths."""

    def test_pool_leak(self, found):
        """92 pool timeouts in one window; all 8 leaks (truth.json) seen on the gauge; recommendation within the configured pool."""
        (f,) = found["pool-leak"]
        n = f.numbers
        assert (n["windows"], n["pool_timeouts"], n["server_refusals"]) == (1, 92, 0)
        assert n["leak_method"] == "checked_out_gauge" and n["leaked_total"] == 8
        assert n["capacity"] == 4 and n["recommended_pool_size"] <= 4
        assert n["total_app_connections"] == 12 and n["max_connections"] == 20
        assert f.evidence.height == 92
        assert "leak, not load" in f.statement

    def test_sample_pg(self, found):
        """PostgreSQL alone: 170 refusals, 33 leaked sessions, about 20 an hour while visible."""
        (f,) = found["sample-pg"]
        n = f.numbers
        assert n["server_refusals"] == 170
        assert n["leaked_total"] == 33 and n["leak_method"] == "pg_sessions"
        assert 15 <= n["leaks_per_hour"] <= 22
        assert "database server ran out" in f.statement


class TestPostDeploy:
    """Errors after a deploy or restart."""

    def test_pg_restart(self, found):
        """The PostgreSQL restart under the app: stale connections fail, recovery in under a second."""
        compared, f = found["deploy"]
        assert compared.numbers["shared"] == ["postgres_restarted", "postgres_abrupt"]
        n = f.numbers
        assert n["event"] == "restart" and n["origin"] == "postgres"
        assert n["errors_by_class"] == {"admin_shutdown": 3, "connection_refused": 1}
        assert n["errors_before"] == 0
        assert 0 < n["recovery_s"] < 1
        assert n["closed_dropped"] > 0

    def test_detected_events(self):
        """The restart and the second app start are detected; the first starts are notes."""
        ev = _load("deploy").events
        assert ev.select("kind", "origin").rows() == [
            ("note", "postgres"),
            ("note", "app"),
            ("restart", "postgres"),
            ("deploy", "declared"),
            ("restart", "app"),
        ]


class TestIdleDrops:
    """Resets after sitting idle behind a proxy with a 1.5 s idle timeout."""

    def test_timeout_measured(self, found):
        """All 10 drops; the timeout is measured per connection within 10 ms; every app error follows a reset."""
        (f,) = found["idle-drops"]
        truth = json.loads((INCIDENTS / "idle-drops" / "truth.json").read_text())
        n = f.numbers
        assert n["drops"] == len(truth["drops"]) == 10
        assert n["idle_timeout_s"] == pytest.approx(truth["idle_timeout_s"], abs=0.01)
        assert f.confidence == "high" and n["method"] == "per-connection last activity"
        assert n["app_errors_after_reset"] == n["app_errors"] == 9
        assert n["recommended_pool_recycle_s"] < truth["idle_timeout_s"] and n["recommended_pool_pre_ping"]

    def test_without_statement_logging(self):
        """With statement lines removed, only an upper bound is told, with low confidence."""
        inc = _load("idle-drops")
        pg = inc.pg.filter(pl.col("event") != "other")
        inc._frames["postgres"] = pg
        inc._frames.pop("sessions", None)
        (f,) = ll.findings(inc, kinds=["idle_drops"])
        assert f.confidence == "low"
        assert f.numbers["idle_timeout_max_s"] >= 1.5


class TestFindingsFrame:
    """The list as a frame."""

    def test_frame(self, found):
        """One row per finding; numbers as JSON."""
        frame = ll.findings_frame(found["idle-drops"])
        assert frame.columns == ll.schema.FINDINGS.names
        assert json.loads(frame["numbers"][0])["drops"] == 10

    def test_unknown_kind(self):
        """Detector names are listed."""
        with pytest.raises(ValueError, match="choose from pool_exhaustion"):
            ll.findings(_load("healthy"), kinds=["gremlins"])


class TestLittlesLaw:
    def test_demand_from_clean_sessions(self):
        """On the bundled leak sample (4 requests per server minute), Little's law recovers the request rate."""
        inc = ll.Incident.from_dict(
            {"title": "sample", "sources": [{"kind": "postgres", "paths": ["postgresql.log"]}]},
            root=ROOT / "data" / "sample-pg",
        )
        (pool,) = [f for f in ll.findings(inc) if f.kind == "pool_exhaustion"]
        n = pool.numbers
        assert abs(n["request_rate_per_s"] - 4 / 60) / (4 / 60) < 0.1
        assert n["mean_busy_littles_law"] == pytest.approx(
            n["request_rate_per_s"] * n["mean_hold_s"], abs=1e-3
        )
        assert "Little's law" in pool.statement


class TestConnectionPatterns:
    def test_restart_and_deploy_seen_in_session_ends(self):
        """The sample's app restart and fix deploy (silent in its own logs) are found from mass session ends."""
        truth = json.loads((SAMPLE / "truth.json").read_text())
        events = ll.detect_events(pg=ll.read_pg_log(SAMPLE / "postgresql.log"))
        found = events.filter(pl.col("kind") == "restart")["ts"].to_list()
        assert len(found) == len(truth["events"])
        for declared, seen in zip(sorted(e["at"] for e in truth["events"]), sorted(found), strict=True):
            assert (
                abs(seen.timestamp() - datetime.fromisoformat(declared.replace("Z", "+00:00")).timestamp())
                < 3
            )


def test_pool_advice_fixes_the_leak_first_then_sizes_for_demand():
    """Issue 12 defect 10: on the bundled leaking pool the advice is the leak fix first, then a pool
    sized for the measured demand (never from a gauge still showing the old process after a
    restart: that read 5 then 8 busy), with the rule of thumb workers × 2 + buffer beside it."""
    from loglib.postmortem._recommend import recommendations

    (f,) = [f for f in ll.findings(ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion"))
            if f.kind == "pool_exhaustion"]  # fmt: skip
    n = f.numbers
    assert n["p99_concurrent"] <= 2 and 2 <= n["recommended_pool_size"] <= n["capacity"]
    assert n["rule_of_thumb_pool_size"] == 22  # workers 1 × 2 + 20
    recs = recommendations([f]).filter(pl.col("finding") == "pool_exhaustion")["recommendation"].to_list()
    assert recs[0].startswith("Fix the leak")
    sizing = [r for r in recs if "pool_size=" in r]
    assert sizing and sizing[0].startswith("Then, once the leak is fixed")
    assert "rule of thumb workers × 2 + buffer gives 1 × 2 + 20 = 22" in f.statement
