"""How loglib scales with the incident: wall time and peak memory of the faces at 100 MB, 1 GB (, 5 GB).

Builds incident folders under ``benchmarks/work/scale-<size>/`` from the bundled
``pool-exhaustion`` incident (real PostgreSQL 15, a real Python app, a real Prometheus): hours of
healthy traffic before it, in the same formats (PostgreSQL sessions with their statements, the
app's access lines and an occasional error with its traceback, the same metric series at their
5 s step), then the real incident at the end. About 62 % of the bytes are PostgreSQL's log, 36 %
the app's and 2 % metrics. Then, each in a fresh process tree, it measures

* ``loglib report INC --out OUT`` (the CLI and its notebook kernel: peak RSS is the sum over the
  process tree, sampled every 0.1 s), run twice: cold (no Parquet cache) and warm (the cache of
  the first run);
* ``loglib connections pg/postgresql.log --every 1h``;
* ``ll.export_bundle(Incident.load(INC), OUT)`` in a fresh interpreter;
* a naive polars pass over the same bytes as the baseline ratio: every line read and its
  timestamp parsed (``read_csv`` one column, ``str.to_datetime``), in the bench process.

and prints each figure with its ratio to the 100 MB case.

With ``--stages`` it first runs the postmortem's stages one by one in a fresh interpreter (read
each source, sessions, events, findings, summary, timeline, each chart, export) and prints the
seconds, RSS and peak RSS after each: where the time and the memory go.

Run: ``python benchmarks/bench_scale.py [--sizes 100,1024] [--only report,connections,export] [--stages]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"
SOURCE = ROOT / "data" / "incidents" / "pool-exhaustion"
PREFIX = "%m [%p] %q%u@%d "
#: share of the bytes per source
SHARES = {"pg": 0.62, "app": 0.36}
#: hours of healthy traffic before the real incident
HOURS = 6
STEP_S = 5

_QUERIES = (
    "SELECT id, name, price FROM products WHERE id = $1",
    "SELECT count(*) FROM orders WHERE customer_id = $1 AND created_at > now() - interval '1 day'",
    "INSERT INTO orders (customer_id, total, created_at) VALUES ($1, $2, now()) RETURNING id",
    "UPDATE inventory SET stock = stock - $1 WHERE product_id = $2",
    "BEGIN",
    "COMMIT",
)


def _pg_background(path: Path, n_bytes: int, t0: float) -> None:
    """PostgreSQL sessions of the checkout app, one per request, written in file (time) order."""
    import polars as pl

    per_session = 4 + 2  # received, authorized, statements, disconnection
    n_sessions = max(1, n_bytes // (per_session * 125))
    span_us = HOURS * 3600 * 1_000_000
    gap = span_us // n_sessions
    s = pl.DataFrame({"i": pl.arange(0, n_sessions, eager=True, dtype=pl.Int64)})
    s = s.with_columns(
        start=pl.lit(int(t0 * 1e6)) + pl.col("i") * gap,
        pid=20_000 + pl.col("i") % 30_000,  # pids come back, far apart
        port=30_000 + pl.col("i") % 30_000,
        q=pl.col("i") % len(_QUERIES),
    )
    step = max(1, min(gap * 200, 40_000))  # a session lasts a few milliseconds (x4 steps)
    rows = []
    rows.append(s.select("i", "pid", ts="start", k=pl.lit(0),
                         text=pl.format("LOG:  connection received: host=10.1.0.7 port={}", "port")))  # fmt: skip
    rows.append(s.select("i", "pid", ts=pl.col("start") + 300, k=pl.lit(1),
                         text=pl.lit("checkout@shop LOG:  connection authorized: user=checkout database=shop application_name=checkout-api")))  # fmt: skip
    for n in range(1, 4):
        query = pl.lit(pl.Series(_QUERIES)).get((pl.col("q") + n) % len(_QUERIES))
        rows.append(s.select("i", "pid", ts=pl.col("start") + n * step, k=pl.lit(1 + n),
                             text=pl.format("checkout@shop LOG:  duration: {}.{} ms  statement: {}",
                                            (pl.col("i") % 7), (pl.col("i") % 997 + 100), query)))  # fmt: skip
    rows.append(s.select("i", "pid", ts=pl.col("start") + 4 * step + 500, k=pl.lit(9),
                         text=pl.format("checkout@shop LOG:  disconnection: session time: 0:00:00.{} user=checkout "
                                        "database=shop host=10.1.0.7 port={}",
                                        pl.lit(f"{(4 * step + 500) // 1000:03d}"), "port")))  # fmt: skip
    frame = pl.concat(rows).sort("ts", "i", "k")
    ts = pl.from_epoch(pl.col("ts"), time_unit="us").dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
    lines = frame.select(pl.format("{} UTC [{}] {}", ts, "pid", "text"))
    lines.write_csv(path, include_header=False, quote_style="never")


def _app_background(path: Path, n_bytes: int, t0: float) -> None:
    """The app's access lines, and one failed request in 500 with the traceback the app logs."""
    import polars as pl

    real = (SOURCE / "app" / "app.log").read_text().splitlines()
    at = next(i for i, ln in enumerate(real) if " ERROR " in ln)
    end = next(i for i in range(at + 1, len(real)) if real[i][:2] == "20")
    trace = "\n".join(real[at + 1 : end])
    n = max(1, n_bytes // 115)
    gap = HOURS * 3600 * 1_000_000 // n
    f = pl.DataFrame({"i": pl.arange(0, n, eager=True, dtype=pl.Int64)})
    ts = pl.from_epoch(pl.lit(int(t0 * 1e6)) + pl.col("i") * gap, time_unit="us")
    stamp = pl.format(
        "{},{}", ts.dt.strftime("%Y-%m-%d %H:%M:%S"), (ts.dt.millisecond()).cast(pl.String).str.zfill(3)
    )
    thread = pl.format("[Thread-{} (process_request_thread)]", pl.col("i") % 64 + 4)
    access = pl.format('{} INFO checkout.access {} "{}" 200 0.0{}s', stamp, thread,
                       pl.when(pl.col("i") % 3 == 0).then(pl.lit("GET /catalog"))
                       .otherwise(pl.format("POST /checkout?total={}", pl.col("i") % 50_000)),
                       (pl.col("i") % 90 + 10))  # fmt: skip
    failed = pl.format("{} ERROR checkout.api {} POST /checkout failed\n{}", stamp, thread, pl.lit(trace))
    lines = f.select(pl.when(pl.col("i") % 500 == 499).then(failed).otherwise(access))
    lines.write_csv(path, include_header=False, quote_style="never")


def _metrics(src: Path, dst: Path, t0: float) -> None:
    """The real series, extended back over the healthy hours at their own step with their first value."""
    doc = json.loads(src.read_text())
    if src.name.startswith("alerts"):  # ALERTS exists only while an alert fires: not before the incident
        dst.write_text(json.dumps(doc))
        return
    for series in doc.get("data", {}).get("result", []):
        values = series.get("values")
        if not values:
            continue
        first_t, first_v = float(values[0][0]), values[0][1]
        back = [[t, first_v] for t in range(int(t0), int(first_t), STEP_S)]
        series["values"] = back + values
    dst.write_text(json.dumps(doc))


def build(folder: Path, size_mb: int) -> float:
    """Write the incident folder (``size_mb`` MiB in all); return its size in bytes."""
    import tomllib

    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("pg", "app", "prometheus"):
        (folder / sub).mkdir(parents=True)
    toml = (SOURCE / "incident.toml").read_text()
    from datetime import datetime

    start = tomllib.loads(toml)["start"]
    t_inc = datetime.fromisoformat(start).timestamp() if isinstance(start, str) else start.timestamp()
    t0 = t_inc - HOURS * 3600 - 60
    total = size_mb * 1024 * 1024
    real_pg = (SOURCE / "pg" / "postgresql.log").read_bytes()
    real_app = (SOURCE / "app" / "app.log").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        bg_pg, bg_app = Path(tmp) / "pg.log", Path(tmp) / "app.log"
        _pg_background(bg_pg, max(0, int(total * SHARES["pg"]) - len(real_pg)), t0)
        _app_background(bg_app, max(0, int(total * SHARES["app"]) - len(real_app)), t0)
        with open(folder / "pg" / "postgresql.log", "wb") as out:
            with open(bg_pg, "rb") as bg:
                shutil.copyfileobj(bg, out, 1 << 24)
            out.write(real_pg)
        with open(folder / "app" / "app.log", "wb") as out:
            with open(bg_app, "rb") as bg:
                shutil.copyfileobj(bg, out, 1 << 24)
            out.write(real_app)
    for src in (SOURCE / "prometheus").glob("*.json"):
        _metrics(src, folder / "prometheus" / src.name, t0)
    # the window covers the healthy hours too, so every line is in the analysis
    lines = toml.splitlines()
    from datetime import UTC

    first = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f'start = "{first}"' if ln.startswith("start =") else ln for ln in lines]
    lines = [ln.replace("Checkout 503s", f"Checkout 503s ({size_mb} MB)") for ln in lines]
    (folder / "incident.toml").write_text("\n".join(lines) + "\n")
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


#: process kinds in a report's tree, told by their command line (the CLI is the tree's root)
_KINDS = (("kernel", "ipykernel"), ("chrome", "chrom"))


def _kind(pid: int, root: int) -> str:
    if pid == root:
        return "cli"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read(400).decode(errors="replace")
    except OSError:
        return "other"
    return next((kind for kind, word in _KINDS if word in cmd), "other")


def _tree(pid: int) -> dict[int, tuple[int, float]]:
    """``{pid: (resident bytes, CPU seconds)}`` of ``pid`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    stat: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(entry)
        children.setdefault(int(fields[1]), []).append(p)
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        stat[p] = (int(fields[21]) * os.sysconf("SC_PAGE_SIZE"), cpu)
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        if p in stat:
            out[p] = stat[p]
        todo.extend(children.get(p, []))
    return out


def run_tree(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd``: its wall time, CPU seconds (the whole tree, from ``RUSAGE_CHILDREN``), the peak
    RSS summed over its process tree and per kind of process (cli, kernel, chrome, other: the peak
    of each kind's sum, sampled every 0.1 s), each kind's CPU seconds and the exit code."""
    import resource

    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    peaks: dict[str, int] = {}
    cpu: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.1):
            now: dict[str, int] = {}
            for p, (rss, seconds) in _tree(proc.pid).items():
                kind = cpu[p][0] if p in cpu else _kind(p, proc.pid)
                now[kind] = now.get(kind, 0) + rss
                cpu[p] = (kind, seconds)
            peak = max(peak, sum(now.values()))
            for kind, rss in now.items():
                peaks[kind] = max(peaks.get(kind, 0), rss)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    stop.set()
    watcher.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    kinds_cpu: dict[str, float] = {}
    for kind, seconds in cpu.values():
        kinds_cpu[kind] = kinds_cpu.get(kind, 0.0) + seconds
    return {"seconds": time.perf_counter() - t, "peak_mb": peak / 2**20, "rc": proc.returncode,
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peaks_mb": {k: v / 2**20 for k, v in peaks.items()}, "kinds_cpu_s": kinds_cpu,
            "stderr": err[-2000:], "stdout": out[-4000:]}  # fmt: skip


def naive_pass(folder: Path) -> float:
    """Seconds for the baseline: every line of the two logs read, its timestamp parsed (polars)."""
    import polars as pl

    t = time.perf_counter()
    for log, fmt, cut in ((folder / "pg" / "postgresql.log", "%Y-%m-%d %H:%M:%S%.3f", 23),
                          (folder / "app" / "app.log", "%Y-%m-%d %H:%M:%S,%3f", 23)):  # fmt: skip
        frame = pl.scan_csv(log, has_header=False, separator="\x1f", quote_char=None,
                            schema={"text": pl.String}).select(
            pl.col("text").str.slice(0, cut).str.to_datetime(fmt, strict=False).alias("ts")
        ).filter(pl.col("ts").is_not_null()).select(pl.len(), pl.col("ts").min()).collect()  # fmt: skip
        assert frame.height == 1
    return time.perf_counter() - t


#: what the postmortem notebook and its export bundle do, one stage at a time (``--stages``)
_STAGES = r"""
import sys, time, warnings
warnings.simplefilter("ignore")
import loglib as ll
from loglib.postmortem._charts import incident_charts

def mem():
    got = dict(ln.split(":", 1) for ln in open("/proc/self/status") if ln.startswith(("VmRSS", "VmHWM")))
    return {k: int(v.split()[0]) / 1024 for k, v in got.items()}

def stage(name, fn):
    t = time.perf_counter()
    out = fn()
    m = mem()
    print(f"  {name:24s} {time.perf_counter() - t:6.1f} s  RSS {m['VmRSS']:6,.0f} MB  peak {m['VmHWM']:6,.0f} MB", flush=True)
    return out

inc = stage("load incident.toml", lambda: ll.Incident.load(sys.argv[1]))
for s in inc.sources:
    stage(f"read {s.name or s.kind}", lambda s=s: inc.read(s.name or s.kind))
ev = inc.evidence
stage("sessions", lambda: ev.sessions)
stage("events", lambda: ev.events)
found = stage("findings", lambda: ll.findings(inc))
stage("summary + impact", lambda: (ll.postmortem.summary(inc, found), ll.postmortem.impact(inc)))
stage("timeline document", lambda: ll.timeline_document(inc))
stage("chart overview", lambda: ll.charts.overview(inc))
stage("evidence charts", lambda: ll.postmortem.evidence_charts(inc, found))
every = ll.postmortem.leak_every(inc)
stage("leak rates + chart", lambda: (ll.leak_rates(inc, every=every, best_only=True), ll.charts.leak_rate(inc, every=every)))
stage("all bundle charts", lambda: incident_charts(inc, leak_every=every))
stage("export_bundle", lambda: ll.export_bundle(inc, sys.argv[2], leak_every=every))
"""


def stages(folder: Path, cache_dir: Path) -> None:
    """Each stage of the postmortem in one fresh interpreter (cold cache): seconds, RSS and peak RSS after it."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    env = dict(
        os.environ,
        LOGLIB_CACHE_DIR=str(cache_dir),
        POLARS_MAX_THREADS=os.environ.get("POLARS_MAX_THREADS", "2"),
    )
    out = folder.with_suffix(".stages")
    print(f"\nstages of the postmortem, {folder.name} (one process, cold cache):", flush=True)
    subprocess.run([sys.executable, "-c", _STAGES, str(folder), str(out)], env=env, check=True)
    shutil.rmtree(out, ignore_errors=True)


def measure(folder: Path, only: set[str], cache_dir: Path) -> dict[str, dict]:
    loglib = str(Path(sys.executable).with_name("loglib"))
    env = dict(
        os.environ,
        LOGLIB_CACHE_DIR=str(cache_dir),
        POLARS_MAX_THREADS=os.environ.get("POLARS_MAX_THREADS", "2"),
    )
    out: dict[str, dict] = {}
    if "report" in only:
        shutil.rmtree(cache_dir, ignore_errors=True)
        out["report (cold)"] = run_tree(
            [loglib, "report", str(folder), "--out", str(folder.with_suffix(".out")), "-q"], env
        )
        out["report (warm)"] = run_tree(
            [loglib, "report", str(folder), "--out", str(folder.with_suffix(".out")), "-q"], env
        )
    if "connections" in only:
        out["connections"] = run_tree(
            [
                loglib,
                "connections",
                str(folder / "pg" / "postgresql.log"),
                "--every",
                "1h",
                "--prefix",
                PREFIX,
                "-q",
            ],
            env,
        )
    if "export" in only:
        shutil.rmtree(cache_dir, ignore_errors=True)
        code = (
            "import warnings, loglib as ll; warnings.simplefilter('ignore'); "
            f"ll.export_bundle(ll.Incident.load({str(folder)!r}), {str(folder.with_suffix('.bundle'))!r})"
        )
        out["export_bundle"] = run_tree([sys.executable, "-c", code], env)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1024", help="MiB, comma-separated (the first is the base)")
    parser.add_argument("--only", default="report,connections,export")
    parser.add_argument("--keep", action="store_true", help="reuse incident folders already built")
    parser.add_argument(
        "--stages", action="store_true", help="also time each stage of the postmortem in one process"
    )
    parser.add_argument("--json", help="also append each measurement to this file, one JSON object a line")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    only = set(args.only.split(","))
    WORK.mkdir(parents=True, exist_ok=True)
    base: dict[str, dict] = {}
    table: list[dict] = []
    for size in sizes:
        folder = WORK / f"scale-{size}"
        if args.keep and (folder / "incident.toml").exists():
            n_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        else:
            t = time.perf_counter()
            n_bytes = build(folder, size)
            print(f"built {folder} ({n_bytes / 1e6:,.0f} MB) in {time.perf_counter() - t:.0f} s", flush=True)
        naive = naive_pass(folder)
        if args.stages:
            stages(folder, WORK / f"cache-{size}")
        results = measure(folder, only, WORK / f"cache-{size}")
        results["naive polars pass"] = {"seconds": naive, "peak_mb": float("nan"), "rc": 0}
        print(f"\n{n_bytes / 1e6:,.0f} MB incident ({folder.name}):")
        for name, r in results.items():
            ratio = ""
            if name in base and size != sizes[0]:
                ratio = f"  x{r['seconds'] / base[name]['seconds']:.1f} time vs {sizes[0]} MiB"
            rss = (
                f"{r['peak_mb']:7,.0f} MB peak RSS ({r['peak_mb'] * 2**20 / n_bytes:.2f}x input)"
                if r["peak_mb"] == r["peak_mb"]
                else " " * 32
            )
            fail = (
                ""
                if r["rc"] == 0
                else f"  FAILED rc={r['rc']}: {r.get('stderr', '').strip().splitlines()[-1:]}"
            )
            print(f"  {name:18s} {r['seconds']:7.1f} s {rss}{ratio}"
                  f"  ({r['seconds'] / naive:.1f}x the naive pass){fail}", flush=True)  # fmt: skip
            if "cpu_s" in r:  # where the CPU and the memory went, by kind of process
                kinds = ", ".join(f"{k} {r['peaks_mb'][k]:,.0f} MB / {r['kinds_cpu_s'].get(k, 0):.1f} CPU-s"
                                  for k in sorted(r["peaks_mb"]))  # fmt: skip
                print(
                    f"  {'':18s} {r['cpu_s']:7.1f} CPU-s (tree); peak and CPU by process: {kinds}", flush=True
                )
            row = {k: v for k, v in r.items() if k not in ("stderr", "stdout")}
            table.append({"size_mib": size, "input_bytes": n_bytes, "face": name, **row})
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(table[-1]) + "\n")
        if size == sizes[0]:
            base = results
    print("\nREADME rows (Markdown):\n" + markdown_table(table, sizes[0]))


def markdown_table(rows: list[dict], base_mib: int) -> str:
    """The README's table of the faces at each size: wall, CPU, peak RSS of the tree (× the input)
    and of each process, and the time as a multiple of the ``base_mib`` case."""
    base = {r["face"]: r for r in rows if r["size_mib"] == base_mib}
    lines = ["| face | input | wall | CPU-s (tree) | peak RSS (tree) | peak by process | time vs base |",
             "|---|---:|---:|---:|---:|---|---:|"]  # fmt: skip
    for r in rows:
        if r["face"] == "naive polars pass":
            continue
        gb = r["input_bytes"] / 1e9
        peak = f"{r['peak_mb']:,.0f} MB ({r['peak_mb'] * 2**20 / r['input_bytes']:.1f}×)"
        kinds = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(r.get("peaks_mb", {}).items()) if v >= 50)
        b = base.get(r["face"])
        vs = f"×{r['seconds'] / b['seconds']:.1f}" if b is not None and r["size_mib"] != base_mib else "base"
        cpu = f"{r['cpu_s']:.1f}" if "cpu_s" in r else ""
        lines.append(
            f"| {r['face']} | {gb:.2f} GB | {r['seconds']:.0f} s | {cpu} | {peak} | {kinds} | {vs} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
