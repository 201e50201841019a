"""Real incident fixtures for the incident tests: a SQLAlchemy app against a throwaway PostgreSQL.

Each scenario runs for a few seconds of real time and writes an incident folder: the app's
log (Python ``logging``, UTC ``asctime``), PostgreSQL's own log (``log_connections``,
``log_disconnections``, ``log_min_duration_statement = 0``), optionally a real Prometheus
``query_range`` answer, an ``incident.toml`` and ``truth.json`` (what the script did).

* ``pool-leak`` -- one request in 25 leaks its checked-out connection; the pool (size 3,
  overflow 1) fills and requests fail with pool timeouts; the operator restarts the app
  (its leaked sockets are reset); the leak resumes. Prometheus scrapes the pool gauge.
* ``deploy`` -- PostgreSQL is restarted under a running app (stale pooled connections fail
  for a moment), then the app is redeployed: the old process dies with connections open.
* ``idle-drops`` -- the app reaches PostgreSQL through a TCP proxy that resets connections
  idle for more than 1.5 s (a NAT/firewall idle timeout); the next use of such a pooled
  connection fails.
* ``healthy`` -- the same app with nothing wrong.

Run ``python -m tests.incidents tests/files/incidents`` to regenerate the committed copy
(needs the PostgreSQL server binaries; ``prometheus`` for pool-leak's metrics).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import shutil
import socket
import struct
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.pgserver import free_port, start_server

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def app_logger(path: Path, name: str = "shop.api") -> tuple[logging.Logger, logging.Handler]:
    fmt = logging.Formatter(LOG_FORMAT)
    fmt.converter = time.gmtime
    handler = logging.FileHandler(path)
    handler.setFormatter(fmt)
    log = logging.getLogger(name)
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    return log, handler


def reset_socket(fd: int) -> None:
    """Close a socket with a TCP RST (SO_LINGER 0): what a killed process's kernel does."""
    sock = socket.socket(fileno=os.dup(fd))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    sock.close()


def kill_connection(dbapi_conn) -> None:
    """Reset one psycopg connection's socket, then drop the object quietly."""
    with contextlib.suppress(Exception):
        reset_socket(dbapi_conn.fileno())
    with contextlib.suppress(Exception):
        dbapi_conn.close()


def settings_for_pg() -> dict[str, str]:
    return {"log_min_duration_statement": "0", "max_connections": "20"}


def copy_pg_log(server, out: Path) -> None:
    (out / "pg").mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)  # the logging collector writes asynchronously
    shutil.copy(server.log_dir / "postgresql.log", out / "pg" / "postgresql.log")


def write_toml(out: Path, title: str, body: str) -> None:
    head = f'title = "{title}"\n\n[[sources]]\nkind = "postgres"\npaths = ["pg/postgresql.log"]\n'
    head += 'prefix = "%m [%p] %q%u@%d "\n\n[[sources]]\nkind = "app"\npaths = ["app/app.log"]\ntz = "UTC"\n'
    (out / "incident.toml").write_text(head + body)


class Requests:
    """A tiny web app: worker threads serving requests on a SQLAlchemy engine, logging each one."""

    def __init__(self, engine, log: logging.Logger, *, leak_every: int = 0, gap=(0.05, 0.15)) -> None:
        self.engine = engine
        self.log = log
        self.leak_every = leak_every
        self.gap = gap
        self.leaked: list = []
        self.leak_times: list[float] = []
        self.n = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = 0

    def one(self, rng: random.Random) -> None:
        import sqlalchemy as sa

        with self.lock:
            self.n += 1
            leak = self.leak_every and self.n % self.leak_every == 0
        try:
            conn = self.engine.connect()
            conn.exec_driver_sql(f"select pg_sleep({round(rng.uniform(0.005, 0.03), 3)})")
            if leak:  # the bug: an error path that never closes the connection
                with self.lock:
                    self.leaked.append(conn)
                    self.leak_times.append(time.time())
                self.log.warning("order rejected: total exceeds limit")
                return
            conn.close()
            self.log.info("GET /orders 200")
        except sa.exc.SQLAlchemyError as exc:
            self.errors += 1
            self.log.error("GET /orders 503", exc_info=exc)

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            self.one(rng)
            time.sleep(rng.uniform(*self.gap))

    def run(self, seconds: float, threads: int = 3, seed: int = 0) -> None:
        self.stop.clear()
        ts = [threading.Thread(target=self.worker, args=(seed + i,)) for i in range(threads)]
        for t in ts:
            t.start()
        time.sleep(seconds)
        self.stop.set()
        for t in ts:
            t.join()


def pool_leak(out: Path) -> dict:
    import sqlalchemy as sa
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from tests.promserver import _get, _wait_ready

    out.mkdir(parents=True, exist_ok=True)
    (out / "app").mkdir(exist_ok=True)
    server = start_server(settings_for_pg())
    log, handler = app_logger(out / "app" / "app.log")
    reg = CollectorRegistry()
    checked_out = Gauge("db_pool_checked_out", "connections checked out", ["instance_name"], registry=reg)
    size = Gauge("db_pool_size", "pool size", ["instance_name"], registry=reg)
    app_port, prom_port = free_port(), free_port()
    http, _ = start_http_server(app_port, addr="127.0.0.1", registry=reg)
    root = Path(server.root) / "prom"
    root.mkdir()
    (root / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shop\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{app_port}']\n"
    )
    import subprocess

    proc = subprocess.Popen(
        [shutil.which("prometheus"), f"--config.file={root / 'prometheus.yml'}",
         f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{prom_port}"
    truth: dict = {"pool_size": 3, "max_overflow": 1}
    engine = sa.create_engine(server.url, pool_size=3, max_overflow=1, pool_timeout=0.3)
    state = {"engine": engine, "stop": False}

    def sample() -> None:
        while not state["stop"]:
            checked_out.labels("api-1").set(state["engine"].pool.checkedout())
            size.labels("api-1").set(4)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        _wait_ready(base, proc)
        deadline = time.monotonic() + 30
        while not json.loads(_get(base, "/api/v1/query", query='up{job="shop"}'))["data"]["result"]:
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not scrape the app")
            time.sleep(0.2)
        t0 = time.time()
        log.info("Application startup complete.")
        app = Requests(engine, log, leak_every=25)
        app.run(14, seed=1)
        restart = time.time()
        truth["restart"] = iso(restart)
        for conn in app.leaked:  # the process dies: its sockets are reset
            kill_connection(conn.connection.dbapi_connection)
        truth["leaks_before_restart"] = [iso(t) for t in app.leak_times]
        engine.pool.dispose()
        time.sleep(0.3)
        engine = sa.create_engine(server.url, pool_size=3, max_overflow=1, pool_timeout=0.3)
        state["engine"] = engine
        log.info("Application startup complete.")
        app2 = Requests(engine, log, leak_every=25)
        app2.run(6, seed=7)
        truth["leaks_after_restart"] = [iso(t) for t in app2.leak_times]
        t1 = time.time()
        time.sleep(2.5)
        answer = _get(base, "/api/v1/query_range", query='{job="shop",__name__=~"db_pool.*"}',
                      start=f"{t0 - 1:.3f}", end=f"{t1 + 1:.3f}", step="0.5")  # fmt: skip
        (out / "prometheus").mkdir(exist_ok=True)
        (out / "prometheus" / "pool.json").write_bytes(answer)
        for conn in app2.leaked:
            kill_connection(conn.connection.dbapi_connection)
        engine.dispose()
        truth.update(start=iso(t0), end=iso(t1), errors=app.errors + app2.errors)
        copy_pg_log(server, out)
    finally:
        state["stop"] = True
        sampler.join()
        proc.terminate()
        proc.wait(timeout=20)
        http.shutdown()
        log.removeHandler(handler)
        handler.close()
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
    write_toml(
        out,
        "Checkout 503s: leaked connections fill the pool",
        '\n[[sources]]\nkind = "prometheus"\npaths = ["prometheus/*.json"]\n\n'
        "[app]\npool_size = 3\nmax_overflow = 1\npool_timeout = 0.3\nworkers = 3\n\n"
        "[postgres]\nmax_connections = 20\n\n"
        f'[[events]]\nat = "{truth["restart"]}"\nkind = "restart"\ntext = "Operator restarted the service"\n',
    )
    return truth


def deploy(out: Path) -> dict:
    import sqlalchemy as sa

    out.mkdir(parents=True, exist_ok=True)
    (out / "app").mkdir(exist_ok=True)
    server = start_server(settings_for_pg())
    log, handler = app_logger(out / "app" / "app.log")
    truth: dict = {}
    try:
        t0 = time.time()
        log.info("Application startup complete.")
        engine = sa.create_engine(server.url, pool_size=4, max_overflow=0, pool_timeout=2)
        app = Requests(engine, log, gap=(0.1, 0.3))
        app.run(3, seed=2)
        # 1. PostgreSQL restarts under the running app (a managed-database maintenance)
        truth["pg_restart"] = iso(time.time())
        runner = threading.Thread(target=app.run, args=(6,), kwargs={"seed": 3})
        runner.start()
        server.restart("fast")
        runner.join()
        truth["errors_after_pg_restart"] = app.errors
        # 2. the app is redeployed: the old process dies holding its pooled connections
        deploy_at = time.time()
        truth["deploy"] = iso(deploy_at)
        for rec in list(engine.pool._pool.queue):
            kill_connection(rec.dbapi_connection)
        log.info("Shutting down")
        time.sleep(0.5)
        log.info("Application startup complete.")
        engine2 = sa.create_engine(server.url, pool_size=4, max_overflow=0, pool_timeout=2)
        app2 = Requests(engine2, log, gap=(0.1, 0.3))
        app2.run(4, seed=4)
        engine2.dispose()
        truth.update(start=iso(t0), end=iso(time.time()), errors=app.errors + app2.errors)
        copy_pg_log(server, out)
    finally:
        log.removeHandler(handler)
        handler.close()
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
    write_toml(
        out,
        "Flaky after deploys",
        "\n[app]\npool_size = 4\nmax_overflow = 0\n\n"
        f'[[events]]\nat = "{truth["deploy"]}"\nkind = "deploy"\ntext = "v2 deployed"\n',
    )
    return truth


class IdleProxy:
    """A TCP proxy that resets both sides of a connection idle for more than ``idle`` seconds."""

    def __init__(self, target_port: int, idle: float) -> None:
        self.target = ("127.0.0.1", target_port)
        self.idle = idle
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.pairs: dict[socket.socket, list] = {}
        self.drops: list[float] = []
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while not self.stop:
            socks = [self.listener, *self.pairs]
            readable, _, _ = select.select(socks, [], [], 0.02)
            now = time.time()
            for s in readable:
                if s is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(self.target)
                    state = [now]
                    self.pairs[client] = [upstream, state]
                    self.pairs[upstream] = [client, state]
                    continue
                if s not in self.pairs:
                    continue
                peer, state = self.pairs[s]
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.close_pair(s, reset=False)
                    continue
                state[0] = now
                with contextlib.suppress(OSError):
                    peer.sendall(data)
            for s in list(self.pairs):
                if s in self.pairs and now - self.pairs[s][1][0] > self.idle:
                    self.drops.append(now)
                    self.close_pair(s, reset=True)

    def close_pair(self, s: socket.socket, *, reset: bool) -> None:
        peer, _ = self.pairs.pop(s)
        self.pairs.pop(peer, None)
        for sock in (s, peer):
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        for s in list(self.pairs):
            if s in self.pairs:
                self.close_pair(s, reset=False)
        self.listener.close()


def idle_drops(out: Path, *, idle: float = 1.5) -> dict:
    import sqlalchemy as sa

    out.mkdir(parents=True, exist_ok=True)
    (out / "app").mkdir(exist_ok=True)
    server = start_server(settings_for_pg())
    proxy = IdleProxy(server.port, idle)
    log, handler = app_logger(out / "app" / "app.log")
    truth: dict = {"idle_timeout_s": idle}
    try:
        t0 = time.time()
        log.info("Application startup complete.")
        url = server.url.replace(f":{server.port}/", f":{proxy.port}/")
        engine = sa.create_engine(url, pool_size=2, max_overflow=0)
        app = Requests(engine, log)
        rng = random.Random(5)
        for _ in range(24):
            # a burst of work keeps the connections busy, then a pause of 0.2-3.5 s
            for _ in range(rng.randint(1, 4)):
                app.one(rng)
            time.sleep(rng.uniform(0.2, 3.5))
        engine.dispose()
        truth.update(
            start=iso(t0), end=iso(time.time()), errors=app.errors, drops=[iso(t) for t in proxy.drops]
        )
        copy_pg_log(server, out)
    finally:
        proxy.close()
        log.removeHandler(handler)
        handler.close()
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
    write_toml(out, "Connection resets after idle periods", "\n[app]\npool_size = 2\nmax_overflow = 0\n")
    return truth


def healthy(out: Path) -> dict:
    import sqlalchemy as sa

    out.mkdir(parents=True, exist_ok=True)
    (out / "app").mkdir(exist_ok=True)
    server = start_server(settings_for_pg())
    log, handler = app_logger(out / "app" / "app.log")
    try:
        t0 = time.time()
        log.info("Application startup complete.")
        engine = sa.create_engine(server.url, pool_size=3, max_overflow=1, pool_timeout=1)
        app = Requests(engine, log)
        app.run(8, seed=9)
        engine.dispose()
        truth = {"start": iso(t0), "end": iso(time.time()), "errors": app.errors}
        copy_pg_log(server, out)
    finally:
        log.removeHandler(handler)
        handler.close()
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
    write_toml(
        out, "A quiet day", "\n[app]\npool_size = 3\nmax_overflow = 1\n\n[postgres]\nmax_connections = 20\n"
    )
    return truth


SCENARIOS = {"pool-leak": pool_leak, "deploy": deploy, "idle-drops": idle_drops, "healthy": healthy}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/files/incidents")
    names = sys.argv[2:] or list(SCENARIOS)
    for name in names:
        folder = target / name
        shutil.rmtree(folder, ignore_errors=True)
        truth = SCENARIOS[name](folder)
        (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        print(f"{name}: {json.dumps(truth)[:300]}")
