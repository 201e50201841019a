"""Application-log timestamps to UTC: ISO-like text, chrono formats (datefmt=), epochs in s/ms/µs/ns."""

from __future__ import annotations

import re

import polars as pl

from loglib.core.schema import UTC_TS
from loglib.core.timeparse import localize, parse_naive
from loglib.formats.app_formats import (
    LineFormat,
)
from loglib.sources.app._common import _null_series

_ISO_PARTS = (
    r"^(?P<d>\d{4})[-/](?P<mo>\d\d)[-/](?P<day>\d\d)[T ](?P<t>\d\d:\d\d(?::\d\d)?)(?:[.,](?P<f>\d{1,9}))?"
    r"\s*(?P<z>Z|[+-]\d\d(?::?\d\d)?|UTC|GMT)?$"
)


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
    return pl.select(epoch_expr(pl.lit(value))).to_series().alias(value.name)


def epoch_expr(value: pl.Expr) -> pl.Expr:
    """:func:`_epoch_seconds` as one expression (no frame per step), kept to the microsecond as
    :func:`~loglib.core.timeparse.parse_epoch` keeps it.

    >>> pl.select(epoch_expr(pl.lit(pl.Series([1709287200, 1709287200123, None])))).to_series().to_list()[1]
    datetime.datetime(2024, 3, 1, 10, 0, 0, 123000, tzinfo=zoneinfo.ZoneInfo(key='UTC'))
    """
    v = value.cast(pl.Float64, strict=False)
    scaled = (
        pl.when(v.abs() >= 1e17).then(v / 1e9).when(v.abs() >= 1e14).then(v / 1e6)
        .when(v.abs() >= 1e11).then(v / 1e3).otherwise(v)
    )  # fmt: skip
    us = (scaled * 1_000_000).round(0).cast(pl.Int64)
    return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
