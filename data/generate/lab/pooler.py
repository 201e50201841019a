"""pgBouncer in front of the lab's PostgreSQL: the app's role and database, logging on.

The lab's app connects as ``checkout`` to database ``shop`` through pgBouncer, which connects
to PostgreSQL as the same role (``auth_type = trust``: the lab's PostgreSQL trusts loopback,
and pgBouncer still needs the user in its ``auth_file``). Connections, disconnections, pooler
errors and stats are logged, as an operator who wants to read them later sets it up. It runs
as ``postgres`` when started as root (``tests/pgbouncerserver.py``).

>>> conf = bouncer_config(6432, 5432, {"pool_mode": "session", "default_pool_size": 9,
...                       "max_client_conn": 100, "stats_period": 60}, root=Path("/tmp/x"))
>>> conf.splitlines()[1], "pool_mode = session" in conf
('shop = host=127.0.0.1 port=5432 dbname=shop', True)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.pgbouncerserver import PgBouncer


def bouncer_config(port: int, pg_port: int, settings: dict, *, root: Path) -> str:
    """pgbouncer.ini text for the lab: ``settings`` is the scenario's ``pgbouncer`` dict."""
    conf = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(root / "userlist.txt"),
        "logfile": str(root / "pgbouncer.log"),
        "pidfile": str(root / "pgbouncer.pid"),
        "pool_mode": settings["pool_mode"],
        "default_pool_size": str(settings["default_pool_size"]),
        "max_client_conn": str(settings["max_client_conn"]),
        "log_connections": "1",
        "log_disconnections": "1",
        "log_pooler_errors": "1",
        "log_stats": "1",
        "stats_period": str(settings["stats_period"]),
        "server_login_retry": "1",
    }
    lines = ["[databases]", f"shop = host=127.0.0.1 port={pg_port} dbname=shop", "[pgbouncer]"]
    return "\n".join(lines + [f"{k} = {v}" for k, v in conf.items()]) + "\n"


class LabBouncer(PgBouncer):
    """A :class:`tests.pgbouncerserver.PgBouncer` with the lab's configuration."""

    lab_settings: dict

    def write_config(self) -> None:
        (self.root / "userlist.txt").write_text('"checkout" ""\n')
        self.ini.write_text(bouncer_config(self.port, self.pg.port, self.lab_settings, root=self.root))
        self.log_path.touch()
        if os.geteuid() == 0:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, "postgres", "postgres")

    def close_gracefully(self) -> None:
        """SIGTERM (pgBouncer logs its shutdown), SIGKILL if it is still there after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            return
        try:
            self.signal(signal.SIGTERM, timeout=20)
        except subprocess.TimeoutExpired:
            self.close()
