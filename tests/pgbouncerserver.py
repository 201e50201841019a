"""A throwaway pgBouncer for tests: a temp dir, a high loopback port, in front of a throwaway PostgreSQL.

pgBouncer refuses to run as root, so as root it is started with ``-u postgres`` (it switches
user itself, so the process the test signals is pgBouncer and not a wrapper). Connection,
disconnection, pooler-error and stats logging are on; restarts by SIGTERM, SIGINT and SIGKILL
are what a deploy does to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.pgserver import PgServer, free_port, start_server

#: the users pgBouncer knows (auth_file); PostgreSQL itself trusts everyone
USERS = {"app": "secret", "report": "hunter2"}
DEFAULT_SETTINGS = {
    "listen_addr": "127.0.0.1",
    "unix_socket_dir": "",
    "auth_type": "md5",
    "pool_mode": "session",
    "log_connections": "1",
    "log_disconnections": "1",
    "log_pooler_errors": "1",
    "log_stats": "1",
    "stats_period": "1",
    "max_client_conn": "20",
    "default_pool_size": "20",
    "server_login_retry": "1",
}


def find_pgbouncer() -> str | None:
    """The pgbouncer binary (Debian puts it in /usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if os.access(p, os.X_OK)), None
    )


@dataclass
class PgBouncer:
    """One pgBouncer configuration; :meth:`start` may be called again after every stop."""

    root: Path
    port: int
    pg: PgServer
    binary: str
    settings: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.root / "pgbouncer.log"

    @property
    def ini(self) -> Path:
        return self.root / "pgbouncer.ini"

    def dsn(self, user: str = "app", password: str | None = None, dbname: str = "postgres") -> str:
        password = USERS.get(user, "x") if password is None else password
        return (
            f"host=127.0.0.1 port={self.port} user={user} password={password} dbname={dbname} "
            "sslmode=disable gssencmode=disable connect_timeout=10"
        )

    def write_config(self) -> None:
        (self.root / "userlist.txt").write_text("".join(f'"{u}" "{p}"\n' for u, p in USERS.items()))
        conf = {
            **DEFAULT_SETTINGS,
            "listen_port": str(self.port),
            "auth_file": str(self.root / "userlist.txt"),
            "logfile": str(self.log_path),
            "pidfile": str(self.root / "pgbouncer.pid"),
            **self.settings,
        }
        lines = ["[databases]", f"* = host=127.0.0.1 port={self.pg.port} user=postgres", "[pgbouncer]"]
        lines += [f"{k} = {v}" for k, v in conf.items()]
        self.ini.write_text("\n".join(lines) + "\n")
        self.log_path.touch()
        if os.geteuid() == 0:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, "postgres", "postgres")

    def start(self, timeout: float = 30) -> None:
        """Start pgBouncer and wait for its own "process up" line (no probe connection: every
        connection would be in the log)."""
        cmd = [self.binary, *(["-u", "postgres"] if os.geteuid() == 0 else []), str(self.ini)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.pids.append(self.proc.pid)
        needle = f"[{self.proc.pid}] LOG process up:"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                msg = f"pgbouncer exited with {self.proc.returncode}: {self.proc.stderr.read()}"  # type: ignore[union-attr]
                raise RuntimeError(msg)
            time.sleep(0.05)
        msg = f"pgbouncer did not log 'process up' within {timeout}s"
        raise TimeoutError(msg)

    def signal(self, sig: signal.Signals, *, wait: bool = True, timeout: float = 30) -> int | None:
        """Send ``sig`` to the running pgBouncer; with ``wait``, wait for it to exit."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        if not wait:
            return None
        code = self.proc.wait(timeout=timeout)
        self.proc.stderr.close()  # type: ignore[union-attr]
        self.proc = None
        return code

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self.proc.stderr.close()  # type: ignore[union-attr]
        self.proc = None
        return code

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 15) -> None:
        """Wait until ``needle`` is in the log ``count`` times (pgBouncer writes unbuffered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.read_text(errors="replace").count(needle) >= count:
                return
            time.sleep(0.05)
        msg = f"{needle!r} did not appear {count} time(s) in {self.log_path} within {timeout}s"
        raise TimeoutError(msg)

    def close(self) -> None:
        """Stop pgBouncer if it still runs (SIGKILL: nothing of it is needed any more)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


def start_pgbouncer(
    pg: PgServer, settings: dict[str, str] | None = None, root: Path | None = None
) -> PgBouncer:
    """Configure and start a pgBouncer in front of ``pg``; the caller calls ``close()``."""
    binary = find_pgbouncer()
    if binary is None:
        msg = "pgbouncer not found (apt-get install pgbouncer)"
        raise RuntimeError(msg)
    root = root or Path(tempfile.mkdtemp(prefix="loglib-pgb-"))
    root.chmod(0o755)
    bouncer = PgBouncer(root=root, port=free_port(), pg=pg, binary=binary, settings=settings or {})
    bouncer.write_config()
    bouncer.start()
    return bouncer


@contextmanager
def running(settings: dict[str, str] | None = None) -> Iterator[PgBouncer]:
    """A fresh PostgreSQL with a pgBouncer in front of it, both removed afterwards."""
    pg = start_server()
    bouncer = None
    try:
        bouncer = start_pgbouncer(pg, settings)
        yield bouncer
    finally:
        if bouncer is not None:
            bouncer.close()
            shutil.rmtree(bouncer.root, ignore_errors=True)
        pg.stop("immediate")
        shutil.rmtree(pg.root, ignore_errors=True)
