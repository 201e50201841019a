"""Application logs (Python logging, loguru, structlog, uvicorn, gunicorn, pino, winston, zap, logrus,
Laravel/Monolog, Rails, Spring Boot, Go, bare ``[LEVEL]`` lines) into the canonical ``app_events`` frame.

A source is read in chunks of lines. Each chunk is matched against the source's formats with
one vectorised regex per format (JSON lines by polars' NDJSON reader); a matching line starts an
event, the lines after it that match nothing are its traceback. Events are then classified
with the one rules table (:mod:`loglib.formats.error_rules`) and conformed to the schema.
Lines that belong to no event go to the one rejects mechanism (:mod:`loglib.core.rejects`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence

import polars as pl

from loglib.core.rejects import ReadReport, finish_read
from loglib.core.schema import APP_EVENTS
from loglib.formats.error_rules import ErrorRule, _resolve
from loglib.sources._lazy import collect_batches, scan_batches
from loglib.sources.app._common import APP_CHUNK_BYTES, NoTimestampWarning, _check_options, _Options
from loglib.sources.app._parser import _Parser
from loglib.sources.files import PathsLike, Source, expand_sources

__all__ = ["APP_CHUNK_BYTES", "NoTimestampWarning", "no_timestamp_note", "read_app_log", "scan_app_log"]


def _batches(sources: list[Source], opts: _Options, report: ReadReport) -> Iterator[pl.DataFrame]:
    for source in sources:
        report.files.append(source.name)
        yield from _Parser(source, opts, report).run(report)


def _options(format, pattern, datefmt, tz, service, rules, chunk_bytes) -> _Options:
    candidates = _check_options(format, pattern, datefmt, tz, service)
    if rules is not None:
        rules = _resolve(rules)
    return _Options(candidates, tz, service, rules, chunk_bytes)


def scan_app_log(
    paths: PathsLike,
    *,
    format: str | Sequence[str] | None = None,
    pattern: str | None = None,
    datefmt: str | None = None,
    tz: str | Mapping[str, str] | None = None,
    service: str | Mapping[str, str] | None = None,
    rules: Sequence[ErrorRule] | None = None,
    chunk_bytes: int = APP_CHUNK_BYTES,
) -> pl.LazyFrame:
    """Lazily read application logs: the streaming twin of :func:`read_app_log`.

    Files are parsed in chunks of about ``chunk_bytes`` while the query runs (a JSON-lines file
    read with the default takes ``APP_JSON_CHUNK_BYTES``: each chunk costs a fixed set of polars
    calls); rows come in file order, not sorted by time. Rejected lines are counted into the report reachable
    with ``loglib.read_report(lazy_frame)`` once collected.

    Examples
    --------
    >>> import loglib as ll
    >>> lf = ll.scan_app_log("logs/api*.log", tz="UTC")  # doctest: +SKIP
    >>> lf.filter(pl.col("error_class").is_not_null()).collect()  # doctest: +SKIP
    """
    opts = _options(format, pattern, datefmt, tz, service, rules, chunk_bytes)
    sources = expand_sources(paths)
    report = ReadReport("read_app_log")
    report.notes.extend(getattr(sources, "notes", ()))  # the same file reached twice

    return scan_batches(
        lambda rep: _batches(sources, opts, rep), APP_EVENTS, report, "loglib.scan_app_log", sources
    )


def no_timestamp_note(missing: int, events: int, format: str | None) -> str:
    """The read report's note when ``missing`` of ``events`` events have no time in the log.

    >>> no_timestamp_note(2, 5, "uvicorn")[:52]
    '2 of 5 event(s) carry no timestamp in the log (forma'
    """
    return (
        f"{missing:,} of {events:,} event(s) carry no timestamp in the log (format {format}); "
        "their ts is null: loglib never invents a time. Read the log with its container timestamps "
        "(docker/kubectl logs --timestamps) or join on request_id to place them."
    )


def read_app_log(
    paths: PathsLike,
    *,
    format: str | Sequence[str] | None = None,
    pattern: str | None = None,
    datefmt: str | None = None,
    tz: str | Mapping[str, str] | None = None,
    service: str | Mapping[str, str] | None = None,
    rules: Sequence[ErrorRule] | None = None,
    strict: bool = False,
    raise_if_empty: bool = True,
) -> pl.DataFrame:
    """Read application logs into the canonical ``app_events`` frame, one row per event.

    A traceback, Java stack trace, Node stack, Laravel ``[stacktrace]`` block or libpq's
    multi-line message is part of the event above it, not rows of its own.

    Parameters
    ----------
    paths
        A file, a glob (``"logs/api*.log"``), a directory, a list of those, or the log itself
        as ``bytes``. Rotated sets are read oldest first; ``.gz``/``.bz2``/``.xz`` are
        decompressed on the fly. Several services' logs can be read at once (see ``service``).
    format
        A name from ``loglib.APP_LOG_FORMATS`` (``"python"``, ``"loguru"``, ``"structlog"``,
        ``"uvicorn"``, ``"gunicorn"``, ``"json"``, ``"logfmt"``, ``"monolog"``, ``"rails"``,
        ``"spring"``, ``"java"`` (logback/log4j ``[%thread]`` layouts), ``"go"``, ``"zap_console"``,
        ``"bare"``, ``"generic"``; aliases such as ``"pino"``, ``"laravel"``, ``"logrus"``, ``"logback"`` work) or a list of them for mixed streams.
        Sniffed per file when left out; lines of a forced format that do not match are rejected.
    pattern, datefmt
        A Python ``logging`` format string, verbatim (``'%(asctime)s %(levelname)s %(name)s:
        %(message)s'``), and its ``datefmt``: compiled into the parser for this read.
    tz
        The zone naive timestamps were written in (IANA name), or ``{service: zone}``
        (``"*"`` for the rest). Needed for naive times, as with PostgreSQL: a clear
        :class:`~loglib.errors.TimezoneError` says so. Aware times (``Z``, ``+02:00``,
        epochs) are converted to UTC and ignore it.
    service
        A service name for every row, or ``{file glob: name}``. Left out, the record's own
        ``service`` field is used, else the file's base name (``api.log.1.gz`` → ``api``).
    rules
        An error-rules table (``[*loglib.error_rules(), loglib.ErrorRule(...)]``) used for
        ``error_class`` instead of the one in force.
    strict
        Raise :class:`~loglib.errors.ParseError` at the first line that belongs to no event.
    raise_if_empty
        Raise :class:`~loglib.errors.NoDataError` when the files hold no event at all.

    Returns
    -------
    polars.DataFrame
        Columns of ``loglib.schema.APP_EVENTS``, sorted by ``ts`` (events without a time
        last, in file order). Formats without timestamps (``uvicorn``, ``bare``, logging's
        ``basicConfig``) keep a null ``ts``: a :class:`NoTimestampWarning` and a report note
        say how many; container timestamps (``docker logs -t``, CRI files) are used when present.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00,120 ERROR app.db: checkout failed\\n"
    ...        b"Traceback (most recent call last):\\n"
    ...        b'  File "app.py", line 9, in handler\\n'
    ...        b"    conn = engine.connect()\\n"
    ...        b"sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, "
    ...        b"connection timed out, timeout 30.00\\n"
    ...        b"2024-03-01 10:00:01,000 INFO app.web: GET /health 200\\n")
    >>> df = ll.read_app_log(log, tz="UTC")
    >>> df.select("ts", "level", "exc_type", "error_class")
    shape: (2, 4)
    ┌─────────────────────────────┬───────┬─────────────────────────────┬──────────────┐
    │ ts                          ┆ level ┆ exc_type                    ┆ error_class  │
    │ ---                         ┆ ---   ┆ ---                         ┆ ---          │
    │ datetime[μs, UTC]           ┆ cat   ┆ cat                         ┆ cat          │
    ╞═════════════════════════════╪═══════╪═════════════════════════════╪══════════════╡
    │ 2024-03-01 10:00:00.120 UTC ┆ error ┆ sqlalchemy.exc.TimeoutError ┆ pool_timeout │
    │ 2024-03-01 10:00:01 UTC     ┆ info  ┆ null                        ┆ null         │
    └─────────────────────────────┴───────┴─────────────────────────────┴──────────────┘

    .. versionchanged:: 0.1
       The repeated text columns (``level``, ``logger``, ``exc_type``,
       ``error_class``, ``file``…) are ``Categorical``
       (``loglib.schema.EVENT_TEXT``): compare them as text; ``.cast(pl.String)`` before
       ``.str`` functions.
    """
    opts = _options(format, pattern, datefmt, tz, service, rules, APP_CHUNK_BYTES)
    sources = expand_sources(paths)
    report = ReadReport("read_app_log")
    report.notes.extend(getattr(sources, "notes", ()))  # the same file reached twice
    frame = collect_batches(
        _batches(sources, opts, report), APP_EVENTS, sources, report,
        what="application log events", raise_if_empty=raise_if_empty,
    )  # fmt: skip
    missing = frame["ts"].null_count()
    if missing:
        note = no_timestamp_note(missing, frame.height, report.format)
        report.notes.append(note)
        warnings.warn(note, NoTimestampWarning, stacklevel=2)
    return finish_read(frame, report, strict=strict)
