"""The pool-exhaustion detector on its own (``loglib.analysis.findings.pool_exhaustion``), on Evidence from frames."""

from __future__ import annotations

import json

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.evidence import AppSettings
from loglib.analysis.findings import DETECTORS, pool_exhaustion
from tests.evidence_frames import POOL_TIMEOUT, REQUEST, app_log, at, pg_log, prometheus, session

#: requests every 30 s for 40 minutes: the app's run time
REQUESTS = [(30.0 * i, REQUEST) for i in range(80)]
#: 12 timeouts at 10:10, 5 at 10:30 (more than WINDOW_GAP apart: two windows)
TIMEOUTS = [(600 + 5.0 * i, POOL_TIMEOUT) for i in range(12)] + [
    (1800 + 3.0 * i, POOL_TIMEOUT) for i in range(5)
]
LEAKS_AT = (300, 420, 540)


def _gauge() -> pl.DataFrame:
    """The pool's checked-out gauge every 15 s: one request on every other sample, plus the leaked
    connections, which never come back (the floor steps up at ``LEAKS_AT``)."""
    points = []
    for s in range(0, 2400, 15):
        leaked = sum(s >= t for t in LEAKS_AT)
        points.append((s, leaked + (s // 15) % 2))
    return prometheus("db_pool_checked_out", points, instance="web-1")


@pytest.fixture(scope="module")
def leak() -> ll.Finding:
    ev = ll.Evidence.from_frames(
        app=app_log(REQUESTS + TIMEOUTS), metrics=_gauge(), pool_size=5, max_overflow=0, max_connections=20
    )
    (found,) = pool_exhaustion.detect(ev)
    return found


class TestWindows:
    def test_failures_and_windows(self, leak):
        """Every pool timeout is evidence; failures 20 minutes apart are two windows."""
        n = leak.numbers
        assert (n["windows"], n["pool_timeouts"], n["app_refusals"], n["server_refusals"]) == (2, 17, 0, 0)
        assert leak.evidence.height == 17 and set(leak.evidence["what"]) == {"pool_timeout"}
        assert (leak.start, leak.end) == (at(600), at(1812))
        assert n["full_s"] == pytest.approx(55 + 12)
        assert leak.confidence == "high"  # 10 or more failures
        assert "The pool ran out of connections in 2 window(s)" in leak.statement

    def test_too_few_failures_are_no_finding(self):
        ev = ll.Evidence.from_frames(app=app_log([*REQUESTS, *TIMEOUTS[: pool_exhaustion.MIN_FAILURES - 1]]))
        assert pool_exhaustion.detect(ev) == []

    def test_a_restart_ends_the_window(self):
        """Timeouts on both sides of a restart, 10 s apart, are two windows; without the restart, one."""
        timeouts = [(600 + 2.0 * i, POOL_TIMEOUT) for i in range(5)] + [
            (618 + 2.0 * i, POOL_TIMEOUT) for i in range(5)
        ]
        app = app_log(REQUESTS + timeouts)
        restart = pl.DataFrame({"ts": [at(612)], "kind": ["restart"], "text": ["kubectl rollout restart"]})
        (cut,) = pool_exhaustion.detect(ll.Evidence.from_frames(app=app, events=restart))
        (whole,) = pool_exhaustion.detect(ll.Evidence.from_frames(app=app))
        assert (cut.numbers["windows"], whole.numbers["windows"]) == (2, 1)


class TestLeaksAndSize:
    def test_leaks_from_the_gauge(self, leak):
        """The gauge's floor rose three times: 3 leaked, per hour of the app's run (40 min)."""
        n = leak.numbers
        assert (n["leaked_total"], n["leak_method"]) == (3, "checked_out_gauge")
        assert n["leaks_per_hour"] == pytest.approx(3 / (2370 / 3600), abs=0.1)
        assert "app's run time" in n["leaks_per_hour_over"]
        assert "a leak, not load, filled it" in leak.statement

    def test_demand_and_size(self, leak):
        """Requests held one connection half the time: demand about 0.5, and the configured 5 is enough."""
        n = leak.numbers
        assert n["mean_busy_littles_law"] == pytest.approx(0.5, abs=0.1)
        assert "leaked connections excluded" in n["demand_from"]
        assert (n["pool_size"], n["max_overflow"], n["capacity"]) == (5, 0, 5)
        assert 1 <= n["recommended_pool_size"] <= n["capacity"]
        assert "the configured 5+0 is enough" in leak.statement
        assert n["total_app_connections"] == 5 and n["max_connections"] == 20

    def test_server_refusals_alone(self):
        """PostgreSQL's log alone: its refusals are the failures and the server ran out."""
        lines = [(600 + i, 100 + i, "FATAL:  sorry, too many clients already") for i in range(4)]
        (f,) = pool_exhaustion.detect(ll.Evidence.from_frames(pg=pg_log(lines), max_connections=20))
        assert (f.numbers["server_refusals"], f.numbers["pool_timeouts"]) == (4, 0)
        assert f.confidence == "medium" and "The database server ran out" in f.statement
        # nothing says how many leaked or how many requests needed: it says so, and guesses no size
        assert f.numbers["leaked_total"] is None and "recommended_pool_size" not in f.numbers
        assert "Demand is not measured: no request-scoped holds" in f.statement


class TestDemandFromRequestHolds:
    """Issue 12 defect 5: Little's law takes request-scoped holds only, never a leaked connection or
    a pool's long-lived session ("5.62 checkouts/s × 457 s held = 2,566 busy" for a pool of 8)."""

    def test_a_pools_long_lived_sessions_are_no_demand(self):
        """PostgreSQL's log shows only the pool's five sessions, open for the whole run and closed
        cleanly at the end: nothing measures request holds, so demand is left out, with the reason."""
        lines = [line for pid in range(51, 56) for line in session(pid, 1.0 + pid / 100, 2390.0)]
        ev = ll.Evidence.from_frames(app=app_log(REQUESTS + TIMEOUTS), pg=pg_log(lines), pool_size=5)
        (f,) = pool_exhaustion.detect(ev)
        assert "mean_busy_littles_law" not in f.numbers
        assert "a pool's long-lived sessions say nothing about demand" in f.numbers["demand_from"]
        assert "Demand is not measured: no request-scoped holds" in f.statement

    def test_leaked_checkouts_are_not_request_holds(self):
        """Pool events: a request every 2 s holds its connection 0.5 s (0.25 busy on average); three
        checkouts never checked in are leaks, held to the log's end, and stay out of the demand."""
        rows = []
        for i in range(1200):
            conn = 1 + i % 2
            rows.append({"ts": at(2.0 * i).isoformat(), "event": "checkout", "conn": conn})
            rows.append({"ts": at(2.0 * i + 0.5).isoformat(), "event": "checkin", "conn": conn})
        rows += [
            {"ts": at(s).isoformat(), "event": "checkout", "conn": c}
            for s, c in ((300, 3), (420, 4), (540, 5))
        ]
        events = ll.read_pool_events("".join(json.dumps(r) + "\n" for r in rows).encode())
        ev = ll.Evidence.from_frames(
            app=app_log(REQUESTS + TIMEOUTS), pool_events=events, pool_size=5, max_overflow=0
        )
        (f,) = pool_exhaustion.detect(ev)
        n = f.numbers
        assert n["demand_from"] == "pool events (Little's law)"
        assert n["mean_hold_s"] == pytest.approx(0.5)
        assert n["mean_busy_littles_law"] == pytest.approx(0.25, rel=0.02)
        assert n["mean_busy_littles_law"] <= n["capacity"]  # never above what the connections carry

    def test_demand_never_above_what_the_connections_carry(self):
        """Access-line durations include the wait for a connection: 2 requests/s that each took
        4 s give 8 busy by Little's law, more than the 2 × (2+0) connections the two declared
        processes can hold. The figure is capped there and says so; undeclared processes leave
        the pools' capacity unknown, and the server's slots bound it instead."""
        slow = 'INFO uvicorn.access: 10.0.0.1:5000 - "GET /orders HTTP/1.1" 200 4.000s'
        app = app_log([(0.5 * i, slow) for i in range(1, 1200)] + TIMEOUTS)
        (f,) = pool_exhaustion.detect(
            ll.Evidence.from_frames(
                app=app,
                app_settings=AppSettings(pool_size=2, max_overflow=0, instances=2),
                max_connections=100,
            )
        )
        n = f.numbers
        assert n["mean_busy_uncapped"] > 4 and n["mean_busy_littles_law"] == 4
        assert "capped at 4, what the pools can hold: (2+0) × 1 worker(s) × 2 instance(s)" in n["demand_from"]
        assert "so at most 4 connection(s) busy on average" in f.statement
        (server,) = pool_exhaustion.detect(ll.Evidence.from_frames(app=app, pool_size=2, max_connections=6))
        assert server.numbers["mean_busy_littles_law"] == 6
        assert "the server's 6 slot(s) for ordinary roles" in server.numbers["demand_from"]


class TestRecommend:
    def _advice(self, numbers: dict) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pool_exhaustion.recommend(
            ll.Finding("pool_exhaustion", "", numbers), None, lambda r, w: out.append((r, w))
        )
        return out

    def test_from_the_finding(self, leak):
        advice = self._advice(leak.numbers)
        assert advice[0][0].startswith("Fix the leak") and "3 connection(s) leaked" in advice[0][1]
        assert advice[1][0].startswith("Alert on the leak")
        rec = leak.numbers["recommended_pool_size"]
        sizing = [r for r, _ in advice[2:]]
        # sizing advice only when the size that fits differs from the configured one
        assert sizing == (
            [f"Size the pool at pool_size={rec} (with max_overflow for bursts) once the leak is fixed."]
            if rec != 5
            else []
        )

    def test_nothing_to_say(self):
        assert self._advice({"pool_size": 5, "recommended_pool_size": 5}) == []

    def test_server_refusals(self):
        ((rec, why),) = self._advice({"server_refusals": 4})
        assert "max_connections" in rec and why == "PostgreSQL refused 4 connection(s)."

    def test_gathered_by_the_postmortem(self, leak):
        table = ll.postmortem.recommendations([leak])
        assert set(table["finding"]) == {"pool_exhaustion"}
        assert table["recommendation"].to_list() == [r for r, _ in self._advice(leak.numbers)]


def test_registered_with_its_charts():
    assert DETECTORS["pool_exhaustion"] is pool_exhaustion
    assert ll.postmortem.EVIDENCE_CHARTS["pool_exhaustion"] == pool_exhaustion.CHARTS
    assert all(callable(getattr(ll.charts, name)) for name in pool_exhaustion.CHARTS)
