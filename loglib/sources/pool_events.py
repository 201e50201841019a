"""Pool-event JSON lines (``loglib.instrument.log_pool_events``) into the ``pool_events`` frame.

Each line holds one JSON object starting with ``{"ts"``; text before it (a logging
formatter's prefix) is ignored, so lines that went through the ``logging`` module read the
same as the file ``path=`` writes. A line that is not such an object, is not valid JSON, or
whose fields have the wrong types is rejected with its file and line (``loglib.rejects``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl

from loglib.core.rejects import ReadReport, finish_read, rejects_frame
from loglib.core.schema import POOL_EVENTS, conform
from loglib.core.timeparse import parse_iso
from loglib.errors import NoDataError
from loglib.sources.files import PathsLike, expand_sources, iter_line_chunks

try:
    import orjson

    _loads: Callable[[str], object] = orjson.loads
    _JSONError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - exercised only without orjson
    _loads = json.loads
    _JSONError = ValueError

_MARK = '{"ts"'
_INT, _STR, _NUM, _BOOL = "int", "str", "num", "bool"
#: JSON field -> expected kind; every column of POOL_EVENTS but the evidence columns
_FIELDS: dict[str, str] = {
    "ts": _STR,
    "event": _STR,
    "conn": _INT,
    "backend_pid": _INT,
    "pool": _STR,
    "process": _INT,
    "thread": _STR,
    "task": _STR,
    "size": _INT,
    "checked_out": _INT,
    "overflow": _INT,
    "call_file": _STR,
    "call_line": _INT,
    "call_function": _STR,
    "stack": _STR,
    "gc": _BOOL,
    "error": _STR,
    "sample": _NUM,
}
_REQUIRED = ("ts", "event")
_DTYPES = {_NUM: pl.Float64, _INT: pl.Int64, _BOOL: pl.Boolean, _STR: pl.String}
_INT_LIMIT = 2**62  # polars Int64 holds it; anything larger is damage, not an id


def _kind_ok(value: object, kind: str) -> bool:
    if value is None:
        return True
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == _INT:
        return isinstance(value, int) and -_INT_LIMIT < value < _INT_LIMIT
    return isinstance(value, int | float) and -_INT_LIMIT < value < _INT_LIMIT


def _parse_line(text: str) -> dict | str:
    """The event of one line, or the reason it was rejected."""
    if not text.strip():
        return "blank line"
    start = text.find(_MARK)
    if start < 0:
        return 'not a pool event line (no JSON object starting with {"ts")'
    try:
        obj = _loads(text[start:])
    except (_JSONError, ValueError, RecursionError) as exc:
        return f"bad JSON: {str(exc)[:120]}"
    if not isinstance(obj, dict):
        return "bad JSON: not an object"
    for key in _REQUIRED:
        if not isinstance(obj.get(key), str):
            return f"pool event without a text {key!r} field"
    for key, kind in _FIELDS.items():
        if not _kind_ok(obj.get(key), kind):
            return f"field {key!r} is not {'an integer' if kind == _INT else 'a ' + kind}: {obj.get(key)!r}"[
                :200
            ]
    return obj


def read_pool_events(
    paths: PathsLike,
    *,
    strict: bool = False,
    raise_if_empty: bool = True,
) -> pl.DataFrame:
    """Read pool-event lines written by :func:`loglib.instrument.log_pool_events`.

    Parameters
    ----------
    paths
        A file, glob, directory, list of those, or the bytes of a log (``.gz``/``.bz2``/``.xz`` ok).
    strict
        Raise :class:`~loglib.errors.ParseError` at the first line that is not a pool event
        (blank lines excepted) instead of rejecting it with a warning.
    raise_if_empty
        Raise :class:`~loglib.errors.NoDataError` when no event was found (default), instead of
        returning an empty frame.

    Returns
    -------
    polars.DataFrame
        The ``pool_events`` frame (see ``loglib.schema.POOL_EVENTS``), in file order. Lines
        that did not parse are in ``loglib.rejects(frame)`` with their file and line.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b'{"ts":"2024-03-01T10:00:00.000001+00:00","event":"checkout","conn":1,"call_line":7}\\n'
    ...        b'2024-03-01 10:00:01 INFO {"ts":"2024-03-01T10:00:01Z","event":"checkin","conn":1}\\n')
    >>> ll.read_pool_events(log).select("ts", "event", "conn", "call_line", "line")
    shape: (2, 5)
    ┌────────────────────────────────┬──────────┬──────┬───────────┬──────┐
    │ ts                             ┆ event    ┆ conn ┆ call_line ┆ line │
    │ ---                            ┆ ---      ┆ ---  ┆ ---       ┆ ---  │
    │ datetime[μs, UTC]              ┆ str      ┆ i64  ┆ i64       ┆ i64  │
    ╞════════════════════════════════╪══════════╪══════╪═══════════╪══════╡
    │ 2024-03-01 10:00:00.000001 UTC ┆ checkout ┆ 1    ┆ 7         ┆ 1    │
    │ 2024-03-01 10:00:01 UTC        ┆ checkin  ┆ 1    ┆ null      ┆ 2    │
    └────────────────────────────────┴──────────┴──────┴───────────┴──────┘
    """
    report = ReadReport("read_pool_events", format="pool_events_jsonl")
    frames: list[pl.DataFrame] = []
    reject_parts: list[pl.DataFrame] = []
    for source in expand_sources(paths):
        report.files.append(source.name)
        rows: list[dict] = []
        bad_lines: list[int] = []
        bad_reasons: list[str] = []
        bad_texts: list[str] = []
        last_line = 0
        for chunk in iter_line_chunks(source):
            texts = chunk.lines.to_list()
            report.lines_read += len(texts)
            for offset, text in enumerate(texts):
                number = chunk.first_line + offset
                result = _parse_line(text)
                if isinstance(result, str):
                    bad_lines.append(number)
                    bad_reasons.append(result)
                    bad_texts.append(text)
                else:
                    result["line"] = number
                    rows.append(result)
            last_line = chunk.first_line + len(texts) - 1
            if chunk.damage:
                report.lines_read += 1
                bad_lines.append(last_line + 1)
                bad_reasons.append(chunk.damage)
                bad_texts.append("")
        if rows:
            frame, bad_ts = _frame(rows, source.name)
            if bad_ts.height:
                for number, text in bad_ts.iter_rows():
                    bad_lines.append(number)
                    bad_reasons.append(f"bad timestamp {text[:60]!r}: write ISO 8601 with an offset")
                    bad_texts.append(text)
            frames.append(frame)
        reject_parts.append(rejects_frame(source.name, bad_lines, bad_reasons, bad_texts))
    report.rejects = pl.concat(reject_parts) if reject_parts else report.rejects
    report.lines_parsed = report.lines_read - report.rejects.height
    frame = pl.concat(frames) if frames else POOL_EVENTS.empty()
    if frame.height == 0 and raise_if_empty:
        msg = (
            f"no pool events in {', '.join(report.files) or 'the input'} ({report.lines_read} line(s) read, "
            f"{report.rejects.height} rejected); write them with loglib.instrument.log_pool_events, or pass "
            "raise_if_empty=False to get an empty frame"
        )
        raise NoDataError(msg)
    return finish_read(frame, report, strict=strict)


def _frame(rows: list[dict], name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The canonical frame of one file's events, and (line, ts text) of events whose time is bad."""
    columns = {key: [r.get(key) for r in rows] for key in (*_FIELDS, "line")}
    raw = pl.DataFrame(
        columns,
        schema={**{k: _DTYPES[v] for k, v in _FIELDS.items()}, "line": pl.Int64},
        strict=False,
    )
    raw = raw.with_columns(parse_iso(raw["ts"]).alias("ts_parsed"), pl.lit(name).alias("file"))
    bad = raw.filter(pl.col("ts_parsed").is_null()).select("line", pl.col("ts").cast(pl.String))
    good = raw.filter(pl.col("ts_parsed").is_not_null()).with_columns(pl.col("ts_parsed").alias("ts"))
    return conform(good, POOL_EVENTS), bad
