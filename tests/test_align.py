"""align: the common UTC grid and its fill rules (counts 0 inside a source's range, gauges stale -> null)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.core.schema import UTC_TS

T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)


def _ts(*minutes: float) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in minutes]


class TestAlign:
    """Whole-frame results on small inputs."""

    def test_app_counts_and_gauges(self):
        """Counts are 0 in empty buckets inside the app's range, null outside; gauges go stale."""
        app = pl.DataFrame(
            {
                "ts": _ts(1.2, 1.5, 2.1),
                "level": ["error", "info", "error"],
                "error_class": ["pool_timeout", None, "server_closed"],
            },
            schema_overrides={"ts": UTC_TS},
        )
        metrics = pl.DataFrame(
            {"ts": _ts(0.5, 3.0), "series": ["g", "g"], "value": [1.0, 4.0]}, schema_overrides={"ts": UTC_TS}
        )
        got = ll.align(
            app=app, metrics=metrics, every="1m", start=T0, end=T0 + timedelta(minutes=5), staleness="90s"
        )
        expected = pl.DataFrame(
            {
                "ts": _ts(0, 1, 2, 3, 4, 5),
                "app:events": [None, 2, 1, None, None, None],
                "app:errors": [None, 1, 1, None, None, None],
                "app:pool_timeout": [None, 1, 0, None, None, None],
                "app:server_closed": [None, 0, 1, None, None, None],
                "metric:g": [1.0, 1.0, None, 4.0, None, None],
            },
            schema_overrides={
                "ts": UTC_TS,
                **{
                    c: pl.Int64 for c in ("app:events", "app:errors", "app:pool_timeout", "app:server_closed")
                },
            },
        )
        assert_frame_equal(got, expected)

    def test_events_and_pg(self):
        """Incident events count per kind; PostgreSQL counts and open sessions come from pg_connections."""
        log = (
            b"2024-03-01 10:00:05 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\n"
            b"2024-03-01 10:01:30 UTC [7] LOG:  could not receive data from client: Connection reset by peer\n"
            b"2024-03-01 10:01:30 UTC [7] LOG:  disconnection: session time: 0:01:25.000 user=a database=b "
            b"host=10.0.0.5 port=5000\n"
        )
        events = pl.DataFrame({"ts": _ts(1.1), "kind": ["deploy"]}, schema_overrides={"ts": UTC_TS})
        got = ll.align(pg=ll.read_pg_log(log), events=events, every="1m")
        expected = pl.DataFrame(
            {
                "ts": _ts(0, 1),
                "pg:new": [1, 0],
                "pg:closed": [0, 1],
                "pg:open": [1, 0],
                "pg:open_max": [1, 1],
                "pg:client_reset": [0, 1],
                "event:deploy": [0, 1],
            },
            schema_overrides={"ts": UTC_TS, "pg:new": pl.Int64, "pg:closed": pl.Int64, "pg:open": pl.Int64,
                              "pg:open_max": pl.Int64, "pg:client_reset": pl.Int64, "event:deploy": pl.Int64},
        )  # fmt: skip
        assert_frame_equal(got, expected)

    def test_needs_a_source(self):
        """Without any source or window there is nothing to align."""
        with pytest.raises(ValueError, match="at least one non-empty source"):
            ll.align()

    def test_bad_every(self):
        """A duration that is not one is named."""
        with pytest.raises(ValueError, match="every='soon' is not a duration"):
            ll.align(events=pl.DataFrame({"ts": _ts(1), "kind": ["note"]}), every="soon")
