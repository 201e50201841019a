"""read_pgbouncer_log on the wording of pgBouncer versions the real server test cannot run (1.9–1.24)."""

from __future__ import annotations

import gzip

import polars as pl
import pytest

import loglib as ll

# 1.9–1.11: "%s %u %s %s" (no zone, no brackets), "(age=%llu)" without the s, "Pooler Error:" (1.9)
OLD = b"""\
2019-06-01 10:00:00.001 4321 LOG File descriptor limit: 1024 (H:4096), max_client_conn: 100, max fds possible: 130
2019-06-01 10:00:00.002 4321 LOG process up: pgbouncer 1.9.0, libevent 2.1.8-stable (epoll), adns: c-ares 1.14.0, tls: OpenSSL 1.1.1
2019-06-01 10:00:01.000 4321 LOG C-0x1c9e6b0: shop/app@10.0.0.5:40001 login attempt: db=shop user=app tls=no
2019-06-01 10:00:01.010 4321 LOG S-0x1ca5c40: shop/app@10.0.0.9:5432 new connection to server (from 10.0.0.2:51000)
2019-06-01 10:00:31.000 4321 LOG C-0x1c9e6b0: shop/app@10.0.0.5:40001 closing because: client_idle_timeout (age=30)
2019-06-01 10:01:00.000 4321 LOG S-0x1ca5c40: shop/app@10.0.0.9:5432 closing because: server idle timeout (age=59)
2019-06-01 10:01:02.000 4321 LOG C-0x1c9e6b0: (nodb)/(nouser)@10.0.0.6:40002 closing because: no more connections allowed (max_client_conn) (age=0)
2019-06-01 10:01:02.000 4321 LOG C-0x1c9e6b0: (nodb)/(nouser)@10.0.0.6:40002 Pooler Error: no more connections allowed (max_client_conn)
2019-06-01 10:01:05.000 4321 LOG Stats: 12 xacts/s, 40 queries/s, in 2048 B/s, out 8192 B/s, xact 1500 us, query 300 us, wait time 0 us
2019-06-01 10:02:00.000 4321 LOG Got SIGTERM, fast exit
"""

# 1.23/1.24: SIGTERM waits for clients, SIGINT for servers; stats with parses and binds; IPv6; "@" in user
NEW = b"""\
2025-01-10 08:00:00.000 UTC [77] LOG process up: PgBouncer 1.24.0, libevent 2.1.12-stable (epoll), adns: c-ares 1.34.4, tls: OpenSSL 3.4.0
2025-01-10 08:00:01.000 UTC [77] LOG C-0x5581: shop/ops@corp.example@[2001:db8::5]:50001 login attempt: db=shop user=ops@corp.example tls=TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519 replication=no
2025-01-10 08:00:02.000 UTC [77] LOG C-0x5581: shop/ops@corp.example@[2001:db8::5]:50001 closing because: query_timeout (age=1s)
2025-01-10 08:00:03.000 UTC [77] LOG C-0x5582: shop/app@unix(4242):6432 closing because: client close request (age=3s)
2025-01-10 08:00:04.000 UTC [77] LOG C-0x5583: nodb/app@10.0.0.7:50003 login failed: db=nodb user=app
2025-01-10 08:00:04.000 UTC [77] LOG C-0x5583: nodb/app@10.0.0.7:50003 closing because: no such database: nodb (age=0s)
2025-01-10 08:00:05.000 UTC [77] LOG stats: 3 xacts/s, 9 queries/s, 1 client parses/s, 1 server parses/s, 2 binds/s, in 10 B/s, out 90 B/s, xact 900 us, query 250 us, wait 12 us
2025-01-10 08:00:06.000 UTC [77] ERROR S-0x5590: shop/app@10.0.0.9:5432 S: login failed: FATAL: sorry, too many clients already
2025-01-10 08:00:07.000 UTC [77] LOG got SIGTERM, shutting down, waiting for all clients disconnect
2025-01-10 08:00:08.000 UTC [77] LOG client connections dropped, exiting
2025-01-10 08:00:09.000 UTC [78] FATAL @src/main.c:1000 in function main(): unix socket is in use, cannot continue

"""


def test_old_header_and_wording():
    with pytest.raises(ll.TimezoneError, match="no time zone"):
        ll.read_pgbouncer_log(OLD)
    df = ll.read_pgbouncer_log(OLD, tz="Europe/Berlin", strict=True)
    assert ll.read_report(df).format == "stderr (up to 1.11)"
    assert df["ts"][0].isoformat() == "2019-06-01T08:00:00.001000+00:00"  # Berlin in June is UTC+2
    assert df["event"].to_list() == [
        "other", "pooler_start", "login_attempt", "server_connect", "client_close", "server_close",
        "client_close", "pooler_error", "stats", "pooler_shutdown",
    ]  # fmt: skip
    closes = df.filter(pl.col("age_s").is_not_null())
    assert closes["reason"].to_list() == [
        "client_idle_timeout", "server idle timeout", "no more connections allowed (max_client_conn)",
    ]  # fmt: skip
    assert closes["age_s"].to_list() == [30, 59, 0]
    connect = df.filter(pl.col("event") == "server_connect").row(0, named=True)
    assert (connect["side"], connect["addr"], connect["port"]) == ("server", "10.0.0.9", 5432)
    assert (connect["local_addr"], connect["local_port"]) == ("10.0.0.2", 51000)
    refused = df.filter(pl.col("line") == 7).row(0, named=True)
    assert refused["db"] is None and refused["user"] is None and refused["conn"] == "C-0x1c9e6b0"
    stats = df.filter(pl.col("event") == "stats")["stats"][0]
    assert stats["xacts_per_s"] == 12 and stats["bytes_out_per_s"] == 8192 and stats["wait_us"] == 0
    assert stats["binds_per_s"] is None  # 1.9 did not count binds
    assert df["pid"].unique().to_list() == [4321]


def test_new_wording_ipv6_unix_and_at_in_user_names():
    df = ll.read_pgbouncer_log(NEW, strict=True)
    report = ll.read_report(df)
    assert report.lines_rejected == 1 and report.unexplained.height == 0  # the blank line at the end
    login = df.filter(pl.col("event") == "login_attempt").row(0, named=True)
    assert (login["user"], login["addr"], login["port"]) == ("ops@corp.example", "2001:db8::5", 50001)
    unix = df.filter(pl.col("line") == 4).row(0, named=True)
    assert (unix["addr"], unix["port"], unix["reason"]) == ("unix(4242)", 6432, "client close request")
    # one failed login is one login_failed row: its close; the "login failed:" line only precedes it
    failed = df.filter(pl.col("conn") == "C-0x5583")
    assert failed["event"].to_list() == ["other", "login_failed"]
    assert failed["reason"].to_list() == [None, "no such database: nodb"]
    stats = df.filter(pl.col("event") == "stats")["stats"][0]
    assert (stats["client_parses_per_s"], stats["binds_per_s"], stats["query_us"]) == (1, 2, 250)
    err = df.filter(pl.col("level") == "ERROR").row(0, named=True)
    assert err["event"] == "pooler_error" and err["side"] == "server"
    down = df.filter(pl.col("event") == "pooler_shutdown")["reason"].to_list()
    assert down == [
        "got SIGTERM, shutting down, waiting for all clients disconnect",
        "client connections dropped, exiting",
    ]
    fatal = df.filter(pl.col("level") == "FATAL").row(0, named=True)
    assert (fatal["event"], fatal["reason"]) == ("pooler_error", "unix socket is in use, cannot continue")


def test_syslog_forms_other_programs_and_rfc5424_levels():
    log = (
        b"Jan 10 08:00:00 db1 pgbouncer[77]: process up: PgBouncer 1.24.0, libevent 2.1.12-stable (epoll)\n"
        b"Jan 10 08:00:01 db1 CRON[5]: (root) CMD (true)\n"
        b"<132>Jan 10 08:00:02 db1 pgbouncer[77]: C-0x1: shop/app@10.0.0.5:4000 pooler error: query_wait_timeout\n"
        b"2025-01-10T08:00:03.250+01:00 db1 pgbouncer[77]: got SIGINT, shutting down, waiting for all servers connections to be released\n"
        b"<131>1 2025-01-10T08:00:04Z db1 pgbouncer 77 - - S-0x2: shop/app@10.0.0.9:5432 closing because: server conn crashed? (age=4s)\n"
    )
    with pytest.raises(ll.FormatError, match="year="):
        ll.read_pgbouncer_log(log, tz="UTC")
    with pytest.raises(ll.TimezoneError, match="tz="):
        ll.read_pgbouncer_log(log, year=2025)
    df = ll.read_pgbouncer_log(log, year=2025, tz="Europe/Berlin", strict=True)
    report = ll.read_report(df)
    assert report.format == "syslog"
    assert report.rejects["reason"].to_list() == ["syslog line of another program (CRON), not pgBouncer"]
    assert [t.isoformat() for t in df["ts"]] == [
        "2025-01-10T07:00:00+00:00", "2025-01-10T07:00:02+00:00", "2025-01-10T07:00:03.250000+00:00",
        "2025-01-10T08:00:04+00:00",
    ]  # fmt: skip
    assert df["level"].to_list() == [None, "WARNING", None, "ERROR"]
    assert df["event"].to_list() == ["pooler_start", "pooler_error", "pooler_shutdown", "server_close"]


def test_every_line_is_accounted_for_and_strict_names_the_first_bad_one(tmp_path):
    path = tmp_path / "pgbouncer.log.1.gz"
    path.write_bytes(gzip.compress(NEW + b"something else entirely\n"))
    with pytest.warns(ll.RejectedLinesWarning):
        df = ll.read_pgbouncer_log(path)
    report = ll.read_report(df)
    assert report.lines_read == report.lines_parsed + report.lines_rejected == NEW.count(b"\n") + 1
    assert report.unexplained["line"].to_list() == [13]
    assert df["file"].unique().to_list() == [str(path)]
    with pytest.raises(ll.ParseError, match=r"pgbouncer\.log\.1\.gz:13"):
        ll.read_pgbouncer_log(path, strict=True)


def test_scan_is_the_lazy_twin():
    lazy = ll.scan_pgbouncer_log(NEW)
    eager = ll.read_pgbouncer_log(NEW)
    assert lazy.collect().equals(eager)
    assert ll.read_report(lazy).lines_rejected == 1
    assert lazy.filter(pl.col("event") == "client_close").select("reason").collect()["reason"].to_list() == [
        "query_timeout", "client close request",
    ]  # fmt: skip


def test_ambiguous_zone_needs_tz():
    log = b"2024-03-01 10:00:00.000 IST [7] LOG got SIGINT, shutting down\n"
    with pytest.raises(ll.TimezoneError, match="ambiguous"):
        ll.read_pgbouncer_log(log)
    df = ll.read_pgbouncer_log(log, tz="Asia/Kolkata")
    assert df["ts"][0].isoformat() == "2024-03-01T04:30:00+00:00"


def test_server_login_failures_are_pooler_errors_and_admin_commands_are_named():
    """pgBouncer failing to log in to PostgreSQL is a pooler error; PAUSE/RESUME/RELOAD (console or
    signal) are ``other`` rows whose reason is the command (wording of a real pgBouncer 1.18)."""
    log = (
        b'2026-12-03 06:08:17.427 UTC [10409] WARNING server login failed: FATAL database "nosuchdb" does not exist\n'
        b"2026-12-03 06:19:44.094 UTC [30395] LOG PAUSE 'postgres' command issued\n"
        b"2026-12-03 06:19:46.391 UTC [30395] LOG RESUME 'postgres' command issued\n"
        b"2026-12-03 06:19:46.392 UTC [30395] LOG RELOAD command issued\n"
        b"2026-12-03 06:19:46.392 UTC [30395] LOG got SIGHUP, re-reading config\n"
        b"2026-12-03 06:19:56.837 UTC [30395] LOG SUSPEND command issued\n"
        b"2026-12-03 06:19:57.000 UTC [30395] LOG got SIGUSR1, pausing all activity\n"
        b"2026-12-03 06:19:58.000 UTC [30395] LOG got SIGUSR2, continuing from PAUSE\n"
        b"2026-12-03 06:19:59.000 UTC [30395] LOG RECONNECT 'postgres' command issued\n"
    )
    df = ll.read_pgbouncer_log(log, strict=True)
    assert df["event"].to_list() == ["pooler_error"] + ["other"] * 8
    assert df["reason"].to_list() == [
        'server login failed: FATAL database "nosuchdb" does not exist',
        "PAUSE 'postgres'", "RESUME 'postgres'", "RELOAD", "RELOAD (SIGHUP)", "SUSPEND",
        "PAUSE (SIGUSR1)", "RESUME (SIGUSR2)", "RECONNECT 'postgres'",
    ]  # fmt: skip
