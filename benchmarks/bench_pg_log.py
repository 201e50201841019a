"""Throughput and peak memory of the PostgreSQL reader on a large, realistic stderr log.

Builds ``benchmarks/work/big-postgresql.log`` (default 1 GiB) by repeating the real lines of
``data/sample-pg/postgresql.log`` and pgBadger's ``pg_vacuums.log.gz`` fixture (multi-line
entries) with times shifted forward and pids offset, then measures, each in a fresh process:

* ``read_pg_log``: the eager read (whole frame in memory);
* ``scan_pg_log`` streamed into Parquet (``sink_parquet``): memory stays bounded;
* ``pg_connections`` on the streamed frame (events only, not the whole log);
* pgBadger on a 20 MB slice of the same file, for the ratio (when pgbadger is installed).

Run: ``python benchmarks/bench_pg_log.py [--size-mb 1024]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"
PREFIX = "%m [%p] %q%u@%d "


def build(path: Path, size_mb: int) -> None:
    import gzip

    import polars as pl

    sample = (ROOT / "data" / "sample-pg" / "postgresql.log").read_text()
    vac = ROOT.parent / "shared" / "corpus" / "pgbadger" / "pg_vacuums.log.gz"
    lines = sample.splitlines()
    if vac.exists():  # real multi-line entries, re-prefixed to the sample's log_line_prefix
        import re

        for ln in gzip.decompress(vac.read_bytes()).decode().splitlines()[:3000]:
            m = re.match(
                r"^(\S+ \S+) \S+ \[(\d+)\]: \[\d+-\d+\] user=[^,]*,db=[^,]*,host=[^,]*,app=\S* (.*)$", ln
            )
            if m:
                lines.append(f"{m[1]}.000 UTC [{m[2]}] {m[3]}")
            elif ln.startswith("\t"):
                lines.append(ln)
    base = pl.DataFrame({"text": lines})
    base = base.with_columns(
        ts=pl.col("text")
        .str.extract(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC")
        .str.to_datetime("%Y-%m-%d %H:%M:%S%.3f"),
        rest=pl.col("text").str.extract(r"^\S+ \S+ UTC \[\d+\](.*)$", 1),
        pid=pl.col("text").str.extract(r"^\S+ \S+ UTC \[(\d+)\]", 1).cast(pl.Int64),
    )
    # the vacuum fixture is from another day: move its entries into the sample's hours
    n_sample = len(sample.splitlines())
    sample_ts = base["ts"].head(n_sample)
    vac_ts = base["ts"].slice(n_sample)
    if vac_ts.drop_nulls().len():
        shift = sample_ts.min() - vac_ts.min()
        base = base.with_columns(
            ts=pl.when(pl.int_range(pl.len()) >= n_sample).then(pl.col("ts") + shift).otherwise(pl.col("ts"))
        )
    t0 = base["ts"].min()
    span = base["ts"].max() - t0
    block_bytes = len("\n".join(lines)) + 1
    reps = max(1, size_mb * 1024 * 1024 // block_bytes)
    with open(path, "w") as out:
        for k in range(reps):
            shifted = base.select(
                pl.when(pl.col("ts").is_not_null())
                .then(
                    pl.concat_str(
                        (pl.col("ts") + span * k).dt.strftime("%Y-%m-%d %H:%M:%S%.3f"),
                        pl.lit(" UTC ["),
                        (pl.col("pid") + 100_000 * (k % 40)).cast(pl.String),
                        pl.lit("]"),
                        pl.col("rest"),
                    )
                )
                .otherwise(pl.col("text"))
            ).to_series()
            out.write("\n".join(shifted.to_list()))
            out.write("\n")


def measure(mode: str, path: Path) -> dict:
    """Run one mode in this process and return its figures."""
    import warnings

    import polars as pl

    sys.path.insert(0, str(ROOT))
    import loglib as ll

    warnings.simplefilter("ignore")
    size = path.stat().st_size
    t = time.perf_counter()
    if mode == "read":
        df = ll.read_pg_log(path, prefix=PREFIX)
        rows = df.height
        lines = ll.read_report(df).lines_read
    elif mode == "stream":
        out = WORK / "big.parquet"
        lf = ll.scan_pg_log(path, prefix=PREFIX)
        lf.sink_parquet(out, engine="streaming")
        rows = pl.scan_parquet(out).select(pl.len()).collect().item()
        lines = ll.read_report(lf).lines_read
    else:
        lf = ll.scan_pg_log(path, prefix=PREFIX)
        events = lf.filter(pl.col("event") != "other").collect(engine="streaming")
        table = ll.pg_connections(events, every="1h")
        rows, lines = table.height, ll.read_report(lf).lines_read
    secs = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "seconds": secs, "mb_s": size / 1e6 / secs, "lines_s": lines / secs, "rows": rows,
            "lines": lines, "peak_rss_mb": rss, "file_mb": size / 1e6}  # fmt: skip


def pgbadger_rate(path: Path) -> float | None:
    exe = shutil.which("pgbadger")
    if exe is None:
        return None
    part = WORK / "slice.log"
    with open(path, "rb") as src, open(part, "wb") as dst:
        dst.write(src.read(20_000_000))
    t = time.perf_counter()
    out = str(WORK / "slice.json")
    subprocess.run([exe, "-q", "-x", "json", "-o", out, "-p", PREFIX, "--pid-dir", str(WORK), str(part)], check=True)
    return part.stat().st_size / 1e6 / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--mode", choices=["read", "stream", "connections"])
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "big-postgresql.log"
    if args.mode:
        print(json.dumps(measure(args.mode, path)))
        return
    if not path.exists() or abs(path.stat().st_size / 2**20 - args.size_mb) > args.size_mb * 0.1:
        t = time.perf_counter()
        build(path, args.size_mb)
        print(f"built {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.0f}s")
    for mode in ("read", "stream", "connections"):
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode], check=True, capture_output=True, text=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode:12s} {r['file_mb']:,.0f} MB in {r['seconds']:.1f}s: {r['mb_s']:.0f} MB/s, "
              f"{r['lines_s'] / 1e6:.2f} M lines/s, {r['rows']:,} rows, peak RSS {r['peak_rss_mb']:,.0f} MB")  # fmt: skip
    rate = pgbadger_rate(path)
    if rate:
        print(f"pgbadger     {rate:.2f} MB/s on a 20 MB slice of the same file")


if __name__ == "__main__":
    main()
