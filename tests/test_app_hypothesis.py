"""Bad input never crashes or hangs read_app_log, and every line is accounted for."""

from __future__ import annotations

import gzip
import os
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loglib as ll
from loglib.errors import FormatError, NoDataError

APP = Path(__file__).resolve().parent / "files" / "app"
FIXTURES = sorted(p for p in APP.iterdir() if p.suffix in (".log", ".json"))
FORMATS = ["python", "loguru", "structlog", "uvicorn", "gunicorn", "json", "logfmt", "monolog", "rails", "spring",
           "go", "zap_console", "bare", "generic"]  # fmt: skip
# LOGLIB_HYPOTHESIS_EXAMPLES=500 for a deeper search than the suite's quick default
SETTINGS = settings(
    max_examples=int(os.environ.get("LOGLIB_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


_MAGIC = (b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"BZh")


def _physical_lines(data: bytes) -> int | None:
    """Lines a reader must account for; None when the bytes claim a compression format (they are
    then read as that format, and a corrupt stream is one 'truncated or corrupt' reject)."""
    if data.startswith(_MAGIC):
        return None
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _read(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ll.read_app_log(data, tz="UTC", raise_if_empty=False, **kw)


def _check(df, n_lines: int | None) -> None:
    report = ll.read_report(df)
    assert report.lines_read == report.lines_parsed + report.lines_rejected
    if n_lines is not None:
        assert report.lines_read == n_lines
    assert df.height <= report.lines_read
    assert df.schema == ll.schema.APP_EVENTS.polars_schema


class TestRandomInput:
    """Random and mutated bytes, read with every format forced."""

    @SETTINGS
    @given(data=st.binary(max_size=2000), fmt=st.sampled_from(FORMATS))
    def test_random_bytes(self, data: bytes, fmt: str) -> None:
        """Arbitrary bytes (invalid UTF-8, NUL) are read or rejected line by line."""
        _check(_read(data, format=fmt), _physical_lines(data))

    @SETTINGS
    @given(
        fixture=st.sampled_from(FIXTURES),
        edits=st.lists(
            st.tuples(st.integers(0, 10_000), st.binary(max_size=8), st.integers(0, 8)), max_size=12
        ),
    )
    def test_mutated_fixtures(self, fixture: Path, edits: list[tuple[int, bytes, int]]) -> None:
        """Fixtures with random splices keep the accounting, with their format forced."""
        data = bytearray(fixture.read_bytes())
        for pos, insert, delete in edits:
            p = pos % (len(data) + 1)
            data[p : p + delete] = insert
        fmt = _read(fixture)["format"][0]
        _check(_read(bytes(data), format=fmt), _physical_lines(bytes(data)))

    @SETTINGS
    @given(data=st.binary(max_size=2000))
    def test_sniffing_refuses_or_reads(self, data: bytes) -> None:
        """Without format=, input is either read with full accounting or refused with FormatError."""
        try:
            df = _read(data)
        except (FormatError, NoDataError):
            return
        _check(df, _physical_lines(data))

    @SETTINGS
    @given(lines=st.lists(st.text(max_size=120), max_size=40), fmt=st.sampled_from(FORMATS))
    def test_random_text_lines(self, lines: list[str], fmt: str) -> None:
        """Random Unicode lines are accounted for."""
        data = "\n".join(lines).encode("utf-8", "surrogatepass") if lines else b""
        _check(_read(data, format=fmt), _physical_lines(data))


class TestHostile:
    """Inputs built to hurt: huge lines, truncation, the wrong format, nothing at all."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_megabyte_lines_are_linear(self, fmt: str) -> None:
        """1 MB lines made of regex-hostile runs parse quickly (no catastrophic backtracking)."""
        hostile = [
            b"[" * 1_000_000,
            b"a=" * 500_000,
            b'time="' + b'\\"' * 400_000,
            b"2024-03-01 10:00:00,000 ERROR x: " + b"\t at " * 200_000,
            b"{" + b'"a":' * 250_000,
            b"    " + b"Caused by: x" * 80_000,
        ]
        data = b"\n".join(hostile) + b"\n"
        start = time.perf_counter()
        _check(_read(data, format=fmt), len(hostile))
        assert time.perf_counter() - start < 20

    def test_truncated_gz(self, tmp_path: Path) -> None:
        """A .gz cut short yields its readable events and one reject that says so."""
        raw = (APP / "python_howto.log").read_bytes() * 2000
        path = tmp_path / "app.log.gz"
        path.write_bytes(gzip.compress(raw)[:-2000])
        df = _read(path)
        report = ll.read_report(df)
        assert report.lines_read == report.lines_parsed + report.lines_rejected
        assert report.rejects["reason"].str.contains("truncated").any()
        assert df.height > 0

    def test_postgres_log_is_another_format(self) -> None:
        """A PostgreSQL server log is not taken for an application log."""
        pg = b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\n" * 3
        with pytest.raises(FormatError, match="no known application log format"):
            ll.read_app_log(pg)

    def test_postgres_log_forced(self) -> None:
        """Forced onto a wrong format, every line is rejected and counted."""
        pg = b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\n" * 3
        df = _read(pg, format="gunicorn")
        assert df.height == 0
        assert ll.read_report(df).lines_rejected == 3

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file reads as no events (or NoDataError by default)."""
        path = tmp_path / "empty.log"
        path.write_bytes(b"")
        assert _read(path).height == 0
        with pytest.raises(NoDataError):
            ll.read_app_log(path)

    def test_nul_and_latin1(self) -> None:
        """NUL bytes and Latin-1 text inside an event do not break it."""
        data = b"[ERROR] caf\xe9 \x00 connection refused\n[INFO] ok\n"
        df = _read(data)
        assert df["error_class"].to_list() == ["connection_refused", None]
        assert any("Latin-1" in n for n in ll.read_report(df).notes)
