"""Timeline: derived events merged with human events, bursts collapsed, UTC and local times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import loglib as ll
from loglib.present.export import to_markdown
from tests.conftest import FILES

T0 = datetime(2024, 3, 1, 9, 30, 12, tzinfo=UTC)
POOL_LEAK = FILES / "incidents" / "pool-leak"


def burst_app() -> pl.DataFrame:
    """37 pool timeouts in one burst, a quiet gap, 3 more, then a reset and a quiet hour."""
    ts = [T0 + timedelta(seconds=7.5 * i) for i in range(37)]
    ts += [T0 + timedelta(minutes=20, seconds=i) for i in range(3)]
    ts += [T0 + timedelta(minutes=21), T0 + timedelta(hours=1)]
    classes = ["pool_timeout"] * 40 + ["connection_reset", None]
    return pl.DataFrame(
        {
            "ts": ts,
            "error_class": classes,
            "message": ["QueuePool limit of size 5 overflow 10 reached"] * 40
            + ["reset by peer", "GET / 200"],
            "file": ["app/app.log"] * 42,
            "line": list(range(1, 43)),
        }
    )


class TestBursts:
    def test_burst_collapses_to_one_row(self):
        """37 errors closer than burst_gap are one row with count, span and first…last evidence."""
        tl = ll.timeline(app=burst_app())
        first = tl.row(0, named=True)
        assert first["event"] == "first pool_timeout"
        assert first["count"] == 37
        assert first["detail"].startswith("37 × pool_timeout, 09:30:12–09:34:42")
        assert first["evidence"] == "app/app.log:1 … app/app.log:37"
        assert first["end"] == T0 + timedelta(seconds=270)

    def test_later_bursts_and_first_of_each_class(self):
        """A later burst of the same class is its own row; each class has one 'first' row."""
        tl = ll.timeline(app=burst_app())
        events = tl["event"].to_list()
        assert events.count("first pool_timeout") == 1
        assert "pool_timeout" in events and "first connection_reset" in events
        later = tl.filter(pl.col("event") == "pool_timeout").row(0, named=True)
        assert later["count"] == 3

    def test_burst_gap_option(self):
        """A wider burst_gap merges the two pool_timeout bursts."""
        tl = ll.timeline(app=burst_app(), burst_gap="30m")
        assert tl.filter(pl.col("event") == "first pool_timeout")["count"][0] == 40

    def test_recovery(self):
        """The last database error followed by quiet is the recovery row."""
        tl = ll.timeline(app=burst_app())
        rec = tl.filter(pl.col("event") == "recovery").row(0, named=True)
        assert rec["time"] == T0 + timedelta(minutes=21)
        assert "none in the 39 min after it" in rec["detail"]
        # any error class (a pool timeout too), so not "connection error": the deploys table's word
        assert rec["detail"].startswith("last database error (connection_reset)")

    def test_pandas_input(self):
        """pandas frames work as well."""
        assert ll.timeline(app=burst_app().to_pandas()).height == ll.timeline(app=burst_app()).height


class TestIncidentTimeline:
    @pytest.fixture(scope="class")
    @classmethod
    def tl(cls):
        return ll.timeline(ll.Incident.load(POOL_LEAK))

    def test_human_events_merged(self, tl):
        """The restart declared in incident.toml is in the timeline, marked as such."""
        human = tl.filter(pl.col("source") == "incident.toml").row(0, named=True)
        assert human["event"] == "restart" and human["detail"] == "Operator restarted the service"

    def test_derived_events(self, tl):
        """Pool at capacity (from the gauge, one span per stay), first pool_timeout (app) and detected starts."""
        events = set(tl["event"])
        assert {"first pool_timeout", "pool at capacity"} <= events
        assert "pool below capacity" not in events  # the span's end says it
        cap = tl.filter(pl.col("event") == "pool at capacity").row(0, named=True)
        assert cap["evidence"].startswith("series db_pool_checked_out{")
        assert cap["end"] > cap["time"] and "pool at capacity (" in cap["what"]

    def test_sorted_by_time(self, tl):
        """Rows are in time order."""
        assert tl["time"].is_sorted()

    def test_alerts_from_replay(self):
        """Each firing span of a replay_alert frame is one row, from firing to resolved."""
        series = pl.DataFrame(
            {"ts": [T0 + timedelta(minutes=i) for i in range(5)], "series": "r", "value": [0.0, 1, 1, 1, 0]}
        )
        alerts = ll.replay_alert(series, "r", ">", 0.5, for_="1m", name="HighErrors")
        tl = ll.timeline(app=burst_app(), alerts=alerts)
        fired = tl.filter(pl.col("event") == "alert firing").row(0, named=True)
        assert fired["time"] == T0 + timedelta(minutes=2) and fired["end"] == T0 + timedelta(minutes=4)
        assert fired["detail"] == "HighErrors firing 09:32:12–09:34:12 (2 min)"
        assert fired["what"] == "alert HighErrors firing (2 min)"


class TestTimeZones:
    def test_local_time_column(self):
        """tz= adds time_local in that zone; time stays UTC."""
        tl = ll.timeline(app=burst_app(), tz="Europe/Berlin")
        assert tl.columns[:2] == ["time", "time_local"]
        assert tl.schema["time"].time_zone == "UTC"
        assert tl["time_local"][0].hour == 10  # CET is UTC+1 in March

    def test_bad_zone(self):
        """An unknown zone names what is expected."""
        with pytest.raises(ValueError, match="IANA"):
            ll.timeline(app=burst_app(), tz="Mars/Olympus")


class TestMarkdown:
    def test_snapshot(self):
        """The timeline renders as this GitHub Markdown table (times labelled with their zone)."""
        tl = ll.timeline(app=burst_app().head(3), tz="America/New_York").drop("end", "what", "action")
        expected = (
            "| time (UTC) | time_local (America/New_York) | source | event | detail | count | evidence |\n"
            "| --- | --- | --- | --- | --- | ---: | --- |\n"
            '| 2024-03-01 09:30:12 | 2024-03-01 04:30:12 | app | first pool_timeout | 3 × pool_timeout, 09:30:12–09:30:27: "QueuePool limit of size 5 overflow 10 reached" | 3 | app/app.log:1 … app/app.log:3 |'
        )
        assert to_markdown(tl) == expected

    def test_every_row_has_every_cell(self):
        """Each Markdown row has as many cells as the header (pipes in text are escaped)."""
        app = burst_app().with_columns(message=pl.lit("a | b\nc"))
        md = to_markdown(ll.timeline(app=app))
        lines = md.splitlines()
        width = lines[0].count(" | ")
        assert all(line.replace("\\|", "").count(" | ") == width for line in lines)


class TestVocabulary:
    def test_labels_are_postgresql_event_kinds(self):
        """The timeline's and the impact table's PostgreSQL labels name events the reader produces (one home: formats)."""
        from loglib.formats.pg_messages import (
            PG_EVENT_KINDS,
            PG_EVENT_LABELS,
            PG_IMPACT_LABELS,
            REFUSAL_EVENTS,
        )

        assert set(PG_EVENT_LABELS) | set(PG_IMPACT_LABELS) | set(REFUSAL_EVENTS) <= set(PG_EVENT_KINDS)
        assert set(REFUSAL_EVENTS) <= set(PG_EVENT_LABELS) & set(PG_IMPACT_LABELS)
