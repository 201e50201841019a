"""Line-based PostgreSQL logs (stderr, RDS, syslog, Cloud SQL): the prefix regex, folding, rejects."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects
from loglib.errors import FormatError
from loglib.formats.pg_catalogs import Language
from loglib.formats.pg_prefix import SECONDARY, CompiledPrefix, compile_prefix
from loglib.sources._chunks import read_entries
from loglib.sources.files import (
    Source,
)
from loglib.sources.postgres._detect import (
    _COMMAND_OUTPUT,
    _MEMORY_DUMP,
    _SYSLOG_BSD,
    _SYSLOG_HEADER,
    _SYSLOG_ISO,
    COMMAND_OUTPUT_REASON,
    MEMORY_DUMP_REASON,
    _nonblank_lines,
)
from loglib.sources.postgres._finish import _english_messages, _finish, _nulls, _Options


def _entries_from_matched(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold matched lines, secondary lines and continuations into entries.

    ``frame`` has ``line`` (number), ``text``, ``severity`` (null when the prefix did not
    match), ``message``, ``is_cont`` (a continuation of the line before) and the prefix's
    groups. Returns (entries, rejected line rows).

    Only narrow columns (entry number, part text) go through the fold: the entries' other
    fields are their primary line's, taken once; the lines of a multi-line entry add text only.
    """
    sev = frame.get_column("severity")
    matched = sev.is_not_null()
    secondary = sev.is_in(list(SECONDARY)).fill_null(False)
    # null (a syslog line with no PostgreSQL [seq-part], a Cloud SQL line with no textPayload) is
    # no continuation: the line is rejected, never dropped
    is_cont = frame.get_column("is_cont").fill_null(False)
    # an untabbed SQL line is unmatched, no noise and no continuation yet: most chunks have none,
    # and then the SQL search (a regex over every message) is skipped
    if "noise" in frame.columns and (~matched & ~is_cont & frame.get_column("noise").is_null()).any():
        is_cont = is_cont | _untabbed_sql(frame)
    primary = matched & ~secondary
    entry = primary.cum_sum()
    bad = (~matched & ~is_cont) | ((entry == 0) & ~primary)
    if bad.any():
        rejected = frame.with_columns(is_cont=is_cont).filter(bad)
        keep = ~bad
        frame, sev, secondary, is_cont, primary, entry = (
            s.filter(keep) for s in (frame, sev, secondary, is_cont, primary, entry)
        )
    else:
        rejected = frame.clear().with_columns(is_cont=is_cont.clear())
    fields = frame.drop([c for c in ("text", "noise", "is_cont") if c in frame.columns])
    entries = fields.filter(primary)
    if entries.height == frame.height:
        return entries, rejected
    # the lines of entries that have several (a primary followed by a line that is not a new entry)
    multi = ~primary | ~primary.shift(-1).fill_null(True)
    rows = pl.DataFrame({"entry": entry, "secondary": secondary, "is_cont": is_cont}).filter(multi)
    text, message = frame.get_column("text").filter(multi), frame.get_column("message").filter(multi)
    cont = rows.get_column("is_cont")
    # each line's part: a continuation's text without its tab, a DETAIL/HINT/... line as 'KIND: text'
    part = message.zip_with(~cont, text.str.strip_prefix("\t"))
    escaped = cont & part.str.starts_with("#011").fill_null(False)
    if escaped.any():  # syslog's escaped tab
        part = part.zip_with(~escaped, part.str.slice(4))
    second = rows.get_column("secondary").arg_true()
    if second.len():
        kinds = sev.filter(multi).gather(second)
        part = part.scatter(second, kinds + ": " + message.gather(second))
    parts = rows.select(
        pl.col("entry").set_sorted(),
        # a DETAIL/HINT/... line and the continuations after it belong to the entry's detail
        in_detail=pl.when(pl.col("is_cont")).then(None).otherwise(pl.col("secondary")).forward_fill(),
        part=part,
    )
    first_entry = int(entry.filter(primary)[0])
    # the parts gathered into lists, then joined (an aggregation's str.join is 5x slower)
    joined = {
        name: parts.filter(pl.col("in_detail") == flag)
        .group_by("entry", maintain_order=True)
        .agg(pl.col("part"))
        .with_columns(pl.col("part").list.join("\n", ignore_nulls=True))
        for name, flag in (("message", False), ("detail", True))
    }
    message = joined["message"]
    at = (message["entry"] - first_entry).cast(pl.UInt32)
    entries = entries.with_columns(entries["message"].scatter(at, message["part"]))
    detail = joined["detail"]
    if detail.height:
        at = (detail["entry"] - first_entry).cast(pl.UInt32)
        new = _nulls("detail", entries.height).scatter(at, detail["part"])
        if "detail" in entries.columns:
            new = entries["detail"].fill_null(new)
        entries = entries.with_columns(new.alias("detail"))
    return entries, rejected


# entries whose message or section is SQL, which copy-pasted logs continue on lines without a tab
_SQL_SECTIONS = ("STATEMENT", "QUERY", "CONTEXT", "DETAIL", "HINT")
_SQL_LOG = r"^(?:duration: [\d.]+ ms  )?(?:statement|execute [^:]*|parse [^:]*|bind [^:]*): "


def _noise_series(text: pl.Series, severity: pl.Series) -> pl.Series:
    """``memory`` / ``command`` for lines the prefix did not match that are known noise, else null."""
    # every memory-dump line holds "blocks; " and no command line starts with a tab: the regexes
    # run only on the few lines that can match them
    out = _nulls("noise", text.len())
    unmatched = severity.is_null().arg_true()
    if unmatched.len() == 0:
        return out
    sub = text.gather(unmatched)
    maybe = (sub.str.contains("blocks; ", literal=True) | ~sub.str.starts_with("\t")).fill_null(False)
    idx = unmatched.filter(maybe)
    if idx.len() == 0:
        return out
    sub = sub.filter(maybe)
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
    chunk: pl.DataFrame,
    compiled: CompiledPrefix,
    fmt: str,
    text_col: str = "text",
    continuation: pl.Series | None = None,
) -> pl.DataFrame:
    """Apply the compiled prefix to ``text_col``: adds the groups, ``severity`` and ``message``.

    With a lead (:attr:`CompiledPrefix.lead_regex`) the head is split the fast way and its tail
    matched once per distinct value; the lines that way does not read for sure go the regex way:
    the fast regex captures only the line's head, the message is the rest of the line, and lines
    it misses (a free-text field holding its own delimiter) are retried with the exact regex.
    A ``%m``/``%t`` time comes as ``ts_text`` and ``zone``.
    """
    text = chunk.get_column(text_col)
    if continuation is None:
        continuation = _continuation_series(text)
    todo = (text.is_not_null() & ~continuation).fill_null(False)
    groups = _lead_groups(text, compiled) if compiled.lead_regex else None
    if groups is None:
        groups = _regex_groups(text, compiled, todo)
    else:
        missed = todo & groups.get_column("severity").is_null()
        if missed.any():
            idx = missed.arg_true()
            slow = _regex_groups(text.gather(idx), compiled, pl.repeat(True, idx.len(), eager=True))
            groups = groups.with_columns(
                groups.get_column(c).scatter(idx, slow.get_column(c))
                for c in slow.columns
                if c in groups.columns
            )
    keep = [c for c in groups.columns if c not in chunk.columns]
    return chunk.hstack(groups.select(keep))


def _lead_groups(text: pl.Series, compiled: CompiledPrefix) -> pl.DataFrame:
    """The prefix's groups the fast way: the lead regex, then each distinct tail matched once.

    A row is read only when its tail matches the rest of the prefix exactly and its message
    holds no ``SEVERITY: `` (a head ending further on could then be the regex's reading);
    other rows get null ``severity``, for the regex way.
    """
    got = text.str.extract_groups(compiled.lead_regex).struct.unnest()
    tails = got.select("_tail").unique().drop_nulls()
    fields = tails.select(
        "_tail", (pl.col("_tail") + ": ").str.extract_groups(compiled.tail_regex).alias("_f")
    ).unnest("_f")
    got = got.join(fields, on="_tail", how="left", maintain_order="left")
    # the lead is its groups and literals: the message starts after them, ': ' and maybe a space
    lead = [c for c in got.columns if c not in fields.columns]
    length = functools.reduce(lambda a, b: a + b, [pl.col(c).str.len_chars() for c in (*lead, "_tail")])
    start = got.select(length + compiled.lead_chars + 2).to_series()  # null where the lead missed
    # and one more space when there are two (PostgreSQL writes 'LOG:  '): slices are views of the
    # lines, where str.strip_prefix would copy every message (5.5 MB more per 8 MB chunk in flight)
    start = start + (text.str.slice(start, 1) == " ").cast(start.dtype)
    message = text.str.slice(start)
    got = got.with_columns(message=message)
    ambiguous = message.str.contains(compiled.severity_colon).fill_null(False)
    if ambiguous.any():
        got = got.with_columns(pl.when(~ambiguous).then(pl.col("severity")).alias("severity"))
    return got.drop("_tail", *(c for c in lead if c.startswith("_l")))


def _regex_groups(text: pl.Series, compiled: CompiledPrefix, todo: pl.Series) -> pl.DataFrame:
    """The prefix's groups by the fast regex, lines it misses in ``todo`` retried with the exact one."""
    groups = text.str.extract_groups(compiled.fast_regex).struct.unnest()
    head = groups.get_column("_head")
    groups = groups.drop("_head").with_columns(message=text.str.slice(head.str.len_chars()))
    missed = head.is_null() & todo
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
    for name, width in (("ts_m", 23), ("ts_t", 19)):
        if name in groups.columns:
            stamp = groups.get_column(name)
            zone = stamp.str.slice(width + 1)
            groups = groups.drop(name).with_columns(
                ts_text=stamp.str.slice(0, width), zone=pl.when(zone != "").then(zone)
            )
    return groups


def _continuation_series(text: pl.Series) -> pl.Series:
    return pl.select(_continuation(pl.lit(text))).to_series()


def _continuation(text: pl.Expr) -> pl.Expr:
    """Lines that continue the entry above: PostgreSQL indents them with a tab (some tools turn
    it into spaces); blank lines inside multi-line statements count too."""
    return text.str.contains(r"^(?:[\t ]|$)")  # one pass: a tab, a space or nothing


class _LineParser:
    """Parses one line-based source (stderr, RDS) through the one chunk driver
    (:func:`~loglib.sources._chunks.read_entries`)."""

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

    def parse_lines(self, frame: pl.DataFrame) -> pl.DataFrame:
        cont = _continuation_series(frame["text"])
        frame = self._english(_parse_prefixed(frame, self.compiled, self.fmt, continuation=cont))
        noise = _noise_series(frame["text"], frame["severity"])
        return frame.with_columns(noise, is_cont=frame["severity"].is_null() & cont & noise.is_null())

    def starts_entry(self, parsed: pl.DataFrame) -> pl.Series:
        return parsed.select(
            pl.col("severity").is_not_null() & ~pl.col("severity").is_in(list(SECONDARY))
        ).to_series()

    def fold(self, rows: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        entries, rejected = _entries_from_matched(rows)
        finished = _finish(self.to_raw(entries), self.opts, self.source.name) if entries.height else None
        return finished, rejected

    def reasons(self, rejected: pl.DataFrame) -> pl.DataFrame:
        """``line``, ``text`` and ``reason`` of rejected line rows."""
        return _reject_reasons(rejected, self.prefix, self.fmt)

    def reject(self, report: ReadReport, rejected: pl.DataFrame) -> None:
        reasons = self.reasons(rejected)
        add_rejects(
            report, self.source.name, reasons["line"].to_list(), reasons["reason"].to_list(),
            reasons["text"].to_list(),
        )  # fmt: skip

    def run(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        yield from read_entries(self, report, chunk_bytes=self.opts.chunk_bytes)

    def to_raw(self, entries: pl.DataFrame) -> pl.DataFrame:
        """Map prefix groups onto the intermediate columns."""
        cols = set(entries.columns)
        exprs: list[pl.Expr] = []
        if "ts_n" in cols and "ts_text" not in cols:
            exprs.append(pl.col("ts_n").cast(pl.Float64, strict=False).alias("epoch"))
        out = entries.with_columns(exprs).with_columns(pl.lit(self.source.name).alias("file"))
        return self._english_messages(out)


class _SyslogParser(_LineParser):
    """syslog: ``Mon dd hh:mm:ss host postgres[pid]: [seq-part] <prefix><SEVERITY>:  message``."""

    def parse_lines(self, frame: pl.DataFrame) -> pl.DataFrame:
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
            # a line with no [seq-part] (another program's, or not syslog) continues nothing
            is_cont=pl.col("severity").is_null() & (pl.col("part") > 1).fill_null(False),
            # a continuation's text is what follows the header; '#011' is syslog's escaped tab
            text=pl.when(pl.col("rest").is_not_null()).then(pl.col("rest")).otherwise(pl.col("text")),
        )
        return frame

    @functools.cached_property
    def _idents(self) -> list[str]:
        """The syslog idents PostgreSQL writes under in this file (``syslog_ident``, ``postgres``
        by default): those of the head's ``[seq-part]`` lines (the head, so every chunk agrees)."""
        head = pl.Series(_nonblank_lines(self.source.head()), dtype=pl.String)
        found = pl.concat([head.str.extract(_SYSLOG_BSD, 3), head.str.extract(_SYSLOG_ISO, 3)])
        return sorted({"postgres", *found.drop_nulls().to_list()})

    def reasons(self, rejected: pl.DataFrame) -> pl.DataFrame:
        """Lines without PostgreSQL's ``[seq-part]`` get their own reason: another program's line
        (``systemd[1]: Started …``, known noise), a PostgreSQL line loglib cannot place, or no syslog."""
        reasons = super().reasons(rejected)
        fallback = reasons["reason"] == f"does not match {self.fmt} log_line_prefix {self.prefix!r}"
        headless = (rejected["part"].is_null() & fallback).fill_null(False)
        if headless.any():
            ident = rejected["text"].str.extract(_SYSLOG_HEADER, 1)
            own = ident.is_in(self._idents)
            why = pl.select(
                pl.when(ident.is_null())
                .then(pl.lit("not a syslog line (no 'Mon dd hh:mm:ss host ident[pid]: ' header)"))
                .when(own)
                .then(
                    pl.lit(
                        "PostgreSQL syslog line without a [seq-part] number (loglib reads the default "
                        "syslog_sequence_numbers = on, syslog_split_messages = on)"
                    )
                )
                .otherwise(
                    pl.concat_str(
                        pl.lit("syslog line of another program ("), ident, pl.lit("), not PostgreSQL")
                    )
                )
            ).to_series()
            reasons = reasons.with_columns(reasons["reason"].zip_with(~headless, why))
        return reasons

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

    def parse_lines(self, frame: pl.DataFrame) -> pl.DataFrame:
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

    def reasons(self, rejected: pl.DataFrame) -> pl.DataFrame:
        """A line that is no Cloud Logging record with a ``textPayload`` says so."""
        reasons = super().reasons(rejected)
        fallback = reasons["reason"] == f"does not match {self.fmt} log_line_prefix {self.prefix!r}"
        bare = (rejected["payload"].is_null() & fallback).fill_null(False)
        why = pl.lit("not a Cloud Logging JSON record with a textPayload")
        return reasons.with_columns(reason=pl.when(pl.lit(bare)).then(why).otherwise(pl.col("reason")))

    def to_raw(self, entries: pl.DataFrame) -> pl.DataFrame:
        return entries.with_columns(file=pl.lit(self.source.name))
