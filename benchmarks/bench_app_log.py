"""Benchmark read_app_log / scan_app_log on a large mixed application log.

Generates (once) a Python-logging file of mostly INFO lines with some chained SQLAlchemy
tracebacks under ``benchmarks/work/`` (git-ignored), then parses it and prints MB/s, lines/s
and peak RSS. Each measurement runs in a fresh process so peak RSS belongs to it alone.

    python benchmarks/bench_app_log.py --size-mb 520            # streaming scan + eager read
    python benchmarks/bench_app_log.py --size-mb 50 --mode scan
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

WORK = Path(__file__).resolve().parent / "work"

INFO = [
    "GET /api/orders/{n} 200 {ms}ms",
    "POST /api/cart/{n}/items 201 {ms}ms",
    "cache hit for key user:{n}",
    "enqueued job {n} on queue default",
    "user {n} logged in from 10.0.{a}.{b}",
]
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/db.py", line 41, in load\n'
    "    conn = engine.connect()\n"
    "sqlalchemy.exc.TimeoutError: QueuePool limit of size {a} overflow 10 reached, connection timed out, "
    "timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)\n"
)
CHAINED = (
    "Traceback (most recent call last):\n"
    '  File "/app/db.py", line 12, in connect\n'
    "    return psycopg.connect(dsn)\n"
    'psycopg.OperationalError: connection failed: connection to server at "10.0.0.5", port 5432 failed: '
    "Connection refused\n"
    "\tIs the server running on that host and accepting TCP/IP connections?\n"
    "\n"
    "The above exception was the direct cause of the following exception:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "/app/web.py", line 30, in handler\n'
    "    rows = load()\n"
    "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection failed\n"
)


def generate(path: Path, size_mb: int) -> None:
    """Write ~size_mb MB: 99.5% INFO lines, 0.5% ERROR events with tracebacks."""
    target = size_mb * 1_000_000
    t0 = datetime(2024, 3, 1)
    n = 0
    written = 0
    with open(path, "w") as fh:
        while written < target:
            lines = []
            for _ in range(20_000):
                ts = (t0 + timedelta(milliseconds=n * 7)).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
                if n % 200 == 199:
                    tb = TRACEBACK.format(a=n % 50) if n % 400 == 399 else CHAINED
                    lines.append(f"{ts} ERROR app.db: request {n} failed\n{tb}")
                else:
                    msg = INFO[n % len(INFO)].format(n=n, ms=n % 900, a=n % 250, b=n % 199)
                    lines.append(f"{ts} INFO app.web: {msg}\n")
                n += 1
            block = "".join(lines)
            fh.write(block)
            written += len(block)


def measure(path: Path, mode: str) -> dict:
    """Parse ``path`` in this process; return timings and peak RSS."""
    import polars as pl

    import loglib as ll

    start = time.perf_counter()
    if mode == "scan":
        lf = ll.scan_app_log(path, tz="UTC")
        out = lf.group_by("level", "error_class").agg(pl.len()).collect(engine="streaming")
        events = int(out["len"].sum())
        report = ll.read_report(lf)
    else:
        df = ll.read_app_log(path, tz="UTC")
        events = df.height
        report = ll.read_report(df)
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "file_mb": round(size / 1e6, 1),
        "lines": report.lines_read,
        "events": events,
        "rejected": report.lines_rejected,
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / 1e6 / seconds, 1),
        "lines_per_s": round(report.lines_read / seconds),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=520)
    parser.add_argument("--mode", choices=["scan", "read", "both"], default="both")
    parser.add_argument("--child", choices=["scan", "read"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    path = WORK / f"app_mixed_{args.size_mb}mb.log"
    if args.child:
        print(json.dumps(measure(path, args.child)))
        return
    if not path.exists() or path.stat().st_size < args.size_mb * 1_000_000:
        t = time.perf_counter()
        generate(path, args.size_mb)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    modes = ["scan", "read"] if args.mode == "both" else [args.mode]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for mode in modes:
        cmd = [sys.executable, __file__, "--size-mb", str(args.size_mb), "--child", mode]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
