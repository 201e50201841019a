"""read_prometheus on Grafana CSV downloads: layouts, delimiters, times, units, bad rows."""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.sources.grafana import unit_factor

DT0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
MS0 = 1709287200000

# Inspect > Data > Download CSV with "Download for Excel": BOM, sep= line, CRLF, quoted header
EXCEL = (
    "\ufeffsep=,\r\n"
    '"Time","db_pool_checked_out{instance=""api-1"", job=""app""}","db_pool_checked_out{instance=""api-2"", job=""app""}"\r\n'
    f"{MS0},3,7\r\n"
    f"{MS0 + 15000},,8\r\n"
    f"{MS0 + 30000},5,NaN\r\n"
).encode()


def read_quiet(data: bytes, **kw: object) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        return ll.read_prometheus(data, **kw)


class TestLayouts:
    """The layouts Grafana writes."""

    def test_excel_download_joined_by_time(self) -> None:
        """BOM, sep=, CRLF and quoted selector headers: one series per column, labels parsed."""
        df = ll.read_prometheus(EXCEL)
        assert ll.read_report(df).format == "grafana_csv"
        assert df["series"].unique(maintain_order=True).to_list() == [
            'db_pool_checked_out{instance="api-1", job="app"}',
            'db_pool_checked_out{instance="api-2", job="app"}',
        ]
        assert df["metric"].unique().to_list() == ["db_pool_checked_out"]
        assert df.unnest("labels")["instance"].to_list() == ["api-1", "api-1", "api-2", "api-2", "api-2"]
        assert df["line"].to_list() == [3, 5, 3, 4, 5]

    def test_empty_cell_is_a_gap(self) -> None:
        """An empty cell has no row (a gap), while NaN is kept as NaN."""
        df = ll.read_prometheus(EXCEL)
        api1 = df.filter(pl.col("labels").struct.field("instance") == "api-1")
        assert api1["ts"].to_list() == [DT0, DT0 + timedelta(seconds=30)]
        assert math.isnan(df.filter(pl.col("line") == 5)["value"][1])

    def test_every_line_accounted_for(self) -> None:
        """sep= and header lines are parsed lines; nothing is rejected; read = parsed + rejected."""
        report = ll.read_report(ll.read_prometheus(EXCEL))
        assert (report.lines_read, report.lines_parsed, report.lines_rejected) == (5, 5, 0)

    def test_frame_per_series_with_blank_line(self) -> None:
        """One frame per series, separated by a blank line, each with its own header."""
        data = (
            f'"Time","up{{instance=""a""}}"\n{MS0},1\n{MS0 + 15000},1\n\n'
            f'"Time","up{{instance=""b""}}"\n{MS0},0\n'
        ).encode()
        df = ll.read_prometheus(data)
        assert df.select("series", "value").rows() == [('up{instance="a"}', 1.0)] * 2 + [
            ('up{instance="b"}', 0.0)
        ]
        assert ll.rejects(df)["reason"].to_list() == ["blank line"]

    def test_frames_without_blank_line(self) -> None:
        """A new ``Time`` header starts a new frame even without a blank line (Grafana's toCSV)."""
        data = f'"Time","a"\r\n{MS0},1\r\n"Time","b"\r\n{MS0},2'.encode()
        df = ll.read_prometheus(data)
        assert df.select("series", "value").rows() == [("a", 1.0), ("b", 2.0)]

    def test_old_semicolon_series_as_rows(self) -> None:
        """Older "Series as rows" exports with ``;`` and ISO times with an offset."""
        data = (
            b'"Series";"Time";"Value"\n'
            b'"api-1 p99";"2024-03-01T11:00:00+01:00";"12.5"\n'
            b'"api-2 p99";"2024-03-01T10:00:00Z";"13"\n'
        )
        df = ll.read_prometheus(data, name="latency_p99")
        assert df.select("ts", "metric", "series", "value").rows() == [
            (DT0, "latency_p99", "api-1 p99", 12.5),
            (DT0, "latency_p99", "api-2 p99", 13.0),
        ]

    def test_full_header_style(self) -> None:
        """#name#/#type#/#unit# header lines: names from #name#, units from #unit#."""
        data = f"#name#Time,latency\n#type#time,number\n#unit#,ms\n{MS0},250\n".encode()
        df = ll.read_prometheus(data)
        assert df.select("value", "unit").rows() == [(0.25, "s")]


class TestTimes:
    """Epoch milliseconds, or formatted local times that need tz=."""

    def test_formatted_times_need_tz(self) -> None:
        """Formatted times carry no offset: without tz= the error says to pass it."""
        data = b'"Time","x"\n2024-03-01 11:00:00,1\n'
        with pytest.raises(ll.TimezoneError, match="pass tz="):
            ll.read_prometheus(data)

    def test_formatted_times_with_tz(self) -> None:
        """With tz= the local wall-clock time is placed in UTC (Berlin is UTC+1 in March)."""
        df = ll.read_prometheus(b'"Time","x"\n2024-03-01 11:00:00,1\n', tz="Europe/Berlin")
        assert df["ts"].to_list() == [DT0]

    def test_epoch_seconds_and_ms(self) -> None:
        """Epoch milliseconds and epoch seconds are told apart by magnitude."""
        df = ll.read_prometheus(f'"Time","x"\n{MS0},1\n{MS0 // 1000 + 15},2\n'.encode())
        assert df["ts"].to_list() == [DT0, DT0 + timedelta(seconds=15)]


class TestUnits:
    """Formatted values with unit suffixes."""

    @pytest.mark.parametrize(
        ("text", "value", "unit"),
        [
            ("12.3 ms", 0.0123, "s"),
            ("1.5 s", 1.5, "s"),
            ("2 min", 120.0, "s"),
            ("1.2 kB", 1200.0, "B"),
            ("3 MiB", 3 * 2**20, "B"),
            ("45%", 45.0, "%"),
            ("1.20 K", 1200.0, None),
            ("3 req/s", 3.0, "req/s"),
            ("2 MB/s", 2e6, "B/s"),
            ("-4.5", -4.5, None),
        ],
    )
    def test_suffix_converted(self, text: str, value: float, unit: str | None) -> None:
        """A value with a unit becomes a number in the base unit, the unit kept."""
        df = ll.read_prometheus(f'"Time","x"\n{MS0},{text}\n'.encode())
        assert df["value"][0] == pytest.approx(value)
        assert df["unit"][0] == unit

    def test_mixed_scales_in_one_column(self) -> None:
        """Grafana auto-scales per value; converted values share one unit."""
        df = ll.read_prometheus(f'"Time","lat"\n{MS0},950 ms\n{MS0 + 1000},1.2 s\n'.encode())
        assert df.select("value", "unit").rows() == [(0.95, "s"), (1.2, "s")]

    def test_unit_factor_refuses_numbers(self) -> None:
        """A suffix that starts with a digit (a thousands separator) is not a unit."""
        assert unit_factor(",234") is None
        assert unit_factor("5") is None


class TestBadRows:
    """Rows that do not fit are rejected with their line and a reason."""

    def test_bad_rows_rejected(self) -> None:
        """Wrong field counts, bad times and bad values reject their line; the rest is kept."""
        data = (
            f'"Time","x","y"\n{MS0},1,2\n{MS0},1\nyesterday,1,2\n{MS0 + 1000},abc,3\n{MS0 + 2000},4,5\n'
        ).encode()
        with pytest.warns(ll.RejectedLinesWarning):
            df = ll.read_prometheus(data)
        rej = ll.rejects(df)
        assert rej["line"].to_list() == [3, 4, 5]
        assert rej["reason"][0].startswith("2 field(s)")
        assert df["line"].unique().sort().to_list() == [2, 6]
        report = ll.read_report(df)
        assert report.lines_read == report.lines_parsed + report.lines_rejected == 6

    def test_data_before_header(self) -> None:
        """A data row with no header before it is rejected, not taken as a header."""
        df = read_quiet(f'{MS0},1\n"Time","x"\n{MS0},2\n'.encode(), format="grafana_csv")
        assert ll.rejects(df)["line"].to_list() == [1]
        assert df["value"].to_list() == [2.0]


class TestGrafanaOwnTestData:
    """Grafana's own ``@grafana/data`` CSV test files (tests/files/grafana, Apache-2.0)."""

    @pytest.mark.parametrize("name", ["grafana-data-withHeaders.csv", "grafana-data-roundtrip.csv"])
    def test_full_header_without_a_time_field_is_a_table(self, name: str) -> None:
        """``#type#`` names no time field: one clear line, never the first column read as epoch seconds."""
        path = Path(__file__).parent / "files" / "grafana" / name
        with pytest.raises(ll.FormatError, match=r"a table panel, not a time series: columns a, b, c"):
            ll.read_prometheus(path)
