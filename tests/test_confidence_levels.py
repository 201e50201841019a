"""One definition of the confidence levels (``loglib.schema.CONFIDENCE_LEVELS``), weakest first:
the leak tables state them and the findings rank them by it, with no copy of the words elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import loglib as ll
from loglib.analysis.findings.pool_exhaustion import _weakest
from loglib.core.schema import CONFIDENCE_LEVELS

ROOT = Path(__file__).resolve().parents[1]


def test_the_levels_are_defined_once_weakest_first():
    assert CONFIDENCE_LEVELS == ("none", "low", "medium", "high")
    assert ll.schema.CONFIDENCE_LEVELS is CONFIDENCE_LEVELS
    assert _weakest(["high", "medium", "low"]) == "low" and _weakest(["high", "medium"]) == "medium"
    leaks = ast.parse((ROOT / "loglib/analysis/leaks.py").read_text())
    words = [n.value for n in ast.walk(leaks) if isinstance(n, ast.Constant) and n.value in CONFIDENCE_LEVELS]
    assert words == [], f"leaks.py spells confidence levels itself: {words}"
    finding = ast.parse((ROOT / "loglib/analysis/findings/pool_exhaustion.py").read_text())
    orders = [
        n
        for n in ast.walk(finding)
        if isinstance(n, ast.Tuple) and {getattr(e, "value", None) for e in n.elts} >= {"low", "high"}
    ]
    assert orders == [], "pool_exhaustion.py keeps an order of its own"


@pytest.mark.parametrize(
    "folder",
    ["data/incidents/pool-exhaustion", "data/lab/leak-10", "data/lab/leak-11", "data/lab/pgbouncer-63"],
)
def test_every_leak_bucket_states_a_shared_level(folder):
    """leak-11 and pgbouncer-63 are held-out lab recordings (looked at, not tuned on)."""
    inc = ll.Incident.load(ROOT / folder)
    for every in ("1m", "1h"):
        levels = set(ll.leak_rates(inc, every=every)["confidence"].drop_nulls())
        assert levels and levels <= set(CONFIDENCE_LEVELS), (every, levels)
