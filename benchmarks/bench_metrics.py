"""How fast read_prometheus loads a big export: 1,000 series x 11,000 points (query_range JSON).

Run: ``python benchmarks/bench_metrics.py [--series 1000] [--points 11000] [--files 10] [--repeat 1]``.
The export is written once as ``--files`` chunk files (a long range exported in parts, as people
do) into ``benchmarks/work/``, then each figure is measured in a fresh process (so its peak RSS
is its own):

* ``orjson.loads (baseline)``: decode every chunk file with orjson into Python objects and count
  the points, nothing more, with the cycle collector off (the least any JSON reader in Python
  does: with it on, the same decode takes about four times as long);
* ``read_prometheus(query_range JSON)``: the files -> the canonical ``metrics`` frame (one glob);
* ``metrics_wide(every='1m')`` on that frame (time of that step only; peak RSS of the process);
* a promtool dump and a Grafana CSV of a tenth of the series (no baseline; not in the README table).

Every line gives MB/s, peak RSS as a multiple of the input, and the ratio to the baseline
measured in the same run (``2.00x orjson.loads``: twice as fast as decoding the JSON alone).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
T0 = 1_709_280_000


def write_json(root: Path, n_series: int, n_points: int, n_files: int) -> int:
    rng = random.Random(0)
    per_file = -(-n_series // n_files)
    size = 0
    for f in range(n_files):
        result = []
        for s in range(f * per_file, min((f + 1) * per_file, n_series)):
            values = [[T0 + i * 15 + 0.123, repr(round(rng.random() * 100, 3))] for i in range(n_points)]
            metric = {"__name__": "db_pool_checked_out", "instance": f"api-{s}", "job": "app"}
            result.append({"metric": metric, "values": values})
        doc = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        blob = orjson.dumps(doc)
        (root / f"chunk-{f:03d}.json").write_bytes(blob)
        size += len(blob)
    return size


def write_dump(path: Path, n_series: int, n_points: int) -> None:
    ts = pl.int_range(0, n_points, eager=True) * 15_000 + T0 * 1000
    frames = [
        pl.DataFrame({"t": ts}).select(
            pl.format(
                '{{__name__="db_pool_checked_out", instance="api-{}", job="app"}} {} {}',
                pl.lit(s),
                (pl.col("t") % 97).cast(pl.String),
                pl.col("t"),
            )
        )
        for s in range(n_series)
    ]
    pl.concat(frames).write_csv(path, include_header=False, quote_style="never")


def write_csv(path: Path, n_series: int, n_points: int) -> None:
    data = {"Time": pl.int_range(0, n_points, eager=True) * 15_000 + T0 * 1000}
    for s in range(n_series):
        data[f'db_pool_checked_out{{instance="api-{s}"}}'] = (
            pl.int_range(0, n_points, eager=True) % 10
        ).cast(pl.String) + " ms"
    pl.DataFrame(data).write_csv(path)


def measure(mode: str, root: Path) -> dict:
    """Run one mode in this process; seconds, samples, input MB and peak RSS."""
    sys.path.insert(0, os.environ.get("BENCH_LOGLIB", str(ROOT)))  # this checkout's loglib by default
    import loglib as ll

    files = {"json": sorted(root.glob("*.json")), "dump": [root / "dump.txt"], "csv": [root / "grafana.csv"]}
    paths = files.get(mode, files["json"])
    size = sum(p.stat().st_size for p in paths)
    start, cpu = time.perf_counter(), time.process_time()
    if mode == "decode":
        gc.disable()
        samples = 0
        for p in paths:
            doc = orjson.loads(p.read_bytes())
            samples += sum(len(s["values"]) for s in doc["data"]["result"])
            del doc
    elif mode == "wide":
        df = ll.read_prometheus(root / "*.json")
        start, cpu = time.perf_counter(), time.process_time()
        samples = ll.metrics_wide(df, every="1m").height
    else:
        df = ll.read_prometheus(paths[0] if mode != "json" else root / "*.json")
        samples = df.height
    secs, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": secs,
        "cpu_s": cpu,
        "samples": samples,
        "file_mb": size / 1e6,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM), in MB. Not ``ru_maxrss``: Linux keeps that across
    fork+exec, so a child started by a big parent (this script, after writing the export) would
    report the parent's peak."""
    with open("/proc/self/status") as fh:
        kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
    return kb * 1024 / 1e6


def run_child(mode: str, root: Path, repeat: int) -> dict:
    """The fastest of ``repeat`` fresh processes running ``mode``."""
    runs = []
    for _ in range(repeat):
        cmd = [sys.executable, __file__, "--mode", mode, "--root", str(root)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["seconds"])


def line(label: str, r: dict, base: dict | None, base_name: str) -> str:
    ratio = f", {base['seconds'] / r['seconds']:.2f}x {base_name}" if base else ""
    mb_s = r["file_mb"] / r["seconds"]
    return (f"{label:42s} {r['file_mb']:7,.0f} MB {r['seconds']:6.2f} s {mb_s:6.0f} MB/s"
            f"{ratio}, peak RSS {r['peak_rss_mb']:,.0f} MB ({r['peak_rss_mb'] / r['file_mb']:.1f}x file)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=11000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; the fastest is kept")
    parser.add_argument("--mode", choices=["decode", "json", "wide", "dump", "csv"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.root)))
        return
    root = WORK / f"prom-{args.series}x{args.points}x{args.files}"
    small = max(args.series // 10, 1)
    if not (root / "grafana.csv").exists():
        root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        write_json(root, args.series, args.points, args.files)
        write_dump(root / "dump.txt", small, args.points)
        write_csv(root / "grafana.csv", small, args.points)
        print(f"wrote {root} in {time.perf_counter() - start:.0f} s")
    n = args.series * args.points
    decode = run_child("decode", root, args.repeat)
    read = run_child("json", root, args.repeat)
    assert decode["samples"] == read["samples"] == n, (decode["samples"], read["samples"], n)
    print(f"{args.series:,} series x {args.points:,} points in {args.files} query_range JSON file(s)")
    print(line("orjson.loads (baseline)", decode, None, ""))
    print(line("read_prometheus query_range JSON", read, decode, "orjson.loads"), flush=True)
    print(f"CPU time (all threads; load-robust where wall time is not): orjson.loads {decode['cpu_s']:.2f} s, "
          f"read_prometheus {read['cpu_s']:.2f} s ({decode['cpu_s'] / read['cpu_s']:.2f}x); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)  # fmt: skip
    wide = run_child("wide", root, args.repeat)
    print(f"metrics_wide(every='1m'): {wide['samples']:,} rows in {wide['seconds']:.2f} s "
          f"(peak RSS of read + wide {wide['peak_rss_mb']:,.0f} MB)", flush=True)  # fmt: skip
    for mode, label in (("dump", f"read_prometheus promtool dump ({small} series)"),
                        ("csv", f"read_prometheus Grafana CSV ({small} series)")):  # fmt: skip
        r = run_child(mode, root, args.repeat)
        assert r["samples"] == small * args.points, (mode, r["samples"])
        # small files: the interpreter's own memory is most of the peak, so no "x file" figure
        print(f"{label}: {r['file_mb']:,.0f} MB in {r['seconds']:.2f} s ({r['file_mb'] / r['seconds']:.0f} MB/s), "
              f"process peak RSS {r['peak_rss_mb']:,.0f} MB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
