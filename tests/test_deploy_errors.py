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


PGB_LOG = (
    b"2026-03-01 10:00:01.000 UTC [7] WARNING server login failed: FATAL the database system is starting up\n"
    b"2026-03-01 10:00:02.000 UTC [7] LOG C-0x1: shop/app@10.0.0.5:5001 closing because: server login has been "
    b"failing, try again later (server_login_retry) (age=0s)\n"
    b"2026-03-01 10:00:02.000 UTC [7] WARNING C-0x1: shop/app@10.0.0.5:5001 pooler error: server login has been "
    b"failing, try again later (server_login_retry)\n"
    b"2026-03-01 10:00:03.000 UTC [7] WARNING C-0x2: shop/app@10.0.0.5:5002 pooler error: password authentication "
    b"failed\n"
    b"2026-03-01 10:00:04.000 UTC [7] WARNING C-0x3: (nodb)/(nouser)@10.0.0.5:5003 pooler error: no more "
    b"connections allowed (max_client_conn)\n"
)


def test_without_an_app_log_pgbouncers_refusals_are_the_failed_requests():
    """Each client pgBouncer refused is one error; a wrong password and pgBouncer's own failed
    login to PostgreSQL are not, nor are PostgreSQL's refusals of pgBouncer's logins."""
    pg = ll.read_pg_log(
        b"2026-03-01 10:00:01.000 UTC [9] postgres@shop FATAL:  the database system is starting up\n",
        prefix="%m [%p] %q%u@%d ",
    )
    ev = ll.Evidence.from_frames(pg=pg, pgbouncer=ll.read_pgbouncer_log(PGB_LOG))
    errors = connection_errors(ev)
    assert errors["source"].to_list() == ["pgbouncer", "pgbouncer"]
    assert errors["what"].to_list() == [
        "pooler: server login has been failing, try again later (server_login_retry)",
        "pooler: no more connections allowed (max_client_conn)",
    ]
    assert errors["line"].to_list() == [3, 5]
    # with an app log, the app's own lines count the failed requests (its words for the refusals)
    app = ll.read_app_log(
        b'{"time": "2026-03-01T10:00:02Z", "level": "ERROR", "message": "db error: server login has been failing, '
        b'try again later (server_login_retry)"}\n'
    )
    both = connection_errors(
        ll.Evidence.from_frames(app=app, pg=pg, pgbouncer=ll.read_pgbouncer_log(PGB_LOG))
    )
    assert both["what"].to_list() == ["pooler_error"]
