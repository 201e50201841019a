"""Record several catalogue scenarios side by side (``python data/generate/lab/batch.py``).

Each scenario is one ``record.py`` process on its own free loopback ports; at most ``--jobs``
run at once (the lab used 3 on a 2-core machine). ``--straddle`` starts every scenario's load
so that the next UTC hour boundary falls in its middle (how the hour-crossing recordings were made).

    python data/generate/lab/batch.py leak-14 deploy-23 idle-33      # these, 3 at once
    python data/generate/lab/batch.py --missing                      # every catalogue entry not in data/lab
    python data/generate/lab/batch.py --straddle leak-10 leak-11 mixed-40
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab.params import CATALOGUE, draw  # noqa: E402

LAB = HERE.parents[2] / "data" / "lab"


def straddle_start(duration_s: float, now: datetime | None = None) -> datetime:
    """When a load of ``duration_s`` must start for the next UTC hour to fall in its middle.

    >>> straddle_start(360, datetime(2026, 1, 1, 9, 40, tzinfo=UTC)).strftime("%H:%M:%S")
    '09:57:00'
    """
    now = now or datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = hour - timedelta(seconds=duration_s / 2)
    return start if start > now + timedelta(seconds=90) else start + timedelta(hours=1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="scenarios as SHAPE-SEED")
    p.add_argument("--missing", action="store_true", help="every catalogue scenario not yet in data/lab")
    p.add_argument("--jobs", type=int, default=3)
    p.add_argument("--straddle", action="store_true")
    args = p.parse_args(argv)
    names = list(args.names)
    if args.missing:
        names += [f"{s}-{n}" for s, n in CATALOGUE if not (LAB / f"{s}-{n}" / "truth.json").exists()]
    queue = [(name.rsplit("-", 1)[0], int(name.rsplit("-", 1)[1])) for name in names]
    running: list[tuple[str, subprocess.Popen]] = []
    while queue or running:
        while queue and len(running) < args.jobs:
            shape, seed = queue.pop(0)
            cmd = [sys.executable, str(HERE / "record.py"), shape, str(seed)]
            if args.straddle:
                cmd += ["--at", f"{straddle_start(draw(shape, seed).duration_s).timestamp():.0f}"]
            running.append((f"{shape}-{seed}", subprocess.Popen(cmd)))
        time.sleep(2)
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            print(f"{item[0]}: exit {item[1].returncode}", flush=True)


if __name__ == "__main__":
    main()
