"""read_app_log / scan_app_log: formats, multi-line events, times, services, rejects."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.errors import FormatError, NoDataError, RejectedLinesWarning, TimezoneError

APP = Path(__file__).resolve().parent / "files" / "app"


def read(path_or_bytes, **kw) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.NoTimestampWarning)
        return ll.read_app_log(path_or_bytes, **{"tz": "UTC", **kw})


# file -> (format column, events, [(line, level, error_class, exc_type)] of the classified events)
CASES = {
    "python_howto.log": ("python", 4, [
        (2, "error", "too_many_connections", "psycopg2.OperationalError"),
        (17, "error", "statement_timeout", "psycopg2.errors.QueryCanceled"),
    ]),
    "gunicorn.log": ("gunicorn", 6, [(4, "critical", "worker_timeout", None)]),
    "uvicorn.log": ("uvicorn", 4, [(4, "error", "too_many_connections", "asyncpg.exceptions.TooManyConnectionsError")]),
    "loguru.log": ("loguru", 2, [(2, "error", "server_closed", "psycopg.OperationalError")]),
    "structlog_console.log": ("structlog", 2, [(2, "error", "pool_timeout", "sqlalchemy.exc.TimeoutError")]),
    "structlog.json": ("json", 3, [
        (2, "error", "pool_timeout", "sqlalchemy.exc.TimeoutError"),
        (3, "error", "idle_session_timeout", "OperationalError"),
    ]),
    "pino.json": ("json", 3, [(2, "error", "pool_timeout", "Error"), (3, "error", "server_closed", "Error")]),
    "winston.json": ("json", 3, [(2, "error", "pool_timeout", "KnexTimeoutError"), (3, "error", "pool_timeout", None)]),
    "zap.json": ("json", 3, [(2, "error", "connection_refused", None), (3, "error", "server_closed", None)]),
    "logrus.json": ("json", 2, [(2, "error", "too_many_connections", None)]),
    "logrus.log": ("logfmt", 3, [(2, "error", "lock_timeout", None), (3, "error", "dns_failure", None)]),
    "laravel.log": ("monolog", 2, [(2, "error", "too_many_connections", "PDOException")]),
    "rails.log": ("rails", 3, [
        (2, "critical", "pool_timeout", "ActiveRecord::ConnectionTimeoutError"),
        (6, "error", "dns_failure", None),
    ]),
    "spring2.log": ("spring", 3, [
        (2, "warning", "connection_leak", "java.lang.Exception"),
        (6, "warning", "conn_invalidated", None),
    ]),
    "spring3.log": ("spring", 2, [(2, "error", "pool_timeout", "java.sql.SQLTransientConnectionException")]),
    "go.log": ("go", 3, [(2, "error", "idle_in_tx_timeout", None), (3, None, "conn_already_closed", None)]),
    "bare.log": ("bare", 4, [
        (1, "error", "connect_timeout", None), (2, "error", "pool_timeout", None), (3, "error", "pool_timeout", None),
    ]),
    "docker_ts.log": ("bare", 3, [(2, "error", "connection_refused", None), (3, "error", "connect_timeout", None)]),
}  # fmt: skip


class TestFormats:
    """Each supported format is detected and read into the same canonical events."""

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_detected_and_classified(self, name: str) -> None:
        """The format is sniffed, each event is one row, and classes and exception types are right."""
        fmt, n, classified = CASES[name]
        df = read(APP / name)
        assert set(df["format"]) == {fmt}
        assert df.height == n
        got = df.filter(pl.col("error_class").is_not_null()).sort("line")
        assert (
            list(zip(got["line"], got["level"], got["error_class"], got["exc_type"], strict=True))
            == classified
        )

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_every_line_accounted(self, name: str) -> None:
        """Lines read = lines parsed + lines rejected, and nothing in the fixtures is rejected."""
        df = read(APP / name)
        report = ll.read_report(df)
        assert report.lines_read == report.lines_parsed + report.lines_rejected
        assert report.lines_rejected == 0
        assert report.lines_read == len((APP / name).read_text().splitlines())

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_forced_format_reads_the_same(self, name: str) -> None:
        """Forcing the detected format gives the same frame as sniffing it."""
        df = read(APP / name)
        forced = read(APP / name, format=df["format"][0])
        assert_frame_equal(df, forced)

    def test_canonical_schema(self) -> None:
        """The frame has exactly the APP_EVENTS columns and dtypes."""
        assert read(APP / "pino.json").schema == ll.schema.APP_EVENTS.polars_schema

    def test_pino_fields(self) -> None:
        """pino: numeric levels, epoch-ms time, hostname, pid and reqId land in their columns."""
        row = read(APP / "pino.json").row(1, named=True)
        assert (row["level"], row["host"], row["pid"], row["request_id"]) == ("error", "api-1", 7, "req-2")
        assert str(row["ts"]) == "2024-03-01 10:00:01+00:00"
        assert row["traceback"].startswith("Error: timeout exceeded when trying to connect\n    at Timeout")

    def test_zap_epoch_seconds(self) -> None:
        """zap: epoch-second floats keep their microseconds; caller is kept."""
        row = read(APP / "zap.json").row(0, named=True)
        assert str(row["ts"]) == "2024-03-01 10:00:00.123456+00:00"
        assert row["caller"] == "server/main.go:30"
        assert row["extra"] == [{"key": "addr", "value": ":8080"}]

    def test_structlog_console_fields(self) -> None:
        """structlog console: logger in brackets, request_id and other key=value pairs in extra."""
        row = read(APP / "structlog_console.log").row(1, named=True)
        assert (row["logger"], row["message"], row["request_id"]) == ("app.db", "checkout failed", "8d5c5f1f")
        assert row["extra"] == [{"key": "pool", "value": "main"}]

    def test_laravel_stacktrace_is_one_event(self) -> None:
        """A Laravel [stacktrace] block with a previous exception stays in its event."""
        row = read(APP / "laravel.log").row(1, named=True)
        assert row["exc_chain"] == ["Illuminate\\Database\\QueryException", "PDOException"]
        assert "[previous exception]" in row["traceback"]
        assert row["message"].endswith('(Connection: pgsql, SQL: select * from "users")')

    def test_rails_tags(self) -> None:
        """Rails tagged logging: the request id tag becomes request_id; the exception line names the event."""
        df = read(APP / "rails.log")
        assert df["request_id"][1] == "8d5c5f1f-0b1a-4e9e-9f0e-2f3c4d5e6f70"
        assert df["message"][1].startswith("ActiveRecord::ConnectionTimeoutError (could not obtain")

    def test_java_chain_outermost_first(self) -> None:
        """A Spring stack: chain is outermost first, exc_type the root cause."""
        row = read(APP / "spring3.log").filter(pl.col("level") == "error").row(0, named=True)
        assert row["exc_chain"] == [
            "org.springframework.transaction.CannotCreateTransactionException",
            "java.sql.SQLTransientConnectionException",
        ]
        assert str(row["ts"]) == "2024-03-01 09:01:00+00:00"

    def test_python_chain_outermost_first(self) -> None:
        """A chained Python traceback lists the raised exception first and the cause last."""
        row = read(APP / "python_howto.log").row(1, named=True)
        assert row["exc_chain"] == ["sqlalchemy.exc.OperationalError", "psycopg2.OperationalError"]
        assert row["traceback"].endswith("(Background on this error at: https://sqlalche.me/e/20/e3q8)")


class TestPattern:
    """pattern= and datefmt= turn any logging format string into the parser."""

    def test_pattern_with_datefmt_and_zone(self) -> None:
        """A %z datefmt gives aware times; custom attributes land in extra, request_id in its column."""
        log = b"01/Mar/2024:10:00:00 +0200 | ERROR | rid=r-9 | app.db | [w1] timeout expired\n"
        df = read(
            log,
            pattern="%(asctime)s | %(levelname)s | rid=%(request_id)s | %(name)s | [%(worker)s] %(message)s",
            datefmt="%d/%b/%Y:%H:%M:%S %z",
        )
        row = df.row(0, named=True)
        assert str(row["ts"]) == "2024-03-01 08:00:00+00:00"
        assert (row["request_id"], row["logger"], row["error_class"]) == ("r-9", "app.db", "connect_timeout")
        assert row["extra"] == [{"key": "worker", "value": "w1"}]

    def test_msecs_added(self) -> None:
        """%(msecs)03d after a datefmt adds the milliseconds."""
        df = read(b"2024-03-01 10:00:00.042 INFO x: hi\n", pattern="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                  datefmt="%Y-%m-%d %H:%M:%S")  # fmt: skip
        assert str(df["ts"][0]) == "2024-03-01 10:00:00.042000+00:00"

    def test_brace_style(self) -> None:
        """{-style format strings compile too."""
        df = read(b"ERROR 2024-03-01 10:00:00,000 views 7 1401 deadlock detected\n",
                  pattern="{levelname} {asctime} {module} {process:d} {thread:d} {message}")  # fmt: skip
        assert (df["pid"][0], df["error_class"][0]) == (7, "deadlock")

    def test_pattern_lines_that_do_not_fit_are_rejected(self) -> None:
        """With a forced pattern, lines before any entry are rejected with file and line."""
        with pytest.warns(RejectedLinesWarning):
            df = ll.read_app_log(b"garbage\n2024-03-01 10:00:00,000 INFO x: hi\n", pattern="%(asctime)s %(levelname)s %(name)s: %(message)s", tz="UTC")  # fmt: skip
        rej = ll.rejects(df)
        assert rej.select("file", "line").row(0) == ("<bytes>", 1)
        assert df.height == 1

    def test_bad_pattern(self) -> None:
        """A pattern without fields is refused with a message naming it."""
        with pytest.raises(ValueError, match="not a logging format string"):
            ll.read_app_log(b"x\n", pattern="plain text")


class TestTime:
    """Aware times become UTC; naive ones need tz=; missing ones stay null."""

    def test_naive_needs_tz(self) -> None:
        """Naive asctime without tz= is a TimezoneError that shows the time it saw."""
        with pytest.raises(TimezoneError, match="2024-03-01 10:00:00"):
            ll.read_app_log(b"2024-03-01 10:00:00,000 INFO x: hi\n")

    def test_tz_converts(self) -> None:
        """tz= places naive times in that zone, then UTC."""
        df = ll.read_app_log(b"2024-07-01 10:00:00,000 INFO x: hi\n", tz="Europe/Berlin")
        assert str(df["ts"][0]) == "2024-07-01 08:00:00+00:00"

    def test_tz_per_service(self) -> None:
        """tz= as {service: zone} gives each service its own zone."""
        df = ll.read_app_log(
            b"2024-07-01 10:00:00,000 INFO x: hi\n", service="api", tz={"api": "America/New_York"}
        )
        assert str(df["ts"][0]) == "2024-07-01 14:00:00+00:00"

    def test_aware_times_ignore_tz(self) -> None:
        """An offset in the log wins over tz=."""
        df = ll.read_app_log(APP / "gunicorn.log", tz="Asia/Tokyo")
        assert str(df["ts"][0]) == "2024-03-01 10:00:00+00:00"

    def test_no_timestamp_is_null_and_said(self) -> None:
        """A format without times keeps null ts, warns and notes it in the report."""
        with pytest.warns(ll.NoTimestampWarning, match="never invents"):
            df = ll.read_app_log(APP / "bare.log")
        assert df["ts"].null_count() == df.height
        assert any("no timestamp" in n for n in ll.read_report(df).notes)

    def test_container_timestamps_anchor(self) -> None:
        """docker/CRI timestamps in front of bare lines give those events their time."""
        df = read(APP / "docker_ts.log")
        assert df["ts"].null_count() == 0
        assert str(df["ts"][0]) == "2024-03-01 10:00:00.123456+00:00"


class TestInputs:
    """Paths behave as in read_pg_log: globs, several services, compression, bytes."""

    def test_several_services(self) -> None:
        """Several files stay apart by service and are merged in time order."""
        df = read([APP / "pino.json", APP / "zap.json", APP / "gunicorn.log"])
        assert set(df["service"]) == {"pino", "zap", "gunicorn"}
        assert df["ts"].is_sorted()

    def test_service_mapping(self) -> None:
        """service= as {glob: name} names files."""
        df = read([APP / "pino.json", APP / "zap.json"], service={"*pino*": "checkout", "*zap*": "ledger"})
        assert set(df["service"]) == {"checkout", "ledger"}

    def test_record_service_field(self) -> None:
        """A JSON record's own service field wins over the file name."""
        assert set(read(APP / "winston.json")["service"]) == {"checkout"}

    def test_gz_and_rotation(self, tmp_path: Path) -> None:
        """A rotated, gzipped set reads oldest first, with service from the base name."""
        (tmp_path / "api.log.1.gz").write_bytes(gzip.compress(b"[INFO] first\n"))
        (tmp_path / "api.log").write_bytes(b"[ERROR] second: connection refused\n")
        df = read(str(tmp_path / "api.log*"))
        assert df["message"].to_list() == ["first", "second: connection refused"]
        assert set(df["service"]) == {"api"}

    def test_mixed_stream(self) -> None:
        """uvicorn's own lines and the app's logging lines in one stream are both entries."""
        log = (
            b"INFO:     Started server process [1]\n"
            b"2024-03-01 10:00:00,000 ERROR app.db: checkout failed\n"
            b"2024-03-01 10:00:01,000 INFO app.web: ok\n"
            b'INFO:     127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK\n'
        )
        df = read(log)
        assert sorted(df["format"]) == ["python", "python", "uvicorn", "uvicorn"]

    def test_unknown_format(self) -> None:
        """A file no format fits is a FormatError naming its first line."""
        with pytest.raises(FormatError, match="hello world"):
            ll.read_app_log(b"hello world\nsecond line\n")

    def test_empty(self) -> None:
        """An empty log is a NoDataError unless raise_if_empty=False."""
        with pytest.raises(NoDataError):
            ll.read_app_log(b"")
        assert ll.read_app_log(b"", raise_if_empty=False).height == 0

    def test_json_garbage_rejected(self) -> None:
        """A non-JSON line inside a JSON-lines file is rejected, not glued to a record."""
        with pytest.warns(RejectedLinesWarning):
            df = ll.read_app_log(APP.joinpath("pino.json").read_bytes() + b"not json\n", tz="UTC")
        assert ll.rejects(df)["line"].to_list() == [4]

    @pytest.mark.filterwarnings("ignore::loglib.NoTimestampWarning")
    def test_strict(self) -> None:
        """strict=True raises at the first bad line."""
        with pytest.raises(ll.ParseError):
            ll.read_app_log(b"oops\n[INFO] fine\n", strict=True)


class TestScan:
    """scan_app_log is the lazy twin of read_app_log."""

    def test_same_rows(self) -> None:
        """Collecting the scan gives the eager rows (file order)."""
        lazy = ll.scan_app_log(APP / "python_howto.log", tz="UTC").collect()
        eager = read(APP / "python_howto.log")
        assert_frame_equal(lazy, eager)

    def test_predicate(self) -> None:
        """Filters push into the scan."""
        out = (
            ll.scan_app_log(APP / "spring2.log", tz="UTC")
            .filter(pl.col("error_class").is_not_null())
            .collect()
        )
        assert out["error_class"].to_list() == ["connection_leak", "conn_invalidated"]


class TestJsonValues:
    def test_nan_written_by_python_json_is_read(self):
        """Python's json.dumps writes NaN/Infinity, which strict decoders refuse; the record is still read."""
        line = b'{"event": "slow query", "level": "warning", "timestamp": "2024-03-01T10:00:00Z", "ratio": NaN}\n'
        df = ll.read_app_log(line)
        assert df.height == 1
        extra = {kv["key"]: kv["value"] for kv in df["extra"][0]}
        assert extra["ratio"] == "NaN"

    def test_scalars_in_extra_are_json_text(self):
        """Extra fields keep JSON's spelling: true/false, integers, floats, nested objects."""
        line = (
            b'{"msg": "x", "level": 30, "time": 1709287200000, "ok": true, "n": 3, "f": 1.5, "o": {"a": 1}}\n'
        )
        extra = {kv["key"]: kv["value"] for kv in ll.read_app_log(line)["extra"][0]}
        assert (extra["ok"], extra["n"], extra["f"], extra["o"]) == ("true", "3", "1.5", '{"a": 1}')

    def test_blank_multi_line_message_stays_empty_text(self):
        """A message of blank lines is the empty text (not null) beside a record with a stack."""
        log = (
            b'{"time": "2024-03-01T10:00:00Z", "level": "info", "msg": "  \\n  "}\n'
            b'{"time": "2024-03-01T10:00:01Z", "level": "error", "msg": "boom", '
            b'"err": {"type": "Error", "message": "x", "stack": "Error: x\\n    at f (a.js:1:1)"}}\n'
        )
        df = ll.read_app_log(log, tz="UTC")
        assert df["message"].to_list() == ["", "boom"]
        assert df["traceback"].to_list() == [None, "Error: x\n    at f (a.js:1:1)"]
        assert df["exc_chain"].to_list() == [None, ["Error"]]
