"""replay_alert: pending/firing/resolved the way Prometheus' rule evaluation would on the data."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import loglib as ll

T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
E0 = int(T0.timestamp())


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def long_frame(series: dict[str, list[float | None]], step: timedelta = timedelta(minutes=1)) -> pl.DataFrame:
    """A canonical-looking long frame: one row per non-None value, ``step`` apart."""
    rows = [
        (T0 + i * step, key, v)
        for key, values in series.items()
        for i, v in enumerate(values)
        if v is not None
    ]
    return pl.DataFrame(
        rows, schema={"ts": ll.schema.UTC_TS, "series": pl.String, "value": pl.Float64}, orient="row"
    )


def states(df: pl.DataFrame) -> list[tuple]:
    return df.select("ts", "series", "state", "reason").rows()


class TestErrorRate:
    """ "503 rate > 5% for 5 minutes"."""

    @staticmethod
    def counters() -> pl.DataFrame:
        """Counters scraped every 15 s for 30 min; 10% of requests fail from minute 10 to 20."""
        ok = [0.0]
        bad = [0.0]
        for i in range(1, 121):
            failing = 40 <= i < 80
            ok.append(ok[-1] + (90 if failing else 100))
            bad.append(bad[-1] + (10 if failing else 1))
        series = [
            {"metric": {"__name__": "http_requests_total", "code": "200"}, "values": [[E0 + 15 * i, str(v)] for i, v in enumerate(ok)]},
            {"metric": {"__name__": "http_requests_total", "code": "503"}, "values": [[E0 + 15 * i, str(v)] for i, v in enumerate(bad)]},
        ]  # fmt: skip
        doc = {"status": "success", "data": {"resultType": "matrix", "result": series}}
        return ll.read_prometheus(json.dumps(doc).encode())

    def test_ratio_of_rates_fires_after_five_minutes(self) -> None:
        """The 503 share of per-minute rates goes pending at 10:10, fires at 10:15, resolves at 10:20."""
        wide = ll.metrics_wide(self.counters(), every="1m", agg="rate")
        e, o = pl.col('http_requests_total{code="503"}'), pl.col('http_requests_total{code="200"}')
        out = ll.replay_alert(wide, (e / (e + o)).alias("error_ratio"), ">", 0.05, for_="5m")
        assert [(r[0], r[2]) for r in states(out)] == [
            (minutes(10), "pending"),
            (minutes(15), "firing"),
            (minutes(20), "resolved"),
        ]
        assert out["alert"][0] == "error_ratio > 0.05 for 5m"
        assert out["active_since"].to_list() == [minutes(10)] * 3

    def test_recorded_ratio_series(self) -> None:
        """A recorded ratio exported with name= is replayed by its series key."""
        values = [0.01] * 5 + [0.08] * 7 + [0.02] * 3
        doc = [{"metric": {}, "values": [[E0 + 60 * i, str(v)] for i, v in enumerate(values)]}]
        df = ll.read_prometheus(json.dumps(doc).encode(), name="job:http_errors:ratio_rate1m")
        out = ll.replay_alert(df, "job:http_errors:ratio_rate1m", ">", 0.05, for_="5m")
        assert states(out) == [
            (minutes(5), "job:http_errors:ratio_rate1m", "pending", "condition true"),
            (minutes(10), "job:http_errors:ratio_rate1m", "firing", "held for 5m"),
            (minutes(12), "job:http_errors:ratio_rate1m", "resolved", "condition false"),
        ]
        assert out["value"].to_list() == [0.08, 0.08, 0.02]


class TestPoolSaturation:
    """ "pool checked-out / size > 0.8 for 5 minutes"."""

    @staticmethod
    def pools() -> pl.DataFrame:
        api1 = [2, 5, 9, 9, 9, 9, 9, 9, 10, 4, 3]  # above 80% from minute 2 to 8
        api2 = [2, 9, 9, 9, 3, 2, 2, 2, 2, 2, 2]  # above 80% for 3 minutes only
        return long_frame(
            {
                'db_pool_checked_out{instance="api-1"}': api1,
                'db_pool_checked_out{instance="api-2"}': api2,
                'db_pool_size{instance="api-1"}': [10] * 11,
                'db_pool_size{instance="api-2"}': [10] * 11,
            }
        )

    def test_expression_over_two_series(self) -> None:
        """checked_out / size over 0.8 for 5 minutes fires for api-1 at 10:07 and resolves at 10:09."""
        ratio = pl.col('db_pool_checked_out{instance="api-1"}') / pl.col('db_pool_size{instance="api-1"}')
        out = ll.replay_alert(self.pools(), ratio.alias("api-1"), ">", 0.8, for_="5m")
        assert [(r[0], r[2]) for r in states(out)] == [
            (minutes(2), "pending"),
            (minutes(7), "firing"),
            (minutes(9), "resolved"),
        ]

    def test_callable_gives_one_alert_per_column(self) -> None:
        """A callable returning a frame of ratios replays each column; api-2 never fires."""

        def saturation(wide: pl.DataFrame) -> pl.DataFrame:
            return wide.select(
                (
                    pl.col(f'db_pool_checked_out{{instance="{i}"}}')
                    / pl.col(f'db_pool_size{{instance="{i}"}}')
                ).alias(i)
                for i in ("api-1", "api-2")
            )

        out = ll.replay_alert(self.pools(), saturation, ">", 0.8, for_="5m", name="PoolSaturated")
        api2 = out.filter(pl.col("series") == "api-2")
        assert api2["state"].to_list() == ["pending", "inactive"]
        assert api2["ts"].to_list() == [minutes(1), minutes(4)]
        assert out.filter(pl.col("series") == "api-1")["state"].to_list() == ["pending", "firing", "resolved"]
        assert out["alert"].unique().to_list() == ["PoolSaturated"]


class TestSemantics:
    """Gaps, NaN, for=0, end of data, per-series alerts."""

    def test_gap_breaks_the_for_window(self) -> None:
        """Two missing steps split the condition: neither stretch holds 5 minutes, so nothing fires."""
        df = long_frame({"x": [1, 1, 1, 1, None, None, 1, 1, 1, 1, 0]})
        out = ll.replay_alert(df, "x", ">", 0.5, for_="5m")
        assert states(out) == [
            (minutes(0), "x", "pending", "condition true"),
            (minutes(4), "x", "inactive", "no data"),
            (minutes(6), "x", "pending", "condition true"),
            (minutes(10), "x", "inactive", "condition false"),
        ]

    def test_gap_resolves_a_firing_alert(self) -> None:
        """A firing alert whose data stops resolves at the first missing step, with no value."""
        df = long_frame({"x": [1] * 7 + [None] * 3 + [1]})
        out = ll.replay_alert(df, "x", ">", 0.5, for_="5m")
        resolved = out.filter(pl.col("state") == "resolved")
        assert resolved.select("ts", "value", "reason").rows() == [(minutes(7), None, "no data")]
        assert out["state"].to_list()[-1] == "pending"  # back after the gap, pending again

    def test_max_gap_bridges_short_holes(self) -> None:
        """With max_gap='5m' (Prometheus' lookback) a 3-minute hole does not break the window."""
        df = long_frame({"x": [1, 1, None, None, 1, 1, 1, 1]})
        out = ll.replay_alert(df, "x", ">", 0.5, for_="5m", max_gap="5m")
        assert [(r[0], r[2]) for r in states(out)] == [(minutes(0), "pending"), (minutes(5), "firing")]

    def test_for_zero_fires_at_once(self) -> None:
        """for_='0s' fires at the first true evaluation, with no pending state."""
        out = ll.replay_alert(long_frame({"x": [0, 1, 1, 0]}), "x", ">", 0.5, for_="0s")
        assert [(r[0], r[2]) for r in states(out)] == [(minutes(1), "firing"), (minutes(3), "resolved")]

    def test_nan_is_false(self) -> None:
        """A NaN value does not satisfy ``>`` (as in PromQL): it ends the pending state."""
        out = ll.replay_alert(long_frame({"x": [1, 1, math.nan, 1]}), "x", ">", 0.5, for_="5m")
        assert out["state"].to_list() == ["pending", "inactive", "pending"]

    def test_still_firing_at_end_has_no_resolution(self) -> None:
        """An alert firing when the data ends has no closing row."""
        out = ll.replay_alert(long_frame({"x": [1] * 8}), "x", ">=", 1, for_="5m")
        assert out["state"].to_list() == ["pending", "firing"]

    def test_metric_name_alerts_per_series(self) -> None:
        """A metric name replays every series of that metric separately, like labels in Prometheus."""
        df = long_frame({'up{instance="a"}': [1, 0, 0, 0], 'up{instance="b"}': [1, 1, 1, 1]}).with_columns(
            metric=pl.lit("up")
        )
        out = ll.replay_alert(df, "up", "<", 1, for_="2m")
        assert out["series"].unique().to_list() == ['up{instance="a"}']
        assert out["state"].to_list() == ["pending", "firing"]

    def test_schema(self) -> None:
        """The result follows ALERT_TRANSITIONS exactly."""
        out = ll.replay_alert(long_frame({"x": [1, 0]}), "x", ">", 0.5, for_="1m")
        assert out.schema == ll.schema.ALERT_TRANSITIONS.polars_schema


class TestArguments:
    """Bad arguments say what is allowed."""

    def test_bad_operator(self) -> None:
        """An unknown operator lists the allowed ones."""
        with pytest.raises(ValueError, match="'>', '>='"):
            ll.replay_alert(long_frame({"x": [1]}), "x", "=>", 1)

    def test_unknown_series(self) -> None:
        """An unknown series names what the frame holds."""
        with pytest.raises(ValueError, match="no series or metric named 'y'"):
            ll.replay_alert(long_frame({"x": [1]}), "y", ">", 1)

    def test_bad_duration(self) -> None:
        """for_ must be a duration."""
        with pytest.raises(ValueError, match="for_='five minutes' is not a duration"):
            ll.replay_alert(long_frame({"x": [1]}), "x", ">", 1, for_="five minutes")
