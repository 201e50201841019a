"""Restarts from the application's own lines (issue 12 defect 6), on frames built by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.restarts import app_lifecycle

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _app(rows: list[tuple[float, str, str]]) -> pl.DataFrame:
    """(seconds, file, message) rows as an app frame."""
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=s) for s, _, _ in rows],
            "file": [f for _, f, _ in rows],
            "message": [m for _, _, m in rows],
            "service": ["api"] * len(rows),
            "line": list(range(1, len(rows) + 1)),
        }
    )


def _kinds(events: pl.DataFrame) -> list[tuple[float, str]]:
    return [((t - T0).total_seconds(), k) for t, k in events.select("ts", "kind").iter_rows()]


def test_graceful_restart_is_stamped_at_the_stop_line():
    ev = app_lifecycle(_app([(0, "a", "api 1.0 starting pid 10"), (5, "a", "GET / 200"),
                             (30, "a", "received SIGTERM, shutting down"), (30.1, "a", "api 1.0 stopped"),
                             (33, "a", "api 1.1 starting pid 11")]))  # fmt: skip
    assert _kinds(ev) == [(0, "note"), (30, "restart")]
    assert "graceful" in ev["text"][1]


def test_a_stop_with_nothing_after_it_is_a_stop():
    ev = app_lifecycle(_app([(0, "a", "Started server process [7]"), (9, "a", "Shutting down")]))
    assert _kinds(ev) == [(0, "note"), (9, "note")]
    assert "stopped" in ev["text"][1]


def test_a_killed_process_restarts_at_its_start_line():
    ev = app_lifecycle(_app([(0, "a", "Booting worker with pid: 7"), (4, "a", "GET / 200"),
                             (20, "a", "Booting worker with pid: 8")]))  # fmt: skip
    assert _kinds(ev) == [(0, "note"), (20, "restart")]
    assert "killed" in ev["text"][1]


def test_other_processes_first_starts_are_not_restarts():
    ev = app_lifecycle(_app([(0, "a", "api starting pid 1"), (7, "b", "api starting pid 2"),
                             (14, "c", "api starting pid 3"), (20, "c", "GET / 200")]))  # fmt: skip
    assert {k for _, k in _kinds(ev)} == {"note"}


def test_a_rolling_restart_of_two_processes_is_one_restart():
    ev = app_lifecycle(_app([(0, "a", "api starting pid 1"), (1, "b", "api starting pid 2"),
                             (60, "a", "received SIGTERM, shutting down"), (63, "a", "api starting pid 3"),
                             (63.1, "b", "received SIGTERM, shutting down"), (66, "b", "api starting pid 4")]))  # fmt: skip
    restarts = ev.filter(pl.col("kind") == "restart")
    assert restarts.height == 1 and "2 processes" in restarts["text"][0]
    assert (restarts["ts"][0] - T0).total_seconds() == 60


@pytest.mark.parametrize(
    ("log", "kinds"),
    [
        (
            b"2024-03-01 10:00:00 UTC [1] LOG:  database system is ready to accept connections\n"
            b"2024-03-01 10:05:00 UTC [1] LOG:  received fast shutdown request\n"
            b"2024-03-01 10:05:01 UTC [1] LOG:  database system is shut down\n",
            ["note", "note"],
        ),
        (
            b"2024-03-01 10:05:00 UTC [1] LOG:  received fast shutdown request\n"
            b"2024-03-01 10:05:01 UTC [1] LOG:  database system is shut down\n"
            b"2024-03-01 10:05:04 UTC [9] LOG:  database system is ready to accept connections\n",
            ["restart"],
        ),
    ],
)
def test_postgres_final_shutdown_is_not_a_restart(log, kinds):
    assert ll.detect_events(pg=ll.read_pg_log(log))["kind"].to_list() == kinds


def _sessions_log(reconnect: bool) -> bytes:
    head = "2024-03-01 10:{} UTC [{}] app@shop LOG:  "
    lines = [
        head.format(f"00:0{i}.000", 100 + i) + "connection authorized: user=app database=shop"
        for i in range(6)
    ]
    lines += [
        head.format(f"04:00.{i}00", 100 + i)
        + f"disconnection: session time: 0:04:00.000 user=app database=shop host=10.0.0.1 port={5000 + i}"
        for i in range(6)
    ]
    if reconnect:
        lines.append(head.format("04:03.000", 200) + "connection authorized: user=app database=shop")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(("reconnect", "kind"), [(True, "restart"), (False, "note")])
def test_sessions_ending_at_once_are_a_restart_only_if_the_app_comes_back(reconnect, kind):
    pg = ll.read_pg_log(_sessions_log(reconnect), prefix="%m [%p] %q%u@%d ")
    mass = ll.detect_events(pg=pg).filter(pl.col("origin") == "connections")
    assert mass["kind"].to_list() == [kind]


def test_one_process_restarting_twice_quickly_is_two_restarts_then_a_stop():
    ev = app_lifecycle(_app([(0, "a", "api starting pid 1"), (10, "a", "received SIGTERM, shutting down"),
                             (11, "a", "api starting pid 2"), (24, "a", "received SIGTERM, shutting down"),
                             (26, "a", "api starting pid 3"), (30, "a", "Shutting down")]))  # fmt: skip
    assert _kinds(ev) == [(0, "note"), (10, "restart"), (24, "restart"), (30, "note")]


def test_a_home_grown_name_version_starting_line_is_a_start():
    ev = app_lifecycle(_app([(0, "a", "checkout-api 1.4.2 starting on port 8000: pool_size=5"),
                             (30, "a", "checkout-api 1.4.2 stopped"),
                             (31, "a", "checkout-api 1.4.2 starting on port 8000: pool_size=5")]))  # fmt: skip
    assert _kinds(ev) == [(0, "note"), (30, "restart")]


@pytest.mark.parametrize(("service", "kinds"), [("app", []), ("billing", ["restart"])])
def test_an_app_that_logs_its_own_restarts_is_not_restarted_by_its_sessions_ending(service, kinds):
    """Issue 12 defect 6 (lab mixed-41: 'invented 18:22:08'): a middlebox resetting a pool's idle
    connections together looks like the app dying. When that app's own log has start/stop lines
    and none says it restarted, its sessions ending at once are not a restart. Another app's are."""
    pg = ll.read_pg_log(_sessions_log(True), prefix="%m [%p] %q%u@%d ")
    app = pl.DataFrame({"ts": [datetime(2024, 3, 1, 9, 59, tzinfo=UTC)], "file": ["app.log"], "line": [1],
                        "message": [f"{service} 1.0.0 starting pid 7"], "service": [service]})  # fmt: skip
    mass = ll.detect_events(pg=pg, app=app).filter(pl.col("origin") == "connections")
    assert mass["kind"].to_list() == kinds


BOUNCER_KILLED = b"""\
2024-03-01 10:00:00.000 UTC [7] LOG process up: PgBouncer 1.18.0, libevent 2.1.12-stable (epoll)
2024-03-01 10:00:01.000 UTC [7] LOG C-0x1: shop/app@127.0.0.1:40000 login attempt: db=shop user=app tls=no
2024-03-01 10:00:01.010 UTC [7] LOG S-0x2: shop/app@127.0.0.1:5432 new connection to server (from 127.0.0.1:60906)
2024-03-01 10:00:30.000 UTC [7] LOG stats: 1 xacts/s, 2 queries/s, in 100 B/s, out 100 B/s, xact 100 us, query 50 us, wait 0 us
2024-03-01 10:00:49.000 UTC [9] LOG stale pidfile, removing
2024-03-01 10:00:49.010 UTC [9] LOG process up: PgBouncer 1.18.0, libevent 2.1.12-stable (epoll)
"""
PG_UNDER_KILLED = b"""\
2024-03-01 10:00:01.011 UTC [501] LOG:  connection received: host=127.0.0.1 port=60906
2024-03-01 10:00:01.012 UTC [501] LOG:  connection authorized: user=app database=shop
2024-03-01 10:00:45.500 UTC [501] LOG:  unexpected EOF on client connection with an open transaction
2024-03-01 10:00:45.500 UTC [501] LOG:  disconnection: session time: 0:00:44.488 user=app database=shop host=127.0.0.1 port=60906
"""


def test_a_killed_pgbouncer_restarts_when_its_server_sessions_died():
    """pgBouncer killed by SIGKILL writes nothing; its restart is stamped when PostgreSQL saw its
    server sessions end (10:00:45.5), not at the next process's first line 3.5 s later (lab pgbouncer-60:
    the post-deploy errors of that restart were before its stamp and went uncounted)."""
    pg = ll.read_pg_log(PG_UNDER_KILLED, prefix="%m [%p] ")
    bouncer = ll.read_pgbouncer_log(BOUNCER_KILLED)
    got = ll.detect_events(pg=pg, pgbouncer=bouncer).filter(pl.col("origin") == "pgbouncer")
    assert got.select("ts", "kind").rows() == [
        (datetime(2024, 3, 1, 10, 0, 45, 500000, tzinfo=UTC), "restart")
    ]
    alone = ll.detect_events(pgbouncer=bouncer)
    assert alone.select("ts", "kind").rows() == [(datetime(2024, 3, 1, 10, 0, 49, tzinfo=UTC), "restart")]


def test_an_evidence_pairs_sessions_once_for_its_events(monkeypatch):
    """Event detection takes the Evidence's own sessions instead of pairing them again (issue 19:
    ~31 s of a 1 GB report went to pairing the same sessions a second time)."""
    import loglib.analysis.sessions as sessions_module

    calls = []
    real = sessions_module.pg_sessions
    monkeypatch.setattr(sessions_module, "pg_sessions", lambda pg: calls.append(1) or real(pg))
    pg = ll.read_pg_log(_sessions_log(True), prefix="%m [%p] %q%u@%d ")
    ev = ll.Evidence.from_frames(pg=pg, pgbouncer=ll.read_pgbouncer_log(BOUNCER_KILLED))
    assert ev.sessions is not None
    mass = ev.events.filter(pl.col("origin") == "connections")
    assert mass["kind"].to_list() == ["restart"]
    assert ll.detect_events(pg=pg).filter(pl.col("origin") == "connections")["kind"].to_list() == ["restart"]
    assert len(calls) == 2  # once for the Evidence, once for the bare detect_events call


def test_lifecycle_lines_search_once_and_match_both_patterns() -> None:
    """One search of the app frame's messages serves the restarts, the services that log their
    restarts and the final stops, and finds exactly the lines START or STOP finds (issue 19)."""
    import glob

    from loglib.analysis import restarts
    from loglib.analysis.events import detect_events
    from loglib.formats.lifecycle import APP_LIFECYCLE_PATTERN, APP_START_PATTERN, APP_STOP_PATTERN

    messages = []
    for path in sorted(glob.glob("data/incidents/*/app/*.log")):
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        messages += [ln[:300] for ln in text.splitlines()]
    messages += [
        "received SIGTERM",
        "Shutting down",
        "x Shutting down",
        "api v1.2 starting",
        "Started A in 3 seconds",
    ]
    m = pl.Series(messages)
    both = m.str.contains(APP_START_PATTERN) | m.str.contains(APP_STOP_PATTERN)
    assert both.sum() > 5
    assert m.str.contains(APP_LIFECYCLE_PATTERN).equals(both)

    searches: list[str] = []
    t = lambda s: datetime(2026, 1, 1, 10, 0, s, tzinfo=UTC)  # noqa: E731
    app = pl.DataFrame(
        {"ts": [t(0), t(9), t(12), t(40)],
         "message": ["api starting pid 1", "received SIGTERM, shutting down", "api starting pid 2", "received SIGTERM"],
         "service": ["api"] * 4, "file": ["app.log"] * 4, "line": [1, 2, 3, 4]}
    )  # fmt: skip
    from polars.expr.string import ExprStringNameSpace

    original = ExprStringNameSpace.contains

    def counting(self, pattern, *args, **kwargs):  # type: ignore[no-untyped-def]
        if pattern in (APP_LIFECYCLE_PATTERN, APP_STOP_PATTERN):
            searches.append(pattern)
        return original(self, pattern, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExprStringNameSpace, "contains", counting)
        detect_events(app=app)
        restarts.final_stops(app)
    assert searches == [APP_LIFECYCLE_PATTERN]
