"""Logs as found in the wild (issue 18): shapes that needed options or were rejected, on real files."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.formats.error_rules import classify_error

WILD = Path(__file__).parent / "files" / "wild"


class TestLogfmtAnyKeyFirst:
    """logfmt is recognised whatever key comes first, with no format= option."""

    def test_prometheus_go_kit_issue_18(self):
        """Prometheus' own log (ts=, caller=, level=) reads whole: every line one event with time and level."""
        df = ll.read_app_log(WILD / "prometheus-2.42.log")
        lines = (WILD / "prometheus-2.42.log").read_text().splitlines()
        assert df.height == len(lines)
        assert df["ts"].null_count() == 0
        assert df["level"].null_count() == 0
        assert df.filter(pl.col("message") == "Starting Prometheus Server").height == 1
        assert "caller" not in (df["extra"].explode().struct.field("key").drop_nulls().to_list())

    def test_postgres_exporter_refused_issue_18(self):
        """postgres_exporter's refused connections are error events of class connection_refused."""
        df = ll.read_app_log(WILD / "postgres_exporter-0.11.log")
        lines = (WILD / "postgres_exporter-0.11.log").read_text().splitlines()
        assert df.height == len(lines)
        errors = df.filter(pl.col("level") == "error")
        assert errors.height == 3
        assert set(errors["error_class"].to_list()) == {"connection_refused"}

    @pytest.mark.parametrize(
        "line",
        [
            'level=info ts=2024-05-01T10:00:00.123456Z caller=main.go:108 msg="Starting Loki" version=2.9.0',
            'logger=sqlstore t=2024-05-01T10:00:00.12+00:00 level=error msg="db ping" error="pq: sorry, too many clients already"',
            't=2019-05-01T10:00:00+0000 lvl=eror msg="db ping" logger=sqlstore error="pq: sorry, too many clients already"',
        ],
        ids=["loki", "grafana-8+", "grafana-<8"],
    )
    def test_key_order_issue_18(self, line):
        """Loki (level= first) and Grafana (logger= or t= first, lvl=) lines give time, level and message."""
        df = ll.read_app_log(line.encode() + b"\n")
        row = df.row(0, named=True)
        assert row["ts"] is not None
        assert row["level"] in ("info", "error")
        assert row["message"] in ("Starting Loki", "db ping")


class TestClassificationMisses:
    """Connection failures that were unclassified before issue 18."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Timed out fetching a new connection from the pool. Please consider reducing the number of "
             "requests or increasing the `connection_limit` parameter", "pool_timeout"),
            ("dial tcp 10.0.0.5:5432: connectex: No connection could be made because the target machine "
             "actively refused it.", "connection_refused"),
            ("Error: Connection terminated unexpectedly", "server_closed"),
            ("error: connection terminated unexpectedly", "server_closed"),
            ("Error: Connection terminated", "server_closed"),
            ("Error: Connection terminated due to connection timeout", "connect_timeout"),
        ],
        ids=["prisma-2", "windows-connectex", "node-pg", "lowercase", "ended", "pg-timeout"],
    )  # fmt: skip
    def test_classified_issue_18(self, text, expected):
        """Prisma 2.x pool timeouts, Windows connectex refusals and 'Connection terminated' variants get a class."""
        assert classify_error(text) == expected


class TestJsonRecords:
    """JSON records with a nested message, or only an error; complete objects are never 'continued'."""

    def test_rust_tracing_issue_18(self):
        """tracing-subscriber's JSON (fields.message, target): every record an event, the error-only one too."""
        df = ll.read_app_log(WILD / "tracing-subscriber-0.3.json")
        assert df.height == 5
        assert ll.rejects(df).height == 0
        assert df["message"].to_list() == [
            "listening",
            "yaks_shaved=2",
            "slow acquire",
            "failed to acquire connection",
            "error communicating with database: Connection refused (os error 111)",
        ]
        assert set(df["logger"]) == {"tracing_json_sample"}
        assert df["error_class"].to_list()[3:] == ["pool_timeout", "connection_refused"]
        keys = df.row(0, named=True)["extra"]
        assert {"key": "port", "value": "8080"} in keys

    def test_error_fields_stand_for_the_message_issue_18(self):
        """A record with no message is named by its error (err.message, error, exception)."""
        log = (
            b'{"level":50,"time":1714557602000,"err":{"type":"Error","message":"timeout exceeded when trying to '
            b'connect","stack":"Error: timeout exceeded when trying to connect\\n    at Timeout._onTimeout '
            b'(pg-pool/index.js:178:27)"}}\n'
            b'{"time":"2024-05-01T10:00:03Z","level":"error","error.message":"FATAL: sorry, too many clients already"}\n'
            b'{"time":"2024-05-01T10:00:04Z","levelname":"ERROR","exc_info":"Traceback (most recent call last):\\n'
            b'  File \\"app.py\\", line 3, in <module>\\nsqlalchemy.exc.OperationalError: connection refused"}\n'
        )
        df = ll.read_app_log(log)
        assert ll.rejects(df).height == 0
        assert df["message"].to_list() == [
            "timeout exceeded when trying to connect",
            "FATAL: sorry, too many clients already",
            "sqlalchemy.exc.OperationalError: connection refused",
        ]
        assert df["error_class"].to_list() == ["pool_timeout", "too_many_connections", "connection_refused"]

    def test_complete_object_reason_issue_18(self):
        """A one-line JSON object without message or error is rejected as such, never as 'continued'."""
        log = (
            WILD / "tracing-subscriber-0.3.json"
        ).read_bytes() + b'{"id": 7, "name": "joe smith"}\n[1, 2]\n'
        with pytest.warns(ll.RejectedLinesWarning):
            df = ll.read_app_log(log)
        reasons = ll.rejects(df)["reason"].to_list()
        assert len(reasons) == 2
        assert not any("several lines" in r for r in reasons)
        assert reasons[0].startswith("a JSON object, but not a log record")
        assert reasons[1].startswith("a JSON array, not an object")


class TestJavaThreadLayouts:
    """logback/log4j layouts with [%thread]: the thread is no logger, the logger and message are split."""

    @pytest.mark.parametrize(
        "name",
        ["logback-1.2.log", "log4j-2.19.log", "logback-1.2-level-first.log"],
        ids=["logback", "log4j2", "level-first"],
    )
    def test_thread_is_not_the_logger_issue_18(self, name):
        """Real logback and Log4j 2 output: logger, message, thread in extra; pgjdbc's refusal classified."""
        df = ll.read_app_log(WILD / name, tz="UTC")
        assert ll.read_report(df).format.startswith("java")
        assert ll.rejects(df).height == 0
        assert df.height == 3
        assert set(df["logger"]) == {"com.example.orders.OrderRepository"}
        assert df["message"].to_list() == [
            "Starting order service on port 8080",
            "Could not open JDBC connection for transaction",
            "Retrying in 5000 ms",
        ]
        err = df.row(1, named=True)
        assert {"key": "thread", "value": "http-nio-8080-exec-1"} in err["extra"]
        assert err["error_class"] == "connection_refused"
        assert err["exc_chain"] == ["org.postgresql.util.PSQLException", "java.net.ConnectException"]


class TestZapConsole:
    """zap's console encoder with and without the logger-name and caller columns, detected and forced."""

    @pytest.mark.parametrize("fmt", [None, "zap_console"], ids=["detected", "forced"])
    def test_development_issue_18(self, fmt):
        """Every zap line is its own event: no caller, no logger or a Named logger; stacktraces stay attached."""
        df = ll.read_app_log(WILD / "zap-1.23-development.log", format=fmt)
        assert ll.read_report(df).format == "zap_console"
        assert ll.rejects(df).height == 0
        assert df.height == 5
        assert df["logger"].to_list() == [None, None, "db", None, None]
        assert df["caller"].null_count() == 2
        assert df["message"].to_list()[3].startswith("failed to connect to `host=db")
        assert df["error_class"].to_list() == [None, "connection_refused", None, "too_many_connections", None]

    @pytest.mark.parametrize("fmt", [None, "zap_console"], ids=["detected", "forced"])
    def test_production_console_issue_18(self, fmt):
        """The production config with console encoding (epoch float, lowercase level) reads whole."""
        df = ll.read_app_log(WILD / "zap-1.23-production-console.log", format=fmt)
        assert ll.rejects(df).height == 0
        assert df["level"].to_list() == ["info", "error", "warning"]
        assert df["ts"].null_count() == 0
        assert df["ts"].dt.year().to_list() == [2026] * 3
        assert df["error_class"].to_list() == [None, "server_closed", None]


class TestPgPrefixesDetected:
    """log_line_prefix settings of managed services and guides are found with no prefix= option."""

    @pytest.mark.parametrize(
        ("name", "prefix"),
        [
            ("cloudsql-text", "%m [%p]: [%l-1] db=%d,user=%u,host=%h "),
            ("azure-flexible", "%t-%c-"),
            ("user-db-app-client", "user=%u, db=%d, app=%a, client=%h "),
            ("epoch", "%n [%p] "),
            ("m-colon-p", "%m : %p : "),
            ("t-p-l-user-at-db", "%t [%p-%l] %q%u@%d "),
        ],
    )
    def test_detected_issue_18(self, name, prefix):
        """A real PostgreSQL 15 log with that prefix: detected, every line read, events and fields right."""
        df = ll.read_pg_log(WILD / f"pg15-{name}.log")
        report = ll.read_report(df)
        assert report.format == f"stderr, prefix {prefix!r}"
        assert report.lines_rejected == 0
        assert df.height == 22
        events = df["event"].to_list()
        assert events.count("connection_authorized") == 3
        assert events.count("disconnection") == 3
        assert "terminated_by_admin" in events
        err = df.filter(pl.col("severity") == "ERROR").row(0, named=True)
        assert err["message"] == 'relation "orders" does not exist at character 32'
        assert err["detail"].endswith("FROM orders\n WHERE id = 1")
        assert set(df["user"].drop_nulls()) == {"postgres"}
        if name != "user-db-app-client":  # that prefix carries neither time nor pid
            assert df["ts"].null_count() == 0
            assert df["pid"].null_count() == 0

    def test_azure_pid_from_session_id_issue_18(self):
        """Azure's '%t-%c-' carries no %p: the pid is read from the session id (<start>.<pid> in hex)."""
        df = ll.read_pg_log(WILD / "pg15-azure-flexible.log")
        row = df.filter(pl.col("event") == "terminated_by_admin").row(0, named=True)
        assert row["pid"] == int(row["session_id"].split(".")[1], 16)


class TestPgServerLogNoise:
    """Lines other code writes into the server log are known noise; SQL continues on untabbed lines."""

    def test_memory_dump_and_archive_output_issue_18(self):
        """A real log with archive_command's 'cp:' errors and an out-of-memory TopMemoryContext dump:
        detected, every such line counted as noise (no warning), and the dump glued to no entry."""
        with warnings.catch_warnings():
            warnings.simplefilter("error", ll.RejectedLinesWarning)
            df = ll.read_pg_log(WILD / "pg15-noise.log")
        report = ll.read_report(df)
        assert report.format == "stderr, prefix '%m [%p] %q%u@%d '"
        assert report.unexplained.height == 0
        reasons = report.rejects["reason"].value_counts().sort("reason")
        assert reasons["count"].to_list() == [115, 6]  # dump lines, cp lines
        warning = df.filter(pl.col("severity") == "WARNING").row(0, named=True)
        assert warning["detail"] is None
        oom = df.filter(pl.col("message") == "out of memory").row(0, named=True)
        assert oom["detail"].endswith("STATEMENT: SELECT length(repeat('x', 500000000))")

    def test_untabbed_statement_lines_issue_18(self):
        """A downloaded/copy-pasted log whose statement lines lost their tab: the statement stays whole."""
        raw = (WILD / "pg15-cloudsql-text.log").read_bytes()
        flat = re.sub(rb"\n[\t ]+", b"\n", raw)
        df = ll.read_pg_log(flat)
        assert ll.read_report(df).lines_rejected == 0
        err = df.filter(pl.col("severity") == "ERROR").row(0, named=True)
        assert err["detail"] == "STATEMENT: SELECT id,\ntotal\nFROM orders\nWHERE id = 1"

    def test_stray_line_after_non_sql_entry_still_rejected_issue_18(self):
        """An untabbed stray line after an entry that carries no SQL is still an unexplained reject."""
        lines = (WILD / "pg15-cloudsql-text.log").read_bytes().split(b"\n")
        lines.insert(5, b"some stray text")
        with pytest.warns(ll.RejectedLinesWarning):
            df = ll.read_pg_log(b"\n".join(lines))
        assert ll.read_report(df).unexplained["line"].to_list() == [6]


class TestSyslogOwnTimestamp:
    """Syslog lines whose message carries PostgreSQL's %m use it: milliseconds, and a year."""

    @pytest.mark.parametrize(
        "name", ["pg15-syslog-bsd.log", "pg15-syslog-rfc3339.log"], ids=["bsd", "rfc3339"]
    )
    def test_ms_from_the_message_issue_18(self, name):
        """Real rsyslog files: no year= needed for BSD headers, and ts is PostgreSQL's own (ms)."""
        df = ll.read_pg_log(WILD / name)
        assert ll.read_report(df).lines_rejected == 0
        lines = [ln for ln in (WILD / name).read_text().splitlines() if "[1-1] " in ln]
        own = re.search(r"\] (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[", lines[0])[1]
        assert df["ts"][0].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] == own
        assert (df["ts"].dt.microsecond() % 1000 == 0).all()  # PostgreSQL's ms, not rsyslog's µs
        assert df.filter(pl.col("event") == "terminated_by_admin").height == 1
        assert set(df["host"].drop_nulls()) == {"vm"}


class TestCloudNativePG:
    """CloudNativePG pod logs in their natural order: the operator's own records come first."""

    @staticmethod
    def _chronological(corpus: Path) -> bytes:
        """pgBadger's real CloudNativePG fixture (newest first) in the order a pod writes it."""
        import gzip
        import json

        lines = gzip.decompress((corpus / "pgbadger" / "cnpg.log.gz").read_bytes()).decode().splitlines()
        return ("\n".join(sorted(lines, key=lambda ln: json.loads(ln)["ts"])) + "\n").encode()

    def test_operator_records_first_issue_18(self, corpus):
        """Detected with no format= although the first records are the instance manager's."""
        data = self._chronological(corpus)
        assert '"logger":"postgres"' not in data.decode().splitlines()[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ll.RejectedLinesWarning)
            df = ll.read_pg_log(data)
        report = ll.read_report(df)
        assert report.format == "cnpg"
        assert report.unexplained.height == 0
        counts = dict(df.group_by("event").len().iter_rows())
        assert counts["connection_authorized"] == 386

    def test_raw_postgres_lines_in_msg_issue_18(self, corpus):
        """'"logger":"postgres"' records with a raw PostgreSQL line in msg are entries, HINTs attached."""
        df = ll.read_pg_log(self._chronological(corpus))
        row = df.filter(pl.col("message") == "redirecting log output to logging collector process").row(
            0, named=True
        )
        assert (row["pid"], row["severity"], row["host"]) == (28, "LOG", "myapp-pg-cluster-1")
        assert row["detail"] == 'HINT: Future log output will appear in directory "/controller/log".'
        assert row["ts"].isoformat() == "2022-11-27T18:48:18.943000+00:00"
        assert not ll.read_report(df).rejects["reason"].str.contains("postgres line").any()


class TestGrafanaOddities:
    """Grafana downloads in the shapes of Grafana's own exporters (public/app/core/utils/file_export.ts:
    ``Series;Time;Value`` rows, ``sep=;`` for Excel, table rows ending with ``;``); no Grafana here."""

    def test_grafana5_thousands_separators_issue_18(self):
        """Values with thousands separators and ';' as the delimiter are numbers, not rejects."""
        data = (
            b"sep=;\nSeries;Time;Value\n"
            b"pg_stat_database_xact_commit;2024-03-01T10:00:00+00:00;1,721,992,142.283\n"
            b"pg_stat_database_xact_commit;2024-03-01T10:00:15+00:00;1,721,992,150\n"
            b"pg_stat_database_xact_commit;2024-03-01T10:00:30+00:00;950\n"
        )
        df = ll.read_prometheus(data)
        assert ll.read_report(df).lines_rejected == 0
        assert df["value"].to_list() == [1721992142.283, 1721992150.0, 950.0]

    @pytest.mark.parametrize(
        "data",
        [
            b"Series;Time;Value\nactive;2024-03-01T10:00:00+00:00;3\nactive;2024-03-01T10:00:15+00:00;4\n"
            b"active;2024-03-01T10:00:00+00:00;9\nactive;2024-03-01T10:00:15+00:00;8\n",
            b'"Time","active","active"\n1709287200000,3,9\n1709287215000,4,8\n',
        ],
        ids=["series-as-rows", "joined-by-time"],
    )
    def test_same_legend_name_kept_apart_issue_18(self, data):
        """Two series with one legend name in one file stay two series; nothing is dropped as 'overlapping'."""
        df = ll.read_prometheus(data)
        report = ll.read_report(df)
        assert df.height == 4
        assert df.sort("series", "ts").select("series", "value").rows() == [
            ("active", 3.0), ("active", 4.0), ("active (2)", 9.0), ("active (2)", 8.0)
        ]  # fmt: skip
        assert not any("overlapping" in n for n in report.notes)
        assert any("legend name" in n for n in report.notes)

    def test_overlapping_files_still_merged_issue_18(self, tmp_path):
        """Across two files the same series at the same time is still one point (overlapping exports)."""
        (tmp_path / "a.csv").write_bytes(b'"Time","active"\n1709287200000,3\n1709287215000,4\n')
        (tmp_path / "b.csv").write_bytes(b'"Time","active"\n1709287215000,4\n1709287230000,5\n')
        df = ll.read_prometheus([tmp_path / "a.csv", tmp_path / "b.csv"])
        assert df.select("series", "value").rows() == [("active", 3.0), ("active", 4.0), ("active", 5.0)]

    @pytest.mark.parametrize(
        ("data", "columns"),
        [
            (b"Time;instance;Value;\n2024-03-01T10:00:00+00:00;api-1;12;\n2024-03-01T10:00:00+00:00;api-2;7;\n",
             "Time, instance, Value"),
            (b'"instance","job","Value"\n"api-1","app","12"\n"api-2","app","7"\n', "instance, job, Value"),
        ],
        ids=["grafana5-table", "table-without-time"],
    )  # fmt: skip
    def test_table_panel_one_clear_line_issue_18(self, data, columns):
        """A table panel's download is one FormatError naming it and its columns, not rejects + NoDataError."""
        with pytest.raises(ll.FormatError, match=f"a table panel, not a time series: columns {columns}\\."):
            ll.read_prometheus(data)


class TestLocalisedServers:
    """lc_messages other than English, read back through the server's own .mo catalogs."""

    @pytest.mark.parametrize("lang", ["de", "fr", "ru"])
    def test_events_in_every_language_issue_18(self, lang):
        """Real PostgreSQL 15 logs in German, French and Russian: detected, severities and events in English."""
        from loglib.formats.pg_catalogs import languages

        from .conftest import require

        require(
            any(lg.code == lang for lg in languages()),
            f"PostgreSQL's {lang} message catalog (postgresql package)",
        )
        df = ll.read_pg_log(WILD / f"pg15-lc-{lang}.log")
        report = ll.read_report(df)
        assert report.format == f"stderr, prefix '%m [%p] %q%u@%d ', lc_messages {lang}"
        assert report.lines_rejected == 0
        assert df.height == 22
        counts = dict(df.group_by("event").len().iter_rows())
        assert (
            counts["connection_received"] == counts["connection_authorized"] == counts["disconnection"] == 3
        )
        assert counts["terminated_by_admin"] == 1
        assert {"server_starting", "server_ready", "server_shutdown"} <= set(counts)
        assert df.filter(pl.col("event") == "disconnection")["session_duration"].null_count() == 0
        assert set(df["user"].drop_nulls()) == {"postgres"}
        assert set(df["application"].drop_nulls()) == {"orders-api"}
        err = df.filter(pl.col("severity") == "ERROR").row(0, named=True)
        assert err["detail"].startswith("STATEMENT: SELECT id,")

    @pytest.mark.parametrize("ext", ["csv", "json"])
    def test_csvlog_and_jsonlog_issue_18(self, ext):
        """The German server's csvlog and jsonlog: severities and events in English too."""
        require_de_catalog()
        df = ll.read_pg_log(WILD / f"pg15-lc-de.{ext}")
        counts = dict(df.group_by("event").len().iter_rows())
        assert counts["connection_authorized"] == counts["disconnection"] == 3
        assert counts["terminated_by_admin"] == 1
        assert df.filter(pl.col("severity") == "ERROR").height == 1

    @pytest.mark.parametrize("chunk", [512, 2048, 8192])
    @pytest.mark.parametrize("name", ["pg15-lc-de.csv", "pg15-lc-de.json", "sample.csv", "sample.json"])
    def test_every_chunk_size_reads_the_eager_frame(self, name, chunk, tmp_path):
        """``scan_pg_log`` in chunks of one to a few dozen records is ``read_pg_log``'s frame: a
        csvlog/jsonlog's language is told from the file's first records, not from its first chunk's."""
        require_de_catalog()
        path = WILD / name if name.startswith("pg15") else _sample_head(name.split(".")[1], tmp_path)
        want = ll.read_pg_log(path)
        got = ll.scan_pg_log(path, chunk_bytes=chunk).collect().sort("ts", maintain_order=True)
        assert got.equals(want)
        events = dict(got.group_by("event").len().iter_rows())
        assert events.get("connection_authorized", 0) > 0 and events.get("disconnection", 0) > 0
        if "lc-de" in name:
            assert events["connection_authorized"] == events["disconnection"] == 3
            assert got.filter(pl.col("severity") == "ERROR").height == 1

    @pytest.mark.parametrize("ext", ["csv", "json"])
    def test_a_few_records_are_enough(self, ext, tmp_path):
        """A German csvlog/jsonlog of 6 records (fewer than the 20 the first chunk used to need) reads in English."""
        require_de_catalog()
        path = tmp_path / f"short.{ext}"
        path.write_text("".join((WILD / f"pg15-lc-de.{ext}").read_text().splitlines(keepends=True)[:6]))
        df = ll.read_pg_log(path)
        assert df["event"].to_list()[2:] == [
            "server_starting", "server_ready", "connection_received", "connection_authorized"
        ]  # fmt: skip
        assert df["user"][5] == "postgres" and df["application"][5] == "orders-api"

    def test_english_logs_load_no_catalog_issue_18(self, monkeypatch):
        """A log every line of which reads in English never opens a catalog."""
        from loglib.formats import pg_catalogs

        def refuse():
            raise AssertionError("catalogs loaded for an English log")

        monkeypatch.setattr(pg_catalogs, "languages", refuse)
        df = ll.read_pg_log(WILD / "pg15-cloudsql-text.log")
        assert ll.read_report(df).format == "stderr, prefix '%m [%p]: [%l-1] db=%d,user=%u,host=%h '"


def require_de_catalog() -> None:
    from loglib.formats.pg_catalogs import languages

    from .conftest import require

    require(
        any(lg.code == "de" for lg in languages()), "PostgreSQL's de message catalog (postgresql package)"
    )


def _sample_head(ext: str, tmp_path: Path, records: int = 600) -> Path:
    """The English sample's first ``records`` csvlog/jsonlog records (a record's quoted newlines kept whole)."""
    lines = (Path(__file__).parents[1] / "data" / "sample-pg" / f"postgresql.{ext}").read_text().splitlines()
    out, quotes = [], 0
    for line in lines:
        out.append(line)
        quotes += line.count('"')
        if len(out) >= records and quotes % 2 == 0:
            break
    path = tmp_path / f"sample.{ext}"
    path.write_text("\n".join(out) + "\n")
    return path
