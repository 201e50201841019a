"""Prometheus exports (HTTP API JSON, ``promtool tsdb dump``, Grafana CSV) into the ``metrics`` frame.

One sample per row, long format. Missing steps stay missing: a gap in the export is a gap in the
frame, never a zero. Grafana CSV parsing lives in :mod:`loglib.sources.grafana`; this module
detects the format of each file and owns the public reader.

How JSON documents are accounted for (``loglib.read_report``): ``lines_read`` counts the
physical lines of the file. A document that is not JSON, or not a Prometheus answer, is
rejected whole, one reject row per line (the first carries the reason). Bad elements inside a
good document (a sample whose value is not a number, a series that is not an object) are
dropped and summarised in one reject row at line 1, the line where the document starts.
"""

from __future__ import annotations

import gc
import json
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects, finish_read, record_damage
from loglib.core.schema import METRICS
from loglib.core.timeparse import check_tz, parse_epoch
from loglib.errors import FormatError, NoDataError
from loglib.sources import grafana
from loglib.sources._prom_matrix import MAX_EPOCH_S, Matrix, decode_matrix
from loglib.sources._series import (
    SeriesTable,
    assemble,
    file_stem,
    parse_selector,
    read_all,
    reject_lines,
    samples_frame,
    unnamed_note,
)
from loglib.sources.files import PathsLike, Source, expand_sources, iter_line_chunks

try:  # orjson is several times faster on large exports; the standard library gives the same result
    import orjson

    _loads: Callable[[str], object] = orjson.loads
except ImportError:  # pragma: no cover - exercised only without orjson
    _loads = json.loads

FORMATS = ("prometheus_json", "promtool_dump", "grafana_csv")

# ``{labels} value timestamp_ms``: what ``promtool tsdb dump`` prints per float sample
_DUMP_LINE = r"^(\{.*\}) (\S+) (-?\d{1,19})$"
_DUMP_HISTOGRAM = r"^\{.*\} \{count:"
_MAX_BAD_EXAMPLES = 3
# JSON files read and decoded ahead of the one being accounted for (see _prefetched)
_AHEAD = 2


@dataclass
class _Bad:
    """Elements of one JSON document that were dropped, with a few examples."""

    count: int = 0
    examples: list[str] | None = None

    def add(self, n: int, example: str) -> None:
        self.count += n
        self.examples = self.examples or []
        if len(self.examples) < _MAX_BAD_EXAMPLES:
            self.examples.append(example[:300])


# --------------------------------------------------------------------------------------------
# format detection


def detect_format(source: Source) -> str | None:
    """``prometheus_json``, ``promtool_dump`` or ``grafana_csv`` from the first bytes (None: empty).

    Raises :class:`~loglib.errors.FormatError` naming the first line when nothing fits.
    """
    head = source.head().decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not head:
        return None
    first = head.split("\n", 1)[0].rstrip("\r")
    if pl.Series([first[:100_000]]).str.contains(_DUMP_LINE).item() or first.startswith("{__name__="):
        return "promtool_dump"
    if head[0] in "{[":
        return "prometheus_json"
    if grafana.looks_like_csv(first):
        return "grafana_csv"
    if pl.Series([first[:100_000]]).str.contains(r"^[a-zA-Z_:][a-zA-Z0-9_:]*\{.*\} \S+ -?\d+$").item():
        return "promtool_dump"
    msg = (
        f"{source.name}: not a metrics export loglib knows (Prometheus API JSON, promtool tsdb dump, "
        f"Grafana CSV). First line: {first[:200]!r}. Pass format= ({', '.join(FORMATS)}) to force one."
    )
    raise FormatError(msg)


# --------------------------------------------------------------------------------------------
# Prometheus HTTP API JSON


def _envelope(doc: object, name: str, report: ReadReport) -> tuple[object, str | None] | None:
    """(result, resultType) of an API answer, a bare ``data`` object or a bare result list."""
    if isinstance(doc, list):
        return doc, None
    if not isinstance(doc, dict):
        return None
    if doc.get("status") == "error" or ("error" in doc and "data" not in doc):
        kind = doc.get("errorType") or "error"
        msg = (
            f"{name}: this export is a Prometheus error answer, not data ({kind}: {doc.get('error')!s}). "
            "Fix the query or the time range and export again."
        )
        raise FormatError(msg)
    for warning in doc.get("warnings") or []:
        report.notes.append(f"{name}: Prometheus warned: {warning}")
    data = doc.get("data", doc)
    if not isinstance(data, dict) or "result" not in data:
        return None
    rtype = data.get("resultType")
    return data["result"], rtype if isinstance(rtype, str) else None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector: a parsed export is millions of small lists it would rescan again
    and again (this makes a 1,000 x 11,000 export load in a third of the time). None of them
    forms a cycle, so plain reference counting frees them."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _epoch_ok(seconds: pl.Series) -> pl.Series:
    return seconds.is_finite() & (seconds.abs() < MAX_EPOCH_S)


def _pairs(values: object) -> tuple[pl.Series, pl.Series] | None:
    """Timestamps (Float64 seconds) and value texts of ``[[ts, "v"], ...]``; None if not that shape."""
    if not isinstance(values, list):
        return None
    try:
        if values and set(map(len, values)) != {2}:
            return None
        ts, vs = zip(*values, strict=True) if values else ((), ())
        return pl.Series(ts, dtype=pl.Float64, strict=False), pl.Series(vs, dtype=pl.String, strict=False)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        return None


def _pairs_slow(values: list, bad: _Bad, key: str) -> tuple[pl.Series, pl.Series]:
    """Element by element, for series the fast path refused; bad elements are counted."""
    ts: list[float] = []
    vs: list[str] = []
    for el in values:
        if isinstance(el, list) and len(el) == 2 and isinstance(el[1], str | int | float):
            t = el[0]
            if isinstance(t, int | float) and not isinstance(t, bool):
                ts.append(float(t))
                vs.append(str(el[1]))
                continue
            if isinstance(t, str):
                try:
                    ts.append(float(t))
                    vs.append(str(el[1]))
                    continue
                except ValueError:
                    pass
        bad.add(1, f'{key}: sample {json.dumps(el, default=str)[:200]} is not [timestamp, "value"]')
    return pl.Series(ts, dtype=pl.Float64), pl.Series(vs, dtype=pl.String)


def _series_samples(
    el: object, table: SeriesTable, opts: _Options, file: str, bad: _Bad, histograms: list[int]
) -> pl.DataFrame | None:
    if not isinstance(el, dict) or not isinstance(el.get("metric", {}), dict):
        bad.add(1, f"series element {json.dumps(el, default=str)[:200]} is not {{metric, values}}")
        return None
    sid = table.add_labelset(el.get("metric") or {}, opts.name, fallback=file_stem(file))
    key = table.keys[sid]
    if "histograms" in el or "histogram" in el:
        h = el.get("histograms", [el.get("histogram")])
        histograms[0] += len(h) if isinstance(h, list) else 1
        histograms[1] += 1
    if "values" in el:
        values = el["values"]
    elif "value" in el:
        values = [el["value"]]
    elif "histograms" in el or "histogram" in el:
        return None
    else:
        bad.add(1, f"{key}: series has neither values nor value")
        return None
    pairs = _pairs(values)
    if pairs is None:
        if not isinstance(values, list):
            bad.add(1, f"{key}: values is {type(values).__name__}, not a list")
            return None
        pairs = _pairs_slow(values, bad, key)
    ts, texts = pairs
    value = texts.cast(pl.Float64, strict=False)
    good = ts.is_not_null() & value.is_not_null()
    good = good & _epoch_ok(ts.fill_null(0.0))
    if not good.all():
        n_bad = good.len() - good.sum()
        first = pl.DataFrame({"t": ts, "v": texts}).filter(~good).row(0)
        bad.add(n_bad, f"{key}: {n_bad} sample(s) with a bad timestamp or value, e.g. {list(first)}")
        ts, value = ts.filter(good), value.filter(good)
    return samples_frame(sid, parse_epoch(ts), value, file=file)


#: what a worker thread reads and decodes ahead of the accounting: the bytes (None once decoded:
#: a decoded file is not held twice), the number of lines, the damage note, the columns of a clean
#: range-query answer (None: the general path reads the bytes)
_Fetched = tuple[bytes | None, int, str | None, Matrix | None]


def _fetch_json(source: Source) -> _Fetched:
    raw, damage = read_all(source)
    n_lines = raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)
    matrix = decode_matrix(raw)
    if matrix is None:
        return raw, n_lines, damage, None
    # here, on the worker thread: seconds -> UTC datetimes, each column one buffer (the CSV reader
    # leaves tens of chunks per file, which would make every later step copy)
    matrix.ts, matrix.value = parse_epoch(matrix.ts).rechunk(), matrix.value.rechunk()
    return None, n_lines, damage, matrix


def _prefetched(sources: list[Source], opts: _Options) -> Iterator[tuple[Source, Future[_Fetched] | None]]:
    """The sources in order, each JSON one with its read and decode already running in a thread.

    Two threads work ahead (polars' JSON decoder releases the GIL, so both cores decode), at
    most :data:`_AHEAD` files beyond the one being accounted for, so memory holds a few files,
    not the whole export. A file whose format is not JSON, or does not detect, gets None and is
    read when its turn comes (a detection error is raised then, in file order).
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque[tuple[Source, Future[_Fetched] | None]] = deque()
        for source in sources:
            try:
                fmt = opts.format or detect_format(source)
            except FormatError:
                fmt = None
            pending.append((source, pool.submit(_fetch_json, source) if fmt == "prometheus_json" else None))
            if len(pending) > _AHEAD:
                yield pending.popleft()
        while pending:
            yield pending.popleft()


def _parse_json(
    source: Source, table: SeriesTable, report: ReadReport, opts: _Options, fetched: _Fetched | None = None
) -> list[pl.DataFrame]:
    raw, n_lines, damage, matrix = fetched or _fetch_json(source)
    if matrix is not None:
        parts = _matrix_samples(matrix, n_lines, source, table, report, opts)
    else:
        with _gc_paused():
            parts = _parse_json_text(raw or b"", source, table, report, opts)
    if damage:  # like the line readers: one more line, for the part that could not be read
        record_damage(report, source.name, n_lines, damage)
    return parts


def _matrix_samples(
    matrix: Matrix, n_lines: int, source: Source, table: SeriesTable, report: ReadReport, opts: _Options
) -> list[pl.DataFrame]:
    """The samples of a clean range-query answer (:func:`decode_matrix`): every line parsed."""
    report.lines_read += n_lines
    report.lines_parsed += n_lines
    fallback = file_stem(source.name)
    ids = [table.add_labelset(labels or {}, opts.name, fallback=fallback) for labels in matrix.metrics]
    if not matrix.ts.len():
        return []
    return [samples_frame(matrix.sids(ids), matrix.ts, matrix.value, file=source.name)]


def _parse_json_text(
    raw: bytes, source: Source, table: SeriesTable, report: ReadReport, opts: _Options
) -> list[pl.DataFrame]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        report.notes.append(f"{source.name}: not valid UTF-8; decoded as Latin-1")
    n_lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)  # a lone BOM is a line
    text = text.removeprefix("\ufeff")
    report.lines_read += n_lines
    try:
        doc = _loads(text)
    except (ValueError, RecursionError) as exc:
        reason = f"not valid JSON ({str(exc)[:200]})"
        report.lines_parsed += n_lines - reject_lines(report, source.name, text, reason)
        return []
    found = _envelope(doc, source.name, report)
    shape_error = "JSON, but not a Prometheus API answer: expected {status, data: {resultType, result}} or a result list"
    if found is None:
        report.lines_parsed += n_lines - reject_lines(report, source.name, text, shape_error)
        return []
    result, rtype = found
    bad = _Bad()
    histograms = [0, 0]
    parts: list[pl.DataFrame] = []
    if rtype == "scalar":
        result = [{"metric": {}, "value": result}]
    elif rtype == "string":
        report.lines_parsed += n_lines - reject_lines(
            report, source.name, text, "a Prometheus string result holds no samples"
        )
        return []
    if not isinstance(result, list):
        report.lines_parsed += n_lines - reject_lines(report, source.name, text, shape_error)
        return []
    for el in result:
        part = _series_samples(el, table, opts, source.name, bad, histograms)
        if part is not None and part.height:
            parts.append(part)
    if histograms[0]:
        report.notes.append(
            f"{source.name}: {histograms[0]:,} native histogram sample(s) in {histograms[1]} series skipped "
            "(loglib keeps float samples; query histogram_quantile/histogram_count for numbers)"
        )
    if bad.count:
        reason = f"{bad.count:,} element(s) of the document dropped: " + "; ".join(bad.examples or [])
        first_line = text.split("\n", 1)[0]
        add_rejects(report, source.name, [1], [reason], [first_line])
        report.lines_parsed += n_lines - 1
    else:
        report.lines_parsed += n_lines
    return parts


# --------------------------------------------------------------------------------------------
# promtool tsdb dump


def _parse_dump(source: Source, table: SeriesTable, report: ReadReport, opts: _Options) -> list[pl.DataFrame]:
    parts: list[pl.DataFrame] = []
    histogram_lines = 0
    for chunk in iter_line_chunks(source):
        n = chunk.lines.len()
        lines = pl.DataFrame(
            {"line": pl.int_range(chunk.first_line, chunk.first_line + n, eager=True), "text": chunk.lines}
        )
        lines = lines.with_columns(
            pl.col("text").str.strip_prefix("\ufeff") if chunk.first_line == 1 else pl.col("text")
        )
        groups = lines["text"].str.extract_groups(_DUMP_LINE).struct.unnest()
        lines = lines.hstack(groups.rename({"1": "selector", "2": "v", "3": "t"}))
        uniq = lines["selector"].drop_nulls().unique(maintain_order=True).to_list()
        sids: dict[str, int | None] = {}
        for sel in uniq:
            parsed = parse_selector(sel)
            sids[sel] = (
                None
                if parsed is None
                else table.add_labelset(
                    {"__name__": parsed[0], **parsed[1]} if parsed[0] else parsed[1],
                    opts.name,
                    fallback=file_stem(source.name),
                )
            )
        lines = lines.with_columns(
            sid=pl.col("selector").replace_strict(sids, default=None, return_dtype=pl.UInt32),
            value=pl.col("v").cast(pl.Float64, strict=False),
            ms=pl.col("t").cast(pl.Int64, strict=False),
        )
        ok = (
            pl.col("sid").is_not_null()
            & pl.col("value").is_not_null()
            & pl.col("ms").is_not_null()
            & (pl.col("ms").abs() < int(MAX_EPOCH_S * 1000))
        )
        histogram = pl.col("text").str.contains(_DUMP_HISTOGRAM)
        good = lines.filter(ok)
        histogram_lines += lines.filter(~ok & histogram).height
        bad = lines.filter(~ok & ~histogram)
        reason = (
            pl.when(pl.col("text").str.strip_chars() == "")
            .then(pl.lit("blank line"))
            .when(pl.col("selector").is_null())
            .then(pl.lit("not a promtool dump line ({labels} value timestamp_ms)"))
            .when(pl.col("sid").is_null())
            .then(pl.lit("label set does not parse"))
            .otherwise(pl.lit("value or timestamp is not a number"))
        )
        bad = bad.with_columns(reason=reason)
        report.lines_read += n
        report.lines_parsed += n - bad.height
        add_rejects(
            report, source.name, bad["line"].to_list(), bad["reason"].to_list(), bad["text"].to_list()
        )
        if good.height:
            ts = (good["ms"] * 1000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
            parts.append(samples_frame(good["sid"], ts, good["value"], file=source.name, line=good["line"]))
        if chunk.damage:
            record_damage(report, source.name, chunk.first_line + n - 1, chunk.damage)
    if histogram_lines:
        report.notes.append(
            f"{source.name}: {histogram_lines:,} native histogram sample line(s) skipped (loglib keeps float samples)"
        )
    return parts


# --------------------------------------------------------------------------------------------
# the public reader


@dataclass
class _Options:
    name: str | None
    tz: str | None
    format: str | None


def _parse_source(
    source: Source, table: SeriesTable, report: ReadReport, opts: _Options, fetched: _Fetched | None = None
) -> list[pl.DataFrame]:
    fmt = opts.format or detect_format(source) or "promtool_dump"  # empty files: counted line by line
    label = fmt
    if report.format is None:
        report.format = label
    elif label not in report.format.split(" + "):
        report.format += f" + {label}"
    if fmt == "prometheus_json":
        return _parse_json(source, table, report, opts, fetched)
    if fmt == "promtool_dump":
        return _parse_dump(source, table, report, opts)
    return grafana.parse_csv(source, table, report, name=opts.name, tz=opts.tz)


def read_prometheus(
    paths: PathsLike,
    *,
    name: str | None = None,
    tz: str | None = None,
    format: str | None = None,
    strict: bool = False,
    raise_if_empty: bool = True,
) -> pl.DataFrame:
    """Read Prometheus and Grafana metric exports into the canonical ``metrics`` frame.

    Parameters
    ----------
    paths
        A file, a glob (``"prom/*.json"``), a directory, a list of those, or one export as
        ``bytes``. Several files of one query (chunks of a long range, overlapping or not)
        merge into one frame, each point once.
    name
        The metric name for series whose export has none: an expression such as
        ``rate(http_requests_total[5m])`` drops ``__name__``, and Grafana CSV headers may be
        plain legends.
    tz
        IANA zone of Grafana "formatted" times, which carry no offset (the dashboard's or
        browser's zone). Without it such a file raises :class:`~loglib.errors.TimezoneError`.
    format
        ``"prometheus_json"`` (``/api/v1/query_range``, ``/api/v1/query``, prometheus-api-client
        result lists), ``"promtool_dump"`` (``promtool tsdb dump``) or ``"grafana_csv"``.
        Detected per file when left out.
    strict
        Raise :class:`~loglib.errors.ParseError` at the first rejected line instead of warning.
    raise_if_empty
        Raise :class:`~loglib.errors.NoDataError` when the files hold no sample at all.

    Returns
    -------
    polars.DataFrame
        Columns of ``loglib.schema.METRICS`` (``ts``, ``metric``, ``labels``, ``series``,
        ``value``, ``unit``, ``file``, ``line``), sorted by series then time. ``labels`` is a
        struct with one field per label name in the read. The text columns are ``Categorical``
        (a code per row: a third of the memory of text): compare them with ``==``/``is_in``;
        cast before string functions (``pl.col("series").cast(pl.String).str.contains(...)``). Gaps stay gaps; ``NaN`` and
        ``±inf`` values are kept. Native histogram samples are skipped and counted in
        ``loglib.read_report(df).notes``.

    Raises
    ------
    FormatError
        A file is a Prometheus error answer (the message quotes the server), or no known
        format fits it.

    See Also
    --------
    metrics_wide : one column per series, for plotting and alignment.
    replay_alert : when an alerting rule would have fired on this data.

    Examples
    --------
    >>> import loglib as ll
    >>> answer = (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":'
    ...           b'{"__name__":"db_pool_checked_out","instance":"api-1"},'
    ...           b'"values":[[1709287200,"3"],[1709287215,"NaN"],[1709287245,"9"]]}]}}')
    >>> ll.read_prometheus(answer).select("ts", "series", "value")
    shape: (3, 3)
    ┌─────────────────────────┬─────────────────────────────────┬───────┐
    │ ts                      ┆ series                          ┆ value │
    │ ---                     ┆ ---                             ┆ ---   │
    │ datetime[μs, UTC]       ┆ cat                             ┆ f64   │
    ╞═════════════════════════╪═════════════════════════════════╪═══════╡
    │ 2024-03-01 10:00:00 UTC ┆ db_pool_checked_out{instance="… ┆ 3.0   │
    │ 2024-03-01 10:00:15 UTC ┆ db_pool_checked_out{instance="… ┆ NaN   │
    │ 2024-03-01 10:00:45 UTC ┆ db_pool_checked_out{instance="… ┆ 9.0   │
    └─────────────────────────┴─────────────────────────────────┴───────┘
    """
    if format is not None and format not in FORMATS:
        msg = f"format={format!r} is not one of {', '.join(map(repr, FORMATS))}; leave it out to detect it"
        raise ValueError(msg)
    tz = check_tz(tz)
    sources = expand_sources(paths)
    opts = _Options(name, tz, format)
    report = ReadReport("read_prometheus")
    report.notes.extend(getattr(sources, "notes", ()))  # the same file reached twice
    table = SeriesTable()
    parts: list[pl.DataFrame] = []
    for source, fetching in _prefetched(sources, opts):
        report.files.append(source.name)
        parts.extend(_parse_source(source, table, report, opts, fetching.result() if fetching else None))
    frame = assemble(table, parts, report)
    note = unnamed_note(table)
    if note:
        report.notes.append(note)
    if frame.height == 0 and raise_if_empty:
        msg = (
            f"no metric samples in {', '.join(s.name for s in sources)} "
            f"({report.lines_read} line(s) read, {report.lines_rejected} rejected); "
            "pass raise_if_empty=False to get an empty frame"
        )
        raise NoDataError(msg)
    if frame.height == 0 and report.files:
        report.notes.append(
            f"no metric samples in {len(report.files)} file(s): every answer is empty or unreadable "
            "(a query that matched nothing in that range answers with an empty result)"
        )
    return finish_read(frame, report, strict=strict)


__all__ = ["FORMATS", "METRICS", "detect_format", "read_prometheus"]
