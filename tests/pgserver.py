"""A throwaway PostgreSQL server for tests: initdb in a temp dir, a high loopback port, real logs.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` OS user (``runuser -u postgres --``). Used by every test that needs real server
output (``tests/conftest.py`` exposes it as the ``pg_server`` fixture).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "logging_collector": "on",
    "log_directory": "'log'",
    "log_filename": "'postgresql.log'",
    "log_destination": "'stderr,csvlog,jsonlog'",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "log_timezone": "'UTC'",
    "max_connections": "20",
    "superuser_reserved_connections": "3",
    "log_rotation_size": "0",
    "log_rotation_age": "0",
    "fsync": "off",
    "shared_buffers": "16MB",
    "lc_messages": "'C'",
}


def reset_close(conn) -> None:
    """Drop a client connection with a TCP RST, as a killed client on a busy host does (SO_LINGER 0).

    The socket's own descriptor is pointed at /dev/null first, so libpq's goodbye goes nowhere
    and the last close of the socket (our duplicate) sends the reset. PostgreSQL then logs
    "could not receive data from client: Connection reset by peer".
    """
    import socket
    import struct

    fd = conn.fileno()
    sock = socket.socket(fileno=os.dup(fd))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    sock.close()
    with contextlib.suppress(Exception):
        conn.close()


def find_pg_bin() -> Path | None:
    """The directory holding initdb/pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "pg_ctl").exists():
            return cand
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """One running server. ``log_dir`` holds ``postgresql.log``, ``.csv`` and ``.json``."""

    root: Path
    port: int
    settings: dict[str, str] = field(default_factory=dict)
    bin_dir: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            msg = f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
            raise RuntimeError(msg)
        return done

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C")  # fmt: skip
        conf = {**DEFAULT_SETTINGS, "port": str(self.port), **self.settings}
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-l", str(self.root / "pg_ctl.log"),
                  "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def wait_for_log(self, needle: str, name: str = "postgresql.log", timeout: float = 10) -> None:
        """Wait until the server has written ``needle`` (the logging collector writes asynchronously)."""
        deadline = time.monotonic() + timeout
        path = self.log_dir / name
        while time.monotonic() < deadline:
            if path.exists() and needle in path.read_text(errors="replace"):
                return
            time.sleep(0.05)
        msg = f"{needle!r} did not appear in {path} within {timeout}s"
        raise TimeoutError(msg)


def start_server(settings: dict[str, str] | None = None, root: Path | None = None) -> PgServer:
    """Create and start a server; the caller stops it (``server.stop()``)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        msg = "PostgreSQL server binaries (initdb, pg_ctl) not found"
        raise RuntimeError(msg)
    # a directory the postgres OS user can enter (pytest's tmp_path is private to root)
    root = root or Path(tempfile.mkdtemp(prefix="loglib-pg-"))
    root.chmod(0o755)
    server = PgServer(root=root, port=free_port(), settings=settings or {}, bin_dir=bin_dir)
    server.init()
    server.start()
    return server
