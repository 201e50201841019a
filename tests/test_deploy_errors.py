"""One failed request is one error after a deploy (lab: errors per deploy were counted 1–3 too high)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

import loglib as ll
from loglib.analysis.findings.post_deploy import connection_errors

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _app() -> pl.DataFrame:
    rows = [
        (
            1,
            "info",
            "conn_invalidated",
            "Invalidate connection <psycopg.Connection [BAD]> (reason: AdminShutdown)",
        ),
        (
            1.001,
            "error",
            "admin_shutdown",
            "POST /checkout failed: terminating connection due to administrator command",
        ),
        (2, "error", "connection_refused", "GET /catalog failed: connection refused"),
    ]
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=s) for s, *_ in rows],
            "level": [r[1] for r in rows],
            "error_class": [r[2] for r in rows],
            "message": [r[3] for r in rows],
            "file": "app.log",
            "line": [1, 2, 3],
        }
    )


def test_library_notes_and_server_refusals_are_not_extra_errors():
    pg = ll.read_pg_log(
        b"2026-03-01 10:00:02.000 UTC [9] app@shop FATAL:  the database system is starting up\n",
        prefix="%m [%p] %q%u@%d ",
    )
    ev = ll.Evidence.from_frames(app=_app(), pg=pg)
    errors = connection_errors(ev)
    assert errors["what"].to_list() == ["admin_shutdown", "connection_refused"]
    # without an app log, PostgreSQL's refusals are what can be counted
    assert connection_errors(ll.Evidence.from_frames(pg=pg))["what"].to_list() == ["server_not_ready"]
