"""The idle-drops detector on its own (``loglib.analysis.findings.idle_drops``), on Evidence from frames."""

from __future__ import annotations

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.findings import DETECTORS, idle_drops
from tests.evidence_frames import REQUEST, SERVER_CLOSED, app_log, at, pg_log, session

RESET = "LOG:  could not receive data from client: Connection reset by peer"
#: a firewall that drops connections idle for 300 s: each pooled connection's last statement, then its reset
LAST_USE = {21: 100.0, 22: 400.0, 23: 700.0, 24: 1000.0, 25: 1300.0}
IDLE = {21: 300.2, 22: 300.0, 23: 301.5, 24: 300.9, 25: 302.0}
REQUESTS = [(20.0 * i, REQUEST) for i in range(100)]
#: the next request on each dropped connection fails 4 s after its reset
NEXT_USE = [(LAST_USE[p] + IDLE[p] + 4, SERVER_CLOSED) for p in LAST_USE]


def _pg(*, statements: bool = True, idle: dict[int, float] = IDLE) -> pl.DataFrame:
    lines = []
    for pid, last in LAST_USE.items():
        login = last - 50
        lines += session(
            pid, login, last + idle[pid], statements=[last] if statements else [], end_line=RESET
        )
    return pg_log(lines)


@pytest.fixture(scope="module")
def drops() -> ll.Finding:
    (found,) = idle_drops.detect(ll.Evidence.from_frames(pg=_pg(), app=app_log(REQUESTS + NEXT_USE)))
    return found


class TestMeasured:
    def test_timeout_from_each_connections_idle_time(self, drops):
        """Statement logging: last activity -> reset per connection; the timeout is the shortest (a timer fires at the limit)."""
        n = drops.numbers
        assert n["drops"] == 5 and drops.confidence == "high"
        assert n["method"] == "per-connection last activity"
        assert (n["idle_timeout_s"], n["idle_median_s"], n["idle_max_s"]) == (300.0, 300.9, 302.0)
        assert sorted(drops.evidence["idle_s"].to_list()) == pytest.approx(sorted(IDLE.values()))
        assert (drops.start, drops.end) == (at(100 + 300.2), at(1300 + 302.0))

    def test_recommendation_numbers(self, drops):
        n = drops.numbers
        assert (n["recommended_pool_recycle_s"], n["recommended_pool_pre_ping"]) == (240, True)
        assert "Set pool_recycle=240 (below the timeout) and pool_pre_ping=True." in drops.statement

    def test_the_apps_errors_on_next_use(self, drops):
        n = drops.numbers
        assert (n["app_errors"], n["app_errors_after_reset"]) == (5, 5)
        assert n["next_use_delay_s"] == pytest.approx(4.0)

    def test_idle_times_that_disagree_are_not_one_timeout(self):
        spread = {21: 30.0, 22: 300.0, 23: 900.0, 24: 120.0, 25: 600.0}
        assert idle_drops.detect(ll.Evidence.from_frames(pg=_pg(idle=spread))) == []


class TestUpperBound:
    def test_without_statement_logging(self):
        """Only login -> reset is known: the timeout is at most the shortest of those, low confidence."""
        (f,) = idle_drops.detect(ll.Evidence.from_frames(pg=_pg(statements=False)))
        n = f.numbers
        assert f.confidence == "low" and "idle_timeout_s" not in n
        assert n["idle_timeout_max_s"] == pytest.approx(50 + 300.0, abs=0.01)  # from the login line
        assert n["idle_timeout_max_s"] >= min(IDLE.values())  # a bound, never below the truth
        assert n["method"] == "session login to reset (upper bound)"


class TestNotIdleDrops:
    def test_resets_at_a_restart_belong_to_it(self):
        """Three of the five resets within 30 s of a declared restart: two left, too few for a finding."""
        restarts = pl.DataFrame(
            {
                "ts": [at(LAST_USE[p] + IDLE[p] - 10) for p in (21, 22, 23)],
                "kind": ["restart"] * 3,
                "text": ["web restarted"] * 3,
            }
        )
        assert idle_drops.detect(ll.Evidence.from_frames(pg=_pg(), events=restarts)) == []

    def test_a_burst_of_busy_connections_is_not_idle(self):
        """Three connections used a second before they were reset together (a process dying): left out."""
        lines = []
        for pid in (31, 32, 33):
            lines += session(pid, 1500.0, 1600.3 + pid / 100, statements=[1599.0], end_line=RESET)
        ev = ll.Evidence.from_frames(pg=pl.concat([_pg(), pg_log(lines)]).sort("ts"))
        (f,) = idle_drops.detect(ev)
        assert f.numbers["drops"] == 5 and f.numbers["idle_timeout_s"] == 300.0

    def test_no_postgres_log(self):
        assert idle_drops.detect(ll.Evidence.from_frames(app=app_log(REQUESTS + NEXT_USE))) == []


class TestPoolsDroppedTogether:
    """Issue 12 defect 7: a middlebox resets a pool's idle connections together, and connections
    that lived longer than about 2 minutes were dropped from the count (lab idle-32: 12 of 15)."""

    #: two rounds of three pooled connections, each reset together after 190 s (no statement logging)
    ROUNDS = ((0.0, 190.0), (200.0, 390.0))
    START = "INFO app: checkout-api 1.4.2 starting pid 7 on port 8000"

    def _pg(self) -> pl.DataFrame:
        lines = []
        for r, (login, reset) in enumerate(self.ROUNDS):
            for i in range(3):
                lines += session(40 + 10 * r + i, login + i / 10, reset + i / 10, end_line=RESET)
        return pg_log(lines)

    def test_bursts_of_long_lived_connections_count_when_the_app_logs_its_restarts(self):
        """The app's own start line is in the evidence and no stop or restart: every burst is a
        middlebox drop, all six count, and the timeout is the upper bound their age gives."""
        app = app_log([(-5.0, self.START), *REQUESTS])
        (f,) = idle_drops.detect(ll.Evidence.from_frames(pg=self._pg(), app=app))
        assert f.numbers["drops"] == 6
        assert f.numbers["method"] == "session login to reset (upper bound)"
        assert f.numbers["idle_timeout_max_s"] == pytest.approx(190 - 0.005, abs=0.001)  # from the login line

    def test_resets_at_the_apps_stop_are_the_stop(self):
        """Three more connections reset right after the app's final stop line: not idle drops."""
        stop = [(500.0, "INFO app: received SIGTERM, shutting down")]
        lines = []
        for i in range(3):
            lines += session(70 + i, 300.0, 500.2 + i / 10, end_line=RESET)
        pg = pl.concat([self._pg(), pg_log(lines)]).sort("ts")
        app = app_log([(-5.0, self.START), *REQUESTS, *stop])
        (f,) = idle_drops.detect(ll.Evidence.from_frames(pg=pg, app=app))
        assert f.numbers["drops"] == 6


class TestRecommend:
    def _advice(self, numbers: dict, pre_ping: bool | None = None) -> list[str]:
        out: list[str] = []
        idle_drops.recommend(ll.Finding("idle_drops", "", numbers), pre_ping, lambda r, w: out.append(r))
        return out

    def test_measured(self, drops):
        recycle, pre_ping, keepalive = self._advice(drops.numbers)
        assert (
            recycle
            == "Set pool_recycle=240 (below the 300 s idle timeout) so no pooled connection outlives it."
        )
        assert pre_ping.startswith("Enable pool_pre_ping=True")
        assert "TCP keepalives shorter than 300 s" in keepalive

    def test_upper_bound_says_so(self):
        (rec, *_) = self._advice({"idle_timeout_max_s": 350.0, "recommended_pool_recycle_s": 280})
        assert "(below the idle timeout, which is at most 350 s)" in rec

    def test_pre_ping_already_on(self, drops):
        assert not any("pool_pre_ping" in a for a in self._advice(drops.numbers, pre_ping=True))


def test_registered_with_its_charts():
    assert DETECTORS["idle_drops"] is idle_drops
    assert ll.postmortem.EVIDENCE_CHARTS["idle_drops"] == idle_drops.CHARTS
    assert all(callable(getattr(ll.charts, name)) for name in idle_drops.CHARTS)
