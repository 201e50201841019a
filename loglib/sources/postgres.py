"""PostgreSQL server logs (stderr with any log_line_prefix, csvlog, jsonlog, syslog, RDS,
Cloud SQL, CloudNativePG) into the canonical ``pg_events`` frame.

Every format is turned into the same intermediate columns by a small per-format parser; one
function (:func:`_finish`) then resolves times to UTC, names the event and conforms the schema.
Lines that are not entries go to the one rejects mechanism (:mod:`loglib.core.rejects`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects, finish_read, record_damage
from loglib.core.schema import PG_EVENTS, UTC_TS, conform
from loglib.core.timeparse import check_tz, localize, parse_epoch, parse_iso, parse_naive
from loglib.errors import FormatError
from loglib.formats.pg_catalogs import Language, language_of, languages
from loglib.formats.pg_messages import (
    AUTHORIZED_FIELDS,
    DISCONNECTION_FIELDS,
    PG_EVENT_RULES,
    RECEIVED_FIELDS,
    with_event,
)
from loglib.formats.pg_prefix import DETECTION_PREFIXES, SECONDARY, SEVERITIES, CompiledPrefix, compile_prefix
from loglib.sources._lazy import collect_batches, scan_batches
from loglib.sources.files import (
    DEFAULT_CHUNK_BYTES,
    SCAN_CHUNK_BYTES,
    LineChunk,
    PathsLike,
    Source,
    expand_sources,
    iter_line_chunks,
    map_ordered,
    prefetch,
)

FORMATS = ("stderr", "csvlog", "jsonlog", "syslog", "rds", "cloudsql", "cnpg")
RDS_PREFIX = "%t:%r:%u@%d:[%p]:"
#: textPayload prefixes of Cloud SQL for PostgreSQL (the service sets log_line_prefix itself)
CLOUDSQL_PREFIXES = (
    "[%p]: [%l-1] db=%d,user=%u,host=%h ",
    "[%p]: [%l-1] db=%d,user=%u ",
    "[%p]: [%l-1] ",
    "",
)
#: prefixes seen after the syslog header's ``[n-m]`` part
SYSLOG_PREFIXES = (
    "db=%d,user=%u,app=%a,client=%h ",
    "user=%u,db=%d,app=%a,client=%h ",
    "user=%u,db=%d,app=%a ",
    "user=%u,db=%d ",
    "db=%d,user=%u ",
    "%q%u@%d ",
    "",
)

_UNKNOWN = ("", "[unknown]", "unknown")
_SYSLOG_BSD = (
    r"^(?P<sys_ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<ident>[^\s\[:]+)\[(?P<pid>\d+)\]: "
    r"\[(?P<seq>\d+)-(?P<part>\d+)\] ?(?P<rest>.*)$"
)
_SYSLOG_ISO = (
    r"^(?P<sys_iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (?P<host>\S+) "
    r"(?P<ident>[^\s\[:]+)\[(?P<pid>\d+)\]: \[(?P<seq>\d+)-(?P<part>\d+)\] ?(?P<rest>.*)$"
)
_CSV_COLUMNS = (
    "log_time", "user_name", "database_name", "process_id", "connection_from", "session_id",
    "session_line_num", "command_tag", "session_start_time", "virtual_transaction_id", "transaction_id",
    "error_severity", "sql_state_code", "message", "detail", "hint", "internal_query", "internal_query_pos",
    "context", "query", "query_pos", "location", "application_name", "backend_type", "leader_pid", "query_id",
)  # fmt: skip
_CSV_WIDTHS = (23, 24, 25, 26)  # PostgreSQL <=12, 13, 14–17 (25: some tools drop leader_pid)
_RAW_STRING_COLUMNS = (
    "pid", "severity", "sqlstate", "user", "database", "application", "client_host", "client_port",
    "remote", "session_id", "message", "detail", "host", "ts_text", "zone",
)  # fmt: skip


@dataclass
class _Options:
    format: str | None
    prefix: str | None
    tz: str | None
    year: int | None
    chunk_bytes: int


# --------------------------------------------------------------------------------------------
# format detection


def _nonblank_lines(head: bytes, n: int = 400) -> list[str]:
    text = head.decode("utf-8", "replace")
    # CR-only endings are line endings too (the reader splits them so): a prefix is judged per line
    lines = re.split(r"\r\n|\n|\r", text)
    if len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut in the middle
    return [ln.rstrip("\r") for ln in lines if ln.strip()][:n]


def _best_prefix(
    lines: list[str],
    candidates: tuple[str, ...],
    *,
    strip_tab: bool = True,
    severities: tuple[str, ...] | None = None,
) -> tuple[str, float]:
    """The candidate prefix matching most lines (ties: the earlier, more specific one)."""
    sample = pl.Series(
        [ln for ln in lines if not (strip_tab and ln.startswith(("\t", " ")))], dtype=pl.String
    )
    # known noise (memory-context dumps, archive_command output) says nothing about the prefix
    sample = sample.filter(~sample.str.contains(_MEMORY_DUMP) & ~sample.str.contains(_COMMAND_OUTPUT))
    if sample.len() == 0:
        return candidates[0], 0.0
    scored = []
    for order, cand in enumerate(candidates):
        share = sample.str.contains(compile_prefix(cand, severities).regex).mean() or 0.0
        literal = len(re.sub(r"%-?\d*.", "", cand))
        required = compile_prefix(cand.replace("%q", ""), severities).regex
        if share and "%q" in cand and not sample.str.contains(required).any():
            # the optional part never shows: it is specific only in name ('%n [%p] %q…' on a '%n [%p] ' log)
            literal = len(re.sub(r"%-?\d*.", "", cand.split("%q", 1)[0]))
        # most lines matched first; among equals, the most specific prefix (most literal text)
        scored.append((round(share, 3), literal, -order, cand, share))
    best = max(scored)
    return best[3], best[4]


def _is_cnpg(line: str) -> bool:
    """A CloudNativePG pod log record: a PostgreSQL ``record``, a ``logger``-named instance-manager
    record (``postgres``, ``instance-manager``, ``wal-archive``…) or one naming its ``logging_pod``."""
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    return (
        isinstance(obj.get("record"), dict)
        or obj.get("logger") in ("postgres", "instance-manager")
        or ("logging_pod" in obj and "msg" in obj)
    )


def detect_format(source: Source) -> tuple[str, str | None]:
    """Guess ``(format, prefix)`` of one source from its first lines.

    Raises :class:`~loglib.errors.FormatError` describing the first line when nothing fits.
    """
    lines = _nonblank_lines(source.head())
    if not lines:
        return "stderr", None
    first = lines[0].lstrip("\ufeff")
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except ValueError:
            obj = {}
        if isinstance(obj, dict):
            if "textPayload" in obj or "cloudsql" in str(obj.get("logName", "")):
                return "cloudsql", None
            # a pod's log usually opens with the operator's and instance manager's own records
            if any(_is_cnpg(ln) for ln in lines if ln.startswith("{")):
                return "cnpg", None
            if "error_severity" in obj or ("timestamp" in obj and "pid" in obj):
                return "jsonlog", None
    if re.match(r'^"?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Za-z0-9+\-:/_]+"?,', first):
        return "csvlog", None
    sample = pl.Series(lines, dtype=pl.String)
    if (sample.str.contains(_SYSLOG_BSD) | sample.str.contains(_SYSLOG_ISO)).mean() >= 0.5:
        return "syslog", None
    prefix, share = _best_prefix(lines, DETECTION_PREFIXES)
    if share < 0.3 and (lang := language_of(lines)) is not None:  # a localised server (lc_messages)
        prefix, share = _best_prefix(lines, DETECTION_PREFIXES, severities=lang.severity_words())
    if share < 0.3:
        msg = (
            f"{source.name}: no known PostgreSQL log format fits (best stderr prefix {prefix!r} matches "
            f"{share:.0%} of the first lines). First line: {first[:200]!r}. Pass format= "
            f"({', '.join(FORMATS)}) and, for stderr, prefix= with the server's log_line_prefix verbatim."
        )
        raise FormatError(msg)
    return ("rds" if prefix == RDS_PREFIX else "stderr"), prefix


# --------------------------------------------------------------------------------------------
# line-based parsing (stderr, rds, syslog, cloudsql): prefix regex, then folding


def _entries_from_matched(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold matched lines, secondary lines and continuations into entries.

    ``frame`` has ``line`` (number), ``text``, ``severity`` (null when the prefix did not
    match), ``message``, ``is_cont`` (a continuation of the line before) and the prefix's
    groups. Returns (entries, rejected line rows).
    """
    matched = pl.col("severity").is_not_null()
    secondary = pl.col("severity").is_in(list(SECONDARY))
    if "noise" in frame.columns:
        frame = frame.with_columns(is_cont=pl.col("is_cont") | _untabbed_sql(frame))
    frame = frame.with_columns(
        primary=matched & ~secondary,
        section=matched.cum_sum(),
    ).with_columns(entry=pl.col("primary").cum_sum())
    bad = (~matched & ~pl.col("is_cont")) | (pl.col("entry") == 0) & ~pl.col("primary")
    rejected = frame.filter(bad)
    frame = frame.filter(~bad)
    helpers = ["primary", "section", "entry", "is_cont"]
    primary = pl.col("primary")
    # every entry is its primary line; continuation and DETAIL/HINT/... lines only add text to it
    entries = frame.filter(primary)
    if entries.height == frame.height:
        return entries.drop(helpers), rejected
    # the lines of entries that have several (a primary followed by a line that is not a new entry)
    multi = frame.select(~primary | ~primary.shift(-1).fill_null(True)).to_series()
    rows = frame.filter(multi)
    cont_text = pl.col("text").str.strip_prefix("\t").str.replace("^#011", "")
    sections = (
        rows.select(
            "section",
            "entry",
            "primary",
            "severity",
            part=pl.when(pl.col("is_cont")).then(cont_text).otherwise(pl.col("message")),
        )
        .group_by("section", maintain_order=True)
        .agg(
            pl.col("entry").first(),
            pl.col("primary").first(),
            pl.col("severity").first(),
            pl.col("part").str.join("\n").alias("section_text"),
        )
    )
    first_entry = int(entries["entry"][0])
    message = sections.filter(pl.col("primary"))
    detail = (
        sections.filter(~pl.col("primary"))
        .group_by("entry", maintain_order=True)
        .agg(pl.concat_str("severity", pl.lit(": "), "section_text").str.join("\n").alias("_detail"))
    )
    # entries are numbered first_entry, first_entry + 1, ... in row order: write the texts in place
    at = (message["entry"] - first_entry).cast(pl.UInt32)
    entries = entries.with_columns(entries["message"].scatter(at, message["section_text"]))
    if detail.height:
        at = (detail["entry"] - first_entry).cast(pl.UInt32)
        new = _nulls("detail", entries.height).scatter(at, detail["_detail"])
        if "detail" in entries.columns:
            new = entries["detail"].fill_null(new)
        entries = entries.with_columns(new.alias("detail"))
    return entries.drop(helpers), rejected


# lines that other code writes into the server's log, as the server's stderr: known noise
_MEMORY_DUMP = (
    r"^\s*(?:Grand total: \d+ bytes in \d+ blocks; |\d+ more child contexts containing \d+ total in \d+ blocks; "
    r"|\S[^\n]*?: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); \d+ used)"
)
_COMMAND_OUTPUT = (
    r"^(?:cp|mv|ln|cat|rsync|scp|ssh|gzip|gunzip|zstd|lz4|xz|test|sh|bash|dash|/bin/sh|/usr/bin/[\w.\-]+"
    r"|pgbackrest|wal-g|barman-wal-archive|barman-wal-restore|barman-cloud-wal-archive)(?:: line \d+|: \d+)?: "
)
#: reject reasons of that noise (loglib.core.rejects.NOISE_REASONS names them)
MEMORY_DUMP_REASON = "PostgreSQL memory context dump (printed on out of memory), not a log entry"
COMMAND_OUTPUT_REASON = "archive_command/restore_command output, not a server log entry"
# entries whose message or section is SQL, which copy-pasted logs continue on lines without a tab
_SQL_SECTIONS = ("STATEMENT", "QUERY", "CONTEXT", "DETAIL", "HINT")
_SQL_LOG = r"^(?:duration: [\d.]+ ms  )?(?:statement|execute [^:]*|parse [^:]*|bind [^:]*): "


def _noise_series(text: pl.Series, severity: pl.Series) -> pl.Series:
    """``memory`` / ``command`` for lines the prefix did not match that are known noise, else null."""
    # every memory-dump line holds "blocks; " and no command line starts with a tab: the regexes
    # run only on the few lines that can match them
    maybe = severity.is_null() & (
        text.str.contains("blocks; ", literal=True) | ~text.str.starts_with("\t")
    ).fill_null(False)
    out = _nulls("noise", text.len())
    idx = maybe.arg_true()
    if idx.len() == 0:
        return out
    sub = text.gather(idx)
    kind = pl.select(
        pl.when(sub.str.contains(_MEMORY_DUMP))
        .then(pl.lit("memory"))
        .when(sub.str.contains(_COMMAND_OUTPUT))
        .then(pl.lit("command"))
    ).to_series()
    return out.scatter(idx, kind)


def _untabbed_sql(frame: pl.DataFrame) -> pl.Series:
    """Unmatched lines that continue SQL with no leading tab (downloaded or copy-pasted logs): the
    line follows a STATEMENT/QUERY/CONTEXT/DETAIL/HINT section or a ``statement:`` entry, or
    another such line, and is not known noise."""
    sev = pl.col("severity")
    sql = sev.is_in(list(_SQL_SECTIONS)) | ((sev == "LOG") & pl.col("message").str.contains(_SQL_LOG))
    ctx = (
        pl.when(sev.is_not_null())
        .then(sql)
        .when(pl.col("noise").is_not_null())
        .then(pl.lit(False))
        .forward_fill()
        .fill_null(False)
    )
    return frame.select(sev.is_null() & pl.col("noise").is_null() & ctx).to_series()


def _reject_reasons(rows: pl.DataFrame, prefix: str | None, fmt: str) -> pl.DataFrame:
    """Reason text (and the noise flag) for rejected line rows."""
    text = pl.col("text")
    pg_ctl_noise = text.str.contains(
        r"^(?:waiting for server to (?:start|shut down)|server (?:started|stopped)|done$|\.+ ?done$|pg_ctl: "
        r"|Examine the log output\.$|stopped waiting$)"
    )
    noise = pl.col("noise") if "noise" in rows.columns else pl.lit(None, dtype=pl.String)
    reason = (
        pl.when(text.str.strip_chars() == "")
        .then(pl.lit("blank line"))
        .when(pg_ctl_noise)
        .then(pl.lit("pg_ctl output, not a server log entry"))
        .when(noise == "memory")
        .then(pl.lit(MEMORY_DUMP_REASON))
        .when(noise == "command")
        .then(pl.lit(COMMAND_OUTPUT_REASON))
        .when(pl.col("is_cont"))
        .then(pl.lit("continuation line before the first entry of the file"))
        .when(pl.col("severity").is_in(list(SECONDARY)))
        .then(pl.lit("DETAIL/HINT/CONTEXT/STATEMENT line before the first entry of the file"))
        .otherwise(pl.lit(f"does not match {fmt} log_line_prefix {prefix!r}"))
    )
    return rows.select("line", "text", reason.alias("reason"))


def _parse_prefixed(
    chunk: pl.DataFrame, compiled: CompiledPrefix, fmt: str, text_col: str = "text"
) -> pl.DataFrame:
    """Apply the compiled prefix to ``text_col``: adds the groups, ``severity`` and ``message``.

    The fast regex captures only the line's head; the message is the rest of the line. Lines
    it misses (a free-text field holding its own delimiter) are retried with the exact regex.
    """
    text = chunk.get_column(text_col)
    groups = text.str.extract_groups(compiled.fast_regex).struct.unnest()
    head = groups.get_column("_head")
    groups = groups.drop("_head").with_columns(message=text.str.slice(head.str.len_chars()))
    missed = (head.is_null() & text.is_not_null() & ~_continuation_series(text)).fill_null(False)
    if missed.any():
        idx = missed.arg_true()
        exact = text.gather(idx).str.extract_groups(compiled.regex).struct.unnest()
        groups = groups.with_columns(
            [
                groups.get_column(c).scatter(idx, exact.get_column(c))
                for c in exact.columns
                if c in groups.columns
            ]
        )
    keep = [c for c in groups.columns if c not in chunk.columns]
    return chunk.hstack(groups.select(keep))


def _continuation_series(text: pl.Series) -> pl.Series:
    return pl.select(_continuation(pl.lit(text))).to_series()


def _continuation(text: pl.Expr) -> pl.Expr:
    """Lines that continue the entry above: PostgreSQL indents them with a tab (some tools turn
    it into spaces); blank lines inside multi-line statements count too."""
    return text.str.starts_with("\t") | text.str.starts_with(" ") | (text.str.len_bytes() == 0)


@dataclass
class _ChunkWork:
    """One chunk parsed in a worker: entries whose lines are all inside it are finished; the
    lines before its first entry (``lead``) and its last entry (``tail``) wait for the
    neighbouring chunks, because an entry's continuation lines may cross the boundary."""

    chunk: LineChunk
    lead: pl.DataFrame
    tail: pl.DataFrame | None
    finished: pl.DataFrame | None
    rejected: pl.DataFrame | None
    core_lines: int


class _LineParser:
    """Parses one line-based source: two chunks at a time in worker threads (polars releases
    the GIL), then stitches the entries that cross chunk boundaries, in file order."""

    def __init__(
        self, source: Source, fmt: str, prefix: str, opts: _Options, lang: Language | None = None
    ) -> None:
        self.source = source
        self.fmt = fmt
        self.prefix = prefix
        self.lang = lang
        self.compiled = compile_prefix(prefix, lang.severity_words() if lang else None)
        self.opts = opts

    def _english(self, frame: pl.DataFrame) -> pl.DataFrame:
        """A localised server's severities in English (``FEHLER`` -> ``ERROR``), so folding works."""
        if self.lang is None or not self.lang.severities:
            return frame
        return frame.with_columns(pl.col("severity").replace(self.lang.severities).str.strip_chars())

    def _english_messages(self, entries: pl.DataFrame) -> pl.DataFrame:
        return _english_messages(entries, self.lang)

    def parse_chunk(self, frame: pl.DataFrame) -> pl.DataFrame:
        frame = self._english(_parse_prefixed(frame, self.compiled, self.fmt))
        frame = frame.with_columns(_noise_series(frame["text"], frame["severity"]))
        return frame.with_columns(
            is_cont=pl.col("severity").is_null() & _continuation(pl.col("text")) & pl.col("noise").is_null()
        )

    def _work(self, chunk: LineChunk) -> _ChunkWork:
        n = chunk.lines.len()
        frame = pl.DataFrame(
            {
                "line": pl.int_range(chunk.first_line, chunk.first_line + n, eager=True, dtype=pl.Int64),
                "text": chunk.lines,
            }
        )
        parsed = self.parse_chunk(frame)
        starts = parsed.select(
            (pl.col("severity").is_not_null() & ~pl.col("severity").is_in(list(SECONDARY))).arg_true()
        ).to_series()
        if starts.len() == 0:  # no entry starts here: all of it continues the open one
            return _ChunkWork(chunk, parsed, None, None, None, 0)
        first, last = int(starts[0]), int(starts[-1])
        core = parsed.slice(first, last - first)
        finished, rejected = self._fold_finish(core)
        return _ChunkWork(chunk, parsed.slice(0, first), parsed.slice(last), finished, rejected, core.height)

    def _fold_finish(self, rows: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        entries, rejected = _entries_from_matched(rows)
        finished = _finish(self.to_raw(entries), self.opts, self.source.name) if entries.height else None
        return finished, rejected

    def _account(self, report: ReadReport, rows: int, rejected: pl.DataFrame) -> None:
        report.lines_parsed += rows - rejected.height
        if rejected.height:
            reasons = _reject_reasons(rejected, self.prefix, self.fmt)
            add_rejects(
                report, self.source.name, reasons["line"].to_list(), reasons["reason"].to_list(),
                reasons["text"].to_list(),
            )  # fmt: skip

    def run(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        chunks = prefetch(iter_line_chunks(self.source, chunk_bytes=self.opts.chunk_bytes))
        open_entry: pl.DataFrame | None = None  # the last entry seen, maybe still growing
        for work in map_ordered(self._work, chunks):
            chunk = work.chunk
            report.lines_read += chunk.lines.len()
            if chunk.fallback_decoded:
                report.notes.append(
                    f"{self.source.name}: {chunk.fallback_decoded} line(s) were not UTF-8 and were read as Latin-1"
                )
            joined = work.lead if open_entry is None else pl.concat([open_entry, work.lead], rechunk=False)
            if work.tail is None:
                open_entry = joined
            else:
                if joined.height:
                    finished, rejected = self._fold_finish(joined)
                    self._account(report, joined.height, rejected)
                    if finished is not None:
                        yield finished
                self._account(report, work.core_lines, work.rejected)
                if work.finished is not None:
                    yield work.finished
                open_entry = work.tail
            if chunk.damage:
                record_damage(
                    report, self.source.name, chunk.first_line + chunk.lines.len() - 1, chunk.damage
                )
        if open_entry is not None and open_entry.height:
            finished, rejected = self._fold_finish(open_entry)
            self._account(report, open_entry.height, rejected)
            if finished is not None:
                yield finished

    def to_raw(self, entries: pl.DataFrame) -> pl.DataFrame:
        """Map prefix groups onto the intermediate columns."""
        cols = set(entries.columns)
        exprs: list[pl.Expr] = []
        for name, width in (("ts_m", 23), ("ts_t", 19)):
            if name in cols:
                zone = pl.col(name).str.slice(width + 1)
                exprs += [
                    pl.col(name).str.slice(0, width).alias("ts_text"),
                    pl.when(zone != "").then(zone).alias("zone"),
                ]
                break
        if "ts_n" in cols and "ts_text" not in cols:
            exprs.append(pl.col("ts_n").cast(pl.Float64, strict=False).alias("epoch"))
        out = entries.with_columns(exprs).with_columns(pl.lit(self.source.name).alias("file"))
        return self._english_messages(out)


class _SyslogParser(_LineParser):
    """syslog: ``Mon dd hh:mm:ss host postgres[pid]: [seq-part] <prefix><SEVERITY>:  message``."""

    def parse_chunk(self, frame: pl.DataFrame) -> pl.DataFrame:
        bsd = frame["text"].str.extract_groups(_SYSLOG_BSD).struct.unnest()
        iso = frame["text"].str.extract_groups(_SYSLOG_ISO).struct.unnest()
        hdr = bsd.select(
            pl.col("sys_ts"),
            iso["sys_iso"],
            pl.coalesce(bsd["host"], iso["host"]).alias("host"),
            pl.coalesce(bsd["pid"], iso["pid"]).alias("pid"),
            pl.coalesce(bsd["part"], iso["part"]).cast(pl.Int64).alias("part"),
            pl.coalesce(bsd["rest"], iso["rest"]).alias("rest"),
        )
        frame = frame.hstack(hdr)
        frame = _parse_prefixed(frame, self.compiled, self.fmt, text_col="rest")
        frame = frame.with_columns(
            # the syslog header's pid wins over a %p in the prefix
            pl.col("pid"),
            is_cont=pl.col("severity").is_null() & (pl.col("part") > 1),
            # a continuation's text is what follows the header; '#011' is syslog's escaped tab
            text=pl.when(pl.col("rest").is_not_null()).then(pl.col("rest")).otherwise(pl.col("text")),
        )
        return frame

    def to_raw(self, entries: pl.DataFrame) -> pl.DataFrame:
        entries = entries.with_columns(iso=pl.col("sys_iso"))
        if self.compiled.has_time:
            # PostgreSQL's own time in the message (%m: ms, with its year) beats the header's seconds
            own = super().to_raw(entries)
            stamped = pl.coalesce(
                pl.col("ts_text") if "ts_text" in own.columns else pl.lit(None, dtype=pl.String),
                pl.col("epoch").cast(pl.String) if "epoch" in own.columns else pl.lit(None, dtype=pl.String),
            )
            if own.select(stamped.is_not_null().all()).item():
                return own
        if entries["sys_ts"].is_not_null().any() and self.opts.year is None:
            msg = (
                f"{self.source.name}: BSD syslog timestamps have no year (e.g. {entries['sys_ts'].drop_nulls()[0]!r}); "
                "pass year= (e.g. year=2024). loglib will not guess it."
            )
            raise FormatError(msg)
        return entries.with_columns(
            ts_text=pl.concat_str(pl.lit(str(self.opts.year)), pl.lit(" "), pl.col("sys_ts")),
            ts_fmt=pl.lit("%Y %b %e %H:%M:%S"),
            file=pl.lit(self.source.name),
        )


class _CloudSqlParser(_LineParser):
    """Cloud Logging JSON export of Cloud SQL for PostgreSQL: the entry is in ``textPayload``."""

    def parse_chunk(self, frame: pl.DataFrame) -> pl.DataFrame:
        texts = frame["text"].to_list()
        payload, stamp, host = [], [], []
        for t in texts:
            try:
                obj = json.loads(t)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                payload.append(None)
                stamp.append(None)
                host.append(None)
                continue
            payload.append(obj.get("textPayload"))
            stamp.append(obj.get("timestamp"))
            labels = (obj.get("resource") or {}).get("labels") or {}
            host.append(labels.get("database_id"))
        frame = frame.with_columns(
            payload=pl.Series(payload, dtype=pl.String),
            iso=pl.Series(stamp, dtype=pl.String),
            host=pl.Series(host, dtype=pl.String),
        )
        frame = _parse_prefixed(frame, self.compiled, self.fmt, text_col="payload")
        return frame.with_columns(is_cont=pl.col("severity").is_null() & _continuation(pl.col("payload")))

    def to_raw(self, entries: pl.DataFrame) -> pl.DataFrame:
        return entries.with_columns(file=pl.lit(self.source.name))


# --------------------------------------------------------------------------------------------
# record-based parsing (csvlog, jsonlog, cnpg)


def _records_to_frame(records: dict[str, list], name: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        {k: pl.Series(v, dtype=pl.Int64 if k == "line" else pl.String) for k, v in records.items()}
    )
    return frame.with_columns(file=pl.lit(name))


def _new_records() -> dict[str, list]:
    return {k: [] for k in ("line", "ts_text", "zone", "iso", *_RAW_STRING_COLUMNS[:-3])}


def _split_pg_time(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    parts = value.rsplit(" ", 1)
    if len(parts) == 2 and not parts[1][:1].isdigit():
        return parts[0], parts[1]
    return value, None


def _append_record(rec: dict[str, list], line: int, get) -> None:
    ts_text, zone = _split_pg_time(get("log_time"))
    rec["line"].append(line)
    rec["ts_text"].append(ts_text)
    rec["zone"].append(zone)
    rec["iso"].append(None)
    rec["pid"].append(get("process_id"))
    rec["severity"].append(get("error_severity"))
    rec["sqlstate"].append(get("sql_state_code"))
    rec["user"].append(get("user_name"))
    rec["database"].append(get("database_name"))
    rec["application"].append(get("application_name"))
    rec["client_host"].append(None)
    rec["client_port"].append(None)
    rec["remote"].append(get("connection_from"))
    rec["session_id"].append(get("session_id"))
    rec["message"].append(get("message"))
    details = [
        f"{label}: {get(key)}"
        for label, key in (
            ("DETAIL", "detail"),
            ("HINT", "hint"),
            ("QUERY", "internal_query"),
            ("CONTEXT", "context"),
            ("STATEMENT", "query"),
        )
        if get(key)
    ]
    rec["detail"].append("\n".join(details) or None)


class _CsvParser:
    """csvlog: one CSV record per entry; quoted fields may span lines."""

    def __init__(self, source: Source, opts: _Options) -> None:
        self.source = source
        self.opts = opts
        self.language = _RecordLanguage()

    def run(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        state = {"line": 0, "damage": None}

        def physical_lines() -> Iterator[str]:
            for chunk in iter_line_chunks(self.source, chunk_bytes=self.opts.chunk_bytes):
                for text in chunk.lines:
                    state["line"] += 1
                    yield text + "\n"
                if chunk.damage:
                    state["damage"] = chunk.damage

        rec = _new_records()
        reader = csv.reader(physical_lines())
        name = self.source.name
        bad_lines, bad_reasons, bad_texts = [], [], []
        while True:
            start = state["line"] + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row, reason = None, f"malformed CSV record: {exc}"
            else:
                reason = None
                if len(row) not in _CSV_WIDTHS:
                    reason = (
                        "blank line" if not row else f"csvlog record has {len(row)} fields, expected 23 to 26"
                    )
            span = state["line"] - start + 1
            report.lines_read += span
            if reason is not None:
                # every physical line of a bad record is rejected, so read = parsed + rejected holds
                for offset in range(span):
                    bad_lines.append(start + offset)
                    bad_reasons.append(reason if offset == 0 else f"{reason} (continued)")
                    bad_texts.append(",".join(row or []) if offset == 0 else "")
                continue
            report.lines_parsed += span
            values = dict(zip(_CSV_COLUMNS, row, strict=False))
            _append_record(rec, start, lambda k, v=values: v.get(k) or None)
            if len(rec["line"]) >= 200_000:
                yield _finish(self.language.english(_records_to_frame(rec, name)), self.opts, name)
                rec = _new_records()
        if bad_lines:
            add_rejects(report, name, bad_lines, bad_reasons, bad_texts)
        if state["damage"]:
            record_damage(report, name, state["line"], state["damage"])
        if rec["line"]:
            yield _finish(self.language.english(_records_to_frame(rec, name)), self.opts, name)


_JSONLOG_KEYS = {
    "log_time": "timestamp", "process_id": "pid", "error_severity": "error_severity",
    "sql_state_code": "state_code", "user_name": "user", "database_name": "dbname",
    "application_name": "application_name", "session_id": "session_id", "message": "message",
    "detail": "detail", "hint": "hint", "internal_query": "internal_query", "context": "context",
    "query": "statement",
}  # fmt: skip


class _JsonParser:
    """jsonlog (PostgreSQL 15+) and CloudNativePG: one JSON object per line."""

    def __init__(self, source: Source, fmt: str, opts: _Options) -> None:
        self.source = source
        self.fmt = fmt
        self.opts = opts
        self._raw_re: re.Pattern[str] | None = None
        self.language = _RecordLanguage()

    def _raw_regex(self, seen: str) -> re.Pattern[str]:
        """The prefix of the raw PostgreSQL lines that CloudNativePG passes on in ``msg`` (what the
        server wrote to stderr before its logging collector started), detected from the file's head."""
        if self._raw_re is None:
            msgs = []
            for ln in _nonblank_lines(self.source.head()):
                try:
                    obj = json.loads(ln)
                except ValueError:
                    continue
                if isinstance(obj, dict) and _raw_postgres(obj):
                    msgs.append(obj["msg"])
            prefix, _ = _best_prefix(msgs or [seen], DETECTION_PREFIXES)
            self._raw_re = re.compile(compile_prefix(prefix).regex)
        return self._raw_re

    def _raw_record(self, obj: dict) -> tuple[str | None, dict | None]:
        """A ``"logger":"postgres"`` record whose ``msg`` is a raw PostgreSQL line, as csvlog fields."""
        m = self._raw_regex(obj["msg"]).match(obj["msg"])
        if m is None:
            return "CloudNativePG postgres line that is not a PostgreSQL log entry", None
        g = m.groupdict()
        stamp = g.get("ts_m") or g.get("ts_t")
        if stamp is None and g.get("ts_n"):
            stamp = _epoch_text(g["ts_n"])
        fields = {
            "log_time": stamp, "process_id": g.get("pid"), "error_severity": g.get("severity"),
            "message": g.get("message"), "user_name": g.get("user"), "database_name": g.get("database"),
            "application_name": g.get("application"), "session_id": g.get("session_id"),
            "sql_state_code": g.get("sqlstate"), "connection_from": g.get("remote") or g.get("client_host"),
        }  # fmt: skip
        return None, {k: v for k, v in fields.items() if v not in (None, "")}

    def run(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        name = self.source.name
        for chunk in iter_line_chunks(self.source, chunk_bytes=self.opts.chunk_bytes):
            rec = _new_records()
            hosts: list[str | None] = []
            bad_lines, bad_reasons, bad_texts = [], [], []
            last_raw: tuple[int, str | None, str | None] | None = None  # (row, pid, time) of a raw entry
            for offset, text in enumerate(chunk.lines):
                line = chunk.first_line + offset
                report.lines_read += 1
                reason, obj = self._decode(text)
                if not reason and self.fmt == "cnpg" and not isinstance(obj.get("record"), dict):
                    reason, record = self._raw_record(obj)
                    if record is not None and record.get("error_severity") in SECONDARY:
                        # a raw HINT/DETAIL line belongs to the raw entry just before it
                        key = (record.get("process_id"), record.get("log_time"))
                        if last_raw is None or last_raw[1:] != key:
                            reason = "CloudNativePG postgres line: a HINT/DETAIL whose entry is not before it"
                        else:
                            row = last_raw[0]
                            extra = f"{record['error_severity']}: {record.get('message', '')}"
                            rec["detail"][row] = "\n".join(x for x in (rec["detail"][row], extra) if x)
                            report.lines_parsed += 1
                            continue
                    if record is not None:
                        obj = {**obj, "record": record}
                        last_raw = (len(rec["line"]), record.get("process_id"), record.get("log_time"))
                if reason:
                    bad_lines.append(line)
                    bad_reasons.append(reason)
                    bad_texts.append(text)
                    continue
                report.lines_parsed += 1
                if self.fmt == "cnpg":
                    record = obj["record"]
                    get = lambda k, r=record: _str(r.get(k))  # noqa: E731
                    hosts.append(_str(obj.get("logging_pod")))
                else:
                    get = lambda k, o=obj: _str(o.get(_JSONLOG_KEYS.get(k, k)))  # noqa: E731
                    hosts.append(None)
                _append_record(rec, line, get)
                if self.fmt != "cnpg":
                    rec["remote"][-1] = None
                    rec["client_host"][-1] = _str(obj.get("remote_host"))
                    rec["client_port"][-1] = _str(obj.get("remote_port"))
            if bad_lines:
                add_rejects(report, name, bad_lines, bad_reasons, bad_texts)
            if chunk.damage:
                record_damage(report, name, chunk.first_line + chunk.lines.len() - 1, chunk.damage)
            if rec["line"]:
                raw = _records_to_frame(rec, name).with_columns(host=pl.Series(hosts, dtype=pl.String))
                yield _finish(self.language.english(raw), self.opts, name)

    def _decode(self, text: str) -> tuple[str | None, dict]:
        if not text.strip():
            return "blank line", {}
        try:
            obj = json.loads(text)
        except ValueError as exc:
            return f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", {}
        if not isinstance(obj, dict):
            return "JSON value is not an object", {}
        if self.fmt == "cnpg":
            if not isinstance(obj.get("record"), dict) and not _raw_postgres(obj):
                return f"CloudNativePG {obj.get('logger', 'operator')} line, not a PostgreSQL record", {}
            return None, obj
        if "error_severity" not in obj and "message" not in obj:
            return "JSON object has no PostgreSQL jsonlog keys (error_severity, message)", {}
        return None, obj


def _raw_postgres(obj: dict) -> bool:
    """A CloudNativePG ``"logger":"postgres"`` record carrying a raw PostgreSQL line in ``msg``."""
    return obj.get("logger") == "postgres" and isinstance(obj.get("msg"), str) and obj["msg"] != "record"


def _epoch_text(value: str) -> str | None:
    """``%n`` epoch seconds as csvlog's ``log_time`` text (UTC)."""
    import datetime as dt

    try:
        stamp = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (ValueError, OverflowError):
        return None
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


# --------------------------------------------------------------------------------------------
# shared finishing: times, events, fields from messages, schema


def _nulls(name: str, n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=pl.String, eager=True).alias(name)


def _fields_where(raw: pl.DataFrame, event: str, regex: str, name: str) -> list[pl.Series]:
    """``regex``'s groups (``name1``, ``name2``…) read from the messages of ``event`` rows only."""
    rows = (raw["event"] == event).arg_true()
    groups = raw["message"].gather(rows).str.extract_groups(regex).struct.unnest()
    return [_nulls(f"{name}{c}", raw.height).scatter(rows, groups[c]) for c in groups.columns]


def _known(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_in(list(_UNKNOWN))).then(None).otherwise(expr)


def _finish(raw: pl.DataFrame, opts: _Options, where: str) -> pl.DataFrame:
    """Intermediate columns -> canonical ``pg_events`` rows."""
    cols = set(raw.columns)
    for c in ("ts_text", "zone", "iso", "epoch", "remote", "client_host", "client_port", "detail", "host",
              "user", "database", "application", "sqlstate", "session_id", "pid"):  # fmt: skip
        if c not in cols:
            raw = raw.with_columns(pl.lit(None, dtype=pl.Float64 if c == "epoch" else pl.String).alias(c))
    # time: wall clock + zone, ISO with offset, or epoch seconds
    if "ts_fmt" in cols:
        naive = parse_naive(raw["ts_text"].str.replace(r"  +", " "), raw["ts_fmt"][0])
        ts = localize(naive, None, tz=opts.tz, where=where)
    else:
        ts = (
            localize(parse_naive(raw["ts_text"]), raw["zone"], tz=opts.tz, where=where)
            if raw["ts_text"].is_not_null().any()
            else pl.Series("ts", [None] * raw.height, dtype=UTC_TS)
        )
    ts = pl.select(pl.coalesce(ts.cast(UTC_TS), parse_iso(raw["iso"]), parse_epoch(raw["epoch"]))).to_series()
    message = raw["message"]
    padded = message.str.contains(r"\s$").fill_null(False)
    if padded.any():  # trailing blanks (a statement's last line), stripped on those rows only
        idx = padded.arg_true()
        raw = raw.with_columns(message.scatter(idx, message.gather(idx).str.strip_chars_end()))
    raw = with_event(raw)
    # each event's fields are parsed once, on that event's rows only
    raw = raw.hstack(
        [
            *_fields_where(raw, "connection_received", RECEIVED_FIELDS, "_rcv"),
            *_fields_where(raw, "connection_authorized", AUTHORIZED_FIELDS, "_auth"),
            *_fields_where(raw, "disconnection", DISCONNECTION_FIELDS, "_disc"),
        ]
    )

    def received(i: int) -> pl.Expr:
        return pl.col(f"_rcv{i}")

    def authorized(i: int) -> pl.Expr:
        return pl.col(f"_auth{i}")

    def disc(i: int) -> pl.Expr:
        return pl.col(f"_disc{i}")

    # %r is host(port); csvlog/cnpg connection_from is host:port
    remote = raw["remote"]
    if remote.null_count() < raw.height:
        parts = remote.str.extract_groups(r"^(?P<h>.*?)(?:\((?P<p>\d+)\)|:(?P<q>\d+))?$").struct.unnest()
        raw = raw.with_columns(_remote_h=parts["h"], _remote_p=pl.coalesce(parts["p"], parts["q"]))
    else:
        raw = raw.with_columns(_remote_h=remote, _remote_p=remote)
    remote_host, remote_port = pl.col("_remote_h"), pl.col("_remote_p")
    session_pid = (
        pl.col("session_id").str.extract(r"^[0-9a-f]+\.([0-9a-f]+)$", 1).str.to_integer(base=16, strict=False)
        if raw["session_id"].null_count() < raw.height
        else pl.lit(None, dtype=pl.Int64)
    )
    frame = raw.with_columns(
        ts=ts,
        # %c is '<start time hex>.<pid hex>': the pid of prefixes that carry only it (Azure's '%t-%c-')
        pid=pl.coalesce(pl.col("pid").cast(pl.Int64, strict=False), session_pid),
    ).with_columns(
        client_host=pl.coalesce(
            _known(pl.col("client_host")),
            _known(remote_host),
            received(1),
            disc(6),
        ),
        client_port=pl.coalesce(pl.col("client_port"), remote_port, received(2), disc(7)),
        user=pl.coalesce(_known(pl.col("user")), _known(authorized(1)), _known(disc(4))),
        database=pl.coalesce(_known(pl.col("database")), _known(authorized(2)), _known(disc(5))),
        application=pl.coalesce(_known(pl.col("application")), _known(authorized(3))),
        sqlstate=_known(pl.col("sqlstate")),
        session_duration=pl.when(disc(1).is_not_null()).then(
            pl.duration(
                hours=disc(1).cast(pl.Int64),
                minutes=disc(2).cast(pl.Int64),
                microseconds=(disc(3).cast(pl.Float64) * 1_000_000).round(0).cast(pl.Int64),
                time_unit="us",
            )
        ),
    )
    return conform(frame, PG_EVENTS)


# --------------------------------------------------------------------------------------------
# public readers


def _english_messages(entries: pl.DataFrame, lang: Language | None) -> pl.DataFrame:
    """Event-naming messages and ``[unknown]`` back in English, through the server's catalog."""
    if lang is None or entries.height == 0:
        return entries
    entries = entries.with_columns(
        pl.col("message").map_elements(lang.english, return_dtype=pl.String, skip_nulls=True)
    )
    fields = [c for c in ("user", "database", "application", "remote", "client_host") if c in entries.columns]
    return entries.with_columns(pl.col(fields).replace(lang.unknown, "[unknown]"))


_EVENT_HEAD = "^(?:" + "|".join(f"(?:{regex[1:]})" for _, _, regex in PG_EVENT_RULES) + ")"


class _RecordLanguage:
    """The language of a csvlog/jsonlog/CloudNativePG source, decided on its first records: looked
    up only when a severity is not English, or when 20 records in a row name no English event."""

    def __init__(self) -> None:
        self.decided = False
        self.lang: Language | None = None

    def english(self, raw: pl.DataFrame) -> pl.DataFrame:
        if not self.decided and raw.height:
            self.decided = True
            self.lang = self._decide(raw)
        if self.lang is None:
            return raw
        raw = raw.with_columns(pl.col("severity").replace(self.lang.severities).str.strip_chars())
        return _english_messages(raw, self.lang)

    @staticmethod
    def _decide(raw: pl.DataFrame) -> Language | None:
        sev = raw["severity"].drop_nulls()
        foreign = sev.filter(~sev.is_in(list(SEVERITIES)))
        msgs = raw["message"].drop_nulls().head(400)
        if foreign.len() == 0 and (msgs.len() < 20 or msgs.str.contains(_EVENT_HEAD).any()):
            return None
        words, texts = set(foreign.unique().to_list()), msgs.to_list()

        def score(lang: Language) -> int:
            return len(words & set(lang.severities)) * 100 + sum(t.startswith(lang.starts) for t in texts)

        ranked = sorted(languages(), key=score, reverse=True)
        return ranked[0] if ranked and score(ranked[0]) > 0 else None


def _localised(source: Source, fmt: str, prefix: str | None) -> Language | None:
    """The language of a stderr/RDS server log whose lines the English prefix leaves unmatched
    because their severities are translated (``FEHLER:  ``); None for English logs."""
    if fmt not in ("stderr", "rds") or prefix is None:
        return None
    lines = [ln for ln in _nonblank_lines(source.head()) if not ln.startswith(("\t", " "))]
    sample = pl.Series(lines, dtype=pl.String)
    missed = sample.filter(~sample.str.contains(compile_prefix(prefix).regex)).to_list()
    if not missed:  # every line reads in English: no catalog is even loaded
        return None
    lang = language_of(missed)
    if lang is None:
        return None
    localised = sample.str.contains(compile_prefix(prefix, lang.severity_words()).regex).sum()
    return lang if localised > sample.len() - len(missed) else None


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

    return scan_batches(lambda rep: _batches(sources, opts, rep), PG_EVENTS, report, "loglib.scan_pg_log")


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
    │ datetime[μs, UTC]       ┆ i64 ┆ str                 ┆ duration[μs]     │
    ╞═════════════════════════╪═════╪═════════════════════╪══════════════════╡
    │ 2024-03-01 10:00:00 UTC ┆ 7   ┆ connection_received ┆ null             │
    │ 2024-03-01 10:00:09 UTC ┆ 7   ┆ disconnection       ┆ 9s               │
    └─────────────────────────┴─────┴─────────────────────┴──────────────────┘
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
