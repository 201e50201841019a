"""read_pg_log / scan_pg_log on small inline logs: formats, time zones, multi-line, rejects."""

import bz2
import gzip
import json
import lzma
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.core.schema import PG_EVENTS

STDERR = (
    "2024-03-01 10:00:00.000 CET [7] [unknown]@[unknown] LOG:  connection received: host=10.0.0.5 port=5000\n"
    "2024-03-01 10:00:00.010 CET [7] app@shop LOG:  connection authorized: user=app database=shop application_name=api\n"
    "2024-03-01 10:00:01.000 CET [7] app@shop ERROR:  relation \"nope\" does not exist at character 15\n"
    "2024-03-01 10:00:01.000 CET [7] app@shop STATEMENT:  select * from nope\n"
    "\t where true\n"
    "2024-03-01 10:00:05.000 CET [7] app@shop LOG:  disconnection: session time: 0:00:05.000 user=app database=shop host=10.0.0.5 port=5000\n"
)  # fmt: skip


def utc(*args):
    return datetime(*args, tzinfo=UTC)


class TestStderr:
    def test_entries_fields_and_events(self):
        """Connection lines become typed rows with UTC times and the connection story."""
        df = ll.read_pg_log(STDERR.encode(), prefix="%m [%p] %q%u@%d ")
        assert df.schema == PG_EVENTS.polars_schema
        assert df["event"].to_list() == [
            "connection_received",
            "connection_authorized",
            "other",
            "disconnection",
        ]
        assert df["ts"][0] == utc(2024, 3, 1, 9, 0, 0)
        first = df.row(0, named=True)
        assert (first["client_host"], first["client_port"], first["user"]) == ("10.0.0.5", 5000, None)
        assert df["application"][1] == "api"
        assert df["session_duration"][3] == timedelta(seconds=5)
        assert df["line"].to_list() == [1, 2, 3, 6]

    def test_statement_and_continuation_fold_into_detail(self):
        """STATEMENT lines and their tab-indented continuations belong to the entry above."""
        df = ll.read_pg_log(STDERR.encode(), prefix="%m [%p] %q%u@%d ")
        assert df["detail"][2] == "STATEMENT: select * from nope\n where true"
        assert ll.read_report(df).lines_read == 6
        assert ll.read_report(df).lines_parsed == 6

    def test_prefix_is_detected(self):
        """Debian's prefix is found without being told."""
        df = ll.read_pg_log(STDERR.encode())
        assert "%m [%p] %q%u@%d " in ll.read_report(df).format
        assert df.height == 4

    def test_dst_abbreviations_resolve(self):
        """CET and CEST both resolve, one hour apart, across a DST change."""
        log = b"2024-03-31 01:59:59 CET [1] LOG:  a\n2024-03-31 03:00:01 CEST [1] LOG:  b\n"
        df = ll.read_pg_log(log, prefix="%t [%p] ")
        assert df["ts"].to_list() == [utc(2024, 3, 31, 0, 59, 59), utc(2024, 3, 31, 1, 0, 1)]

    def test_numeric_offset_zone(self):
        """A log_timezone printed as an offset (+05:30 style) is honoured."""
        df = ll.read_pg_log(b"2024-03-01 10:00:00 +0530 [1] LOG:  a\n", prefix="%t [%p] ")
        assert df["ts"][0] == utc(2024, 3, 1, 4, 30)

    def test_ambiguous_abbreviation_needs_tz(self):
        """'IST' means three different zones: without tz= the error says so, with tz= it resolves."""
        log = b"2024-03-01 10:00:00 IST [1] LOG:  a\n"
        with pytest.raises(ll.TimezoneError, match="ambiguous"):
            ll.read_pg_log(log, prefix="%t [%p] ")
        df = ll.read_pg_log(log, prefix="%t [%p] ", tz="Asia/Kolkata")
        assert df["ts"][0] == utc(2024, 3, 1, 4, 30)

    def test_epoch_escape(self):
        """%n epoch timestamps are kept to the millisecond."""
        df = ll.read_pg_log(b"1709287200.123 [5] LOG:  a\n", prefix="%n [%p] ")
        assert df["ts"][0] == utc(2024, 3, 1, 10, 0, 0, 123000)

    def test_rds_format(self):
        """format='rds' uses RDS's fixed prefix, remote host and port split."""
        log = (
            b"2024-03-01 10:00:00 UTC:10.1.2.3(51000):app@shop:[77]:FATAL:  sorry, too many clients already\n"
        )
        df = ll.read_pg_log(log, format="rds")
        row = df.row(0, named=True)
        assert (row["client_host"], row["client_port"], row["event"]) == (
            "10.1.2.3",
            51000,
            "too_many_clients",
        )


class TestRejects:
    def test_bad_lines_are_kept_counted_and_warned(self):
        """A line that is not an entry is reported with file, line and reason, never dropped."""
        log = STDERR + "this is not a log line\n"
        with pytest.warns(ll.RejectedLinesWarning, match="1 line"):
            df = ll.read_pg_log(log.encode(), prefix="%m [%p] %q%u@%d ")
        rej = ll.rejects(df)
        assert rej.select("file", "line").row(0) == ("<bytes>", 7)
        assert "does not match" in rej["reason"][0]
        report = ll.read_report(df)
        assert report.lines_read == report.lines_parsed + report.lines_rejected

    def test_strict_raises_at_the_first_bad_line(self):
        """strict=True names the file and line of the first bad line."""
        log = "garbage\n" + STDERR
        with pytest.raises(ll.ParseError, match=r"<bytes>:1"):
            ll.read_pg_log(log.encode(), prefix="%m [%p] %q%u@%d ", strict=True)

    def test_blank_lines_are_noise_not_warnings(self, recwarn):
        """Blank lines before the first entry are counted but do not raise a warning."""
        df = ll.read_pg_log(("\n\n" + STDERR).encode(), prefix="%m [%p] %q%u@%d ")
        assert ll.rejects(df).height == 2
        assert not [w for w in recwarn if issubclass(w.category, ll.RejectedLinesWarning)]

    def test_unknown_format_is_a_clear_error(self):
        """A file in no PostgreSQL format says what its first line was."""
        with pytest.raises(ll.FormatError, match="First line: 'hello world'"):
            ll.read_pg_log(b"hello world\nsecond\n")

    def test_empty_input(self):
        """No entries is an error unless raise_if_empty=False."""
        with pytest.raises(ll.NoDataError):
            ll.read_pg_log(b"")
        assert ll.read_pg_log(b"", raise_if_empty=False).height == 0

    def test_bad_options(self):
        """Unknown format names and time zones are rejected with the allowed values."""
        with pytest.raises(ValueError, match="csvlog"):
            ll.read_pg_log(b"x", format="csv")
        with pytest.raises(ll.TimezoneError, match="IANA"):
            ll.read_pg_log(b"x", tz="Mars/Olympus")


class TestFilesAndCompression:
    def test_rotated_set_is_read_oldest_first(self, tmp_path):
        """postgresql.log.2.gz, .1.bz2 and .log (.xz-compressed too) read as one stream in time order."""
        lines = STDERR.splitlines(keepends=True)
        (tmp_path / "postgresql.log.2.gz").write_bytes(gzip.compress("".join(lines[:2]).encode()))
        (tmp_path / "postgresql.log.1").write_bytes(bz2.compress("".join(lines[2:5]).encode()))
        (tmp_path / "postgresql.log").write_bytes(lzma.compress(lines[5].encode()))
        df = ll.read_pg_log(str(tmp_path / "postgresql.log*"), prefix="%m [%p] %q%u@%d ")
        assert df["event"].to_list() == [
            "connection_received",
            "connection_authorized",
            "other",
            "disconnection",
        ]
        assert [f.rsplit("/", 1)[1] for f in df["file"]] == [
            "postgresql.log.2.gz", "postgresql.log.2.gz", "postgresql.log.1", "postgresql.log"
        ]  # fmt: skip
        assert ll.pg_sessions(df).height == 1

    def test_truncated_gzip_keeps_what_is_readable(self, tmp_path):
        """A .gz cut short yields its readable lines and a reject saying the file is truncated."""
        body = (STDERR * 2000).encode()
        data = gzip.compress(body)
        path = tmp_path / "postgresql.log.gz"
        path.write_bytes(data[: len(data) // 2])
        with pytest.warns(ll.RejectedLinesWarning):
            df = ll.read_pg_log(path, prefix="%m [%p] %q%u@%d ")
        assert df.height > 0
        assert ll.rejects(df)["reason"].str.contains("truncated").any()

    def test_latin1_lines_survive(self):
        """A line in Latin-1 inside a UTF-8 file is decoded, not lost."""
        log = "2024-03-01 10:00:00 UTC [1] LOG:  caf\xe9\n".encode("latin-1")
        df = ll.read_pg_log(log + "2024-03-01 10:00:01 UTC [1] LOG:  ünïcode\n".encode(), prefix="%t [%p] ")
        assert df["message"].to_list() == ["café", "ünïcode"]
        assert any("Latin-1" in n for n in ll.read_report(df).notes)

    def test_missing_path_is_a_clear_error(self, tmp_path):
        """A path that matches nothing names what was looked for."""
        with pytest.raises(ll.NoDataError, match="no file matches"):
            ll.read_pg_log(tmp_path / "nope*.log")


class TestStructuredFormats:
    def test_csvlog(self):
        """csvlog records, including a quoted multi-line message, become one row each."""
        log = (
            '2024-03-01 10:00:00.000 UTC,"app","shop",7,"10.0.0.5:5000",65e1a8b0.7,1,"idle",2024-03-01 10:00:00 UTC,'
            '3/1,0,LOG,00000,"connection authorized: user=app database=shop",,,,,,,,,"api","client backend",,0\n'
            '2024-03-01 10:00:01.000 UTC,"app","shop",7,"10.0.0.5:5000",65e1a8b0.7,2,"SELECT",2024-03-01 10:00:00 UTC,'
            '3/2,0,ERROR,42P01,"relation ""x""\nspans lines",,,,,,"select 1",,,"api","client backend",,0\n'
        )  # fmt: skip
        df = ll.read_pg_log(log.encode())
        assert ll.read_report(df).format == "csvlog"
        assert df["line"].to_list() == [1, 2]
        assert df["client_port"].to_list() == [5000, 5000]
        assert df["sqlstate"][1] == "42P01"
        assert df["message"][1] == 'relation "x"\nspans lines'
        assert df["detail"][1] == "STATEMENT: select 1"

    def test_jsonlog(self):
        """PostgreSQL 15 jsonlog keys map to the canonical columns."""
        rec = {"timestamp": "2024-03-01 10:00:00.500 CET", "user": "app", "dbname": "shop", "pid": 9,
               "remote_host": "10.0.0.9", "remote_port": 6000, "error_severity": "FATAL", "state_code": "57P01",
               "message": "terminating connection due to administrator command", "application_name": "api"}  # fmt: skip
        df = ll.read_pg_log((json.dumps(rec) + "\n").encode())
        row = df.row(0, named=True)
        assert row["ts"] == utc(2024, 3, 1, 9, 0, 0, 500000)
        assert (row["event"], row["client_port"], row["sqlstate"]) == ("terminated_by_admin", 6000, "57P01")

    def test_bsd_syslog_needs_a_year(self):
        """BSD syslog has no year: without year= it is an error, with it the times are right."""
        log = b"Mar  1 10:00:00 db1 postgres[12]: [3-1] user=app,db=shop LOG:  connection received: host=10.0.0.5\n"
        with pytest.raises(ll.FormatError, match="year="):
            ll.read_pg_log(log, tz="UTC")
        df = ll.read_pg_log(log, tz="UTC", year=2024)
        assert (df["ts"][0], df["host"][0], df["pid"][0]) == (utc(2024, 3, 1, 10), "db1", 12)

    def test_syslog_continuation_parts(self):
        """[n-2] syslog lines continue entry n."""
        log = (
            b"2024-03-01T10:00:00.000000+01:00 db1 postgres[12]: [4-1] LOG:  statement: select 1,\n"
            b"2024-03-01T10:00:00.000000+01:00 db1 postgres[12]: [4-2] #011 2\n"
        )
        df = ll.read_pg_log(log)
        assert df.height == 1
        assert df["ts"][0] == utc(2024, 3, 1, 9)
        assert df["message"][0] == "statement: select 1,\n 2"


class TestLazy:
    def test_scan_equals_read(self):
        """The lazy twin yields the same rows (in file order) as the eager reader."""
        eager = ll.read_pg_log(STDERR.encode(), prefix="%m [%p] %q%u@%d ")
        lazy = ll.scan_pg_log(STDERR.encode(), prefix="%m [%p] %q%u@%d ").collect()
        assert_frame_equal(eager, lazy)

    def test_scan_pushes_projection_and_filter(self):
        """Selecting and filtering a scan works like any LazyFrame."""
        lf = ll.scan_pg_log(STDERR.encode(), prefix="%m [%p] %q%u@%d ")
        out = lf.filter(pl.col("event") == "disconnection").select("pid", "session_duration").collect()
        assert out.rows() == [(7, timedelta(seconds=5))]

    def test_small_chunks_keep_multiline_entries_whole(self):
        """Entries that cross a chunk boundary are carried over, not split."""
        big = (STDERR * 300).encode()
        whole = ll.read_pg_log(big, prefix="%m [%p] %q%u@%d ")
        chunked = ll.scan_pg_log(big, prefix="%m [%p] %q%u@%d ", chunk_bytes=1000).collect()
        assert_frame_equal(whole.sort("line"), chunked.sort("line"))
