"""pgBouncer's refusals counted as the errors of a deploy, on a real recording: an app working through
a real pgBouncer while PostgreSQL behind it is restarted twice, once under traffic and once after
draining the app and PAUSEing pgBouncer (issue 16). Counts are checked against the app's own
record of every error it got."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime

import polars as pl
import psycopg
import pytest

import loglib as ll
from tests.conftest import require
from tests.pgbouncerserver import find_pgbouncer, running
from tests.pgserver import find_pg_bin
from tests.test_deploys_real import MOMENT_GAP, App

pytestmark = [pytest.mark.postgres, pytest.mark.pgbouncer]
#: how long PostgreSQL stays down in each deploy (longer than query_wait_timeout)
DOWN = 4.0
#: what pgBouncer itself tells a client it cannot serve (its words, as psycopg shows them)
POOLER_WORDS = (
    "query_wait_timeout",
    "server login has been failing",
    "server conn crashed?",
    "pgbouncer cannot connect to server",
    "client_login_timeout",
)


def _folder(root, deploys, sources):
    events = "".join(
        f'[[events]]\nat = "{at.isoformat()}"\nkind = "deploy"\ntext = "{text}"\n' for at, text in deploys
    )
    root.mkdir(exist_ok=True)
    (root / "incident.toml").write_text('title = "PostgreSQL restarts behind pgBouncer"\n' + sources + events)
    return root


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    require(find_pg_bin() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    require(find_pgbouncer() is not None, "pgbouncer")
    folder = tmp_path_factory.mktemp("refusals")
    deploys: list[tuple[datetime, str]] = []
    # server_login_retry 1 s (default 15): under load the app once waited out 60 s of
    # "server login has been failing" after PostgreSQL was back; the refusal is the same either way
    settings = {"query_wait_timeout": "2", "admin_users": "app", "server_login_retry": "1"}
    with running(settings) as b:
        app = App(b.dsn(), folder / "app.log")
        app.start()
        app.wait_ok(20)
        deploys.append((datetime.now(UTC), "v1: PostgreSQL restarted under traffic"))
        b.pg.stop("fast")
        time.sleep(DOWN)
        b.pg.start()
        try:
            app.wait_ok(20, timeout=180)
        except TimeoutError as exc:  # say what pgBouncer did meanwhile
            tail = b.log_path.read_text(errors="replace").splitlines()[-15:]
            raise TimeoutError(f"{exc}; pgbouncer.log ends:\n" + "\n".join(tail)) from None
        time.sleep(MOMENT_GAP)
        # the app is drained and pgBouncer paused before PostgreSQL goes down: nobody waits, nobody fails
        deploys.append((datetime.now(UTC), "v2: app drained, pgBouncer PAUSEd, PostgreSQL restarted"))
        app.stop()
        with psycopg.connect(b.dsn(dbname="pgbouncer"), autocommit=True, connect_timeout=15) as admin:
            # PAUSE waits for every server connection to be released: under load it once hung the
            # suite, so a watchdog cancels it and the fixture fails instead of waiting forever
            watchdog = threading.Timer(60, admin.cancel)
            watchdog.start()
            try:
                admin.execute("PAUSE postgres")  # the app's database (a bare PAUSE can wait forever here)
            finally:
                watchdog.cancel()
            b.pg.stop("fast")
            time.sleep(DOWN)
            b.pg.start()
            admin.execute("RESUME postgres")
        app.start()
        app.wait_ok(20)
        app.stop()
        shutil.copy(b.log_path, folder / "pgbouncer.log")
        shutil.copy(b.pg.log_dir / "postgresql.log", folder / "postgresql.log")
    return folder, app, deploys


APP = '[[sources]]\nkind = "app"\npaths = ["../app.log"]\nservice = "api"\n'
PG = '[[sources]]\nkind = "postgres"\npaths = ["../postgresql.log"]\n'
PGB = '[[sources]]\nkind = "pgbouncer"\npaths = ["../pgbouncer.log"]\n'


def _gave_up(errors: list[str]) -> int:
    """Errors where the client gave up waiting (libpq's connect_timeout): pgBouncer refused nothing."""
    return sum("timeout expired" in e for e in errors)


def test_with_the_app_log_every_failed_request_is_counted_pgbouncers_words_included(recording):
    folder, app, deploys = recording
    inc = ll.Incident.load(_folder(folder / "all", deploys, APP + PG + PGB))
    cmp = ll.compare_deploys(inc)
    assert cmp["text"].to_list() == [t for _, t in deploys]
    assert cmp["errors"].to_list() == [len(app.errors), 0]
    assert cmp["restarted"].to_list() == [["postgres"], ["app", "postgres"]]
    assert cmp["pgbouncer_paused"].to_list() == [False, True]
    # the app heard pgBouncer's own words (query_wait_timeout, server login has been failing…):
    # they are connection errors of the deploy, class pooler_error
    pooler_said = sum(any(w in e for w in POOLER_WORDS) for e in app.errors)
    assert pooler_said > 0
    assert inc.app.filter(pl.col("error_class") == "pooler_error").height == pooler_said
    # pgBouncer logged one refusal per failed request except those the client gave up on; the
    # first one (its server connection crashed) the client heard in PostgreSQL's words
    refused = ll.analysis.pgbouncer.pooler_refusals(inc)
    assert refused.height == len(app.errors) - _gave_up(app.errors)
    assert refused["ts"].min() >= cmp["at"][0] and refused["ts"].max() < cmp["at"][1]
    compared = next(f for f in ll.findings(inc) if "shared" in f.numbers)
    assert "not_paused" in compared.numbers["shared"]
    recs = ll.postmortem.recommendations(ll.findings(inc), inc)
    assert recs["recommendation"].str.contains("PAUSE pgBouncer before the restart").any()


def test_without_the_app_log_pgbouncers_refusals_are_the_deploys_errors(recording):
    folder, app, deploys = recording
    inc = ll.Incident.load(_folder(folder / "no-app", deploys, PG + PGB))
    cmp = ll.compare_deploys(inc)
    # each refusal pgBouncer logged is one failed request of the app's; PostgreSQL's refusals of
    # pgBouncer's own logins are not counted again
    assert cmp["errors"].to_list() == [len(app.errors) - _gave_up(app.errors), 0]
    refused = ll.analysis.pgbouncer.pooler_refusals(inc)
    assert set(refused["reason"]) <= {
        "query_wait_timeout",
        "server login has been failing, try again later (server_login_retry)",
        "server conn crashed?",
    }
    # pgBouncer's failed logins to the stopping and starting PostgreSQL ("S: login failed: FATAL:
    # the database system is shutting down") are pooler errors too, not refusals
    own = inc.pgbouncer.filter((pl.col("event") == "pooler_error") & (pl.col("side").is_null()))
    assert own["reason"].str.contains("login failed").all()
    in_v1 = own.filter((pl.col("ts") >= cmp["at"][0]) & (pl.col("ts") < cmp["at"][1]))
    assert cmp["pooler_errors"][0] == refused.height + in_v1.height


#: what pgBouncer says to a client it never gave a server (the app hears these words)
REFUSED_WORDS = (
    "query_wait_timeout",
    "server login has been failing",
    "pgbouncer cannot connect to server",
    "client_login_timeout",
    "no more connections allowed",
)


def test_sessions_dropped_are_the_served_ones_and_refused_logins_are_counted_apart(recording):
    """The app's worker holds one connection: when PostgreSQL went down under traffic that one was
    cut (dropped); every reconnect pgBouncer then refused is a refused login, not a dropped session."""
    folder, app, deploys = recording
    inc = ll.Incident.load(_folder(folder / "all", deploys, APP + PG + PGB))
    cmp = ll.compare_deploys(inc)
    refused = sum(any(w in e for w in REFUSED_WORDS) for e in app.errors)
    assert refused > 0
    assert cmp["sessions_dropped"].to_list() == [1, 0]
    assert cmp["sessions_refused"].to_list() == [refused, 0]
    table = ll.postmortem.deploy_table(inc)
    assert table["Sessions dropped"].to_list() == [1, 0] and table["Sessions refused"].to_list() == [
        refused,
        0,
    ]
