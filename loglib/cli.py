"""The ``loglib`` command: thin faces over the library (report, parse, timeline, connections, demo, capture)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from loglib import __version__
from loglib.errors import LoglibError, RejectedLinesWarning
from loglib.formats.pg_prefix import FORMATS
from loglib.outdir import check_writable, claim_out

if TYPE_CHECKING:  # polars is imported by the commands that use it: `loglib --help` stays fast
    import polars as pl

    from loglib.core.rejects import ReadReport

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample-pg"
#: the bundled incidents, in a source checkout (an editable install)
INCIDENTS = Path(__file__).resolve().parent.parent / "data" / "incidents"
DEMO_INCIDENT = "pool-exhaustion"
#: what `loglib parse` reads, by KIND
PARSE_KINDS = ("postgres", "app", "pgbouncer", "prometheus", "pool_events", "pg_activity")
#: a reader that is not streamed holds about this many times its input in memory (Prometheus JSON: 11×)
EAGER_FACTOR = 12


#: the library's keyword arguments, as the CLI spells them
_FLAGS = {"tz": "--tz", "format": "--format", "prefix": "--prefix", "pattern": "--pattern", "year": "--year",
          "every": "--every", "by": "--by"}  # fmt: skip
#: hints that only make sense in Python (there is no CLI flag for them)
_PYTHON_ONLY = re.compile(
    r"[;,]?\s*(?:pass |or pass |call with )?(?:raise_if_empty|strict|chunk_bytes|n_rows)=\w+[^;.)]*", re.I
)
_QUOTED = re.compile(r"(b?)(['\"])((?:\\.|(?!\2).){60,}?)\2")
#: the longest error line the CLI prints (a binary input must not fill the terminal)
MAX_ERROR = 500


def cli_words(message: str) -> str:
    """A library message in the CLI's words: flags instead of keyword arguments, one short line.

    Examples
    --------
    >>> cli_words("tz='Europe/Berln' is not an IANA time zone name; pass raise_if_empty=False to go on")
    "--tz 'Europe/Berln' is not an IANA time zone name"
    """
    text = " ".join(str(message).split())
    text = _PYTHON_ONLY.sub("", text)
    for kwarg, flag in _FLAGS.items():
        text = re.sub(rf"(?<![\w.-]){kwarg}=(?=['\"\w])", f"{flag} ", text)
        text = re.sub(rf"(?<![\w.-]){kwarg}=", flag, text)
    text = _QUOTED.sub(lambda m: f"{m[1]}{m[2]}{m[3][:40]}…{m[2]}", text)
    if len(text) > MAX_ERROR:  # the end often says what to do: keep both ends
        half = (MAX_ERROR - 3) // 2
        text = f"{text[:half]} … {text[-half:]}"
    return text


def _error(message: str) -> int:
    print(f"loglib: error: {cli_words(message)}", file=sys.stderr)
    return 2


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Steps:
    """Progress on stderr for steps that take longer than a second (and a heartbeat every 5 s).

    A step that ends within ``quiet_for`` seconds prints nothing, so quick commands stay quiet.
    """

    def __init__(self, *, quiet: bool = False, quiet_for: float = 1.0, every: float = 5.0) -> None:
        self.quiet, self.quiet_for, self.every = quiet, quiet_for, every
        self.t0 = time.monotonic()

    def say(self, line: str) -> None:
        if not self.quiet:
            _progress(f"[{time.monotonic() - self.t0:5.1f}s] {line}")

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        done = threading.Event()
        start = time.monotonic()

        def watch() -> None:
            if done.wait(self.quiet_for):
                return
            self.say(f"{what} …")
            while not done.wait(self.every):
                self.say(f"{what} … still running ({time.monotonic() - start:.0f} s)")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()
            if time.monotonic() - start > self.quiet_for:
                self.say(f"{what}: done in {time.monotonic() - start:.1f} s")


def _heartbeat(
    say: Callable[[str], None], *, every: float = 5.0
) -> tuple[Callable[[str], None], Callable[[], None]]:
    """Wrap a progress callback so a step that runs longer than ``every`` seconds says so again."""
    state = {"line": "", "at": time.monotonic()}
    stop = threading.Event()

    def progress(line: str) -> None:
        state.update(line=line, at=time.monotonic())
        say(line)

    def beat() -> None:
        while not stop.wait(1.0):
            quiet = time.monotonic() - state["at"]
            if state["line"] and quiet >= every:
                step = re.sub(r"^\[\s*[\d.]+s\]\s*", "", state["line"])
                say(f"… still {step} ({quiet:.0f} s)")
                state["at"] = time.monotonic()

    threading.Thread(target=beat, daemon=True).start()
    return progress, stop.set


# --- arguments checked before any work -------------------------------------------------------


def _tz_arg(value: str) -> str:
    from loglib.core.timeparse import check_tz

    try:
        return check_tz(value) or value
    except LoglibError:
        msg = (
            f"{_short(value)} is not an IANA time zone name; use e.g. UTC, Europe/Berlin or America/New_York"
        )
        raise argparse.ArgumentTypeError(msg) from None


def _every_arg(value: str) -> str:
    from loglib.core.timeparse import to_timedelta

    try:
        width = to_timedelta(value, argument="--every")
    except ValueError:
        width = None
    if (
        width is None
        or width.total_seconds() <= 0
        or not re.fullmatch(r"(\d+(ns|us|ms|s|m|h|d|w))+", value.strip())
    ):
        msg = f"{_short(value)} is not a bucket width; write it like 30s, 5m, 1h or 1d"
        raise argparse.ArgumentTypeError(msg)
    return value.strip()


def _short(value: str, limit: int = 60) -> str:
    """``value`` quoted, cut to ``limit`` characters (a pasted binary blob stays one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 2] + "…" + text[0]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"loglib: error: {cli_words(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _report(args: argparse.Namespace) -> int:
    from loglib.report import build_report

    if getattr(args, "no_cache", False):  # this process and the notebook's kernel parse afresh
        os.environ["LOGLIB_NO_CACHE"] = "1"
    progress, stop = _heartbeat(_progress) if not args.quiet else (None, lambda: None)
    # checked, locked and cleared of the previous run's files before any work (issue 19)
    with claim_out(args.out) as claim:
        try:
            result = build_report(
                args.incident_dir,
                args.out,
                notebook=args.notebook,
                tz=args.tz,
                progress=progress,
                redact=not args.no_redact,
                hosts=args.hosts,
                leak_every=args.leak_every,
            )
        finally:
            stop()
        claim.record([*result.files, result.notebook])
    if claim.cleared and not args.quiet:
        _progress(f"cleared {len(claim.cleared)} file(s) an earlier loglib run wrote into {args.out}")
    _print_reads(args.incident_dir, reports=result.reads)
    print(f"Postmortem of {Path(args.incident_dir).name} written in {result.seconds:.0f} s:")
    print(result)
    if result.findings:
        print("Findings:")
        for statement in result.findings:
            print(f"  - {statement[:200]}{'…' if len(statement) > 200 else ''}")
    for failure in result.failed:
        print(f"  ! {failure}")
    print(f"Open {result.html} in a browser (works offline).")
    if result.failed:
        return _error(
            f"{len(result.failed)} detector(s) failed; the report says which (report.html was written)"
        )
    if result.browser_error:
        return _error(
            f"no PNG/SVG charts in the bundle (HTML charts instead): {result.browser_error} "
            "(report.html was written)"
        )
    return 0


def _print_reads(incident_dir: str, *, file: TextIO | None = None, reports: dict | None = None) -> None:
    """What was read, one line per source (the sources are cached: nothing is read again)."""
    from loglib.analysis.reads import read_lines, read_summary
    from loglib.incident import Incident

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedLinesWarning)  # shown here instead
        inc = Incident.load(incident_dir)
        reports = reports or inc.read_reports()
    print("What was read:", file=file)
    kinds = {s.name or s.kind: s.kind for s in inc.sources}
    for line in read_lines(read_summary(reports, kinds=kinds)):
        print(f"  {line}", file=file)


def _demo(args: argparse.Namespace) -> int:
    folder = INCIDENTS / DEMO_INCIDENT
    if not folder.is_dir():
        return _error(
            f"the bundled incidents are not here ({folder}): run `loglib demo` from a clone of the "
            "repository installed with `pip install -e .`, or `loglib report INCIDENT_DIR --out OUT_DIR`"
        )
    print(
        f"loglib demo: the postmortem of the bundled incident {DEMO_INCIDENT} into {args.out}",
        file=sys.stderr,
    )
    return _report(
        argparse.Namespace(
            incident_dir=str(folder),
            out=args.out,
            notebook=None,
            tz=None,
            quiet=args.quiet,
            no_redact=False,
            hosts=False,
            leak_every=None,
        )
    )


def _csv_column(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column CSV can hold: structs as JSON, lists joined by newlines, durations in seconds."""
    import polars as pl

    col = pl.col(name)
    if isinstance(dtype, pl.Struct):
        return col.struct.json_encode()
    if isinstance(dtype, pl.List):
        return col.cast(pl.List(pl.String)).list.join("\n")
    if isinstance(dtype, pl.Duration):
        return col.dt.total_microseconds() / 1e6
    return col


def _parse(args: argparse.Namespace) -> int:
    from loglib.cache import cached_read
    from loglib.core.rejects import read_report
    from loglib.incident import reader

    out = Path(args.out)
    fmt = args.to or (out.suffix.lstrip(".").lower() or "parquet")
    if fmt not in ("parquet", "csv"):
        return _error(f"--out {out}: write .parquet or .csv (or say --to parquet|csv)")
    options = {k: v for k, v in (("format", args.format), ("prefix", args.prefix), ("tz", args.tz)) if v}
    if args.pattern:
        options["pattern"] = args.pattern
    if args.year is not None:
        options["year"] = args.year
    fn = reader(args.kind)
    import inspect

    taken = inspect.signature(fn).parameters
    for option in options:
        if option not in taken:
            return _error(f"loglib parse {args.kind} does not take --{option}")
    if out.is_dir():
        return _error(f"--out {_short(str(out), 120)} is a folder; give a file such as frames.parquet")
    check_writable(out.parent)
    from loglib.parse_stream import STREAMED

    if args.kind in STREAMED:
        return _parse_streamed(args, out, fmt, options)
    too_big = _too_big_to_read_whole(args.kind, args.paths)
    if too_big:
        return _error(too_big)
    steps = _Steps(quiet=args.quiet)
    try:
        with steps.step(f"reading {' '.join(args.paths)[:80]}"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RejectedLinesWarning)  # counted in the summary below
            frame = cached_read(fn, args.paths, options, use_cache=not args.no_cache)
    except (OSError, UnicodeError) as exc:
        return _error(f"cannot read {' '.join(args.paths)}: {exc}")
    if args.redact:
        from loglib.present.redact import Redactor

        with steps.step("redacting secrets"):
            frame = Redactor(hosts=args.hosts).frame(frame)
    with steps.step(f"writing {out.name}"):
        if fmt == "parquet":
            frame.write_parquet(out)
        else:
            from loglib.present.markup import csv_safe

            flat = frame.select(_csv_column(c, t) for c, t in frame.schema.items())
            csv_safe(flat).write_csv(out)  # no cell runs as a spreadsheet formula (= + - @ get a ')
    with contextlib.suppress(KeyError):  # readers without a read report (pool events, pg_activity)
        _print_read(args.kind, read_report(frame))
    print(f"{frame.height:,} rows × {frame.width} columns -> {out}")
    return 0


def _print_read(kind: str, report: ReadReport) -> None:
    from loglib.analysis.reads import read_lines, read_summary

    print(report.summary())
    for line in read_lines(read_summary({kind: report}, kinds={kind: kind})):
        print(line)


def _parse_streamed(args: argparse.Namespace, out: Path, fmt: str, options: dict[str, str]) -> int:
    """``loglib parse`` of a line-based log: chunk by chunk into ``out`` (memory bounded)."""
    from loglib.parse_stream import stream_parse

    redact = None
    if args.redact:
        from loglib.present.redact import Redactor

        redact = Redactor(hosts=args.hosts).frame  # one Redactor: a host keeps its pseudonym
    steps = _Steps(quiet=args.quiet)
    try:
        with steps.step(f"streaming {' '.join(args.paths)[:80]} to {out.name}"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RejectedLinesWarning)  # counted in the summary below
            done = stream_parse(
                args.kind, args.paths, options, out, to=fmt, redact=redact, csv_column=_csv_column
            )
    except (OSError, UnicodeError) as exc:
        return _error(f"cannot read {' '.join(args.paths)}: {exc}")
    _print_read(args.kind, done.report)
    print(f"{done.rows:,} rows × {done.columns} columns -> {out}")
    return 0


def _too_big_to_read_whole(kind: str, paths: list[str]) -> str | None:
    """Why ``paths`` cannot be read whole (about :data:`EAGER_FACTOR` × their size) here, or None."""
    from loglib.sources.files import expand_sources

    try:
        size = sum(os.stat(src.path).st_size for src in expand_sources(paths) if src.path)
        with open("/proc/meminfo") as fh:
            avail = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, LoglibError):
        return None  # not Linux, or the reader will name the missing file itself
    if size * EAGER_FACTOR <= avail:
        return None
    return (
        f"loglib parse {kind} reads its input whole (about {EAGER_FACTOR}x its size in memory, not streamed): "
        f"{size / 1e9:,.1f} GB of input needs more than the {avail / 1e9:,.1f} GB of memory available; "
        "split the input, or use postgres/app/pgbouncer, which stream"
    )


def _timeline(args: argparse.Namespace) -> int:
    from loglib.present.timeline_doc import timeline_document
    from loglib.report import check_incident

    steps = _Steps(quiet=args.quiet)
    with steps.step(f"reading {args.incident_dir}"):
        inc = check_incident(args.incident_dir)
    with steps.step("building the timeline"):
        doc = timeline_document(inc, tz=args.tz, full=args.full, redact=not args.no_redact, hosts=args.hosts)
    _print_reads(args.incident_dir, file=sys.stderr)
    sys.stdout.write(doc.render(args.format))
    return 0


def _print_table(frame: pl.DataFrame) -> None:
    import polars as pl

    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=True,
                   tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True):  # fmt: skip
        print(frame)


def _connections(args: argparse.Namespace) -> int:
    import polars as pl

    from loglib.analysis.connections import pg_connections
    from loglib.analysis.reads import read_lines, read_summary
    from loglib.analysis.sessions import pg_sessions
    from loglib.cache import cached_read
    from loglib.core.rejects import read_report
    from loglib.core.schema import SESSION_END_REASONS
    from loglib.formats.pg_messages import PG_EVENT_KINDS
    from loglib.sources.postgres import read_pg_log

    steps = _Steps(quiet=args.quiet)
    with steps.step(f"reading {' '.join(args.paths)[:80]}"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedLinesWarning)  # reported below, with the rest
        options = {"format": args.format, "prefix": args.prefix, "tz": args.tz, "year": args.year}
        events = cached_read(read_pg_log, args.paths, options, use_cache=not args.no_cache)
    report = read_report(events)
    print(report.summary())
    for line in read_lines(read_summary({"postgres": report}, kinds={"postgres": "postgres"})):
        print(line)
    with steps.step("pairing sessions"):
        sessions = pg_sessions(events)
    reasons = sessions.group_by("end_reason").len()
    rank = pl.col("end_reason").replace_strict(  # ties in the documented order, open ones last
        SESSION_END_REASONS, range(len(SESSION_END_REASONS)), default=len(SESSION_END_REASONS)
    )
    reasons = reasons.sort(pl.col("len"), rank, descending=[True, False], nulls_last=True)
    first, last = events["ts"].min(), events["ts"].max()
    print(f"time range (UTC): {first} .. {last}")
    print(f"sessions: {sessions.height:,} ("
          + ", ".join(f"{r or 'still open'}: {n}" for r, n in reasons.iter_rows()) + ")")  # fmt: skip
    # the event column alone (a filter of the whole frame copied every column of most rows); equal
    # counts in the documented order of the kinds (they came in hash order, changing run to run)
    kinds = events.select("event").filter(pl.col("event") != "other").group_by("event").len()
    order = pl.col("event").replace_strict(
        PG_EVENT_KINDS, range(len(PG_EVENT_KINDS)), default=len(PG_EVENT_KINDS)
    )
    kinds = kinds.sort(pl.col("len"), order, descending=[True, False])
    print("connection events: " + ", ".join(f"{e} {n}" for e, n in kinds.iter_rows()))
    print()
    print(f"Connections per {args.every} (UTC):")
    with steps.step(f"counting connections per {args.every}"):
        table = pg_connections(events, every=args.every, by=args.by)
    _print_table(table)
    if report.unexplained.height:
        print(f"\n{report.unexplained.height} line(s) did not parse; first ones:")
        _print_table(report.unexplained.head(10))
    return 0


def _cache(args: argparse.Namespace) -> int:
    from loglib.cache import cache_stats, clear_cache

    if args.action == "clear":
        print(f"removed {clear_cache()}")
    else:
        print(cache_stats())
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
    parser = _Parser(prog="loglib", description="Incident analysis for database-connection incidents.")
    parser.add_argument("--version", action="version", version=f"loglib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    conn = sub.add_parser("connections", help="per-bucket connection table from PostgreSQL logs")
    conn.add_argument("paths", nargs="+", help="log files, globs or directories (.gz/.bz2/.xz ok)")
    conn.add_argument(
        "--every", default="1h", type=_every_arg, help="bucket width, e.g. 1m, 5m, 1h (default 1h)"
    )
    conn.add_argument("--by", choices=["user", "database", "application", "client_host", "host"])
    conn.add_argument("--format", choices=FORMATS)
    conn.add_argument("--prefix", help="the server's log_line_prefix, verbatim")
    conn.add_argument("--tz", type=_tz_arg, help="the server's log_timezone, for naive or ambiguous times")
    conn.add_argument("--year", type=int, help="year of BSD syslog timestamps")
    conn.add_argument(
        "--no-cache",
        action="store_true",
        help="parse the files again instead of loading loglib's Parquet cache",
    )
    conn.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    conn.set_defaults(func=_connections)

    rep = sub.add_parser(
        "report",
        help="the postmortem of an incident folder: report.html and the export bundle",
        description="Executes the postmortem notebook headless for the incident and writes OUT_DIR/report.html "
        "(interactive, offline), report.ipynb and the export bundle (charts/*.png|svg, timeline.md, "
        "findings.md, summary.md).",
    )
    rep.add_argument("incident_dir", help="folder with incident.toml")
    rep.add_argument("--out", required=True, help="output folder (created)")
    rep.add_argument(
        "--tz", type=_tz_arg, help="also show timeline times in this IANA zone, e.g. Europe/Berlin"
    )
    rep.add_argument("--notebook", help="run this notebook instead of the shipped postmortem")
    rep.add_argument(
        "--leak-every",
        type=_every_arg,
        help="bucket of the leak-rate table and chart, the same in report.html and the bundle, e.g. 1m "
        "(default: from the incident's length: 1h, 10m, 1m or 10s)",
    )
    rep.add_argument(
        "--no-redact", action="store_true", help="keep secrets in every file written (never for sharing)"
    )
    rep.add_argument("--hosts", action="store_true", help="also replace host names and IPs by pseudonyms")
    rep.add_argument(
        "--no-cache",
        action="store_true",
        help="parse the files again instead of loading loglib's Parquet cache",
    )
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    rep.set_defaults(func=_report)

    parse = sub.add_parser("parse", help="read any source into one Parquet or CSV file")
    parse.add_argument("kind", choices=PARSE_KINDS, help="which reader")
    parse.add_argument("paths", nargs="+", help="files, globs or directories (.gz/.bz2/.xz ok)")
    parse.add_argument("--out", required=True, help="frames.parquet or frames.csv")
    parse.add_argument("--to", choices=["parquet", "csv"], help="format (default: from --out's suffix)")
    parse.add_argument("--format", help="source format (default: detected per file)")
    parse.add_argument("--prefix", help="postgres: the server's log_line_prefix, verbatim")
    parse.add_argument("--pattern", help="app: the logging format string, e.g. '%%(asctime)s %%(message)s'")
    parse.add_argument("--tz", type=_tz_arg, help="zone of naive timestamps")
    parse.add_argument("--year", type=int, help="postgres: year of BSD syslog timestamps (they carry none)")
    parse.add_argument("--redact", action="store_true", help="remove secrets from every text column first")
    parse.add_argument("--hosts", action="store_true", help="with --redact: also pseudonymise hosts and IPs")
    parse.add_argument(
        "--no-cache",
        action="store_true",
        help="prometheus, pool_events, pg_activity: parse the files again instead of loading loglib's "
        "Parquet cache (postgres, app and pgbouncer are streamed chunk by chunk and never cached)",
    )
    parse.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parse.set_defaults(func=_parse)

    tl = sub.add_parser("timeline", help="print the timeline table of an incident folder")
    tl.add_argument("incident_dir", help="folder with incident.toml")
    tl.add_argument("--tz", type=_tz_arg, help="also show times in this IANA zone")
    tl.add_argument(
        "--format",
        choices=("md", "html", "csv"),
        default="md",
        help="md: exactly the bundle's timeline.md (default); html: a fragment with inline styles that "
        "pastes into Confluence and Google Docs; csv: the same cells",
    )
    tl.add_argument(
        "--full",
        action="store_true",
        help="the long table: every burst and every run of a state, no row limit",
    )
    tl.add_argument("--no-redact", action="store_true", help="keep secrets (never for sharing)")
    tl.add_argument("--hosts", action="store_true", help="also pseudonymise hosts and IPs")
    tl.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    tl.set_defaults(func=_timeline)

    demo = sub.add_parser("demo", help=f"the report on the bundled incident {DEMO_INCIDENT}, into ./out/demo")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(func=_demo)
    _add_capture(sub)
    cache = sub.add_parser(
        "cache",
        help="loglib's Parquet cache of parsed sources: show or clear it",
        description="Parsed sources are kept as Parquet in $LOGLIB_CACHE_DIR, $XDG_CACHE_HOME/loglib or "
        "~/.cache/loglib, keyed by the files' identity, so a second read of the same files loads Parquet. "
        "LOGLIB_NO_CACHE=1 or --no-cache turns it off.",
    )
    cache.add_argument("action", choices=["info", "clear"], nargs="?", default="info")
    cache.set_defaults(func=_cache)
    args = parser.parse_args(argv)
    handler = None
    if not getattr(args, "quiet", True):  # long steps inside the library say how far they are
        from loglib.core.progress import to_stream

        handler = to_stream(sys.stderr)
    try:
        return args.func(args)
    except LoglibError as exc:
        return _error(str(exc))
    except BrokenPipeError:  # `loglib timeline ... | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, UnicodeError) as exc:  # a file that cannot be read or written: the user's to fix
        where = getattr(exc, "filename", None)
        return _error(f"{where + ': ' if where else ''}{getattr(exc, 'strerror', None) or exc}")
    except KeyboardInterrupt:
        print("loglib: interrupted", file=sys.stderr)
        return 130
    finally:
        if handler is not None:
            from loglib.core.progress import logger

            logger.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
