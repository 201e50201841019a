"""Sizes that don't follow the input (issue 19): a week of metrics draws as few points as an hour."""

from __future__ import annotations

import json

import loglib as ll
from loglib.present.charts._pool import MAX_POINTS


def week_of_pool_gauge(step_s: int = 5) -> bytes:
    """A Prometheus query_range export: db_pool_checked_out every 5 s for 7 days, full for one minute."""
    t0 = 1_795_000_000
    n = 7 * 86400 // step_s
    values = [[t0 + i * step_s, "8" if n // 2 <= i < n // 2 + 12 else str(i % 3)] for i in range(n)]
    doc = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "db_pool_checked_out", "instance": "api-1"}, "values": values},
        {"metric": {"__name__": "db_pool_size", "instance": "api-1"}, "values": [[t0, "5"], [t0 + n * step_s, "5"]]},
    ]}}  # fmt: skip
    return json.dumps(doc).encode()


def test_pool_chart_points_are_bounded() -> None:
    """120,960 samples become at most MAX_POINTS per trace, the figure stays small, the peak stays."""
    metrics = ll.read_prometheus(week_of_pool_gauge())
    assert metrics.height > 100_000
    fig = ll.charts.pool_utilisation(ll.Evidence.from_frames(metrics=metrics))
    gauge = next(t for t in fig.data if t.name == "checked out")
    assert all(len(t.x) <= MAX_POINTS for t in fig.data if t.x is not None)
    assert max(gauge.y) == 8 / 5 * 100  # the minute the pool was full is not averaged away
    assert "highest in the" in gauge.hovertemplate
    assert len(fig.to_json()) < 1_000_000
