"""Regenerate the README's performance table from the benchmark scripts' own output.

Runs ``bench_pg_log.py``, ``bench_app_log.py`` and ``bench_metrics.py`` (or reads outputs they
printed before, with ``--from``), times ``loglib --help`` against a bare ``python -c pass``, and rewrites the table
between the ``perf-table`` markers of README.md. Every row is a figure with the baseline it was
measured against in the same run.

    python benchmarks/readme_table.py                      # run everything (about 10 minutes)
    python benchmarks/readme_table.py --from pg.txt app.txt metrics.txt
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- perf-table: start -->", "<!-- perf-table: end -->"
LINE = re.compile(
    r"^(?P<label>.+?)\s+(?P<mb>[\d,]+) MB\s+(?P<s>[\d.]+) s\s+(?P<mbs>\d+) MB/s"
    r"(?:, (?P<ratio>[\d.]+)x (?P<base>\S+))?, peak RSS (?P<rss>[\d,]+) MB \((?P<x>[\d.]+)x file\)$"
)


def rows(output: str) -> list[str]:
    """Markdown rows for the lines of one benchmark's output."""
    out = []
    for line in output.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        if m["ratio"]:
            ratio = f"**{m['ratio']}×** {m['base']}"
        else:
            ratio = "baseline" if "baseline" in m["label"] else "— (no baseline in this script)"
        out.append(
            f"| {m['label']} | {m['mb']} MB | {m['s']} s | {m['mbs']} MB/s | {ratio} | "
            f"{m['rss']} MB ({m['x']}× file) |"
        )
    return out


def help_row(repeat: int = 5) -> str:
    """``loglib --help`` against the interpreter's own start-up, fastest of ``repeat`` runs."""
    exe = Path(sys.executable).with_name("loglib")

    def fastest(cmd: list[str]) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
        return min(times)

    ours, bare = fastest([str(exe), "--help"]), fastest([sys.executable, "-c", "pass"])
    return f"| `loglib --help` (lazy imports) | | {ours:.2f} s | | python -c pass: {bare:.2f} s | |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="saved", nargs="*", type=Path, help="saved benchmark outputs")
    args = parser.parse_args()
    if args.saved:
        outputs = [p.read_text() for p in args.saved]
    else:
        outputs = [
            subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / script), *extra],
                check=True, capture_output=True, text=True,
            ).stdout
            for script, extra in (("bench_pg_log.py", ["--repeat", "1"]), ("bench_app_log.py", ["--size-mb", "100"]),
                                  ("bench_metrics.py", []))
        ]  # fmt: skip
    table = [
        "| what | input | time | throughput | ratio to the baseline (same run) | peak RSS |",
        "|---|---|---|---|---|---|",
        *(row for output in outputs for row in rows(output)),
        help_row(),
    ]
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + "\n".join(table) + "\n" + END + tail)
    print("\n".join(table))


if __name__ == "__main__":
    main()
