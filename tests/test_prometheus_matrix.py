"""The columnar range-query path of read_prometheus gives exactly what the general path gives.

``decode_matrix`` lets polars decode the ``values`` arrays of a clean ``query_range`` answer and
``assemble`` sorts sample columns one by one. Both are pinned against the general path (orjson,
per series) and a plain whole-frame reference sort on real answers (the committed capture of a
real Prometheus, every bundled incident, the shared corpus) and on edge cases: NaN, ±Inf,
integer and microsecond timestamps, empty series, odd labels, overlapping chunks, and every
kind of document the fast path must hand back (those must come out the same too).
"""

from __future__ import annotations

import gzip
import itertools
import json
import warnings
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.core.schema import METRICS
from loglib.sources import _prom_matrix, _series, prometheus
from loglib.sources._prom_matrix import decode_matrix
from loglib.sources._series import SAMPLE_SCHEMA, SeriesTable, _note_repeats
from tests.conftest import FILES

ROOT = Path(__file__).resolve().parents[1]
T0 = 1709287200


def reference_assemble(table: SeriesTable, parts: list[pl.DataFrame], report: ll.ReadReport) -> pl.DataFrame:
    """The plain way: one frame, one stable sort by (series, ts), first repeat kept, rows joined."""
    samples = pl.concat(parts) if parts else pl.DataFrame(schema=SAMPLE_SCHEMA)
    meta = table.frame()
    order = meta["series"].rank("ordinal").cast(pl.UInt32).gather(samples["sid"])
    ranked = samples.with_columns(order=order).sort("order", "ts", maintain_order=True)
    repeat = (
        (pl.col("order") == pl.col("order").shift(1)) & (pl.col("ts") == pl.col("ts").shift(1))
    ).fill_null(False)
    ranked = ranked.with_columns(repeat=repeat)
    dropped = int(ranked["repeat"].sum())
    if dropped:  # the note's wording is not what this file pins: it is shared
        _note_repeats(ranked, dropped, report)
        ranked = ranked.filter(~pl.col("repeat"))
    rows = meta.select(pl.all().gather(ranked["sid"]))
    return pl.concat([rows.drop("sid"), ranked.drop("sid", "order", "repeat")], how="horizontal").select(
        METRICS.names
    )


def _read(data: object, **kw: object) -> tuple[pl.DataFrame | str, ll.ReadReport | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            df = ll.read_prometheus(data, raise_if_empty=False, **kw)
        except ll.LoglibError as exc:
            return f"{type(exc).__name__}: {exc}", None
    return df, ll.read_report(df)


def assert_same_as_general(data: object, **kw: object) -> pl.DataFrame | str:
    """Read ``data`` with the fast path and with the general path; frames and reports must be equal."""
    fast, fast_report = _read(data, **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(prometheus, "decode_matrix", lambda raw: None)
        mp.setattr(prometheus, "assemble", reference_assemble)
        general, general_report = _read(data, **kw)
    if isinstance(general, str) or isinstance(fast, str):
        assert fast == general
        return fast
    assert_frame_equal(fast, general, check_exact=True)
    assert fast.schema == general.schema
    for attr in ("files", "format", "lines_read", "lines_parsed", "entries", "notes"):
        assert getattr(fast_report, attr) == getattr(general_report, attr), attr
    assert_frame_equal(fast_report.rejects, general_report.rejects)
    return fast


def doc(*series: tuple[dict, list], **envelope: object) -> bytes:
    result = [{"metric": m, "values": v} for m, v in series]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": result}, **envelope}
    ).encode()


UP = {"__name__": "db_pool_checked_out", "instance": "api-1:8000", "job": "app"}
CLEAN = doc(
    (
        UP,
        [[T0, "3"], [T0 + 15.5, "NaN"], [T0 + 30.123, "+Inf"], [T0 + 45.000001, "-Inf"], [T0 + 60, "1e-07"]],
    ),
    (
        {**UP, "instance": "api-2:8000"},
        [[T0 + 0.001, "0"], [T0 + 15, "-0"], [T0 + 30, "18446744073709551616"]],
    ),
    ({"__name__": "up", "path": 'a "quoted" \\ label } with, commas', "zone": "Zürich ☃"}, [[T0, "1"]]),
    ({"job": "no-name"}, [[T0, "2"]]),  # an expression's result: no __name__
    ({}, [[T0, "5"]]),  # sum(...): no labels at all, named after the file
    (UP | {"instance": "empty"}, []),  # a series with no point still names its labels
)


class TestRealAnswers:
    @pytest.mark.parametrize(
        "path",
        sorted((FILES / "metrics" / "real").glob("*.json")),
        ids=lambda p: p.name,
    )
    def test_committed_capture_of_a_real_prometheus(self, path: Path) -> None:
        assert_same_as_general(path)

    def test_the_real_range_answers_take_the_fast_path(self) -> None:
        raw = (FILES / "metrics" / "real" / "query_range.json").read_bytes()
        matrix = decode_matrix(raw)
        assert matrix is not None
        assert sum(matrix.lengths) == sum(len(s["values"]) for s in json.loads(raw)["data"]["result"])

    @pytest.mark.parametrize(
        "folder",
        sorted(p for p in (ROOT / "data" / "incidents").glob("*/prometheus")),
        ids=lambda p: p.parent.name,
    )
    def test_bundled_incident_exports(self, folder: Path) -> None:
        frame = assert_same_as_general(folder)
        assert not isinstance(frame, str) and frame.height > 0

    def test_shared_corpus(self) -> None:
        corpus = Path("/work/shared/corpus/prometheus")
        files = sorted(corpus.glob("*.json"))
        if not files:
            pytest.skip("no shared corpus on this machine")
        for path in files:
            assert_same_as_general(path)

    def test_overlapping_chunks_of_one_query(self) -> None:
        part1 = (FILES / "metrics" / "real" / "query_range_part1.json").read_bytes()
        part2 = (FILES / "metrics" / "real" / "query_range_part2.json").read_bytes()
        assert decode_matrix(part1) is not None and decode_matrix(part2) is not None
        assert_same_as_general(FILES / "metrics" / "real" / "query_range_part*.json")


class TestEdgeCases:
    def test_clean_answer_with_special_values_and_odd_labels(self, tmp_path: Path) -> None:
        assert decode_matrix(CLEAN) is not None
        (tmp_path / "sum_rate.json").write_bytes(CLEAN)
        frame = assert_same_as_general(tmp_path / "sum_rate.json")
        assert "sum_rate" in frame["metric"].to_list()
        assert_same_as_general(CLEAN, name="given_name")

    @pytest.mark.parametrize("indent", [1, 2, "\t"], ids=["indent1", "indent2", "tab"])
    @pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
    def test_pretty_printed_takes_the_fast_path(self, indent: int | str, crlf: bool) -> None:
        pretty = json.dumps(json.loads(CLEAN), indent=indent)
        pretty = pretty.replace("\n", "\r\n") if crlf else pretty
        assert decode_matrix(pretty.encode()) is not None
        assert_same_as_general(pretty.encode())

    def test_pretty_printed_bom_and_gzip(self, tmp_path: Path) -> None:
        pretty = json.dumps(json.loads(CLEAN), indent=2).encode()
        assert_same_as_general(pretty)
        # a space inside a value, a token split oddly: not what the fast path takes
        odd = json.dumps(json.loads(CLEAN), indent=2, separators=(" , ", " : ")).encode()
        assert decode_matrix(odd) is None
        assert_same_as_general(odd)
        assert_same_as_general(pretty.replace(b'"3"', b'" 3"'))
        assert_same_as_general(b"\xef\xbb\xbf" + CLEAN)
        (tmp_path / "x.json.gz").write_bytes(gzip.compress(CLEAN))
        assert_same_as_general(tmp_path / "x.json.gz")
        (tmp_path / "cut.json.gz").write_bytes(gzip.compress(CLEAN)[:-30])
        assert_same_as_general(tmp_path / "cut.json.gz")

    def test_a_lone_bom_is_one_line_read(self) -> None:
        report = _read(b"\xef\xbb\xbf", format="prometheus_json")[1]
        assert report is not None
        assert (report.lines_read, report.lines_parsed + report.lines_rejected) == (1, 1)

    def test_overlapping_files_with_conflicting_values(self, tmp_path: Path) -> None:
        (tmp_path / "a.json").write_bytes(doc((UP, [[T0, "1"], [T0 + 15, "2"], [T0 + 30, "NaN"]])))
        (tmp_path / "b.json").write_bytes(doc((UP, [[T0 + 15, "9"], [T0 + 30, "NaN"], [T0 + 45, "4"]])))
        frame = assert_same_as_general(tmp_path)
        assert frame["value"].to_list()[:2] == [1.0, 2.0]

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ([[T0 + 60, "1"], [T0 + 75, "2"]], [[T0, "3"], [T0 + 15, "4"]]),  # a later chunk read first
            ([[T0, "1"], [T0 + 15, "2"]], [[T0 + 15, "2"], [T0 + 30, "3"]]),  # chunks that touch
            ([[T0 + 30, "1"], [T0, "2"]], [[T0 + 60, "3"]]),  # an unsorted series
            ([[T0, "1"], [T0, "2"]], []),  # one time twice in one series
        ],
        ids=["later-first", "touching", "unsorted", "repeat-in-run"],
    )
    def test_runs_of_one_series_in_two_files(self, tmp_path: Path, a: list, b: list) -> None:
        other = {**UP, "instance": "api-0:8000"}  # sorts before UP
        (tmp_path / "a.json").write_bytes(doc((UP, a), (other, b)))
        (tmp_path / "b.json").write_bytes(doc((UP, b), (other, a)))
        frame = assert_same_as_general(tmp_path)
        assert frame.select(pl.col("ts").is_sorted().over("series").all()).item()

    def test_arrays_read_in_pieces(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pieces of a few series each (here: 40 bytes) give the same frame as one piece."""
        many = doc(
            *(
                ({**UP, "instance": f"api-{i}"}, [[T0 + 15 * j, str(i * j)] for j in range(i)])
                for i in range(9)
            )
        )
        whole = assert_same_as_general(many)
        monkeypatch.setattr(_prom_matrix, "_PIECE_BYTES", 40)
        assert decode_matrix(many) is not None
        assert_frame_equal(assert_same_as_general(many), whole, check_exact=True)

    def test_chunks_of_a_long_range_are_moved_as_runs(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Consecutive time ranges in three files: runs moved whole, no sort, the same frame."""
        other = {**UP, "instance": "api-0:8000"}
        for k in range(3):
            points = [[T0 + 15 * (10 * k + j), str(j)] for j in range(10)]
            (tmp_path / f"part-{2 - k}.json").write_bytes(doc((UP, points), (other, points)))
        sorted_calls: list[int] = []
        real = _series._sorted_order
        monkeypatch.setattr(_series, "_sorted_order", lambda *a: sorted_calls.append(1) or real(*a))
        frame = assert_same_as_general(tmp_path)
        assert frame.height == 60 and frame["series"].cast(pl.String).to_list()[0].startswith(
            'db_pool_checked_out{instance="api-0:8000"'
        )
        assert not sorted_calls  # moved as runs (the reference sorts on its own)
        assert (
            frame.select(pl.col("ts").diff().over("series").drop_nulls().min()).item().total_seconds() == 15
        )

    def test_runs_left_in_place_as_chunks(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Long runs are not copied together: every column is one chunk per run, cut at the same rows."""
        monkeypatch.setattr(_series, "_MIN_CHUNK_ROWS", 1)  # the bench's runs are 11,000 points
        for k in range(2):
            points = [[T0 + 15 * (10 * k + j), str(j)] for j in range(10)]
            (tmp_path / f"part-{k}.json").write_bytes(doc((UP, points), ({**UP, "instance": "a"}, points)))
        for data in (tmp_path, CLEAN, *sorted((ROOT / "data" / "incidents").glob("*/prometheus"))):
            frame = assert_same_as_general(data)
            assert not isinstance(frame, str)
            chunks = {name: frame[name].n_chunks() for name in frame.columns}
            assert len(set(chunks.values())) == 1, chunks  # aligned: no operation has to rechunk
            assert chunks["ts"] == 4 or data is not tmp_path  # two series in two files: four runs
        assert_frame_equal(frame.filter(pl.col("value") > 0), frame.rechunk().filter(pl.col("value") > 0))

    def test_values_shared_by_runs_are_stored_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """In-place runs: the metric name, a label or the file of many runs is one buffer, not one per run."""
        monkeypatch.setattr(_series, "_MIN_CHUNK_ROWS", 1)
        for k in range(2):
            points = [[T0 + 15 * (10 * k + j), str(j)] for j in range(10)]
            (tmp_path / f"part-{k}.json").write_bytes(doc((UP, points), ({**UP, "instance": "a"}, points)))
        frame = assert_same_as_general(tmp_path)
        assert not isinstance(frame, str)

        def buffers(col: pl.Series) -> list[int]:  # where each chunk's codes start in memory
            starts = [0, *itertools.accumulate(col.chunk_lengths())][:-1]
            return [
                col.slice(s, n).to_physical().to_numpy(allow_copy=False).__array_interface__["data"][0]
                for s, n in zip(starts, col.chunk_lengths(), strict=True)
            ]

        assert frame["ts"].n_chunks() == 4
        assert len(set(buffers(frame["metric"]))) == 1  # one metric name over four runs
        assert len(set(buffers(frame["labels"].struct.field("job")))) == 1
        assert len(set(buffers(frame["labels"].struct.field("instance")))) == 2  # two series
        assert len(set(buffers(frame["file"]))) == 2  # two files
        assert frame["file"].cast(pl.String).to_list() == [
            f"{tmp_path}/part-{k}.json" for k in (0, 1, 0, 1) for _ in range(10)
        ]
        # a part's file column, before assemble, is views of one small buffer too
        n = 3 * _series._FILE_CHUNK + 5
        ts = pl.Series([0] * n, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
        part = _series.samples_frame(0, ts, pl.Series([1.0] * n), file="x.json")
        assert part["file"].n_chunks() == 4 and len(set(buffers(part["file"]))) == 1
        assert part["file"].cast(pl.String).unique().to_list() == ["x.json"]

    @pytest.mark.parametrize(
        "data",
        [
            doc((UP, [[T0, "x"], [T0 + 15, "1"]])),  # a value that is not a number
            doc((UP, [[T0, None]])),
            doc((UP, [[T0, "1", "2"]])),
            doc((UP, [[T0]])),
            doc((UP, [T0, "1"])),  # flat instead of pairs
            doc((UP, [["1709287200", "1"], ["1709287215.5", "2"]])),  # timestamps as text
            doc((UP, [[T0, 1], [T0 + 15, 2.5]])),  # values as numbers
            doc((UP, [[True, "1"]])),
            doc((UP, [[1e12, "1"], [T0, "2"]])),  # a millisecond timestamp
            doc((UP, [[T0, "1"]]), warnings=["query hit the sample limit"]),
            doc((UP, [[T0, "1"]]), infos=["something"]),
            doc(({"metric": "x", **UP}, [[T0, "1"]])),  # a label named metric
            doc(({"__name__": "up", "values": "v"}, [[T0, "1"]])),  # and one named values
            doc(({"__name__": "up", "n": 5, "b": None}, [[T0, "1"]])),  # labels that are not text
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"2"]],"values":[[3,"4"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1709287200,"2"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":{"b":"c"}},"values":[[1709287200,"2"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[null]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1e400,"2"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[NaN,"2"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[]}} trailing',
            b'{"status":"success","data":{"resultType":"matrix","result":[]}}',
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1709287200,"1"]}]}}',
            b'{"status":"success","data":{"resultType":"scalar","result":[1709287200,"1"]}}',
            b'{"status":"error","errorType":"bad_data","error":"parse error"}',
            b'{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1709287200,"1"]]}]}',
            b'[{"metric":{"a":"b"},"values":[[1709287200,"1"]]}]',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"\xff"},"values":[[1709287200,"1"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"histograms":[[1709287200,{"count":"2"}]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1709287200,"1"]],'
            b'"histograms":[[1709287215,{"count":"2","sum":"3"}]]}]}}',  # a series that changed to native histograms
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,"1"]],"value":[1,"2"]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,NaN]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200," 1"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,"\\u0031"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,"1]"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,"S"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,"1"2"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,""]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,1]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200,"1"]]},{"metric":{},"values":[[1709287200,"2"'
            b"]]}]}}",  # two series, one label set: the second point repeats the first
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[01709287200,"1"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[+1709287200,"1"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200.,"1"]]}]}}',
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1709287200, "1"], [1709287215, "2"]]}]}}',
        ],
    )
    def test_documents_the_fast_path_hands_back_come_out_the_same(self, data: bytes) -> None:
        assert_same_as_general(data)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
stamp = st.one_of(
    st.integers(T0 - 10**8, T0 + 10**8),
    st.integers(T0 * 1000 - 10**11, T0 * 1000 + 10**11).map(lambda ms: ms / 1000),
    st.floats(0, 1e10 - 1, allow_nan=False),
)
value = st.one_of(finite.map(repr), st.sampled_from(["NaN", "+Inf", "-Inf", "0", "1e308", "5e-324"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    series=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.lists(st.tuples(stamp, value), max_size=30)),
        min_size=1,
        max_size=4,
    )
)
def test_random_answers_read_the_same_both_ways(series: list) -> None:
    body = doc(*(({"__name__": "m", "instance": inst}, [list(p) for p in points]) for inst, points in series))
    assert decode_matrix(body) is not None
    assert_same_as_general(body)
