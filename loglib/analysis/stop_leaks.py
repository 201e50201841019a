"""Leaks a pool gauge cannot see at the app's final stop, from the sessions left open in a transaction.

The checked-out gauge's floor needs two samples after a leak to tell it from a request in
flight (:mod:`loglib.analysis.leaks`), so a leak in the last sample before the app's final stop,
or after its last scrape, is invisible to it. The app's stop line (a graceful stop: requests in
flight are drained, then the process exits) is followed by one direct piece of evidence per
connection still checked out: PostgreSQL logs ``unexpected EOF on client connection with an
open transaction`` for each (behind pgBouncer in session mode, pgBouncer closes the server
session mid-transaction). Those, less the leaks the gauge's final floors still hold, are the
leaks it missed: :func:`final_stop_evidence` gathers them, :func:`hidden_leak_row` writes the row.

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 1, 1, 10, 59, 58, tzinfo=timezone.utc)
>>> ev = StopEvidence(first=t, last=t, earliest=t.replace(second=50), open_tx=7)
>>> row = hidden_leak_row(ev, seen=5, every="1h")
>>> row["leaked"][0], row["confidence"][0], row["ts"][0].hour
(2.0, 'medium', 10)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from loglib.core.schema import CONFIDENCE_LEVELS, LEAK_RATES, UTC_TS, conform

#: open-transaction session ends up to this long after the last stop line belong to the stop
DRAIN = timedelta(seconds=30)
#: the ``scope`` of the row of leaks the gauge missed
SCOPE = "final stop (sessions left in a transaction)"
_LOW, _MEDIUM = CONFIDENCE_LEVELS[1], CONFIDENCE_LEVELS[2]


@dataclass(frozen=True)
class StopEvidence:
    """The app's final stop: its first and last stop line, the earliest time a leak the gauge
    missed can have happened (``earliest``, set from the gauge's samples), and how many of the
    app's database sessions ended inside an open transaction right after it (``open_tx``)."""

    first: datetime
    last: datetime
    earliest: datetime
    open_tx: int

    def with_earliest(self, at: datetime) -> StopEvidence:
        """The same stop, with ``earliest`` moved back to ``at`` when that is sooner."""
        return replace(self, earliest=min(self.earliest, at))


def open_transaction_ends(
    sessions: pl.DataFrame | None, mid_transaction: pl.DataFrame | None = None
) -> pl.DataFrame:
    """``pid``, ``start``, ``end``, ``last_activity`` of database sessions that ended inside an open
    transaction: PostgreSQL's (``pg_sessions``' ``open_transaction``) and those pgBouncer closed
    mid-transaction (``mid_transaction``: ``pid``, ``end``), one row per PostgreSQL pid and end."""
    schema = {"pid": pl.Int64, "start": UTC_TS, "end": UTC_TS, "last_activity": UTC_TS}
    parts = [pl.DataFrame(schema=schema)]
    if sessions is not None and sessions.height:
        # nothing logged after the session began: its statements are not logged (last_activity unknown)
        logged = pl.col("last_activity") > pl.col("start")
        parts.append(
            sessions.filter(pl.col("open_transaction").fill_null(False) & pl.col("end").is_not_null())
            .with_columns(last_activity=pl.when(logged).then(pl.col("last_activity")))
            .select(pl.col(c).cast(t) for c, t in schema.items())
        )
    if mid_transaction is not None and mid_transaction.height:
        parts.append(mid_transaction.select(pl.col("pid").cast(pl.Int64), pl.col("end").cast(UTC_TS)))
    out = pl.concat(parts, how="diagonal_relaxed")
    return out.sort("end").unique(["pid", "end"], keep="first", maintain_order=True)


def final_stop_evidence(
    stops: pl.Series, sessions: pl.DataFrame | None, mid_transaction: pl.DataFrame | None = None
) -> StopEvidence | None:
    """The app's final stop and the sessions left in a transaction at it; None without either.

    ``stops``: stop lines nothing started after (:func:`loglib.analysis.restarts.final_stops`).
    ``sessions``: ``pg_sessions``; ``mid_transaction``: ``pid``, ``end`` of server sessions
    pgBouncer closed mid-transaction (:func:`open_transaction_ends`). A session counts when it
    did not start after the first stop line and ended within :data:`DRAIN` after the last one.
    An app stop with no such session is evidence too (``open_tx`` 0) when the PostgreSQL log
    goes on past it: nothing was left checked out.
    """
    if stops.len() == 0:
        return None
    first, last = stops.min(), stops.max()
    ends = open_transaction_ends(sessions, mid_transaction).filter(
        pl.col("end").is_between(first, last + DRAIN) & (pl.col("start").fill_null(first) <= first)
    )
    covered = sessions is not None and sessions.height and (sessions["end"].max() or first) >= last  # type: ignore[operator]
    if ends.height == 0 and not covered:
        return None
    return StopEvidence(first=first, last=last, earliest=first, open_tx=ends["pid"].n_unique())  # type: ignore[arg-type]


def hidden_leak_row(ev: StopEvidence, *, seen: float, every: str) -> pl.DataFrame:
    """The ``checked_out_gauge`` row of the leaks the gauge missed at the final stop (empty when
    the open sessions are no more than the ``seen`` leaks the gauge's final floors hold).

    It is stamped in the bucket of the last stop line; ``medium`` confidence when every moment
    from ``ev.earliest`` to the stop falls in that bucket, else ``low`` (they may belong to the
    bucket before).
    """
    hidden = ev.open_tx - seen
    if hidden <= 0:
        return LEAK_RATES.empty()
    bucket = pl.Series([ev.last], dtype=UTC_TS).dt.truncate(every)[0]
    one_bucket = pl.Series([ev.earliest], dtype=UTC_TS).dt.truncate(every)[0] == bucket
    why = (
        f"{hidden:g} leak(s) the gauge could not see (in its last sample or after its last scrape): "
        f"{ev.open_tx} session(s) PostgreSQL/pgBouncer saw end inside an open transaction after the "
        f"app's final stop at {ev.last:%H:%M:%S} UTC, less the {seen:g} its final floors hold"
    )
    if not one_bucket:
        why += f"; made after {ev.earliest:%H:%M:%S} UTC, so part may belong to the bucket before"
    out = pl.DataFrame(
        {
            "ts": [bucket],
            "scope": [SCOPE],
            "leaked": [float(hidden)],
            "method": ["checked_out_gauge"],
            "confidence": [_MEDIUM if one_bucket else _LOW],
            "saturated": [False],
            "note": [why],
        }
    )
    return conform(out.with_columns(pl.col("ts").cast(UTC_TS)), LEAK_RATES)  # type: ignore[return-value]
