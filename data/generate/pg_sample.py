"""Generate ``data/sample-pg/``: a real PostgreSQL log of a connection leak, in compressed time.

A throwaway PostgreSQL 15 (``log_connections``, ``log_disconnections``, stderr + csvlog +
jsonlog) runs under libfaketime at 60x speed starting 2026-11-21 08:00 UTC, so three hours of
server time pass in three real minutes. Every line in the output was written by PostgreSQL.

The client is a small "web app" with psycopg: short request connections, of which one in
``LEAK_EVERY`` is leaked (opened on an error path and never closed). The leaked connections
pile up until the server refuses new ones ("too many clients"); an operator restarts the app
(the process dies: its sockets are reset), the leak starts again, and finally a fix lands and
the remaining leaked sessions are terminated with ``pg_terminate_backend``.

Run: ``python data/generate/pg_sample.py`` (needs the PostgreSQL server binaries and
``apt-get install faketime``; runs as root by starting the server as the ``postgres`` user).
The ground truth it knows is written to ``data/sample-pg/truth.json``. The app connects as
the non-superuser role ``checkout``, so the operator (superuser) can still use the reserved slots.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.pgserver import PgServer, find_pg_bin, free_port, reset_close  # noqa: E402

OUT = ROOT / "data" / "sample-pg"
SPEED = 60  # server seconds per real second
START = "2026-11-21 08:00:00"
REQUESTS_PER_SECOND = 4  # real time: 4 requests per server minute
LEAK_EVERY = 12  # one request in 12 leaks its connection: ~20 leaks per server hour
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def drop_real_clock_lines(path: Path, first: str, last: str) -> int:
    """Drop the few lines the postmaster stamps with the real clock (a libfaketime quirk in its
    signal handlers: e.g. "database system is ready to accept connections"). Every other line
    is kept byte for byte. Returns how many lines were dropped."""
    kept, dropped = [], 0
    stamp = re.compile(r'^"?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)|"timestamp":"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)')
    for line in path.read_text().splitlines(keepends=True):
        m = stamp.search(line)
        ts = m and (m[1] or m[2])
        if ts and not (first <= ts <= last):
            dropped += 1
            continue
        kept.append(line)
    path.write_text("".join(kept))
    return dropped


def server_now(dsn: str) -> str:
    with psycopg.connect(dsn, application_name="ops-console") as c:
        return c.execute(
            "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        ).fetchone()[0]


def main() -> None:
    bin_dir = find_pg_bin()
    if bin_dir is None or not Path(FAKETIME_LIB).exists():
        sys.exit("needs PostgreSQL server binaries and libfaketime (apt-get install faketime)")
    root = Path("/tmp/loglib-sample-pg")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    root.chmod(0o755)
    server = PgServer(root=root, port=free_port(), bin_dir=bin_dir,
                      settings={"max_connections": "20", "superuser_reserved_connections": "3"})  # fmt: skip
    server.init()
    os.environ["LD_PRELOAD"] = FAKETIME_LIB
    os.environ["FAKETIME"] = f"@{START} x{SPEED}"
    server.start()
    del os.environ["LD_PRELOAD"]
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("create role checkout login")
    dsn_app = f"host=127.0.0.1 port={server.port} user=checkout dbname=postgres application_name=checkout-api"
    truth: dict = {"speed": SPEED, "leak_every": LEAK_EVERY, "leaks": [], "events": []}
    leaked: list[psycopg.Connection] = []
    refused = 0
    served = 0

    def run_phase(real_seconds: float, leaking: bool) -> None:
        nonlocal refused, served
        end = time.monotonic() + real_seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            try:
                conn = psycopg.connect(dsn_app, connect_timeout=2)
            except psycopg.OperationalError:
                refused += 1
                time.sleep(1 / REQUESTS_PER_SECOND)
                continue
            now = conn.execute(
                "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), pg_sleep(0.01)"
            ).fetchone()[0]
            served += 1
            if leaking and n % LEAK_EVERY == 0:
                leaked.append(conn)  # the bug: an exception path that never closes the session
                truth["leaks"].append(now)
            else:
                conn.close()
            time.sleep(1 / REQUESTS_PER_SECOND)

    try:
        run_phase(95, leaking=True)  # ~95 server minutes: fills 17 slots, then refusals
        truth["events"].append({"at": server_now(server.dsn), "kind": "restart",
                                "text": "operator restarts checkout-api (process killed)"})  # fmt: skip
        for conn in leaked:
            reset_close(conn)
        leaked.clear()
        run_phase(50, leaking=True)
        truth["events"].append({"at": server_now(server.dsn), "kind": "deploy",
                                "text": "fix deployed: sessions closed in a finally block"})  # fmt: skip
        with psycopg.connect(server.dsn, application_name="ops-console", autocommit=True) as ops:
            ops.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                        "where application_name = 'checkout-api' and pid <> pg_backend_pid()")  # fmt: skip
        for conn in leaked:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        leaked.clear()
        run_phase(35, leaking=False)
        time.sleep(1)  # let the logging collector flush
        # copy before stopping: under libfaketime the postmaster's shutdown lines carry the real clock
        OUT.mkdir(parents=True, exist_ok=True)
        for name in ("postgresql.log", "postgresql.csv", "postgresql.json"):
            shutil.copy(server.log_dir / name, OUT / name)
            (OUT / name).chmod(0o644)
        last = server_now(server.dsn).replace("T", " ").rstrip("Z")
        truth["dropped_real_clock_lines"] = {
            name: drop_real_clock_lines(OUT / name, START, last)
            for name in ("postgresql.log", "postgresql.csv", "postgresql.json")
        }
    finally:
        server.stop("fast")
    truth.update(served=served, refused=refused, leaked_total=len(truth["leaks"]))
    (OUT / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {OUT}: {served} served, {refused} refused, {len(truth['leaks'])} leaked")


if __name__ == "__main__":
    main()
