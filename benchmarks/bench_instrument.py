"""What log_pool_events costs: checkout + checkin of a pooled connection, with and without it.

Run: ``python benchmarks/bench_instrument.py [--ops 20000] [--url postgresql+psycopg://...]``.
Without ``--url`` it uses a file-backed SQLite database (a QueuePool, like a server's), so the
numbers measure the pool and the instrumentation, not the network. One "operation" is
``engine.connect()`` then ``close()``: a checkout, a reset and a checkin, i.e. three event
lines when instrumented. Variants: no instrumentation; a file with call sites (the default);
a file without call sites (``capture_stack=False``); sampling 10 % of checkouts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's loglib
from loglib.instrument import log_pool_events


def _app_call(engine) -> None:
    """A few frames of 'application' above the checkout, as in a real request handler."""
    conn = engine.connect()
    conn.close()


def _time_ops(engine, ops: int) -> float:
    start = time.perf_counter()
    for _ in range(ops):
        _app_call(engine)
    return (time.perf_counter() - start) / ops * 1e6


def run(url: str | None, ops: int, repeats: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="loglib-bench-"))
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    engine = create_engine(url, poolclass=QueuePool, pool_size=5, max_overflow=0)
    _time_ops(engine, 200)  # connect and warm up
    variants = {
        "plain": None,
        "logged, call site": {"capture_stack": True},
        "logged, no call site": {"capture_stack": False},
        "logged, sample=0.1": {"capture_stack": True, "sample": 0.1},
    }
    results: dict[str, float] = {}
    for name, options in variants.items():
        times = []
        for r in range(repeats):
            log = None
            if options is not None:
                log = log_pool_events(engine, path=tmp / f"{name.replace(' ', '_')}-{r}.jsonl", **options)
            times.append(_time_ops(engine, ops))
            if log is not None:
                log.remove()
        results[name] = statistics.median(times)
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--url", help="a database URL (default: a SQLite file)")
    args = parser.parse_args()
    results = run(args.url, args.ops, args.repeats)
    base = results["plain"]
    print(
        f"checkout+checkin, median of {args.repeats} x {args.ops:,} operations ({args.url or 'SQLite file'}):"
    )
    for name, us in results.items():
        extra = "" if name == "plain" else f"   overhead {us - base:+.1f} µs/op ({us / base - 1:+.0%})"
        print(f"  {name:<22} {us:8.1f} µs/op{extra}")


if __name__ == "__main__":
    main()
