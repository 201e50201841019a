"""Clock skew between two sources, from events that must pair up (``estimate_skew``, ``apply_offset``).

Sign convention, everywhere in loglib: an **offset is how far a clock runs ahead**. A source
whose ``clock_offset`` is ``"4s"`` stamps every event 4 seconds late of the reference clock;
:func:`apply_offset` subtracts the offset, which puts the source on the reference clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from loglib._compat import to_polars
from loglib.core.timeparse import to_timedelta

#: application ``error_class`` -> PostgreSQL ``event`` kinds logged at the same instant by the
#: other side of the same connection (the pairs :func:`estimate_skew` uses by default)
SKEW_PAIRS: dict[str, tuple[str, ...]] = {
    "too_many_connections": ("too_many_clients", "reserved_slots"),
    "auth_failed": ("auth_failed",),
    "server_not_ready": ("server_not_ready",),
    "admin_shutdown": ("terminated_by_admin",),
    "idle_in_tx_timeout": ("idle_in_transaction_timeout",),
    "idle_session_timeout": ("idle_session_timeout",),
    "crash_restart": ("crash_restart",),
    "server_closed": ("client_reset", "unexpected_eof", "terminated_by_admin", "crash_restart"),
    "connection_reset": ("client_reset", "unexpected_eof"),
}

_MAX_DIFFS = 4_000_000


@dataclass(frozen=True)
class SkewEstimate:
    """How far the clock of source ``a`` runs ahead of source ``b``, with a 95% interval.

    ``offset`` is ``None`` when it cannot be told (too few pairs); ``note`` then says why.
    """

    offset: timedelta | None
    low: timedelta | None
    high: timedelta | None
    pairs: int
    spread: timedelta | None = None
    ambiguous: bool = False
    method: str = "pairs"
    note: str = ""
    lags: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False, compare=False)

    @property
    def seconds(self) -> float | None:
        """``offset`` in seconds (a float), or None."""
        return None if self.offset is None else self.offset.total_seconds()

    def __str__(self) -> str:
        if self.offset is None:
            return f"clock offset cannot be told: {self.note}"
        low, high = self.low.total_seconds(), self.high.total_seconds()  # type: ignore[union-attr]
        text = (
            f"a runs {self.seconds:+.3f} s ahead of b (95% interval {low:+.3f} .. {high:+.3f} s, "
            f"{self.pairs} pairs)"
        )
        return text + (f"; {self.note}" if self.note else "")


def parse_offset(value: str | float | timedelta | SkewEstimate, *, argument: str = "offset") -> timedelta:
    """An offset given as ``"4s"``, ``"-350ms"``, ``"+1m30s"``, seconds (float) or a :class:`SkewEstimate`."""
    if isinstance(value, SkewEstimate):
        if value.offset is None:
            msg = f"{argument}: the estimate has no offset ({value.note})"
            raise ValueError(msg)
        return value.offset
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        msg = f"{argument}={value!r} is not an offset; write it like '4s', '-350ms' or 4.0 (seconds)"
        raise TypeError(msg)
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-").strip()
        try:
            return sign * to_timedelta(body, argument=argument)
        except ValueError:
            pass
    msg = f"{argument}={value!r} is not an offset; write it like '4s', '-350ms', '+1m30s' or 4.0 (seconds)"
    raise ValueError(msg)


def apply_offset(
    frame: pl.DataFrame,
    offset: str | float | timedelta | SkewEstimate,
    *,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Put a source on the reference clock: subtract ``offset`` (how far its clock runs ahead).

    Parameters
    ----------
    frame
        Any loglib frame (polars or pandas).
    offset
        ``"4s"``, ``"-350ms"``, seconds as a float, a ``timedelta``, or the :class:`SkewEstimate`
        of :func:`estimate_skew` (this frame being its ``a``).
    columns
        The time columns to shift; by default every UTC datetime column (``ts``; ``start``/``end``
        of sessions).

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, UTC
    >>> f = pl.DataFrame({"ts": [datetime(2024, 3, 1, 10, 0, 4, tzinfo=UTC)]})
    >>> ll.apply_offset(f, "4s")["ts"].item()
    datetime.datetime(2024, 3, 1, 10, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC'))
    """
    frame = to_polars(frame)
    delta = parse_offset(offset)
    if columns is None:
        columns = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"columns={list(columns)!r}: {missing} not in the frame (it has {frame.columns})"
        raise ValueError(msg)
    if not delta:
        return frame
    return frame.with_columns(pl.col(c) - delta for c in columns)


def _micros(frame: pl.DataFrame) -> np.ndarray:
    ts = frame["ts"].drop_nulls()
    return np.sort(ts.dt.epoch("us").to_numpy().astype(np.int64))


def _groups(
    a: pl.DataFrame, b: pl.DataFrame, pairs: Mapping[str, Sequence[str]] | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, a times, b times) per kind of pair."""
    if "error_class" in a.columns and "event" in b.columns:
        table = SKEW_PAIRS if pairs is None else pairs
        out = []
        for cls, kinds in table.items():
            at = _micros(a.filter(pl.col("error_class") == cls))
            bt = _micros(b.filter(pl.col("event").is_in(list(kinds))))
            if at.size and bt.size:
                out.append((f"{cls}~{'/'.join(kinds)}", at, bt))
        return out
    if "event" in a.columns and "error_class" in b.columns:
        flipped = _groups(b, a, pairs)
        return [(label, bt, at) for label, at, bt in flipped]
    if pairs is not None:
        msg = "pairs= needs an app frame (error_class) and a PostgreSQL frame (event); filter the frames instead"
        raise ValueError(msg)
    return [("all", _micros(a), _micros(b))]


def _diffs(at: np.ndarray, bt: np.ndarray, max_us: int) -> np.ndarray:
    lo = np.searchsorted(bt, at - max_us, side="left")
    hi = np.searchsorted(bt, at + max_us, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    if total > _MAX_DIFFS:  # thin the a side evenly, keep every b in reach
        keep = np.linspace(0, at.size - 1, max(1, at.size * _MAX_DIFFS // total)).astype(int)
        return _diffs(at[keep], bt, max_us)
    rows = np.repeat(np.arange(at.size), counts)
    starts = np.repeat(lo, counts)
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return at[rows] - bt[starts + within]


def _peak(diffs: np.ndarray, width: int) -> tuple[int, int, int]:
    """(centre, count, runner-up count) of the densest ``width``-wide window of sorted ``diffs``."""
    d = np.sort(diffs)
    ends = np.searchsorted(d, d + width, side="right")
    counts = ends - np.arange(d.size)
    best = int(np.argmax(counts))
    centre = int(np.median(d[best : ends[best]]))
    # the runner-up: the densest window whose centre is clearly elsewhere
    centres = d + width // 2
    far = np.abs(centres - centre) > 2 * width
    runner = int(counts[far].max()) if far.any() else 0
    return centre, int(counts[best]), runner


def _nearest_pairs(at: np.ndarray, bt: np.ndarray, centre: int, tol: int) -> np.ndarray:
    """One b per a (the nearest to ``a - centre``), each b used once: the kept ``a - b`` differences."""
    shifted = at - centre
    idx = np.clip(np.searchsorted(bt, shifted), 1, max(1, bt.size - 1))
    cand = np.stack([bt[np.clip(idx - 1, 0, bt.size - 1)], bt[np.clip(idx, 0, bt.size - 1)]])
    pick = np.argmin(np.abs(cand - shifted), axis=0)
    chosen = np.where(pick == 0, np.clip(idx - 1, 0, bt.size - 1), np.clip(idx, 0, bt.size - 1))
    resid = np.abs(bt[chosen] - shifted)
    ok = resid <= tol
    order = np.argsort(resid[ok], kind="stable")
    a_ok, b_ok = at[ok][order], chosen[ok][order]
    _, first = np.unique(b_ok, return_index=True)
    return a_ok[first] - bt[b_ok[first]]


def estimate_skew(
    a: pl.DataFrame,
    b: pl.DataFrame,
    *,
    pairs: Mapping[str, Sequence[str]] | None = None,
    max_offset: str | timedelta = "30s",
    tolerance: str | timedelta = "250ms",
    min_pairs: int = 3,
) -> SkewEstimate:
    """Estimate how far the clock of source ``a`` runs ahead of source ``b``.

    Method: every difference ``a.ts - b.ts`` of candidate pairs no more than ``max_offset``
    apart is collected; the densest ``tolerance``-wide window of differences is the offset's
    neighbourhood (unrelated events spread evenly, paired ones pile up), narrowed by halving
    the window down to 4 ms. Each ``a`` event is
    then paired with the one ``b`` event nearest to it after that shift (each ``b`` used once,
    only within ``tolerance``; pairs more than max(10 ms, 5 MAD) from the bulk are dropped as
    chance neighbours), and the offset is the **median** of the paired differences, with
    the distribution-free 95% interval of a median (order statistics). When a second, distant
    window is nearly as dense (periodic events), the estimate is flagged ``ambiguous``.

    Parameters
    ----------
    a, b
        Two sources. With an app frame (``read_app_log``) and a PostgreSQL frame
        (``read_pg_log``), in either order, events are paired by kind through ``pairs``;
        otherwise every row with a ``ts`` is a candidate (filter them first, e.g. app start
        lines against a burst of ``connection_authorized``).
    pairs
        ``{error_class: [pg event, ...]}``: which app errors pair with which PostgreSQL
        events. Defaults to :data:`SKEW_PAIRS`, events both sides log at the same instant:
        ``too_many_connections`` ~ ``too_many_clients``, ``server_closed`` ~ ``client_reset``
        / ``terminated_by_admin``…
    max_offset
        The largest skew considered.
    tolerance
        How far apart (after the shift) two events may be and still pair: the network and
        logging latency between the two sides.
    min_pairs
        Fewer pairs than this and the offset is not told (``offset=None``).

    Returns
    -------
    SkewEstimate
        ``offset`` (a ``timedelta``: positive when ``a``'s clock is ahead), ``low``/``high``
        (95% interval), ``pairs`` used, ``spread`` (median absolute deviation of the pairs),
        ``ambiguous`` and ``lags`` (the paired differences, a frame, for a histogram).
        Pass it to :func:`apply_offset` to put ``a`` on ``b``'s clock.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
    >>> pg_times = [t0 + timedelta(seconds=s) for s in (1.0, 3.5, 4.1, 9.7, 12.2)]
    >>> a = pl.DataFrame({"ts": [t + timedelta(seconds=4.25) for t in pg_times]})
    >>> b = pl.DataFrame({"ts": pg_times})
    >>> ll.estimate_skew(a, b).seconds
    4.25
    """
    a, b = to_polars(a), to_polars(b)
    for name, frame in (("a", a), ("b", b)):
        if "ts" not in frame.columns:
            msg = f"{name} has no 'ts' column (columns: {frame.columns}); pass a loglib frame"
            raise ValueError(msg)
    max_us = int(to_timedelta(max_offset, argument="max_offset").total_seconds() * 1e6)
    tol = int(to_timedelta(tolerance, argument="tolerance").total_seconds() * 1e6)
    groups = _groups(a, b, pairs)
    diffs = [_diffs(at, bt, max_us) for _, at, bt in groups]
    alld = np.concatenate(diffs) if diffs else np.empty(0, dtype=np.int64)
    if alld.size == 0:
        return SkewEstimate(
            None, None, None, 0, note="no events of a and b fall within max_offset of each other"
        )
    centre, best, runner = _peak(alld, 2 * tol)
    # narrow down: the densest half-width window inside the last one, down to a few ms
    width = 2 * tol
    near = alld
    while width > 4000:
        near = near[np.abs(near - centre) <= width]
        width //= 2
        if near.size == 0:
            break
        centre = _peak(near, width)[0]
    kept = np.concatenate([_nearest_pairs(at, bt, centre, tol) for _, at, bt in groups])
    if kept.size:  # drop pairs far from the bulk (neighbours paired by chance)
        resid = np.abs(kept - np.median(kept))
        cut = max(10_000, 5 * float(np.median(resid)))
        kept = kept[resid <= min(cut, tol)]
    if kept.size < min_pairs:
        return SkewEstimate(
            None, None, None, int(kept.size), note=f"only {kept.size} pair(s) (min_pairs={min_pairs})"
        )
    kept = np.sort(kept)
    n = kept.size
    med = float(np.median(kept))
    half = 1.96 * math.sqrt(n) / 2
    lo_i = max(0, math.floor(n / 2 - half) - 1) if n >= 6 else 0
    hi_i = min(n - 1, math.ceil(n / 2 + half)) if n >= 6 else n - 1
    mad = float(np.median(np.abs(kept - med)))
    ambiguous = runner >= 0.8 * best
    note = "a second offset fits almost as well (periodic events?)" if ambiguous else ""
    us = timedelta(microseconds=1)
    return SkewEstimate(
        offset=round(med) * us,
        low=int(kept[lo_i]) * us,
        high=int(kept[hi_i]) * us,
        pairs=n,
        spread=round(mad) * us,
        ambiguous=ambiguous,
        note=note,
        lags=pl.DataFrame({"lag": (kept * 1000).astype("timedelta64[ns]")}).cast(pl.Duration("us")),
    )
