"""A throwaway Prometheus for tests: a real server scraping a small ``prometheus_client`` app.

The app exposes connection-pool and HTTP metrics, a gauge that is NaN, one that is +Inf and one
series that disappears for a few seconds (a gap: Prometheus writes a staleness marker, and
``query_range`` has no points there). :func:`capture` runs it all for a few seconds on loopback
ports, with the TSDB in a temp dir, and saves real API answers and a ``promtool tsdb dump``.

Run ``python -m tests.promserver tests/files/metrics/real`` to regenerate the committed copy.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.pgserver import free_port

JOB = "loglib-test"
SCRAPE = "1s"


@dataclass
class Capture:
    """What one run saved: file names in ``out`` and the range that was queried."""

    out: Path
    start: float
    end: float
    gap: tuple[float, float]
    files: dict[str, Path]


def _get(base: str, path: str, **params: str) -> bytes:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"prometheus exited with code {proc.returncode}"
            raise RuntimeError(msg)
        try:
            _get(base, "/-/ready")
            return
        except OSError:
            time.sleep(0.2)
    msg = "prometheus did not become ready"
    raise RuntimeError(msg)


def _wait_scraped(base: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait for the first scrape (target discovery hands targets over only every 5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"prometheus exited with code {proc.returncode}"
            raise RuntimeError(msg)
        answer = json.loads(_get(base, "/api/v1/query", query=f'up{{job="{JOB}"}}'))
        if answer["data"]["result"]:
            return
        time.sleep(0.2)
    msg = "prometheus did not scrape the test app"
    raise RuntimeError(msg)


def _start_app(port: int):
    from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

    reg = CollectorRegistry()
    checked_out = Gauge("db_pool_checked_out", "connections checked out", ["pool"], registry=reg)
    size = Gauge("db_pool_size", "pool size", ["pool"], registry=reg)
    requests = Counter("http_requests", "requests served", ["code"], registry=reg)
    ratio = Gauge("weird_ratio", "a ratio that is sometimes NaN", registry=reg)
    ceiling = Gauge("weird_ceiling", "an infinite ceiling", registry=reg)
    flappy = Gauge("flappy_up", "a series that goes away for a while", ["pool"], registry=reg)
    for inst in ("api-1", "api-2"):
        size.labels(inst).set(10)
        checked_out.labels(inst).set(0)
    ratio.set(math.nan)
    ceiling.set(math.inf)
    flappy.labels("api-3").set(1)
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=reg)
    metrics = {"checked_out": checked_out, "requests": requests, "ratio": ratio, "flappy": flappy}
    return server, metrics


def capture(out: Path, *, seconds: float = 11.0) -> Capture:
    """Run app + Prometheus for about ``seconds``, then save the API answers and a TSDB dump."""
    prometheus = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    if prometheus is None or promtool is None:
        msg = "prometheus and promtool must be installed (apt-get install prometheus)"
        raise RuntimeError(msg)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="loglib-prom-"))
    app_port, prom_port = free_port(), free_port()
    server, m = _start_app(app_port)
    config = root / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE}\n  evaluation_interval: {SCRAPE}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{app_port}']\n"
    )
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "prometheus.log").open("wb"),
    )
    base = f"http://127.0.0.1:{prom_port}"
    files: dict[str, Path] = {}
    try:
        _wait_ready(base, proc)
        _wait_scraped(base, proc)
        start = time.time()
        phase = seconds / 3
        tick = 0
        gap_start = gap_end = 0.0
        while time.time() - start < seconds:
            tick += 1
            elapsed = time.time() - start
            m["checked_out"].labels("api-1").set(min(10, tick))
            m["checked_out"].labels("api-2").set(tick % 3)
            m["requests"].labels("200").inc(20)
            if tick % 2:
                m["requests"].labels("503").inc(3)
            if phase <= elapsed < 2 * phase and not gap_start:
                m["flappy"].remove("api-3")
                gap_start = time.time()
            if elapsed >= 2 * phase and gap_start and not gap_end:
                m["flappy"].labels("api-3").set(2)
                gap_end = time.time()
            m["ratio"].set(math.nan if int(elapsed) % 2 else tick / 10)
            time.sleep(0.25)
        time.sleep(1.5)  # let the last scrape land
        end = time.time()
        query = f'{{job="{JOB}"}}'
        t0, t1 = math.floor(start), math.ceil(end)
        mid = (t0 + t1) // 2
        answers = {
            "query_range.json": _get(
                base, "/api/v1/query_range", query=query, start=str(t0), end=str(t1), step="1"
            ),
            "query_range_part1.json": _get(
                base, "/api/v1/query_range", query=query, start=str(t0), end=str(mid + 2), step="1"
            ),
            "query_range_part2.json": _get(
                base, "/api/v1/query_range", query=query, start=str(mid - 2), end=str(t1), step="1"
            ),
            "query_instant.json": _get(base, "/api/v1/query", query=query, time=str(t1)),
            "query_raw.json": _get(base, "/api/v1/query", query=f"{query}[{t1 - t0 + 5}s]", time=str(t1)),
            "query_rate.json": _get(
                base,
                "/api/v1/query_range",
                query="rate(http_requests_total[3s])",
                start=str(t0),
                end=str(t1),
                step="1",
            ),
            "query_error.json": _error_answer(base),
        }
        for name, body in answers.items():
            (out / name).write_bytes(body)
            files[name] = out / name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.shutdown()
    dump = subprocess.run(
        [promtool, "tsdb", "dump", f'--match={{job="{JOB}"}}', str(root / "data")],
        capture_output=True,
        check=True,
        timeout=60,
    )
    (out / "tsdb_dump.txt").write_bytes(dump.stdout)
    files["tsdb_dump.txt"] = out / "tsdb_dump.txt"
    meta = {"start": start, "end": end, "gap": [gap_start, gap_end], "job": JOB, "scrape_interval": SCRAPE}
    (out / "capture.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    return Capture(out, start, end, (gap_start, gap_end), files)


def _error_answer(base: str) -> bytes:
    """A real error answer: Prometheus refuses a query that does not parse (HTTP 400)."""
    try:
        return _get(base, "/api/v1/query", query="rate(http_requests_total[5m]")
    except urllib.error.HTTPError as exc:
        return exc.read()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/files/metrics/real")
    cap = capture(target)
    print(f"saved {', '.join(sorted(cap.files))} in {target}")
