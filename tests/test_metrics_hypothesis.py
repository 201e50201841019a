"""Hostile input to every metrics reader: no crash, no hang, every line accounted for."""

from __future__ import annotations

import gzip
import json
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loglib as ll

JSON_DOC = json.dumps(
    {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "up", "instance": "a"},
                    "values": [[1709287200.5, "1"], [1709287215, "NaN"]],
                },
                {"metric": {"job": "x"}, "values": [[1709287200, "+Inf"]]},
            ],
        },
    },
    indent=1,
).encode()
DUMP = (
    b'{__name__="up", instance="a:9100", job="node"} 1 1709287200000\n'
    b'{__name__="up", instance="a:9100", job="node"} NaN 1709287215000\n'
    b'{__name__="x", a="q\\"uote"} -Inf 1709287230000\n'
)
CSV = (
    '\ufeffsep=,\r\n"Time","up{instance=""a""}","lat"\r\n1709287200000,1,12 ms\r\n\r\n'
    '"Time","b"\r\n2024-03-01 10:00:00,45%\r\n'
).encode()
VALID = {"prometheus_json": JSON_DOC, "promtool_dump": DUMP, "grafana_csv": CSV}
FORMATS = [*VALID, None]


def physical_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def check(data: bytes, fmt: str | None, *, lines: int | None = None) -> None:
    """Read ``data``; a loglib error is a fine answer, anything else must account for every line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            df = ll.read_prometheus(data, format=fmt, tz="UTC", raise_if_empty=False)
        except ll.LoglibError:
            return
    report = ll.read_report(df)
    assert report.lines_read == report.lines_parsed + report.lines_rejected
    if not data.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):  # compressed: lines are inside
        expected = physical_lines(data) if lines is None else lines
        assert report.lines_read == expected
    assert df.columns == ll.schema.METRICS.names


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 20))]
        else:
            del data[pos:]
    return bytes(data)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestRandomInput:
    """Random and mutated bytes never crash a reader and never lose a line."""

    @SETTINGS
    @given(data=st.binary(max_size=300), fmt=st.sampled_from(FORMATS))
    def test_random_bytes(self, data: bytes, fmt: str | None) -> None:
        """Arbitrary bytes (invalid UTF-8, NUL) are read or refused with a loglib error."""
        check(data, fmt)

    @SETTINGS
    @given(data=st.text(alphabet=st.sampled_from('{}[]",:;=\n\r 01.-eNaIf#Time\x00é'), max_size=300))
    def test_structured_noise(self, data: str) -> None:
        """Noise made of the formats' own punctuation is accounted for too."""
        check(data.encode(), None)

    @pytest.mark.parametrize("fmt", list(VALID))
    @SETTINGS
    @given(data=st.data())
    def test_mutated_valid_input(self, fmt: str, data: st.DataObject) -> None:
        """Valid exports with flipped, inserted or deleted bytes, read as their own format and detected."""
        blob = data.draw(mutated(VALID[fmt]))
        check(blob, fmt)
        check(blob, None)


class TestNastyFiles:
    """The special cases every reader must survive."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_empty_file(self, fmt: str | None) -> None:
        """An empty input raises NoDataError by default."""
        with pytest.raises(ll.NoDataError):
            ll.read_prometheus(b"", format=fmt)

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_nul_and_invalid_utf8(self, fmt: str | None) -> None:
        """NUL bytes and invalid UTF-8 in a valid export are accounted for."""
        for base in VALID.values():
            check(base.replace(b"1", b"\x00", 1).replace(b"a", b"\xff\xfe", 1), fmt)

    @pytest.mark.parametrize("fmt", list(VALID))
    def test_truncated_gzip(self, fmt: str) -> None:
        """A .gz cut short keeps what was readable and rejects the damage, without raising."""
        blob = gzip.compress(VALID[fmt] * 50)
        cut = blob[: len(blob) // 2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = ll.read_prometheus(cut, format=fmt, tz="UTC", raise_if_empty=False)
        report = ll.read_report(df)
        assert report.lines_read == report.lines_parsed + report.lines_rejected
        assert report.lines_rejected >= 1

    @pytest.mark.parametrize("fmt", list(VALID))
    def test_another_format(self, fmt: str) -> None:
        """A file of another format, forced to this one, is rejected line by line (or refused)."""
        other = b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\n" * 3
        check(other, fmt)

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize(
        "line",
        [
            b"{" + b'a="' * 350_000,
            b'{__name__="' + b"\\" * 1_000_000,
            b'"Time",' + b"9" * 1_000_000,
            b"x{" + b"a" * 1_000_000 + b"} 1 2",
            b"[" * 1_000_000,
            b"1709287200000," + b" " * 1_000_000 + b"ms",
        ],
        ids=["quotes", "backslashes", "digits", "long-name", "deep-json", "spaces"],
    )
    def test_one_megabyte_line(self, fmt: str | None, line: bytes) -> None:
        """A hostile 1 MB line is handled in linear time (well under a few seconds)."""
        start = time.perf_counter()
        check(b'"Time","x"\n' + line + b"\n" if fmt == "grafana_csv" else line + b"\n", fmt)
        assert time.perf_counter() - start < 5
