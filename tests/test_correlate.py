"""correlate: as-of pairs with lags and a one-sentence summary, on real idle-drop logs and small inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.core.schema import UTC_TS
from tests.conftest import FILES

T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)


class TestRealIdleDrops:
    """App errors on the next use of a connection a middlebox reset (tests/files/incidents/idle-drops)."""

    def test_every_error_follows_a_reset(self):
        """Each of the 9 server_closed errors has a PostgreSQL client_reset before it, 0.1-3.5 s earlier."""
        inc = ll.Incident.load(FILES / "incidents" / "idle-drops")
        errors = inc.app.filter(pl.col("error_class") == "server_closed")
        resets = inc.pg.filter(pl.col("event") == "client_reset")
        c = ll.correlate(errors, resets, within="10s", direction="backward")
        assert (c.matched, c.total) == (9, 9)
        lags = c.pairs["lag"].dt.total_milliseconds()
        assert lags.max() < 0 and lags.min() > -3500
        assert c.summary.startswith(
            "9 of 9 `server_closed` errors have a PostgreSQL `client_reset` before, within 10 s"
        )

    def test_nothing_within_a_tight_limit(self):
        """Within 50 ms (as if they were the same instant) almost nothing pairs: the lag is the next use."""
        inc = ll.Incident.load(FILES / "incidents" / "idle-drops")
        errors = inc.app.filter(pl.col("error_class") == "server_closed")
        resets = inc.pg.filter(pl.col("event") == "client_reset")
        assert ll.correlate(errors, resets, within="50ms").matched == 0


class TestCorrelate:
    """Small inputs, whole frames."""

    def test_pairs_and_keys(self):
        """Keys must agree; unmatched left rows stay with nulls."""
        left = pl.DataFrame(
            {"ts": [T0, T0 + timedelta(seconds=10)], "pid": [1, 2]}, schema_overrides={"ts": UTC_TS}
        )
        right = pl.DataFrame(
            {"ts": [T0 + timedelta(milliseconds=300), T0 + timedelta(seconds=10)], "pid": [1, 3]},
            schema_overrides={"ts": UTC_TS},
        )
        got = ll.correlate(left, right, within="1s", by="pid").pairs
        expected = pl.DataFrame(
            {
                "left_row": [0, 1],
                "left_ts": [T0, T0 + timedelta(seconds=10)],
                "right_row": [0, None],
                "right_ts": [T0 + timedelta(milliseconds=300), None],
                "lag": [timedelta(milliseconds=300), None],
                "matched": [True, False],
                "pid": [1, 2],
            },
            schema_overrides={"left_row": pl.UInt32, "right_row": pl.UInt32, "left_ts": UTC_TS, "right_ts": UTC_TS,
                              "lag": pl.Duration("us")},
        )  # fmt: skip
        assert_frame_equal(got, expected)

    def test_direction_forward(self):
        """forward only looks after each left event."""
        left = pl.DataFrame({"ts": [T0]}, schema_overrides={"ts": UTC_TS})
        right = pl.DataFrame(
            {"ts": [T0 - timedelta(seconds=1), T0 + timedelta(seconds=2)]}, schema_overrides={"ts": UTC_TS}
        )
        assert ll.correlate(left, right, within="5s", direction="forward").pairs["right_row"].to_list() == [1]
        assert ll.correlate(left, right, within="5s").pairs["right_row"].to_list() == [0]

    def test_bad_direction(self):
        """Directions are listed."""
        with pytest.raises(ValueError, match="direction='sideways'"):
            ll.correlate(pl.DataFrame({"ts": []}), pl.DataFrame({"ts": []}), direction="sideways")
