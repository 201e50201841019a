"""Record one lab smoke scenario with real software (used by the lab smoke tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def record_smoke(shape: str, out: Path) -> Path:
    """Run ``data/generate/lab/record.py SHAPE 1 --smoke --out OUT``; the recording's folder.

    Example: ``record_smoke("pgbouncer", tmp) == tmp / "smoke-1"`` after about 75 s.
    """
    done = subprocess.run(
        [sys.executable, str(ROOT / "data/generate/lab/record.py"), shape, "1", "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "smoke-1"
