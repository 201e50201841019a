"""The event frames' dtypes come from the schema alone (issues 17, 19): every reader, scan, empty
read and cache load gives the same ones, so frames stack; repeated text is Categorical."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib import cache
from loglib.cache import cached_read
from loglib.core.schema import APP_EVENTS, EVENT_TEXT, PG_EVENTS, PGBOUNCER_EVENTS, FrameSchema
from loglib.present.markup import csv_safe

PG = b"2024-03-01 10:00:00.000 UTC [7] app@shop LOG:  connection received: host=10.0.0.5 port=5000\n"
APP = b"2024-03-01 10:00:00,120 ERROR app.db: QueuePool limit of size 5 overflow 0 reached, connection timed out, timeout 1.00\n"
PGB = b"2024-03-01 10:00:01.000 UTC [7] LOG C-0x1: shop/app@10.0.0.5:5000 login attempt: db=shop user=app tls=no\n"

CASES: list[tuple[str, FrameSchema, Callable, Callable, bytes, dict]] = [
    ("pg", PG_EVENTS, ll.read_pg_log, ll.scan_pg_log, PG, {"prefix": "%m [%p] %q%u@%d "}),
    ("app", APP_EVENTS, ll.read_app_log, ll.scan_app_log, APP, {"tz": "UTC"}),
    ("pgbouncer", PGBOUNCER_EVENTS, ll.read_pgbouncer_log, ll.scan_pgbouncer_log, PGB, {}),
]


@pytest.mark.parametrize(("kind", "schema", "read", "scan", "log", "kw"), CASES, ids=[c[0] for c in CASES])
def test_every_path_gives_the_schema_dtypes(
    kind: str, schema: FrameSchema, read: Callable, scan: Callable, log: bytes, kw: dict, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """read, scan, an empty read, the schema's empty frame and a cache hit: one schema; they stack."""
    monkeypatch.setenv("LOGLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    path = tmp_path / f"{kind}.log"
    path.write_bytes(log)
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    fresh = read(path, **kw)
    cached_read(read, [str(path)], kw)
    frames = {
        "read": fresh,
        "scan": scan(path, **kw).collect(),
        "empty read": read(empty, raise_if_empty=False, **kw),
        "schema.empty()": schema.empty(),
        "cache hit": cached_read(read, [str(path)], kw),
    }
    for name, frame in frames.items():
        assert frame.schema == schema.polars_schema, name
    assert schema.categorical and all(fresh.schema[c] == EVENT_TEXT for c in schema.categorical)
    assert "message" not in schema.categorical
    stacked = pl.concat(list(frames.values()))
    assert stacked.height == 3 * fresh.height
    assert_frame_equal(frames["cache hit"], fresh)


def test_categorical_cells_are_escaped_in_csv() -> None:
    """csv_safe treats a Categorical cell as text: no formula, no tag reaches the CSV."""
    frame = pl.DataFrame({"user": ["=1+1", "<b>", "app"]}, schema={"user": EVENT_TEXT})
    assert csv_safe(frame)["user"].to_list() == ["'=1+1", "&lt;b>", "app"]


def test_events_and_sessions_meet_by_user() -> None:
    """pg_connections(by=...) joins the events' Categorical keys to the sessions' text ones."""
    log = (
        PG + b"2024-03-01 10:00:00.100 UTC [7] app@shop LOG:  connection authorized: user=app database=shop\n"
    )
    table = ll.pg_connections(
        ll.read_pg_log(log, prefix="%m [%p] %q%u@%d "), every="1h", by=["user", "database"]
    )
    assert table.select("user", "database", "authorized").rows() == [("app", "shop", 1)]
