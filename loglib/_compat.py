"""pandas at the edge: public functions accept pandas frames and always return polars."""

from __future__ import annotations

import sys
from typing import Any

import polars as pl


def to_polars(frame: Any) -> pl.DataFrame:
    """Return ``frame`` as a polars DataFrame (polars, LazyFrame or pandas input).

    pandas is never imported just to test a type: only if it is already loaded.
    """
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):
        return pl.from_pandas(frame)
    msg = f"expected a polars or pandas DataFrame, got {type(frame).__name__}"
    raise TypeError(msg)


def is_frame(obj: Any) -> bool:
    """True for a polars DataFrame/LazyFrame or a pandas DataFrame (pandas never imported for it)."""
    if isinstance(obj, pl.DataFrame | pl.LazyFrame):
        return True
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)
