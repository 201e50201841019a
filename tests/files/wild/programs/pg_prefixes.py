"""Real PostgreSQL server logs for tests/files/wild: one log per log_line_prefix setting.

Run from the repository root as ``.venv/bin/python tests/files/wild/programs/pg_prefixes.py``:
starts a throwaway server (tests/pgserver.py) once per prefix, runs the same small session
(connect, a multi-line statement that fails, an administrator's termination, a disconnection),
and copies the server's log to ``tests/files/wild/pg15-<name>.log``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
import contextlib

from tests.pgserver import start_server

OUT = Path(__file__).resolve().parents[1]

PREFIXES = {
    "cloudsql-text": "%m [%p]: [%l-1] db=%d,user=%u,host=%h ",
    "azure-flexible": "%t-%c-",
    "user-db-app-client": "user=%u, db=%d, app=%a, client=%h ",
    "epoch": "%n [%p] ",
    "m-colon-p": "%m : %p : ",
    "t-p-l-user-at-db": "%t [%p-%l] %q%u@%d ",
}


def session(port: int) -> None:
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres application_name=orders-api"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT 1")
        with contextlib.suppress(psycopg.errors.UndefinedTable):
            conn.execute("SELECT id,\n       total\n  FROM orders\n WHERE id = 1")
    victim = psycopg.connect(dsn, autocommit=True)
    with psycopg.connect(dsn, autocommit=True) as admin:
        pid = victim.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.3)
    with contextlib.suppress(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()


#: localised servers (lc_messages), each with the Debian prefix; needs the locale generated (locale-gen)
LOCALISED = {"de": "de_DE.UTF-8", "fr": "fr_FR.UTF-8", "ru": "ru_RU.UTF-8"}


def main() -> None:
    runs = [(name, prefix, "C") for name, prefix in PREFIXES.items()]
    runs += [(f"lc-{lang}", "%m [%p] %q%u@%d ", locale) for lang, locale in LOCALISED.items()]
    only = set(sys.argv[1:])
    for name, prefix, lc in runs:
        if only and name not in only:
            continue
        settings = {"log_line_prefix": f"'{prefix}'", "log_destination": "'stderr'", "lc_messages": f"'{lc}'"}
        if name == "lc-de":  # the German server also writes csvlog and jsonlog
            settings["log_destination"] = "'stderr,csvlog,jsonlog'"
        server = start_server(settings)
        try:
            session(server.port)
            time.sleep(0.5)
        finally:
            server.stop()
        shutil.copy(server.log_dir / "postgresql.log", OUT / f"pg15-{name}.log")
        for ext in ("csv", "json"):
            if name == "lc-de":
                shutil.copy(server.log_dir / f"postgresql.{ext}", OUT / f"pg15-{name}.{ext}")
        shutil.rmtree(server.root, ignore_errors=True)
        print(name, "done")


if __name__ == "__main__":
    main()
