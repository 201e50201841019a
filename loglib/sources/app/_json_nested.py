"""Nested values and explicit nulls of JSON log records, as expressions.

The record-by-record reader keeps a nested value (an object or array no field is read from) as
an ``extra`` spelled the way Python's ``json.dumps`` spells it, and a key written with ``null``
as an ``extra`` without a value. polars' struct columns say neither, so both are read from the
line itself: ``str.json_path_match`` gives a nested value's compact JSON in the record's own key
order (a space after each ``,`` and ``:`` makes it Python's spelling), and a ``"key": null``
in the line marks an explicit null. What could be read two ways (an escape, an exponent, a key
that also stands inside a nested value) is left to the record-by-record reader.
"""

from __future__ import annotations

import re

import polars as pl

from loglib.core.schema import APP_EXTRA
from loglib.sources.app._common import _FIELDS

#: the raw line, beside the decoded keys (no JSON key is spelled so)
LINE = "\x00line"
#: a run of compact JSON up to a separator outside strings: a space after it is Python's spelling
_SEPARATOR = r'((?:"(?:[^"\\]|\\.)*"|[^",:])*)([,:])'
#: compact JSON whose Python spelling may differ: an escape (``\n``, ``\u2028``), an exponent
_OTHER_SPELLING = r"\\|\d[eE]"
#: a line with a null somewhere (the per-key search runs on these lines only)
_SOME_NULL = r":\s*null\s*[,}\]]"


def python_float(value: pl.Expr) -> pl.Expr:
    """A Float64 as Python's ``repr`` writes it: polars writes ``0.00001`` and ``2.5e-7`` where
    Python writes ``1e-05`` and ``2.5e-07`` (from 1e-4 up, and for the exponents of 1e16 and
    more, the two agree).

    >>> pl.select(python_float(pl.lit(pl.Series([1e-05, -2.5e-07, 0.5, 1e16])))).to_series().to_list()
    ['1e-05', '-2.5e-07', '0.5', '1e+16']
    """
    text = value.cast(pl.String)
    digits = text.str.extract(r"^-?0\.0*([1-9]\d*)$", 1)  # 0.000012 -> 12: 1.2e-05
    negative = text.str.starts_with("-")
    zeros = text.str.len_chars() - digits.str.len_chars() - pl.when(negative).then(3).otherwise(2)
    exponent = (zeros + 1).cast(pl.String).str.zfill(2)
    rest = digits.str.slice(1)
    fraction = pl.when(rest != "").then(pl.concat_str(pl.lit("."), rest)).otherwise(pl.lit(""))
    sign = pl.when(negative).then(pl.lit("-")).otherwise(pl.lit(""))
    scientific = pl.concat_str(sign, digits.str.slice(0, 1), fraction, pl.lit("e-"), exponent)
    return (
        pl.when(digits.is_not_null() & (value.abs() < 1e-4))
        .then(scientific)
        .otherwise(text.str.replace(r"e-(\d)$", "e-0${1}"))
    )


def float_literals(frame: pl.DataFrame, keys: list[str]) -> list[pl.Series]:
    """``\x00f<key>``: a whole-number Float64 value's literal in the line (``5`` or ``5.0``: polars
    reads ``5`` as 5.0 in a column of floats, the record-by-record reader keeps it an int), found
    where the line spells the key once; null elsewhere."""
    out = []
    n = frame.height
    for key in keys:
        value = frame[key]
        text = pl.repeat(None, n, eager=True, dtype=pl.String)
        idx = (value.is_not_null() & (value == value.floor())).fill_null(False).arg_true()
        if idx.len():
            spelled = '"' + re.escape(key) + r'"\s*:'
            line = frame[LINE].gather(idx)
            found = line.str.extract(spelled + r"\s*(-?[0-9][0-9.eE+-]*)", 1)
            once = line.str.count_matches(spelled) == 1
            text = text.scatter(
                idx,
                found.zip_with(
                    once.fill_null(False), pl.repeat(None, idx.len(), eager=True, dtype=pl.String)
                ),
            )
        out.append(text.alias(f"\x00f{key}"))
    return out


def python_json(text: pl.Series | pl.Expr) -> pl.Series | pl.Expr:
    """Compact JSON as Python's ``json.dumps`` writes it (``", "`` and ``": "`` separators).

    >>> python_json(pl.Series(['{"a":1,"b":["x,y: z",2]}'])).to_list()
    ['{"a": 1, "b": ["x,y: z", 2]}']
    """
    return text.str.replace_all(_SEPARATOR, "${1}${2} ")


def _path(key: str) -> str | None:
    return None if "'" in key or "\\" in key else f"$['{key}']"


def nested_texts(frame: pl.DataFrame, keys: list[str]) -> list[pl.Series]:
    """``\\x00j<key>``: each nested value as Python's JSON text (null where absent, or where the
    key cannot be named in a JSON path); only the rows holding the value are searched."""
    out = []
    n = frame.height
    for key in keys:
        path = _path(key)
        text = pl.repeat(None, n, eager=True, dtype=pl.String)
        idx = frame[key].is_not_null().arg_true()
        if path is not None and idx.len():
            found = python_json(frame[LINE].gather(idx).str.json_path_match(path))
            text = text.scatter(idx, found)
        out.append(text.alias(f"\x00j{key}"))
    return out


def explicit_nulls(lines: pl.Series, keys: list[str], has_null: pl.Series | None = None) -> list[pl.Series]:
    """``\\x00n<key>``: the line writes ``"key": null`` (somewhere: :func:`nested_checks` makes
    sure it is at the top level); ``has_null``: which lines hold ``null``, when already known."""
    n = lines.len()
    if has_null is None:
        has_null = lines.str.contains("null", literal=True).fill_null(False)
    idx = has_null.arg_true()
    if idx.len():
        idx = idx.filter(lines.gather(idx).str.contains(_SOME_NULL).fill_null(False))
    none = pl.repeat(False, n, eager=True, dtype=pl.Boolean)
    if not idx.len():
        return [none.alias(f"\x00n{key}") for key in keys]
    out = []
    with_null = lines.gather(idx)
    for key in keys:
        found = with_null.str.contains('"' + re.escape(key) + r'"\s*:\s*null\s*[,}]')
        out.append(none.clone().scatter(idx, found.fill_null(False)).alias(f"\x00n{key}"))
    return out


def nested_checks(schema: pl.Schema, nested: list[str], included: dict[str, pl.Expr]) -> list[pl.Expr]:
    """What a row needs for its nested values and explicit nulls to be read exactly here: each
    nested extra has a text of one spelling, and no key kept as an extra (``included``: the keys
    that are an extra in some row) also stands inside a nested value (its place in the line, and
    a ``null`` found for it, would be ambiguous)."""
    checks: list[pl.Expr] = []
    for key in nested:
        text, used = pl.col(f"\x00j{key}"), pl.col(f"\x00u{key}")
        extra = pl.col(key).is_not_null() & ~used
        checks.append(~extra | (text.is_not_null() & ~text.str.contains(_OTHER_SPELLING).fill_null(True)))
    if nested and included:
        inside = pl.concat_str([pl.col(f"\x00j{k}") for k in nested], separator="\x01", ignore_nulls=True)
        inside = pl.coalesce(inside, pl.lit(""))
        checks.extend(~inc | ~inside.str.contains(f'"{k}":', literal=True) for k, inc in included.items())
    return checks


def field_roles(key: str, dtype: pl.DataType, chosen: dict[str, pl.Expr]) -> list[pl.Expr]:
    """The fields a nested value may be read as, exactly: a ``service``/``host`` object's
    ``name``, structlog's ``dict_tracebacks`` list as the traceback."""
    roles: list[pl.Expr] = []
    if isinstance(dtype, pl.Struct) and dtype.to_schema().get("name", pl.String) == pl.String:
        roles.extend((chosen[t] == key).fill_null(False) for t in ("service", "host"))
    if _is_exception_list(dtype):
        e = pl.element().struct
        whole = pl.col(key).list.eval(e.field("exc_type").is_not_null() & e.field("exc_value").is_not_null())
        roles.append((chosen["tb"] == key).fill_null(False) & whole.list.all())
    return roles


def _is_exception_list(dtype: pl.DataType) -> bool:
    if not isinstance(dtype, pl.List) or not isinstance(dtype.inner, pl.Struct):
        return False
    inner = dtype.inner.to_schema()
    return inner.get("exc_type") == pl.String and inner.get("exc_value") == pl.String


def name_of(key: str, dtype: pl.DataType) -> pl.Expr:
    """A ``service``/``host`` object's ``name`` (null when it has none)."""
    if "name" in dtype.to_schema():
        return pl.col(key).struct.field("name")
    return pl.lit(None, dtype=pl.String)


def exception_list(key: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr] | None:
    """structlog ``dict_tracebacks`` (outermost first): (``type: value`` lines, the types)."""
    if not _is_exception_list(dtype):
        return None
    e = pl.element().struct
    lines = pl.col(key).list.eval(pl.concat_str(e.field("exc_type"), pl.lit(": "), e.field("exc_value")))
    types = pl.col(key).list.eval(e.field("exc_type").filter(e.field("exc_type") != ""))
    return lines.list.join("\n"), types


def empty_fields(n: int) -> pl.DataFrame:
    """The intermediate columns (with ``epoch`` and ``ts_text``), all null, for rows read elsewhere."""
    cols = {**_FIELDS, "epoch": pl.Float64, "ts_text": pl.String}
    return pl.DataFrame({k: pl.repeat(None, n, dtype=v, eager=True) for k, v in cols.items()})


def extras_column(frame: pl.DataFrame, entries: list[tuple[str, pl.Expr, pl.Expr, pl.Expr]]) -> pl.Series:
    """``extra`` from ``(key, value, included, position in the line)`` per key, in line order.

    Lists of structs are polars' slow part, so they are built only for the keys and rows that
    have an extra, and sorted only when some record holds its keys in another order.
    """
    n = frame.height
    seen = frame.select([inc.any().alias(str(i)) for i, (_, _, inc, _) in enumerate(entries)]).row(0)
    entries = [e for e, any_row in zip(entries, seen, strict=True) if any_row]
    if not entries:
        return pl.repeat(None, n, eager=True, dtype=APP_EXTRA).alias("extra")
    rows = frame.select(pl.any_horizontal([inc for _, _, inc, _ in entries]).fill_null(False)).to_series()
    sub = frame.filter(rows)
    placed = [
        pl.struct(pl.when(inc).then(pl.lit(k)).alias("key"), value.alias("value"), pos.alias("pos"))
        for k, value, inc, pos in entries
    ]
    element = pl.element().struct
    extra = pl.concat_list(placed).list.eval(pl.element().filter(element.field("key").is_not_null()))
    last: pl.Expr = pl.lit(-1, dtype=pl.Int64)
    late: list[pl.Expr] = []
    for _, _, inc, pos in entries:  # does a record hold its keys in another order than the chunk's?
        at = pl.when(inc).then(pos.cast(pl.Int64))
        late.append((at < last).fill_null(False))
        last = pl.max_horizontal(last, at)
    if sub.select(pl.any_horizontal(late).any()).item():
        extra = extra.list.eval(pl.element().sort_by(element.field("pos")))
    found = sub.select(extra.cast(APP_EXTRA).alias("extra")).with_columns(_i=rows.arg_true())
    full = pl.DataFrame({"_i": pl.int_range(n, eager=True, dtype=pl.UInt32)})
    return full.join(found, on="_i", how="left", maintain_order="left")["extra"]
