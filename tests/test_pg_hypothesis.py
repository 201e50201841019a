"""Hostile input never crashes or hangs read_pg_log, and every line is accounted for."""

from __future__ import annotations

import gzip
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loglib as ll

GOOD = (
    b"2024-03-01 10:00:00.000 UTC [7] [unknown]@[unknown] LOG:  connection received: host=10.0.0.5 port=5000\n"
    b"2024-03-01 10:00:00.010 UTC [7] app@shop LOG:  connection authorized: user=app database=shop\n"
    b"2024-03-01 10:00:01.000 UTC [7] app@shop ERROR:  boom\n"
    b"2024-03-01 10:00:01.000 UTC [7] app@shop STATEMENT:  select 1\n"
    b"\tand more\n"
    b"2024-03-01 10:00:05.000 UTC [7] app@shop LOG:  disconnection: session time: 0:00:05.000 user=app database=shop host=10.0.0.5 port=5000\n"
)  # fmt: skip
CSV = (
    b'2024-03-01 10:00:00.000 UTC,"app","shop",7,"10.0.0.5:5000",65e1a8b0.7,1,"idle",2024-03-01 10:00:00 UTC,'
    b'3/1,0,LOG,00000,"connection authorized: user=app database=shop",,,,,,,,,"api","client backend",,0\n'
)
JSON = b'{"timestamp":"2024-03-01 10:00:00.500 UTC","pid":9,"error_severity":"LOG","message":"x"}\n'
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
FORMATS = [("stderr", GOOD, {"prefix": "%m [%p] %q%u@%d "}), ("csvlog", CSV, {}), ("jsonlog", JSON, {})]


def _read(data: bytes, fmt: str, options: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        try:
            return ll.read_pg_log(data, format=fmt, raise_if_empty=False, **options)
        except (ll.TimezoneError, ll.FormatError):
            return None  # a clear, deliberate error is an acceptable answer to garbage


def _physical_lines(data: bytes) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


@st.composite
def mutated(draw, base: bytes) -> bytes:
    data = bytearray(base * draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "nul", "newline"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if not data:
            break
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=20))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 30))]
        elif op == "nul":
            data[pos:pos] = b"\x00"
        else:
            data[pos:pos] = b"\n"
    return bytes(data)


class TestHostileInput:
    @pytest.mark.parametrize(("fmt", "base", "options"), FORMATS)
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_mutations_are_accounted_for(self, fmt, base, options, data):
        """Mutated logs (bit flips, NULs, cut lines) parse or fail clearly; read = parsed + rejected."""
        blob = data.draw(mutated(base))
        df = _read(blob, fmt, options)
        if df is None:
            return
        report = ll.read_report(df)
        assert report.lines_read == report.lines_parsed + report.lines_rejected
        # a quoted CSV field may swallow newlines, and a compressed stream has its own lines
        if fmt != "csvlog" and not blob.startswith(COMPRESSED_MAGIC):
            assert report.lines_read == _physical_lines(blob)

    @settings(max_examples=40, deadline=None)
    @given(blob=st.binary(max_size=2000))
    def test_random_bytes(self, blob):
        """Random bytes as a stderr log never crash the reader."""
        df = _read(blob, "stderr", {"prefix": "%m [%p] %q%u@%d "})
        if df is not None:
            report = ll.read_report(df)
            assert report.lines_read == report.lines_parsed + report.lines_rejected
            if not blob.startswith(COMPRESSED_MAGIC):  # compressed: lines differ
                assert report.lines_read == _physical_lines(blob)

    def test_one_megabyte_line_is_linear(self):
        """A 1 MB hostile line (many near-matches of the prefix) is rejected quickly, not backtracked."""
        evil = b"2024-03-01 10:00:00.000 UTC [7] " + b"a@" * 500_000 + b"\n"
        df = _read(GOOD + evil + GOOD, "stderr", {"prefix": "%t [%p] %q%u@%d "})
        assert df is not None
        assert ll.read_report(df).lines_read == 13

    def test_truncated_gzip_of_every_length(self):
        """A .gz cut at any point reads what it can and reports the damage."""
        blob = gzip.compress(GOOD * 50)
        for cut in range(10, len(blob), 37):
            df = _read(blob[:cut], "stderr", {"prefix": "%m [%p] %q%u@%d "})
            if df is not None:
                assert (
                    ll.read_report(df).lines_read
                    == ll.read_report(df).lines_parsed + ll.read_report(df).lines_rejected
                )

    def test_a_file_that_is_another_format(self):
        """A JSON log forced through the stderr parser is all rejects, each with a reason."""
        df = _read(JSON * 3, "stderr", {"prefix": "%m [%p] "})
        assert df is not None and df.height == 0
        assert ll.rejects(df).height == 3
