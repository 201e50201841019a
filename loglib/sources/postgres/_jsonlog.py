"""jsonlog (PostgreSQL 15+) and CloudNativePG logs: one JSON object per line, decoded by polars' NDJSON
reader a block of bytes at a time, line by line with Python's json module where a block is not clean."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects, record_damage
from loglib.formats.pg_prefix import DETECTION_PREFIXES, SECONDARY, compile_prefix
from loglib.sources.files import LineChunk, Source, iter_line_chunks, map_ordered, prefetch
from loglib.sources.postgres._detect import _best_prefix, _nonblank_lines
from loglib.sources.postgres._finish import _Options, _RecordLanguage
from loglib.sources.postgres._recblocks import ByLines, ByteBlock, block_lines, byte_blocks, from_line
from loglib.sources.postgres._records import (
    _append_record,
    _block_bytes,
    _detail_expr,
    _finished,
    _new_records,
    _records_to_frame,
    _time_columns,
)

_JSONLOG_KEYS = {
    "log_time": "timestamp", "process_id": "pid", "error_severity": "error_severity",
    "sql_state_code": "state_code", "user_name": "user", "database_name": "dbname",
    "application_name": "application_name", "session_id": "session_id", "message": "message",
    "detail": "detail", "hint": "hint", "internal_query": "internal_query", "context": "context",
    "query": "statement",
}  # fmt: skip


#: the jsonlog keys the reader uses, as text (numbers such as pid are read as their digits)
_JSONLOG_DTYPE = pl.Struct(
    {k: pl.String for k in (*_JSONLOG_KEYS.values(), "connection_from", "remote_host", "remote_port")}
)
_JSONLOG_SCHEMA = dict(_JSONLOG_DTYPE.to_schema())
_DETAIL_PARTS = (("DETAIL", "detail"), ("HINT", "hint"), ("QUERY", "internal_query"), ("CONTEXT", "context"),
                 ("STATEMENT", "statement"))  # fmt: skip


def _jsonlog_records(lines: pl.Series | None, body: bytes | None = None) -> pl.DataFrame | None:
    """The jsonlog keys of each line (objects already), as text: what ``str.json_decode`` with
    :data:`_JSONLOG_DTYPE` gives, or None where it refuses the chunk (not JSON, a nested value).
    ``lines`` may be None when ``body`` (LF line ends, no CR) is given: they are split from it
    only if a value needs the strict decoding.

    The chunk is read whole by polars' NDJSON reader (about twice as fast as decoding line by
    line). That reader writes a nested value as its JSON text where ``json_decode`` refuses it,
    so the rows with a value that starts like one are decoded the strict way too.

    >>> _jsonlog_records(pl.Series(['{"pid":7,"message":"[x]"}']))[["pid", "message"]].rows()
    [('7', '[x]')]
    >>> _jsonlog_records(pl.Series(['{"pid":7,"message":{"a":1}}'])) is None
    True
    >>> _jsonlog_records(None, b'{"pid":7,"message":{"a":1}}') is None
    True
    """
    if body is None:
        assert lines is not None
        body = (lines.str.join("\n")[0] + "\n").encode()
    elif not body.endswith(b"\n"):
        body += b"\n"
    n = lines.len() if lines is not None else body.count(b"\n")
    if lines is not None and (
        n == 0 or b"\r" in body
    ):  # CR: a record break to the NDJSON reader, not to a line
        try:
            return lines.str.json_decode(dtype=_JSONLOG_DTYPE).struct.unnest()
        except pl.exceptions.PolarsError:
            return None
    try:
        rec = pl.read_ndjson(io.BytesIO(body), schema=_JSONLOG_SCHEMA)
    except pl.exceptions.PolarsError:
        return None
    if rec.height != n:
        return None
    value = pl.all().str.head(1)
    nested = rec.select(pl.any_horizontal(value.is_in(["{", "["]))).to_series().fill_null(False)
    if nested.any():
        if lines is None:
            lines = block_lines(ByteBlock(body, 1))
        try:
            lines.filter(nested).str.json_decode(dtype=_JSONLOG_DTYPE)
        except pl.exceptions.PolarsError:
            return None
    return rec


def _jsonlog_frame(
    lines: pl.Series, first_line: int, name: str, body: bytes | None = None
) -> pl.DataFrame | None:
    """A chunk of jsonlog records decoded by polars into the raw columns :func:`_finish` takes, or
    None when some line is not one plain record (blank, not an object, no jsonlog key, not JSON):
    then the chunk is read record by record, which names each bad line's reason."""
    text = lines.str.strip_chars()
    if not (text.str.starts_with("{") & text.str.ends_with("}")).all():
        return None
    return _jsonlog_raw(_jsonlog_records(lines, body), first_line, name)


def _jsonlog_block(body: bytes, first_line: int, name: str) -> pl.DataFrame | None:
    """:func:`_jsonlog_frame` of a block's bytes (LF line ends) without splitting them into lines
    first: every line must be one JSON object (else None, and the block is read as lines).

    >>> _jsonlog_block(b'{"pid":7,"message":"m"}\\n{"pid":8,"message":"n"}\\n', 3, "f")[["line", "pid"]].rows()
    [(3, '7'), (4, '8')]
    >>> _jsonlog_block(b'{"pid":7,"message":"m"}\\n\\n', 3, "f") is None
    True
    >>> _jsonlog_block(b'{"pid":7,"message":"m"}\\n[1]\\n', 3, "f") is None
    True
    """
    if not body.endswith(b"\n"):
        body += b"\n"
    if b"\r" in body:  # polars' reader refuses a line that is not an object and skips a blank one
        return None
    return _jsonlog_raw(_jsonlog_records(None, body), first_line, name)


def _jsonlog_raw(rec: pl.DataFrame | None, first_line: int, name: str) -> pl.DataFrame | None:
    """jsonlog records as the raw columns :func:`_finish` takes; None when some record has neither
    ``error_severity`` nor ``message``."""
    if rec is None or (rec["error_severity"].is_null() & rec["message"].is_null()).any():
        return None
    n = rec.height
    return rec.select(
        line=pl.int_range(first_line, first_line + n, dtype=pl.Int64),
        **_time_columns(rec, "timestamp"),
        iso=pl.lit(None, dtype=pl.String),
        pid=pl.col("pid"),
        severity=pl.col("error_severity"),
        sqlstate=pl.col("state_code"),
        user=pl.col("user"),
        database=pl.col("dbname"),
        application=pl.col("application_name"),
        client_host=pl.col("remote_host"),
        client_port=pl.col("remote_port"),
        remote=pl.lit(None, dtype=pl.String),
        session_id=pl.col("session_id"),
        message=pl.col("message"),
        detail=_detail_expr(list(_DETAIL_PARTS)),
        file=pl.lit(name),
        host=pl.lit(None, dtype=pl.String),
    )


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
        yield from _finished(self.language.english(self._raw(report)), self.opts, self.source.name)

    def _raw(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        """Each chunk's records as raw columns: decoded by polars when it can (jsonlog: straight
        from the bytes of a block, :func:`byte_blocks`), else line by line."""
        name = self.source.name
        if self.fmt == "jsonlog":
            blocks = prefetch(byte_blocks(self.source, _block_bytes(self.opts), quoted=False))
            for item, raw in map_ordered(lambda b: (b, _decoded_block(b, name)), blocks):
                if isinstance(item, ByLines):
                    yield from self._by_lines(report, item.first_line)
                    return
                if raw is None:
                    yield from self._by_record(LineChunk(name, item.first_line, block_lines(item)), report)
                    continue
                report.lines_read += raw.height
                report.lines_parsed += raw.height
                if raw.height:
                    yield raw
            return
        yield from self._by_lines(report, 1)

    def _by_lines(self, report: ReadReport, start: int) -> Iterator[pl.DataFrame]:
        """The lines of the source from line ``start`` on, a chunk at a time."""
        name = self.source.name

        def decode(chunk: LineChunk) -> tuple[LineChunk, pl.DataFrame | None]:
            fast = self.fmt == "jsonlog"
            return chunk, (_jsonlog_frame(chunk.lines, chunk.first_line, name, chunk.body) if fast else None)

        keep = self.fmt == "jsonlog"  # the chunk's bytes go to polars' NDJSON reader as they are
        chunks = iter_line_chunks(self.source, chunk_bytes=_block_bytes(self.opts), keep_body=keep)
        for chunk, raw in map_ordered(decode, prefetch(from_line(chunks, start))):
            if raw is not None:  # polars decoded every record of the chunk
                report.lines_read += chunk.lines.len()
                report.lines_parsed += chunk.lines.len()
                if chunk.damage:
                    record_damage(report, name, chunk.first_line + chunk.lines.len() - 1, chunk.damage)
                if raw.height:
                    yield raw
                continue
            yield from self._by_record(chunk, report)

    def _by_record(self, chunk: LineChunk, report: ReadReport) -> Iterator[pl.DataFrame]:
        """One chunk decoded line by line with Python's json module: every bad line rejected."""
        name = self.source.name
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
            yield raw

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


def _decoded_block(item: ByteBlock | ByLines, name: str) -> pl.DataFrame | None:
    return _jsonlog_block(item.body, item.first_line, name) if isinstance(item, ByteBlock) else None


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
