"""loguru's ``serialize=True`` records (``{"text": ..., "record": {...}}``) mapped by expressions.

The fields are the ones the record-by-record reader takes: ``record.time.timestamp``,
``record.level.name``, ``record.message``, ``record.name``, ``record.process.id``, the caller as
``name:function:line``, the exception's type, the traceback as what ``text`` holds after the
message, and ``record.extra`` (its first request-id key as ``request_id``, the rest as ``extra``,
in the record's order). A record whose ``extra`` nests values, or whose fields are missing, is
left to the record-by-record reader.
"""

from __future__ import annotations

import re

import polars as pl

from loglib.core.schema import APP_EXTRA
from loglib.sources.app._common import _FIELDS, _REQUEST_ID_KEYS
from loglib.sources.app._json_nested import LINE, empty_fields, extras_column

#: record fields that must be there, with their types, for the mapping here
_NEEDED = {"message": pl.String, "name": pl.String, "function": pl.String, "line": pl.Int64}
_SCALARS = (pl.String, pl.Int64, pl.Boolean, pl.Float64, pl.Null)


def is_loguru(schema: pl.Schema) -> bool:
    """Do the chunk's records carry loguru's ``text`` + ``record``?"""
    return "text" in schema and isinstance(schema.get("record"), pl.Struct)


def _sub(dtype: pl.DataType, name: str) -> pl.DataType | None:
    return dtype.to_schema().get(name) if isinstance(dtype, pl.Struct) else None


def decode_loguru(
    frame: pl.DataFrame, lines: pl.Series, valid: pl.Series | None
) -> tuple[pl.Series, pl.DataFrame]:
    """``(ok, fields)`` as :func:`~loglib.sources.app._json_fast.decode_json` gives them.

    >>> line = ('{"text": "x", "record": {"time": {"timestamp": 1709287200.5}, "level": {"name": "INFO"},'
    ...         ' "message": "up", "name": "app", "function": "main", "line": 3, "process": {"id": 7},'
    ...         ' "extra": {"request_id": "r-1", "user": 42}, "exception": null}}')
    >>> ok, f = decode_loguru(pl.read_ndjson(line.encode()), pl.Series([line]), None)
    >>> ok.to_list(), f["caller"][0], f["request_id"][0], f["extra"].to_list()
    ([True], 'app:main:3', 'r-1', [[{'key': 'user', 'value': '42'}]])
    """
    rec_type = frame.schema["record"]
    fields = rec_type.to_schema()
    n = frame.height
    if any(fields.get(k) != t for k, t in _NEEDED.items()) or not (
        _sub(fields.get("time"), "timestamp") in (pl.Float64, pl.Int64)
        and _sub(fields.get("level"), "name") == pl.String
        and _sub(fields.get("process"), "id") == pl.Int64
        and frame.schema["text"] == pl.String
    ):
        return pl.repeat(False, n, eager=True), empty_fields(n)
    r = pl.col("record").struct
    frame = frame.with_columns(lines.alias(LINE))
    extra_type = fields.get("extra")
    extra_keys = list(extra_type.to_schema()) if isinstance(extra_type, pl.Struct) else []
    checks = [
        pl.col("record").is_not_null(),
        pl.col("text").is_not_null(),
        *(r.field(k).is_not_null() for k in _NEEDED),
        r.field("time").struct.field("timestamp").is_not_null(),
        r.field("level").struct.field("name").is_not_null(),
        r.field("process").struct.field("id").is_not_null(),
    ]
    if valid is not None:
        checks.append(pl.lit(valid))
    # record.extra as compact JSON in the record's order: where each key stands, which are null
    extra_text = frame[LINE].str.json_path_match("$.record.extra")
    frame = frame.with_columns(extra_text.alias("\x00x"))
    x = pl.col("\x00x")
    checks.append(pl.col("record").struct.field("extra").is_null() | x.is_not_null())
    if extra_keys:  # flat values only: a nested one, or an escape, is read record by record
        checks.append(~x.str.slice(1).str.contains(r"[{\[\\]").fill_null(False))
    ex = r.field("extra").struct
    present, values, positions = {}, {}, {}
    for k in extra_keys:
        dtype = extra_type.to_schema()[k]
        value = ex.field(k)
        key = re.escape(f'"{k}"')  # a key with an escape is caught above
        null = x.str.contains(key + r":null[,}]").fill_null(False)
        present[k] = value.is_not_null() | null
        positions[k] = x.str.find(key + ":")
        if dtype not in _SCALARS:
            checks.append(value.is_null())
        elif dtype == pl.Float64:
            checks.append(value.is_null() | ((value.abs() < 1e16) & (value.abs() >= 1e-4)) | (value == 0))
        if dtype == pl.Boolean:
            values[k] = pl.when(value).then(pl.lit("true")).when(value.is_not_null()).then(pl.lit("false"))
        else:
            values[k] = value.cast(pl.String)
        checks.append(~present[k] | positions[k].is_not_null())
    # the first request-id key present (null or not) is request_id; the others stay extras
    rid_keys = [k for k in _REQUEST_ID_KEYS if k in extra_keys]
    rid_key: pl.Expr = pl.lit(None, dtype=pl.String)
    for k in reversed(rid_keys):
        rid_key = pl.when(present[k]).then(pl.lit(k)).otherwise(rid_key)
    frame = frame.with_columns(rid_key.alias("\x00rid"))
    rid = pl.col("\x00rid")
    request_id = pl.coalesce(
        [pl.when(rid == k).then(values[k]) for k in rid_keys] or [pl.lit(None, dtype=pl.String)]
    )
    extra = [(k, values[k], present[k] & (rid != k).fill_null(True), positions[k]) for k in extra_keys]
    message = r.field("message")
    exc_type = _sub(fields.get("exception"), "type")
    has_exc = r.field("exception").is_not_null() if exc_type is not None else pl.lit(False)
    etype = (
        r.field("exception").struct.field("type") if exc_type == pl.String else pl.lit(None, dtype=pl.String)
    )
    if exc_type is not None and exc_type != pl.String:
        checks.append(~has_exc)
    tb = _after_message(frame, message)
    checks.append(
        ~has_exc | ~tb.str.contains(r"[\x1c-\x1f]\s*$").fill_null(False)
    )  # Python's rstrip strips these
    ok = frame.select(pl.all_horizontal(checks).fill_null(False)).to_series()
    text_null = pl.lit(None, dtype=pl.String)
    out = frame.select(
        pl.lit(None, dtype=_FIELDS["ts"]).alias("ts"),
        r.field("level").struct.field("name").alias("level"),
        r.field("name").alias("logger"),
        message.alias("message"),
        r.field("process").struct.field("id").cast(pl.String).alias("pid"),
        request_id.alias("request_id"),
        text_null.alias("host"),
        text_null.alias("service"),
        pl.concat_str(r.field("name"), r.field("function"), r.field("line").cast(pl.String), separator=":").alias("caller"),
        pl.lit(None, dtype=APP_EXTRA).alias("extra"),
        pl.when(has_exc).then(tb.str.strip_chars_end()).alias("tb"),
        text_null.alias("err"),
        pl.when(has_exc & (etype.fill_null("") != "")).then(pl.concat_list(etype)).cast(pl.List(pl.String)).alias("exc"),
        message.alias("head"),
        r.field("time").struct.field("timestamp").cast(pl.Float64).alias("epoch"),
        text_null.alias("ts_text"),
    )  # fmt: skip
    return ok, out.with_columns(extras_column(frame, extra))


def _after_message(frame: pl.DataFrame, message: pl.Expr) -> pl.Expr:
    """What ``text`` holds after as many lines as the message has (loguru writes the traceback
    there); null when it has no more lines."""
    counts = frame.select(message.str.count_matches("\n").unique().drop_nulls()).to_series().to_list()
    out: pl.Expr = pl.lit(None, dtype=pl.String)
    for c in counts:
        part = pl.col("text").str.extract(r"^(?:[^\n]*\n){" + str(c + 1) + r"}([\s\S]*)$", 1)
        out = pl.when(message.str.count_matches("\n") == c).then(part).otherwise(out)
    return out
