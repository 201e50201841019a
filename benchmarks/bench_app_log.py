"""Benchmark read_app_log / scan_app_log, each figure a ratio to a baseline measured in the same run.

Generates (once, under ``benchmarks/work/``, git-ignored) a Python-logging text file of mostly
INFO lines with some chained SQLAlchemy tracebacks, and a JSON-lines file in pino's shape, then
measures, each in a fresh process so peak RSS belongs to it alone:

* text: ``read_app_log`` and ``scan_app_log`` against a naive polars pass (lines, one
  ``str.extract_groups``, ``str.to_datetime``);
* JSON: ``read_app_log`` against polars' own ``pl.read_ndjson`` on the same file.

Each figure also gives the CPU seconds it took (user + system, all threads) and their ratio to the
baseline's: on a shared machine the wall-clock ratio moves with the load, the CPU ratio much less.

    python benchmarks/bench_app_log.py --size-mb 200
    python benchmarks/bench_app_log.py --size-mb 50 --only json
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


def generate_json(path: Path, size_mb: int) -> None:
    """Write ~size_mb MB of pino records (epoch ms ``time``, numeric ``level``, ``err`` objects)."""
    import orjson

    target = size_mb * 1_000_000
    t0 = 1_709_251_200_000
    n = written = 0
    with open(path, "wb") as fh:
        while written < target:
            rows = []
            for _ in range(20_000):
                rec = {"level": 30, "time": t0 + n * 7, "pid": 4242, "hostname": "api-1", "reqId": f"req-{n}",
                       "msg": INFO[n % len(INFO)].format(n=n, ms=n % 900, a=n % 250, b=n % 199)}  # fmt: skip
                if n % 200 == 199:
                    rec.update(level=50, msg=f"request {n} failed", err={
                        "type": "Error", "message": "timeout exceeded when trying to connect",
                        "stack": "Error: timeout exceeded when trying to connect\n    at Pool.connect (pg-pool/index.js:45:11)"})  # fmt: skip
                rows.append(orjson.dumps(rec))
                n += 1
            block = b"\n".join(rows) + b"\n"
            fh.write(block)
            written += len(block)


#: the naive text pass: one regex over every line, as a user would write it for this format
NAIVE_REGEX = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$"


def measure(path: Path, mode: str) -> dict:
    """Parse ``path`` in this process; return timings and peak RSS."""
    import polars as pl

    import loglib as ll

    # once per process, outside the timing (polars' import is outside it too): loglib's lazy import
    # of the reader and the error-rules table (built from the installed message catalogs)
    setup = time.perf_counter()
    if mode not in ("naive", "ndjson"):
        ll.error_rules()
    setup = time.perf_counter() - setup
    start = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu.ru_utime + cpu.ru_stime
    report = None
    if mode == "naive":
        lines = pl.Series([path.read_bytes().decode()]).str.split("\n").explode()
        frame = lines.str.extract_groups(NAIVE_REGEX).struct.unnest()
        frame = frame.with_columns(pl.col("1").str.to_datetime("%Y-%m-%d %H:%M:%S,%3f", strict=False))
        events = frame.height
    elif mode == "ndjson":
        events = pl.read_ndjson(path).height
    elif mode == "scan":
        lf = ll.scan_app_log(path, tz="UTC")
        out = lf.group_by("level", "error_class").agg(pl.len()).collect(engine="streaming")
        events = int(out["len"].sum())
        report = ll.read_report(lf)
    else:  # read, json
        df = ll.read_app_log(path, tz="UTC")
        events = df.height
        report = ll.read_report(df)
    seconds = time.perf_counter() - start
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = end.ru_utime + end.ru_stime - cpu
    size = path.stat().st_size
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "file_mb": round(size / 1e6, 1),
        "lines": report.lines_read if report else None,
        "events": events,
        "rejected": report.lines_rejected if report else None,
        "seconds": round(seconds, 2),
        "setup_s": round(setup, 2),
        "cpu_s": round(cpu, 2),
        "mb_per_s": round(size / 1e6 / seconds, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the fastest is kept")
    parser.add_argument("--only", nargs="*", default=["text", "json"], choices=["text", "json"])
    parser.add_argument(
        "--child", choices=["naive", "scan", "read", "ndjson", "json"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    text_path = WORK / f"app_mixed_{args.size_mb}mb.log"
    json_path = WORK / f"app_pino_{args.size_mb // 2}mb.json"
    if args.child:
        print(json.dumps(measure(json_path if args.child in ("ndjson", "json") else text_path, args.child)))
        return
    for path, make, size in (
        (text_path, generate, args.size_mb),
        (json_path, generate_json, args.size_mb // 2),
    ):
        if not path.exists() or path.stat().st_size < size * 1_000_000:
            t = time.perf_counter()
            make(path, size)
            print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def best(mode: str) -> dict:
        cmd = [sys.executable, __file__, "--size-mb", str(args.size_mb), "--child", mode]
        runs = [
            subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            for _ in range(args.repeat)
        ]
        return min((json.loads(r.stdout.strip().splitlines()[-1]) for r in runs), key=lambda r: r["seconds"])

    def show(label: str, r: dict, base: dict | None, base_name: str) -> None:
        ratio = f", {base['seconds'] / r['seconds']:.2f}x {base_name}" if base else ""
        print(f"{label:32s} {r['file_mb']:6,.0f} MB {r['seconds']:6.2f} s {r['mb_per_s']:6.0f} MB/s{ratio}, "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB ({r['peak_rss_mb'] / r['file_mb']:.1f}x file)", flush=True)  # fmt: skip
        cpu = f"{r['cpu_s']:.2f} CPU-s" + (
            f", {base['cpu_s'] / r['cpu_s']:.2f}x {base_name} in CPU time" if base else ""
        )
        once = (
            f"; once per process, not timed: {r['setup_s']:.2f} s of lazy import and rules table"
            if r.get("setup_s")
            else ""
        )
        print(f"{'':32s} ({cpu}{once})")

    if "text" in args.only:
        naive = best("naive")
        show("naive polars pass (baseline)", naive, None, "")
        show("read_app_log text", best("read"), naive, "naive")
        show("scan_app_log text (streaming)", best("scan"), naive, "naive")
    if "json" in args.only:
        ndjson = best("ndjson")
        show("pl.read_ndjson (baseline)", ndjson, None, "")
        show("read_app_log JSON (pino)", best("json"), ndjson, "read_ndjson")


if __name__ == "__main__":
    main()
