"""Application logs (Python logging, loguru, structlog, uvicorn, gunicorn, pino, winston, zap, logrus,
Laravel/Monolog, Rails, Spring Boot, Go, bare ``[LEVEL]`` lines) into the canonical ``app_events`` frame.

A source is read in chunks of lines. Each chunk is matched against the source's formats with
one vectorised regex per format (JSON lines are decoded per line); a matching line starts an
event, the lines after it that match nothing are its traceback. Events are then classified
with the one rules table (:mod:`loglib.formats.error_rules`) and conformed to the schema.
Lines that belong to no event go to the one rejects mechanism (:mod:`loglib.core.rejects`).
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from loglib.core.rejects import ReadReport, finish_read, record_damage, rejects_frame
from loglib.core.schema import APP_EVENTS, APP_EXTRA, UTC_TS, conform
from loglib.core.timeparse import check_tz, localize, parse_epoch, parse_naive
from loglib.errors import FormatError, LoglibWarning
from loglib.formats.access_lines import http_duration_expr, http_status_expr
from loglib.formats.app_formats import (
    CONTAINER_PREFIX,
    JSON_MESSAGE_KEYS,
    JSON_NOT_A_RECORD,
    NUMERIC_LEVELS,
    PY_LEVELNO,
    LineFormat,
    describe,
    exc_chain_expr,
    first_line_hint,
    formats_named,
    json_record,
    level_expr,
    python_format,
    sniff,
)
from loglib.formats.error_rules import (
    ErrorRule,
    _any_pattern,
    _resolve,
    classify_frame,
    message_template_expr,
)
from loglib.sources._lazy import collect_batches, scan_batches
from loglib.sources.files import (
    LineChunk,
    PathsLike,
    Source,
    expand_sources,
    iter_line_chunks,
    map_ordered,
)

_LEVEL_WORD = r"(?i:TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|ERR|CRITICAL|FATAL|PANIC)"
_KV = r"([\w.\-/@]+)=(\"(?:[^\"\\]|\\.)*\"|'[^']*'|\S*)"
_ISO_PARTS = (
    r"^(?P<d>\d{4})[-/](?P<mo>\d\d)[-/](?P<day>\d\d)[T ](?P<t>\d\d:\d\d(?::\d\d)?)(?:[.,](?P<f>\d{1,9}))?"
    r"\s*(?P<z>Z|[+-]\d\d(?::?\d\d)?|UTC|GMT)?$"
)
#: chunk size of application logs: small chunks keep two in flight (two cores) in little memory
APP_CHUNK_BYTES = 4 * 1024 * 1024
_REQUEST_ID_KEYS = ("request_id", "requestId", "req_id", "reqId", "x_request_id", "x-request-id", "request.id",
                    "http.request.id", "correlation_id", "correlationId")  # fmt: skip

# the intermediate columns every format produces for every line (null where it does not match)
_FIELDS: dict[str, pl.DataType | type[pl.DataType]] = {
    "ts": UTC_TS, "level": pl.String, "logger": pl.String, "message": pl.String, "pid": pl.String,
    "request_id": pl.String, "host": pl.String, "service": pl.String, "caller": pl.String, "extra": APP_EXTRA,
    "tb": pl.String, "err": pl.String, "exc": pl.List(pl.String), "head": pl.String,
}  # fmt: skip


class NoTimestampWarning(LoglibWarning):
    """Some events carry no timestamp in the log itself; their ``ts`` is null (never invented)."""


@dataclass
class _ChunkInfo:
    """What :meth:`_Parser.run` still needs of a chunk once its lines are parsed."""

    first_line: int
    n_lines: int
    fallback_decoded: int
    damage: str | None


@dataclass
class _ChunkResult:
    """One chunk worked alone: lines before its first entry, finished events, the open last event."""

    chunk: _ChunkInfo
    lead: pl.DataFrame
    events: pl.DataFrame | None
    rejected: pl.DataFrame | None
    tail: pl.DataFrame | None
    core_rows: int = 0


@dataclass
class _Options:
    candidates: list[LineFormat | str] | None
    tz: str | Mapping[str, str] | None
    service: str | Mapping[str, str] | None
    rules: tuple[ErrorRule, ...] | None
    chunk_bytes: int


# --------------------------------------------------------------------------------------------
# options


def _service_of(source: Source, service: str | Mapping[str, str] | None) -> str | None:
    """The service a file belongs to: ``service=`` (a name, or {glob: name}), else its base name."""
    if isinstance(service, str):
        return service
    if isinstance(service, Mapping):
        for pattern, name in service.items():
            if fnmatch.fnmatch(source.name, pattern) or fnmatch.fnmatch(Path(source.name).name, pattern):
                return name
    if source.path is None:
        return None
    name = source.path.name
    name = re.sub(r"\.(?:gz|bz2|xz)$", "", name)
    name = re.sub(r"\.\d{1,4}$", "", name)
    name = re.sub(r"\.(?:log|txt|json|jsonl|ndjson|out|err)$", "", name)
    name = re.sub(r"[-_.]\d{4}-?\d\d-?\d\d(?:[-_T.]?\d+)*$", "", name)
    return name or None


def _tz_of(service: str | None, tz: str | Mapping[str, str] | None) -> str | None:
    if isinstance(tz, Mapping):
        return tz.get(service or "", tz.get("*"))
    return tz


def _check_options(format: str | Sequence[str] | None, pattern: str | None, datefmt: str | None,
                   tz: object, service: object) -> list[LineFormat | str] | None:  # fmt: skip
    if isinstance(tz, Mapping):
        for value in tz.values():
            check_tz(value)
    elif tz is not None:
        if not isinstance(tz, str):
            msg = f"tz= must be an IANA zone name or a {{service: zone}} mapping, got {type(tz).__name__}"
            raise TypeError(msg)
        check_tz(tz)
    if service is not None and not isinstance(service, str | Mapping):
        msg = f"service= must be a name or a {{file glob: name}} mapping, got {type(service).__name__}"
        raise TypeError(msg)
    if datefmt is not None and pattern is None:
        msg = "datefmt= describes the asctime of a logging format string: pass pattern= with it"
        raise ValueError(msg)
    candidates: list[LineFormat | str] = []
    if pattern is not None:
        candidates.append(python_format(pattern, datefmt))
    names = [format] if isinstance(format, str) else list(format or [])
    for name in names:
        if name == "python" and pattern is not None:
            continue
        candidates.extend(formats_named(name))
    return candidates or None


# --------------------------------------------------------------------------------------------
# time


def _utc(naive: pl.Series, zone: pl.Series | None, tz: str | None, where: str) -> pl.Series:
    """Naive datetimes plus optional per-row zone text -> UTC (rows without a zone need ``tz``)."""
    if zone is None or zone.null_count() == zone.len():
        return localize(naive, None, tz=tz, where=where)
    has_zone = zone.is_not_null()
    if (has_zone | naive.is_null()).all():
        return localize(naive, zone, tz=tz, where=where)
    nulls = _null_series(naive.name, naive.dtype, naive.len())
    with_zone = localize(naive.zip_with(has_zone, nulls), zone, tz=tz, where=where)
    without = localize(naive.zip_with(~has_zone, nulls), None, tz=tz, where=where)
    return with_zone.fill_null(without)


def _iso_like(text: pl.Series, tz: str | None, where: str) -> pl.Series:
    """ISO-like wall-clock text (``2024-03-01 10:00:00,123``, ``2024/03/01T10:00:00.1Z``, ``… +0000``) -> UTC."""
    if text.null_count() == text.len():
        return _null_series(text.name, UTC_TS, text.len())
    fast = _iso_fast(text)
    if fast is not None:
        naive, fmt_has_zone = fast
        if fmt_has_zone:
            return naive
        return _utc(naive, None, tz, where)
    parts = text.str.strip_chars().str.strip_chars('"').str.extract_groups(_ISO_PARTS).struct.unnest()
    clock = pl.when(pl.col("t").str.len_chars() == 5).then(pl.col("t") + ":00").otherwise(pl.col("t"))
    pieces = [pl.col("d"), pl.lit("-"), pl.col("mo"), pl.lit("-"), pl.col("day"), pl.lit(" "), clock]
    wall = parts.select(pl.concat_str([*pieces, pl.lit("."), pl.col("f").fill_null("0")])).to_series()
    naive = parse_naive(wall, "%Y-%m-%d %H:%M:%S%.f")
    return _utc(naive, parts["z"], tz, where)


# the shapes most logs use, tried whole-column first (one chrono pass); others take the general path
_FAST_FORMATS = (
    (r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}$", "%Y-%m-%d %H:%M:%S,%3f", False),
    (r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?$", "%Y-%m-%d %H:%M:%S%.f", False),
    (r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?$", "%Y-%m-%dT%H:%M:%S%.f", False),
    (r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$", "%Y-%m-%dT%H:%M:%S%.f%#z", True),
)


def _iso_fast(text: pl.Series) -> tuple[pl.Series, bool] | None:
    """Parse the whole column with one chrono format when its first value shows the shape and every
    non-null value parses with it; else None (the general path handles mixed or odd shapes)."""
    sample = text.drop_nulls().head(1)
    if sample.len() == 0:
        return None
    first = sample[0]
    for shape, fmt, aware in _FAST_FORMATS:
        if re.match(shape, first):
            if aware:
                out = text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
            else:
                out = text.str.to_datetime(fmt, strict=False, time_unit="us")
            if out.null_count() == text.null_count():
                return out, aware
            return None
    return None


def _chrono(
    text: pl.Series, fmt: LineFormat, zone: pl.Series | None, tz: str | None, where: str
) -> pl.Series:
    """A user datefmt: chrono parse; ``%z`` gives aware times, ``%Z`` a zone name for :func:`localize`."""
    if "%z" in fmt.time:
        aware = text.str.to_datetime(fmt.time, strict=False, time_unit="us", time_zone="UTC")
        return aware.cast(UTC_TS)
    if zone is not None:
        text = pl.select(text.str.replace_all(r"[A-Za-z][A-Za-z0-9+\-]*$", "").str.strip_chars()).to_series()
        naive = text.str.strip_chars().str.to_datetime(fmt.time.strip(), strict=False, time_unit="us")
        return _utc(naive, zone, tz, where)
    naive = text.str.to_datetime(fmt.time, strict=False, time_unit="us")
    return _utc(naive, None, tz, where)


def _epoch_seconds(value: pl.Series) -> pl.Series:
    """Epoch numbers in s, ms, µs or ns (told apart by size) -> UTC datetimes."""
    v = value.cast(pl.Float64, strict=False)
    scaled = pl.select(
        pl.when(v.abs() >= 1e17).then(v / 1e9).when(v.abs() >= 1e14).then(v / 1e6)
        .when(v.abs() >= 1e11).then(v / 1e3).otherwise(v)
    ).to_series()  # fmt: skip
    return parse_epoch(scaled)


# --------------------------------------------------------------------------------------------
# text formats: one regex per format, post-processing per family


def _null_series(name: str, dtype: pl.DataType | type[pl.DataType], n: int) -> pl.Series:
    return pl.repeat(None, n, eager=True, dtype=dtype).alias(name)


def _struct_extra(groups: pl.DataFrame, names: list[str]) -> pl.Series:
    if not names:
        return _null_series("extra", APP_EXTRA, groups.height)
    lst = pl.concat_list([pl.struct(pl.lit(n[2:]).alias("key"), pl.col(n).alias("value")) for n in names])
    out = groups.select(
        lst.list.eval(pl.element().filter(pl.element().struct.field("value").is_not_null())).alias("extra")
    )
    return out.select(pl.when(pl.col("extra").list.len() > 0).then(pl.col("extra")).alias("extra"))[
        "extra"
    ].cast(APP_EXTRA)


def _merge_extra(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return pl.when(a.is_null()).then(b).when(b.is_null()).then(a).otherwise(pl.concat_list([a, b]))


_KV_TARGETS = {
    "message": ("msg", "message", "event"),
    "logger": ("logger", "logger_name", "component", "module"),
    "err": ("error", "err", "exception"),
    "request_id": _REQUEST_ID_KEYS,
    "caller": ("caller", "source", "func"),
    "service": ("service", "service.name", "app"),
    "host": ("host", "hostname"),
    "pid": ("pid",),
    "time_text": ("time", "ts", "t"),
    "level_text": ("level", "lvl"),
}


def _kv_fields(kv: pl.Series) -> pl.DataFrame:
    """``key=value`` pairs (logfmt, structlog console) -> canonical fields and ``extra``."""
    n = kv.len()
    base = pl.DataFrame({"i": pl.int_range(n, eager=True, dtype=pl.UInt32)})
    pairs = (
        pl.DataFrame({"i": base["i"], "p": kv.str.extract_all(_KV)})
        .drop_nulls("p")
        .explode("p")
        .drop_nulls("p")
        .with_columns(
            key=pl.col("p").str.extract(r"^([^=]+)=", 1),
            value=pl.col("p").str.extract(r"^[^=]+=([\s\S]*)$", 1),
        )
    )
    v = pl.col("value")
    pairs = pairs.with_columns(
        value=pl.when(v.str.starts_with('"') & v.str.ends_with('"') & (v.str.len_chars() >= 2))
        .then(
            v.str.slice(1, v.str.len_chars() - 2).str.replace_all(r"\\\"", '"').str.replace_all(r"\\n", "\n")
        )
        .when(v.str.starts_with("'") & v.str.ends_with("'") & (v.str.len_chars() >= 2))
        .then(v.str.slice(1, v.str.len_chars() - 2))
        .otherwise(v)
    )
    known: list[str] = []
    out = base
    for col, keys in _KV_TARGETS.items():
        known.extend(keys)
        picked = (
            pairs.filter(pl.col("key").is_in(list(keys)))
            .group_by("i", maintain_order=True)
            .agg(pl.col("value").first().alias(col))
        )
        out = out.join(picked, on="i", how="left", maintain_order="left")
    extra = (
        pairs.filter(~pl.col("key").is_in(known))
        .group_by("i", maintain_order=True)
        .agg(pl.struct("key", "value").alias("extra"))
    )
    out = out.join(extra, on="i", how="left", maintain_order="left")
    return out.drop("i").with_columns(pl.col("extra").cast(APP_EXTRA))


def _line_fields(
    fmt: LineFormat, text: pl.Series, tz: str | None, where: str
) -> tuple[pl.Series, pl.DataFrame]:
    """Apply one text format to every line: (matched mask, intermediate fields)."""
    groups = text.str.extract_groups("^(?P<_m>)" + fmt.regex.removeprefix("^")).struct.unnest()
    matched = groups["_m"].is_not_null()
    cols = set(groups.columns)
    n = groups.height
    nulls = {name: _null_series(name, dtype, n) for name, dtype in _FIELDS.items()}
    # time
    if fmt.time == "none" or "ts" not in cols:
        ts = _epoch_seconds(groups["epoch"]) if "epoch" in cols else nulls["ts"]
    elif fmt.time == "iso":
        ts = _iso_like(groups["ts"].str.strip_chars('"'), tz, where)
    elif fmt.time == "epoch":
        ts = _epoch_seconds(groups["ts"])
    else:
        ts = _chrono(groups["ts"], fmt, groups["zone"] if "zone" in cols else None, tz, where)
    if "msecs" in cols:
        ms = groups["msecs"].cast(pl.Float64, strict=False)
        ts = pl.select(ts + pl.duration(microseconds=(ms * 1000).round(0).cast(pl.Int64))).to_series()
    level = groups["level"] if "level" in cols else nulls["level"]
    if "levelno" in cols:
        named = (
            groups["levelno"]
            .cast(pl.Int64, strict=False)
            .replace_strict(PY_LEVELNO, default=None, return_dtype=pl.String)
        )
        level = level.fill_null(named) if "level" in cols else named
    extra_names = [c for c in groups.columns if c.startswith("x_")]
    frame = pl.DataFrame(
        {
            "ts": ts.cast(UTC_TS),
            "level": level,
            **{
                c: groups[c] if c in cols else nulls[c]
                for c in ("logger", "message", "pid", "request_id", "caller")
            },
            "extra": _struct_extra(groups, extra_names),
            "head": text,
        }
    )
    if fmt.post == "structlog":
        rest = (
            groups["rest"]
            .str.extract_groups(
                r"^(?P<message>.*?)(?: +\[(?P<logger>[^\]\s]+)\])?(?: +(?P<kv>[\w.\-]+=.*))?\s*$"
            )
            .struct.unnest()
        )
        kvf = _kv_fields(rest["kv"])
        frame = frame.with_columns(
            message=rest["message"].str.strip_chars_end(),
            logger=pl.coalesce(rest["logger"], kvf["logger"]),
            request_id=kvf["request_id"],
            caller=kvf["caller"],
            err=kvf["err"],
            service=kvf["service"],
            extra=kvf["extra"],
        )
    elif fmt.post == "logfmt":
        kvf = _kv_fields(groups["kv"])
        frame = frame.with_columns(
            ts=_iso_like(kvf["time_text"], tz, where).cast(UTC_TS),
            level=kvf["level_text"],
            **{
                c: kvf[c]
                for c in ("message", "logger", "request_id", "caller", "err", "service", "host", "pid")
            },
            extra=kvf["extra"],
        )
    elif fmt.post == "monolog":
        msg = pl.col("message")
        laravel = msg.str.extract_groups(r"^(?P<m>.*?) \{\"exception\":\"(?P<x>.*)$")
        ctx = msg.str.extract_groups(r"^(?P<m>.*?) (?P<c>\{.*\}|\[\]) (?P<e>\{.*\}|\[\])\s*$")
        frame = frame.with_columns(
            message=pl.coalesce(laravel.struct.field("m"), ctx.struct.field("m"), msg),
            tb=laravel.struct.field("x").str.replace_all("\\\\", "\\", literal=True),
            extra=pl.concat_list(
                pl.struct(pl.lit("context").alias("key"), ctx.struct.field("c").alias("value")),
                pl.struct(pl.lit("extra").alias("key"), ctx.struct.field("e").alias("value")),
            ).list.eval(
                pl.element().filter(~pl.element().struct.field("value").is_in(["[]"]).fill_null(True))
            ),
        ).with_columns(extra=pl.when(pl.col("extra").list.len() > 0).then(pl.col("extra")))
    elif fmt.post == "rails":
        tagged = pl.col("message").str.extract_groups(r"^(?P<tags>(?:\[[^\]]*\] ?)+)(?P<m>.*)$")
        tags = tagged.struct.field("tags")
        frame = frame.with_columns(
            message=pl.coalesce(tagged.struct.field("m"), pl.col("message")),
            request_id=tags.str.extract(
                r"\[([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F-]{16,})\]",
                1,
            ),
            extra=pl.when(tags.is_not_null()).then(
                pl.concat_list(pl.struct(pl.lit("tags").alias("key"), tags.str.strip_chars().alias("value")))
            ),
        )
    elif fmt.post == "level_from_message":
        frame = frame.with_columns(
            level=pl.col("message").str.extract(r"^\[?(" + _LEVEL_WORD + r")\]?:?\s", 1)
        )
    frame = frame.with_columns(
        [nulls[c] for c in _FIELDS if c not in frame.columns], extra=pl.col("extra").cast(APP_EXTRA)
    )
    return matched, frame.select(list(_FIELDS))


# --------------------------------------------------------------------------------------------
# JSON lines


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
        key, ts = _first(obj, ("time", "timestamp", "ts", "@timestamp", "t", "date", "datetime", "asctime"))
        if key:
            used.add(key)
            if (isinstance(ts, int | float) and not isinstance(ts, bool)) or (
                isinstance(ts, str) and re.fullmatch(r"\d+(?:\.\d+)?", ts)
            ):
                c["epoch"][i] = float(ts)
            else:
                c["ts_text"][i] = _s(ts)
        key, lv = _first(obj, ("level", "severity", "levelname", "log.level", "lvl", "loglevel"))
        if key is None and isinstance(obj.get("log"), dict):
            lv = obj["log"].get("level")
        if key:
            used.add(key)
        if isinstance(lv, int) and not isinstance(lv, bool):
            lv = NUMERIC_LEVELS.get(lv) or PY_LEVELNO.get(lv)
        c["level"][i] = _s(lv)
        key, v = _first(obj, ("logger", "logger_name", "name", "log.logger", "component", "target"))
        if key:
            used.add(key)
            c["logger"][i] = _s(v)
        key, v = _first(obj, ("service", "service.name", "app", "application"))
        if key:
            used.add(key)
            c["service"][i] = _s(v.get("name") if isinstance(v, dict) else v)
        key, v = _first(obj, ("hostname", "host", "host.name"))
        if key:
            used.add(key)
            c["host"][i] = _s(v.get("name") if isinstance(v, dict) else v)
        key, v = _first(obj, ("pid", "process.pid"))
        if key:
            used.add(key)
            c["pid"][i] = _s(v)
        key, v = _first(obj, _REQUEST_ID_KEYS)
        if key:
            used.add(key)
            c["request_id"][i] = _s(v)
        elif isinstance(obj.get("req"), dict) and obj["req"].get("id") is not None:
            c["request_id"][i] = _s(obj["req"]["id"])
        key, v = _first(obj, ("caller", "source", "func"))
        if key:
            used.add(key)
            if isinstance(v, dict):
                v = f"{v.get('file', '')}:{v.get('line', '')}"
            c["caller"][i] = _s(v)
        # errors and tracebacks
        err_obj = obj.get("err") if isinstance(obj.get("err"), dict) else obj.get("error")
        err_obj = err_obj if isinstance(err_obj, dict) else {}
        key, tb = _first(
            obj, ("exception", "exc_info", "stack", "stacktrace", "stack_trace", "error.stack_trace")
        )
        if key:
            used.add(key)
        types: list[str] | None = None
        if isinstance(tb, list):  # structlog dict_tracebacks: outermost first
            types = [str(e.get("exc_type")) for e in tb if isinstance(e, dict) and e.get("exc_type")]
            tb = "\n".join(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in tb if isinstance(e, dict))
        tb = tb or err_obj.get("stack") or err_obj.get("stack_trace")
        c["tb"][i] = _s(tb)
        key, err = _first(obj, ("error", "err", "error.message"))
        if key:
            used.add(key)
        c["err"][i] = err if isinstance(err, str) else _s(err_obj.get("message"))
        etype = err_obj.get("type") or obj.get("error.type")
        c["exc"][i] = types or ([str(etype)] if etype else None)
        extra = [{"key": k, "value": _s(v)} for k, v in obj.items() if k not in used]
        c["extra"][i] = extra or None
        c["head"][i] = "\n".join(dict.fromkeys(x for x in (c["message"][i], c["err"][i]) if x))
        self.matched[i] = True

    def frame(self, tz: str | None, where: str) -> tuple[pl.Series, pl.DataFrame]:
        c = self.cols
        data = {
            name: pl.Series(name, c[name], dtype=dtype)
            for name, dtype in _FIELDS.items()
            if name not in ("ts", "extra")
        }
        data["extra"] = _extra_column(c["extra"])
        epoch = pl.Series("epoch", c["epoch"], dtype=pl.Float64)
        ts_text = pl.Series("ts_text", c["ts_text"], dtype=pl.String)
        ts = _epoch_seconds(epoch).fill_null(_iso_like(ts_text, tz, where))
        data["ts"] = ts.cast(UTC_TS)
        return pl.Series("m", self.matched, dtype=pl.Boolean), pl.DataFrame(data).select(list(_FIELDS))


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


def _json_fields(text: pl.Series, tz: str | None, where: str) -> tuple[pl.Series, pl.DataFrame]:
    rows = _JsonRows(text.len())
    starts = text.str.strip_chars_start().str.starts_with("{").fill_null(False)
    for i in starts.arg_true().to_list():
        rows.add(i, text[i])
    return rows.frame(tz, where)


# --------------------------------------------------------------------------------------------
# one source


class _Parser:
    """Parses one source chunk by chunk, carrying an unfinished event into the next chunk."""

    def __init__(self, source: Source, opts: _Options, report: ReadReport) -> None:
        self.source = source
        self.opts = opts
        self.service = _service_of(source, opts.service)
        self.tz = _tz_of(self.service, opts.tz)
        head = source.head(256 * 1024).decode("utf-8", "replace").split("\n")
        lines = [ln.rstrip("\r") for ln in (head[:-1] if len(head) > 1 else head)][:1000]
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

    def _parse_chunk(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Lines -> lines with ``_m`` (starts an event), ``multiline``, ``fmt`` and the fields."""
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
                m, f = _json_fields(text, self.tz, self.source.name)
                name = "json"
            else:
                m, f = _line_fields(fmt, text, self.tz, self.source.name)
                name = fmt.name
            m = m & ~matched
            fields = f if fields is None else pl.DataFrame([fields[c].zip_with(~m, f[c]) for c in _FIELDS])
            fmt_name = fmt_name.zip_with(~m, pl.repeat(name, n, eager=True, dtype=pl.String))
            matched = matched | m
        if fields is None:
            fields = pl.DataFrame([_null_series(name, dt, n) for name, dt in _FIELDS.items()])
        if outer is not None:
            fields = fields.with_columns(ts=pl.col("ts").fill_null(outer))
        return pl.DataFrame({"line": frame["line"], "text": text, "_m": matched, "fmt": fmt_name}).hstack(
            fields
        )

    def _chunk_frame(self, chunk: LineChunk) -> pl.DataFrame:
        n = chunk.lines.len()
        text = chunk.lines
        if text.str.contains("\x00", literal=True).any():
            text = text.str.replace_all("\x00", "\ufffd", literal=True)
        return pl.DataFrame(
            {
                "line": pl.int_range(chunk.first_line, chunk.first_line + n, eager=True, dtype=pl.Int64),
                "text": text,
            }
        )

    def _work(self, chunk: LineChunk) -> _ChunkResult:
        """Everything one chunk can do alone (runs in a worker thread: polars releases the GIL).

        The lines before the chunk's first entry (``lead``) and its last event (``tail``, which
        may continue in the next chunk) are left raw for :meth:`run` to stitch.
        """
        parsed = self._parse_chunk(self._chunk_frame(chunk))
        chunk = _ChunkInfo(chunk.first_line, chunk.lines.len(), chunk.fallback_decoded, chunk.damage)
        starts = parsed["_m"].arg_true()
        if starts.len() == 0:
            return _ChunkResult(chunk, parsed, None, None, None)
        first, last = int(starts[0]), int(starts[-1])
        core = parsed.slice(first, last - first)
        events, rejected = _fold(core) if core.height else (None, None)
        finished = self._finish(events) if events is not None and events.height else None
        return _ChunkResult(
            chunk, parsed.slice(0, first), finished, rejected, parsed.slice(last), core.height
        )

    def run(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        """Parse the chunks two at a time and stitch events that cross chunk boundaries."""
        tail: pl.DataFrame | None = None
        chunks = iter_line_chunks(self.source, chunk_bytes=self.opts.chunk_bytes)
        for res in map_ordered(self._work, chunks):
            chunk = res.chunk
            report.lines_read += chunk.n_lines
            if chunk.fallback_decoded:
                report.notes.append(
                    f"{self.source.name}: {chunk.fallback_decoded} line(s) were not UTF-8 and were read as Latin-1"
                )
            stitched = res.lead if tail is None else pl.concat([tail, res.lead], how="vertical_relaxed")
            if res.tail is None:  # no entry starts in this chunk: it all continues the open event
                tail = stitched
            else:
                yield from self._fold_finish(stitched, report)
                if res.rejected is not None:
                    report.lines_parsed += res.core_rows - res.rejected.height
                    if res.rejected.height:
                        report.rejects = pl.concat([report.rejects, self._rejects(res.rejected)])
                if res.events is not None:
                    yield res.events
                tail = res.tail
            if chunk.damage:
                record_damage(report, self.source.name, chunk.first_line + chunk.n_lines - 1, chunk.damage)
        if tail is not None:
            yield from self._fold_finish(tail, report)

    def _fold_finish(self, rows: pl.DataFrame, report: ReadReport) -> Iterator[pl.DataFrame]:
        if rows.height == 0:
            return
        events, rejected = _fold(rows)
        report.lines_parsed += rows.height - rejected.height
        if rejected.height:
            report.rejects = pl.concat([report.rejects, self._rejects(rejected)])
        if events.height:
            yield self._finish(events)

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
        sub = events.with_row_index("_i").filter(multi).with_columns(traceback=tbcol)
        sub = sub.select(
            pl.col("_i"),
            first.str.strip_chars_end().alias("m1"),
            pl.col("traceback"),
            pl.coalesce(pl.col("exc"), exc_chain_expr(pl.col("traceback"))).alias("exc_chain"),
        ).with_columns(
            # an event whose first line is empty (Rails' '  ' before an exception) is named by its next line
            m1=pl.when(pl.col("m1").str.strip_chars() == "").then(fallback).otherwise(pl.col("m1"))
        )
        frame = events.with_columns(message=first.str.strip_chars_end())
        if sub.height:
            frame = (
                frame.with_row_index("_i")
                .join(sub, on="_i", how="left", maintain_order="left")
                .with_columns(
                    message=pl.coalesce(pl.col("m1"), pl.col("message")),
                    exc_chain=pl.coalesce(pl.col("exc_chain"), pl.col("exc")),
                )
            )
        else:
            frame = frame.with_columns(traceback=pl.lit(None, dtype=pl.String), exc_chain=pl.col("exc"))
        frame = _classify(frame, self.opts.rules)
        frame = frame.with_columns(
            exc_type=pl.col("exc_chain").list.last(),
            message_template=message_template_expr("message"),
            level=level_expr(pl.col("level")),
            logger=pl.when(pl.col("logger").str.strip_chars() != "").then(pl.col("logger")),
            service=pl.coalesce(pl.col("service"), pl.lit(self.service, dtype=pl.String)),
            pid=pl.col("pid").cast(pl.Int64, strict=False),
            format=pl.col("fmt"),
            file=pl.lit(self.source.name),
        )
        extra = pl.col("extra") if "extra" in frame.columns else None
        frame = frame.with_columns(
            http_status_expr(pl.col("message"), extra), http_duration_expr(pl.col("message"))
        )
        return conform(frame, APP_EVENTS)


def _classify(frame: pl.DataFrame, rules: tuple[ErrorRule, ...] | None) -> pl.DataFrame:
    """``error_class`` of each event's first line (``head``) plus traceback, as classify_error sees it.

    A cheap scan of the head and the traceback with every rule at once picks the candidates; only
    they get the whole text built and the ordered rules applied.
    """
    table = _resolve(rules)
    anyp = _any_pattern(table) if table else None
    if anyp is None:
        return frame.with_columns(error_class=pl.lit(None, dtype=pl.String))
    hit = frame.select(
        pl.col("head").str.contains(anyp).fill_null(False)
        | pl.col("traceback").str.contains(anyp).fill_null(False)
    ).to_series()
    idx = hit.arg_true()
    full = _null_series("error_class", pl.String, frame.height)
    if idx.len():
        sub = frame.filter(hit).select(
            pl.concat_str([pl.col("head"), pl.col("traceback")], separator="\n", ignore_nulls=True).alias("t")
        )
        full = full.scatter(idx, classify_frame(sub, "t", rules=table)["error_class"])
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
    if flags["c"].any():
        conts = (
            parsed.filter(flags["c"])
            .group_by("_ev", maintain_order=True)
            .agg(pl.col("text").str.join("\n").alias("cont"))
        )
        heads = heads.join(conts, on="_ev", how="left", maintain_order="left")
    else:
        heads = heads.with_columns(cont=pl.lit(None, dtype=pl.String))
    return heads, rejected


# --------------------------------------------------------------------------------------------
# public readers


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

    Files are parsed in chunks of about ``chunk_bytes`` while the query runs; rows come in
    file order, not sorted by time. Rejected lines are counted into the report reachable
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

    return scan_batches(lambda rep: _batches(sources, opts, rep), APP_EVENTS, report, "loglib.scan_app_log")


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
    │ datetime[μs, UTC]           ┆ str   ┆ str                         ┆ str          │
    ╞═════════════════════════════╪═══════╪═════════════════════════════╪══════════════╡
    │ 2024-03-01 10:00:00.120 UTC ┆ error ┆ sqlalchemy.exc.TimeoutError ┆ pool_timeout │
    │ 2024-03-01 10:00:01 UTC     ┆ info  ┆ null                        ┆ null         │
    └─────────────────────────────┴───────┴─────────────────────────────┴──────────────┘
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
        note = (
            f"{missing:,} of {frame.height:,} event(s) carry no timestamp in the log (format {report.format}); "
            "their ts is null: loglib never invents a time. Read the log with its container timestamps "
            "(docker/kubectl logs --timestamps) or join on request_id to place them."
        )
        report.notes.append(note)
        import warnings

        warnings.warn(note, NoTimestampWarning, stacklevel=2)
    return finish_read(frame, report, strict=strict)
