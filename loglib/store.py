"""Incident frames in a SQL database (SQLite, PostgreSQL), and back unchanged (``to_sql``, ``read_sql``).

Layout. Each frame is one table named after it (``pg``, ``sessions``, ``metrics``…), shared by
every incident written to the database: its first two columns are ``incident_id`` and
``_row`` (the row's position; together the primary key), then the frame's own columns with
SQL types a person can query:

=====================================  ===========================  ===========================
polars                                 PostgreSQL                   SQLite
=====================================  ===========================  ===========================
``Datetime`` with a zone               ``timestamptz`` (UTC)        ``DATETIME`` text, UTC
``Datetime`` without a zone            ``timestamp``                ``DATETIME`` text
``Duration``                           ``interval``                 ``DATETIME`` (epoch + value)
``Int*``/``UInt*``, ``Float*``         ``smallint``…``bigint``,     ``INTEGER``, ``FLOAT``
                                       ``double precision``
``String``, ``Categorical``, ``Enum``  ``text``                     ``TEXT``
``Struct``, ``List``, ``Array``        ``jsonb``                    ``JSON`` text
``Boolean``, ``Date``, ``Time``        native                       native
=====================================  ===========================  ===========================

Indexes: ``(incident_id, <time column>)`` (``ts``, ``start`` or ``checkout_ts``) and
``(incident_id, pid)`` / ``(incident_id, conn)`` where the frame has them.

Two bookkeeping tables describe what was written: ``loglib_incidents`` (one row per incident:
``incident_id``, ``title``, ``written_at``, ``loglib_version``) and ``loglib_frames`` (one row
per frame: its table, row count, exact polars schema as Arrow IPC, and the rows whose floats
were NaN where SQLite cannot store NaN). ``read_sql`` uses them to give back every dtype
exactly: time zone, time unit, Duration, Struct fields, Categorical, column order.

Writing an incident again replaces it: one transaction deletes its rows from every table it
had and inserts the new ones, so nothing is duplicated and a failed write changes nothing.

What is lossless: every value of the canonical frames (microsecond times, durations, NaN and
±inf, nested label structs). Limits: nanosecond datetimes/durations are kept to the
microsecond; PostgreSQL ``text`` cannot hold NUL characters (they become U+FFFD); NaN nested
inside a Struct or List becomes null; ``UInt64`` values above 2**63 - 1 do not fit.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from loglib._compat import to_polars

try:
    import orjson

    def _json_loads(text: str) -> Any:
        return orjson.loads(text)

    def _json_dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()

except ImportError:  # pragma: no cover - exercised only without orjson
    _json_loads = json.loads

    def _json_dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"))


#: attributes of an incident object that hold frames (in this order)
FRAME_ATTRIBUTES: tuple[str, ...] = (
    "app",
    "pg",
    "sessions",
    "metrics",
    "events",
    "findings",
    "timeline",
    "pool_events",
    "pg_activity",
)
INCIDENTS_TABLE = "loglib_incidents"
FRAMES_TABLE = "loglib_frames"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_RESERVED = ("incident_id", "_row")
_TIME_INDEX = ("ts", "start", "checkout_ts")
_KEY_INDEX = ("pid", "conn")


# --------------------------------------------------------------------------------------------
# what to write


def _frames_of(incident: Any) -> dict[str, pl.DataFrame]:
    if isinstance(incident, Mapping):
        items = list(incident.items())
    else:
        frames = getattr(incident, "frames", None)
        if callable(frames):
            frames = frames()
        if isinstance(frames, Mapping):
            items = list(frames.items())
        else:
            items = []
            for name in FRAME_ATTRIBUTES:
                value = getattr(incident, name, None)
                if value is not None and not callable(value):
                    items.append((name, value))
    out: dict[str, pl.DataFrame] = {}
    for name, frame in items:
        if frame is None:
            continue
        if not isinstance(name, str) or not _NAME.match(name) or name in (INCIDENTS_TABLE, FRAMES_TABLE):
            msg = (
                f"frame name {name!r} cannot be a table name: use letters, digits and underscores, "
                f"starting with a letter (and not {INCIDENTS_TABLE!r} or {FRAMES_TABLE!r})"
            )
            raise ValueError(msg)
        frame = to_polars(frame)
        clash = [c for c in frame.columns if c in _RESERVED]
        if clash:
            msg = f"frame {name!r} has column(s) {clash} that the store reserves for itself; rename them"
            raise ValueError(msg)
        out[name] = frame
    if not out:
        msg = (
            "nothing to write: pass a mapping {name: frame} or an incident with frame attributes among "
            f"{', '.join(FRAME_ATTRIBUTES)}"
        )
        raise ValueError(msg)
    return out


def _incident_key(incident: Any, incident_id: str | None) -> tuple[str, str | None]:
    title = None if isinstance(incident, Mapping) else getattr(incident, "title", None)
    if incident_id is None and not isinstance(incident, Mapping):
        for attr in ("incident_id", "id", "name", "title"):
            value = getattr(incident, attr, None)
            if isinstance(value, str) and value:
                incident_id = value
                break
    incident_id = incident_id or "default"
    if not isinstance(incident_id, str):
        msg = f"incident_id must be text, got {type(incident_id).__name__}"
        raise TypeError(msg)
    return incident_id, title if isinstance(title, str) else None


# --------------------------------------------------------------------------------------------
# types


def _sql_type(dtype: pl.DataType) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import JSONB

    if isinstance(dtype, pl.Datetime):
        return sa.DateTime(timezone=dtype.time_zone is not None)
    if isinstance(dtype, pl.Duration):
        return sa.Interval()
    if isinstance(dtype, pl.Struct | pl.List | pl.Array):
        return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    if isinstance(dtype, pl.Decimal):
        return sa.Numeric(dtype.precision or 38, dtype.scale)
    simple = {
        pl.Boolean: sa.Boolean(),
        pl.Int8: sa.SmallInteger(),
        pl.Int16: sa.SmallInteger(),
        pl.UInt8: sa.SmallInteger(),
        pl.Int32: sa.Integer(),
        pl.UInt16: sa.Integer(),
        pl.Int64: sa.BigInteger(),
        pl.UInt32: sa.BigInteger(),
        pl.UInt64: sa.BigInteger(),
        pl.Float32: sa.Double(),
        pl.Float64: sa.Double(),
        pl.Date: sa.Date(),
        pl.Time: sa.Time(),
        pl.Binary: sa.LargeBinary(),
    }
    for polars_type, sql in simple.items():
        if dtype == polars_type:
            return sql
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum | pl.Null):
        return sa.Text()
    msg = f"cannot store a column of dtype {dtype} in SQL; cast it to a String or numeric column first"
    raise TypeError(msg)


def _nested_to_python(series: pl.Series) -> list[Any]:
    if isinstance(series.dtype, pl.Struct):
        texts = series.struct.json_encode()
        return [None if t is None or t == "null" else _json_loads(t) for t in texts]
    wrapped = pl.DataFrame({"v": series}).select(pl.struct("v").struct.json_encode()).to_series()
    values = [_json_loads(t)["v"] for t in wrapped]
    return [None if n else v for v, n in zip(values, series.is_null(), strict=True)]


def _to_python(series: pl.Series, dialect: str) -> list[Any]:
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        series = series.dt.convert_time_zone("UTC")
        if dialect != "postgresql":
            series = series.dt.replace_time_zone(None)  # SQLite keeps text: UTC wall-clock time
        return series.to_list()
    if isinstance(dtype, pl.Struct | pl.List | pl.Array):
        return _nested_to_python(series)
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return series.cast(pl.String).to_list()
    if dtype == pl.String and dialect == "postgresql":
        return series.str.replace_all("\x00", "\ufffd", literal=True).to_list()
    return series.to_list()


def _from_python(values: list[Any], dtype: pl.DataType, name: str) -> pl.Series:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            aware = any(v is not None and v.tzinfo is not None for v in values)
            series = pl.Series(name, values, dtype=pl.Datetime("us", "UTC" if aware else None))
            if not aware:
                series = series.dt.replace_time_zone("UTC")
            return series.dt.convert_time_zone(dtype.time_zone).cast(dtype)
        return pl.Series(name, values, dtype=pl.Datetime("us")).cast(dtype)
    if isinstance(dtype, pl.Duration):
        return pl.Series(name, values, dtype=pl.Duration("us")).cast(dtype)
    if isinstance(dtype, pl.Struct | pl.List | pl.Array):
        if isinstance(dtype, pl.Struct):
            texts = [None if v is None else _json_dumps(v) for v in values]
            return pl.Series(name, texts, dtype=pl.String).str.json_decode(dtype)
        texts = [None if v is None else _json_dumps({"v": v}) for v in values]
        decoded = pl.Series(name, texts, dtype=pl.String).str.json_decode(pl.Struct({"v": dtype}))
        return decoded.struct.field("v").alias(name)
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return pl.Series(name, values, dtype=pl.String).cast(dtype)
    if isinstance(dtype, pl.Null):
        return pl.Series(name, values, dtype=pl.Null)
    if dtype.is_numeric() and not isinstance(dtype, pl.Decimal):
        return pl.Series(name, values, dtype=pl.Float64 if dtype.is_float() else pl.Int64).cast(dtype)
    return pl.Series(name, values, dtype=dtype)


def _schema_blob(frame: pl.DataFrame) -> str:
    buffer = io.BytesIO()
    frame.clear().write_ipc(buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def _schema_from_blob(blob: str) -> pl.Schema:
    return pl.read_ipc(io.BytesIO(base64.b64decode(blob))).schema


# --------------------------------------------------------------------------------------------
# engine and tables


def _engine(url: Any) -> tuple[Any, bool]:
    """(engine, owned): a URL makes an engine this module disposes of; an Engine is borrowed."""
    import sqlalchemy as sa

    if isinstance(url, sa.engine.Engine):
        return url, False
    return sa.create_engine(url), True


def _bookkeeping(metadata: Any) -> tuple[Any, Any]:
    import sqlalchemy as sa

    incidents = sa.Table(
        INCIDENTS_TABLE,
        metadata,
        sa.Column("incident_id", sa.Text, primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("written_at", sa.DateTime(timezone=True)),
        sa.Column("loglib_version", sa.Text),
    )
    frames = sa.Table(
        FRAMES_TABLE,
        metadata,
        sa.Column("incident_id", sa.Text, primary_key=True),
        sa.Column("frame", sa.Text, primary_key=True),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("columns", sa.Text, nullable=False),  # readable: [[name, dtype], ...]
        sa.Column("schema_ipc", sa.Text, nullable=False),  # exact: an empty Arrow IPC file, base64
        sa.Column("nan_rows", sa.Text),  # {column: [row, ...]} where SQLite stored NaN as NULL
    )
    return incidents, frames


def _data_table(name: str, frame: pl.DataFrame, metadata: Any) -> Any:
    import sqlalchemy as sa

    columns = [
        sa.Column("incident_id", sa.Text, primary_key=True),
        sa.Column("_row", sa.BigInteger, primary_key=True, autoincrement=False),
    ]
    columns += [sa.Column(c, _sql_type(t)) for c, t in frame.schema.items()]
    table = sa.Table(name, metadata, *columns)
    time_col = next((c for c in _TIME_INDEX if c in frame.columns), None)
    if time_col:
        sa.Index(f"ix_{name}_incident_{time_col}", table.c.incident_id, table.c[time_col])
    for key in _KEY_INDEX:
        if key in frame.columns:
            sa.Index(f"ix_{name}_incident_{key}", table.c.incident_id, table.c[key])
    return table


def _ensure_table(conn: Any, table: Any) -> None:
    """Create the table (with indexes) or add the columns an older one lacks."""
    import sqlalchemy as sa

    inspector = sa.inspect(conn)
    if not inspector.has_table(table.name):
        table.create(conn)
        return
    have = {c["name"] for c in inspector.get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name not in have:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(
                sa.text(
                    f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN {preparer.quote(column.name)} {kind}"
                )
            )
    for index in table.indexes:
        index.create(conn, checkfirst=True)


# --------------------------------------------------------------------------------------------
# public


def to_sql(
    incident: Any,
    url: Any = "sqlite:///incident.db",
    *,
    incident_id: str | None = None,
    title: str | None = None,
) -> dict[str, int]:
    """Write every frame of an incident to SQL tables; writing it again replaces it.

    Parameters
    ----------
    incident
        A mapping ``{table name: frame}`` (polars or pandas), or an object with frame
        attributes among ``app, pg, sessions, metrics, events, findings, timeline, pool_events,
        pg_activity`` (missing or None ones are skipped), or with a ``frames`` mapping.
    url
        A SQLAlchemy URL (``"sqlite:///incident.db"``,
        ``"postgresql+psycopg://user@host/db"``) or an ``Engine``.
    incident_id
        The key that lets several incidents share a database (default: the incident's
        ``incident_id``/``id``/``name``/``title`` attribute, else ``"default"``).
    title
        A human title, stored in ``loglib_incidents`` (default: the incident's ``title``).

    Returns
    -------
    dict
        Rows written per table.

    See Also
    --------
    read_sql : the frames back, with their exact dtypes.

    Notes
    -----
    See the module docstring (``loglib.store``) for the table layout, the SQL types, the
    indexes and what is lossless.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from datetime import datetime, UTC
    >>> import polars as pl
    >>> import loglib as ll
    >>> url = f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'incident.db'}"
    >>> sessions = pl.DataFrame({"pid": [7], "start": [datetime(2024, 3, 1, 10, tzinfo=UTC)]})
    >>> ll.to_sql({"sessions": sessions}, url, incident_id="2024-03-01-pool")
    {'sessions': 1}
    >>> ll.read_sql(url, incident_id="2024-03-01-pool")["sessions"].equals(sessions)
    True
    """
    import sqlalchemy as sa

    from loglib import __version__

    frames = _frames_of(incident)
    key, own_title = _incident_key(incident, incident_id)
    engine, owned = _engine(url)
    dialect = engine.dialect.name
    try:
        metadata = sa.MetaData()
        incidents_t, frames_t = _bookkeeping(metadata)
        tables = {name: _data_table(name, frame, metadata) for name, frame in frames.items()}
        with engine.begin() as conn:
            incidents_t.create(conn, checkfirst=True)
            frames_t.create(conn, checkfirst=True)
            for table in tables.values():
                _ensure_table(conn, table)
        written: dict[str, int] = {}
        with engine.begin() as conn:
            previous = conn.execute(
                sa.select(frames_t.c.table_name).where(frames_t.c.incident_id == key)
            ).scalars()
            inspector = sa.inspect(conn)
            for name in sorted(set(previous) | set(tables)):
                if inspector.has_table(name):
                    old = sa.Table(name, sa.MetaData(), sa.Column("incident_id", sa.Text))
                    conn.execute(sa.delete(old).where(old.c.incident_id == key))
            conn.execute(sa.delete(frames_t).where(frames_t.c.incident_id == key))
            conn.execute(sa.delete(incidents_t).where(incidents_t.c.incident_id == key))
            conn.execute(
                sa.insert(incidents_t).values(
                    incident_id=key,
                    title=title or own_title,
                    written_at=datetime.now(UTC),
                    loglib_version=__version__,
                )
            )
            for name, frame in frames.items():
                nan_rows = {}
                if dialect != "postgresql":
                    for col, dtype in frame.schema.items():
                        if dtype.is_float():
                            rows = frame.select(pl.arg_where(pl.col(col).is_nan())).to_series().to_list()
                            if rows:
                                nan_rows[col] = rows
                columns = {c: _to_python(frame[c], dialect) for c in frame.columns}
                names = list(columns)
                records = [
                    {"incident_id": key, "_row": i, **dict(zip(names, values, strict=True))}
                    for i, values in enumerate(zip(*columns.values(), strict=True))
                ] if names else [{"incident_id": key, "_row": i} for i in range(frame.height)]  # fmt: skip
                for start in range(0, len(records), 10_000):
                    conn.execute(sa.insert(tables[name]), records[start : start + 10_000])
                conn.execute(
                    sa.insert(frames_t).values(
                        incident_id=key,
                        frame=name,
                        table_name=name,
                        rows=frame.height,
                        columns=_json_dumps([[c, str(t)] for c, t in frame.schema.items()]),
                        schema_ipc=_schema_blob(frame),
                        nan_rows=_json_dumps(nan_rows) if nan_rows else None,
                    )
                )
                written[name] = frame.height
        return written
    finally:
        if owned:
            engine.dispose()


def sql_incidents(url: Any = "sqlite:///incident.db") -> pl.DataFrame:
    """The incidents stored in a database: ``incident_id``, ``title``, ``written_at``, ``loglib_version``.

    Examples
    --------
    >>> import loglib as ll
    >>> ll.sql_incidents("sqlite://").height
    0
    """
    import sqlalchemy as sa

    engine, owned = _engine(url)
    try:
        incidents_t, _ = _bookkeeping(sa.MetaData())
        schema = {"incident_id": pl.String, "title": pl.String, "written_at": pl.Datetime("us", "UTC"),
                  "loglib_version": pl.String}  # fmt: skip
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(INCIDENTS_TABLE):
                return pl.DataFrame(schema=schema)
            rows = conn.execute(sa.select(incidents_t).order_by(incidents_t.c.incident_id)).all()
        cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
        return pl.DataFrame(
            [
                pl.Series("incident_id", cols[0], dtype=pl.String),
                pl.Series("title", cols[1], dtype=pl.String),
                _from_python(list(cols[2]), pl.Datetime("us", "UTC"), "written_at"),
                pl.Series("loglib_version", cols[3], dtype=pl.String),
            ]
        )
    finally:
        if owned:
            engine.dispose()


def read_sql(
    url: Any = "sqlite:///incident.db",
    *,
    incident_id: str | None = None,
    frames: list[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """Read an incident's frames back from SQL, with the exact dtypes they were written with.

    Parameters
    ----------
    url
        A SQLAlchemy URL or ``Engine`` that ``to_sql`` wrote to.
    incident_id
        Which incident (see ``sql_incidents``); may be left out when the database holds one.
    frames
        Only these frames (default: all of the incident's).

    Returns
    -------
    dict[str, polars.DataFrame]
        Frame name -> frame, rows in their original order.

    Examples
    --------
    >>> import loglib as ll
    >>> ll.read_sql("sqlite://")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    loglib.errors.NoDataError: no incident in sqlite://; write one with loglib.to_sql
    """
    import sqlalchemy as sa

    from loglib.errors import NoDataError

    engine, owned = _engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        _, frames_t = _bookkeeping(sa.MetaData())
        with engine.connect() as conn:
            if dialect_is_pg := engine.dialect.name == "postgresql":
                conn.execute(sa.text("SET TIME ZONE 'UTC'"))
            if not sa.inspect(conn).has_table(FRAMES_TABLE):
                msg = f"no incident in {shown}; write one with loglib.to_sql"
                raise NoDataError(msg)
            if incident_id is None:
                ids = conn.execute(sa.select(frames_t.c.incident_id).distinct()).scalars().all()
                if len(ids) != 1:
                    msg = (
                        f"{shown} holds {len(ids)} incidents ({', '.join(sorted(ids)[:10])}); "
                        "pass incident_id= to choose one"
                        if ids
                        else f"no incident in {shown}; write one with loglib.to_sql"
                    )
                    raise (ValueError(msg) if ids else NoDataError(msg))
                incident_id = ids[0]
            meta = conn.execute(
                sa.select(frames_t).where(frames_t.c.incident_id == incident_id).order_by(frames_t.c.frame)
            ).all()
            if not meta:
                msg = f"no incident {incident_id!r} in {shown}; loglib.sql_incidents(url) lists them"
                raise NoDataError(msg)
            out: dict[str, pl.DataFrame] = {}
            for row in meta:
                if frames is not None and row.frame not in frames:
                    continue
                schema = _schema_from_blob(row.schema_ipc)
                table = sa.Table(
                    row.table_name,
                    sa.MetaData(),
                    sa.Column("incident_id", sa.Text),
                    sa.Column("_row", sa.BigInteger),
                    *(sa.Column(c, _sql_type(t)) for c, t in schema.items()),
                )
                result = conn.execute(
                    sa.select(*(table.c[c] for c in schema.names()))
                    .where(table.c.incident_id == incident_id)
                    .order_by(table.c._row)
                ).all()
                values = list(zip(*result, strict=True)) if result else [[] for _ in schema.names()]
                frame = pl.DataFrame(
                    [_from_python(list(v), t, c) for (c, t), v in zip(schema.items(), values, strict=True)],
                    schema=schema,
                )
                if row.nan_rows and not dialect_is_pg:
                    for col, rows in _json_loads(row.nan_rows).items():
                        mask = pl.Series(range(frame.height)).is_in(rows)
                        frame = frame.with_columns(
                            pl.when(mask)
                            .then(float("nan"))
                            .otherwise(pl.col(col))
                            .cast(schema[col])
                            .alias(col)
                        )
                out[row.frame] = frame
        return out
    finally:
        if owned:
            engine.dispose()
