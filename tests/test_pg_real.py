"""Against a real PostgreSQL 15: the connection story it logs is the one the test caused,
and stderr, csvlog and jsonlog give the same sessions."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import polars as pl
import psycopg
import pytest

import loglib as ll
from tests.pgserver import reset_close

pytestmark = pytest.mark.postgres


def _port(conn: psycopg.Connection) -> int:
    return socket.socket(fileno=os.dup(conn.fileno())).getsockname()[1]


@pytest.fixture
def story(pg_server):
    """Drive the server through clean, killed, reset, timed-out and refused connections."""
    admin = psycopg.connect(pg_server.dsn, autocommit=True, application_name="admin")
    admin.execute("create role app login")
    app_dsn = f"host=127.0.0.1 port={pg_server.port} user=app dbname=postgres application_name=api"
    truth: dict[str, list[int]] = {"clean": [], "admin": [], "reset": [], "idle_tx": [], "idle_session": []}
    for _ in range(3):
        with psycopg.connect(app_dsn) as c:
            truth["clean"].append(_port(c))
            c.execute("select 1")
    victim = psycopg.connect(app_dsn)
    truth["admin"].append(_port(victim))
    admin.execute("select pg_terminate_backend(%s)", (victim.info.backend_pid,))
    resetter = psycopg.connect(app_dsn)
    truth["reset"].append(_port(resetter))
    reset_close(resetter)
    idle_tx = psycopg.connect(app_dsn)
    truth["idle_tx"].append(_port(idle_tx))
    idle_tx.execute("set idle_in_transaction_session_timeout = '300ms'")
    idle_tx.execute("begin")
    idle_tx.execute("select 1")
    idle_s = psycopg.connect(app_dsn, autocommit=True)
    truth["idle_session"].append(_port(idle_s))
    idle_s.execute("set idle_session_timeout = '300ms'")
    time.sleep(1.0)
    # exhaust the server: app takes the 16 unreserved slots left (admin holds one), then more fail
    refused = {"reserved": 0, "too_many": 0}
    held = [psycopg.connect(app_dsn) for _ in range(16)]
    with pytest.raises(psycopg.OperationalError, match="reserved"):
        psycopg.connect(app_dsn)
    refused["reserved"] += 1
    # the superuser may use the reserved slots, until there are none
    with pytest.raises(psycopg.OperationalError, match="too many clients"):
        for _ in range(5):
            held.append(psycopg.connect(pg_server.dsn))  # noqa: PERF401 (held must keep the ones that worked)
    refused["too_many"] += 1
    held_ports = [_port(c) for c in held]
    pg_server.stop("fast")  # open sessions end with the server
    for c in [*held, admin, idle_tx, idle_s, victim]:
        with contextlib.suppress(psycopg.Error):
            c.close()
    return pg_server, truth, refused, held_ports


def _sessions(path, **kw) -> pl.DataFrame:
    events = ll.read_pg_log(path, strict=True, **kw)
    return ll.pg_sessions(events)


class TestRealServer:
    def test_events_and_end_reasons_match_what_happened(self, story):
        """Each kind of ending the test caused is named, for exactly the right connections."""
        server, truth, refused, held_ports = story
        events = ll.read_pg_log(server.log_dir / "postgresql.log", prefix="%m [%p] %q%u@%d ", strict=True)
        counts = dict(events.group_by("event").len().iter_rows())
        assert counts["reserved_slots"] == refused["reserved"]
        assert counts["too_many_clients"] == refused["too_many"]
        assert counts["client_reset"] == 1
        assert counts["idle_in_transaction_timeout"] == 1
        assert counts["idle_session_timeout"] == 1
        assert counts["server_shutdown"] >= 1
        sessions = ll.pg_sessions(events)
        by_port = {r["client_port"]: r for r in sessions.iter_rows(named=True)}
        expected = {"clean": "disconnection", "admin": "admin_termination", "reset": "client_reset",
                    "idle_tx": "idle_timeout", "idle_session": "idle_timeout"}  # fmt: skip
        for kind, reason in expected.items():
            for port in truth[kind]:
                assert by_port[port]["end_reason"] == reason, kind
                assert by_port[port]["user"] == "app"
                assert by_port[port]["application"] == "api"
        for port in held_ports:
            assert by_port[port]["end_reason"] == "server_shutdown"
        assert sessions.filter(pl.col("end_reason") == "rejected").height == 2
        assert not sessions["open_at_end"].any()

    def test_three_formats_give_the_same_sessions(self, story):
        """stderr, csvlog and jsonlog of one server yield identical sessions."""
        server = story[0]
        cols = ["pid", "start", "end", "user", "database", "application", "client_host", "client_port",
                "end_reason", "open_at_end"]  # fmt: skip
        stderr = _sessions(server.log_dir / "postgresql.log").select(cols).sort("pid", "start")
        csv = _sessions(server.log_dir / "postgresql.csv").select(cols).sort("pid", "start")
        jsn = _sessions(server.log_dir / "postgresql.json").select(cols).sort("pid", "start")
        assert stderr.height >= 27
        assert stderr.equals(csv)
        assert stderr.equals(jsn)

    def test_connection_counts(self, story):
        """Per-minute new connections equal the received lines; concurrency peaks at max_connections."""
        server = story[0]
        events = ll.read_pg_log(server.log_dir / "postgresql.json")
        table = ll.pg_connections(events, every="1m")
        assert table["new_connections"].sum() == (events["event"] == "connection_received").sum()
        # every slot was taken (max_connections = 20); a refused attempt is itself a backend for a
        # moment (PostgreSQL forks it, then it says "too many clients"), so one more may overlap
        assert 20 <= table["open_max"].max() <= 21
