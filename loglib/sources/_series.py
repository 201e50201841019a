"""Shared by the metric readers: label sets, series keys, and turning samples into the metrics frame.

Every metrics parser (Prometheus JSON, ``promtool tsdb dump``, Grafana CSV) registers its series
in one :class:`SeriesTable` and hands over sample frames with a series id; :func:`assemble`
builds the canonical ``metrics`` frame once, so labels, keys and de-duplication work the same
for every format.
"""

from __future__ import annotations

import lzma
import re

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects
from loglib.core.schema import METRICS, UTC_TS
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
        "unit": pl.String,
        "file": pl.String,
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
        """``sid``, ``metric``, ``labels`` (one String field per label name), ``series``."""
        names = sorted({k for labels in self.labels for k in labels})
        dtype = pl.Struct({k: pl.String for k in names})
        return pl.DataFrame(
            {
                "sid": pl.Series(range(len(self.keys)), dtype=pl.UInt32),
                "metric": pl.Series(self.metrics, dtype=pl.String),
                "labels": pl.Series(self.labels, dtype=dtype),
                "series": pl.Series(self.keys, dtype=pl.String),
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
            "unit": extra.get("unit", pl.repeat(None, n, dtype=pl.String, eager=True)),
            "file": pl.repeat(file, n, dtype=pl.String, eager=True),
            "line": extra.get("line", pl.repeat(None, n, dtype=pl.Int64, eager=True)).cast(pl.Int64),
        },
        schema=SAMPLE_SCHEMA,
    )


def assemble(table: SeriesTable, parts: list[pl.DataFrame], report: ReadReport) -> pl.DataFrame:
    """The canonical metrics frame: samples joined to their series, overlaps merged, sorted.

    Points of one series at one timestamp that several files (overlapping chunks of one
    query) both hold are kept once, from the first file; a note counts them, and another one
    counts those whose values disagreed. ``parts`` is emptied: each sample column is gathered
    into its sorted place and let go, so the read never holds two copies of the samples.
    Each part holds one file (:func:`samples_frame`), so ``file`` travels as a part number and
    becomes text at the end, every row a view of one small column of names.
    """
    files = pl.Series("file", [p["file"][0] if p.height else None for p in parts], dtype=pl.String)
    numbered = [p.drop("file").with_columns(file=pl.lit(i, dtype=pl.UInt32)) for i, p in enumerate(parts)]
    parts.clear()
    samples = pl.concat(numbered) if numbered else pl.DataFrame(schema=SAMPLE_SCHEMA)
    named = bool(numbered)  # else the empty frame's file column is already text
    del numbered
    meta = table.frame()
    rank = meta["series"].rank("ordinal").cast(pl.UInt32)
    # a stable sort by (series, ts) puts repeated points next to each other, first file first
    keys = pl.DataFrame({"order": rank.gather(samples["sid"]), "ts": samples["ts"]}).with_row_index("i")
    keys = keys.sort("order", "ts", maintain_order=True)
    repeat = (pl.col("order") == pl.col("order").shift(1)) & (pl.col("ts") == pl.col("ts").shift(1))
    keys = keys.with_columns(repeat=repeat.fill_null(False))
    dropped = int(keys["repeat"].sum())
    if dropped:
        _note_repeats(keys.with_columns(value=samples["value"].gather(keys["i"])), dropped, report)
        keys = keys.filter(~pl.col("repeat"))
    index = keys["i"]
    del keys
    in_order = index.len() == samples.height and index.is_sorted()  # a permutation: sorted is unmoved
    columns: dict[str, pl.Series] = {}
    for name in samples.columns:
        col = samples.drop_in_place(name)
        if col.null_count() == col.len():  # unit, line: nothing to move
            columns[name] = pl.repeat(None, index.len(), dtype=col.dtype, eager=True).alias(name)
        else:
            columns[name] = col if in_order else col.gather(index)
        del col
    rows = meta.drop("sid").select(pl.all().gather(columns.pop("sid")))
    if named:
        columns["file"] = files.gather(columns["file"])
    return pl.concat([rows, pl.DataFrame(columns)], how="horizontal").select(METRICS.names)


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
