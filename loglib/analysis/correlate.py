"""Pair the events of one source with the nearest plausible events of another (``correlate``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from loglib._compat import to_polars
from loglib.core.schema import CORRELATION_PAIRS, UTC_TS
from loglib.core.timeparse import to_timedelta

DIRECTIONS = ("nearest", "forward", "backward")


@dataclass(frozen=True)
class Correlation:
    """The result of :func:`correlate`: ``pairs`` (one row per ``left`` event) and its summary."""

    pairs: pl.DataFrame
    left_label: str
    right_label: str
    within: timedelta
    direction: str

    @property
    def total(self) -> int:
        """How many ``left`` events there are."""
        return self.pairs.height

    @property
    def matched(self) -> int:
        """How many ``left`` events found a ``right`` event."""
        return int(self.pairs["matched"].sum())

    @property
    def share(self) -> float | None:
        """``matched / total`` (None without ``left`` events)."""
        return self.matched / self.total if self.total else None

    @property
    def median_lag(self) -> timedelta | None:
        """Median of ``right_ts - left_ts`` over the matched pairs."""
        lags = self.pairs.filter(pl.col("matched"))["lag"]
        return lags.median() if lags.len() else None  # type: ignore[return-value]

    @property
    def summary(self) -> str:
        """One sentence: how many matched, within what, and the median lag."""
        within = _seconds(self.within)
        where = {"nearest": "within", "forward": "after, within", "backward": "before, within"}[
            self.direction
        ]
        text = f"{self.matched} of {self.total} {self.left_label} have {self.right_label} {where} {within}"
        lag = self.median_lag
        if lag is not None:
            text += f", median lag {lag.total_seconds():+.3g} s"
        return text

    def __str__(self) -> str:
        return self.summary


def _seconds(delta: timedelta) -> str:
    s = delta.total_seconds()
    return f"{s:g} s"


def _label(frame: pl.DataFrame, side: str) -> str:
    if "error_class" in frame.columns:
        classes = frame["error_class"].drop_nulls().unique().sort().to_list()
        if 0 < len(classes) <= 3:
            return " / ".join(f"`{c}`" for c in classes) + " errors"
        return "app events"
    if "event" in frame.columns:
        kinds = frame["event"].drop_nulls().unique().sort().to_list()
        if 0 < len(kinds) <= 3:
            return "a PostgreSQL " + " / ".join(f"`{k}`" for k in kinds)
        return "a PostgreSQL event"
    return f"{side} events" if side == "left" else "a right event"


def _keys(by: str | Sequence[str] | Mapping[str, str] | None) -> tuple[list[str], list[str]]:
    if by is None:
        return [], []
    if isinstance(by, str):
        return [by], [by]
    if isinstance(by, Mapping):
        return list(by.keys()), list(by.values())
    return list(by), list(by)


def correlate(
    left: pl.DataFrame,
    right: pl.DataFrame,
    within: str | timedelta = "5s",
    by: str | Sequence[str] | Mapping[str, str] | None = None,
    *,
    direction: str = "nearest",
    left_label: str | None = None,
    right_label: str | None = None,
) -> Correlation:
    """Pair each event of ``left`` with the nearest event of ``right`` no more than ``within`` away.

    An as-of join on ``ts``: every ``left`` row is kept; its pair is the closest ``right`` row in
    time (in both directions by default), optionally only among rows with the same keys. Filter
    the frames first to the events that should pair (e.g. ``server_closed`` errors against
    PostgreSQL ``client_reset`` entries).

    Parameters
    ----------
    left, right
        Frames with a ``ts`` column (any loglib frame; polars or pandas).
    within
        The largest distance of a plausible pair (``"5s"``, ``"500ms"``).
    by
        Keys that must agree: a column name, a list, or ``{left column: right column}``
        (``{"pid": "pid"}``, ``{"client_port": "client_port"}``).
    direction
        ``"nearest"`` (either side), ``"forward"`` (``right`` at or after ``left``) or
        ``"backward"`` (``right`` at or before ``left``).
    left_label, right_label
        Words for the summary; by default taken from the frames (``"`server_closed` errors"``,
        ``"a PostgreSQL `client_reset`"``).

    Returns
    -------
    Correlation
        ``.pairs``: ``loglib.schema.CORRELATION_PAIRS`` columns plus the ``by`` keys (of
        ``left``); ``.matched``, ``.total``, ``.share``, ``.median_lag`` and ``.summary``.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
    >>> app = pl.DataFrame({"ts": [t0, t0 + timedelta(seconds=30)], "error_class": ["server_closed"] * 2})
    >>> pg = pl.DataFrame({"ts": [t0 - timedelta(milliseconds=300)], "event": ["client_reset"]})
    >>> ll.correlate(app, pg, within="2s").summary
    '1 of 2 `server_closed` errors have a PostgreSQL `client_reset` within 2 s, median lag -0.3 s'
    """
    if direction not in DIRECTIONS:
        msg = f"direction={direction!r} is not one of {', '.join(map(repr, DIRECTIONS))}"
        raise ValueError(msg)
    left, right = to_polars(left), to_polars(right)
    tol = to_timedelta(within, argument="within")
    lkeys, rkeys = _keys(by)
    for name, frame, keys in (("left", left, lkeys), ("right", right, rkeys)):
        missing = [c for c in ("ts", *keys) if c not in frame.columns]
        if missing:
            msg = f"{name} lacks column(s) {missing} (it has {frame.columns})"
            raise ValueError(msg)
    lf = (
        left.select(pl.col("ts").cast(UTC_TS), *keys_as(lkeys, "_k"))
        .with_row_index("left_row")
        .filter(pl.col("ts").is_not_null())
        .sort("ts")
    )
    rf = (
        right.select(pl.col("ts").cast(UTC_TS).alias("right_ts"), *keys_as(rkeys, "_k"))
        .with_row_index("right_row")
        .filter(pl.col("right_ts").is_not_null())
        .sort("right_ts")
    )
    kn = [f"_k{i}" for i in range(len(lkeys))]
    for k in kn:  # keys must have one dtype on both sides
        dtype = lf.schema[k]
        if rf.schema[k] != dtype:
            rf = rf.with_columns(pl.col(k).cast(dtype, strict=False))
    joined = lf.join_asof(
        rf.with_columns(pl.col("right_ts").alias("ts")),
        on="ts",
        by=kn or None,
        strategy=direction,
        tolerance=tol,
        check_sortedness=False,
    )
    pairs = joined.select(
        "left_row",
        pl.col("ts").alias("left_ts"),
        "right_row",
        "right_ts",
        (pl.col("right_ts") - pl.col("ts")).alias("lag"),
        pl.col("right_ts").is_not_null().alias("matched"),
        *(pl.col(k).alias(name) for k, name in zip(kn, lkeys, strict=True)),
    ).sort("left_row")
    pairs = pairs.with_columns(pl.col(c.name).cast(c.dtype) for c in CORRELATION_PAIRS.columns)
    return Correlation(
        pairs=pairs,
        left_label=left_label or _label(left, "left"),
        right_label=right_label or _label(right, "right"),
        within=tol,
        direction=direction,
    )


def keys_as(keys: list[str], prefix: str) -> list[pl.Expr]:
    """The key columns renamed ``<prefix>0``, ``<prefix>1``… (so both sides share names)."""
    return [pl.col(k).alias(f"{prefix}{i}") for i, k in enumerate(keys)]
