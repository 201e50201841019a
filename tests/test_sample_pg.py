"""The bundled sample (a real PostgreSQL log of a leak) yields the truth its generator recorded."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl
import pytest

import loglib as ll
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "sample-pg"
TRUTH = json.loads((SAMPLE / "truth.json").read_text())


def _at(kind: str) -> datetime:
    text = next(e["at"] for e in TRUTH["events"] if e["kind"] == kind)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module", params=["postgresql.log", "postgresql.csv", "postgresql.json"])
def sessions(request) -> pl.DataFrame:
    return ll.pg_sessions(ll.read_pg_log(SAMPLE / request.param, strict=True))


class TestSample:
    def test_refusals(self, sessions):
        """Every refused request is a 'rejected' session."""
        assert sessions.filter(pl.col("end_reason") == "rejected").height == TRUTH["refused"]

    def test_restart_resets_the_leaked_connections(self, sessions):
        """The restart killed the 17 leaked sessions: client resets within seconds of it."""
        resets = sessions.filter(pl.col("end_reason") == "client_reset")
        assert resets.height == 17
        lag = (resets["end"] - _at("restart")).dt.total_seconds()
        assert lag.abs().max() < 5

    def test_fix_terminates_the_rest(self, sessions):
        """The fix's pg_terminate_backend ended the 16 leaked sessions left."""
        killed = sessions.filter(pl.col("end_reason") == "admin_termination")
        assert killed.height == 16
        assert (killed["end"] - _at("deploy")).dt.total_seconds().abs().max() < 5

    def test_leaked_sessions_are_the_long_ones(self, sessions):
        """Sessions of the app that lasted over a minute are exactly the leaked ones, started when the truth says."""
        app = sessions.filter(pl.col("application") == "checkout-api")
        leaked = app.filter(pl.col("duration") > pl.duration(minutes=1))
        assert leaked.height == TRUTH["leaked_total"]
        starts = sorted(leaked["start"].dt.strftime("%Y-%m-%dT%H:%M").to_list())
        assert starts == sorted(t[:16] for t in TRUTH["leaks"])
