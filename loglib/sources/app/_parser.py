"""One application-log source: formats sniffed, lines parsed through the one chunk driver, events folded, classified and conformed."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from loglib.core.rejects import ReadReport, rejects_frame
from loglib.core.schema import APP_EVENTS, EVENT_TEXT, conform
from loglib.errors import FormatError
from loglib.formats.access_lines import http_duration_expr, http_status_expr, status_field_expr
from loglib.formats.app_formats import (
    CONTAINER_PREFIX,
    describe,
    exc_chains,
    first_line_hint,
    normalize_levels,
    sniff,
)
from loglib.formats.error_rules import (
    ErrorRule,
    _resolve,
    classes_of,
    matches_any,
    message_template_expr,
    select_warm,
)
from loglib.sources._chunks import read_entries
from loglib.sources.app._common import (
    _FIELDS,
    APP_CHUNK_BYTES,
    APP_JSON_CHUNK_BYTES,
    _null_series,
    _Options,
    _service_of,
    _tz_of,
)
from loglib.sources.app._json import _json_fields, _json_reject_reason
from loglib.sources.app._text import _line_fields
from loglib.sources.app._time import _iso_like
from loglib.sources.files import Source, head_lines


class _Parser:
    """Parses one source chunk by chunk (:func:`~loglib.sources._chunks.read_entries` carries an
    unfinished event into the next chunk)."""

    def __init__(self, source: Source, opts: _Options, report: ReadReport) -> None:
        self.source = source
        self.opts = opts
        self.service = _service_of(source, opts.service)
        self.tz = _tz_of(self.service, opts.tz)
        lines = head_lines(source)
        sniffed = sniff(lines, opts.candidates)
        if sniffed is None:
            if opts.candidates is not None:
                # forced formats that match nothing here: every line becomes a reject, reported
                self.formats = list(opts.candidates)
                self.container = False
            elif not any(ln.strip() for ln in lines):
                self.formats, self.container = [], False
            else:
                msg = (
                    f"{source.name}: no known application log format fits its first lines. First line: "
                    f"{first_line_hint(lines)!r}. Pass format= (one of loglib.APP_LOG_FORMATS) or, for Python "
                    "logging, pattern= with the handler's format string (and datefmt=)."
                )
                raise FormatError(msg)
        else:
            self.formats, self.container = sniffed.formats, sniffed.container_prefix
        label = " + ".join(describe(f) for f in self.formats) or "empty"
        if self.container:
            label = f"container timestamps + {label}"
        if report.format is None:
            report.format = label
        elif label not in report.format.split(" | "):
            report.format += f" | {label}"
        self.label = label
        #: JSON lines are decoded from the chunk's bytes as read, when they are its lines
        self.keeps_body = "json" in self.formats and not self.container

    def _parse_chunk(self, frame: pl.DataFrame, body: bytes | None = None) -> pl.DataFrame:
        """Lines -> lines with ``_m`` (starts an event), ``multiline``, ``fmt`` and the fields
        (``body``: the lines' bytes as read, or None)."""
        text = frame["text"]
        outer = None
        if self.container:
            outer = _iso_like(text.str.extract(CONTAINER_PREFIX, 1), self.tz, self.source.name)
            text = text.str.replace(CONTAINER_PREFIX, "")
        n = text.len()
        matched = pl.repeat(False, n, eager=True, dtype=pl.Boolean).alias("_m")
        fields: pl.DataFrame | None = None
        fmt_name = _null_series("fmt", pl.String, n)
        for fmt in self.formats:
            if fmt == "json":
                m, f = _json_fields(text, self.tz, self.source.name, body)
                name = "json"
            else:
                m, f = _line_fields(fmt, text, self.tz, self.source.name)
                name = fmt.name
            m = m & ~matched
            fields = f if fields is None else pl.DataFrame([fields[c].zip_with(~m, f[c]) for c in _FIELDS])
            fmt_name = (
                pl.select(pl.when(pl.lit(m)).then(pl.lit(name)).otherwise(pl.lit(fmt_name)))
                .to_series()
                .alias("fmt")
            )
            matched = matched | m
        if fields is None:
            fields = pl.DataFrame([_null_series(name, dt, n) for name, dt in _FIELDS.items()])
        if outer is not None:
            fields = fields.with_columns(ts=pl.col("ts").fill_null(outer))
        return pl.DataFrame({"line": frame["line"], "text": text, "_m": matched, "fmt": fmt_name}).hstack(
            fields
        )

    def parse_lines(self, frame: pl.DataFrame, body: bytes | None = None) -> pl.DataFrame:
        """Lines -> lines with ``_m`` (starts an event), ``fmt`` and the fields (NULs read as U+FFFD);
        ``body``: the lines' bytes as read (``LineChunk.body``), or None."""
        text = frame["text"]
        if text.str.contains("\x00", literal=True).any():
            frame = frame.with_columns(text.str.replace_all("\x00", "\ufffd", literal=True))
            body = None  # the lines are no longer the bytes
        return self._parse_chunk(frame, body)

    def starts_entry(self, parsed: pl.DataFrame) -> pl.Series:
        return parsed["_m"]

    def fold(self, rows: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        events, rejected = _fold(rows)
        return (self._finish(events) if events.height else None), rejected

    def reject(self, report: ReadReport, rejected: pl.DataFrame) -> None:
        report.rejects = pl.concat([report.rejects, self._rejects(rejected)])

    def run(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        """Every event of the source, through the one chunk driver (two chunks at a time); a JSON
        source read with the default chunk size is read in :data:`APP_JSON_CHUNK_BYTES` chunks."""
        chunk = self.opts.chunk_bytes
        if self.keeps_body and chunk == APP_CHUNK_BYTES:
            chunk = APP_JSON_CHUNK_BYTES
        yield from read_entries(self, report, chunk_bytes=chunk)

    def _rejects(self, rows: pl.DataFrame) -> pl.DataFrame:
        text = pl.col("text")
        formats = " or ".join(describe(f) for f in self.formats) or "no format"
        reason = (
            pl.when(text.str.strip_chars() == "")
            .then(pl.lit("blank line"))
            .when(pl.col("_ev") == 0)
            .then(pl.lit(f"line before the first entry of the file: it does not start a {formats} entry"))
            .otherwise(pl.lit("not a JSON log record (JSON records cannot continue over several lines)"))
        )
        r = rows.select("line", "text", reason.alias("reason"))
        texts = r["text"].to_list()
        reasons = r["reason"].to_list()
        if "json" in self.formats:
            reasons = [_json_reject_reason(t) or why for t, why in zip(texts, reasons, strict=True)]
        return rejects_frame(self.source.name, r["line"].to_list(), reasons, texts)

    def _finish(self, events: pl.DataFrame) -> pl.DataFrame:
        """Folded events -> canonical ``app_events`` rows.

        Most events are one line with no traceback, so the multi-line work (traceback text,
        exception chains, the classification text) is done only on the rows that need it.
        """
        msg = pl.col("message").fill_null("")
        json_rows = (events["fmt"] == "json").any()
        multi = events.select(
            pl.col("tb").is_not_null()
            | pl.col("cont").is_not_null()
            | (msg.str.contains("\n", literal=True) if json_rows else pl.lit(False))
        ).to_series()
        first = msg.str.extract(r"^([^\n]*)", 1) if json_rows else msg
        rest = msg.str.extract(r"\n([\s\S]*)$", 1) if json_rows else pl.lit(None, dtype=pl.String)
        tb = pl.concat_str([rest, pl.col("tb"), pl.col("cont")], separator="\n", ignore_nulls=True)
        tb = tb.str.strip_chars_end()
        tbcol = pl.when(tb != "").then(tb)
        fallback = pl.col("traceback").str.extract(r"(?m)^[ \t]*(?:\[[^\]\n]*\] ?)*[ \t]*(\S[^\n]*)$", 1)
        sub = events.with_row_index("_i").filter(multi)
        # a message of one line is its first line: the first-line cut runs on multi-line events only
        frame = events.with_columns(
            message=msg.str.strip_chars_end(),
            traceback=pl.lit(None, dtype=pl.String),
            exc_chain=pl.col("exc"),
        )
        if sub.height:  # the multi-line rows' values put in place (null elsewhere)
            sub = sub.with_columns(traceback=tbcol)
            sub = sub.select(
                pl.col("_i"),
                first.str.strip_chars_end().alias("m0"),
                pl.col("traceback"),
                pl.coalesce(pl.col("exc"), pl.lit(exc_chains(sub["traceback"]))).alias("exc_chain"),
            ).with_columns(
                # an event whose first line is empty (Rails' '  ' before an exception) is named by its next line
                message=pl.coalesce(
                    pl.when(pl.col("m0").str.strip_chars() == "").then(fallback).otherwise(pl.col("m0")),
                    pl.col("m0"),
                ),
            )
            at = sub["_i"]
            # polars scatters no lists: the chains are gathered to their rows (null elsewhere)
            slot = _null_series("_at", pl.UInt32, frame.height)
            slot = slot.scatter(at, pl.int_range(sub.height, eager=True, dtype=pl.UInt32))
            frame = frame.with_columns(
                frame["message"].scatter(at, sub["message"]),
                frame["traceback"].scatter(at, sub["traceback"]),
                pl.coalesce(pl.lit(sub["exc_chain"].gather(slot)), pl.col("exc")).alias("exc_chain"),
            )
        frame = _classify(frame, self.opts.rules)
        frame = frame.hstack(select_warm(frame, [message_template_expr("message").alias("message_template")]))
        frame = frame.hstack(_http(frame))
        frame = frame.with_columns(
            exc_type=pl.col("exc_chain").list.last(),
            level=normalize_levels(frame["level"]),
            logger=pl.when(pl.col("logger").str.strip_chars() != "").then(pl.col("logger")),
            service=pl.coalesce(pl.col("service"), pl.lit(self.service, dtype=pl.String)),
            pid=pl.col("pid").cast(pl.Int64, strict=False),
            format=pl.col("fmt"),
            file=pl.lit(self.source.name, dtype=EVENT_TEXT),
        )
        return conform(frame, APP_EVENTS)


def _http(frame: pl.DataFrame) -> list[pl.Series]:
    """``http_status`` and ``http_duration_s``: an access line quotes its request, so only messages
    with a ``"`` are searched, and only records with extras looked up for a status field."""
    n = frame.height
    status = _null_series("http_status", pl.Int16, n)
    duration = _null_series("http_duration_s", pl.Float64, n)
    message = frame["message"]
    idx = message.str.contains('"', literal=True).fill_null(False).arg_true()
    if idx.len():
        found = select_warm(
            pl.DataFrame({"message": message.gather(idx)}),
            [http_status_expr(pl.col("message")), http_duration_expr(pl.col("message"))],
        )
        status = status.scatter(idx, found["http_status"])
        duration = duration.scatter(idx, found["http_duration_s"])
    if "extra" in frame.columns:
        idx = frame["extra"].is_not_null().arg_true()
        if idx.len():
            field = pl.DataFrame({"extra": frame["extra"].gather(idx)}).select(
                status_field_expr(pl.col("extra"))
            )
            status = status.fill_null(
                _null_series("http_status", pl.Int16, n).scatter(idx, field.to_series())
            )
    return [status, duration]


def _classify(frame: pl.DataFrame, rules: tuple[ErrorRule, ...] | None) -> pl.DataFrame:
    """``error_class`` of each event's first line (``head``) plus traceback, as classify_error sees it.

    A cheap scan of the head and the traceback with every rule at once picks the candidates; only
    they get the whole text built and the ordered rules applied.
    """
    table = _resolve(rules)
    if not table:
        return frame.with_columns(error_class=pl.lit(None, dtype=pl.String))
    hit = matches_any([frame["head"], frame["traceback"]], table)
    idx = hit.arg_true()
    full = _null_series("error_class", pl.String, frame.height)
    if idx.len():
        sub = frame.filter(hit).select(
            pl.concat_str([pl.col("head"), pl.col("traceback")], separator="\n", ignore_nulls=True).alias("t")
        )
        full = full.scatter(idx, classes_of(sub["t"], table))
    return frame.with_columns(full)


def _fold(parsed: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold continuation lines into the event above them. Returns (events, rejected lines)."""
    m = parsed["_m"]
    ev = m.cum_sum().alias("_ev")
    parsed = parsed.with_columns(ev)
    if m.all():
        return parsed.with_columns(cont=pl.lit(None, dtype=pl.String)), parsed.clear()
    if (parsed["fmt"] == "json").any():
        multiline = parsed.select(
            pl.when(pl.col("_m")).then(pl.col("fmt") != "json").forward_fill().fill_null(False)
        ).to_series()
    else:
        multiline = ev > 0
    cont = ~m & (ev > 0) & multiline
    flags = pl.DataFrame({"c": cont, "r": ~m & ~cont})
    rejected = parsed.filter(flags["r"])
    heads = parsed.filter(m)
    cont_text = _null_series("cont", pl.String, heads.height)
    if flags["c"].any():
        conts = (
            parsed.filter(flags["c"])
            .group_by("_ev", maintain_order=True)
            .agg(pl.col("text").str.join("\n").alias("cont"))
        )
        # the k-th head is event k (``_ev`` counts the heads): its continuation goes to row k - 1
        cont_text = cont_text.scatter(conts["_ev"] - 1, conts["cont"])
    return heads.with_columns(cont_text), rejected
