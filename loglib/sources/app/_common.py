"""What the parts of the application-log reader share: the read's options and the intermediate columns."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from loglib.core.schema import APP_EXTRA, UTC_TS
from loglib.core.timeparse import check_tz
from loglib.errors import LoglibWarning
from loglib.formats.app_formats import (
    JSON_FIELD_KEYS,
    LineFormat,
    formats_named,
    python_format,
)
from loglib.formats.error_rules import (
    ErrorRule,
)
from loglib.sources.files import (
    Source,
)

#: chunk size of application logs: small chunks keep two in flight (two cores) in little memory
APP_CHUNK_BYTES = 4 * 1024 * 1024
#: the default chunk of a JSON-lines source: each chunk costs polars a fixed ~100 eager calls
#: (about 30 ms of CPU), a quarter of a 4 MiB chunk's work; twice the bytes halve that share
APP_JSON_CHUNK_BYTES = 2 * APP_CHUNK_BYTES
_REQUEST_ID_KEYS = JSON_FIELD_KEYS["request_id"]

# the intermediate columns every format produces for every line (null where it does not match)
_FIELDS: dict[str, pl.DataType | type[pl.DataType]] = {
    "ts": UTC_TS, "level": pl.String, "logger": pl.String, "message": pl.String, "pid": pl.String,
    "request_id": pl.String, "host": pl.String, "service": pl.String, "caller": pl.String, "extra": APP_EXTRA,
    "tb": pl.String, "err": pl.String, "exc": pl.List(pl.String), "head": pl.String,
}  # fmt: skip


class NoTimestampWarning(LoglibWarning):
    """Some events carry no timestamp in the log itself; their ``ts`` is null (never invented)."""


@dataclass
class _Options:
    candidates: list[LineFormat | str] | None
    tz: str | Mapping[str, str] | None
    service: str | Mapping[str, str] | None
    rules: tuple[ErrorRule, ...] | None
    chunk_bytes: int


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


def _null_series(name: str, dtype: pl.DataType | type[pl.DataType], n: int) -> pl.Series:
    """``n`` nulls of ``dtype`` (a one-value series repeated: a tenth of ``pl.repeat``'s CPU).

    >>> _null_series("x", pl.String, 3).to_list()
    [None, None, None]
    """
    if n == 0:
        return pl.Series(name, [], dtype=dtype)
    return pl.Series(name, [None], dtype=dtype).new_from_index(0, n)
