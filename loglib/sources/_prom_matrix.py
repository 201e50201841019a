"""The fast path of ``read_prometheus`` for a range-query answer: the ``values`` read as CSV.

A ``/api/v1/query_range`` export is mostly ``"values":[[1709287200.123,"3"],...]``. Decoding it
with ``orjson`` builds three Python objects per point. :func:`decode_matrix` instead cuts the
arrays out of the text, so ``orjson`` reads only the small rest (envelope, ``metric`` objects:
exactly what the general path sees, with every ``values`` empty), and polars' multi-threaded CSV
reader splits the arrays at ``]`` into ``[timestamp,"value"`` rows, no Python object per point.

It takes only what it can read exactly as the general path would: a ``success`` answer of
``resultType`` ``matrix`` (compact, ``json.dump``-spaced or pretty-printed), every series one
``metric`` object and one ``values`` array of ``[JSON number,"text"]`` pairs whose timestamps
are sample times and whose values are numbers, no warnings, no histograms. Anything else (a bad
sample, an error answer, an instant vector, a truncated file) returns None and the caller reads
the document the general way, which accounts for every element it drops. The arrays are read a
few MB at a time, so a file's decoding holds little more than the file itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl

# timestamps beyond this (about year 5000, in seconds) are not sample times
MAX_EPOCH_S = 1e11

_VALUES = re.compile(rb'"values"\s*:\s*\[')
# JSON's whitespace: ``json.dump`` writes ``[1709287200, "3"], [...]``, ``indent=`` one token a line
_WS = b" \t\r\n"
# what the arrays of an answer are made of (``S`` marks the first pair of each series)
_ARRAY_BYTES = b'0123456789.eE+-,"[]NaInfS' + _WS
# ``[`` and a JSON number, as the CSV reader leaves a timestamp; a value is a quoted string
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_TIMESTAMP = rf"^\[{_NUMBER}$"
_SPACED_TIMESTAMP = rf"^[ \t\r\n]*\[[ \t\r\n]*{_NUMBER}[ \t\r\n]*$"
_SPACED_QUOTED = r'^[ \t\r\n]*"[^"]*"[ \t\r\n]*$'
# the arrays are read in pieces of about this many bytes (the CSV reader's strings are ~3x that)
_PIECE_BYTES = 4 << 20
_ROWS = pl.Schema({"first": pl.String, "t": pl.String, "v": pl.String})


@dataclass
class Matrix:
    """A range-query answer as columns: one label set per series, its point count, all points."""

    metrics: list[dict]
    lengths: np.ndarray
    ts: pl.Series
    value: pl.Series

    def sids(self, ids: list[int]) -> pl.Series:
        """The series id of every point, given the id of each series."""
        return pl.Series("sid", np.repeat(np.asarray(ids, dtype=np.uint32), self.lengths))


def decode_matrix(raw: bytes) -> Matrix | None:
    """The series and points of a clean, compact range-query answer, or None when it is not one.

    Examples
    --------
    >>> m = decode_matrix(b'{"status":"success","data":{"resultType":"matrix","result":['
    ...                   b'{"metric":{"__name__":"up"},"values":[[1709287200,"1"],[1709287215,"NaN"]]}]}}')
    >>> m.metrics, m.lengths.tolist(), m.ts.to_list(), m.value.to_list()
    ([{'__name__': 'up'}], [2], [1709287200.0, 1709287215.0], [1.0, nan])
    >>> decode_matrix(b'{"status":"success","data":{"resultType":"vector","result":[]}}') is None
    True
    """
    body = raw.removeprefix(b"\xef\xbb\xbf")
    cut = _cut_arrays(body)
    if cut is None:
        return None
    rest, arrays, empty = cut
    labels = _labelsets(rest, len(arrays) + len(empty))
    if labels is None:
        return None
    lengths = np.zeros(len(labels), dtype=np.int64)
    if not arrays:
        return Matrix(labels, lengths, pl.Series([], dtype=pl.Float64), pl.Series([], dtype=pl.Float64))
    counts, ts, value = [], [], []
    for group in _pieces(arrays):
        points = _points(b"S,".join([b"", *group]), len(group))  # one copy: ``S,[..]S,[..]``
        if points is None:
            return None
        starts, piece_ts, piece_value = points
        counts.append(np.diff(starts, append=piece_ts.len()))
        ts.append(piece_ts)
        value.append(piece_value)
    full = np.ones(len(labels), dtype=bool)
    full[empty] = False
    lengths[full] = np.concatenate(counts)
    return Matrix(labels, lengths, pl.concat(ts, rechunk=False), pl.concat(value, rechunk=False))


def _pieces(arrays: list[memoryview]) -> Iterator[list[memoryview]]:
    """Consecutive arrays in groups of about :data:`_PIECE_BYTES` (a longer array is a group alone)."""
    group: list[memoryview] = []
    size = 0
    for a in arrays:
        if group and size + a.nbytes > _PIECE_BYTES:
            yield group
            group, size = [], 0
        group.append(a)
        size += a.nbytes
    if group:
        yield group


def _cut_arrays(body: bytes) -> tuple[bytes, list[memoryview], list[int]] | None:
    """The text without the insides of the ``values`` arrays, those insides, and which were empty."""
    view = memoryview(body)
    kept: list[memoryview] = []
    arrays: list[memoryview] = []
    empty: list[int] = []
    last = 0
    pos = body.find(b'"values"')
    while pos >= 0:
        m = _VALUES.match(body, pos)
        if m is None:
            return None
        start = m.end()
        # arrays hold no brace: the array ends at the last ``]`` before the series' ``}`` (if
        # anything else stands between, such as a histograms key, the byte check refuses it)
        close = body.rfind(b"]", start, body.find(b"}", start))
        if close < 0:
            return None
        end = close
        while end > start and body[end - 1] in _WS:
            end -= 1
        if end == start:
            empty.append(len(arrays) + len(empty))
        else:
            arrays.append(view[start:end])
        kept.append(view[last:start])
        last = close
        pos = body.find(b'"values"', close)
    kept.append(view[last:])
    return b"".join(kept), arrays, empty


def _labelsets(rest: bytes, n: int) -> list[dict] | None:
    """The ``metric`` of each series of the answer without its points (None: not a clean matrix of n)."""
    try:
        doc = orjson.loads(rest)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("status") != "success" or doc.get("warnings"):
        return None
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        return None
    result = data.get("result")
    if not isinstance(result, list) or len(result) != n:  # a repeated "values" key: the general path
        return None
    labels = []
    for el in result:
        if not isinstance(el, dict) or el.get("values") != [] or not el.keys() <= {"metric", "values"}:
            return None
        metric = el.get("metric", {})
        if not isinstance(metric, dict):
            return None
        labels.append(metric)
    return labels


def _points(text: bytes, n_series: int) -> tuple[np.ndarray, pl.Series, pl.Series] | None:
    """Where each series starts, timestamps and values of ``S,[t,"v"],[t,"v"]S,[t,"v"]...``."""
    if text.translate(None, _ARRAY_BYTES) or text.count(b"S") != n_series:
        return None
    try:
        rows = pl.read_csv(text, has_header=False, quote_char=None, eol_char="]", schema=_ROWS)
    except pl.exceptions.PolarsError:
        return None
    if rows["t"].null_count() or rows["v"].null_count():
        return None
    first = rows["first"]
    if first.null_count() + int((first == "S").sum()) != rows.height:
        return None
    t, v = pl.col("t"), pl.col("v")
    if any(c in text for c in (b" ", b"\n", b"\r", b"\t")):  # whitespace may stand beside any token
        shaped = t.str.contains(_SPACED_TIMESTAMP).all() & v.str.contains(_SPACED_QUOTED).all()
        t, v = t.str.strip_chars(" \t\r\n["), v.str.strip_chars(" \t\r\n")
    else:  # what Prometheus writes; a quote inside a value would fail its cast below
        quoted = v.str.starts_with('"') & v.str.ends_with('"') & (v.str.len_bytes() >= 2)
        shaped = t.str.contains(_TIMESTAMP).all() & quoted.all()
        t = t.str.slice(1)
    if not rows.select(shaped).item():
        return None
    cols = rows.select(
        ts=t.cast(pl.Float64, strict=False),
        value=v.str.slice(1, v.str.len_bytes() - 2).cast(pl.Float64, strict=False),  # inside the quotes
    )
    ts, value = cols["ts"], cols["value"]
    if ts.null_count() or value.null_count() or not (ts.is_finite() & (ts.abs() < MAX_EPOCH_S)).all():
        return None
    starts = first.is_not_null().arg_true().to_numpy()
    return (starts, ts, value) if len(starts) == n_series else None
