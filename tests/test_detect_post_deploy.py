"""The post-deploy detector on its own (``loglib.analysis.findings.post_deploy``), on Evidence from frames."""

from __future__ import annotations

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.findings import DETECTORS, post_deploy
from tests.evidence_frames import REFUSED, REQUEST, SERVER_CLOSED, app_log, at, pg_log, session

DEPLOY_AT = 900.0
REQUESTS = [(10.0 * i, REQUEST) for i in range(180)]
#: after the deploy: three stale connections fail, then three connects are refused; one error 200 s before
AFTER = [(901.0, SERVER_CLOSED), (901.5, SERVER_CLOSED), (902.0, SERVER_CLOSED)]
AFTER += [(903.0, REFUSED), (905.0, REFUSED), (908.25, REFUSED)]
BEFORE = [(700.0, SERVER_CLOSED)]
#: SQLAlchemy's own note about the same connection, below error level: not another failed request
NOTE = [(901.1, "WARNING sqlalchemy.pool.impl.QueuePool: server closed the connection unexpectedly")]
RESET = "LOG:  could not receive data from client: Connection reset by peer"


def _deploy(at_s: float = DEPLOY_AT) -> pl.DataFrame:
    return pl.DataFrame({"ts": [at(at_s)], "kind": ["deploy"], "text": ["v2.4.1"]})


def _pg() -> pl.DataFrame:
    """Five pooled sessions open since the start: two closed cleanly at the deploy, three reset."""
    lines = []
    for pid in (11, 12):
        lines += session(pid, 1.0, DEPLOY_AT + 2, statements=[100.0])
    for pid in (13, 14, 15):
        lines += session(pid, 1.0, DEPLOY_AT + 1, statements=[100.0], end_line=RESET)
    return pg_log(lines)


@pytest.fixture(scope="module")
def after_deploy() -> ll.Finding:
    ev = ll.Evidence.from_frames(app=app_log(REQUESTS + AFTER + BEFORE + NOTE), pg=_pg(), events=_deploy())
    (found,) = post_deploy.detect(ev)
    return found


class TestErrorsAfterADeploy:
    def test_errors_by_class_and_recovery(self, after_deploy):
        n = after_deploy.numbers
        assert (n["at"], n["event"], n["origin"]) == (at(DEPLOY_AT), "deploy", "declared")
        assert n["errors"] == 6 and n["errors_by_class"] == {"server_closed": 3, "connection_refused": 3}
        assert n["errors_before"] == 1
        assert n["recovery_s"] == pytest.approx(8.25)
        assert (after_deploy.start, after_deploy.end) == (at(DEPLOY_AT), at(908.25))
        assert after_deploy.evidence["since_s"].to_list() == pytest.approx([1.0, 1.5, 2.0, 3.0, 5.0, 8.25])
        assert (
            "After the deploy at 10:15:00 UTC (v2.4.1), 6 connection error(s) followed"
            in after_deploy.statement
        )

    def test_how_the_old_connections_closed(self, after_deploy):
        n = after_deploy.numbers
        assert (n["closed_clean"], n["closed_dropped"]) == (2, 3)
        assert n["closed_by_reason"] == {"disconnection": 2, "client_reset": 3}
        assert "partly gracefully: 2 clean disconnection(s), 3 reset/terminated" in after_deploy.statement

    def test_a_quiet_deploy_is_no_finding(self):
        ev = ll.Evidence.from_frames(app=app_log(REQUESTS + BEFORE), events=_deploy())
        assert post_deploy.detect(ev) == []

    def test_errors_as_frequent_before_are_no_finding(self):
        """As many errors in the 5 minutes before as after: the deploy changed nothing."""
        before = [(DEPLOY_AT - 300 + 40.0 * i, SERVER_CLOSED) for i in range(7)]
        ev = ll.Evidence.from_frames(app=app_log(REQUESTS + AFTER + before), events=_deploy())
        assert post_deploy.detect(ev) == []

    def test_no_deploy_no_finding(self):
        assert post_deploy.detect(ll.Evidence.from_frames(app=app_log(REQUESTS + AFTER))) == []

    def test_a_postgres_restart_in_its_log(self):
        """No declared event: PostgreSQL's own shutdown and start lines are the moment."""
        restart = [
            (DEPLOY_AT, 1, "LOG:  received fast shutdown request"),
            (DEPLOY_AT + 0.5, 1, "LOG:  database system is shut down"),
            (DEPLOY_AT + 2, 2, "LOG:  database system is ready to accept connections"),
        ]
        ev = ll.Evidence.from_frames(app=app_log(REQUESTS + AFTER), pg=pg_log(restart))
        (f,) = post_deploy.detect(ev)
        assert (f.numbers["event"], f.numbers["origin"], f.numbers["errors"]) == ("restart", "postgres", 6)


class TestBaseline:
    """Issue 12 defect 8: the quiet time before a deploy starts strictly after the previous
    deploy's last error (an off-by-one at the window's start counted that error)."""

    ERRORS = [(300.0 + s, SERVER_CLOSED) for s in (1, 2, 3)] + [(400.0 + s, SERVER_CLOSED) for s in (1, 2, 3)]

    def _evidence(self) -> ll.Evidence:
        deploys = pl.DataFrame({"ts": [at(300), at(400)], "kind": ["deploy"] * 2, "text": ["v1", "v2"]})
        return ll.Evidence.from_frames(app=app_log(REQUESTS + self.ERRORS), events=deploys)

    def test_the_previous_deploys_last_error_is_not_in_the_baseline(self):
        """Deploy v1's errors end at 303 s; v2 (400 s) had none in the quiet time before it: both
        deploys are findings, each with 0 errors before, as compare_deploys counts them."""
        found = [f for f in post_deploy.detect(self._evidence()) if "at" in f.numbers]
        assert [(f.numbers["at"], f.numbers["errors"], f.numbers["errors_before"]) for f in found] == [
            (at(300), 3, 0),
            (at(400), 3, 0),
        ]
        assert "3 connection error(s) followed (3 server_closed) against 0 in the quiet time before" in (
            found[1].statement
        )
        compared = ll.compare_deploys(self._evidence())
        assert compared.select("errors", "errors_before").rows() == [(3, 0), (3, 0)]


class TestRecommend:
    def _advice(self, numbers: dict, pre_ping: bool | None = None) -> list[str]:
        out: list[str] = []
        post_deploy.recommend(ll.Finding("post_deploy", "", numbers), pre_ping, lambda r, w: out.append(r))
        return out

    def test_from_the_finding(self, after_deploy):
        advice = self._advice(after_deploy.numbers)
        assert advice[0].startswith("Roll the application only after PostgreSQL accepts connections")
        assert advice[1].startswith("Enable pool_pre_ping=True")

    def test_pre_ping_already_on(self, after_deploy):
        assert not any("pool_pre_ping" in a for a in self._advice(after_deploy.numbers, pre_ping=True))

    def test_terminated_queries(self):
        assert self._advice({"errors_by_class": {"admin_shutdown": 2}})[0].startswith("Drain the application")


def test_registered_with_its_charts():
    assert DETECTORS["post_deploy"] is post_deploy
    assert ll.postmortem.EVIDENCE_CHARTS["post_deploy"] == post_deploy.CHARTS
    assert all(callable(getattr(ll.charts, name)) for name in post_deploy.CHARTS)
