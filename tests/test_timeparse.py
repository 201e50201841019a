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
