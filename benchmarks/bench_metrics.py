"""How fast read_prometheus loads a big export: 1,000 series x 11,000 points (query_range JSON).

Run: ``python benchmarks/bench_metrics.py [--series 1000] [--points 11000] [--files 10]``. The export
is written as ``--files`` chunk files (a long range exported in parts, as people do) into a temp
dir, then read with one glob. A smaller promtool dump and Grafana CSV are timed too.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson
import polars as pl

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # this checkout's loglib, not an installed one
import loglib as ll

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


def timed(label: str, fn, points: int) -> pl.DataFrame:
    start = time.perf_counter()
    df = fn()
    took = time.perf_counter() - start
    assert df.height == points, (df.height, points)
    print(f"{label}: {df.height:,} samples in {took:.2f} s ({df.height / took / 1e6:.2f} M samples/s)")
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=11000)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        size = write_json(root, args.series, args.points, args.files)
        print(
            f"wrote {args.series:,} series x {args.points:,} points in {args.files} JSON file(s), "
            f"{size / 1e6:,.0f} MB, in {time.perf_counter() - start:.1f} s"
        )
        df = timed(
            "read_prometheus(query_range JSON)",
            lambda: ll.read_prometheus(root / "*.json"),
            args.series * args.points,
        )
        start = time.perf_counter()
        wide = ll.metrics_wide(df, every="1m")
        print(f"metrics_wide(every='1m'): {wide.shape} in {time.perf_counter() - start:.2f} s")
        del df, wide
        small = max(args.series // 10, 1)
        write_dump(root / "dump.txt", small, args.points)
        timed(
            f"read_prometheus(promtool dump, {small} series)",
            lambda: ll.read_prometheus(root / "dump.txt"),
            small * args.points,
        )
        write_csv(root / "grafana.csv", small, args.points)
        timed(
            f"read_prometheus(Grafana CSV, {small} series, units)",
            lambda: ll.read_prometheus(root / "grafana.csv"),
            small * args.points,
        )


if __name__ == "__main__":
    main()
