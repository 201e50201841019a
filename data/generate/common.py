"""Shared harness of the incident generators: real PostgreSQL, app, exporter and Prometheus.

One :class:`Run` starts, on loopback ports and in a temp dir:

* a throwaway PostgreSQL 15 (``tests/pgserver.py``) with ``log_connections``,
  ``log_disconnections`` and ``log_line_prefix = '%m [%p] %q%u@%d '`` (stderr only), a role
  ``checkout`` owning the database ``shop`` (table ``orders``);
* ``prometheus-postgres-exporter`` (``DATA_SOURCE_NAME``) on the server;
* the app, ``data/generate/app.py`` (checkout-api), as its own process, so that a restart is a
  real restart;
* a real Prometheus scraping the app every 2 s and the exporter every 5 s;
* a load driver: threads sending HTTP requests to the app at the rate a schedule asks.

Everything runs in real time: the timestamps in every file are the machine's clock while the
generator ran. At the end :meth:`Run.export` saves ``/api/v1/query_range`` answers (step 5 s)
and :meth:`Run.finish` copies the PostgreSQL log into the incident folder.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.pgserver import PgServer, find_pg_bin, free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
INCIDENTS = ROOT / "data" / "incidents"
APP_SCRAPE = "2s"
PG_SCRAPE = "5s"
STEP = "5"

#: the series every incident exports: file name -> PromQL
SERIES = {
    "http_requests_total": "http_requests_total",
    "status_http_requests_rate30s": "status:http_requests:rate30s",
    "job_http_503_ratio_rate30s": "job:http_503:ratio_rate30s",
    "alerts": "ALERTS",
    "db_pool_checked_out": "db_pool_checked_out",
    "db_pool_checked_in": "db_pool_checked_in",
    "db_pool_size": "db_pool_size",
    "db_pool_overflow": "db_pool_overflow",
    "db_pool_max_overflow": "db_pool_max_overflow",
    "up": "up",
    "pg_up": "pg_up",
    "pg_stat_activity_count": 'pg_stat_activity_count{datname="shop"}',
    "pg_stat_database_numbackends": 'pg_stat_database_numbackends{datname="shop"}',
    "pg_settings_max_connections": "pg_settings_max_connections",
}

#: recording and alerting rules Prometheus evaluates every 5 s (what a team's rules file holds)
RULES = """\
groups:
  - name: checkout-api
    interval: 5s
    rules:
      - record: status:http_requests:rate30s
        expr: sum by (status) (rate(http_requests_total{job="checkout-api"}[30s]))
      - record: job:http_503:ratio_rate30s
        expr: >-
          (sum(rate(http_requests_total{job="checkout-api",status="503"}[30s])) or vector(0))
          / sum(rate(http_requests_total{job="checkout-api"}[30s]))
      - alert: Checkout503s
        expr: job:http_503:ratio_rate30s > 0.05
        for: 30s
        labels: {severity: page}
        annotations: {summary: "checkout-api 503 ratio above 5% for 30s"}
      - alert: DbPoolSaturated
        expr: db_pool_checked_out >= db_pool_size + db_pool_max_overflow
        for: 30s
        labels: {severity: warn}
        annotations: {summary: "checkout-api connection pool fully checked out for 30s"}
"""


def iso(t: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (``...SSZ`` when whole)."""
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{d.microsecond:06d}" if d.microsecond else "") + "Z"


def iso_s(t: float) -> str:
    return datetime.fromtimestamp(round(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    msg = f"timed out waiting for {what}"
    raise RuntimeError(msg)


@dataclass
class Result:
    """One request the load driver sent."""

    at: float
    kind: str
    status: int  # 0: the app did not answer (not listening, reset)
    seconds: float


@dataclass
class Run:
    """One generator run; use as a context manager."""

    name: str
    pg_settings: dict[str, str] = field(default_factory=dict)
    app_args: dict[str, object] = field(default_factory=dict)
    db_port: int | None = None  # where the app connects (a proxy's port); the server's by default

    def __post_init__(self) -> None:
        self.out = INCIDENTS / self.name
        self.tmp = Path(tempfile.mkdtemp(prefix=f"loglib-{self.name}-"))
        self.tmp.chmod(0o755)
        self.procs: list[subprocess.Popen] = []
        self.app: subprocess.Popen | None = None
        self.app_port = free_port()
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self.notes: list[str] = []

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Run:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            sys.exit("needs the PostgreSQL server binaries (initdb, pg_ctl)")
        for tool in ("prometheus", "prometheus-postgres-exporter"):
            if shutil.which(tool) is None:
                sys.exit(f"needs {tool} (apt-get install {tool})")
        shutil.rmtree(self.out, ignore_errors=True)
        for sub in ("app", "pg", "prometheus"):
            (self.out / sub).mkdir(parents=True)
        settings = {"log_destination": "'stderr'", "max_connections": "30", **self.pg_settings}
        self.pg = PgServer(root=self.tmp / "pg", port=free_port(), bin_dir=bin_dir, settings=settings)
        self.pg.init()
        self.pg.start()
        with psycopg.connect(self.pg.dsn, autocommit=True, application_name="setup") as c:
            c.execute("create role checkout login")
            c.execute("create database shop owner checkout")
        with psycopg.connect(self.dsn("checkout"), autocommit=True, application_name="setup") as c:
            c.execute(
                "create table orders (id serial primary key, total integer not null,"
                " created_at timestamptz not null default now())"
            )
        self._start_exporter()
        self._start_prometheus()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_app()
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.pg.stop("fast")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dsn(self, user: str = "postgres", db: str = "shop") -> str:
        return f"host=127.0.0.1 port={self.pg.port} user={user} dbname={db}"

    @property
    def app_db_url(self) -> str:
        return f"postgresql+psycopg://checkout@127.0.0.1:{self.db_port or self.pg.port}/shop"

    def _start_exporter(self) -> None:
        self.exporter_port = free_port()
        env = {**os.environ,
               "DATA_SOURCE_NAME": f"postgresql://postgres@127.0.0.1:{self.pg.port}/postgres?sslmode=disable"}  # fmt: skip
        self.procs.append(subprocess.Popen(
            ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{self.exporter_port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=(self.tmp / "exporter.log").open("wb"),
        ))  # fmt: skip
        wait_until(lambda: b"pg_up" in _get(f"http://127.0.0.1:{self.exporter_port}/metrics"), "the exporter")

    def _start_prometheus(self) -> None:
        self.prom_port = free_port()
        config = self.tmp / "prometheus.yml"
        (self.tmp / "rules.yml").write_text(RULES)
        config.write_text(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
            f"rule_files: ['{self.tmp / 'rules.yml'}']\n"
            "scrape_configs:\n"
            f"  - job_name: checkout-api\n    scrape_interval: {APP_SCRAPE}\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{self.app_port}']\n"
            f"  - job_name: postgres\n    scrape_interval: {PG_SCRAPE}\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{self.exporter_port}']\n"
        )
        self.procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.prom_port}", "--storage.tsdb.retention.time=1d"],
            stdout=subprocess.DEVNULL, stderr=(self.tmp / "prometheus.log").open("wb"),
        ))  # fmt: skip
        self.prom = f"http://127.0.0.1:{self.prom_port}"
        wait_until(lambda: _get(f"{self.prom}/-/ready") is not None, "prometheus")

    def wait_scraped(self) -> None:
        def both_up() -> bool:
            q = urllib.parse.urlencode({"query": "up == 1"})
            return len(json.loads(_get(f"{self.prom}/api/v1/query?{q}"))["data"]["result"]) == 2

        wait_until(both_up, "the first scrapes", timeout=60)

    # --- the app -------------------------------------------------------------------------
    def start_app(self, **overrides: object) -> float:
        """Start checkout-api (a new process); returns when it answers /health."""
        args = {**self.app_args, **overrides}
        cmd = [sys.executable, str(HERE / "app.py"), "--port", str(self.app_port), "--db", self.app_db_url,
               "--log", str(self.out / "app" / "app.log")]  # fmt: skip
        for key, value in args.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                cmd.append(flag)
            elif value not in (False, None):
                cmd += [flag, str(value)]
        self.app = subprocess.Popen(cmd, env={**os.environ, "TZ": "UTC"}, stdout=subprocess.DEVNULL,
                                    stderr=(self.tmp / "app.stderr").open("ab"))  # fmt: skip
        wait_until(lambda: _get(f"http://127.0.0.1:{self.app_port}/health", 2) == b"ok\n", "the app")
        return time.time()

    def stop_app(self) -> float:
        """SIGTERM, as systemd or Kubernetes does, and wait for the process to exit; returns when
        the signal was sent."""
        sent = time.time()
        if self.app is None:
            return sent
        self.app.terminate()
        try:
            self.app.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.app.kill()
            self.app.wait()
        self.app = None
        return sent

    # --- load ----------------------------------------------------------------------------
    def request(self, kind: str, path: str, method: str = "GET", timeout: float = 15) -> None:
        t0 = time.time()
        req = urllib.request.Request(f"http://127.0.0.1:{self.app_port}{path}", method=method, data=b"" if
                                     method == "POST" else None)  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.read()
        except OSError:
            status = 0
        with self._lock:
            self.results.append(Result(t0, kind, status, time.time() - t0))

    def load(self, seconds: float, rate: Callable[[float], float], pick: Callable[[random.Random], tuple],
             seed: int = 7, threads: int = 24) -> None:  # fmt: skip
        """Send requests for ``seconds``: ``rate(t)`` per second at ``t`` seconds into this call
        (Poisson arrivals); ``pick(rng)`` gives ``(kind, path, method)`` of each."""
        rng = random.Random(seed)
        tickets: queue.Queue = queue.Queue()

        def worker() -> None:
            while (item := tickets.get()) is not None:
                self.request(*item)

        pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for t in pool:
            t.start()
        start = time.monotonic()
        now = 0.0
        while now < seconds:
            r = rate(now)
            if r <= 0:
                time.sleep(0.2)
            else:
                time.sleep(rng.expovariate(r))
                if time.monotonic() - start < seconds:
                    tickets.put(pick(rng))
            now = time.monotonic() - start
        for _ in pool:
            tickets.put(None)
        for t in pool:
            t.join(timeout=30)

    # --- outputs -------------------------------------------------------------------------
    def export(self, start: float, end: float, series: dict[str, str] | None = None) -> list[str]:
        """Save one ``query_range`` answer per series (step 5 s) in ``prometheus/``."""
        time.sleep(6)  # let the last scrapes land
        names = []
        for name, query in (series or SERIES).items():
            params = urllib.parse.urlencode(
                {"query": query, "start": str(int(start)), "end": str(int(end) + 1), "step": STEP}
            )
            (self.out / "prometheus" / f"{name}.json").write_bytes(
                _get(f"{self.prom}/api/v1/query_range?{params}")
            )
            names.append(name)
        return names

    def finish(self) -> None:
        """Stop the app and copy the PostgreSQL log (as it stands: the server is still up)."""
        self.stop_app()
        time.sleep(1)  # the logging collector writes asynchronously
        shutil.copy(self.pg.log_dir / "postgresql.log", self.out / "pg" / "postgresql.log")
        for path in self.out.rglob("*"):
            if path.is_file():
                path.chmod(0o644)

    def server_now(self) -> float:
        with psycopg.connect(self.pg.dsn, application_name="ops-console") as c:
            return c.execute("select extract(epoch from clock_timestamp())").fetchone()[0]


def count(results: list[Result], *, status: int | None = None, kind: str | None = None,
          since: float = 0, until: float = float("inf")) -> int:  # fmt: skip
    return sum(
        1 for r in results
        if (status is None or r.status == status) and (kind is None or r.kind == kind) and since <= r.at < until
    )  # fmt: skip


def write_toml(path: Path, *, title: str, window: tuple[float, float], max_connections: int, app: dict,
               events: list[dict], service: str = "checkout-api", extra_sources: str = "") -> None:  # fmt: skip
    """``incident.toml`` in the format of the incidents issue."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return json.dumps(v)

    lines = [
        f"title = {value(title)}",
        f'start = "{iso_s(window[0])}"',
        f'end = "{iso_s(window[1])}"',
        "",
        "[[sources]]",
        'kind = "postgres"',
        'paths = ["pg/postgresql.log*"]',
        'prefix = "%m [%p] %q%u@%d "',
        'tz = "UTC"',
        "",
        "[[sources]]",
        'kind = "app"',
        'paths = ["app/*.log"]',
        'pattern = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"',
        'tz = "UTC"',
        f"service = {value(service)}",
        "",
        "[[sources]]",
        'kind = "prometheus"',
        'paths = ["prometheus/*.json"]',
        "",
    ]
    if extra_sources:
        lines += [extra_sources.strip(), ""]
    lines.append("[app]")
    lines += [f"{k} = {value(v)}" for k, v in app.items()]
    lines += ["", "[postgres]", f"max_connections = {max_connections}", "superuser_reserved_connections = 3"]
    for ev in events:
        lines += ["", "[[events]]", f"at = {value(ev['at'])}", f"kind = {value(ev['kind'])}",
                  f"text = {value(ev['text'])}"]  # fmt: skip
        lines += [f"{k} = {value(ev[k])}" for k in ("action", "owner") if ev.get(k)]
    path.write_text("\n".join(lines) + "\n")


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
