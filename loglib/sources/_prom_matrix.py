"""The fast path of ``read_prometheus`` for a range-query answer: polars decodes the ``values``.

A ``/api/v1/query_range`` export is mostly ``"values": [[1709287200.123, "3"], ...]``. Decoding
it with ``orjson`` builds three Python objects per point; :func:`decode_matrix` lets polars'
own JSON reader turn the arrays into columns (no Python object per point) and reads only the
small ``metric`` objects with ``orjson``.

It takes only documents it can read exactly as the general path would: a ``success`` answer
of ``resultType`` ``matrix`` whose every series has one ``metric`` object and one ``values``
array of well-formed ``[timestamp, "value"]`` pairs, every timestamp and value a number, no
warnings, no histograms. Anything else (a bad sample, an error answer, an instant vector, a
truncated file, a label set that is not flat) returns None and the caller reads the document
the general way, which accounts for every element it drops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl

# timestamps beyond this (about year 5000, in seconds) are not sample times
MAX_EPOCH_S = 1e11

_SERIES = pl.Struct(
    {
        "values": pl.List(pl.List(pl.String)),
        # present only in answers the general path reads (instant vectors, native histograms)
        "value": pl.List(pl.String),
        "histograms": pl.List(pl.List(pl.String)),
        "histogram": pl.List(pl.String),
    }
)
_OTHER = ("value", "histograms", "histogram")
_SCHEMA = pl.Schema(
    {
        "status": pl.String,
        "error": pl.String,
        "errorType": pl.String,
        "warnings": pl.List(pl.String),
        "data": pl.Struct({"resultType": pl.String, "result": pl.List(_SERIES)}),
    }
)
# ``"metric": {flat object}``; a JSON string cannot hold an unescaped quote, so ``"metric"``
# followed by a colon is always a key, never text inside a label value
_METRIC = re.compile(rb'"metric"\s*:\s*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})', re.DOTALL)


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
    """The series and points of a clean range-query answer, or None when it is not one.

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
    if body.lstrip()[:1] != b"{":
        return None
    try:
        doc = pl.read_json(body, schema=_SCHEMA)
    except pl.exceptions.PolarsError:
        return None
    if doc.height != 1 or doc["status"][0] != "success" or doc["error"][0] or doc["errorType"][0]:
        return None
    if doc["warnings"].null_count() == 0 and doc["warnings"].list.len()[0]:
        return None
    data = doc["data"]
    if data.null_count() or data.struct.field("resultType")[0] != "matrix":
        return None
    result = data.struct.field("result")
    if result.null_count():
        return None
    series = result.explode(empty_as_null=False)
    n = series.len()
    if series.null_count() or any(series.struct.field(f).null_count() != n for f in _OTHER):
        return None
    values = series.struct.field("values")
    if values.null_count():
        return None
    labels = _labelsets(body, n)
    if labels is None:
        return None
    pairs = values.explode(empty_as_null=False)
    if pairs.null_count() or (pairs.list.len() != 2).any():
        return None
    flat = pairs.explode(empty_as_null=False)
    ts = flat.gather_every(2).cast(pl.Float64, strict=False)
    value = flat.gather_every(2, 1).cast(pl.Float64, strict=False)
    if ts.null_count() or value.null_count() or not (ts.is_finite() & (ts.abs() < MAX_EPOCH_S)).all():
        return None
    return Matrix(labels, values.list.len().to_numpy(), ts, value)


def _labelsets(body: bytes, n: int) -> list[dict] | None:
    """The ``metric`` object of each of the ``n`` series, in document order.

    None unless the text ``"metric"`` occurs exactly n times, each a key with a flat object,
    and ``"values"`` n times too: a label named so, a repeated key (which orjson would read
    differently from polars) or a nested object all go the general way.
    """
    if body.count(b'"metric"') != n or body.count(b'"values"') != n:
        return None
    found: list[dict] = []
    pos = body.find(b'"metric"')
    while pos >= 0:
        m = _METRIC.match(body, pos)
        if m is None:
            return None
        try:
            labels = orjson.loads(m[1])
        except orjson.JSONDecodeError:
            return None
        found.append(labels)
        pos = body.find(b'"metric"', m.end())
    return found
