"""Real Prometheus answers load completely: every series, every sample, NaN and gaps included.

The checks run twice: on the capture committed in ``tests/files/metrics/real`` (made by
``python -m tests.promserver``) and on a fresh capture from a live Prometheus 2.x scraping a
``prometheus_client`` app (skipped locally without ``prometheus``; required in CI).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from tests.conftest import FILES, require, require_tool

COMMITTED = FILES / "metrics" / "real"


def _series_key(labels: dict[str, str]) -> str:
    labels = dict(labels)
    name = labels.pop("__name__", None) or ""
    body = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{body}}}" if body else name


def expected_samples(path: Path) -> pl.DataFrame:
    """The samples of an API answer, read with nothing but the json module."""
    rows = []
    for r in json.loads(path.read_text())["data"]["result"]:
        key = _series_key(r["metric"])
        for t, v in r.get("values") or [r["value"]]:
            rows.append((key, round(float(t) * 1000), str(float(v))))
    return pl.DataFrame(
        rows, schema={"series": pl.String, "ms": pl.Int64, "value": pl.String}, orient="row"
    ).sort("series", "ms")


def loaded_samples(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("series").cast(pl.String),
        (pl.col("ts").dt.epoch("us") // 1000).alias("ms"),
        pl.col("value").map_elements(lambda v: str(float(v)), return_dtype=pl.String),
    ).sort("series", "ms")


@pytest.fixture(scope="module", params=["committed", pytest.param("live", marks=pytest.mark.prometheus)])
def capture_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed capture, or a fresh one from a live Prometheus."""
    if request.param == "committed":
        return COMMITTED
    require_tool("prometheus")
    require_tool("promtool")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        require(False, "prometheus-client (pip)")
    from tests.promserver import capture

    return capture(tmp_path_factory.mktemp("prometheus")).out


class TestQueryRange:
    """A real /api/v1/query_range answer."""

    def test_every_series_and_sample(self, capture_dir: Path) -> None:
        """Every series and every sample of the answer is in the frame, values and times exact."""
        path = capture_dir / "query_range.json"
        df = ll.read_prometheus(path)
        assert_frame_equal(loaded_samples(df), expected_samples(path))
        assert ll.read_report(df).lines_rejected == 0

    def test_nan_and_inf_kept(self, capture_dir: Path) -> None:
        """NaN and +Inf samples come back as such, not dropped and not nulls."""
        df = ll.read_prometheus(capture_dir / "query_range.json")
        ratio = df.filter(pl.col("metric") == "weird_ratio")["value"]
        assert ratio.is_nan().sum() >= 3 and (~ratio.is_nan()).sum() >= 3
        assert (df.filter(pl.col("metric") == "weird_ceiling")["value"] == math.inf).all()
        assert df["value"].null_count() == 0

    def test_gap_is_missing_steps(self, capture_dir: Path) -> None:
        """While the series was gone, its steps are missing: no row, no zero."""
        meta = json.loads((capture_dir / "capture.json").read_text())
        df = ll.read_prometheus(capture_dir / "query_range.json")
        flappy = df.filter(pl.col("metric") == "flappy_up")
        steady = df.filter(pl.col("series").cast(pl.String).str.starts_with("db_pool_size{"))["ts"].unique()
        missing = set(steady.to_list()) - set(flappy["ts"].to_list())
        assert len(missing) >= 2
        gap_start, gap_end = (datetime.fromtimestamp(t, UTC) for t in meta["gap"])
        assert all(gap_start <= t <= gap_end + timedelta(seconds=2) for t in missing)
        assert (flappy["value"] != 0).all()
        assert flappy["ts"].diff().drop_nulls().max() > timedelta(seconds=1.5)

    def test_labels_are_a_struct(self, capture_dir: Path) -> None:
        """Labels are queryable struct fields, null where a series lacks the label."""
        df = ll.read_prometheus(capture_dir / "query_range.json")
        pools = (
            df.filter(pl.col("labels").struct.field("pool") == "api-1")["metric"].unique().sort().to_list()
        )
        assert pools == ["db_pool_checked_out", "db_pool_size"]
        assert df.filter(pl.col("metric") == "up")["labels"].struct.field("pool").is_null().all()

    def test_chunks_merge_without_duplicates(self, capture_dir: Path) -> None:
        """Two overlapping chunks of the range give exactly the full answer, each point once."""
        full = ll.read_prometheus(capture_dir / "query_range.json")
        parts = ll.read_prometheus(
            [capture_dir / "query_range_part1.json", capture_dir / "query_range_part2.json"]
        )
        assert_frame_equal(parts.drop("file"), full.drop("file"))
        assert any("duplicate point" in note for note in ll.read_report(parts).notes)


class TestOtherAnswers:
    """Instant queries, raw range vectors, expressions without a name, errors, the TSDB dump."""

    def test_instant_vector(self, capture_dir: Path) -> None:
        """A /api/v1/query vector answer gives one sample per series."""
        path = capture_dir / "query_instant.json"
        df = ll.read_prometheus(path)
        assert_frame_equal(loaded_samples(df), expected_samples(path))
        assert df["series"].n_unique() == df.height

    def test_raw_samples_keep_milliseconds(self, capture_dir: Path) -> None:
        """Raw scrape times (float seconds with milliseconds) are kept to the millisecond."""
        path = capture_dir / "query_raw.json"
        df = ll.read_prometheus(path)
        assert_frame_equal(loaded_samples(df), expected_samples(path))
        assert (df["ts"].dt.millisecond() != 0).any()

    def test_expression_takes_name(self, capture_dir: Path) -> None:
        """A rate() answer has no __name__: the metric is name=, or its labels; the key keeps the labels."""
        path = capture_dir / "query_rate.json"
        named = ll.read_prometheus(path, name="rate(http_requests_total[3s])")
        assert named["metric"].unique().to_list() == ["rate(http_requests_total[3s])"]
        assert named["series"].cast(pl.String).str.starts_with('rate(http_requests_total[3s]){code="').all()
        bare = ll.read_prometheus(path)
        # named from its labels (issue 13)
        assert bare["metric"].cast(pl.String).str.starts_with("{code=").all()
        assert bare["series"].cast(pl.String).str.starts_with('{code="').all()

    def test_error_answer_says_why(self, capture_dir: Path) -> None:
        """An error answer raises FormatError quoting Prometheus' own message."""
        with pytest.raises(ll.FormatError, match=r"bad_data: .*parse error"):
            ll.read_prometheus(capture_dir / "query_error.json")

    def test_tsdb_dump_matches_raw_samples(self, capture_dir: Path) -> None:
        """promtool tsdb dump holds the raw samples, plus staleness markers printed as NaN."""
        raw = loaded_samples(ll.read_prometheus(capture_dir / "query_raw.json"))
        dump_frame = ll.read_prometheus(capture_dir / "tsdb_dump.txt")
        assert ll.read_report(dump_frame).format == "promtool_dump"
        assert ll.read_report(dump_frame).lines_rejected == 0
        dump = loaded_samples(dump_frame)
        assert raw.join(dump, on=["series", "ms"], how="anti").height == 0
        extra = dump.join(raw, on=["series", "ms"], how="anti")
        assert extra["value"].to_list() == ["nan"] * extra.height
        assert extra.filter(pl.col("series").cast(pl.String).str.starts_with("flappy_up")).height >= 1
        both = raw.join(dump, on=["series", "ms"], suffix="_dump")
        assert (both["value"] == both["value_dump"]).all()
