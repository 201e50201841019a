"""Record one lab scenario from real software into an incident folder (``python data/generate/lab/record.py``).

On loopback ports and in a temp dir: PostgreSQL 15 (``tests/pgserver.py``) logging as the
scenario says, optionally ``prometheus-postgres-exporter`` and a real Prometheus, optionally the
idle-killing middlebox (``proxy.py``), 1-3 processes of ``labapp.py`` and a load driver. The
orchestrator runs the scenario's restarts, crashes and deploys (with or without a PostgreSQL
restart) and writes each to its own truth stream. At the end the folder gets ``incident.toml``
(as the README shows), the logs gzipped, ``query_range`` exports, the raw truth streams
(``truth/*.jsonl.gz``, never named in ``incident.toml``) and ``truth.json`` (``truth.py``).

Usage::

    python data/generate/lab/record.py leak 11                  # one scenario into data/lab/leak-11
    python data/generate/lab/record.py leak 11 --at 17:57:30    # its load starts then (UTC, today)
    python data/generate/lab/record.py leak 1 --smoke --out /tmp/lab   # 70 s smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT), str(HERE.parent)]

import psycopg  # noqa: E402

from lab.params import Action, Scenario, draw, split_of  # noqa: E402
from lab.pooler import LabBouncer  # noqa: E402
from lab.proxy import IdleKillProxy  # noqa: E402
from lab.toml import write_incident_toml  # noqa: E402
from lab.truth import build_truth, store_streams  # noqa: E402
from tests.pgbouncerserver import find_pgbouncer  # noqa: E402
from tests.pgserver import PgServer, find_pg_bin, free_port  # noqa: E402

LAB = ROOT / "data" / "lab"
#: share of requests per path (``params`` sizes leak probabilities with the same numbers)
PATHS = (("/checkout", "POST", 0.6), ("/report", "GET", 0.15), ("/catalog", "GET", 0.25))
APP_SCRAPE, PG_SCRAPE, STEP = "2s", "5s", "5"


def pick_path(x: float) -> tuple[str, str]:
    """The path and method of a request, for ``x`` uniform in [0, 1).

    >>> pick_path(0.1), pick_path(0.7), pick_path(0.99)
    (('/checkout', 'POST'), ('/report', 'GET'), ('/catalog', 'GET'))
    """
    acc = 0.0
    for path, method, share in PATHS:
        acc += share
        if x < acc:
            return path, method
    return PATHS[-1][0], PATHS[-1][1]


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def wait_until(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    msg = f"timed out waiting for {what}"
    raise RuntimeError(msg)


class Recorder:
    """One scenario's run; ``run()`` records it into ``out``."""

    def __init__(self, sc: Scenario, out: Path, start_at: float | None = None) -> None:
        self.sc, self.out, self.start_at = sc, out, start_at
        self.tmp = Path(tempfile.mkdtemp(prefix=f"loglib-lab-{sc.name}-"))
        self.tmp.chmod(0o755)
        self.truth_dir = self.tmp / "truth"
        self.logs = self.tmp / "logs"
        for d in (self.truth_dir, self.logs / "app", self.logs / "pool"):
            d.mkdir(parents=True)
        self.orch = (self.truth_dir / "orchestrator.jsonl").open("a", buffering=1)
        self.client = (self.truth_dir / "client.jsonl").open("a", buffering=1)
        self.client_lock = threading.Lock()
        self.procs: list[subprocess.Popen] = []  # helpers: exporter, prometheus
        self.apps: dict[int, subprocess.Popen | None] = {}
        self.ports = {i: free_port() for i in range(sc.processes)}
        self.version = sc.version
        self.leaks = dict(sc.leak_paths)
        self.proxy: IdleKillProxy | None = None
        self.bouncer: LabBouncer | None = None

    def note(self, ev: str, **fields: object) -> float:
        t = time.time()
        self.orch.write(json.dumps({"t": t, "ev": ev, **fields}) + "\n")
        return t

    # --- servers -------------------------------------------------------------------------
    def start_pg(self) -> None:
        sc = self.sc
        dest = {"stderr": "stderr", "csvlog": "csvlog", "jsonlog": "jsonlog"}[sc.pg_format]
        settings = {"log_destination": f"'{dest}'", "max_connections": str(max(30, sc.capacity * sc.processes + 12)),
                    "log_timezone": f"'{sc.pg_timezone}'"}  # fmt: skip
        if sc.pg_prefix:
            settings["log_line_prefix"] = "'" + sc.pg_prefix + "'"
        self.pg = PgServer(root=self.tmp / "pg", port=free_port(), bin_dir=find_pg_bin(), settings=settings)
        self.pg.init()
        self.pg.start()
        with psycopg.connect(self.pg.dsn, autocommit=True, application_name="setup") as c:
            c.execute("create role checkout login")
            c.execute("create database shop owner checkout")
            if sc.log_statement:
                c.execute("alter role checkout set log_statement = 'all'")
        with psycopg.connect(f"host=127.0.0.1 port={self.pg.port} user=checkout dbname=shop", autocommit=True,
                             application_name="setup") as c:  # fmt: skip
            c.execute("create table orders (id serial primary key, total integer not null,"
                      " created_at timestamptz not null default now())")  # fmt: skip
        self.max_connections = int(settings["max_connections"])

    def start_bouncer(self) -> None:
        """pgBouncer in front of PostgreSQL (``sc.pgbouncer``); the app connects to it."""
        binary = find_pgbouncer()
        if binary is None:
            msg = "pgbouncer not found (apt-get install pgbouncer)"
            raise RuntimeError(msg)
        root = self.tmp / "pgbouncer"
        root.mkdir()
        root.chmod(0o755)
        self.bouncer = LabBouncer(root=root, port=free_port(), pg=self.pg, binary=binary)
        self.bouncer.lab_settings = dict(self.sc.pgbouncer or {})
        self.bouncer.write_config()
        self.bouncer.start()
        self.note("pooler_ready", pid=self.bouncer.proc.pid if self.bouncer.proc else None)

    def restart_bouncer(self, sig: str, down_s: float) -> None:
        """Stop pgBouncer with ``sig`` (SIGTERM: its immediate shutdown), wait, start it again."""
        assert self.bouncer is not None
        self.note("pooler_stop", signal=sig)
        self.bouncer.signal(getattr(signal, sig))
        self.note("pooler_stopped")
        time.sleep(down_s)
        self.note("pooler_start")
        self.bouncer.start()
        self.note("pooler_ready", pid=self.bouncer.proc.pid if self.bouncer.proc else None)

    def start_exporter(self) -> None:
        self.exporter_port = free_port()
        dsn = f"postgresql://postgres@127.0.0.1:{self.pg.port}/postgres?sslmode=disable"
        self.procs.append(subprocess.Popen(
            ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{self.exporter_port}"],
            env={**os.environ, "DATA_SOURCE_NAME": dsn}, stdout=subprocess.DEVNULL,
            stderr=(self.tmp / "exporter.log").open("wb"),
        ))  # fmt: skip
        wait_until(lambda: b"pg_up" in _get(f"http://127.0.0.1:{self.exporter_port}/metrics"), "the exporter")

    def start_prometheus(self) -> None:
        self.prom_port = free_port()
        config = self.tmp / "prometheus.yml"
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in self.ports.values())
        text = ("global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nscrape_configs:\n"
                f"  - job_name: checkout-api\n    scrape_interval: {APP_SCRAPE}\n    static_configs:\n"
                f"      - targets: [{targets}]\n")  # fmt: skip
        if self.sc.exporter:
            text += (f"  - job_name: postgres\n    scrape_interval: {PG_SCRAPE}\n    static_configs:\n"
                     f"      - targets: ['127.0.0.1:{self.exporter_port}']\n")  # fmt: skip
        config.write_text(text)
        self.procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.prom_port}", "--storage.tsdb.retention.time=1d"],
            stdout=subprocess.DEVNULL, stderr=(self.tmp / "prometheus.log").open("wb"),
        ))  # fmt: skip
        self.prom = f"http://127.0.0.1:{self.prom_port}"
        wait_until(lambda: _get(f"{self.prom}/-/ready") is not None, "prometheus")

    @property
    def uses_prometheus(self) -> bool:
        return self.sc.pool_gauge or self.sc.exporter

    # --- app processes -------------------------------------------------------------------
    def start_app(self, i: int, why: str) -> float:
        sc = self.sc
        db_port = self.bouncer.port if self.bouncer else self.proxy.port if self.proxy else self.pg.port
        cmd = [sys.executable, str(HERE / "labapp.py"), "--index", str(i), "--port", str(self.ports[i]),
               "--db", f"postgresql+psycopg://checkout@127.0.0.1:{db_port}/shop",
               "--log", str(self.logs / "app" / f"app-{i + 1}.log"),
               "--truth", str(self.truth_dir / f"app-{i + 1}.jsonl"), "--logger", sc.app_logger,
               "--start-line", sc.start_line, "--version", self.version, "--pool-size", str(sc.pool_size),
               "--max-overflow", str(sc.max_overflow), "--pool-timeout", str(sc.pool_timeout),
               "--query-seconds", str(sc.query_s), "--seed", str(sc.seed)]  # fmt: skip
        if sc.logging_pattern:
            cmd += ["--pattern", sc.logging_pattern]
        if sc.pool_pre_ping:
            cmd.append("--pre-ping")
        if sc.pgbouncer and sc.pgbouncer["pool_mode"] != "session":
            cmd.append("--no-prepare")
        if sc.pool_gauge:
            cmd.append("--pool-gauge")
        if sc.pool_event_log:
            cmd += ["--pool-event-log", str(self.logs / "pool" / f"pool-{i + 1}.jsonl")]
        for path, p in self.leaks.items():
            cmd += ["--leak", f"{path}={p}"]
        t = self.note("start", proc=i, why=why, version=self.version)
        self.apps[i] = subprocess.Popen(cmd, env={**os.environ, "TZ": "UTC"}, stdout=subprocess.DEVNULL,
                                        stderr=(self.tmp / f"app-{i + 1}.stderr").open("ab"))  # fmt: skip
        wait_until(lambda: _get(f"http://127.0.0.1:{self.ports[i]}/health", 2) == b"ok\n", "the app")
        self.note("ready", proc=i)
        return t

    def stop_app(self, i: int, sig: str, why: str) -> float:
        proc = self.apps.get(i)
        t = self.note("stop", proc=i, signal=sig, why=why)
        if proc is None:
            return t
        proc.send_signal(getattr(signal, sig))
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.note("exited", proc=i)
        self.apps[i] = None
        return t

    # --- load ----------------------------------------------------------------------------
    def request(self, i: int, path: str, method: str, query: str) -> None:
        t0 = time.time()
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports[i]}{path}{query}", method=method,
                                     data=b"" if method == "POST" else None)  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                status = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            with contextlib.suppress(OSError, http.client.HTTPException):  # the app died mid-answer
                exc.read()
        except (OSError, http.client.HTTPException):
            status = 0
        line = json.dumps(
            {"t": t0, "proc": i, "path": path, "status": status, "s": round(time.time() - t0, 4)}
        )
        with self.client_lock:
            self.client.write(line + "\n")

    def rate(self, t: float) -> float:
        if self.sc.bursts and not any(a <= t < b for a, b in self.sc.bursts):
            return 0.0
        return self.sc.rate

    def load(self, seconds: float) -> None:
        """Poisson arrivals at ``rate(t)``, round-robin over the processes."""
        rng = random.Random(self.sc.seed)
        tickets: queue.Queue = queue.Queue()

        def worker() -> None:
            while (item := tickets.get()) is not None:
                self.request(*item)

        pool = [threading.Thread(target=worker, daemon=True) for _ in range(40)]
        for th in pool:
            th.start()
        start, n = time.monotonic(), 0
        while (now := time.monotonic() - start) < seconds:
            r = self.rate(now)
            if r <= 0:
                time.sleep(0.1)
                continue
            time.sleep(rng.expovariate(r))
            path, method = pick_path(rng.random())
            query = f"?total={rng.randint(20, 900)}" if path == "/checkout" else ""
            tickets.put((n % self.sc.processes, path, method, query))
            n += 1
        for _ in pool:
            tickets.put(None)
        for th in pool:
            th.join(timeout=30)

    # --- actions -------------------------------------------------------------------------
    def act(self, a: Action) -> None:
        if a.kind == "restart":
            self.note("action", kind="restart", how="operator")
            for i in range(self.sc.processes):
                self.stop_app(i, "SIGTERM", "operator restart")
                self.start_app(i, "operator restart")
        elif a.kind == "crash":
            i = a.process or 0
            self.note("action", kind="crash", proc=i)
            self.stop_app(i, "SIGKILL", "crash")
            time.sleep(0.5)  # the supervisor's restart delay
            self.start_app(i, "supervisor restart after crash")
        elif a.kind == "pooler_restart":
            self.note("action", kind="pooler_restart", signal=a.signal)
            self.restart_bouncer(a.signal, a.pooler_down_s)
        elif a.kind == "deploy":
            self.note(
                "action",
                kind="deploy",
                version=a.version,
                signal=a.signal,
                db_restart=a.db_restart,
                pooler_restart=a.pooler_restart,
                pooler_signal=a.pooler_signal,
                fix=a.fix,
            )
            if a.pooler_restart:
                self.restart_bouncer(a.pooler_signal, a.pooler_down_s)
                time.sleep(3)
            if a.db_restart:
                self.note("db_stop", mode="fast")
                self.pg.stop("fast")
                self.note("db_stopped")
                time.sleep(a.db_down_s)
                self.note("db_start")
                self.pg.start()
                self.note("db_ready")
                time.sleep(3)
            self.version = a.version
            if a.fix:
                self.leaks = {}
            for i in range(self.sc.processes):
                self.stop_app(i, a.signal, f"deploy {a.version}")
                self.start_app(i, f"deploy {a.version}")
            self.note("action_done", kind="deploy", version=a.version)

    # --- the run -------------------------------------------------------------------------
    def run(self) -> dict:
        sc, began = self.sc, time.time()
        self.start_pg()
        if sc.idle_timeout:
            self.proxy = IdleKillProxy(self.pg.port, sc.idle_timeout, self.truth_dir / "proxy.jsonl")
            self.proxy.start()
        if sc.pgbouncer:
            self.start_bouncer()
        try:
            if sc.exporter:
                self.start_exporter()
            if self.uses_prometheus:
                self.start_prometheus()
            if self.start_at:
                time.sleep(max(0.0, self.start_at - time.time() - 8))
            first = min(self.start_app(i, "first start") for i in range(sc.processes))
            if self.uses_prometheus:
                wait_until(self._scraped, "the first scrapes", timeout=60)
            if self.start_at:
                time.sleep(max(0.0, self.start_at - time.time()))
            load_start = self.note("load_start")
            loader = threading.Thread(target=self.load, args=(sc.duration_s,))
            loader.start()
            for a in sc.actions:
                time.sleep(max(0.0, load_start + a.at - time.time()))
                self.act(a)
            loader.join()
            self.note("load_end")
            for i in range(sc.processes):
                self.stop_app(i, "SIGTERM", "end of recording")
            end = time.time()
            if self.uses_prometheus:
                time.sleep(6)
                self.export(first - 10, end + 5)
        finally:
            for i, proc in self.apps.items():
                if proc is not None:
                    self.stop_app(i, "SIGKILL", "cleanup")
            for proc in reversed(self.procs):
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if self.proxy:
                self.proxy.stop()
            if self.bouncer:
                self.note("pooler_stop", signal="SIGTERM", why="end of recording")
                self.bouncer.close_gracefully()
        if sc.pg_shutdown_logged:
            self.pg.stop("fast")
            time.sleep(0.5)
        else:
            time.sleep(1)  # the logging collector writes asynchronously
        self.copy_pg_log()
        if not sc.pg_shutdown_logged:
            self.pg.stop("fast")
        self.orch.close()
        self.client.close()
        return self.write(first - 10, end + 5, time.time() - began)

    def _scraped(self) -> bool:
        q = urllib.parse.urlencode({"query": "up == 1"})
        got = len(json.loads(_get(f"{self.prom}/api/v1/query?{q}"))["data"]["result"])
        return got == len(self.ports) + (1 if self.sc.exporter else 0)

    def export(self, start: float, end: float) -> None:
        series = {"http_requests_total": "http_requests_total", "up": "up"}
        if self.sc.pool_gauge:
            series |= {n: n for n in ("db_pool_checked_out", "db_pool_checked_in", "db_pool_size",
                                      "db_pool_max_overflow")}  # fmt: skip
        if self.sc.exporter:
            series |= {"pg_up": "pg_up", "pg_settings_max_connections": "pg_settings_max_connections",
                       "pg_stat_activity_count": 'pg_stat_activity_count{datname="shop"}',
                       "pg_stat_activity_max_tx_duration": 'pg_stat_activity_max_tx_duration{datname="shop"}',
                       "pg_stat_database_numbackends": 'pg_stat_database_numbackends{datname="shop"}'}  # fmt: skip
        (self.logs / "prometheus").mkdir()
        for name, query in series.items():
            params = urllib.parse.urlencode({"query": query, "start": str(int(start)), "end": str(int(end) + 1),
                                             "step": STEP})  # fmt: skip
            (self.logs / "prometheus" / f"{name}.json").write_bytes(
                _get(f"{self.prom}/api/v1/query_range?{params}")
            )

    def copy_pg_log(self) -> None:
        ext = {"stderr": "log", "csvlog": "csv", "jsonlog": "json"}[self.sc.pg_format]
        (self.logs / "pg").mkdir()
        shutil.copy(self.pg.log_dir / f"postgresql.{ext}", self.logs / "pg" / f"postgresql.{ext}")
        if self.bouncer:
            (self.logs / "pgbouncer").mkdir()
            shutil.copy(self.bouncer.log_path, self.logs / "pgbouncer" / "pgbouncer.log")

    def write(self, start: float, end: float, seconds: float) -> dict:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        for src in sorted(p for p in self.logs.rglob("*") if p.is_file()):
            dest = self.out / src.relative_to(self.logs)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with src.open("rb") as fi, gzip.GzipFile(f"{dest}.gz", "wb", mtime=0) as fo:
                shutil.copyfileobj(fi, fo)
        truth = build_truth(self.sc, self.truth_dir, window=(start, end))
        truth["recording"] = {"real_seconds": round(seconds), "set": split_of(self.sc.seed),
                              "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
        store_streams(self.truth_dir, self.out / "truth")
        write_incident_toml(self.out / "incident.toml", self.sc, truth, max_connections=self.max_connections)
        (self.out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        shutil.rmtree(self.tmp, ignore_errors=True)
        return truth


def _when(text: str) -> float:
    """``HH:MM:SS`` (UTC, today or tomorrow) or epoch seconds."""
    if ":" not in text:
        return float(text)
    now = datetime.now(UTC)
    h, m, s = (int(x) for x in text.split(":"))
    t = now.replace(hour=h, minute=m, second=s, microsecond=0).timestamp()
    return t if t > now.timestamp() - 60 else t + 86400


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shape")
    p.add_argument("seed", type=int)
    p.add_argument("--smoke", action="store_true", help="the tiny 70-second scenario")
    p.add_argument("--out", type=Path, help=f"parent folder (default {LAB})")
    p.add_argument("--at", help="start the load at this UTC time (HH:MM:SS) or epoch")
    args = p.parse_args(argv)
    sc = draw(args.shape, args.seed, smoke=args.smoke)
    out = (args.out or LAB) / sc.name
    truth = Recorder(sc, out, _when(args.at) if args.at else None).run()
    print(json.dumps({"name": sc.name, "out": str(out), **truth["summary"]}))


if __name__ == "__main__":
    main()
