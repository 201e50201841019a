"""PostgreSQL server logs (stderr with any log_line_prefix, csvlog, jsonlog, syslog, RDS,
Cloud SQL, CloudNativePG) into the canonical ``pg_events`` frame.

Every format is turned into the same intermediate columns by a small per-format parser; one
function (:func:`_finish`) then resolves times to UTC, names the event and conforms the schema.
Lines that are not entries go to the one rejects mechanism (:mod:`loglib.core.rejects`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import polars as pl

from loglib.core.rejects import ReadReport, finish_read, record_damage
from loglib.core.schema import PG_EVENTS
from loglib.core.timeparse import check_tz
from loglib.errors import FormatError
from loglib.formats.pg_prefix import DETECTION_PREFIXES
from loglib.sources._lazy import collect_batches, scan_batches
from loglib.sources.files import (
    DEFAULT_CHUNK_BYTES,
    SCAN_CHUNK_BYTES,
    PathsLike,
    Source,
    expand_sources,
    iter_line_chunks,
)
from loglib.sources.postgres._detect import (
    _SYSLOG_BSD,
    _SYSLOG_ISO,
    CLOUDSQL_PREFIXES,
    FORMATS,
    RDS_PREFIX,
    SYSLOG_PREFIXES,
    _best_prefix,
    _localised,
    _nonblank_lines,
    detect_format,
)
from loglib.sources.postgres._finish import _Options
from loglib.sources.postgres._jsonlog import _JsonParser
from loglib.sources.postgres._lines import _CloudSqlParser, _LineParser, _SyslogParser
from loglib.sources.postgres._records import _CsvParser

__all__ = ["FORMATS", "detect_format", "read_pg_log", "scan_pg_log"]


def _parser_for(source: Source, opts: _Options, report: ReadReport):
    fmt, prefix = opts.format, opts.prefix
    if fmt is None:
        if prefix is not None:
            fmt = "stderr"
        else:
            fmt, prefix = detect_format(source)
    elif fmt not in FORMATS:
        msg = f"format={fmt!r} is not one of {', '.join(map(repr, FORMATS))}"
        raise ValueError(msg)
    if fmt == "rds" and prefix is None:
        prefix = RDS_PREFIX
    if fmt in ("stderr", "rds") and prefix is None:
        prefix, share = _best_prefix(_nonblank_lines(source.head()), DETECTION_PREFIXES)
        if share == 0:
            msg = f"{source.name}: format='stderr' but no common log_line_prefix fits; pass prefix= verbatim"
            raise FormatError(msg)
    if fmt == "cloudsql" and prefix is None:
        payloads = []
        for ln in _nonblank_lines(source.head()):
            try:
                payloads.append(json.loads(ln).get("textPayload") or "")
            except (ValueError, AttributeError):
                continue
        prefix, _ = _best_prefix(payloads, CLOUDSQL_PREFIXES)
    if fmt == "syslog" and prefix is None:
        rests = []
        for ln in _nonblank_lines(source.head()):
            m = re.match(_SYSLOG_BSD, ln) or re.match(_SYSLOG_ISO, ln)
            if m:
                rests.append(m["rest"])
        prefix, _ = _best_prefix(rests, SYSLOG_PREFIXES + DETECTION_PREFIXES)
    lang = _localised(source, fmt, prefix)
    label = fmt if prefix is None else f"{fmt}, prefix {prefix!r}"
    if lang is not None:
        label += f", lc_messages {lang.code}"
    if report.format is None:
        report.format = label
    elif label not in report.format.split(" + "):
        report.format += f" + {label}"
    if fmt in ("stderr", "rds"):
        return _LineParser(source, fmt, prefix, opts, lang)
    if fmt == "syslog":
        return _SyslogParser(source, fmt, prefix, opts)
    if fmt == "cloudsql":
        return _CloudSqlParser(source, fmt, prefix, opts)
    if fmt == "csvlog":
        return _CsvParser(source, opts)
    return _JsonParser(source, fmt, opts)


def _check_options(format: str | None, tz: str | None, year: int | None) -> None:
    if format is not None and format not in FORMATS:
        msg = f"format={format!r} is not one of {', '.join(map(repr, FORMATS))}; leave it out to detect the format"
        raise ValueError(msg)
    check_tz(tz)
    if year is not None and not (1970 <= int(year) <= 2200):
        msg = f"year={year!r} is not a plausible four-digit year"
        raise ValueError(msg)


def _batches(sources: list[Source], opts: _Options, report: ReadReport) -> Iterator[pl.DataFrame]:
    for source in sources:
        report.files.append(source.name)
        if not source.head(1):
            damage = next((c.damage for c in iter_line_chunks(source) if c.damage), None)
            if damage:  # a compressed file that yields nothing at all
                record_damage(report, source.name, 0, damage)
            else:
                report.notes.append(f"{source.name} is empty")
            continue
        parser = _parser_for(source, opts, report)
        # every parser yields finished, canonical rows
        yield from parser.run(report)


def scan_pg_log(
    paths: PathsLike,
    *,
    format: str | None = None,
    prefix: str | None = None,
    tz: str | None = None,
    year: int | None = None,
    chunk_bytes: int = SCAN_CHUNK_BYTES,
) -> pl.LazyFrame:
    """Lazily read PostgreSQL logs: the streaming twin of :func:`read_pg_log`.

    Files are parsed in chunks of about ``chunk_bytes`` while the query runs, so a file
    larger than memory can be filtered or aggregated (``.collect(engine="streaming")``).
    Rows come in file order (rotated sets oldest first), not sorted by time. Rejected lines
    are counted into a report reachable with ``loglib.read_report(lazy_frame)`` once collected.

    Examples
    --------
    >>> import loglib as ll
    >>> lf = ll.scan_pg_log("pg/postgresql.log*")  # doctest: +SKIP
    >>> lf.filter(pl.col("event") == "too_many_clients").collect()  # doctest: +SKIP
    """
    _check_options(format, tz, year)
    sources = expand_sources(paths)
    opts = _Options(format, prefix, tz, year, chunk_bytes)
    report = ReadReport("read_pg_log")
    report.notes.extend(getattr(sources, "notes", ()))  # the same file reached twice

    return scan_batches(
        lambda rep: _batches(sources, opts, rep), PG_EVENTS, report, "loglib.scan_pg_log", sources
    )


def read_pg_log(
    paths: PathsLike,
    *,
    format: str | None = None,
    prefix: str | None = None,
    tz: str | None = None,
    year: int | None = None,
    strict: bool = False,
    raise_if_empty: bool = True,
) -> pl.DataFrame:
    """Read PostgreSQL server logs into the canonical ``pg_events`` frame, one row per entry.

    Parameters
    ----------
    paths
        A file, a glob (``"pg/postgresql.log*"``), a directory, a list of those, or the log
        itself as ``bytes``. Rotated sets are read oldest first; ``.gz``/``.bz2``/``.xz`` are
        decompressed on the fly.
    format
        ``"stderr"``, ``"csvlog"``, ``"jsonlog"``, ``"syslog"``, ``"rds"``, ``"cloudsql"`` or
        ``"cnpg"``. Detected per file when left out.
    prefix
        The server's ``log_line_prefix``, verbatim (``'%m [%p] %q%u@%d '``). Detected among
        common settings when left out (stderr, syslog, Cloud SQL).
    tz
        The server's ``log_timezone`` (IANA name). Needed for naive timestamps (BSD syslog) and
        ambiguous abbreviations (``CST``, ``IST``); a clear error says so when it is missing.
    year
        The year of BSD syslog timestamps, which carry none.
    strict
        Raise :class:`~loglib.errors.ParseError` at the first line that is not an entry, a
        continuation or known noise, instead of warning.
    raise_if_empty
        Raise :class:`~loglib.errors.NoDataError` when the files hold no entry at all.

    Returns
    -------
    polars.DataFrame
        Columns of ``loglib.schema.PG_EVENTS``, sorted by ``ts`` (ties keep file order).
        ``loglib.read_report(df)`` tells what was read; ``loglib.rejects(df)`` lists every line
        that was not used, with file, line and reason, and a
        :class:`~loglib.errors.RejectedLinesWarning` says how many there were.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\\n"
    ...        b"2024-03-01 10:00:09.000 UTC [7] app@shop LOG:  disconnection: session time: 0:00:09.000 "
    ...        b"user=app database=shop host=10.0.0.5 port=5000\\n")
    >>> ll.read_pg_log(log, prefix="%m [%p] %q%u@%d ").select("ts", "pid", "event", "session_duration")
    shape: (2, 4)
    ┌─────────────────────────┬─────┬─────────────────────┬──────────────────┐
    │ ts                      ┆ pid ┆ event               ┆ session_duration │
    │ ---                     ┆ --- ┆ ---                 ┆ ---              │
    │ datetime[μs, UTC]       ┆ i64 ┆ cat                 ┆ duration[μs]     │
    ╞═════════════════════════╪═════╪═════════════════════╪══════════════════╡
    │ 2024-03-01 10:00:00 UTC ┆ 7   ┆ connection_received ┆ null             │
    │ 2024-03-01 10:00:09 UTC ┆ 7   ┆ disconnection       ┆ 9s               │
    └─────────────────────────┴─────┴─────────────────────┴──────────────────┘

    .. versionchanged:: 0.1
       The repeated text columns (``severity``, ``user``, ``database``,
       ``event``, ``file``…) are ``Categorical``
       (``loglib.schema.EVENT_TEXT``): compare them as text; ``.cast(pl.String)`` before
       ``.str`` functions.
    """
    _check_options(format, tz, year)
    sources = expand_sources(paths)
    opts = _Options(format, prefix, tz, year, DEFAULT_CHUNK_BYTES)
    report = ReadReport("read_pg_log")
    report.notes.extend(getattr(sources, "notes", ()))  # the same file reached twice
    frame = collect_batches(
        _batches(sources, opts, report), PG_EVENTS, sources, report,
        what="PostgreSQL log entries", raise_if_empty=raise_if_empty,
    )  # fmt: skip
    return finish_read(frame, report, strict=strict)
