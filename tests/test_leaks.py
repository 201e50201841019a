"""leak_rates on real data: PostgreSQL sessions (data/sample-pg) and a pool gauge scraped by Prometheus."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.core.schema import UTC_TS
from tests.conftest import FILES, ROOT

SAMPLE = ROOT / "data" / "sample-pg"


@pytest.fixture(scope="module")
def sample_pg() -> pl.DataFrame:
    """The real PostgreSQL log of a leak incident."""
    return ll.read_pg_log(SAMPLE / "postgresql.log")


def _hour(h: int, m: int = 0) -> datetime:
    return datetime(2026, 11, 21, h, m, tzinfo=UTC)


class TestSessionsMethod:
    """Sessions that never close, per application and user (truth.json: 33 leaks, 17 + 16)."""

    def test_per_hour(self, sample_pg):
        """Leaks per hour match the generator's truth; hours with refusals are saturated lower bounds."""
        got = ll.leak_rates(pg=sample_pg, every="1h").select(
            "ts", "scope", "leaked", "confidence", "saturated"
        )
        truth = [datetime.fromisoformat(t) for t in json.loads((SAMPLE / "truth.json").read_text())["leaks"]]
        per_hour = [sum(1 for t in truth if t.hour == h) for h in (8, 9, 10, 11)]
        assert per_hour == [17, 8, 8, 0]
        expected = pl.DataFrame(
            {
                "ts": [_hour(h) for h in (8, 9, 10, 11)],
                "scope": ["checkout-api/checkout"] * 4,
                "leaked": [float(n) for n in per_hour],
                "confidence": ["low", "low", "medium", "medium"],
                "saturated": [True, True, False, False],
            },
            schema_overrides={"ts": UTC_TS},
        )
        assert_frame_equal(got, expected)

    def test_full_server_is_not_a_stopped_leak(self, sample_pg):
        """While every slot was taken (09:00-09:30) the figure is null with confidence 'none', never 0."""
        got = ll.leak_rates(pg=sample_pg, every="10m").filter(
            pl.col("ts").is_between(_hour(8, 50), _hour(9, 30))
        )
        assert got["leaked"].to_list() == [1.0, None, None, None, 1.0]
        assert got["confidence"].to_list() == ["low", "none", "none", "none", "low"]
        assert got["saturated"].all()
        assert "cannot be seen" in got["note"][1]

    def test_pooled_app_is_not_a_leak(self):
        """A pool that keeps its connections open (healthy fixture) shows no leak."""
        inc = ll.Incident.load(FILES / "incidents" / "healthy")
        got = ll.leak_rates(inc, every="2s")
        assert got.filter(pl.col("leaked") > 0).height == 0


class TestGaugeMethod:
    """The rise of the checked-out gauge's floor (tests/files/incidents/pool-leak, real Prometheus)."""

    def test_leaks_found(self):
        """7 of the 8 leaks the script made are seen; the gauge method is ranked first."""
        inc = ll.Incident.load(FILES / "incidents" / "pool-leak")
        truth = json.loads((FILES / "incidents" / "pool-leak" / "truth.json").read_text())
        made = len(truth["leaks_before_restart"]) + len(truth["leaks_after_restart"])
        got = ll.leak_rates(inc, every="2s", best_only=True)
        assert made == 8
        assert got["method"].unique().to_list() == ["checked_out_gauge"]
        assert got["leaked"].sum() == 7
        # while the pool sat full, the figure is unknown, not zero
        hidden = got.filter(pl.col("leaked").is_null())
        assert hidden.height >= 3 and hidden["saturated"].all() and set(hidden["confidence"]) == {"none"}

    def test_restart_resets_the_floor(self):
        """After the declared restart the floor starts again at 0: no negative leaks, leaks resume."""
        inc = ll.Incident.load(FILES / "incidents" / "pool-leak")
        got = ll.leak_rates(inc, every="2s", best_only=True)
        restart = inc.events.filter(pl.col("origin") == "declared")["ts"][0]
        after = got.filter(pl.col("ts") > restart)
        assert after["leaked"].drop_nulls().min() >= 0
        assert after["leaked"].sum() >= 3
