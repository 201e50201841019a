"""read_prometheus on Prometheus API JSON and promtool dumps: shapes, values, gaps, merging, bad input."""

from __future__ import annotations

import gzip
import json
import math
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.sources._series import parse_selector, series_key

T0 = 1709287200  # 2024-03-01 10:00:00 UTC
DT0 = datetime(2024, 3, 1, 10, tzinfo=UTC)


def matrix(*series: tuple[dict, list], status: bool = True) -> bytes:
    result = [{"metric": m, "values": v} for m, v in series]
    doc: object = (
        {"status": "success", "data": {"resultType": "matrix", "result": result}} if status else result
    )
    return json.dumps(doc).encode()


def read_quiet(data: bytes | Path | list, **kw: object) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        return ll.read_prometheus(data, **kw)


class TestEnvelopes:
    """Every shape a Prometheus answer comes in."""

    def test_full_matrix_envelope(self) -> None:
        """A query_range answer gives one row per sample with the canonical columns."""
        df = ll.read_prometheus(matrix(({"__name__": "up", "job": "node"}, [[T0, "1"], [T0 + 15, "0"]])))
        assert df.columns == ll.schema.METRICS.names
        assert df["ts"].to_list() == [DT0, DT0 + timedelta(seconds=15)]
        assert df["value"].to_list() == [1.0, 0.0]
        assert df["series"].unique().to_list() == ['up{job="node"}']

    def test_bare_result_list(self) -> None:
        """A result list saved by prometheus-api-client reads like the full answer."""
        full = ll.read_prometheus(matrix(({"__name__": "up"}, [[T0, "1"]])))
        bare = ll.read_prometheus(matrix(({"__name__": "up"}, [[T0, "1"]]), status=False))
        assert_frame_equal(full, bare)

    def test_vector_answer(self) -> None:
        """An instant query (``value`` not ``values``) gives one sample per series."""
        doc = {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "instance": "a"}, "value": [T0, "1"]},
            {"metric": {"__name__": "up", "instance": "b"}, "value": [T0, "0"]},
        ]}}  # fmt: skip
        df = ll.read_prometheus(json.dumps(doc).encode())
        assert df.select("series", "value").rows() == [('up{instance="a"}', 1.0), ('up{instance="b"}', 0.0)]

    def test_scalar_answer(self) -> None:
        """A scalar answer is one sample of a series named by name=."""
        doc = {"status": "success", "data": {"resultType": "scalar", "result": [T0, "42"]}}
        df = ll.read_prometheus(json.dumps(doc).encode(), name="scalar(x)")
        assert df.select("metric", "series", "value").rows() == [("scalar(x)", "scalar(x)", 42.0)]

    def test_error_answer_raises_with_server_message(self) -> None:
        """An error envelope is a clear FormatError quoting errorType and error."""
        doc = {"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"}
        with pytest.raises(ll.FormatError, match="timeout: query timed out in expression evaluation"):
            ll.read_prometheus(json.dumps(doc).encode())

    def test_warnings_become_notes(self) -> None:
        """Warnings of a successful answer are kept in the read report."""
        doc = json.loads(matrix(({"__name__": "up"}, [[T0, "1"]])))
        doc["warnings"] = ["PromQL info: metric might not be a counter"]
        df = ll.read_prometheus(json.dumps(doc).encode())
        assert any("might not be a counter" in n for n in ll.read_report(df).notes)

    def test_string_result_rejected(self) -> None:
        """A string answer holds no samples: rejected, and an empty read raises NoDataError."""
        doc = {"status": "success", "data": {"resultType": "string", "result": [T0, "hello"]}}
        with pytest.raises(ll.NoDataError):
            read_quiet(json.dumps(doc).encode())


class TestValues:
    """Values and timestamps as Prometheus writes them."""

    def test_special_values(self) -> None:
        """ "NaN", "+Inf" and "-Inf" are kept as NaN and infinities."""
        df = ll.read_prometheus(
            matrix(({"__name__": "x"}, [[T0, "NaN"], [T0 + 1, "+Inf"], [T0 + 2, "-Inf"]]))
        )
        v = df["value"]
        assert math.isnan(v[0]) and v[1] == math.inf and v[2] == -math.inf

    def test_float_seconds_keep_milliseconds(self) -> None:
        """Float-second timestamps are kept to the millisecond, without float noise."""
        df = ll.read_prometheus(matrix(({"__name__": "x"}, [[1564308009.804, "1"], [1564308029.001, "2"]])))
        assert df["ts"].dt.epoch("us").to_list() == [1564308009804000, 1564308029001000]

    def test_missing_steps_are_gaps(self) -> None:
        """Missing steps stay missing: no row is invented and nothing becomes zero."""
        df = ll.read_prometheus(matrix(({"__name__": "x"}, [[T0, "5"], [T0 + 15, "6"], [T0 + 60, "7"]])))
        assert df.height == 3
        assert df["ts"].diff().drop_nulls().to_list() == [timedelta(seconds=15), timedelta(seconds=45)]

    def test_native_histograms_skipped_and_reported(self) -> None:
        """Native histogram samples are skipped on purpose and counted in the report notes."""
        h = {"count": "10", "sum": "3.5", "buckets": [[0, "0.5", "1", "8"]]}
        doc = {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"__name__": "lat"}, "histograms": [[T0, h], [T0 + 15, h]]},
            {"metric": {"__name__": "up"}, "values": [[T0, "1"]]},
        ]}}  # fmt: skip
        df = ll.read_prometheus(json.dumps(doc).encode())
        assert df["metric"].to_list() == ["up"]
        notes = ll.read_report(df).notes
        assert any("2 native histogram sample(s) in 1 series skipped" in n for n in notes)
        assert ll.read_report(df).lines_rejected == 0

    def test_vector_histogram_skipped(self) -> None:
        """An instant answer's ``histogram`` sample is skipped and reported, too."""
        doc = {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "lat"}, "histogram": [T0, {"count": "1", "sum": "1"}]},
            {"metric": {"__name__": "up"}, "value": [T0, "1"]},
        ]}}  # fmt: skip
        df = ll.read_prometheus(json.dumps(doc).encode())
        assert df.height == 1
        assert any("native histogram" in n for n in ll.read_report(df).notes)


class TestSeries:
    """Metric names, labels and series keys."""

    def test_labels_struct_union(self) -> None:
        """Labels become one struct with a field per label name, null where a series lacks it."""
        df = ll.read_prometheus(
            matrix(
                ({"__name__": "a", "pod": "p1"}, [[T0, "1"]]), ({"__name__": "b", "zone": "z"}, [[T0, "2"]])
            )
        )
        assert df.schema["labels"] == pl.Struct({"pod": pl.Categorical, "zone": pl.Categorical})
        assert df.unnest("labels").select("pod", "zone").rows() == [("p1", None), (None, "z")]

    def test_name_for_expressions(self) -> None:
        """name= names series whose answer has no __name__, and never overrides a real one."""
        data = matrix(({"code": "503"}, [[T0, "0.1"]]), ({"__name__": "up"}, [[T0, "1"]]))
        df = ll.read_prometheus(data, name="rate(http_requests_total[5m])")
        assert df.select("metric", "series").rows() == [
            ("rate(http_requests_total[5m])", 'rate(http_requests_total[5m]){code="503"}'),
            ("up", "up"),
        ]

    def test_key_escapes_and_round_trips(self) -> None:
        """Series keys escape quotes, backslashes and newlines and parse back to the same labels."""
        labels = {"path": 'a"b\\c\nd', "job": "x"}
        key = series_key("m", labels)
        assert key == 'm{job="x", path="a\\"b\\\\c\\nd"}'
        assert parse_selector(key) == ("m", labels)

    def test_selector_rejects_garbage_fast(self) -> None:
        """Hostile selectors are refused quickly (linear-time matching)."""
        assert parse_selector("{" + 'a="' * 50_000) is None
        assert parse_selector("x{" + "a" * 200_000) is None


class TestMerge:
    """Several files of one query."""

    def test_overlapping_chunks_merge(self, tmp_path: Path) -> None:
        """Overlapping chunks of a long range merge into one series, each point once."""
        s = {"__name__": "x", "job": "j"}
        (tmp_path / "a.json").write_bytes(matrix((s, [[T0 + i * 15, str(i)] for i in range(0, 10)])))
        (tmp_path / "b.json").write_bytes(matrix((s, [[T0 + i * 15, str(i)] for i in range(6, 16)])))
        df = ll.read_prometheus(tmp_path / "*.json")
        assert df["value"].to_list() == [float(i) for i in range(16)]
        assert any("4 duplicate point(s)" in n for n in ll.read_report(df).notes)

    def test_conflicting_overlap_keeps_first_file(self, tmp_path: Path) -> None:
        """When overlapping files disagree, the first file's value is kept and the conflict noted."""
        s = {"__name__": "x"}
        (tmp_path / "a.json").write_bytes(matrix((s, [[T0, "1"]])))
        (tmp_path / "b.json").write_bytes(matrix((s, [[T0, "2"]])))
        df = ll.read_prometheus(tmp_path)
        assert df["value"].to_list() == [1.0]
        assert any("different values" in n for n in ll.read_report(df).notes)

    def test_gzip_export(self, tmp_path: Path) -> None:
        """A gzipped export reads like the plain one."""
        data = matrix(({"__name__": "x"}, [[T0, "1"]]))
        (tmp_path / "x.json.gz").write_bytes(gzip.compress(data))
        assert_frame_equal(
            ll.read_prometheus(tmp_path / "x.json.gz").drop("file"), ll.read_prometheus(data).drop("file")
        )


class TestBadJson:
    """Broken documents are accounted for, line by line."""

    def test_invalid_json_rejects_every_line(self) -> None:
        """A document that does not parse is rejected whole: each of its lines, the first with the reason."""
        data = b'{"status": "success",\n "data": {"result": [\n'
        with pytest.raises(ll.NoDataError):
            read_quiet(data)
        df = read_quiet(data, raise_if_empty=False)
        report = ll.read_report(df)
        assert report.lines_read == 2 == report.lines_rejected
        assert ll.rejects(df)["reason"][0].startswith("not valid JSON")

    def test_bad_elements_summarised_at_line_1(self) -> None:
        """Bad samples are dropped, good ones kept, and one reject row at line 1 says what was dropped."""
        data = matrix(({"__name__": "x"}, [[T0, "1"], [T0 + 1, "abc"], ["soon", "2"], [T0 + 3, "4"]]))
        with pytest.warns(ll.RejectedLinesWarning):
            df = ll.read_prometheus(data)
        assert df["value"].to_list() == [1.0, 4.0]
        rej = ll.rejects(df)
        assert rej["line"].to_list() == [1]
        assert rej["reason"][0].startswith("2 element(s) of the document dropped")
        report = ll.read_report(df)
        assert report.lines_read == report.lines_parsed + report.lines_rejected

    def test_strict_raises(self) -> None:
        """strict=True turns a dropped element into a ParseError."""
        with pytest.raises(ll.ParseError):
            ll.read_prometheus(matrix(({"__name__": "x"}, [[T0, "abc"], [T0, "1"]])), strict=True)

    def test_json_that_is_not_prometheus(self) -> None:
        """JSON of another shape is rejected whole with a reason that says what was expected."""
        df = read_quiet(b'{"hello": "world"}\n', raise_if_empty=False)
        assert "not a Prometheus API answer" in ll.rejects(df)["reason"][0]

    def test_other_format_raises(self) -> None:
        """A file in no known metrics format raises FormatError naming its first line."""
        with pytest.raises(ll.FormatError, match="2024-03-01 10:00:00 UTC"):
            ll.read_prometheus(b"2024-03-01 10:00:00 UTC [7] LOG:  connection received\n")


class TestPromtoolDump:
    """``promtool tsdb dump`` text."""

    DUMP = (
        b'{__name__="up", instance="a:9100", job="node"} 1 1709287200000\n'
        b'{__name__="up", instance="a:9100", job="node"} NaN 1709287215123\n'
        b'{__name__="up", instance="a:9100", job="node"} +Inf 1709287230000\n'
        b'{__name__="lat", job="node"} {count:3, sum:1.5, [0.5,1]:3} 1709287200000\n'
        b"this is not a dump line\n"
    )

    def test_samples(self) -> None:
        """Each line is one sample, timestamps in milliseconds, values as Go prints them."""
        df = read_quiet(self.DUMP)
        assert df["series"].unique().to_list() == ['up{instance="a:9100", job="node"}']
        assert df["line"].to_list() == [1, 2, 3]
        assert df["ts"][1] == DT0 + timedelta(seconds=15, milliseconds=123)
        assert math.isnan(df["value"][1]) and df["value"][2] == math.inf

    def test_accounting(self) -> None:
        """Histogram lines are skipped on purpose; other bad lines are rejected with their number."""
        with pytest.warns(ll.RejectedLinesWarning):
            df = ll.read_prometheus(self.DUMP)
        report = ll.read_report(df)
        assert report.lines_read == 5 and report.lines_parsed == 4
        assert ll.rejects(df)["line"].to_list() == [5]
        assert any("native histogram" in n for n in report.notes)


class TestCorpus:
    """The real exports in ../shared/corpus/prometheus load, gaps included."""

    def test_all_files_load(self, corpus: Path) -> None:
        """Every corpus export loads with no rejected line and the expected series counts."""
        counts = {}
        for path in sorted((corpus / "prometheus").glob("*.json")):
            df = ll.read_prometheus(path)
            assert ll.read_report(df).lines_rejected == 0
            counts[path.name] = (df["series"].n_unique(), df.height)
        assert counts["prom-mcp_query_range.json"] == (1, 3)
        assert counts["prom-mcp_query_up.json"] == (2, 2)
        assert counts["prometheus-api-client_up_201907281200.json"] == (9, 6839)
        assert counts["prometheus-api-client_up_201907290000.json"] == (9, 6840)

    def test_scraped_gap_stays_a_gap(self, corpus: Path) -> None:
        """The real scrape with a missing sample keeps the hole: no row there, no zero."""
        df = ll.read_prometheus(corpus / "prometheus" / "prometheus-api-client_up_201907281200.json")
        diff = pl.col("ts").diff()
        steps = df.group_by("series").agg(diff.max().alias("widest"), diff.median().alias("step"), pl.len())
        gappy = steps.filter(pl.col("widest") > pl.col("step") * 1.5)
        assert gappy.height >= 1
        # one 20 s scrape is missing: 1079 rows where the others have 1080, and nothing filled in
        assert gappy["len"].to_list() == [1079]
        assert gappy["widest"].to_list() == [timedelta(seconds=40)]
