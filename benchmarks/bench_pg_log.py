"""Throughput and peak memory of the PostgreSQL reader, each figure a ratio to a baseline run beside it.

Builds ``benchmarks/work/big-postgresql.log`` (default 300 MB) by repeating the real lines of
``data/sample-pg/postgresql.log`` and pgBadger's ``pg_vacuums.log.gz`` fixture (multi-line
entries) with times shifted forward and pids offset, plus csvlog and jsonlog renderings of the
same entries, then measures, each in a fresh process (so peak RSS is its own):

* ``naive``: the baseline, a naive polars pass over the same file (read the lines, one
  ``str.extract_groups`` regex, ``str.to_datetime``): what a user would write in five minutes;
* ``read``: ``read_pg_log`` (file -> typed, classified frame in memory);
* ``stream``: ``scan_pg_log`` streamed into Parquet (``sink_parquet``): memory stays bounded;
* ``csvlog`` / ``jsonlog``: ``read_pg_log`` on the csvlog / jsonlog rendering, against polars' own
  ``pl.read_csv`` / ``pl.read_ndjson`` of the same file (``read_csv`` / ``read_ndjson``);
* ``connections``: the whole ``loglib connections --no-cache`` command (every run parses the
  file), against pgBadger (when installed) on the same file.

Every line printed gives MB/s, peak RSS and the ratio to its baseline measured in the same run;
the line under it the CPU seconds of all threads (and their ratio), with the load average: on a
shared machine wall time is the share of the cores a run got, CPU seconds the work it did.
Run: ``python benchmarks/bench_pg_log.py [--size-mb 300] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import json
import os
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
    vac = next(
        (d / "shared" / "corpus" / "pgbadger" / "pg_vacuums.log.gz" for d in ROOT.parents
         if (d / "shared" / "corpus").is_dir()),
        ROOT / "missing",
    )  # fmt: skip
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


def build_records(stderr: Path, csv_path: Path, json_path: Path, size_mb: int) -> None:
    """csvlog and jsonlog renderings of the sample's entries, repeated to about ``size_mb``."""
    import csv
    import io
    import warnings

    import orjson
    import polars as pl

    sys.path.insert(0, str(ROOT))
    import loglib as ll

    warnings.simplefilter("ignore")
    base = ll.read_pg_log(ROOT / "data" / "sample-pg" / "postgresql.log", prefix=PREFIX)
    span = base["ts"].max() - base["ts"].min()
    rows = base.select("ts", "pid", "severity", "user", "database", "message", "detail",
                       "client_host", "client_port").to_dicts()  # fmt: skip
    out_csv, out_json = io.StringIO(), io.StringIO()
    writer = csv.writer(out_csv, lineterminator="\n")
    for r in rows:
        stamp = r["ts"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        host = f"{r['client_host']}:{r['client_port']}" if r["client_host"] else ""
        writer.writerow([f"{stamp} UTC", r["user"] or "", r["database"] or "", r["pid"], host, "6565e1b2.2c5f", 1,
                         "", "", "", 0, r["severity"], "00000", r["message"], r["detail"] or "", "", "", "", "",
                         "", "", "", "psql", "client backend", "", 0])  # fmt: skip
        rec = {"timestamp": f"{stamp} UTC", "user": r["user"], "dbname": r["database"], "pid": r["pid"],
               "remote_host": r["client_host"], "remote_port": r["client_port"], "session_id": "6565e1b2.2c5f",
               "line_num": 1, "error_severity": r["severity"], "message": r["message"], "detail": r["detail"],
               "application_name": "psql", "backend_type": "client backend", "query_id": 0}  # fmt: skip
        out_json.write(orjson.dumps({k: v for k, v in rec.items() if v is not None}).decode() + "\n")
    for path, block in ((csv_path, out_csv.getvalue()), (json_path, out_json.getvalue())):
        frame = pl.DataFrame({"text": block.rstrip("\n").split("\n")})
        stamps = frame["text"].str.extract(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})")
        parsed = stamps.str.to_datetime("%Y-%m-%d %H:%M:%S%.3f")
        reps = max(1, size_mb * 1_000_000 // len(block))
        with open(path, "w") as fh:
            for k in range(reps):
                shifted = (parsed + span * (k + 1)).dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
                text = frame["text"].str.replace(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", "\x00")
                lines = pl.select(pl.lit(text).str.replace("\x00", pl.lit(shifted), literal=True)).to_series()
                fh.write("\n".join(lines.to_list()) + "\n")


#: the naive pass: one regex over every line, as a user would write it for this prefix
NAIVE_REGEX = r"^(\S+ \S+) (\S+) \[(\d+)\] (?:(\S*)@(\S*) )?([A-Z0-9]+):  (.*)$"


def naive_pass(path: Path) -> int:
    import polars as pl

    lines = pl.Series([path.read_bytes().decode("utf-8", "replace")]).str.split("\n").explode()
    frame = lines.str.extract_groups(NAIVE_REGEX).struct.unnest()
    frame = frame.with_columns(pl.col("1").str.to_datetime("%Y-%m-%d %H:%M:%S%.3f", strict=False))
    return frame.height


def measure(mode: str, path: Path) -> dict:
    """Run one mode in this process and return its figures."""
    import warnings

    import polars as pl

    sys.path.insert(0, str(ROOT))
    import loglib as ll

    warnings.simplefilter("ignore")
    if mode in ("csvlog", "jsonlog", "read_csv", "read_ndjson"):
        path = path.with_suffix(".csv" if mode in ("csvlog", "read_csv") else ".json")
    size = path.stat().st_size
    t, cpu = time.perf_counter(), time.process_time()
    lines = None
    if mode == "naive":
        rows = naive_pass(path)
    elif mode == "read_csv":
        rows = pl.read_csv(path, has_header=False, infer_schema=False).height
    elif mode == "read_ndjson":
        rows = pl.read_ndjson(path).height
    elif mode in ("read", "csvlog", "jsonlog"):
        kw = {"prefix": PREFIX} if mode == "read" else {"format": mode}
        df = ll.read_pg_log(path, **kw)
        rows = df.height
        lines = ll.read_report(df).lines_read
    elif mode == "stream":
        out = WORK / "big.parquet"
        lf = ll.scan_pg_log(path, prefix=PREFIX)
        lf.sink_parquet(out, engine="streaming")
        rows = pl.scan_parquet(out).select(pl.len()).collect().item()
        lines = ll.read_report(lf).lines_read
    else:
        msg = f"unknown mode {mode!r}"
        raise ValueError(msg)
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "seconds": secs, "cpu_s": cpu, "mb_s": size / 1e6 / secs, "rows": rows,
            "lines": lines, "peak_rss_mb": rss, "file_mb": size / 1e6}  # fmt: skip


def run_child(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--mode", mode, "--path", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed_command(cmd: list[str]) -> dict:
    """Wall time, CPU seconds and peak RSS of a whole command (a fresh process, as a user runs it)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        msg = f"{cmd[0]} exited with {os.waitstatus_to_exitcode(status)}"
        raise RuntimeError(msg)
    proc.returncode = 0
    return {"seconds": secs, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def line(label: str, r: dict, base: dict | None, base_name: str) -> str:
    ratio = f", {base['seconds'] / r['seconds']:.2f}x {base_name}" if base else ""
    return (f"{label:34s} {r['file_mb']:7,.0f} MB {r['seconds']:6.2f} s {r['mb_s']:6.0f} MB/s"
            f"{ratio}, peak RSS {r['peak_rss_mb']:,.0f} MB ({r['peak_rss_mb'] / r['file_mb']:.1f}x file)")  # fmt: skip


def cpu_line(r: dict, base: dict | None, base_name: str) -> str:
    """CPU seconds (all threads) beside the wall time: on a shared machine, wall time is the
    share of the cores a run got; CPU seconds are the work it did."""
    ratio = f", {base['cpu_s'] / r['cpu_s']:.2f}x {base_name}'s CPU" if base else ""
    return f"{'':34s} CPU {r['cpu_s']:.2f} s{ratio}, load average {os.getloadavg()[0]:.1f}"


def best(mode: str, path: Path, repeat: int) -> dict:
    return min((run_child(mode, path) for _ in range(repeat)), key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the fastest is kept")
    parser.add_argument("--only", nargs="*", default=["stderr", "records", "connections"],
                        choices=["stderr", "records", "connections"])  # fmt: skip
    parser.add_argument(
        "--mode", choices=["naive", "read", "stream", "csvlog", "jsonlog", "read_csv", "read_ndjson"]
    )
    parser.add_argument("--path", type=Path)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    path = args.path or WORK / "big-postgresql.log"
    if args.mode:
        print(json.dumps(measure(args.mode, path)))
        return
    if not path.exists() or abs(path.stat().st_size / 1e6 - args.size_mb) > args.size_mb * 0.1:
        t = time.perf_counter()
        build(path, args.size_mb)
        build_records(path, path.with_suffix(".csv"), path.with_suffix(".json"), args.size_mb // 2)
        print(
            f"built {path} ({path.stat().st_size / 1e6:,.0f} MB) and its csvlog/jsonlog in {time.perf_counter() - t:.0f}s"
        )
    naive = best("naive", path, args.repeat)
    print(line("naive polars pass (baseline)", naive, None, ""))
    print(cpu_line(naive, None, ""))
    if "stderr" in args.only:
        for mode, label in (("read", "read_pg_log stderr"), ("stream", "scan_pg_log -> Parquet")):
            r = best(mode, path, args.repeat)
            print(line(label, r, naive, "naive"))
            print(cpu_line(r, naive, "naive"), flush=True)
    if "records" in args.only:
        for mode, base_mode in (("csvlog", "read_csv"), ("jsonlog", "read_ndjson")):
            base = best(base_mode, path, args.repeat)
            print(line(f"pl.{base_mode} (baseline)", base, None, ""))
            print(cpu_line(base, None, ""))
            r = best(mode, path, args.repeat)
            print(line(f"read_pg_log {mode}", r, base, base_mode))
            print(cpu_line(r, base, base_mode), flush=True)
    if "connections" in args.only:
        exe = Path(sys.executable).with_name("loglib")
        # --no-cache: every run parses the file (with --repeat 2 the fastest run would otherwise be
        # a warm-cache hit, which measures loading a Parquet file, not reading the log)
        cmd = [str(exe), "connections", str(path), "--every", "1h", "--prefix", PREFIX, "-q", "--no-cache"]
        ours = min((timed_command(cmd) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        ours.update(file_mb=path.stat().st_size / 1e6, mb_s=path.stat().st_size / 1e6 / ours["seconds"])
        pgbadger = shutil.which("pgbadger")
        theirs = None
        if pgbadger:
            out = str(WORK / "pgbadger.json")
            theirs = timed_command([pgbadger, "-q", "-x", "json", "-o", out, "-p", PREFIX,
                                    "--pid-dir", str(WORK), "--no-process-info", str(path)])  # fmt: skip
            theirs.update(file_mb=ours["file_mb"], mb_s=ours["file_mb"] / theirs["seconds"])
            print(line("pgbadger (baseline)", theirs, None, ""))
            print(cpu_line(theirs, None, ""))
        print(line("loglib connections --no-cache (whole command)", ours, theirs, "pgbadger"))
        print(cpu_line(ours, theirs, "pgbadger"))


if __name__ == "__main__":
    main()
