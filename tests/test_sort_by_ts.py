"""The eager read's column-at-a-time sort gives what ``DataFrame.sort`` gives (issue 17)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from loglib.sources._lazy import collect_batches, sort_by_ts


def _parts() -> list[pl.DataFrame]:
    """Three chunks out of time order, with ties, null times, an all-null column and long strings."""
    t0 = datetime(2024, 3, 1, 10)
    parts = []
    for k, minutes in enumerate(([5, 1, 1, None, 3], [0, 5, None, 2], [1, 4, 4, 0])):
        n = len(minutes)
        parts.append(
            pl.DataFrame(
                {
                    "ts": [None if m is None else t0 + timedelta(minutes=m) for m in minutes],
                    "message": [f"message {k}-{i} long enough to live outside the view" for i in range(n)],
                    "user": ["app" if i % 2 else None for i in range(n)],
                    "detail": pl.Series([None] * n, dtype=pl.String),
                    "line": list(range(k * 10, k * 10 + n)),
                }
            )
        )
    return parts


def test_sort_by_ts_is_dataframe_sort() -> None:
    frame = pl.concat(_parts(), rechunk=False)
    expected = frame.sort("ts", maintain_order=True, nulls_last=True)
    got = sort_by_ts(frame.get_columns())
    assert_frame_equal(got, expected)
    lines = got["line"].to_list()
    assert lines[:5] == [10, 23, 1, 2, 20]  # ties (minutes 0 and 1) keep file order
    assert lines[-2:] == [3, 12]  # null times last, in file order


def test_collect_batches_sorts_like_before() -> None:
    from loglib.core.rejects import ReadReport
    from loglib.core.schema import FrameSchema

    parts = _parts()
    expected = pl.concat(parts).sort("ts", maintain_order=True, nulls_last=True)
    schema = FrameSchema("x", "test", ())
    got = collect_batches(iter(parts), schema, [], ReadReport("t"), what="rows", raise_if_empty=True)
    assert_frame_equal(got, expected)
