"""compare_deploys on frames built by hand: one row per deploy, its errors, what restarted and how."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl

import loglib as ll

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _pgb(lines: list[tuple[float, int, str]]) -> bytes:
    return "".join(
        f"{_at(s):%Y-%m-%d %H:%M:%S}.{_at(s).microsecond // 1000:03d} UTC [{pid}] LOG {msg}\n"
        for s, pid, msg in lines
    ).encode()


UP = "process up: PgBouncer 1.18.0, libevent 2.1.12-stable (epoll)"
PGBOUNCER = _pgb(
    [
        (0, 100, UP),
        (5, 100, "C-0x1: shop/app@10.0.0.5:5001 login attempt: db=shop user=app tls=no"),
        (6, 100, "C-0x2: shop/app@10.0.0.5:5002 login attempt: db=shop user=app tls=no"),
        (60, 100, "got SIGTERM, fast exit"),  # deploy 1: drops both clients
        (62, 101, UP),
        (63, 101, "C-0x1: shop/app@10.0.0.5:5003 login attempt: db=shop user=app tls=no"),
        (300, 101, "C-0x1: shop/app@10.0.0.5:5003 closing because: client close request (age=237s)"),
        (300, 101, "got SIGINT, shutting down"),  # deploy 2: drained first, graceful
        (300.5, 101, "server connections dropped, exiting"),
        (301, 102, UP),
        (310, 102, "C-0x1: shop/app@10.0.0.5:5004 login attempt: db=shop user=app tls=no"),
        (600, 103, "stale pidfile, removing"),  # deploy 3 (598 s): SIGKILL, one client dropped
        (600.1, 103, UP),
        (601, 103, "C-0x9: (nodb)/(nouser)@10.0.0.5:5005 pooler error: pgbouncer cannot connect to server"),
        (1190, 103, "C-0x1: shop/app@10.0.0.5:5006 login attempt: db=shop user=app tls=no"),
        (1199, 103, "C-0x1: shop/app@10.0.0.5:5006 closing because: client unexpected eof (age=9s)"),
    ]
)


def _app(errors: list[float], starts: list[float], stops: tuple[float, ...] = ()) -> pl.DataFrame:
    rows = [
        {"time": _at(s).isoformat(), "level": "ERROR", "logger": "api",
         "message": 'db error: connection failed: connection to server at "10.0.0.2", port 6432 failed: Connection refused'}
        for s in errors
    ] + [
        {"time": _at(s).isoformat(), "level": "INFO", "logger": "uvicorn", "message": "Application startup complete."}
        for s in starts
    ] + [
        {"time": _at(s).isoformat(), "level": "INFO", "logger": "uvicorn", "message": "Shutting down"}
        for s in stops
    ]  # fmt: skip
    rows.sort(key=lambda r: r["time"])
    return ll.read_app_log("\n".join(json.dumps(r) for r in rows).encode() + b"\n", service="api")


def _deploys(*seconds: float) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [_at(s) for s in seconds], "kind": "deploy", "text": [f"v{i}" for i in range(len(seconds))]}
    )


def test_deploys_side_by_side():
    app = _app(errors=[60.5, 61, 61.5, 599, 600], starts=[0, 1203])
    ev = ll.Evidence.from_frames(
        app=app, pgbouncer=ll.read_pgbouncer_log(PGBOUNCER), events=_deploys(60, 300, 598, 1200)
    )
    cmp = ll.compare_deploys(ev)
    assert cmp.columns == ll.schema.DEPLOY_COMPARISON.names
    assert cmp["text"].to_list() == ["v0", "v1", "v2", "v3"]
    assert cmp["errors"].to_list() == [3, 0, 2, 0]
    assert cmp["errors_before"].to_list() == [0, 0, 0, 0]
    assert cmp["recovery_s"].to_list() == [1.5, None, 2.0, None]
    assert cmp["first_error"][0] == _at(60.5) and cmp["last_error"][2] == _at(600)
    assert cmp["restarted"].to_list() == [["pgbouncer"], ["pgbouncer"], ["pgbouncer"], ["app"]]
    assert cmp["pgbouncer_stopped"].to_list() == ["fast", "graceful", "killed", None]
    # the app came up again with no stop line before: killed, as its restart event says
    assert cmp["app_stopped"].to_list() == [None, None, None, "killed"]
    assert ev.events.filter(pl.col("origin") == "app")["stopped"].to_list() == [None, "killed"]
    assert cmp["sessions_dropped"].to_list() == [2, 0, 1, 1]
    assert cmp["pooler_errors"].to_list() == [0, 0, 1, 0]
    assert cmp["postgres_stopped"].null_count() == 4
    assert ll.compare_deploys(ev) is cmp  # computed once per Evidence


def test_an_unexplained_pgbouncer_restart_is_a_row_of_its_own_and_a_clean_app_restart_is_graceful():
    app = _app(errors=[60.5], starts=[0, 1203], stops=(1201,))  # its stop line, then its start
    ev = ll.Evidence.from_frames(
        app=app,
        pgbouncer=ll.read_pgbouncer_log(PGBOUNCER[: PGBOUNCER.index(b"\n", PGBOUNCER.index(b"[102]")) + 1]),
    )
    cmp = ll.compare_deploys(ev)
    # no declared deploys: the detected app restart and the two pgBouncer restarts
    assert cmp["origin"].to_list() == ["pgbouncer", "pgbouncer", "app"]
    assert cmp["kind"].to_list() == ["restart"] * 3
    assert cmp["text"][0] == "pgBouncer stopped (fast) and restarted"
    assert cmp["restarted"].to_list() == [["pgbouncer"], ["pgbouncer"], ["app"]]
    assert cmp["app_stopped"].to_list() == [None, None, "graceful"]
    assert cmp["errors"].to_list() == [1, 0, 0]


def test_postgres_restarts_and_how_it_stopped():
    pg = ll.read_pg_log(
        b"2024-03-01 10:01:00.000 UTC [1] LOG:  received fast shutdown request\n"
        b"2024-03-01 10:01:01.000 UTC [1] LOG:  database system is shut down\n"
        b"2024-03-01 10:01:03.000 UTC [9] LOG:  database system is ready to accept connections\n"
        b"2024-03-01 10:10:00.000 UTC [9] LOG:  server process (PID 77) was terminated by signal 9: Killed\n"
        b"2024-03-01 10:10:00.100 UTC [9] LOG:  terminating any other active server processes\n"
        b"2024-03-01 10:10:02.000 UTC [9] LOG:  database system is ready to accept connections\n"
    )
    cmp = ll.compare_deploys(ll.Evidence.from_frames(pg=pg, events=_deploys(59, 598)))
    assert cmp["restarted"].to_list() == [["postgres"], ["postgres"]]
    assert cmp["postgres_stopped"].to_list() == ["fast", "killed"]
    assert cmp["sessions_dropped"].to_list() == [0, 0]


def test_nothing_to_compare():
    assert ll.compare_deploys(ll.Evidence.from_frames(app=_app([], [0]))).height == 0
