"""The machinery of canonical frames: :class:`Column`, :class:`FrameSchema` and :func:`conform`.

The frames themselves are defined in :mod:`loglib.core.schema` (which re-exports these names).

>>> import polars as pl
>>> from loglib.core.frames import Column, FrameSchema, conform
>>> s = FrameSchema("demo", "a demo frame", (Column("n", pl.Int64, "a number"), Column("t", pl.String, "text")))
>>> conform(pl.DataFrame({"t": ["a"], "x": [1]}), s).columns
['n', 't']
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class Column:
    """One column of a canonical frame."""

    name: str
    dtype: pl.DataType | type[pl.DataType]
    meaning: str


@dataclass(frozen=True)
class FrameSchema:
    """An ordered set of columns: the contract of one kind of frame."""

    name: str
    description: str
    columns: tuple[Column, ...]

    @property
    def polars_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def categorical(self) -> list[str]:
        """The columns stored as ``Categorical`` (repeated text: one code per row).

        >>> FrameSchema("d", "", (Column("a", pl.Categorical(), ""), Column("b", pl.String, ""))).categorical
        ['a']
        """
        return [c.name for c in self.columns if c.dtype == pl.Categorical]

    def empty(self) -> pl.DataFrame:
        """An empty frame with exactly these columns."""
        return pl.DataFrame(schema=self.polars_schema)

    def markdown(self) -> str:
        """The schema as a Markdown table (used in the README)."""
        rows = [
            f"**`{self.name}`** — {self.description}",
            "",
            "| column | dtype | meaning |",
            "|---|---|---|",
        ]
        rows += [f"| `{c.name}` | `{_dtype_name(c.dtype)}` | {c.meaning} |" for c in self.columns]
        return "\n".join(rows)


def _dtype_name(dtype: pl.DataType | type[pl.DataType]) -> str:
    return str(dtype).replace("time_unit=", "").replace("time_zone=", "")


def conform(frame: pl.DataFrame | pl.LazyFrame, schema: FrameSchema) -> pl.DataFrame | pl.LazyFrame:
    """Select ``schema``'s columns in order, adding missing ones as nulls and casting each.

    Columns the schema does not name are dropped: a frame either follows the contract or it
    is not canonical. A column declared as the bare ``pl.Struct`` class (``labels`` of the
    metrics frame) keeps whatever fields it has.
    """
    present = frame.collect_schema()
    exprs = []
    for col in schema.columns:
        if col.dtype is pl.Struct and isinstance(present.get(col.name), pl.Struct):
            # a bare ``pl.Struct`` means "a struct with any fields": casting to it would drop them
            exprs.append(pl.col(col.name))
            continue
        if col.dtype is pl.Struct:
            exprs.append(pl.lit(None).cast(pl.Struct({})).alias(col.name))
            continue
        expr = pl.col(col.name) if col.name in present else pl.lit(None)
        exprs.append(expr.cast(col.dtype, strict=False).alias(col.name))
    return frame.select(exprs)
