"""The one time parser (loglib.core.timeparse): instants, durations, zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

import loglib as ll
from loglib.core.timeparse import check_tz, parse_instant, to_timedelta

T = datetime(2026, 11, 21, 22, 19, 25, tzinfo=UTC)


class TestParseInstant:
    @pytest.mark.parametrize(
        "value",
        [
            "2026-11-21T22:19:25Z",
            "2026-11-21T23:19:25+01:00",
            "2026-11-21 23:19:25+01:00",
            "2026-11-21T22:19:25.000000Z",
            datetime(2026, 11, 21, 17, 19, 25, tzinfo=timezone(timedelta(hours=-5))),
        ],
    )
    def test_aware_values_become_utc(self, value):
        """Aware datetimes and RFC 3339 text with Z or an offset are the same UTC instant."""
        got = parse_instant(value, argument="at")
        assert got == T and got.utcoffset() == timedelta(0)

    @pytest.mark.parametrize(
        "value", ["2026-11-21T22:19:25", "2026-11-21 22:19:25", datetime(2026, 11, 21, 22, 19, 25)]
    )
    def test_naive_is_refused(self, value):
        """A naive time is never taken as UTC: the error names the argument and says what to add."""
        with pytest.raises(ll.TimezoneError, match=r"^at: .*has no time zone; add 'Z'"):
            parse_instant(value, argument="at")

    def test_naive_with_tz(self):
        """tz= places a naive time in that zone."""
        got = parse_instant("2026-11-21 23:19:25", argument="at", tz="Europe/Berlin")
        assert got == T

    @pytest.mark.parametrize("value", ["yesterday", 1732227565, None, "2026-13-45T00:00:00Z"])
    def test_not_a_time(self, value):
        """Anything else is a ValueError that echoes the value."""
        with pytest.raises(ValueError, match="is not a time"):
            parse_instant(value, argument="events[0].at")

    def test_bad_tz(self):
        """A tz= that is not an IANA zone is refused."""
        with pytest.raises(ll.TimezoneError, match="IANA"):
            parse_instant("2026-11-21 23:19:25", argument="at", tz="Mars/Olympus")


class TestDurationsAndZones:
    def test_duration(self):
        """Durations are written as polars writes them."""
        assert to_timedelta("1h30m", argument="every") == timedelta(minutes=90)
        with pytest.raises(ValueError, match="every='soon'"):
            to_timedelta("soon", argument="every")

    def test_check_tz_spellings_of_utc(self):
        """UTC, GMT and Z are UTC."""
        assert {check_tz(z) for z in ("UTC", "gmt", "Z")} == {"UTC"}


class TestUsers:
    def test_before_after_refuses_naive_windows(self):
        """charts.before_after_table refuses naive window bounds instead of taking them as UTC (issue 11)."""
        import polars as pl

        app = pl.DataFrame(
            {"ts": [T], "error_class": ["pool_timeout"], "level": "error", "file": "a", "line": [1]}
        )
        with pytest.raises(ll.TimezoneError, match=r"before\[0\]"):
            ll.charts.before_after_table(
                app, before=(datetime(2026, 11, 21, 22), T), after=(T, T + timedelta(minutes=5))
            )


class TestWallClockFastPath:
    def test_fixed_width_reading_equals_polars_parser(self):
        """parse_naive's fixed-width reading gives what polars' parser gives, for valid, impossible and malformed stamps (issue 17)."""
        import random

        import polars as pl

        from loglib.core.timeparse import _WALL, _WALL_MS, parse_naive

        rng = random.Random(17)

        def stamp() -> str | None:
            r = rng.random()
            if r < 0.1:
                return None
            y, mo, d = rng.randint(0, 9999), rng.randint(0, 13), rng.randint(0, 32)
            h, mi, s = rng.randint(0, 25), rng.randint(0, 61), rng.randint(0, 61)
            text = f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}"
            if r < 0.7:
                text += f".{rng.randint(0, 999):03d}"
            chars = list(text)
            if rng.random() < 0.2:  # one byte changed, cut short or lengthened
                chars[rng.randrange(len(chars))] = rng.choice("0123456789-: .xé+")
            if rng.random() < 0.1:
                chars = chars[: rng.randrange(len(chars))]
            if rng.random() < 0.1:
                chars += list(rng.choice(["0", "000", " ", "é", "123"]))
            return "".join(chars)

        values = pl.Series([stamp() for _ in range(50_000)], dtype=pl.String)
        # the reference: polars' parser alone, as parse_naive read every row before
        ref = values.str.to_datetime(_WALL_MS, strict=False, time_unit="us", cache=False)
        idx = (ref.is_null() & values.is_not_null()).arg_true()
        ref = ref.scatter(idx, values.gather(idx).str.to_datetime(_WALL, strict=False, time_unit="us"))
        for part in (
            values,
            values.slice(7, 999),
            pl.concat([values.head(5), values.tail(5)], rechunk=False),
        ):
            got = parse_naive(part)
            expected = ref.slice(7, 999) if part.len() == 999 else ref if part.len() == values.len() else None
            if expected is None:
                expected = pl.concat([ref.head(5), ref.tail(5)])
            assert got.dtype == pl.Datetime("us")
            assert got.equals(expected, check_names=False)
        assert 1_000 < ref.null_count() < values.len() - 10_000  # valid and invalid stamps both

    def test_uniform_widths(self):
        """Columns of only 19-byte or only 23-byte stamps (the usual shapes) are read alike."""
        import datetime as dt

        import polars as pl

        from loglib.core.timeparse import parse_naive

        got = parse_naive(pl.Series(["2024-02-29 23:59:59", "1999-12-31 00:00:01"] * 10_000)).head(2)
        assert got.to_list() == [dt.datetime(2024, 2, 29, 23, 59, 59), dt.datetime(1999, 12, 31, 0, 0, 1)]
        got = parse_naive(pl.Series(["2024-02-29 23:59:59.120", "2023-02-29 23:59:59.120"] * 10_000)).head(2)
        assert got.to_list() == [dt.datetime(2024, 2, 29, 23, 59, 59, 120000), None]

    def test_small_reads_do_not_import_numpy(self):
        """A small read parses its times with polars alone: numpy and pyarrow stay unimported (~0.09 CPU-s)."""
        import subprocess
        import sys

        code = (
            "import sys, loglib as ll\n"
            "log = b'2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\\n'\n"
            "ll.read_pg_log(log, prefix='%m [%p] %q%u@%d ')\n"
            "print('numpy' in sys.modules, 'pyarrow' in sys.modules)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["False", "False"]
