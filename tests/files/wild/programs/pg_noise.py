"""A real PostgreSQL server log holding the non-PostgreSQL lines servers write: archive_command
output (``cp: …``) and a memory-context dump (``TopMemoryContext: …``, written on out of memory).

Run from the repository root as ``.venv/bin/python tests/files/wild/programs/pg_noise.py``; writes
``tests/files/wild/pg15-noise.log``. The archive command copies into a directory that does not
exist; the server's address space is limited (``ulimit -v``) so that a large ``repeat()`` runs out
of memory.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from tests.pgserver import PgServer, find_pg_bin, free_port

OUT = Path(__file__).resolve().parents[1]


def main() -> None:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="loglib-pg-"))
    root.chmod(0o755)
    settings = {
        "log_destination": "'stderr'",
        "archive_mode": "on",
        "archive_command": "'cp %p /nonexistent/archive/%f'",
        "wal_level": "replica",
    }
    server = PgServer(root=root, port=free_port(), settings=settings, bin_dir=find_pg_bin())
    server.init()
    pg_ctl = server.bin_dir / "pg_ctl"
    start = f"ulimit -v 600000; {pg_ctl} -D {server.data_dir} -w -t 60 -l {root / 'pg_ctl.log'} start"
    subprocess.run(["runuser", "-u", "postgres", "--", "sh", "-c", start], check=True)
    try:
        dsn = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres application_name=report"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
            conn.execute("SELECT pg_switch_wal()")
            with contextlib.suppress(psycopg.errors.OutOfMemory, psycopg.OperationalError):
                conn.execute("SELECT length(repeat('x', 500000000))")
        server.wait_for_log("archive command failed", timeout=20)
        time.sleep(1.5)
    finally:
        server.stop()
    shutil.copy(server.log_dir / "postgresql.log", OUT / "pg15-noise.log")
    shutil.rmtree(server.root, ignore_errors=True)


if __name__ == "__main__":
    main()
