"""Grafana CSV downloads (panel inspector "Download CSV", older panel "Export CSV") into metric samples.

What a download can look like, all handled here:

* a UTF-8 BOM; a ``sep=,`` first line ("Download for Excel"); ``,`` or ``;`` (older versions,
  some locales) or tab as delimiter; CRLF; quoted headers with doubled quotes inside;
* "series joined by time" (``Time`` then one column per series), one frame per series (frames
  separated by a blank line or simply by the next ``Time`` header), and the old "series as rows"
  layout (``Series;Time;Value``); the "full" header style (``#name#``, ``#type#``, ``#unit#`` lines);
* epoch-millisecond times (raw data), ISO times with an offset, or "formatted" local times
  without one, which need ``tz=`` (the dashboard's zone) and raise a clear error otherwise;
* values with unit suffixes (``12.3 ms``, ``1.2 kB``, ``45%``, ``1.20 K``): converted to numbers in
  the base unit (seconds, bytes, bytes/s; percent and unknown units stay as printed), and the
  unit kept in the ``unit`` column. An empty cell is a gap, never a zero.

Every line is accounted for: headers, ``sep=`` and ``#type#`` lines are parsed lines, blank lines
are known noise, and rows that do not fit are rejected with a reason.
"""

from __future__ import annotations

import csv
import re

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects
from loglib.core.timeparse import localize, parse_iso
from loglib.errors import FormatError, TimezoneError
from loglib.sources._series import SeriesTable, parse_selector, samples_frame
from loglib.sources.files import Source, iter_line_chunks

_TIME_HEADERS = frozenset({"time", "timestamp", "date", "datetime", "_time"})
_SERIES_HEADERS = frozenset({"series", "metric", "name"})
_DELIMITERS = (",", ";", "\t")
_NUMBER = r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf(?:inity)?|NaN)\s*(.*)$"
_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y/%m/%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")

_TIME_UNITS = {
    "ns": 1e-9, "µs": 1e-6, "μs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
    "min": 60.0, "mins": 60.0, "m": 60.0, "hour": 3600.0, "hours": 3600.0, "h": 3600.0,
    "day": 86400.0, "days": 86400.0, "d": 86400.0, "week": 604800.0, "weeks": 604800.0,
}  # fmt: skip
_BYTE_UNITS = {
    "B": 1.0, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
    "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40, "PiB": 2.0**50,
}  # fmt: skip
#: Grafana's "short" scale suffixes (1.20 K, 3.4 Mil)
_SCALES = {"K": 1e3, "k": 1e3, "Mil": 1e6, "M": 1e6, "Bil": 1e9, "B": 1e9, "Tri": 1e12, "T": 1e12}
#: Grafana unit ids of the "full" header style (``#unit#`` line), for raw (unformatted) values
_UNIT_IDS = {
    "ns": "ns", "µs": "µs", "ms": "ms", "s": "s", "m": "min", "h": "hour", "d": "day",
    "bytes": "B", "decbytes": "B", "kbytes": "KiB", "deckbytes": "kB", "mbytes": "MiB", "decmbytes": "MB",
    "Bps": "B/s", "binBps": "B/s", "percent": "%",
}  # fmt: skip


def unit_factor(suffix: str) -> tuple[float, str | None] | None:
    """``(factor to the base unit, base unit)`` of a printed unit suffix; None if it is not one.

    Examples
    --------
    >>> unit_factor("ms"), unit_factor("kB"), unit_factor("%"), unit_factor("K req/s")
    ((0.001, 's'), (1000.0, 'B'), (1.0, '%'), (1000.0, 'req/s'))
    """
    s = suffix.strip()
    if not s:
        return 1.0, None
    if s[0].isdigit() or s[0] in ",.":
        return None
    if s in _TIME_UNITS:
        return _TIME_UNITS[s], "s"
    if s in _BYTE_UNITS:
        return _BYTE_UNITS[s], "B"
    if s.endswith("/s") and s[:-2] in _BYTE_UNITS:
        return _BYTE_UNITS[s[:-2]], "B/s"
    head, _, rest = s.partition(" ")
    if head in _SCALES:
        inner = unit_factor(rest) if rest else (1.0, None)
        return None if inner is None else (_SCALES[head] * inner[0], inner[1])
    return 1.0, s


def looks_like_csv(first_line: str) -> bool:
    """True when the first line of a file is a Grafana CSV ``sep=`` line or header."""
    line = first_line.lstrip("\ufeff").strip()
    if line.lower().startswith(("sep=", "#name#")):
        return True
    cells = _split(line, _pick_delimiter(line))
    return bool(cells) and len(cells) >= 2 and (_is_header_cell(cells[0]) or _table_header(cells))


def _table_header(cells: list[str]) -> bool:
    """A table panel's header: two or more column names, none a number or a selector.

    >>> _table_header(["instance", "job", "Value", ""]), _table_header(['up{job="a"', 'x="b"} 1 17'])
    (True, False)
    """
    names = [c.strip() for c in cells]
    if names and names[-1] == "":  # Grafana <= 5 ends every row with the delimiter
        names.pop()
    return len(names) >= 2 and all(
        n and len(n) <= 200 and not set(n) & set('{}="') and not re.match(_NUMBER, n) for n in names
    )


def table_panel_error(where: str, columns: list[str]) -> FormatError:
    """The one line for a table panel's download: what it is and what to export instead."""
    cols = ", ".join(c for c in columns if c) or "none"
    return FormatError(
        f"{where}: a table panel, not a time series: columns {cols}. Download the panel's data as a time "
        "series (Inspect > Data of a graph or time-series panel, or 'Series joined by time') to read it."
    )


def _is_header_cell(cell: str) -> bool:
    c = cell.strip().lower()
    return c in _TIME_HEADERS or c in _SERIES_HEADERS


def _split(line: str, delimiter: str) -> list[str] | None:
    try:
        rows = list(csv.reader([line], delimiter=delimiter, quotechar='"', strict=True))
    except csv.Error:
        return None
    return rows[0] if rows else []


def _pick_delimiter(header: str) -> str:
    """The delimiter that makes ``header`` a Grafana header (its first cell names the time)."""
    best, best_n = ",", 0
    for d in _DELIMITERS:
        cells = _split(header, d)
        if cells and len(cells) >= 2 and _is_header_cell(cells[0]):
            return d
        if cells and len(cells) > best_n:
            best, best_n = d, len(cells)
    return best


class _Frame:
    """One block of a download: its header, units and data rows."""

    def __init__(self, header: list[str], line: int) -> None:
        # Grafana <= 5 ends every row with the delimiter: an empty last header cell is no column
        self.trailing = len(header) > 2 and not header[-1].strip()
        if self.trailing:
            header = header[:-1]
        self.header = [h.strip() for h in header]
        self.line = line
        self.units: list[str | None] = [None] * len(header)
        lower = [h.lower() for h in self.header]
        self.long = len(lower) == 3 and {"series", "time", "value"} <= set(lower)
        self.rows: list[tuple[int, list[str]]] = []


def parse_csv(
    source: Source, table: SeriesTable, report: ReadReport, *, name: str | None, tz: str | None
) -> list[pl.DataFrame]:
    """Samples of one Grafana CSV download (see the module docstring for the layouts)."""
    texts: list[str] = []
    damage: str | None = None
    for chunk in iter_line_chunks(source):
        texts.extend(chunk.lines.to_list())
        if chunk.damage:
            damage = chunk.damage
    numbers = list(range(1, len(texts) + 1))
    if texts:
        texts[0] = texts[0].lstrip("\ufeff")
    report.lines_read += len(texts)
    bad_lines: list[int] = []
    bad_reasons: list[str] = []
    bad_texts: list[str] = []

    def reject(n: int, reason: str, text: str) -> None:
        bad_lines.append(n)
        bad_reasons.append(reason)
        bad_texts.append(text)

    delimiter: str | None = None
    frames: list[_Frame] = []
    frame: _Frame | None = None
    for n, text in zip(numbers, texts, strict=True):
        stripped = text.strip()
        if not stripped:
            reject(n, "blank line", text)
            frame = None
            continue
        if delimiter is None and stripped.lower().startswith("sep=") and len(stripped) == 5:
            delimiter = stripped[4]
            continue
        if delimiter is None:
            delimiter = _pick_delimiter(stripped.removeprefix("#name#"))
        cells = _split(text, delimiter)
        if cells is None:
            reject(n, f"not a CSV line (delimiter {delimiter!r})", text)
            continue
        first = cells[0].strip() if cells else ""
        if first.startswith("#") and first.count("#") >= 2:
            key, _, rest = first[1:].partition("#")
            cells[0] = rest
            if key == "name":
                frame = _Frame(cells, n)
                frames.append(frame)
            elif key == "unit" and frame is not None and not frame.rows:
                frame.units = [_UNIT_IDS.get(c.strip(), c.strip() or None) for c in cells]
            elif key == "type" and frame is not None and "time" not in (c.strip().lower() for c in cells):
                raise table_panel_error(source.name, frame.header)  # the file says so: no time field
            continue  # #dateFormat#: nothing to take from it
        if frame is None or (_is_header_cell(first) and len(cells) >= 2):
            if not frames and not _is_header_cell(first) and _table_header(cells):
                raise table_panel_error(source.name, cells)
            if len(cells) < 2 or first[:1].isdigit():
                reject(n, "expected a header line (Time, then one column per series)", text)
                continue
            frame = _Frame(cells, n)
            frames.append(frame)
            continue
        if frame.trailing and len(cells) == len(frame.header) + 1 and not cells[-1].strip():
            cells = cells[:-1]
        if len(cells) != len(frame.header):
            reject(n, f"{len(cells)} field(s), the header at line {frame.line} has {len(frame.header)}", text)
            continue
        frame.rows.append((n, cells))
    for fr in frames:
        text_columns = _text_columns(fr)
        if text_columns:
            raise table_panel_error(source.name, fr.header)
    cells_frame = _cells(frames, table, name, report, source.name)
    parts, bad = _samples(cells_frame, source.name, tz)
    for n, reason in bad:
        reject(n, reason, texts[n - 1])
    if damage:
        report.lines_read += 1
        reject(len(texts) + 1, damage, "")
    report.lines_parsed += len(texts) + (1 if damage else 0) - len(bad_lines)
    add_rejects(report, source.name, bad_lines, bad_reasons, bad_texts)
    return parts


def _text_columns(frame: _Frame) -> list[str]:
    """Value columns whose every cell is text (``api-1``, ``app``): a table panel's label columns."""
    if frame.long or not frame.rows:
        return []
    out = []
    for j, h in enumerate(frame.header[1:], start=1):
        cells = [
            c for _n, row in frame.rows if (c := row[j].strip()) and c.lower() not in ("null", "undefined")
        ]
        if cells and not any(re.match(_NUMBER, _unthousand(c)) for c in cells):
            out.append(h)
    return out


_THOUSANDS = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?:\s|$)"


def _unthousand(cell: str) -> str:
    """``1,721,992,142.283`` -> ``1721992142.283`` (Grafana <= 5 with ``;`` as the delimiter).

    >>> _unthousand("1,721,992,142.283"), _unthousand("12.5 ms")
    ('1721992142.283', '12.5 ms')
    """
    return re.sub(r",(\d{3})", r"\1", cell) if re.match(_THOUSANDS, cell) else cell


def _register(header: str, table: SeriesTable, name: str | None) -> int:
    parsed = parse_selector(header)
    if parsed is not None and (parsed[0] or parsed[1] or name is None):
        if parsed[0] is None and name is None:  # a bare label set: named from its labels
            return table.add_labelset(parsed[1], None)
        return table.add(parsed[0] or name, parsed[1])
    return table.add(name or header, {}, key=header)


def _cells(
    frames: list[_Frame],
    table: SeriesTable,
    name: str | None,
    report: ReadReport | None = None,
    where: str = "",
) -> pl.DataFrame:
    """All value cells as rows: line, sid, time text, cell text, column unit.

    Two series of one file with the same legend name (the same header or ``Series`` text) both
    have a point at a time: the second is kept apart as ``<name> (2)``, never merged with the first
    as if the file were two overlapping exports.
    """
    lines: list[int] = []
    headers: list[str] = []
    times: list[str] = []
    cells: list[str] = []
    units: list[str | None] = []
    for frame in frames:
        if frame.long:
            lower = [h.lower() for h in frame.header]
            i_s, i_t, i_v = lower.index("series"), lower.index("time"), lower.index("value")
            for n, row in frame.rows:
                lines.append(n)
                headers.append(row[i_s].strip())
                times.append(row[i_t])
                cells.append(row[i_v])
                units.append(frame.units[i_v])
            continue
        columns = [(j, h) for j, h in enumerate(frame.header) if j > 0]
        for n, row in frame.rows:
            for j, h in columns:
                lines.append(n)
                headers.append(h)
                times.append(row[0])
                cells.append(row[j])
                units.append(frame.units[j])
    out = pl.DataFrame(
        {"line": lines, "header": headers, "time": times, "cell": cells, "column_unit": units},
        schema={
            "line": pl.Int64,
            "header": pl.String,
            "time": pl.String,
            "cell": pl.String,
            "column_unit": pl.String,
        },
    )
    # the k-th cell of one header at one time belongs to the k-th series of that name
    out = out.with_columns(
        instance=(pl.int_range(pl.len()).over("header", pl.col("time").str.strip_chars()) + 1)
    )
    sid_of: dict[tuple[str, int], int] = {}
    for header, instance in out.select("header", "instance").unique(maintain_order=True).iter_rows():
        first = _register(header, table, name)
        if instance == 1:
            sid_of[(header, 1)] = first
        else:
            key = f"{table.keys[first]} ({instance})"
            sid_of[(header, instance)] = table.add(table.metrics[first], dict(table.labels[first]), key=key)
    shared = sorted({h for h, k in sid_of if k > 1})
    if shared and report is not None:
        report.notes.append(
            f"{where}: {len(shared)} legend name(s) shared by several series in one file "
            f"({', '.join(repr(h) for h in shared[:5])}): the series are kept apart as '<name> (2)', …"
        )
    sids = [sid_of[key] for key in zip(out["header"].to_list(), out["instance"].to_list(), strict=True)]
    return out.select("line", pl.Series("sid", sids, dtype=pl.UInt32), "time", "cell", "column_unit")


def _parse_times(text: pl.Series, tz: str | None, where: str) -> pl.Series:
    """Epoch seconds/milliseconds, ISO with offset, or naive local text (needs ``tz``)."""
    t = text.str.strip_chars()
    num = t.cast(pl.Float64, strict=False)
    num = pl.when(num.is_finite() & (num.abs() < 1e14)).then(num).otherwise(None)
    epoch_us = (
        pl.select(
            pl.when(num.abs() >= 1e11).then(num * 1000).otherwise(num * 1_000_000).round(0).cast(pl.Int64)
        )
        .to_series()
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )
    iso = parse_iso(t)
    naive = pl.coalesce([t.str.to_datetime(f, strict=False, time_unit="us") for f in _NAIVE_FORMATS]).alias(
        "n"
    )
    naive = pl.select(naive).to_series()
    naive_needed = epoch_us.is_null() & iso.is_null() & naive.is_not_null()
    if naive_needed.any():
        if tz is None:
            example = t.filter(naive_needed)[0]
            msg = (
                f'{where}: Grafana "formatted" times carry no offset (e.g. {example!r}); pass tz= with the '
                "dashboard's (or browser's) time zone, e.g. tz='Europe/Berlin' or tz='UTC'. loglib will not guess."
            )
            raise TimezoneError(msg)
        local = localize(naive, None, tz=tz, where=where)
    else:
        local = pl.repeat(None, t.len(), dtype=pl.Datetime("us", "UTC"), eager=True)
    return pl.select(pl.coalesce(epoch_us, iso, local)).to_series()


def _samples(
    cells: pl.DataFrame, file: str, tz: str | None
) -> tuple[list[pl.DataFrame], list[tuple[int, str]]]:
    """Parse times and values; rows (lines) with a bad time or cell are returned as (line, reason)."""
    if cells.height == 0:
        return [], []
    cell = cells["cell"].str.strip_chars()
    # thousands separators (Grafana <= 5 with ';' as the delimiter): 1,721,992,142.283
    cell = pl.select(
        pl.when(cell.str.contains(_THOUSANDS)).then(cell.str.replace_all(r",(\d{3})", "$1")).otherwise(cell)
    ).to_series()
    groups = cell.str.extract_groups(_NUMBER).struct.unnest()
    suffixes = groups["2"].drop_nulls().unique().to_list()
    table = {s: unit_factor(s) for s in suffixes}
    factor = groups["2"].replace_strict(
        {s: f[0] for s, f in table.items() if f}, default=None, return_dtype=pl.Float64
    )
    unit = groups["2"].replace_strict(
        {s: f[1] for s, f in table.items() if f}, default=None, return_dtype=pl.String
    )
    column = cells["column_unit"].drop_nulls().unique().to_list()
    col_table = {u: unit_factor(u) or (1.0, u) for u in column}
    col_factor = cells["column_unit"].replace_strict(
        {u: f[0] for u, f in col_table.items()}, default=1.0, return_dtype=pl.Float64
    )
    col_unit = cells["column_unit"].replace_strict(
        {u: f[1] for u, f in col_table.items()}, default=None, return_dtype=pl.String
    )
    number = groups["1"].cast(pl.Float64, strict=False)
    frame = cells.with_columns(
        empty=(cell == "") | cell.str.to_lowercase().is_in(["null", "undefined"]),
        ts=_parse_times(cells["time"], tz, file),
        number=number,
        factor=factor,
        unit=pl.when(groups["2"] == "").then(col_unit).otherwise(unit),
        col_factor=pl.when(groups["2"] == "").then(col_factor).otherwise(pl.lit(1.0)),
    )
    bad_cell = ~pl.col("empty") & (pl.col("number").is_null() | pl.col("factor").is_null())
    bad_time = pl.col("ts").is_null()
    frame = frame.with_columns(
        reason=pl.when(bad_time)
        .then(
            pl.lit("time is not epoch milliseconds, ISO 8601 or a date-time: ")
            + pl.col("time").str.slice(0, 60)
        )
        .when(bad_cell)
        .then(pl.lit("value is not a number with an optional unit: ") + pl.col("cell").str.slice(0, 60))
    )
    bad_lines = (
        frame.filter(pl.col("reason").is_not_null())
        .group_by("line", maintain_order=True)
        .agg(pl.col("reason").first())
    )
    good = frame.filter(~pl.col("line").is_in(bad_lines["line"].implode()) & ~pl.col("empty"))
    factor = good["factor"] * good["col_factor"]
    # divide by 1000 rather than multiply by 0.001: 950 ms is 0.95 s exactly, not 0.9500000000000001
    value = pl.select(
        pl.when(factor < 1).then(good["number"] / (1 / factor).round(0)).otherwise(good["number"] * factor)
    ).to_series()
    parts = [samples_frame(good["sid"], good["ts"], value, file=file, unit=good["unit"], line=good["line"])]
    return parts, list(zip(bad_lines["line"].to_list(), bad_lines["reason"].to_list(), strict=True))
