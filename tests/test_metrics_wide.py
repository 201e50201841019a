"""metrics_wide: one column per series, exact or resampled, gaps left as nulls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll

T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)


def long_frame(rows: list[tuple[float, str, float]]) -> pl.DataFrame:
    """Rows of (seconds after T0, series, value)."""
    return pl.DataFrame(
        [(T0 + timedelta(seconds=s), k, v) for s, k, v in rows],
        schema={"ts": ll.schema.UTC_TS, "series": pl.String, "value": pl.Float64},
        orient="row",
    )


def at(*seconds: float) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in seconds]


class TestExact:
    """Without every: the exact sample times."""

    def test_union_of_times_with_nulls(self) -> None:
        """Rows are every sample time of any series; a series without a sample there is null."""
        df = long_frame([(0, "b", 1), (0, "a", 2), (15, "a", 3), (30, "b", 4)])
        expected = pl.DataFrame(
            {"ts": at(0, 15, 30), "a": [2.0, 3.0, None], "b": [1.0, None, 4.0]},
            schema_overrides={"ts": ll.schema.UTC_TS},
        )
        assert_frame_equal(ll.metrics_wide(df), expected)

    def test_from_read_prometheus(self) -> None:
        """The reader's frame goes straight in; columns are series keys."""
        doc = (
            b'[{"metric":{"__name__":"up","instance":"a"},"values":[[1709287200,"1"],[1709287215,"0"]]},'
            b'{"metric":{"__name__":"up","instance":"b"},"values":[[1709287215,"1"]]}]'
        )
        wide = ll.metrics_wide(ll.read_prometheus(doc))
        assert wide.columns == ["ts", 'up{instance="a"}', 'up{instance="b"}']
        assert wide['up{instance="b"}'].to_list() == [None, 1.0]


class TestResampled:
    """With every: a regular grid, one value per bucket."""

    DF = long_frame([(0, "a", 1), (10, "a", 2), (70, "a", 5), (200, "a", 6), (5, "b", 3)])

    def test_last_on_a_regular_grid(self) -> None:
        """Buckets are labelled by their start; empty buckets are null rows, not zeros."""
        wide = ll.metrics_wide(self.DF, every="1m")
        assert wide["ts"].to_list() == at(0, 60, 120, 180)
        assert wide["a"].to_list() == [2.0, 5.0, None, 6.0]
        assert wide["b"].to_list() == [3.0, None, None, None]

    def test_mean(self) -> None:
        """agg='mean' averages the bucket's samples."""
        assert ll.metrics_wide(self.DF, every="1m", agg="mean")["a"].to_list() == [1.5, 5.0, None, 6.0]

    def test_rate_handles_counter_reset(self) -> None:
        """agg='rate' is per-second increase over the bucket; a drop counts as a reset."""
        df = long_frame([(0, "c", 100), (30, "c", 160), (60, "c", 220), (90, "c", 10), (120, "c", 70)])
        wide = ll.metrics_wide(df, every="1m", agg="rate")
        assert wide["c"].to_list() == [1.0, (60 + 10) / 60, 1.0]

    def test_first_sample_has_no_rate(self) -> None:
        """A bucket holding only a series' first sample has no rate (null), not zero."""
        df = long_frame([(50, "c", 5), (70, "c", 11)])
        assert ll.metrics_wide(df, every="1m", agg="rate")["c"].to_list() == [None, 0.1]

    def test_timedelta_every(self) -> None:
        """every may be a timedelta."""
        assert_frame_equal(
            ll.metrics_wide(self.DF, every=timedelta(minutes=1)), ll.metrics_wide(self.DF, every="1m")
        )

    def test_bad_agg(self) -> None:
        """An unknown aggregation lists the allowed ones."""
        with pytest.raises(ValueError, match="'last', 'mean'"):
            ll.metrics_wide(self.DF, every="1m", agg="median")
