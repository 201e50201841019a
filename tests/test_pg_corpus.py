"""The public corpus (pgBadger's real fixtures) parses with no unexplained rejects, and
per-hour connection counts agree with pgBadger on the same files."""

from __future__ import annotations

import json
import subprocess
import tempfile
import warnings

import polars as pl
import pytest

import loglib as ll
from tests.conftest import require_tool

# file -> (read_pg_log options, expected format label start)
CORPUS_FILES = {
    "anonymize.log": ({}, "csvlog"),
    "begin_end.log": ({}, "stderr"),
    "cloudsql.log.gz": ({}, "cloudsql"),
    "cnpg.log.gz": ({}, "cnpg"),
    "csv_statement_without_duration.log": ({}, "csvlog"),
    "light.postgres.log.bz2": ({}, "stderr"),
    "multiline_param.log": ({}, "stderr"),
    "pg-syslog.1.bz2": ({"tz": "Europe/Paris", "year": 2019}, "syslog"),
    "pg-syslog.2.gz": ({"tz": "Europe/Paris", "year": 2019}, "syslog"),
    "pg-timezones.log": ({}, "rds"),
    "pg_rawcsv.log": ({}, "stderr"),
    "pg_vacuums.json.gz": ({}, "jsonlog"),
    "pg_vacuums.log.gz": ({}, "stderr"),
    "postgresql_param_range.log": ({}, "stderr"),
    "queryid.log.gz": ({}, "stderr"),
    "rds.log.bz2": ({}, "rds"),
    "stmt_type.log": ({}, "stderr"),
    "tempfile_only.log.gz": ({}, "stderr"),
    "weeknumber.log": ({}, "csvlog"),
}
# connection lines per file as listed in the corpus MANIFEST (received / authorized / disconnection)
MANIFEST_CONNECTIONS = {
    "begin_end.log": (8, 8, 8),
    "cloudsql.log.gz": (400, 398, 397),
    "cnpg.log.gz": (387, 386, 385),
    "pg-syslog.1.bz2": (7, 6, 6),
}


class TestCorpus:
    @pytest.mark.parametrize("name", sorted(CORPUS_FILES))
    def test_parses_with_no_unexplained_rejects(self, corpus, name):
        """Every real fixture reads in its format, and every line is used or known noise."""
        options, fmt = CORPUS_FILES[name]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ll.RejectedLinesWarning)
            df = ll.read_pg_log(corpus / "pgbadger" / name, **options)
        report = ll.read_report(df)
        assert report.format.startswith(fmt)
        assert report.unexplained.height == 0
        assert report.lines_read == report.lines_parsed + report.lines_rejected
        assert df["ts"].null_count() == 0

    @pytest.mark.parametrize("name", sorted(MANIFEST_CONNECTIONS))
    def test_connection_lines_match_the_manifest(self, corpus, name):
        """received / authorized / disconnection counts equal those the corpus manifest lists."""
        options = CORPUS_FILES[name][0]
        df = ll.read_pg_log(corpus / "pgbadger" / name, **options)
        counts = dict(df.group_by("event").len().iter_rows())
        got = tuple(
            counts.get(e, 0) for e in ("connection_received", "connection_authorized", "disconnection")
        )
        assert got == MANIFEST_CONNECTIONS[name]

    def test_cloudsql_reference_value(self, corpus):
        """pgBadger's own test asserts 151 cloudsqladmin connections to database cloudsqladmin."""
        df = ll.read_pg_log(corpus / "pgbadger" / "cloudsql.log.gz")
        auth = df.filter(pl.col("event") == "connection_authorized")
        assert (
            auth.filter((pl.col("user") == "cloudsqladmin") & (pl.col("database") == "cloudsqladmin")).height
            == 151
        )

    def test_cnpg_reference_value(self, corpus):
        """pgBadger's own test asserts 378 postgres connections to database postgres (cnpg)."""
        df = ll.read_pg_log(corpus / "pgbadger" / "cnpg.log.gz")
        auth = df.filter(pl.col("event") == "connection_authorized")
        assert auth.filter((pl.col("user") == "postgres") & (pl.col("database") == "postgres")).height == 378

    def test_begin_end_sessions(self, corpus):
        """pgBadger counts 8 sessions in begin_end.log (4 before 09:00 / after 20:30 local time)."""
        df = ll.read_pg_log(corpus / "pgbadger" / "begin_end.log")
        sessions = ll.pg_sessions(df)
        assert sessions.height == 8
        local = sessions["start"].dt.convert_time_zone("Europe/Paris").dt.time()
        from datetime import time

        assert int((local >= time(9)).sum()) == 4
        assert int((local <= time(20, 30)).sum()) == 6


def _pgbadger_hours(path, *, fmt: str | None = None, prefix: str | None = None) -> dict[tuple[str, str], int]:
    pgbadger = require_tool("pgbadger")
    cmd = [pgbadger, "-q", "-x", "json", "-o", "-"]
    if fmt:
        cmd += ["-f", fmt]
    if prefix:
        cmd += ["-p", prefix]
    # its own pid dir: pgBadger exits 3 when /tmp/pgbadger.pid exists (another run, or one killed)
    with tempfile.TemporaryDirectory() as pid_dir:
        cmd += ["--pid-dir", pid_dir]
        out = subprocess.run(
            [*cmd, str(path)], check=True, capture_output=True, text=True, timeout=300
        ).stdout
    chronos = json.loads(out).get("connection_info", {}).get("postgres", {}).get("chronos", {})
    return {(day, hour): v["count"] for day, hours in chronos.items() for hour, v in hours.items()}


def _loglib_hours(events: pl.DataFrame, zone: str) -> dict[tuple[str, str], int]:
    # pgBadger buckets by the log's own wall-clock hour; loglib by UTC hour: convert to compare
    table = ll.pg_connections(events, every="1h")
    table = table.filter(pl.col("authorized") > 0).with_columns(local=pl.col("ts").dt.convert_time_zone(zone))
    return {
        (r["local"].strftime("%Y%m%d"), r["local"].strftime("%H")): r["authorized"]
        for r in table.iter_rows(named=True)
    }


PGBADGER_CASES = {
    "begin_end.log": ("stderr", "%t [%p]: db=%d,user=%u,app=%a,client=%h ", "Europe/Paris", {}),
    "cloudsql.log.gz": ("jsonlog", None, "UTC", {}),
    "pg-syslog.1.bz2": ("syslog", "db=%d,user=%u,app=%a,client=%h ", "Europe/Paris", {"tz": "Europe/Paris", "year": 2019}),
}  # fmt: skip


@pytest.mark.pgbadger
class TestAgainstPgBadger:
    @pytest.mark.parametrize("name", sorted(PGBADGER_CASES))
    def test_hourly_connections_agree(self, corpus, name):
        """Per-hour authorized connections equal pgBadger's connection_info chronos counts."""
        fmt, prefix, zone, options = PGBADGER_CASES[name]
        path = corpus / "pgbadger" / name
        expected = _pgbadger_hours(path, fmt=fmt, prefix=prefix)
        assert expected, "pgBadger found no connections"
        got = _loglib_hours(ll.read_pg_log(path, **options), zone)
        if fmt == "syslog":
            # deliberate difference: pgBadger assumes the current year for BSD syslog; loglib is told
            got = {(d[4:], h): n for (d, h), n in got.items()}
            expected = {(d[4:], h): n for (d, h), n in expected.items()}
        assert got == expected
