"""The ``loglib`` command: thin faces over the library (parse, connections, demo)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import polars as pl

from loglib.analysis.connections import pg_connections
from loglib.analysis.sessions import pg_sessions
from loglib.core.rejects import read_report
from loglib.errors import LoglibError, RejectedLinesWarning
from loglib.sources.postgres import FORMATS, read_pg_log

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample-pg"


def _print_table(frame: pl.DataFrame) -> None:
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=True,
                   tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True):  # fmt: skip
        print(frame)


def _connections(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedLinesWarning)  # reported below, with the rest
        events = read_pg_log(args.paths, format=args.format, prefix=args.prefix, tz=args.tz, year=args.year)
    report = read_report(events)
    print(report.summary())
    sessions = pg_sessions(events)
    reasons = sessions.group_by("end_reason").len().sort("len", descending=True)
    first, last = events["ts"].min(), events["ts"].max()
    print(f"time range (UTC): {first} .. {last}")
    print(f"sessions: {sessions.height:,} ("
          + ", ".join(f"{r or 'still open'}: {n}" for r, n in reasons.iter_rows()) + ")")  # fmt: skip
    kinds = events.filter(pl.col("event") != "other").group_by("event").len().sort("len", descending=True)
    print("connection events: " + ", ".join(f"{e} {n}" for e, n in kinds.iter_rows()))
    print()
    print(f"Connections per {args.every} (UTC):")
    table = pg_connections(events, every=args.every, by=args.by)
    _print_table(table)
    if report.unexplained.height:
        print(f"\n{report.unexplained.height} line(s) did not parse; first ones:")
        _print_table(report.unexplained.head(10))
    return 0


def _capture_pg_activity(args: argparse.Namespace) -> int:
    import logging

    from loglib.capture import capture_pg_activity

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = capture_pg_activity(
            args.url, args.out, every=args.every, duration=args.duration, query=args.query,
            max_backoff=args.max_backoff,
        )  # fmt: skip
    except ValueError as exc:  # bad --every/--for or not a PostgreSQL URL (messages hide the password)
        print(f"loglib: error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


def _add_capture(sub: argparse._SubParsersAction) -> None:
    capture = sub.add_parser("capture", help="sample live evidence during an incident")
    what = capture.add_subparsers(dest="what", required=True)
    act = what.add_parser(
        "pg-activity",
        help="sample pg_stat_activity into Parquet (read back with loglib.read_pg_activity)",
        description="The URL's password is never written; prefer PGPASSWORD or ~/.pgpass to keep it "
        "off the command line. Ctrl-C stops cleanly (at most the sample being taken is lost).",
    )
    act.add_argument("url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/db")
    act.add_argument("--every", default="5s", help="time between samples (default 5s)")
    act.add_argument("--for", dest="duration", default="30m", help="how long to capture (default 30m)")
    act.add_argument("--out", required=True, help="output directory")
    act.add_argument("--query", action="store_true", help="also keep query texts (may hold personal data)")
    act.add_argument("--max-backoff", default="30s", help="longest wait between reconnection attempts")
    act.set_defaults(func=_capture_pg_activity)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="loglib", description="Incident analysis for database-connection incidents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    conn = sub.add_parser("connections", help="per-bucket connection table from PostgreSQL logs")
    conn.add_argument("paths", nargs="+", help="log files, globs or directories (.gz/.bz2/.xz ok)")
    conn.add_argument("--every", default="1h", help="bucket width, e.g. 1m, 5m, 1h (default 1h)")
    conn.add_argument("--by", choices=["user", "database", "application", "client_host", "host"])
    conn.add_argument("--format", choices=FORMATS)
    conn.add_argument("--prefix", help="the server's log_line_prefix, verbatim")
    conn.add_argument("--tz", help="the server's log_timezone, for naive or ambiguous times")
    conn.add_argument("--year", type=int, help="year of BSD syslog timestamps")
    conn.set_defaults(func=_connections)

    demo = sub.add_parser("demo", help="the connection table of the bundled sample PostgreSQL log")
    demo.add_argument("--every", default="1h")
    demo.set_defaults(
        func=lambda a: _connections(
            argparse.Namespace(
                paths=[str(SAMPLE / "postgresql.log*")],
                every=a.every,
                by=None,
                format=None,
                prefix=None,
                tz=None,
                year=None,
            )
        )
    )
    _add_capture(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LoglibError as exc:
        print(f"loglib: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
