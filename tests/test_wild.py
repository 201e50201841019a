"""Logs as found in the wild (issue 18): shapes that needed options or were rejected, on real files."""

from __future__ import annotations

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
