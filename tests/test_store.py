"""Incident frames to SQL and back: unchanged on SQLite and a real PostgreSQL, time zones included,
and writing twice never duplicates rows."""

from __future__ import annotations

import sqlite3
import warnings
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

import pandas as pd
import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from tests.conftest import FILES, ROOT

SAMPLE = ROOT / "data" / "sample-pg"


def _tricky() -> pl.DataFrame:
    """Every dtype the store promises to keep, with nulls, NaN and ±inf."""
    berlin = [datetime(2024, 3, 31, 0, 30, tzinfo=UTC), datetime(2024, 10, 27, 0, 30, tzinfo=UTC), None]
    return pl.DataFrame(
        {
            "ts": berlin,
            "naive": [datetime(2024, 1, 1, 12, 0, 0, 1), None, datetime(1969, 12, 31, 23, 59, 59)],
            "ms": [datetime(2024, 1, 1, tzinfo=UTC)] * 3,
            "held": [timedelta(microseconds=1), timedelta(days=-2, seconds=5), None],
            "value": [float("nan"), float("inf"), -float("inf")],
            "f32": pl.Series([1.5, None, float("nan")], dtype=pl.Float32),
            "i8": pl.Series([-128, 127, None], dtype=pl.Int8),
            "u32": pl.Series([0, 4_294_967_295, None], dtype=pl.UInt32),
            "big": [2**62, -(2**62), None],
            "ok": [True, False, None],
            "day": [date(2024, 2, 29), None, date(1900, 1, 1)],
            "clock": [time(23, 59, 59, 999_999), None, time(0)],
            "text": ["ünïcødé ✓", "", None],
            "cat": pl.Series(["a", "b", None], dtype=pl.Categorical),
            "level": pl.Series(["low", "high", "low"], dtype=pl.Enum(["low", "high"])),
            "tags": [["x", "y"], [], None],
            "labels": [{"instance": "a:9100", "job": None}, None, {"instance": None, "job": "node"}],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "ms": pl.Datetime("ms", "Europe/Berlin")},
    ).with_columns(pl.col("ts").dt.convert_time_zone("Europe/Berlin"))


@pytest.fixture(scope="module")
def incident() -> dict[str, pl.DataFrame]:
    """Real frames: the sample PostgreSQL log, its sessions, Prometheus metrics, pool events, odd dtypes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        pg = ll.read_pg_log(SAMPLE / "postgresql.json")
        metrics = ll.read_prometheus(FILES / "metrics" / "real" / "query_range.json")
    pool = ll.read_pool_events(
        b'{"ts":"2024-03-01T10:00:00Z","event":"checkout","conn":1,"call_line":7,"sample":0.5}\n'
        b'{"ts":"2024-03-01T10:00:01Z","event":"checkin","conn":1,"gc":true}\n'
    )
    return {
        "pg": pg,
        "sessions": ll.pg_sessions(pg),
        "metrics": metrics,
        "pool_events": pool,
        "leaks": ll.pool_leaks(pool, hold_longer_than="0s"),
        "tricky": _tricky(),
        "empty": ll.schema.PG_SESSIONS.empty(),
    }


def _round_trip(url, frames, **kw):
    written = ll.to_sql(frames, url, **kw)
    assert written == {k: v.height for k, v in frames.items()}
    back = ll.read_sql(url, incident_id=kw.get("incident_id"))
    assert set(back) == set(frames)
    for name, frame in frames.items():
        assert_frame_equal(back[name], frame, check_exact=True)
    return back


def _count(url_or_dsn, table, sqlite_path=None) -> int:
    if sqlite_path is not None:
        with sqlite3.connect(sqlite_path) as conn:
            return conn.execute(f"select count(*) from {table}").fetchone()[0]
    with psycopg.connect(url_or_dsn) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


class TestSQLite:
    def test_round_trip_is_exact(self, incident, tmp_path):
        """Every frame comes back equal: dtypes, zones, NaN, ±inf, nulls, structs, lists, order."""
        _round_trip(f"sqlite:///{tmp_path / 'i.db'}", incident, incident_id="pool-2024-03-01")

    def test_writing_twice_does_not_duplicate(self, incident, tmp_path):
        """A second write of the same incident replaces the first; another incident is kept apart."""
        path = tmp_path / "i.db"
        url = f"sqlite:///{path}"
        ll.to_sql(incident, url, incident_id="a")
        ll.to_sql(incident, url, incident_id="a")
        assert _count(None, "pg", path) == incident["pg"].height
        ll.to_sql({"pg": incident["pg"].head(5)}, url, incident_id="b", title="second")
        assert _count(None, "pg", path) == incident["pg"].height + 5
        assert ll.read_sql(url, incident_id="b")["pg"].height == 5
        assert_frame_equal(ll.read_sql(url, incident_id="a")["pg"], incident["pg"])
        # rewriting "a" with fewer frames drops the ones it no longer has
        ll.to_sql({"sessions": incident["sessions"]}, url, incident_id="a")
        assert set(ll.read_sql(url, incident_id="a")) == {"sessions"}
        assert _count(None, "pg", path) == 5
        listed = ll.sql_incidents(url)
        assert listed["incident_id"].to_list() == ["a", "b"]
        assert listed["title"].to_list() == [None, "second"]
        with pytest.raises(ValueError, match="holds 2 incidents"):
            ll.read_sql(url)

    def test_sql_types_and_indexes(self, incident, tmp_path):
        """Tables have queryable types, a primary key and time/pid indexes; times are stored in UTC."""
        path = tmp_path / "i.db"
        ll.to_sql(incident, f"sqlite:///{path}", incident_id="x")
        with sqlite3.connect(path) as conn:
            types = {r[1]: r[2] for r in conn.execute("pragma table_info(pg)")}
            indexes = {r[1] for r in conn.execute("pragma index_list(pg)")}
            first = conn.execute("select ts from tricky order by _row limit 1").fetchone()[0]
            label = conn.execute(
                "select json_extract(labels, '$.instance') from tricky where _row = 0"
            ).fetchone()[0]
        assert types["ts"] == "DATETIME" and types["pid"] == "BIGINT" and types["message"] == "TEXT"
        assert {"ix_pg_incident_ts", "ix_pg_incident_pid"} <= indexes
        assert first.startswith("2024-03-31 00:30:00")  # UTC, not Berlin wall-clock time
        assert label == "a:9100"

    def test_incident_object_and_pandas(self, incident, tmp_path):
        """An object with frame attributes (pandas ones too) is written; missing/None ones are skipped."""
        url = f"sqlite:///{tmp_path / 'i.db'}"
        sessions = incident["sessions"]
        obj = SimpleNamespace(incident_id="obj", title="Pool exhaustion", pg=None,
                              sessions=sessions.to_pandas(), metrics=incident["metrics"])  # fmt: skip
        assert ll.to_sql(obj, url) == {"sessions": sessions.height, "metrics": incident["metrics"].height}
        back = ll.read_sql(url)
        assert_frame_equal(back["metrics"], incident["metrics"])
        assert back["sessions"].height == sessions.height
        assert ll.sql_incidents(url)["title"].to_list() == ["Pool exhaustion"]
        assert isinstance(obj.sessions, pd.DataFrame)

    def test_new_columns_are_added_to_an_existing_table(self, tmp_path):
        """A frame with a column the shared table lacks extends the table; the old incident reads back."""
        url = f"sqlite:///{tmp_path / 'i.db'}"
        old = pl.DataFrame({"pid": [1, 2]})
        new = pl.DataFrame({"pid": [3], "note": ["later"]})
        ll.to_sql({"t": old}, url, incident_id="old")
        ll.to_sql({"t": new}, url, incident_id="new")
        assert_frame_equal(ll.read_sql(url, incident_id="old")["t"], old)
        assert_frame_equal(ll.read_sql(url, incident_id="new")["t"], new)

    def test_bad_names_are_refused(self, tmp_path):
        """Table names that are not identifiers, and reserved column names, are refused clearly."""
        url = f"sqlite:///{tmp_path / 'i.db'}"
        with pytest.raises(ValueError, match="cannot be a table name"):
            ll.to_sql({"my table": pl.DataFrame({"a": [1]})}, url)
        with pytest.raises(ValueError, match="reserves"):
            ll.to_sql({"t": pl.DataFrame({"_row": [1]})}, url)
        with pytest.raises(ValueError, match="nothing to write"):
            ll.to_sql({}, url)
        with pytest.raises(ll.NoDataError):
            ll.read_sql(url, incident_id="nope")


@pytest.mark.postgres
class TestPostgreSQL:
    def test_round_trip_and_idempotency(self, incident, pg_server):
        """On a real PostgreSQL: exact round trip, timestamptz/interval/jsonb types, no duplicates."""
        url = pg_server.url
        _round_trip(url, incident, incident_id="pool-2024-03-01")
        ll.to_sql(incident, url, incident_id="pool-2024-03-01")
        assert _count(pg_server.dsn, "pg") == incident["pg"].height
        with psycopg.connect(pg_server.dsn) as conn:
            types = dict(
                conn.execute(
                    "select column_name, data_type from information_schema.columns where table_name = 'tricky'"
                ).fetchall()
            )
            conn.execute("set time zone 'America/New_York'")  # the session zone must not matter
            label = conn.execute("select labels->>'instance' from tricky where _row = 0").fetchone()[0]
            nan = conn.execute("select value::text from tricky where _row = 0").fetchone()[0]
        assert types["ts"] == "timestamp with time zone"
        assert types["naive"] == "timestamp without time zone"
        assert types["held"] == "interval"
        assert types["labels"] == "jsonb"
        assert types["value"] == "double precision"
        assert label == "a:9100" and nan == "NaN"
        back = ll.read_sql(url, incident_id="pool-2024-03-01")
        assert_frame_equal(back["tricky"], incident["tricky"], check_exact=True)

    def test_nul_characters_are_replaced(self, pg_server):
        """PostgreSQL text cannot hold NUL: it becomes U+FFFD (documented), the rest is kept."""
        ll.to_sql({"t": pl.DataFrame({"text": ["a\x00b"]})}, pg_server.url, incident_id="n")
        assert ll.read_sql(pg_server.url, incident_id="n")["t"]["text"].to_list() == ["a\ufffdb"]
