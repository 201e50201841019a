"""Against a real pgBouncer in front of a real PostgreSQL: every line of its log is read, and the
counts are the clients' own (logins, failed logins, closes, refusals, restarts by signal)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
from collections import Counter
from pathlib import Path

import polars as pl
import psycopg
import pytest

import loglib as ll
from tests.conftest import require
from tests.pgbouncerserver import PgBouncer, find_pgbouncer, running
from tests.pgserver import find_pg_bin, reset_close

pytestmark = [pytest.mark.postgres, pytest.mark.pgbouncer]

#: what an `other` line may be: pgBouncer's informational lines, none of them an event
OTHER_LINES = (
    r"^kernel file descriptor limit: ",
    r"^listening on ",
    r"^registered new auto-database: ",
    r"^no such user: ",
    r"^stale pidfile, removing$",
)


@pytest.fixture(scope="module")
def recorded():
    """A PostgreSQL and a pgBouncer in front of it (max_client_conn=6 so that refusals happen),
    driven once by :func:`_drive`: ``(bouncer, run)``."""
    require(find_pg_bin() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    require(find_pgbouncer() is not None, "pgbouncer")
    with running({"max_client_conn": "6"}) as b:
        yield b, _drive(b)


def _port(conn: psycopg.Connection) -> int:
    return socket.socket(fileno=os.dup(conn.fileno())).getsockname()[1]


def _drive(b: PgBouncer) -> dict:
    """Clients do things and keep their own record of what happened to them."""
    truth: Counter = Counter()
    ports: dict[str, list[int]] = {"closed": [], "dropped": []}
    for _ in range(3):  # clean sessions
        c = psycopg.connect(b.dsn())
        truth["login_ok"] += 1
        ports["closed"].append(_port(c))
        c.execute("select 1")
        c.close()
        truth["close"] += 1
    for user, password in (("app", "wrong"), ("app", "wrong"), ("nobody", "x")):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(b.dsn(user, password))
        truth["login_failed"] += 1
    victim = psycopg.connect(b.dsn("report"))  # a client that vanishes (TCP reset)
    truth["login_ok"] += 1
    victim.execute("select 1")
    reset_close(victim)
    truth["eof"] += 1
    # fill max_client_conn, then one more is refused
    held = [psycopg.connect(b.dsn()) for _ in range(6)]
    truth["login_ok"] += 6
    with pytest.raises(psycopg.OperationalError, match="max_client_conn"):
        psycopg.connect(b.dsn())
    truth["refused"] += 1
    for h in held[:3]:
        h.execute("select 1")  # three of them have a server connection when the pooler stops
    # deploy 1: SIGTERM (fast exit: the held clients are dropped without a close line)
    assert b.signal(signal.SIGTERM) is not None
    truth["dropped"] += len(held)
    truth["restart"] += 1
    for h in held:
        with contextlib.suppress(psycopg.Error):
            h.close()
    b.start()
    # deploy 2: SIGINT (graceful: it waits for server connections, then exits)
    busy = psycopg.connect(b.dsn())
    truth["login_ok"] += 1
    busy.execute("select 1")
    b.signal(signal.SIGINT, wait=False)
    b.wait_for_log("got SIGINT")
    busy.close()
    truth["close"] += 1
    assert b.wait_exit() == 0
    truth["restart"] += 1
    b.start()
    # deploy 3: SIGKILL (no shutdown line; the next start finds a stale pidfile)
    doomed = psycopg.connect(b.dsn())
    truth["login_ok"] += 1
    doomed.execute("select 1")
    b.signal(signal.SIGKILL)
    truth["dropped"] += 1
    truth["restart"] += 1
    with contextlib.suppress(psycopg.Error):
        doomed.close()
    b.start()
    last = psycopg.connect(b.dsn())
    truth["login_ok"] += 1
    last.execute("select 1")
    b.wait_for_log("LOG stats: ")
    last.close()
    truth["close"] += 1
    b.wait_for_log("client close request", count=truth["close"])
    b.signal(signal.SIGTERM)
    return {"truth": truth, "ports": ports}


def test_real_pgbouncer_every_line_and_the_clients_counts(recorded):
    bouncer, run = recorded
    truth = run["truth"]
    df = ll.read_pgbouncer_log(bouncer.log_path, strict=True)
    report = ll.read_report(df)
    assert report.lines_rejected == 0
    assert report.lines_read == report.lines_parsed == df.height
    assert report.lines_read == len(bouncer.log_path.read_text().splitlines())
    assert report.format == "stderr"
    assert df["ts"].null_count() == 0 and df["pid"].null_count() == 0
    assert df["event"].is_in(ll.PGBOUNCER_EVENT_KINDS).all()

    # every `other` line is one of pgBouncer's informational lines
    other = df.filter(pl.col("event") == "other")["message"].to_list()
    assert all(any(re.match(p, m) for p in OTHER_LINES) for m in other), other

    count = Counter(df["event"].to_list())
    closes = df.filter(pl.col("event") == "client_close")
    by_reason = Counter(closes["reason"].to_list())
    assert count["login_failed"] == truth["login_failed"] == 3
    assert set(df.filter(pl.col("event") == "login_failed")["reason"]) == {"password authentication failed"}
    # a failed login is attempted too; a refused client never gets that far
    assert count["login_attempt"] == truth["login_ok"] + truth["login_failed"]
    assert by_reason["client close request"] == truth["close"]
    assert by_reason["client unexpected eof"] == truth["eof"]
    assert by_reason["no more connections allowed (max_client_conn)"] == truth["refused"]
    # pgBouncer tells each refused or failed client why, and logs it as a pooler error
    errors = df.filter(pl.col("event") == "pooler_error")
    assert Counter(errors["reason"].to_list()) == {
        "no more connections allowed (max_client_conn)": truth["refused"],
        "password authentication failed": truth["login_failed"],
    }
    assert set(errors["level"]) == {"WARNING"}

    # four processes, four starts; three stopped with a line (SIGTERM twice, SIGINT), one was killed
    starts = df.filter(pl.col("event") == "pooler_start")
    assert starts.height == truth["restart"] + 1 == 4
    assert starts["pid"].to_list() == bouncer.pids
    assert starts["reason"].str.starts_with("PgBouncer 1.").all()
    shutdowns = df.filter(pl.col("event") == "pooler_shutdown")
    assert shutdowns.filter(pl.col("message").str.contains("fast exit")).height == 2
    assert shutdowns.filter(pl.col("message").str.starts_with("got SIGINT")).height == 1
    assert shutdowns["pid"].unique().sort().to_list() == sorted(set(bouncer.pids) - {bouncer.pids[2]})
    stale = df.filter(pl.col("message") == "stale pidfile, removing")
    assert stale["pid"].to_list() == [bouncer.pids[3]]

    # client rows carry the client's own port; server rows pgBouncer's port towards PostgreSQL
    clean = df.filter((pl.col("event") == "client_close") & (pl.col("reason") == "client close request"))
    assert set(run["ports"]["closed"]) <= set(clean["port"].to_list())
    assert (df.filter(pl.col("side") == "client")["conn"].str.starts_with("C-0x")).all()
    connects = df.filter(pl.col("event") == "server_connect")
    assert connects["local_port"].null_count() == 0
    pg = ll.read_pg_log(bouncer.pg.log_dir / "postgresql.log")
    received = pg.filter(pl.col("event") == "connection_received")["client_port"].to_list()
    assert sorted(connects["local_port"].to_list()) == sorted(received)
    assert (connects["port"] == bouncer.pg.port).all()

    stats = df.filter(pl.col("event") == "stats")
    assert stats.height >= 1
    assert (
        stats.select(pl.col("stats").struct.field("xacts_per_s", "queries_per_s", "wait_us"))
        .null_count()
        .sum_horizontal()
        .item()
        == 0
    )


def _as_syslog(path: Path, *, iso: bool) -> bytes:
    """The same lines as a syslog daemon writes them (``syslog = 1``): no level, ident[pid]."""
    out = []
    head = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\d\d:\d\d:\d\d)(\.\d+) UTC \[(\d+)\] \w+ (.*)$")
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    for text in path.read_text().splitlines():
        y, mo, d, hms, frac, pid, msg = head.match(text).groups()  # type: ignore[union-attr]
        stamp = f"{y}-{mo}-{d}T{hms}{frac}+00:00" if iso else f"{months[int(mo) - 1]} {int(d):>2} {hms}"
        out.append(f"{stamp} db1 pgbouncer[{pid}]: {msg}")
        out.append(f"{stamp} db1 sshd[99]: Accepted publickey for deploy")
    return ("\n".join(out) + "\n").encode()


def test_real_pgbouncer_syslog_forms_read_the_same(recorded):
    bouncer, _ = recorded
    plain = ll.read_pgbouncer_log(bouncer.log_path)
    year = plain["ts"][0].year
    for iso in (False, True):
        opts = {} if iso else {"year": year, "tz": "UTC"}
        df = ll.read_pgbouncer_log(_as_syslog(bouncer.log_path, iso=iso), strict=True, **opts)
        report = ll.read_report(df)
        assert report.format == "syslog"
        assert report.lines_rejected == plain.height  # the sshd lines, known noise
        assert report.unexplained.height == 0
        cols = ["pid", "side", "conn", "db", "user", "addr", "port", "event", "reason", "age_s", "local_port"]
        assert df.select(cols).equals(plain.select(cols))
        if iso:
            assert df["ts"].equals(plain["ts"])
        else:
            assert (df["ts"] == plain["ts"].dt.truncate("1s")).all()


def test_real_pgbouncer_processes_and_sessions(recorded):
    bouncer, run = recorded
    truth = run["truth"]
    pgb = ll.read_pgbouncer_log(bouncer.log_path)
    pg = ll.read_pg_log(bouncer.pg.log_dir / "postgresql.log")
    ev = ll.Evidence.from_frames(pg=pg, pgbouncer=pgb)
    procs = ll.pgbouncer_processes(ev)
    assert procs["pid"].to_list() == bouncer.pids
    assert procs["stopped"].to_list() == ["fast", "graceful", "killed", "fast"]
    assert procs["stale_pidfile"].to_list() == [False, False, True, False]
    assert procs["clients_dropped"].to_list() == [6, 0, 1, 0]  # the held six at SIGTERM, one at SIGKILL
    assert procs["servers_dropped"][0] >= 3  # the three held clients that had run a query
    # a killed pgBouncer is known dead when the next one writes its first line
    assert procs["end"][2] == pgb.filter(pl.col("pid") == bouncer.pids[3])["ts"].min()

    s = ll.pgbouncer_sessions(ev)
    clients = s.filter(pl.col("side") == "client")
    assert clients["logged_in"].sum() == truth["login_ok"]
    assert clients.filter(pl.col("end_event") == "login_failed").height == truth["login_failed"]
    assert clients.filter(pl.col("end_reason") == "client close request").height == truth["close"]
    assert set(run["ports"]["closed"]) <= set(
        clients.filter(pl.col("end_reason") == "client close request")["port"]
    )
    dropped = clients.filter(pl.col("end_event").is_in(["pooler_stopped", "pooler_killed"]))
    assert dropped.height == truth["dropped"]
    assert clients["open_at_end"].sum() == 0 and clients["started_before_log"].sum() == 0
    assert clients.filter(pl.col("logged_in"))["start"].null_count() == 0
    # every server connection is a PostgreSQL backend: the join finds each one's pid
    servers = s.filter(pl.col("side") == "server")
    backends = ll.pg_sessions(pg).filter(pl.col("client_port").is_not_null())
    assert servers["pg_pid"].null_count() == 0
    assert sorted(servers["pg_pid"].to_list()) == sorted(backends["pid"].to_list())
    assert (servers["end"] >= servers["start"]).all()


def test_real_pgbouncer_as_an_incident_source_and_on_the_timeline(recorded, tmp_path):
    bouncer, run = recorded
    shutil.copy(bouncer.log_path, tmp_path / "pgbouncer.log")
    shutil.copy(bouncer.pg.log_dir / "postgresql.log", tmp_path / "postgresql.log")
    (tmp_path / "incident.toml").write_text(
        'title = "pooler restarts"\n'
        '[[sources]]\nkind = "postgres"\npaths = ["postgresql.log"]\n'
        '[[sources]]\nkind = "pgbouncer"\nname = "bouncer"\npaths = ["pgbouncer.log"]\n'
    )
    inc = ll.Incident.load(tmp_path)
    assert inc.evidence.pgbouncer.height == len(bouncer.log_path.read_text().splitlines())
    assert inc.read_reports()["bouncer"].lines_rejected == 0
    assert (
        ll.pgbouncer_sessions(inc)["pg_pid"].null_count()
        == ll.pgbouncer_sessions(inc).filter(pl.col("side") == "client").height
    )  # every server session found its backend; clients have none

    tl = ll.timeline(inc).filter(pl.col("source") == "pgbouncer")
    restarts = tl.filter(pl.col("event") == "pgbouncer restart")["detail"].to_list()
    assert len(restarts) == 3
    assert "stopped fast" in restarts[0] and "6 client" in restarts[0]
    assert "stopped graceful" in restarts[1] and "got SIGINT" in restarts[1]
    assert "killed (no shutdown line)" in restarts[2] and "stale pidfile" in restarts[2]
    assert tl.filter(pl.col("event") == "pgbouncer stopped").height == 1
    errors = tl.filter(pl.col("event") == "pooler_error")
    assert errors["count"].sum() == run["truth"]["refused"] + run["truth"]["login_failed"]
    assert errors["evidence"].str.contains("pgbouncer.log:").all()
