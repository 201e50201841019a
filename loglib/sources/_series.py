"""Shared by the metric readers: label sets, series keys, and turning samples into the metrics frame.

Every metrics parser (Prometheus JSON, ``promtool tsdb dump``, Grafana CSV) registers its series
in one :class:`SeriesTable` and hands over sample frames with a series id; :func:`assemble`
builds the canonical ``metrics`` frame once, so labels, keys and de-duplication work the same
for every format.
"""

from __future__ import annotations

import lzma
import re

import numpy as np
import polars as pl

from loglib.core.rejects import ReadReport, add_rejects
from loglib.core.schema import METRIC_TEXT, METRICS, UTC_TS
from loglib.sources.files import Source

#: a metric name as Prometheus allows it
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# one ``name="value"`` pair and what follows it; the alternatives never overlap, so matching is
# linear in the length of the text (no catastrophic backtracking on hostile input)
_PAIR = re.compile(r'\s*([^\s=",{}]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*([,}])')
_CLOSE = re.compile(r"\s*\}")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPE = {"n": "\n", "\\": "\\", '"': '"'}

#: columns of the per-file sample frames the parsers produce
SAMPLE_SCHEMA = pl.Schema(
    {
        "sid": pl.UInt32,
        "ts": UTC_TS,
        "value": pl.Float64,
        "unit": METRIC_TEXT,
        "file": METRIC_TEXT,
        "line": pl.Int64,
    }
)


def parse_selector(text: str) -> tuple[str | None, dict[str, str]] | None:
    """Split ``name{a="x", b="y"}`` (or ``{...}``, or a bare name) into name and labels.

    Returns None when ``text`` is not a series selector. Label values are unescaped
    (``\\"``, ``\\\\``, ``\\n``) as in the Prometheus text format.

    Examples
    --------
    >>> parse_selector('up{instance="a:9100", job="node"}')
    ('up', {'instance': 'a:9100', 'job': 'node'})
    >>> parse_selector("{}"), parse_selector("not a series!")
    ((None, {}), None)
    """
    text = text.strip()
    brace = text.find("{")
    if brace < 0:
        return (text, {}) if METRIC_NAME.fullmatch(text) else None
    name = text[:brace].strip() or None
    if name is not None and not METRIC_NAME.fullmatch(name):
        return None
    labels: dict[str, str] = {}
    pos = brace + 1
    end = len(text)
    while True:
        close = _CLOSE.match(text, pos)
        if close:
            return (name, labels) if close.end() == end else None
        m = _PAIR.match(text, pos)
        if m is None:
            return None
        labels[m[1]] = _ESCAPE.sub(lambda e: _UNESCAPE.get(e[1], "\\" + e[1]), m[2])
        pos = m.end()
        if m[3] == "}":
            return (name, labels) if pos == end else None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(metric: str | None, labels: dict[str, str]) -> str:
    """The readable key of a series: labels sorted by name, as Prometheus prints them.

    Examples
    --------
    >>> series_key("db_pool_checked_out", {"job": "app", "instance": "api-1"})
    'db_pool_checked_out{instance="api-1", job="app"}'
    >>> series_key(None, {}), series_key("up", {})
    ('{}', 'up')
    """
    body = ", ".join(f'{k}="{_escape(labels[k])}"' for k in sorted(labels))
    if metric and not body:
        return metric
    return f"{metric or ''}{{{body}}}"


def unnamed_metric(labels: dict[str, str], fallback: str | None) -> str:
    """The name of a series that has no ``__name__`` and no ``name=``: stable and readable.

    With labels it is the label set as Prometheus' own UI shows such a series
    (``{state="active"}``); without labels (``sum(rate(x[1m]))``) it is ``fallback`` (the
    export's file name without suffixes), so two different label-less queries in two files
    never merge into one series.

    Examples
    --------
    >>> unnamed_metric({"state": "active"}, "by_state")
    '{state="active"}'
    >>> unnamed_metric({}, "http_503_rate"), unnamed_metric({}, None)
    ('http_503_rate', '{}')
    """
    if labels or not fallback:
        return series_key(None, labels)
    return fallback


def file_stem(source_name: str) -> str | None:
    """``prom/http_503_rate.json.gz`` -> ``http_503_rate``; None for in-memory bytes.

    Examples
    --------
    >>> file_stem("prom/http_503_rate.json.gz"), file_stem("<bytes>")
    ('http_503_rate', None)
    """
    if source_name.startswith("<"):
        return None
    stem = source_name.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".bz2", ".xz", ".json", ".txt", ".csv", ".prom", ".dump"):
        stem = stem.removesuffix(suffix)
    return stem or None


def unnamed_note(table: SeriesTable) -> str | None:
    """The read report's note about series named by :func:`unnamed_metric`, or None."""
    if not table.unnamed:
        return None
    shown = ", ".join(sorted(table.unnamed)[:3]) + (" …" if len(table.unnamed) > 3 else "")
    return (
        f"{len(table.unnamed)} series name(s) made up for series without __name__ (aggregations, "
        f"expressions): {shown}; pass name= (incident.toml: the source's name) to name them"
    )


class SeriesTable:
    """Series seen during one read: key -> id, with the metric name and labels of each."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.metrics: list[str | None] = []
        self.labels: list[dict[str, str]] = []
        self.keys: list[str] = []
        #: metric names made up by :func:`unnamed_metric` in this read (for the read report's note)
        self.unnamed: set[str] = set()

    def add(self, metric: str | None, labels: dict[str, str], key: str | None = None) -> int:
        """The id of a series, registering it on first sight (``key`` overrides the computed key)."""
        key = key if key is not None else series_key(metric, labels)
        sid = self.ids.get(key)
        if sid is None:
            sid = self.ids[key] = len(self.keys)
            self.keys.append(key)
            self.metrics.append(metric)
            self.labels.append(labels)
        return sid

    def add_labelset(self, labels: dict, name: str | None, *, fallback: str | None = None) -> int:
        """Register a Prometheus label set (with ``__name__``); ``name`` when it has none.

        A series with neither (``sum by (state) (...)``, ``sum(rate(...))``) is never left
        without a name: see :func:`unnamed_metric`.
        """
        clean = {str(k): str(v) for k, v in labels.items() if k != "__name__"}
        metric = labels.get("__name__")
        if metric is not None and str(metric):
            return self.add(str(metric), clean)
        if name:
            return self.add(name, clean)
        metric = unnamed_metric(clean, fallback)
        self.unnamed.add(metric)
        return self.add(metric, clean, key=metric)

    def frame(self) -> pl.DataFrame:
        """``sid``, ``metric``, ``labels`` (one field per label name), ``series``: the metrics dtypes."""
        names = sorted({k for labels in self.labels for k in labels})
        text = pl.Struct({k: pl.String for k in names})
        return pl.DataFrame(
            {
                "sid": pl.Series(range(len(self.keys)), dtype=pl.UInt32),
                "metric": pl.Series(self.metrics, dtype=pl.String).cast(METRIC_TEXT),
                "labels": pl.Series(self.labels, dtype=text).cast(pl.Struct({k: METRIC_TEXT for k in names})),
                "series": pl.Series(self.keys, dtype=pl.String).cast(METRIC_TEXT),
            }
        )


def samples_frame(
    sid: int | pl.Series, ts: pl.Series, value: pl.Series, *, file: str, **extra: pl.Series
) -> pl.DataFrame:
    """One parser's samples in the shared intermediate shape (``unit``/``line`` optional)."""
    n = ts.len()
    sids = sid if isinstance(sid, pl.Series) else pl.repeat(sid, n, dtype=pl.UInt32, eager=True)
    return pl.DataFrame(
        {
            "sid": sids.cast(pl.UInt32),
            "ts": ts.cast(UTC_TS),
            "value": value.cast(pl.Float64),
            "unit": extra.get("unit", pl.repeat(None, n, dtype=METRIC_TEXT, eager=True)).cast(METRIC_TEXT),
            "file": _constant_file(file, n),
            "line": extra.get("line", pl.repeat(None, n, dtype=pl.Int64, eager=True)).cast(pl.Int64),
        },
        schema=SAMPLE_SCHEMA,
    )


#: rows of the buffer a part's ``file`` column is made of (:func:`_constant_file`)
_FILE_CHUNK = 1 << 16


def _constant_file(file: str, n: int) -> pl.Series:
    """``file`` repeated ``n`` times as views of one buffer of at most :data:`_FILE_CHUNK` codes:
    a part's ``file`` costs 256 KB, not 4 bytes a sample.

    Examples
    --------
    >>> col = _constant_file("a.json", 150_000)
    >>> col.len(), col.n_chunks(), col.unique().to_list()
    (150000, 3, ['a.json'])
    """
    one = pl.Series("file", [file], dtype=METRIC_TEXT)
    if n <= _FILE_CHUNK:
        return one.new_from_index(0, n)
    block = one.new_from_index(0, _FILE_CHUNK)
    return pl.concat(
        [block.slice(0, min(_FILE_CHUNK, n - i)) for i in range(0, n, _FILE_CHUNK)], rechunk=False
    )


def assemble(table: SeriesTable, parts: list[pl.DataFrame], report: ReadReport) -> pl.DataFrame:
    """The canonical metrics frame: samples joined to their series, overlaps merged, sorted.

    Points of one series at one timestamp that several files (overlapping chunks of one
    query) both hold are kept once, from the first file; a note counts them, and another one
    counts those whose values disagreed. ``parts`` is emptied and each sample column is moved
    into its sorted place and let go, so the read never holds two copies of the samples.
    Exports are runs of one series in time order (a range answer, chunks of a long range):
    then whole runs are moved (:func:`_blocks`), no point is sorted, no row index is built.
    """
    meta = table.frame()
    rank = meta["series"].cast(pl.String).rank("ordinal").cast(pl.UInt32)
    blocks = _blocks(parts, rank)
    if blocks is not None and blocks.height <= _MAX_BLOCKS:
        sids, lengths = blocks["sid"].to_numpy(), (blocks["end"] - blocks["start"]).to_numpy()
        # long runs stay where the parsers put them: each column is a chunk per run (no copy)
        chunked = blocks.height <= _MAX_CHUNKS and lengths.sum() >= _MIN_CHUNK_ROWS * blocks.height
        files = _file_codes(parts, blocks) if chunked else None
        columns = _move_blocks(
            parts, blocks, rechunk=not chunked, made=("sid",) if files is None else ("sid", "file")
        )
        if files is not None:  # a part is one file: its code repeated over each run, stored once
            columns["file"] = _constant_runs(files, lengths)
        for name in ("metric", "labels", "series"):  # one at a time: the peak of the read is here
            columns[name] = _repeat_codes(meta[name], sids, lengths, chunked=chunked)
        if chunked:  # every column cut at the same rows, so no polars operation has to align them
            columns = {k: v if v.n_chunks() == len(lengths) else _cut(v, lengths) for k, v in columns.items()}
    else:  # points out of order or repeated (sort them), or runs too many to move one by one
        samples = pl.concat(parts) if parts else pl.DataFrame(schema=SAMPLE_SCHEMA)
        parts.clear()
        if blocks is not None:
            order = blocks.select(pl.int_ranges("start", "end", dtype=pl.UInt32).explode()).to_series()
        else:
            order = _sorted_order(samples, rank, report)
        columns = _gather(samples, order)
        sid = columns.pop("sid")
        for name in ("metric", "labels", "series"):
            columns[name] = _gather_codes(meta[name], sid)
        del sid
    return pl.DataFrame(columns).select(METRICS.names)


#: more runs than this are moved through one row index instead of one slice per run
_MAX_BLOCKS = 20_000
#: runs this long (and at most this many) are left in place as chunks instead of copied together
_MIN_CHUNK_ROWS = 4096
_MAX_CHUNKS = 4096


def _blocks(parts: list[pl.DataFrame], rank: pl.Series) -> pl.DataFrame | None:
    """The runs of the samples in sorted order (part, start, end), or None if points must be sorted.

    A run is a stretch of rows of one series in one part. When every run rises strictly in
    time and the runs of each series do not overlap (a range answer, chunks of a long range),
    sorting by (series, ts) only moves whole runs. ``start`` and ``end`` count rows of the
    parts concatenated.
    """
    found = []
    offset = 0
    for i, part in enumerate(parts):
        if part.height == 0:
            continue
        if part["ts"].null_count():
            return None
        marks = part.select(
            run=(pl.col("sid") != pl.col("sid").shift(1)).fill_null(True),
            rising=(pl.col("ts").diff() > pl.duration(microseconds=0)).fill_null(True),
        )
        if not (marks["rising"] | marks["run"]).all():
            return None
        start = marks["run"].arg_true().cast(pl.UInt32)
        end = start.shift(-1, fill_value=part.height)
        found.append(
            pl.DataFrame(
                {
                    "part": pl.repeat(i, start.len(), dtype=pl.UInt32, eager=True),
                    "sid": part["sid"].gather(start),
                    "start": start + offset,
                    "end": end + offset,
                    "order": rank.gather(part["sid"].gather(start)),
                    "first": part["ts"].gather(start),
                    "last": part["ts"].gather(end - 1),
                }
            )
        )
        offset += part.height
    if not found:
        return None
    blocks = pl.concat(found).sort("order", "first", maintain_order=True)
    same = pl.col("order") == pl.col("order").shift(1)
    if blocks.select((same & (pl.col("first") <= pl.col("last").shift(1))).any()).item():
        return None  # two runs of a series overlap in time: points repeat or interleave
    return blocks.with_columns(local=pl.col("start") - pl.col("start").min().over("part"))


def _move_blocks(
    parts: list[pl.DataFrame], blocks: pl.DataFrame, *, rechunk: bool, made: tuple[str, ...] = ("sid",)
) -> dict[str, pl.Series]:
    """Each sample column with its runs in ``blocks`` order; every part's column let go once moved.

    Without ``rechunk`` nothing is copied: each run stays in its part's buffer, one chunk. The
    columns in ``made`` are only dropped (the caller makes them from the runs).
    """
    n = int((blocks["end"] - blocks["start"]).sum())
    runs = list(zip(blocks["part"], blocks["local"], blocks["end"] - blocks["start"], strict=True))
    columns: dict[str, pl.Series] = {}
    for name in SAMPLE_SCHEMA.names():
        if name in made:  # the series columns are made from the runs (_repeat_codes)
            parts[:] = [p.drop(name) for p in parts]
            continue
        if all(p[name].null_count() == p.height for p in parts):  # unit, line: nothing to move
            columns[name] = pl.repeat(None, n, dtype=SAMPLE_SCHEMA[name], eager=True).alias(name)
        else:
            columns[name] = pl.concat([parts[i][name].slice(s, k) for i, s, k in runs], rechunk=rechunk)
        parts[:] = [p.drop(name) for p in parts]
    parts.clear()
    return columns


def _gather(samples: pl.DataFrame, order: pl.Series) -> dict[str, pl.Series]:
    """Each column of ``samples`` gathered in ``order``, one at a time (each let go once moved)."""
    in_order = order.len() == samples.height and order.is_sorted()  # a permutation: sorted is unmoved
    columns: dict[str, pl.Series] = {}
    for name in samples.columns:
        col = samples.drop_in_place(name)
        if col.null_count() == col.len():  # unit, line: nothing to move
            columns[name] = pl.repeat(None, order.len(), dtype=col.dtype, eager=True).alias(name)
        else:
            columns[name] = col if in_order else col.gather(order)
        del col
    return columns


def _cut(col: pl.Series, lengths: np.ndarray) -> pl.Series:
    """``col`` as one chunk per run (views of its buffer, no copy)."""
    col = col.rechunk()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return pl.concat([col.slice(int(s), int(k)) for s, k in zip(starts, lengths, strict=True)], rechunk=False)


def _repeat_codes(
    col: pl.Series, sids: np.ndarray, lengths: np.ndarray, *, chunked: bool = False
) -> pl.Series:
    """The value of each series (``col[sid]``) repeated over its runs: one copy of u32 codes.

    ``sids`` and ``lengths`` are the runs in output order. Categorical columns (and structs of
    them) without nulls are built from their codes; anything else is gathered. ``chunked``: one
    chunk per run, and a value shared by many series (``metric``, ``job``) stored once
    (:func:`_constant_runs`).
    """
    if col.dtype == pl.Categorical and not col.null_count():
        codes = col.to_physical().to_numpy()[sids]
        if chunked:
            return _constant_runs(pl.Series(col.name, codes).cat.to(col.dtype, strict=False), lengths)
        return pl.Series(col.name, np.repeat(codes, lengths)).cat.to(col.dtype, strict=False)
    if isinstance(col.dtype, pl.Struct) and not col.null_count() and col.dtype.fields:
        fields = col.struct.unnest()
        return pl.DataFrame(
            [_repeat_codes(fields[f], sids, lengths, chunked=chunked) for f in fields.columns]
        ).to_struct(col.name)
    return _gather_codes(col, pl.Series(np.repeat(sids, lengths).astype(np.uint32)))


def _file_codes(parts: list[pl.DataFrame], blocks: pl.DataFrame) -> pl.Series | None:
    """The ``file`` of each run (:func:`samples_frame` gives a part one file), or None if one is null."""
    first = [p["file"].head(1) for p in parts]
    files = pl.concat([first[i] for i in blocks["part"]], rechunk=True)
    return None if files.null_count() else files


def _constant_runs(values: pl.Series, lengths: np.ndarray) -> pl.Series:
    """Categorical ``values[i]`` repeated ``lengths[i]`` times, one chunk per run; the runs of
    one value are views of one buffer, so a value repeated over many runs costs its longest run.

    Examples
    --------
    >>> v = pl.Series(["a", "b", "a"], dtype=pl.Categorical)
    >>> out = _constant_runs(v, np.array([2, 1, 3]))
    >>> out.to_list(), out.n_chunks()
    (['a', 'a', 'b', 'a', 'a', 'a'], 3)
    """
    codes = values.to_physical().to_numpy()
    longest: dict[int, int] = {}
    for code, k in zip(codes.tolist(), lengths.tolist(), strict=True):
        longest[code] = max(longest.get(code, 0), k)
    dtype = values.dtype
    base = {
        code: pl.Series(values.name, np.full(k, code, dtype=codes.dtype)).cat.to(dtype, strict=False)
        for code, k in longest.items()
    }
    runs = [base[code].slice(0, k) for code, k in zip(codes.tolist(), lengths.tolist(), strict=True)]
    return pl.concat(runs, rechunk=False) if runs else pl.Series(values.name, [], dtype=dtype)


def _gather_codes(col: pl.Series, index: pl.Series) -> pl.Series:
    """``col.gather(index)`` for a Categorical column (or a struct of them) without a second copy.

    polars gathers a Categorical's codes and then copies them into the result; gathering the
    codes (``to_physical``) and wrapping them (``cat.to``, codes known to be valid) copies once.
    """
    if col.dtype == pl.Categorical:
        return col.to_physical().gather(index).cat.to(col.dtype, strict=False).alias(col.name)
    if isinstance(col.dtype, pl.Struct) and not col.null_count() and col.dtype.fields:
        fields = col.struct.unnest()
        return pl.DataFrame([_gather_codes(fields[f], index) for f in fields.columns]).to_struct(col.name)
    return col.gather(index)


def _sorted_order(samples: pl.DataFrame, rank: pl.Series, report: ReadReport) -> pl.Series:
    """The rows of a stable sort by (series, ts), the first of repeated points only (noted)."""
    # a stable sort by (series, ts) puts repeated points next to each other, first file first
    keys = pl.DataFrame({"order": rank.gather(samples["sid"]), "ts": samples["ts"]}).with_row_index("i")
    keys = keys.sort("order", "ts", maintain_order=True)
    repeat = (pl.col("order") == pl.col("order").shift(1)) & (pl.col("ts") == pl.col("ts").shift(1))
    keys = keys.with_columns(repeat=repeat.fill_null(False))
    dropped = int(keys["repeat"].sum())
    if dropped:
        _note_repeats(keys.with_columns(value=samples["value"].gather(keys["i"])), dropped, report)
        keys = keys.filter(~pl.col("repeat"))
    return keys["i"]


def _note_repeats(keys: pl.DataFrame, dropped: int, report: ReadReport) -> None:
    """The read report's note on repeated points (``keys``: order, ts, value, repeat; sorted)."""
    point = pl.struct("order", "ts")
    conflicts = (
        keys.filter(point.is_in(keys.filter("repeat").select(point).to_series().implode()))
        .group_by("order", "ts")
        .agg(pl.col("value").fill_nan(None).n_unique().alias("n"))
        .filter(pl.col("n") > 1)
        .height
    )
    note = f"{dropped:,} duplicate point(s) (same series and time, e.g. overlapping exports) kept once"
    if conflicts:
        note += f"; {conflicts:,} of them had different values, the first file's value was kept"
    report.notes.append(note)


def read_all(source: Source) -> tuple[bytes, str | None]:
    """The whole decompressed content of ``source``, and a note when the stream ended early."""
    blocks: list[bytes] = []
    damage = None
    with source.open_raw() as fh:
        while True:
            try:
                piece = fh.read(1 << 20)
            except (EOFError, OSError, lzma.LZMAError, ValueError) as exc:
                damage = (
                    f"compressed stream is truncated or corrupt ({exc}); the rest of the file is unreadable"
                )
                break
            if not piece:
                damage = damage or getattr(fh, "damage", None)
                break
            blocks.append(piece)
    return b"".join(blocks), damage


def reject_lines(report: ReadReport, file: str, text: str, reason: str) -> int:
    """Reject every physical line of a document: the first with ``reason``, the rest as part of it.

    Returns the number of lines rejected; the caller counts them as read.
    """
    lines = split_lines(text)
    if lines:
        reasons = [reason] + ["part of the document rejected at line 1"] * (len(lines) - 1)
        add_rejects(report, file, list(range(1, len(lines) + 1)), reasons, lines)
    return len(lines)


def split_lines(text: str) -> list[str]:
    """Physical lines of a document (a last line without newline counts; CR of CRLF dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
