"""Pool-event logging against a real PostgreSQL: the leak report names the function and line that
leaked, and counts exactly the leaks the test made."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import warnings
from pathlib import Path

import polars as pl
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

import loglib as ll
from loglib.instrument import log_pool_events
from tests import leaky_app

APP_FILE = Path(leaky_app.__file__).resolve()


def _line_of(marker: str) -> int:
    lines = APP_FILE.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


LEAK_LINE = _line_of("# LEAK:")
ASYNC_LEAK_LINE = _line_of("# ASYNC LEAK")


@pytest.fixture
def app_db(pg_server):
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute("create table orders (id int primary key)")
    leaky_app.FAILED.clear()
    yield pg_server
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # SQLAlchemy warns as the garbage collector drops the leaked connections
        leaky_app.FAILED.clear()
        gc.collect()


def _idle_in_transaction_pids(pg_server) -> set[int]:
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "select pid from pg_stat_activity where state = 'idle in transaction' and pid <> pg_backend_pid()"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.postgres
class TestLeakRedHanded:
    def test_report_names_function_line_and_exact_count(self, app_db, tmp_path):
        """3 failing orders out of 20 leak 3 connections; pool_leaks names create_order at the leak line."""
        engine = create_engine(app_db.url, pool_size=5, max_overflow=10)
        path = tmp_path / "pool.jsonl"
        fail_at = {4, 11, 17}
        with log_pool_events(engine, path=path) as log:
            for i in range(20):
                leaky_app.handle(engine, i, fail=i in fail_at)
                assert leaky_app.list_orders(engine) == i + 1
        assert log.failures == 0
        events = ll.read_pool_events(path, strict=True)
        leaks = ll.pool_leaks(events)
        assert leaks.height == len(fail_at)
        assert leaks["open_at_end"].all()
        assert set(leaks["call_function"]) == {"create_order"}
        assert set(leaks["call_line"]) == {LEAK_LINE}
        assert {Path(f).resolve() for f in leaks["call_file"]} == {APP_FILE}
        assert leaks["stack"].str.contains("handle").all()  # the caller of the leaking function is there too
        # the server agrees: exactly those backends sit idle in transaction
        assert set(leaks["backend_pid"]) == _idle_in_transaction_pids(app_db)
        sites = ll.pool_leak_sites(leaks)
        assert sites.select("call_function", "call_line", "leaks").rows() == [("create_order", LEAK_LINE, 3)]
        # every other checkout came back: 20 x create_order's two checkouts + 20 list_orders, minus the leaks
        assert (events["event"] == "checkout").sum() == 60
        assert (events["event"] == "checkin").sum() == 57
        rates = ll.pool_leak_rates(events, every="1h")
        assert rates["leaked"].sum() == 3 and rates["checkouts"].sum() == 60
        assert rates["method"].unique().to_list() == ["pool_events"] and rates["exact"].all()
        # an incident with this pool log: leak_rates takes it as its best, exact evidence
        inc = ll.Incident.from_dict(
            {"title": "leak", "sources": [{"kind": "pool_events", "paths": [path.name]}]}, root=tmp_path
        )
        best = ll.leak_rates(inc, every="1h", best_only=True)
        assert best["method"].unique().to_list() == ["pool_events"]
        assert best["leaked"].sum() == 3 and best["confidence"].unique().to_list() == ["high"]
        engine.dispose()

    def test_garbage_collected_leaks_are_still_leaks(self, app_db, tmp_path):
        """When the garbage collector finally returns the leaked connections, the checkins say so."""
        engine = create_engine(app_db.url, pool_size=5, max_overflow=10)
        path = tmp_path / "pool.jsonl"
        with log_pool_events(engine, path=path):
            for i in range(6):
                leaky_app.handle(engine, i, fail=i % 3 == 0)
            leaky_app.FAILED.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SQLAlchemy warns about the non-checked-in connections
                gc.collect()
        events = ll.read_pool_events(path)
        assert events.filter(pl.col("gc").fill_null(False)).height == 2
        leaks = ll.pool_leaks(events)
        assert leaks.height == 2
        assert set(leaks["end_event"]) == {"gc_checkin"}
        assert not leaks["open_at_end"].any()
        assert set(leaks["call_line"]) == {LEAK_LINE}
        engine.dispose()

    def test_asyncio_engine(self, app_db, tmp_path):
        """An async app's leak is found too, with its coroutine as the call site and its task named."""
        path = tmp_path / "pool.jsonl"

        async def main():
            engine = create_async_engine(app_db.url.replace("+psycopg", "+psycopg_async"))
            log = log_pool_events(engine, path=path)
            for i in range(5):
                try:
                    await leaky_app.create_order_async(engine, i, fail=i in (1, 3))
                except leaky_app.ReceiptError as exc:
                    leaky_app.FAILED.append(exc)
            log.remove()
            return engine

        asyncio.run(main())
        events = ll.read_pool_events(path)
        leaks = ll.pool_leaks(events)
        assert leaks.height == 2
        assert set(leaks["call_function"]) == {"create_order_async"}
        assert set(leaks["call_line"]) == {ASYNC_LEAK_LINE}
        assert events.filter(pl.col("event") == "checkout")["task"].is_not_null().all()
        assert events["backend_pid"].is_not_null().all()


class TestPoolEventLog:
    def test_sampling_pairs_checkouts_with_checkins(self, tmp_path):
        """With sample=0.5 about half the checkouts are logged, each with its checkin: no false leaks."""
        engine = create_engine("sqlite://")
        path = tmp_path / "pool.jsonl"
        with log_pool_events(engine, path=path, sample=0.5):
            for _ in range(400):
                with engine.connect() as conn:
                    conn.execute(text("select 1"))
        events = ll.read_pool_events(path)
        checkouts = (events["event"] == "checkout").sum()
        assert 120 < checkouts < 280
        assert (events["event"] == "checkin").sum() == checkouts
        assert (events["event"] == "connect").sum() == 1  # life-cycle events are always logged
        assert ll.pool_leaks(events).height == 0
        assert events.filter(pl.col("event") == "checkout")["sample"].unique().to_list() == [0.5]
        assert not ll.pool_leak_rates(events)["exact"].any()

    def test_a_failure_to_log_never_reaches_the_application(self, tmp_path, caplog):
        """A broken log file is reported once and counted; the application's queries still work."""
        engine = create_engine("sqlite://")
        log = log_pool_events(engine, path=tmp_path / "pool.jsonl")
        os.close(log._fd)  # the file descriptor goes bad under the logger
        with caplog.at_level(logging.WARNING, logger="loglib.instrument"):
            for _ in range(3):
                with engine.connect() as conn:
                    assert conn.execute(text("select 1")).scalar() == 1
        log._fd = None
        assert log.failures >= 3
        assert len([r for r in caplog.records if r.name == "loglib.instrument"]) == 1
        log.remove()

    def test_lines_through_logging_read_back(self, caplog):
        """Without path=, lines go to a logger; formatted log lines read back as events."""
        engine = create_engine("sqlite://")
        with (
            caplog.at_level(logging.INFO, logger="app.pool"),
            log_pool_events(engine, logger="app.pool"),
            engine.connect() as conn,
        ):
            conn.execute(text("select 1"))
        formatted = "\n".join(f"2024-03-01 10:00:00 INFO app.pool {r.getMessage()}" for r in caplog.records)
        events = ll.read_pool_events(formatted.encode(), strict=True)
        assert events["event"].to_list() == ["first_connect", "connect", "checkout", "reset", "checkin"]
        assert Path(events["call_file"][2]).resolve() == Path(__file__).resolve()
        assert events["call_function"][2] == "test_lines_through_logging_read_back"

    def test_remove_detaches(self, tmp_path):
        """After remove(), nothing more is written."""
        engine = create_engine("sqlite://")
        path = tmp_path / "pool.jsonl"
        log = log_pool_events(engine, path=path, events=["checkout", "checkin"])
        with engine.connect():
            pass
        log.remove()
        with engine.connect():
            pass
        assert ll.read_pool_events(path)["event"].to_list() == ["checkout", "checkin"]

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [({"sample": 1.5}, "sample=1.5"), ({"events": ["chekout"]}, "chekout")],
    )
    def test_bad_arguments(self, kwargs, match):
        """Bad options are refused at once, naming what was received."""
        with pytest.raises(ValueError, match=match):
            log_pool_events(create_engine("sqlite://"), **kwargs)

    def test_not_an_engine(self):
        """Passing something that is not an engine says what is expected."""
        with pytest.raises(TypeError, match="Engine, AsyncEngine or Pool"):
            log_pool_events("sqlite://")


class TestReadPoolEvents:
    def test_rejects_have_file_and_line(self):
        """Bad JSON, wrong field types and foreign lines are rejected with their line; the rest parse."""
        log = (
            b'{"ts":"2024-03-01T10:00:00Z","event":"checkout","conn":1}\n'
            b'{"ts":"2024-03-01T10:00:01Z","event":"checkin","conn":\n'
            b"some other log line\n"
            b'{"ts":"2024-03-01T10:00:02Z","event":"checkout","conn":"two"}\n'
            b'{"ts":"yesterday","event":"checkout","conn":3}\n'
            b"\n"
            b'{"ts":"2024-03-01T10:00:03Z","event":"checkin","conn":1}\n'
        )
        with pytest.warns(ll.RejectedLinesWarning):
            events = ll.read_pool_events(log)
        assert events["line"].to_list() == [1, 7]
        report = ll.read_report(events)
        assert report.lines_read == 7 == report.lines_parsed + report.lines_rejected
        rejected = ll.rejects(events)
        assert rejected["line"].to_list() == [2, 3, 4, 5, 6]
        assert rejected["reason"].to_list()[0].startswith("bad JSON")
        assert "'conn'" in rejected["reason"][2]
        assert "timestamp" in rejected["reason"][3]

    def test_strict_raises_at_the_first_bad_line(self):
        """strict=True raises ParseError naming the line."""
        with pytest.raises(ll.ParseError) as info:
            ll.read_pool_events(b'{"ts":"2024-03-01T10:00:00Z","event":"checkout"}\nnope\n', strict=True)
        assert info.value.line == 2

    def test_empty_is_an_error_unless_allowed(self):
        """No events raises NoDataError, or gives the empty canonical frame on request."""
        with pytest.raises(ll.NoDataError):
            ll.read_pool_events(b"\n")
        empty = ll.read_pool_events(b"\n", raise_if_empty=False)
        assert empty.schema == ll.schema.POOL_EVENTS.polars_schema
