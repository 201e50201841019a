"""Pool-exhaustion windows end at a restart (issue 12 defect 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from loglib.analysis.findings.pool_exhaustion import _windows

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _ts(seconds: list[float]) -> pl.Series:
    return pl.Series("ts", [T0 + timedelta(seconds=s) for s in seconds]).cast(pl.Datetime("us", "UTC"))


def test_a_restart_splits_two_fills_closer_than_the_window_gap():
    fails = _ts([0, 1, 2, 80, 81, 81.5, 150, 151, 200])  # full, restart at 80, in-flight failures, full again
    restart = _ts([80.2])
    assert _windows(fails).height == 1
    w = _windows(fails, restart)
    assert w["failures"].to_list() == [6, 3]
    assert (w["end"][0] - T0).total_seconds() == 81.5


def test_failures_right_after_a_restart_without_a_pause_stay_in_its_window():
    fails = _ts([0, 1, 2, 3, 4, 5])
    assert _windows(fails, _ts([2.5])).height == 1
