"""The README's Python examples that use the bundled data run as printed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
# examples about the bundled data (the others show the user's own paths such as logs/*.log)
RUNNABLE = [b for b in BLOCKS if "data/" in b]


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.splitlines()[0][:40] for b in RUNNABLE])
def test_example_runs(block, tmp_path):
    """The example runs from the repository root; what it writes goes to a temp dir."""
    code = "import polars as pl\nimport loglib as ll\n" + block
    code = code.replace('"out/', f'"{tmp_path}/out/').replace(
        "sqlite:///incident.db", f"sqlite:///{tmp_path}/i.db"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_there_are_runnable_examples():
    """At least the quick example, the incident example and the charts example are checked."""
    assert len(RUNNABLE) >= 3
