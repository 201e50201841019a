"""JSON log records decoded by polars' own JSON reader, each field mapped by expressions.

A chunk's JSON lines are decoded by ``pl.read_ndjson`` with the schema of its first lines (a
record with other keys is decoded again under its own);
the canonical fields are then chosen per row with the same key tables as the record-by-record
reader (:data:`~loglib.formats.app_formats.JSON_FIELD_KEYS`, the first key present wins) and the
other keys become ``extra``, nested values and explicit nulls included
(:mod:`~loglib.sources.app._json_nested`); loguru's ``serialize=True`` records have their own
mapping (:mod:`~loglib.sources.app._json_loguru`). No Python runs per record.

Floats are spelled as Python's ``repr`` spells them (``1e-05``), and a whole number polars read
as a float keeps the literal of the line (``5``, not ``5.0``). What the columns cannot say
exactly is left to the record-by-record reader, row by row: a whole number among floats whose
key the line spells twice, nested values with escapes or exponents, records without a
message (Rust tracing ``fields``, error-only records), values of one key that are text in one
record and numbers or objects in another, and lines polars will not decode (``NaN``, a cut line).
"""

from __future__ import annotations

import io
import re

import polars as pl

from loglib.core.schema import APP_EXTRA
from loglib.formats.app_formats import JSON_FIELD_KEYS, JSON_MESSAGE_KEYS, NUMERIC_LEVELS, PY_LEVELNO
from loglib.sources.app._common import _FIELDS
from loglib.sources.app._json_loguru import decode_loguru, is_loguru
from loglib.sources.app._json_nested import (
    LINE,
    empty_fields,
    exception_list,
    explicit_nulls,
    extras_column,
    field_roles,
    float_literals,
    name_of,
    nested_checks,
    nested_texts,
    python_float,
)

_NESTED = (pl.Struct, pl.List, pl.Array)
#: numeric levels: pino/bunyan's, else Python's levelno (pino's win where both name a number)
_LEVELS = {**PY_LEVELNO, **NUMERIC_LEVELS}
#: the same as a table indexed by the number (its last slot null: every other number)
_LEVEL_TABLE = pl.Series([_LEVELS.get(i) for i in range(max(_LEVELS) + 2)], dtype=pl.String)


def _level_name(number: pl.Expr) -> pl.Expr:
    """A numeric level's name (null for a number no table names): a look-up by position, which
    costs a fraction of ``replace_strict``'s hashing.

    >>> pl.select(_level_name(pl.lit(pl.Series([30, 50, 7, -1, 10**12, None])))).to_series().to_list()
    ['info', 'error', None, None, None, None]
    """
    last = _LEVEL_TABLE.len() - 1
    slot = pl.when((number >= 0) & (number < last)).then(number).otherwise(last)
    return pl.lit(_LEVEL_TABLE).gather(slot.cast(pl.UInt32))


#: the error object's fields the reader uses (pino/bunyan ``err``, ECS ``error``)
_ERR_FIELDS = ("type", "message", "stack", "stack_trace")
#: a text value that may stand for an object, an array or a float in the line
_TEXT_NOT_TEXT = r"^[\[{]|^-?\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+)$"
_LINE = LINE
#: what stands in for a line polars cannot read while the chunk is decoded (the line is read alone)
_BLANK_RECORD = "{}"
#: the lines a chunk's schema is inferred from (the records with other keys are decoded apart)
SAMPLE_LINES = 1000
#: a key as a line spells it: after ``{`` or ``,`` (inside a string a quote is escaped)
_SPELLED_KEY = r'[{,]\s*"(?:[^"\\]|\\.)*"\s*:'
#: such a key written with a null value
_NULL_KEY = r'[{,]\s*"[^"\\]*"\s*:\s*null\s*[,}]'


def _key_position(key: str) -> pl.Expr:
    """Where ``"key":`` stands in the raw line: extras keep the record's own key order."""
    return pl.col(_LINE).str.find('"' + re.escape(key) + r'"\s*:')


def decode_json(lines: pl.Series, body: bytes | None = None) -> tuple[pl.Series, pl.DataFrame] | None:
    """``(ok, fields)`` for JSON lines (each starting with ``{``): ``fields`` has the reader's
    intermediate columns plus ``epoch`` and ``ts_text``; rows with ``ok`` False must be read
    record by record. None when polars cannot decode the chunk at all. ``body``: the lines'
    bytes as read (``"\\n".join(lines)``), when the chunk hands them over (not joined again).

    The chunk is decoded with the schema of its first :data:`SAMPLE_LINES` lines (inferring it
    from every line costs twice the decoding); a record whose keys that schema does not hold
    (:func:`_fits`) is decoded again with the other such records, under their own schema.

    Examples
    --------
    >>> ok, f = decode_json(pl.Series(['{"level":30,"time":1709287200000,"msg":"up","port":80}']))
    >>> ok.to_list(), f["level"].to_list(), f["message"].to_list(), f["extra"].to_list()
    ([True], ['info'], ['up'], [[{'key': 'port', 'value': '80'}]])
    """
    sizes = lines.str.len_bytes()
    if body is None or len(body) != sizes.sum() + lines.len() - 1:  # not the lines' bytes
        body = _joined(lines)
    data = body
    if lines.len() > SAMPLE_LINES:
        # the schema is inferred from the first lines' bytes alone (no frame is built for them);
        # polars 2.1 panics when a Null type inside an object meets a value: such a schema is
        # not given, the chunk's own is inferred
        sample = _schema_of(data[: int(sizes.head(SAMPLE_LINES).sum()) + SAMPLE_LINES - 1])
        frame = None if sample is None or _holds_null(sample) else _read(data, lines.len(), sample)
    else:
        frame = _read(data, lines.len(), None)
    if frame is None or not frame.width:
        return _decode_whole(lines)
    has_null = lines.str.contains("null", literal=True).fill_null(False)
    fits = _fits(frame, lines, has_null)
    if fits.all():
        return _map(frame, lines, None, has_null)
    ok, fields = _map(frame.filter(fits), lines.filter(fits), None, has_null.filter(fits))
    rest = _decode_whole(lines.filter(~fits))
    if rest is None:
        rest = pl.repeat(False, lines.len() - ok.len(), eager=True), empty_fields(lines.len() - ok.len())
    order = pl.concat([fits.arg_true(), (~fits).arg_true()]).arg_sort()
    fields = pl.concat([fields, rest[1]], how="vertical_relaxed").select(pl.all().gather(order))
    return pl.concat([ok, rest[0]]).gather(order), fields


def _holds_null(schema: pl.Schema) -> bool:
    """Whether a column is of the Null type, or holds it inside (``{"o": {"p": null}}`` alone).

    >>> _holds_null(pl.Schema({"o": pl.Struct({"p": pl.Null})})), _holds_null(pl.Schema({"a": pl.Int64}))
    (True, False)
    """

    def null(dtype: pl.DataType) -> bool:
        if isinstance(dtype, pl.Struct):
            return any(null(t) for t in dtype.to_schema().values())
        if isinstance(dtype, pl.List | pl.Array):
            return null(dtype.inner)
        return dtype == pl.Null

    return any(null(t) for t in schema.values())


def _key_count(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """How many keys the decoded ``value`` holds inside it, at any depth (null ones not)."""
    if isinstance(dtype, pl.Struct):
        parts = []
        for name, inner in dtype.to_schema().items():
            field = value.struct.field(name)
            parts.append(field.is_not_null().cast(pl.UInt32))
            if isinstance(inner, _NESTED):
                parts.append(_key_count(field, inner))
        return pl.sum_horizontal(parts) if parts else pl.lit(0, dtype=pl.UInt32)
    if isinstance(dtype, pl.List | pl.Array) and isinstance(dtype.inner, _NESTED):
        return value.list.eval(_key_count(pl.element(), dtype.inner)).list.sum().fill_null(0)
    return pl.lit(0, dtype=pl.UInt32)


def _fits(frame: pl.DataFrame, lines: pl.Series, has_null: pl.Series) -> pl.Series:
    """Per row: did the decoding keep every key of the line? polars drops the keys a given schema
    lacks, so the keys the line spells (``"key":`` after ``{`` or ``,``: never inside a string,
    where a quote is escaped) must be the decoded values' keys plus the keys written ``null``,
    each of which must be a key of the schema. A null inside a nested value, or of a key with an
    escape, is not found at the top, so such a record does not fit.

    Most lines are counted without the regex (:func:`_spelled_at_least`); ``has_null``: the line
    holds ``null``."""
    schema = frame.schema
    nulls_in = frame.null_count().row(0)
    always = sum(1 for k, missing in zip(schema, nulls_in, strict=True) if not missing)
    decoded = [
        pl.col(k).is_not_null().cast(pl.UInt32)
        for k, missing in zip(schema, nulls_in, strict=True)
        if missing
    ]
    decoded += [_key_count(pl.col(k), dt) for k, dt in schema.items() if isinstance(dt, _NESTED)]
    count = (pl.sum_horizontal(decoded) + always) if decoded else pl.lit(always, dtype=pl.UInt32)
    # the decoded keys and the quick count in one pass: most chunks stop here
    quick = frame.select(
        count.alias("c"), (_quick_count(pl.lit(lines), pl.lit(has_null)) == count).fill_null(False).alias("f")
    )
    counts, fits = quick["c"], quick["f"]
    idx = (~fits).arg_true()  # the regex counts what the quick count could not tell
    if not idx.len():
        return fits
    lines, counts, has_null = lines.gather(idx), counts.gather(idx), has_null.gather(idx)
    spelled = lines.str.count_matches(_SPELLED_KEY)
    at = has_null.arg_true()
    nulls = pl.repeat(0, lines.len(), eager=True, dtype=pl.UInt32)
    if at.len():
        nulls = nulls.scatter(at, lines.gather(at).str.count_matches(_NULL_KEY).fill_null(0))
    exact = (spelled == counts + nulls).fill_null(False)
    if at.len():  # each null must be a key of the schema's top level (else it was dropped)
        named = [
            pl.col("t").str.contains('"' + re.escape(k) + r'"\s*:\s*null\s*[,}]').cast(pl.UInt32)
            for k in schema
        ]
        known = pl.DataFrame({"t": lines.gather(at)}).select(pl.sum_horizontal(named)).to_series()
        exact = exact.scatter(at, exact.gather(at) & (known == nulls.gather(at)).fill_null(False))
    return fits.scatter(idx, exact)


def _spelled_at_least(lines: pl.Series, has_null: pl.Series) -> pl.Series:
    """Per line, a count of ``":`` that is never below :data:`_SPELLED_KEY`'s count, for lines
    without a quote followed by a space, without a tab or CR and without ``null`` (null for the
    others).

    Each key the regex finds ends in ``"`` and ``:``; with no whitespace between them that is one
    ``":`` per key (a search for bytes, not a regex). It may count more (a string that starts
    with ``:``, an escaped quote before a colon), never fewer, and the decoded keys are never more
    than the keys spelled: a count equal to the decoded keys proves the regex would count as many.
    Without ``null`` no key is an explicit null (those the regex path counts and checks).

    >>> _spelled_at_least(pl.Series(['{"a":1,"b":":x"}', '{"a" :1}']), pl.Series([False, False])).to_list()
    [3, None]
    >>> _spelled_at_least(pl.Series(['{"a":1,\\t"b":2}']), pl.Series([False])).to_list()  # a tab: the regex counts
    [None]
    """
    frame = pl.DataFrame({"t": lines, "n": has_null})
    return frame.select(_quick_count(pl.col("t"), pl.col("n")).alias(lines.name)).to_series()


def _quick_count(lines: pl.Expr, has_null: pl.Expr) -> pl.Expr:
    """:func:`_spelled_at_least` as an expression (computed with the other per-line counts)."""
    # a tab or CR anywhere (JSON strings escape them: outside a string they are whitespace) is
    # one byte-class scan, not a search for each of '"\t' and '"\r'
    spaced = has_null | lines.str.contains('" ', literal=True) | lines.str.contains("[\t\r]")
    return pl.when(~spaced.fill_null(True)).then(lines.str.count_matches('":', literal=True))


def _decode_whole(lines: pl.Series) -> tuple[pl.Series, pl.DataFrame] | None:
    """:func:`decode_json` with the schema of every line (a line polars will not read, broken or
    with ``NaN``, is left to the record-by-record reader and the others still decoded)."""
    frame = _decode(lines)
    valid = None
    if frame is None:
        valid = lines.str.json_path_match("$").is_not_null()
        frame = _decode(lines.zip_with(valid, pl.Series([_BLANK_RECORD] * lines.len())))
    if frame is None or not frame.width:
        return None
    return _map(frame, lines, valid)


def _map(
    frame: pl.DataFrame, lines: pl.Series, valid: pl.Series | None, has_null: pl.Series | None = None
) -> tuple[pl.Series, pl.DataFrame]:
    """``(ok, fields)`` of decoded records: each field chosen per row from the keys present
    (``has_null``: which lines hold ``null``, when already known)."""
    schema = frame.schema
    if is_loguru(schema):
        return decode_loguru(frame, lines, valid)
    frame = frame.with_columns(lines.alias(_LINE))
    present = {t: [k for k in keys if k in schema] for t, keys in JSON_FIELD_KEYS.items()}
    present["message"] = [k for k in JSON_MESSAGE_KEYS if k in schema]
    if not present["message"]:
        return pl.repeat(False, lines.len(), eager=True), empty_fields(lines.len())
    # per row, the key each field is read from, then whether each key was read (computed once)
    frame = frame.with_columns([_first_key(keys).alias(f"\x00c{t}") for t, keys in present.items()])
    chosen = {t: pl.col(f"\x00c{t}") for t in present}
    picked = {t: keys for t, keys in present.items() if keys}
    nested = [k for k, dt in schema.items() if isinstance(dt, _NESTED)]
    frame = frame.with_columns(
        [
            pl.any_horizontal(
                [chosen[t] == key for t, keys in picked.items() if key in keys] or [pl.lit(False)]
            )
            .fill_null(False)
            .alias(f"\x00u{key}")
            for key in schema
        ]
        + nested_texts(frame, nested)
        + explicit_nulls(lines, list(schema), has_null)
        + float_literals(frame, [k for k, dt in schema.items() if dt == pl.Float64])
    )
    # a key no field was read from is an extra: its value as text, or an explicit null (also of
    # a key that holds an object or an array in other records)
    included = {
        k: ~pl.col(f"\x00u{k}")
        & ((pl.col(f"\x00j{k}") if k in nested else pl.col(k)).is_not_null() | pl.col(f"\x00n{k}"))
        for k in schema
    }
    # where each key that is an extra somewhere stands in the line (extras keep the record's order)
    extra_keys = [
        k
        for k, any_row in zip(
            schema, frame.select(list(included.values())).select(pl.all().any()).row(0), strict=True
        )
        if any_row
    ]
    frame = frame.with_columns(
        [_key_position(k).alias(f"\x00p{k}") for k in extra_keys]
        + [pl.lit(None, dtype=pl.UInt32).alias(f"\x00p{k}") for k in schema if k not in extra_keys]
    )
    err_struct = [k for k in ("err", "error") if isinstance(schema.get(k), pl.Struct)]
    checks: list[pl.Expr] = [
        chosen["message"].is_not_null(),
        *nested_checks(schema, nested, {k: included[k] for k in extra_keys}),
    ]
    if valid is not None:
        checks.append(pl.lit(valid))
    for key, field, target in (("log", "level", "level"), ("req", "id", "request_id")):
        if _inner(schema, key, field) not in (None, pl.String, pl.Int64):  # read as the field when it is null
            checks.append(chosen[target].is_not_null() | pl.col(key).struct.field(field).is_null())
        elif schema.get(key) == pl.String:  # objects in some records, text in others
            checks.append(chosen[target].is_not_null() | pl.col(key).is_null())
    for key, dtype in schema.items():
        value = pl.col(key)
        if isinstance(dtype, _NESTED):
            # the error object is nested when it is the one read as the error
            allowed = key in err_struct and all(
                schema[key].to_schema().get(f, pl.String) == pl.String for f in _ERR_FIELDS
            )
            as_err = pl.lit(allowed) & (chosen["err"] == key).fill_null(False)
            roles = [as_err, *field_roles(key, dtype, chosen)]
            checks.append(value.is_null() | included[key] | pl.any_horizontal(roles))
            if allowed:  # nor may an error field hold an object the reader turned into text
                subs = [f for f in _ERR_FIELDS if f in schema[key].to_schema()]
                checks.extend(~value.struct.field(f).str.contains(r"^[\[{]").fill_null(False) for f in subs)
        if dtype == pl.String:
            # text where other records hold an object, an array, a float or (a level) a number:
            # the reader made the value text, so its JSON spelling is read record by record
            odd = _TEXT_NOT_TEXT + (r"|^-?\d+$" if key in present["level"] else "")
            checks.append(~value.str.contains(odd).fill_null(False))
        if key in extra_keys:  # an extra whose place in the line is not found is read record by record
            checks.append(~included[key] | pl.col(f"\x00p{key}").is_not_null())
        if dtype == pl.Float64:
            # a whole number may be an int in the line (5, not 5.0): its literal must be found,
            # unless it is the timestamp read as epoch seconds
            as_ts = (chosen["ts"] == key).fill_null(False) if key in present["ts"] else pl.lit(False)
            whole = value == value.floor()
            checks.append(value.is_null() | as_ts | ~whole | pl.col(f"\x00f{key}").is_not_null())
        if key in present["message"] and dtype != pl.String:
            checks.append(value.is_null() | (chosen["message"] != key).fill_null(True))
    ok = frame.select(pl.all_horizontal(checks).fill_null(False)).to_series()
    fields = frame.select(_field_exprs(schema, present, chosen, err_struct))
    return ok, fields.with_columns(
        _head(fields), _extras(frame, schema, {k: included[k] for k in extra_keys})
    )


def _head(fields: pl.DataFrame) -> pl.Series:
    """The event's first line as the record-by-record reader makes it: the message and the error,
    each once and when not empty (only the rows with an error are worked on: the others' is the
    message)."""
    message, err = fields["message"], fields["err"]
    head = message.fill_null("").alias("head")
    idx = (err.fill_null("") != "").arg_true()
    if not idx.len():
        return head
    m, e = message.gather(idx), err.gather(idx)
    both = pl.select(
        pl.when((m.fill_null("") != "") & (m != e))
        .then(pl.concat_str(m, pl.lit("\n"), e))
        .when(m.fill_null("") != "")
        .then(m)
        .otherwise(e)
    ).to_series()
    return head.scatter(idx, both)


def _decode(lines: pl.Series) -> pl.DataFrame | None:
    """The records as columns, one per key seen (polars' NDJSON reader on the lines joined, both
    cores at once); None when polars refuses a line."""
    return _read(_joined(lines), lines.len(), None)


def _joined(lines: pl.Series) -> bytes:
    """The lines as one NDJSON text (no Python str on the way)."""
    return lines.str.join("\n").cast(pl.Binary).item()


def _schema_of(data: bytes) -> pl.Schema | None:
    """The schema polars infers from these NDJSON lines, all of them (None: it refuses one)."""
    try:
        return pl.scan_ndjson(io.BytesIO(data), infer_schema_length=None).collect_schema()
    except pl.exceptions.PolarsError:
        return None


def _read(data: bytes, n: int, schema: pl.Schema | None) -> pl.DataFrame | None:
    """``n`` records as columns: with the schema inferred from all of them, or with ``schema``
    (keys it lacks are dropped, a value of another type is an error); None when polars refuses a
    line."""
    try:
        if schema is None:
            frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        else:
            frame = pl.read_ndjson(io.BytesIO(data), schema=schema)
    except pl.exceptions.PolarsError:
        return None
    return frame if frame.height == n else None


def _first_key(keys: list[str]) -> pl.Expr:
    """The first of ``keys`` whose value is not null, per row (null: none)."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for key in reversed(keys):
        expr = pl.when(pl.col(key).is_not_null()).then(pl.lit(key)).otherwise(expr)
    return expr


def _text(key: str, dtype: pl.DataType) -> pl.Expr:
    """A scalar as the record-by-record reader spells it (strings as they are, JSON's true/false)."""
    if dtype == pl.Boolean:
        return pl.when(pl.col(key)).then(pl.lit("true")).otherwise(pl.lit("false"))
    if dtype == pl.Float64:  # an int in the line stays an int (-0 is 0), a float is Python's repr
        literal = pl.col(f"\x00f{key}")
        return (
            pl.when(literal.str.contains(r"^-?\d+$").fill_null(False))
            .then(literal.str.replace(r"^-0$", "0"))
            .otherwise(python_float(pl.col(key)))
        )
    return pl.col(key).cast(pl.String)


def _pick(keys: list[str], chosen: pl.Expr, schema: pl.Schema, convert=None, nested=None) -> pl.Expr:
    """The value of the chosen key as text (``convert(key, dtype)`` overrides the spelling,
    ``nested(key, dtype)`` reads a nested value: without it, a nested key gives nothing)."""
    parts = []
    for key in keys:
        dtype = schema[key]
        if isinstance(dtype, _NESTED) and (nested is None or not isinstance(dtype, pl.Struct)):
            continue
        value = (
            nested(key, dtype)
            if isinstance(dtype, _NESTED)
            else convert(key, dtype)
            if convert
            else _text(key, dtype)
        )
        parts.append(pl.when(chosen == key).then(value))
    return pl.coalesce(parts) if parts else pl.lit(None, dtype=pl.String)


def _field_exprs(
    schema: pl.Schema,
    present: dict[str, list[str]],
    chosen: dict[str, pl.Expr],
    err_struct: list[str],
) -> list[pl.Expr]:
    def level(key: str, dtype: pl.DataType) -> pl.Expr:
        if dtype == pl.Int64:
            return _level_name(pl.col(key))
        return _text(key, dtype)

    def err_field(name: str) -> pl.Expr:
        """A field of the error object: ``err`` when it is an object, else ``error``."""
        out: pl.Expr = pl.lit(None, dtype=pl.String)
        for key in reversed(err_struct):
            sub = schema[key].to_schema()
            value = (
                pl.col(key).struct.field(name).cast(pl.String)
                if name in sub
                else pl.lit(None, dtype=pl.String)
            )
            out = pl.when(pl.col(key).is_not_null()).then(value).otherwise(out)
        return out

    ts_keys, chosen_ts = present["ts"], chosen["ts"]
    epoch_parts, text_parts = [], []
    for key in ts_keys:
        dtype = schema[key]
        if dtype in (pl.Int64, pl.Float64):
            epoch_parts.append(pl.when(chosen_ts == key).then(pl.col(key).cast(pl.Float64)))
        elif dtype == pl.String:
            digits = pl.col(key).str.contains(r"^\d+(?:\.\d+)?$")
            epoch_parts.append(
                pl.when((chosen_ts == key) & digits).then(pl.col(key).cast(pl.Float64, strict=False))
            )
            text_parts.append(pl.when((chosen_ts == key) & ~digits).then(pl.col(key)))
    message = _pick(present["message"], chosen["message"], schema)
    err_chosen = chosen["err"]
    err_string = pl.coalesce(
        [pl.when(err_chosen == k).then(pl.col(k)) for k in present["err"] if schema[k] == pl.String]
        or [pl.lit(None, dtype=pl.String)]
    )
    err = pl.coalesce(err_string, err_field("message"))
    tb = _pick(present["tb"], chosen["tb"], schema)
    types: pl.Expr | None = None
    for key in present["tb"]:  # structlog's dict_tracebacks: a list of exceptions
        listed = exception_list(key, schema[key])
        if listed is not None:
            tb = pl.when(chosen["tb"] == key).then(listed[0]).otherwise(tb)
            rest = pl.lit(None, dtype=pl.List(pl.String)) if types is None else types
            types = pl.when(chosen["tb"] == key).then(listed[1]).otherwise(rest)
    stack, stack_trace = err_field("stack"), err_field("stack_trace")
    stack = pl.when(stack != "").then(stack).otherwise(stack_trace)
    tb = pl.when(tb != "").then(tb).otherwise(stack) if present["tb"] else stack
    etype = err_field("type")
    if "error.type" in schema and not isinstance(schema["error.type"], _NESTED):
        etype = pl.when(etype != "").then(etype).otherwise(_text("error.type", schema["error.type"]))
    exc = pl.when(etype.fill_null("") != "").then(pl.concat_list(etype)).cast(pl.List(pl.String))
    if types is not None:
        exc = pl.when(types.list.len() > 0).then(types).otherwise(exc)
    text_null = pl.lit(None, dtype=pl.String)
    return [
        pl.lit(None, dtype=_FIELDS["ts"]).alias("ts"),
        _level(present, chosen, schema, level).alias("level"),
        _pick(present["logger"], chosen["logger"], schema).alias("logger"),
        message.alias("message"),
        _pick(present["pid"], chosen["pid"], schema).alias("pid"),
        _request_id(present, chosen, schema).alias("request_id"),
        _pick(present["host"], chosen["host"], schema, nested=name_of).alias("host"),
        _pick(present["service"], chosen["service"], schema, nested=name_of).alias("service"),
        _pick(present["caller"], chosen["caller"], schema).alias("caller"),
        pl.lit(None, dtype=APP_EXTRA).alias("extra"),
        tb.alias("tb"),
        err.alias("err"),
        exc.alias("exc"),
        text_null.alias("head"),  # from the message and the error once they are columns: _head
        (pl.coalesce(epoch_parts) if epoch_parts else pl.lit(None, dtype=pl.Float64)).alias("epoch"),
        (pl.coalesce(text_parts) if text_parts else text_null).alias("ts_text"),
    ]


def _level(present: dict[str, list[str]], chosen: dict[str, pl.Expr], schema: pl.Schema, level) -> pl.Expr:
    """The level key's value, else an ECS ``log`` object's ``level``."""
    value = _pick(present["level"], chosen["level"], schema, level)
    inner = _inner(schema, "log", "level")
    if inner in (pl.String, pl.Int64):
        nested = pl.col("log").struct.field("level")
        if inner == pl.Int64:
            nested = _level_name(nested)
        value = pl.when(chosen["level"].is_null()).then(nested).otherwise(value)
    return value


def _inner(schema: pl.Schema, key: str, field: str) -> pl.DataType | None:
    """The type of ``key.field`` when ``key`` holds objects (None: no such field)."""
    dtype = schema.get(key)
    return dtype.to_schema().get(field) if isinstance(dtype, pl.Struct) else None


def _request_id(present: dict[str, list[str]], chosen: dict[str, pl.Expr], schema: pl.Schema) -> pl.Expr:
    """The request-id key's value, else pino-http's ``req.id``."""
    value = _pick(present["request_id"], chosen["request_id"], schema)
    inner = _inner(schema, "req", "id")
    if inner in (pl.String, pl.Int64):
        value = (
            pl.when(chosen["request_id"].is_null())
            .then(pl.col("req").struct.field("id").cast(pl.String))
            .otherwise(value)
        )
    return value


def _extras(frame: pl.DataFrame, schema: pl.Schema, included: dict[str, pl.Expr]) -> pl.Series:
    """``extra``: every key no field was read from, in the record's own key order (``included``:
    the keys that are an extra in some row, in the schema's order; the others are left out)."""
    if not included:
        return pl.repeat(None, frame.height, eager=True, dtype=APP_EXTRA).alias("extra")

    def value(k: str) -> pl.Expr:
        if isinstance(schema[k], _NESTED):
            return pl.col(f"\x00j{k}")
        return pl.when(pl.col(k).is_not_null()).then(_text(k, schema[k]))

    return extras_column(frame, [(k, value(k), inc, pl.col(f"\x00p{k}")) for k, inc in included.items()])
