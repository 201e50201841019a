"""Hostile input to read_pool_events: no crash, no hang, every line accounted for."""

from __future__ import annotations

import gzip
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st

import loglib as ll

GOOD = (
    b'{"ts":"2024-03-01T10:00:00.000001+00:00","event":"connect","conn":1,"backend_pid":4711,"pool":"p",'
    b'"process":9,"thread":"MainThread","size":5,"checked_out":0,"overflow":-5}\n'
    b'{"ts":"2024-03-01T10:00:00.5+00:00","event":"checkout","conn":1,"call_file":"/app/x.py","call_line":7,'
    b'"call_function":"f","stack":"/app/x.py:7 f","sample":1.0}\n'
    b'2024-03-01 10:00:01 INFO pool {"ts":"2024-03-01T10:00:01Z","event":"checkin","conn":1,"gc":true}\n'
    b'{"ts":"2024-03-01T10:00:02Z","event":"invalidate","conn":1,"error":"OperationalError: gone"}\n'
)
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _read(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        return ll.read_pool_events(data, raise_if_empty=False)


def _physical_lines(data: bytes) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(GOOD * draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "nul", "newline", "quote", "brace"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if not data:
            break
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=20))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 30))]
        else:
            data[pos:pos] = {"nul": b"\x00", "newline": b"\n", "quote": b'"', "brace": b"{"}[op]
    return bytes(data)


def _check(blob: bytes) -> None:
    df = _read(blob)
    report = ll.read_report(df)
    assert report.lines_read == report.lines_parsed + report.lines_rejected
    assert df.height == report.lines_parsed
    assert df.schema == ll.schema.POOL_EVENTS.polars_schema
    if not blob.startswith(COMPRESSED_MAGIC):
        assert report.lines_read == _physical_lines(blob)
    rejected = ll.rejects(df)
    assert rejected["line"].is_not_null().all() and rejected["reason"].is_not_null().all()
    assert set(df["line"]).isdisjoint(set(rejected["line"]))


class TestHostileInput:
    @settings(max_examples=80, deadline=None)
    @given(blob=mutated())
    def test_mutations_are_accounted_for(self, blob):
        """Mutated event logs (bit flips, NULs, cut lines, stray braces) parse or reject line by line."""
        _check(blob)

    @settings(max_examples=40, deadline=None)
    @given(blob=st.binary(max_size=2000))
    def test_random_bytes(self, blob):
        """Random bytes never crash the reader, and every line is counted."""
        _check(blob)

    @settings(max_examples=40, deadline=None)
    @given(
        obj=st.dictionaries(
            st.sampled_from(["ts", "event", "conn", "call_line", "gc", "sample", "size", "thread"]),
            st.one_of(
                st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
            ),
        )
    )
    def test_any_json_object(self, obj):
        """Any JSON object after {"ts" is a row or one reject, never a crash or a wrong dtype."""
        import json

        line = json.dumps({"ts": obj.pop("ts", "2024-03-01T10:00:00Z"), **obj}).encode() + b"\n"
        _check(line)

    def test_truncated_gzip_of_every_length(self):
        """A .gz cut at any point reads what it can and reports the damage."""
        blob = gzip.compress(GOOD * 50)
        for cut in range(10, len(blob), 23):
            df = _read(blob[:cut])
            report = ll.read_report(df)
            assert report.lines_read == report.lines_parsed + report.lines_rejected
