"""compare_deploys on a real recording: an app working through a real pgBouncer in front of a real
PostgreSQL, four deploys, two of which restart pgBouncer abruptly (SIGTERM, SIGKILL), one restarts
only the app and one restarts pgBouncer gracefully after draining the app."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import psycopg
import pytest

import loglib as ll
from tests.conftest import require
from tests.pgbouncerserver import PgBouncer, find_pgbouncer, running
from tests.pgserver import find_pg_bin

pytestmark = [pytest.mark.postgres, pytest.mark.pgbouncer]
#: deploys closer than findings.post_deploy.MOMENT_GAP (5 s) are one deploy: keep them further apart
MOMENT_GAP = 6.0


class App:
    """A worker with one long-lived connection through pgBouncer, writing a JSON log as apps do."""

    def __init__(self, dsn: str, log: Path) -> None:
        self.dsn, self.log = dsn, log
        self.lock = threading.Lock()
        self.ok = 0
        self.errors: list[str] = []
        self.thread: threading.Thread | None = None
        self.stop_flag = threading.Event()

    def write(self, level: str, logger: str, message: str) -> None:
        record = {"time": datetime.now(UTC).isoformat(), "level": level, "logger": logger, "message": message}
        with self.lock, self.log.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def start(self) -> None:
        self.stop_flag.clear()
        self.write("INFO", "uvicorn", "Application startup complete.")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """A graceful shutdown: the worker finishes and closes its connection."""
        self.stop_flag.set()
        assert self.thread is not None
        self.thread.join(timeout=30)
        self.write("INFO", "uvicorn", "Shutting down")

    def _run(self) -> None:
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute("select 1")
                self.ok += 1
            except psycopg.Error as exc:
                self.errors.append(str(exc))
                self.write("ERROR", "api", f"db error: {exc}".splitlines()[0])
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()

    def wait_ok(self, more: int = 5, timeout: float = 120) -> None:
        """Wait until the worker has done ``more`` successful queries (it has recovered). The wait
        ends at recovery, so the timeout only says when to give up: at load 15+ on 2 cores 30 s
        was too short for a worker that was recovering (the fixture failed at setup)."""
        want = self.ok + more
        deadline = time.monotonic() + timeout
        while self.ok < want:
            if time.monotonic() > deadline:
                msg = f"the app did not recover: {self.errors[-3:]}"
                raise TimeoutError(msg)
            time.sleep(0.02)


def _restart(b: PgBouncer, sig: signal.Signals, down: float) -> None:
    b.signal(sig)
    time.sleep(down)  # the deploy's gap: the pooler is down while the new one comes up
    b.start()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    require(find_pg_bin() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    require(find_pgbouncer() is not None, "pgbouncer")
    folder = tmp_path_factory.mktemp("deploys")
    deploys: list[tuple[datetime, str]] = []
    with running() as b:
        app = App(b.dsn(), folder / "app.log")
        app.start()
        app.wait_ok(20)
        deploys.append((datetime.now(UTC), "v1: pgBouncer restarted with SIGTERM"))
        _restart(b, signal.SIGTERM, 0.5)
        app.wait_ok(20)
        time.sleep(MOMENT_GAP)
        deploys.append((datetime.now(UTC), "v2: app only"))
        app.stop()
        app.start()
        app.wait_ok(20)
        time.sleep(MOMENT_GAP)
        deploys.append((datetime.now(UTC), "v3: pgBouncer killed"))
        _restart(b, signal.SIGKILL, 0.5)
        app.wait_ok(20)
        time.sleep(MOMENT_GAP)
        deploys.append((datetime.now(UTC), "v4: app drained, pgBouncer restarted with SIGINT"))
        app.stop()
        _restart(b, signal.SIGINT, 0.5)
        app.start()
        app.wait_ok(20)
        app.stop()
        shutil.copy(b.log_path, folder / "pgbouncer.log")  # pgBouncer still runs: no fifth stop
        shutil.copy(b.pg.log_dir / "postgresql.log", folder / "postgresql.log")
    events = "".join(
        f'[[events]]\nat = "{at.isoformat()}"\nkind = "deploy"\ntext = "{text}"\n' for at, text in deploys
    )
    (folder / "incident.toml").write_text(
        'title = "deploys through pgBouncer"\n'
        '[[sources]]\nkind = "app"\npaths = ["app.log"]\nservice = "api"\n'
        '[[sources]]\nkind = "postgres"\npaths = ["postgresql.log"]\n'
        '[[sources]]\nkind = "pgbouncer"\npaths = ["pgbouncer.log"]\n' + events
    )
    return folder, app


def test_the_deploys_that_restarted_pgbouncer_abruptly_brought_the_errors(recording):
    folder, app = recording
    inc = ll.Incident.load(folder)
    cmp = ll.compare_deploys(inc)
    assert cmp["kind"].to_list() == ["deploy"] * 4
    assert cmp["restarted"].to_list() == [["pgbouncer"], ["app"], ["pgbouncer"], ["app", "pgbouncer"]]
    assert cmp["pgbouncer_stopped"].to_list() == ["fast", None, "killed", "graceful"]
    assert cmp["app_stopped"].to_list() == [None, "graceful", None, "graceful"]
    errors = cmp["errors"].to_list()
    assert errors[0] > 0 and errors[2] > 0
    assert errors[1] == 0 and errors[3] == 0
    assert sum(errors) == len(app.errors)  # every error the app logged, attributed to its deploy
    assert cmp["errors_before"].to_list() == [0, 0, 0, 0]
    assert (cmp["recovery_s"][0] > 0) and cmp["recovery_s"][1] is None
    # the app's connection was dropped by the abrupt restarts, closed by the app in the others
    assert cmp["sessions_dropped"].to_list() == [1, 0, 1, 0]
    # PostgreSQL saw little wrong: pgBouncer's server connections were idle outside a transaction,
    # and a backend whose client process dies mostly logs a plain disconnection (sometimes, when the
    # exit races the socket, a reset); the app-only and the drained deploys dropped nothing there
    dropped = cmp["pg_sessions_dropped"].to_list()
    assert dropped[1] == dropped[3] == 0 and dropped[0] <= 1 and dropped[2] <= 1
    assert cmp["pooler_errors"].to_list() == [0, 0, 0, 0]  # a pooler that is down refuses nothing itself
    # the same deploys on the timeline
    tl = ll.timeline(inc)
    assert tl.filter(tl["event"] == "pgbouncer restart").height == 3


def test_the_charts_mark_pgbouncers_restarts_and_what_followed_each_deploy(recording):
    folder, _app = recording
    inc = ll.Incident.load(folder)
    marks = inc.evidence.marks
    pgb = marks.filter(pl.col("origin") == "pgbouncer")
    assert pgb["kind"].to_list() == ["restart"] * 3
    assert [t.split(",")[0] for t in pgb["text"]] == [
        "pgBouncer stopped (fast) and restarted", "pgBouncer stopped (killed", "pgBouncer stopped (graceful) and restarted"
    ]  # fmt: skip
    cmp = ll.compare_deploys(inc)
    declared = marks.filter(pl.col("origin") == "declared")
    for detail, errors in zip(declared["detail"], cmp["errors"], strict=True):
        assert detail.startswith(f"{errors} connection error(s) after it; restarted: ")
    # every chart draws them: the error chart's restart markers include pgBouncer's three, and
    # a deploy's hover says what followed it
    fig = ll.charts.error_rate(inc)
    hovers = [c[0] for t in fig.data if t.name in ("restart", "deploy") for c in t.customdata]
    assert sum(h.startswith("pgBouncer stopped") for h in hovers) == 3
    assert sum("connection error(s) after it" in h for h in hovers) == 4
    lines = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]
    assert len(lines) >= 4 + 3


def test_the_finding_names_what_the_deploys_with_errors_share(recording):
    """v1 (SIGTERM) and v3 (SIGKILL) brought errors, v2 (app only) and v4 (drained, SIGINT) did
    not: what only v1 and v3 did is stop pgBouncer abruptly and drop the app's session."""
    folder, app = recording
    inc = ll.Incident.load(folder)
    compared = next(f for f in ll.findings(inc) if f.kind == "post_deploy" and "shared" in f.numbers)
    shared = compared.numbers["shared"]
    assert {"pgbouncer_abrupt", "sessions_dropped", "pool:postgres/app"} <= set(shared)
    assert set(shared) <= {"pgbouncer_abrupt", "sessions_dropped", "pool:postgres/app", "pg_sessions_dropped"}
    assert compared.numbers["errors"] == len(app.errors)
    assert "pgBouncer was stopped abruptly" in compared.statement
    assert [w.split(" at ")[0] for w in compared.numbers["with_errors"]] == [
        "v1: pgBouncer restarted with SIGTERM", "v3: pgBouncer killed"
    ]  # fmt: skip
    recs = ll.postmortem.recommendations(ll.findings(inc), inc)
    mine = recs.filter(pl.col("because").str.contains("In the deploys with errors"))
    assert mine["recommendation"].str.contains("PAUSE").any()
    assert mine["recommendation"].str.contains("Drain before anything restarts").any()
    assert recs["recommendation"].str.contains("backoff").any()
