"""Text application-log formats: one regex per format, post-processing per family (structlog, logfmt, Monolog, Rails)."""

from __future__ import annotations

import polars as pl

from loglib.core.schema import APP_EXTRA, UTC_TS
from loglib.formats.app_formats import (
    PY_LEVELNO,
    LineFormat,
)
from loglib.sources.app._common import _FIELDS, _REQUEST_ID_KEYS, _null_series
from loglib.sources.app._text_fast import regex_groups
from loglib.sources.app._time import _chrono, _epoch_seconds, _iso_like

_LEVEL_WORD = r"(?i:TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|ERR|CRITICAL|FATAL|PANIC)"
_KV = r"([\w.\-/@]+)=(\"(?:[^\"\\]|\\.)*\"|'[^']*'|\S*)"


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
    groups = regex_groups(fmt.regex, text)
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
