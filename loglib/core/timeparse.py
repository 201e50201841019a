"""The one time parser: local wall-clock text plus a zone (abbreviation, offset or IANA name) to UTC.

PostgreSQL's ``%t``/``%m`` print the zone abbreviation in force at that instant (``CET`` in
winter, ``CEST`` in summer), so an unambiguous abbreviation maps to one fixed offset and DST
needs no guessing. Ambiguous abbreviations (``CST``, ``IST``…) need ``tz=`` naming the server's
``log_timezone``; naive timestamps need ``tz=`` too. Both are errors that say what was seen.
"""

from __future__ import annotations

import re
import sys
import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import cache

import polars as pl

from loglib.core.schema import UTC_TS
from loglib.errors import TimezoneError

_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")
_UTC_NAMES = frozenset({"UTC", "GMT", "Z", "UCT", "UT", "ZULU", "Etc/UTC", "Etc/GMT"})


def _probe_instants() -> list[datetime]:
    # four instants a year (both sides of every DST rule) see every abbreviation a zone has used lately
    return [datetime(y, m, 15, 12) for y in range(2016, 2031) for m in (1, 4, 7, 10)]


@cache
def _zone_abbreviations(zone: str) -> dict[str, int]:
    """Abbreviation -> UTC offset in seconds, as ``zone`` has used them since 2016."""
    tz = zoneinfo.ZoneInfo(zone)
    out: dict[str, int] = {}
    for instant in _probe_instants():
        aware = instant.replace(tzinfo=tz)
        name = aware.tzname()
        off = aware.utcoffset()
        if name and off is not None and name[0] not in "+-":
            out.setdefault(name, int(off.total_seconds()))
    return out


@cache
def _global_abbreviations() -> dict[str, dict[int, list[str]]]:
    """Abbreviation -> {offset seconds: [zones using it]} over every canonical IANA zone."""
    table: dict[str, dict[int, list[str]]] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        if "/" not in zone or zone.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/")):
            continue
        try:
            abbrevs = _zone_abbreviations(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            continue
        for name, off in abbrevs.items():
            table.setdefault(name, {}).setdefault(off, []).append(zone)
    return table


def _fmt_offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    h, m = divmod(abs(seconds) // 60, 60)
    return f"{sign}{h:02d}:{m:02d}"


def check_tz(tz: str | None) -> str | None:
    """Validate a ``tz=`` argument (an IANA name such as ``Europe/Berlin``, or ``UTC``)."""
    if tz is None:
        return None
    if tz.upper() in {"UTC", "GMT", "Z"}:
        return "UTC"
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        msg = (
            f"tz={tz!r} is not an IANA time zone name; use e.g. 'UTC', 'Europe/Berlin' or 'America/New_York'"
        )
        raise TimezoneError(msg) from exc
    return tz


def zone_offset(text: str, tz: str | None = None) -> int | str:
    """Resolve a zone as printed in a log to a fixed offset in seconds or an IANA zone name.

    ``tz`` (the server's ``log_timezone``) settles ambiguous abbreviations.

    Examples
    --------
    >>> zone_offset("CEST"), zone_offset("+0530"), zone_offset("UTC")
    (7200, 19800, 0)
    >>> zone_offset("IST", tz="Asia/Kolkata")
    19800
    """
    t = text.strip()
    if t.upper() in _UTC_NAMES:
        return 0
    m = _OFFSET.match(t)
    if m:
        sign = -1 if m[1] == "-" else 1
        return sign * (int(m[2]) * 3600 + int(m[3] or 0) * 60)
    if "/" in t:
        return check_tz(t) or "UTC"
    if tz is not None and tz != "UTC":
        own = _zone_abbreviations(tz)
        if t in own:
            return own[t]
    choices = _global_abbreviations().get(t)
    if not choices:
        msg = (
            f"unknown time zone abbreviation {t!r}; pass tz= with the server's log_timezone "
            "(an IANA name such as 'Europe/Berlin') so it can be resolved"
        )
        raise TimezoneError(msg)
    if len(choices) > 1:
        options = ", ".join(f"{zones[0]} ({_fmt_offset(off)})" for off, zones in sorted(choices.items()))
        msg = (
            f"time zone abbreviation {t!r} is ambiguous: {options}. Pass tz= with the server's "
            f"log_timezone, e.g. tz={next(iter(choices.values()))[0]!r}"
        )
        raise TimezoneError(msg)
    return next(iter(choices))


def localize(
    naive: pl.Series,
    zone: pl.Series | None,
    *,
    tz: str | None,
    where: str,
) -> pl.Series:
    """Turn naive datetimes plus per-row zone text into UTC datetimes.

    ``zone`` holds what the log printed (``CET``, ``+02``, ``UTC``) or is None when the
    format prints no zone; then ``tz`` must be given. ``where`` names the input for errors.
    """
    naive = naive.cast(pl.Datetime("us"))
    if zone is None or zone.null_count() == zone.len():
        if tz is None:
            if naive.null_count() == naive.len():
                return naive.dt.replace_time_zone("UTC")
            msg = (
                f"{where}: timestamps carry no time zone (e.g. {naive.drop_nulls()[0]}); pass tz= with the "
                "zone the host wrote them in, e.g. tz='UTC' or tz='Europe/Berlin'. loglib will not guess."
            )
            raise TimezoneError(msg)
        tz = check_tz(tz)
        return naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone(
            "UTC"
        )
    values = zone.unique().drop_nulls().to_list()
    offsets: dict[str, int] = {}
    named: dict[str, str] = {}
    for v in values:
        try:
            r = zone_offset(v, tz)
        except TimezoneError as exc:
            raise TimezoneError(f"{where}: {exc}") from None
        if isinstance(r, str):
            named[v] = r
        else:
            offsets[v] = r
    if len(offsets) == 1 and not named and zone.null_count() == 0:  # one zone (the usual log): no lookup
        utc = (
            (naive - timedelta(seconds=next(iter(offsets.values())))).dt.replace_time_zone("UTC").alias("ts")
        )
    else:
        seconds = zone.replace_strict(offsets, default=None, return_dtype=pl.Int64)
        utc = pl.DataFrame({"n": naive, "s": seconds}).select(
            (pl.col("n") - pl.duration(seconds=pl.col("s"))).dt.replace_time_zone("UTC").alias("ts")
        )["ts"]
    for text, name in named.items():
        mask = zone == text
        conv = naive.dt.replace_time_zone(
            name, ambiguous="earliest", non_existent="null"
        ).dt.convert_time_zone("UTC")
        utc = pl.select(pl.when(mask).then(conv).otherwise(utc)).to_series()
    return utc.cast(UTC_TS)


_WALL = "%Y-%m-%d %H:%M:%S%.f"
#: the exact shape most logs print (milliseconds, or none): one fixed-width pass, no cache
_WALL_MS = "%Y-%m-%d %H:%M:%S%.3f"


def parse_naive(text: pl.Series, fmt: str = _WALL) -> pl.Series:
    """Parse wall-clock text (no zone) into naive microsecond datetimes; bad values become null.

    Examples
    --------
    >>> parse_naive(pl.Series(["2024-03-01 10:00:00.123", "2024-03-01 10:00:00.5"])).to_list()
    [datetime.datetime(2024, 3, 1, 10, 0, 0, 123000), datetime.datetime(2024, 3, 1, 10, 0, 0, 500000)]
    """
    if fmt != _WALL:
        return text.str.to_datetime(fmt, strict=False, time_unit="us")
    if text.len() < _FIXED_WIDTH_ROWS and "pyarrow" not in sys.modules:
        return _polars_wall(text)  # a small read does not import numpy and pyarrow (~0.09 CPU-s)
    out, slow = _wall_ms(text)
    if slow is None:
        return out
    # the rows the fixed-width reading leaves: another shape, a leap second, an impossible date
    idx = slow.arg_true()
    return out.scatter(idx, _polars_wall(text.gather(idx)))


def _polars_wall(text: pl.Series) -> pl.Series:
    """:func:`parse_naive` by polars' parser alone (values are nearly all distinct: no cache)."""
    out = text.str.to_datetime(_WALL_MS, strict=False, time_unit="us", cache=False)
    missed = out.is_null() & text.is_not_null()
    if missed.any():  # other fractions (µs, one digit): the general format, on those rows only
        idx = missed.arg_true()
        out = out.scatter(
            idx, text.gather(idx).str.to_datetime(_WALL, strict=False, time_unit="us", cache=False)
        )
    return out


#: the fewest values read at fixed offsets when numpy and pyarrow are not loaded yet
_FIXED_WIDTH_ROWS = 20_000
#: byte positions of ``YYYY-MM-DD HH:MM:SS.mmm`` that hold digits, and the separators before the fraction
_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22)
_SEPARATORS = ((4, b"-"), (7, b"-"), (10, b" "), (13, b":"), (16, b":"))
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _wall_ms(text: pl.Series) -> tuple[pl.Series, pl.Series | None]:
    """``YYYY-MM-DD HH:MM:SS.mmm`` and ``YYYY-MM-DD HH:MM:SS`` values read at fixed byte offsets
    (numpy on the text's bytes, about 5x polars' ``str.to_datetime``), and the rows it did not
    read (None when none).

    A row is read only when it has one of those exact shapes and is a valid instant of years
    1-9999 (no leap second); every other row (null included) is left for the caller to parse.

    >>> out, slow = _wall_ms(pl.Series(["2024-02-29 23:59:59.999", "2023-02-29 00:00:00.000", None]))
    >>> out[0], slow.to_list()
    (datetime.datetime(2024, 2, 29, 23, 59, 59, 999000), [False, True, True])
    """
    import numpy as np  # here, not at import: the CLI starts without them
    import pyarrow as pa

    n = text.len()
    empty = pl.Series(text.name, np.zeros(n, dtype=np.int64)).cast(pl.Datetime("us"))
    if text.dtype != pl.String or n == 0:
        return empty, pl.repeat(True, n, eager=True)
    arr = text.to_arrow(compat_level=pl.CompatLevel.oldest())
    if not isinstance(arr, pa.LargeStringArray):  # pragma: no cover - polars gives large_string
        return empty, pl.repeat(True, n, eager=True)
    _, offs_buf, data_buf = arr.buffers()
    if data_buf is None or data_buf.size == 0:
        return empty, pl.repeat(True, n, eager=True)
    offsets = np.frombuffer(offs_buf, dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)
    base, width = int(offsets[0]), np.diff(offsets)
    wide = int(width.max()) >= 23  # some value may carry milliseconds: read 23 bytes a row
    cols = 23 if wide else 19
    if (width == cols).all() and int(offsets[-1]) - base == cols * n:
        # every value the same width (the usual case): rows of one byte matrix, no copy
        ok = np.ones(n, dtype=bool)
        grid = data[base : base + cols * n].reshape(n, cols)
    else:
        ok = (width == 23) | (width == 19)
        if arr.null_count:
            ok &= text.is_not_null().to_numpy()
        at = np.where(ok, offsets[:-1], 0)[:, None] + np.arange(cols)
        grid = data[np.minimum(at, data.size - 1)]
    grid = grid - np.uint8(48)  # digits become 0-9; every other byte wraps to another value
    for at, sep in _SEPARATORS[:5]:
        ok &= grid[:, at] == np.uint8((sep[0] - 48) % 256)
    d = grid[:, list(_DIGITS[: 17 if wide else 14])]
    ok &= (d[:, :14] < 10).all(axis=1)
    d = d.astype(np.int32)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month, day = d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7]
    hour, minute, sec = d[:, 8] * 10 + d[:, 9], d[:, 10] * 10 + d[:, 11], d[:, 12] * 10 + d[:, 13]
    milli = np.zeros(n, dtype=np.int32)
    if wide:  # the rows 23 bytes long carry '.mmm'; those 19 long, no fraction
        long = width == 23
        ok &= ~long | ((grid[:, 19] == np.uint8((ord(".") - 48) % 256)) & (d[:, 14:] < 10).all(axis=1))
        milli = np.where(long, d[:, 14] * 100 + d[:, 15] * 10 + d[:, 16], 0)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
    month = np.where(ok, month, 1)
    ok &= day <= np.array(_MONTH_DAYS)[month] + (leap & (month == 2))
    ok &= (hour < 24) & (minute < 60) & (sec < 60)
    # days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = ((days.astype(np.int64) * 24 + hour) * 60 + minute) * 60 + sec
    micros = seconds * 1_000_000 + milli * 1000
    out = pl.Series(text.name, np.where(ok, micros, 0)).cast(pl.Datetime("us"))
    if ok.all():
        return out, None
    return out, pl.Series(~ok)


def parse_epoch(seconds: pl.Series) -> pl.Series:
    """Epoch seconds (float, ``%n``) to UTC datetimes, kept to the microsecond."""
    us = (seconds.cast(pl.Float64) * 1_000_000).round(0).cast(pl.Int64)
    return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def parse_iso(text: pl.Series) -> pl.Series:
    """RFC 3339 / ISO 8601 text with ``Z`` or an offset to UTC datetimes; bad values become null."""
    return text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_unit="us", time_zone="UTC")


def parse_instant(value: object, *, argument: str, tz: str | None = None) -> datetime:
    """One moment as an aware UTC datetime: an aware ``datetime``, or RFC 3339 text with ``Z``/an offset.

    A naive time (a ``datetime`` without ``tzinfo``, or text without a zone) is refused unless
    ``tz`` names the zone it was written in: loglib never takes a naive time as UTC.

    Parameters
    ----------
    value
        A ``datetime`` or text such as ``"2026-11-21T22:19:25Z"`` / ``"2026-11-21 23:19:25+01:00"``.
    argument
        What ``value`` is, for messages (``"at"``, ``"events[0].at"``).
    tz
        An IANA zone (or ``"UTC"``) for naive values.

    Raises
    ------
    TimezoneError
        A naive time and no ``tz``.
    ValueError
        Anything that is not a time.

    Examples
    --------
    >>> parse_instant("2026-11-21T23:19:25+01:00", argument="at")
    datetime.datetime(2026, 11, 21, 22, 19, 25, tzinfo=datetime.timezone.utc)
    >>> parse_instant(datetime(2026, 11, 21, 22, 19, 25), argument="at", tz="UTC").isoformat()
    '2026-11-21T22:19:25+00:00'
    >>> parse_instant("2026-11-21T22:19:25", argument="at")
    Traceback (most recent call last):
    loglib.errors.TimezoneError: at: '2026-11-21T22:19:25' has no time zone; add 'Z' or an offset like '+01:00'
    """
    naive: datetime | None = None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        naive = value
    elif isinstance(value, str):
        text = value.strip()
        parsed = parse_iso(pl.Series([text]))[0]
        if parsed is not None:
            return parsed.astimezone(UTC)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        naive = parsed
    if naive is None:
        msg = f"{argument}: {value!r} is not a time; write it like '2026-11-21T22:19:25Z'"
        raise ValueError(msg)
    if tz is None:
        shown = value.isoformat() if isinstance(value, datetime) else repr(value)
        msg = f"{argument}: {shown} has no time zone; add 'Z' or an offset like '+01:00'"
        raise TimezoneError(msg)
    zone = check_tz(tz) or "UTC"
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(UTC)


def format_offset(delta: timedelta) -> str:
    """``+02:00`` style text for a timedelta (for messages)."""
    return _fmt_offset(int(delta.total_seconds()))


_EPOCH = datetime(2000, 1, 1)


def to_timedelta(value: str | timedelta, *, argument: str) -> timedelta:
    """A duration written as polars and Prometheus write them (``"5m"``, ``"1h30m"``, ``"30s"``).

    Examples
    --------
    >>> to_timedelta("1h30m", argument="for_")
    datetime.timedelta(seconds=5400)
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            end = pl.select(pl.lit(_EPOCH).dt.offset_by(value.strip())).item()
        except (pl.exceptions.PolarsError, ValueError):
            end = None
        if end is not None:
            return end - _EPOCH
    msg = f"{argument}={value!r} is not a duration; write it like '30s', '5m', '1h30m' or pass a datetime.timedelta"
    raise ValueError(msg)
