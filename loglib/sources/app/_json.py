"""JSON-lines application logs (structlog, pino, winston, zap, logrus, loguru, slog, bunyan, ECS)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import polars as pl

from loglib.core.schema import APP_EXTRA, UTC_TS
from loglib.formats.app_formats import (
    JSON_FIELD_KEYS as _KEYS,
)
from loglib.formats.app_formats import (
    JSON_MESSAGE_KEYS,
    JSON_NOT_A_RECORD,
    NUMERIC_LEVELS,
    PY_LEVELNO,
    json_record,
)
from loglib.sources.app._common import _FIELDS, _REQUEST_ID_KEYS
from loglib.sources.app._json_fast import decode_json
from loglib.sources.app._time import _iso_like, epoch_expr


def _s(value: object) -> str | None:
    """A JSON value as text: strings as they are, scalars as JSON writes them, the rest as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def _first(obj: dict, keys: Sequence[str]) -> tuple[str | None, object]:
    for k in keys:
        if k in obj and obj[k] is not None:
            return k, obj[k]
    return None, None


def _dotted(obj: dict, key: str) -> object:
    cur: object = obj
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return obj.get(key)
        cur = cur[part]
    return cur


try:  # orjson is several times faster than json
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover
    _orjson_loads = json.loads


def _loads(text: str) -> object:
    """Decode one JSON record; Python's json gets a second try, because it also accepts the
    ``NaN``/``Infinity`` that Python loggers (json.dumps) write and orjson refuses."""
    try:
        return _orjson_loads(text)
    except ValueError:
        return json.loads(text)


class _JsonRows:
    """Columns for the JSON records of a chunk (filled row by row; the rest stays null)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cols: dict[str, list] = {k: [None] * n for k in (*_FIELDS, "epoch", "ts_text")}
        self.matched = [False] * n

    def add(self, i: int, text: str) -> None:
        try:
            obj = _loads(text)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        c = self.cols
        used: set[str] = set()
        rec = obj
        loguru = isinstance(obj.get("record"), dict) and "text" in obj
        if loguru:
            rec = obj["record"]
            used = {"text", "record"}
            t = rec.get("time") or {}
            c["epoch"][i] = t.get("timestamp") if isinstance(t, dict) else None
            lv = rec.get("level") or {}
            c["level"][i] = lv.get("name") if isinstance(lv, dict) else _s(lv)
            c["message"][i] = _s(rec.get("message"))
            c["logger"][i] = _s(rec.get("name"))
            proc = rec.get("process") or {}
            c["pid"][i] = _s(proc.get("id")) if isinstance(proc, dict) else None
            c["caller"][i] = f"{rec.get('name')}:{rec.get('function')}:{rec.get('line')}"
            exc = rec.get("exception")
            extra = dict(rec.get("extra") or {})
            if isinstance(exc, dict):
                c["exc"][i] = [exc["type"]] if exc.get("type") else None
                full = str(obj.get("text") or "")
                first_lines = (c["message"][i] or "").count("\n") + 1
                rest = full.split("\n", first_lines)
                c["tb"][i] = rest[-1].rstrip() if len(rest) > first_lines else None
            rid = next((extra.pop(k) for k in _REQUEST_ID_KEYS if k in extra), None)
            c["request_id"][i] = _s(rid)
            c["extra"][i] = [{"key": k, "value": _s(v)} for k, v in extra.items()] or None
            c["head"][i] = c["message"][i]
            self.matched[i] = True
            return
        rec = json_record(obj)
        if rec is None:
            return
        obj = rec
        key, msg = _first(obj, JSON_MESSAGE_KEYS)
        used.add(key)
        c["message"][i] = _s(msg)
        key, ts = _first(obj, _KEYS["ts"])
        if key:
            used.add(key)
            if (isinstance(ts, int | float) and not isinstance(ts, bool)) or (
                isinstance(ts, str) and re.fullmatch(r"\d+(?:\.\d+)?", ts)
            ):
                c["epoch"][i] = float(ts)
            else:
                c["ts_text"][i] = _s(ts)
        key, lv = _first(obj, _KEYS["level"])
        if key is None and isinstance(obj.get("log"), dict):
            lv = obj["log"].get("level")
        if key:
            used.add(key)
        if isinstance(lv, int) and not isinstance(lv, bool):
            lv = NUMERIC_LEVELS.get(lv) or PY_LEVELNO.get(lv)
        c["level"][i] = _s(lv)
        key, v = _first(obj, _KEYS["logger"])
        if key:
            used.add(key)
            c["logger"][i] = _s(v)
        key, v = _first(obj, _KEYS["service"])
        if key:
            used.add(key)
            c["service"][i] = _s(v.get("name") if isinstance(v, dict) else v)
        key, v = _first(obj, _KEYS["host"])
        if key:
            used.add(key)
            c["host"][i] = _s(v.get("name") if isinstance(v, dict) else v)
        key, v = _first(obj, _KEYS["pid"])
        if key:
            used.add(key)
            c["pid"][i] = _s(v)
        key, v = _first(obj, _KEYS["request_id"])
        if key:
            used.add(key)
            c["request_id"][i] = _s(v)
        elif isinstance(obj.get("req"), dict) and obj["req"].get("id") is not None:
            c["request_id"][i] = _s(obj["req"]["id"])
        key, v = _first(obj, _KEYS["caller"])
        if key:
            used.add(key)
            if isinstance(v, dict):
                v = f"{v.get('file', '')}:{v.get('line', '')}"
            c["caller"][i] = _s(v)
        # errors and tracebacks
        err_obj = obj.get("err") if isinstance(obj.get("err"), dict) else obj.get("error")
        err_obj = err_obj if isinstance(err_obj, dict) else {}
        key, tb = _first(obj, _KEYS["tb"])
        if key:
            used.add(key)
        types: list[str] | None = None
        if isinstance(tb, list):  # structlog dict_tracebacks: outermost first
            types = [str(e.get("exc_type")) for e in tb if isinstance(e, dict) and e.get("exc_type")]
            tb = "\n".join(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in tb if isinstance(e, dict))
        tb = tb or err_obj.get("stack") or err_obj.get("stack_trace")
        c["tb"][i] = _s(tb)
        key, err = _first(obj, _KEYS["err"])
        if key:
            used.add(key)
        c["err"][i] = err if isinstance(err, str) else _s(err_obj.get("message"))
        etype = err_obj.get("type") or obj.get("error.type")
        c["exc"][i] = types or ([str(etype)] if etype else None)
        extra = [{"key": k, "value": _s(v)} for k, v in obj.items() if k not in used]
        c["extra"][i] = extra or None
        c["head"][i] = "\n".join(dict.fromkeys(x for x in (c["message"][i], c["err"][i]) if x))
        self.matched[i] = True

    def raw(self) -> tuple[pl.Series, pl.DataFrame]:
        """(matched, the intermediate columns with ``epoch`` and ``ts_text`` in place of ``ts``)."""
        c = self.cols
        data = {
            name: pl.Series(name, c[name], dtype=dtype)
            for name, dtype in _FIELDS.items()
            if name not in ("ts", "extra")
        }
        data["extra"] = _extra_column(c["extra"])
        data["epoch"] = pl.Series("epoch", c["epoch"], dtype=pl.Float64)
        data["ts_text"] = pl.Series("ts_text", c["ts_text"], dtype=pl.String)
        return pl.Series("m", self.matched, dtype=pl.Boolean), pl.DataFrame(data)


def _with_ts(raw: pl.DataFrame, tz: str | None, where: str) -> pl.DataFrame:
    """``ts`` from epoch numbers, else ISO-like text; the intermediate columns in order."""
    ts = epoch_expr(pl.col("epoch"))
    if raw["ts_text"].null_count() < raw.height:  # text times too (epochs are the common chunk's)
        ts = ts.fill_null(pl.lit(_iso_like(raw["ts_text"], tz, where)))
    return raw.select(ts.cast(UTC_TS).alias("ts") if c == "ts" else pl.col(c) for c in _FIELDS)


def _extra_column(rows: list[list[dict] | None]) -> pl.Series:
    """``[[{key, value}, ...] | None, ...]`` as a List(Struct) Series, built from flat columns:
    polars builds nested Python values one element at a time, which is slow."""
    idx: list[int] = []
    keys: list[str] = []
    values: list[str | None] = []
    for i, row in enumerate(rows):
        if row:
            for kv in row:
                idx.append(i)
                keys.append(kv["key"])
                values.append(kv["value"])
    flat = pl.DataFrame(
        {"i": idx, "key": keys, "value": values}, schema={"i": pl.Int64, "key": pl.String, "value": pl.String}
    )
    grouped = flat.group_by("i").agg(pl.struct("key", "value").alias("extra"))
    full = pl.DataFrame({"i": pl.int_range(0, len(rows), eager=True, dtype=pl.Int64)})
    return full.join(grouped, on="i", how="left", maintain_order="left")["extra"].cast(APP_EXTRA)


def _json_reject_reason(text: str) -> str | None:
    """Why a whole one-line JSON value is not a record (None for text that is not complete JSON:
    its general reason stands). Such a line is never "continued over several lines".

    >>> _json_reject_reason('{"id": 7, "name": "joe"}')[:36]
    'a JSON object, but not a log record:'
    """
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        value = _loads(text.strip())
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any decoder goes
        return None
    if isinstance(value, dict):
        return JSON_NOT_A_RECORD
    kind = "array" if isinstance(value, list) else "string" if isinstance(value, str) else "scalar"
    return f"a JSON {kind}, not an object: a JSON log record is one object per line"


def _json_fields(
    text: pl.Series, tz: str | None, where: str, body: bytes | None = None
) -> tuple[pl.Series, pl.DataFrame]:
    """(matched, intermediate columns) of the JSON records among ``text``: polars decodes the
    chunk (:func:`~loglib.sources.app._json_fast.decode_json`; ``body``: ``text``'s bytes as
    read, or None); only the records it cannot read exactly are decoded one by one."""
    n = text.len()
    starts = text.str.starts_with("{").fill_null(False)
    if not starts.all():  # a record may be indented: only the other lines are stripped
        rest = (~starts).arg_true()
        starts = starts.scatter(
            rest, text.gather(rest).str.strip_chars_start().str.starts_with("{").fill_null(False)
        )
    idx = starts.arg_true()
    every = idx.len() == n
    fast = (decode_json(text, body) if every else decode_json(text.gather(idx))) if idx.len() else None
    if every and fast is not None and fast[0].all():  # the common chunk: every line a record polars read
        return fast[0].alias("m"), _with_ts(fast[1], tz, where)
    slow = idx if fast is None else idx.filter(~fast[0])
    rows = _JsonRows(slow.len())
    for j, i in enumerate(slow.to_list()):
        rows.add(j, text[i])
    matched, raw = rows.raw()
    if fast is None:
        full = pl.DataFrame({"_i": pl.int_range(n, eager=True, dtype=pl.UInt32)})
        parts = raw.with_columns(_i=slow, _m=matched)
    else:
        ok, fields = fast
        full = pl.DataFrame({"_i": pl.int_range(n, eager=True, dtype=pl.UInt32)})
        parts = pl.concat(
            [
                fields.filter(ok).drop("ts").with_columns(_i=idx.filter(ok), _m=pl.lit(True)),
                raw.with_columns(_i=slow, _m=matched),
            ],
            how="diagonal_relaxed",
        )
    merged = full.join(parts, on="_i", how="left", maintain_order="left")
    return merged["_m"].fill_null(False).alias("m"), _with_ts(merged, tz, where)
