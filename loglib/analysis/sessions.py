"""Backend sessions from PostgreSQL connection events (``pg_sessions``)."""

from __future__ import annotations

import weakref

import polars as pl

from loglib._compat import to_polars
from loglib.core.schema import PG_SESSIONS, conform
from loglib.formats.pg_messages import SERVER_ENDING, SESSION_ENDING
from loglib.sources.files import read_order

_CONNECTION_EVENTS = (
    "connection_received",
    "connection_authenticated",
    "connection_authorized",
    "disconnection",
)
_END_REASON = {
    "disconnection": "disconnection",
    "client_reset": "client_reset",
    "unexpected_eof": "client_reset",
    "idle_in_transaction_timeout": "idle_timeout",
    "idle_session_timeout": "idle_timeout",
    "terminated_by_admin": "admin_termination",
    "too_many_clients": "rejected",
    "reserved_slots": "rejected",
    "auth_failed": "rejected",
    "incomplete_startup": "rejected",
    "server_not_ready": "rejected",
}
#: events that say nothing about what the session did (not activity)
_LIFECYCLE_ONLY = ("connection_received", "connection_authenticated")
#: an admin termination this close to a server shutdown is the shutdown terminating backends
SHUTDOWN_GRACE = "10s"


def pg_sessions(events: pl.DataFrame) -> pl.DataFrame:
    """One row per backend session, from a ``pg_events`` frame (``read_pg_log``).

    How the hard cases are handled:

    * **pid reuse**: a session starts at ``connection_received`` (or ``connection_authorized``
      when nothing was received before it) and ends at the pid's first session-ending event
      (``disconnection``, a client reset, a timeout or an admin termination). A later
      connection on the same pid is a new session; if a session never logged its end and
      its pid connects again, it ends ``unknown`` at its last seen entry.
    * **started before the log**: a session whose first entry is its disconnection gets
      ``start = end - session time`` (PostgreSQL logs it) and ``started_before_log = true``.
    * **open at the end**: sessions with no end are ``open_at_end = true`` (``end`` and
      ``end_reason`` null),
      unless a server shutdown, crash or restart on the same host came later: then they end
      there with ``end_reason = "server_shutdown"``.
    * **clock steps**: a pid's entries are paired in file order (files as readers read them,
      rotated sets oldest first, then by line), never by time, so a clock stepping back
      mid-log (the read report notes where) leaves each session whole.
    * **rotated files** are one stream: read them together (``read_pg_log("x.log*")``) and a
      session that crosses files is one row.
    * **refused attempts** (too many clients, reserved slots, failed authentication, server not
      ready, incomplete startup packet) are short sessions with ``end_reason = "rejected"``: the
      backend existed and exited without a ``disconnection`` line.
    * **end_reason**: the first ending event decides (a reset before the disconnection line is
      a ``client_reset``); an admin termination within ``SHUTDOWN_GRACE`` after a shutdown
      request is the shutdown's doing: ``server_shutdown``.

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\\n"
    ...        b"2024-03-01 10:00:00.010 UTC [7] app@shop LOG:  connection authorized: user=app database=shop\\n"
    ...        b"2024-03-01 10:05:00.000 UTC [7] app@shop LOG:  could not receive data from client: Connection reset by peer\\n"
    ...        b"2024-03-01 10:05:00.001 UTC [7] app@shop LOG:  disconnection: session time: 0:05:00.001 user=app database=shop host=10.0.0.5 port=5000\\n")
    >>> ll.pg_sessions(ll.read_pg_log(log)).select("pid", "duration", "user", "end_reason")
    shape: (1, 4)
    ┌─────┬──────────────┬──────┬──────────────┐
    │ pid ┆ duration     ┆ user ┆ end_reason   │
    │ --- ┆ ---          ┆ ---  ┆ ---          │
    │ i64 ┆ duration[μs] ┆ str  ┆ str          │
    ╞═════╪══════════════╪══════╪══════════════╡
    │ 7   ┆ 5m 1ms       ┆ app  ┆ client_reset │
    └─────┴──────────────┴──────┴──────────────┘
    """
    ev = to_polars(events)
    key = (id(ev), ev.height, tuple(ev.columns))
    hit = _MEMO.get(key)
    if hit is not None and hit[0]() is ev:
        return hit[1]
    out = _pg_sessions(ev)
    _MEMO.clear()  # one frame remembered: the incident's (detectors, charts and leaks all ask for it)
    _MEMO[key] = (weakref.ref(ev), out)
    return out


#: the sessions of the last frame asked for, while that frame lives
_MEMO: dict[tuple, tuple[weakref.ref, pl.DataFrame]] = {}
#: text columns a session takes from its last row that has them, and from its first
_LAST = ("user", "database", "application")
_FIRST = ("client_host", "client_port")
_TEXT = (*_LAST, *_FIRST)
#: the columns pairing needs (``message`` only as a flag: a log's text is most of its bytes)
_NEEDED = ("ts", "pid", "host", "event", "session_duration", "user", "database", "application",
           "client_host", "client_port", "file", "line")  # fmt: skip


def _pairing_keys(conn: pl.DataFrame) -> list[pl.Expr | str]:
    """Sort keys ordering ``conn`` by (host, pid, file rank, line, row): (host, pid) and (rank,
    line) packed into one Int64 each when their ranges allow it (a sort on three integer keys
    takes a third of the time of five), else the five columns.

    >>> conn = pl.DataFrame({"_host": [0, 0], "pid": [7, 7], "_rank": [0, 0], "_line": [9, 2], "_order": [0, 1]})
    >>> conn.sort(_pairing_keys(conn))["_line"].to_list()
    [2, 9]
    """
    five: list[pl.Expr | str] = ["_host", "pid", "_rank", "_line", "_order"]
    if conn.height == 0:
        return five
    bounds = conn.select(
        pl.col("_host").max().alias("host"), pl.col("pid").min().alias("pid_lo"),
        pl.col("pid").max().alias("pid_hi"), pl.col("_rank").null_count().alias("rank_nulls"),
        pl.col("_rank").min().alias("rank_lo"), pl.col("_rank").max().alias("rank_hi"),
        pl.col("_line").min().alias("line_lo"), pl.col("_line").max().alias("line_hi"),
    ).row(0, named=True)  # fmt: skip
    packable = (
        bounds["host"] < 2**30
        and 0 <= bounds["pid_lo"] <= bounds["pid_hi"] < 2**32
        and bounds["rank_nulls"] == 0
        and 0 <= bounds["rank_lo"] <= bounds["rank_hi"] < 2**22
        and 0 <= bounds["line_lo"] <= bounds["line_hi"] < 2**40
    )
    if not packable:  # null pids are filtered before; null ranks sort first, which packing would lose
        return five
    return [
        (pl.col("_host").cast(pl.Int64) * 2**32 + pl.col("pid")),
        (pl.col("_rank").cast(pl.Int64) * 2**40 + pl.col("_line")),
        "_order",
    ]


def _pg_sessions(ev: pl.DataFrame) -> pl.DataFrame:
    if "host" not in ev.columns:
        ev = ev.with_columns(host=pl.lit(None, dtype=pl.String))
    open_tx_text = (
        (pl.col("event") == "unexpected_eof") & pl.col("message").str.contains("open transaction")
        if "message" in ev.columns
        else pl.lit(False)
    )
    ev = ev.select(
        *(pl.col(c) for c in _NEEDED if c in ev.columns),
        open_tx_text.fill_null(False).alias("_open_tx_text"),
    )
    ev = ev.with_columns(pl.col("host").fill_null("")).with_row_index("_order")
    server_ends = ev.filter(pl.col("event").is_in(list(SERVER_ENDING))).select(
        "host", pl.col("ts").alias("_srv")
    )
    # a pid's lines in the order PostgreSQL wrote them (files in read order, then line), never by
    # time: a clock stepping back mid-log must not turn one session into an ended and an open one
    names = ev["file"].drop_nulls().unique().to_list()
    file_rank = pl.col("file").replace_strict(
        read_order(names), list(range(len(names))), default=None, return_dtype=pl.Int64
    )
    # pairing sorts a narrow frame: hosts as small integers, what the pairing reads, and for the
    # text columns only whether they are set; their values are taken by row number at the end
    # (a sorted copy of every text column was most of the pairing's memory at a gigabyte). The
    # sort keys are sorted alone and the other columns gathered from ``ev`` in their order: an
    # unsorted copy of those and the sorted one never exist together
    keys = (
        ev.lazy()
        .filter(pl.col("pid").is_not_null())
        .select(
            "_order", "pid",
            pl.col("host").cast(pl.Categorical).to_physical().alias("_host"),
            file_rank.alias("_rank"),
            pl.coalesce(pl.col("line"), pl.col("_order").cast(pl.Int64)).alias("_line"),
        )
        .collect()
    )  # fmt: skip
    # the order alone is sorted, then the three columns pairing reads are gathered in it: the
    # sort keys (``_rank``, ``_line``) are never copied, and a sorted copy of all five never exists.
    # A row number sorted by the keys, not ``arg_sort_by``: at 0.89 M sessions 3.4 vs 9.8 CPU-s
    # for the whole pairing, for the same peak
    order = (
        keys.lazy()
        .select(pl.int_range(pl.len(), dtype=pl.UInt32).sort_by(_pairing_keys(keys)))
        .collect()
        .to_series()
    )
    conn = keys.select(pl.col("_order", "pid", "_host").gather(order))
    del keys, order
    rows = conn.get_column("_order")
    conn = conn.hstack(
        ev.select(
            pl.col("ts", "event", "session_duration", "_open_tx_text").gather(rows),
            *(pl.col(c).is_not_null().gather(rows).alias(f"_has_{c}") for c in _TEXT if c in ev.columns),
        ).get_columns()
    )
    if conn.height == 0:
        return PG_SESSIONS.empty()
    # rows are grouped by (host, pid) now: "the line before, of the same pid" is a shift with a
    # mask (a window per pid costs a hash of every row); a pid that never took part in a client
    # connection has no session with a connection event, and is dropped with them below
    same_pid = (pl.col("pid") == pl.col("pid").shift(1)) & (pl.col("_host") == pl.col("_host").shift(1))
    prev_event = pl.when(same_pid).then(pl.col("event").shift(1))
    conn = conn.with_columns(_ending=pl.col("event").is_in(list(SESSION_ENDING)), _prev=prev_event)
    conn = conn.with_columns(
        _start=(pl.col("event") == "connection_received")
        | (
            (pl.col("event") == "connection_authorized")
            & ~pl.col("_prev").is_in(["connection_received", "connection_authenticated"]).fill_null(False)
        )
        | pl.col("_prev").is_null(),
        # after a disconnection line the pid is free: whatever it logs next is a new session. After
        # other endings (reset, timeout, FATAL) the dying backend may still log (e.g. its disconnection)
        _after_end=(pl.col("_prev") == "disconnection").fill_null(False),
    )
    # a session number that grows at every start: unique across pids (each pid's first row starts one)
    conn = conn.with_columns(
        _sess=(pl.col("_start") | pl.col("_after_end")).cast(pl.Int64).cum_sum().set_sorted()
    )
    # within a session, the first ending event decides; a disconnection line after it is kept for its time
    first_end = pl.col("ts").filter(pl.col("_ending")).first()
    agg = conn.group_by("_sess", maintain_order=True).agg(
        pl.col("pid").first(),
        pl.col("ts")
        .filter(pl.col("event").is_in(["connection_received", "connection_authorized"]))
        .first()
        .alias("_start_ts"),
        pl.col("event").first().alias("_first_event"),
        pl.col("event").filter(pl.col("_ending")).first().alias("_end_event"),
        first_end.alias("_first_end_ts"),
        pl.col("ts").filter(pl.col("event") == "disconnection").first().alias("_disc_ts"),
        pl.col("session_duration").drop_nulls().first().alias("_pg_duration"),
        pl.col("ts").max().alias("_last_ts"),
        pl.col("ts")
        .filter(~pl.col("_ending") & ~pl.col("event").is_in(["disconnection", *_LIFECYCLE_ONLY]))
        .max()
        .alias("last_activity"),
        (pl.col("_open_tx_text") | (pl.col("event") == "idle_in_transaction_timeout"))
        .filter(pl.col("_ending") | (pl.col("event") == "unexpected_eof"))
        .any()
        .alias("open_transaction"),
        # rows whose values the session takes: the last user/database/application, the first client
        *(
            pl.col("_order").filter(pl.col(f"_has_{c}")).last().alias(f"_at_{c}")
            for c in _LAST
            if c in ev.columns
        ),
        *(
            pl.col("_order").filter(pl.col(f"_has_{c}")).first().alias(f"_at_{c}")
            for c in _FIRST
            if c in ev.columns
        ),
        pl.col("event").is_in(_CONNECTION_EVENTS).any().alias("_is_client"),
        pl.col("_order").first().alias("_order"),
    )
    del conn  # the per-row frame is done with: what follows works on one row per session
    agg = agg.filter("_is_client")
    if agg.height == 0:
        return PG_SESSIONS.empty()
    # the text (and file:line) of each session, from the rows the pairing chose
    at = {c: f"_at_{c}" for c in (*_LAST, *_FIRST) if c in ev.columns}
    at.update({c: "_order" for c in ("host", "file", "line") if c in ev.columns})
    agg = agg.with_columns(ev.get_column(c).gather(agg.get_column(i)) for c, i in at.items())
    # sessions without their own end: next session on the same pid, or a server shutdown
    agg = agg.sort("_sess").with_columns(  # _sess grows along (host, pid, file order)
        _next_start=pl.col("_start_ts").shift(-1).over("host", "pid"),
    )
    agg = agg.sort("_last_ts")
    if server_ends.height:
        agg = agg.sort("host", "_last_ts").join_asof(
            server_ends.sort("_srv"),
            left_on="_last_ts",
            right_on="_srv",
            by="host",
            strategy="forward",
            check_sortedness=False,
        )
        # the shutdown request that came just before a termination (backends die after it)
        agg = agg.with_columns(_end_ts=pl.coalesce(pl.col("_first_end_ts"), pl.col("_last_ts"))).sort(
            "host", "_end_ts"
        )
        agg = agg.join_asof(
            ev.filter(pl.col("event").is_in(["server_shutdown", "crash_restart"]))
            .select("host", pl.col("ts").alias("_srv_before"))
            .sort("_srv_before"),
            left_on="_end_ts",
            right_on="_srv_before",
            by="host",
            strategy="backward",
            tolerance=SHUTDOWN_GRACE,
            check_sortedness=False,
        )
    else:
        agg = agg.with_columns(
            _srv=pl.lit(None, dtype=pl.Datetime("us", "UTC")),
            _srv_before=pl.lit(None, dtype=pl.Datetime("us", "UTC")),
        )
    end_ts = pl.coalesce(pl.col("_disc_ts"), pl.col("_first_end_ts"))
    no_end = pl.col("_end_event").is_null()
    shutdown_close = pl.col("_srv_before").is_not_null()
    reason = (
        pl.when(no_end & pl.col("_srv").is_not_null())
        .then(pl.lit("server_shutdown"))
        .when(no_end & pl.col("_next_start").is_not_null())
        .then(pl.lit("unknown"))
        .when(no_end)
        .then(pl.lit(None, dtype=pl.String))
        .when((pl.col("_end_event") == "terminated_by_admin") & shutdown_close.fill_null(False))
        .then(pl.lit("server_shutdown"))
        .otherwise(pl.col("_end_event").replace_strict(_END_REASON, default="unknown"))
    )
    end = (
        pl.when(no_end & pl.col("_srv").is_not_null())
        .then(pl.col("_srv"))
        .when(no_end & pl.col("_next_start").is_not_null())
        .then(pl.col("_last_ts"))
        .otherwise(end_ts)
    )
    started_before = pl.col("_start_ts").is_null()
    out = agg.with_columns(end_reason=reason, end=end).with_columns(
        start=pl.when(started_before)
        .then(pl.col("end") - pl.col("_pg_duration"))
        .otherwise(pl.col("_start_ts")),
        started_before_log=started_before,
        open_at_end=no_end & pl.col("_srv").is_null() & pl.col("_next_start").is_null(),
    )
    del agg
    out = out.with_columns(
        duration=pl.coalesce(pl.col("_pg_duration"), pl.col("end") - pl.col("start")),
        host=pl.when(pl.col("host") == "").then(None).otherwise(pl.col("host")),
    )
    # sorted as ``sort("start", "_order")``, but only the schema's columns are moved (the working
    # columns are dropped first, not copied in order and then dropped)
    order = out.select(pl.arg_sort_by("start", "_order", nulls_last=True)).to_series()
    out = conform(out, PG_SESSIONS)  # type: ignore[assignment]
    return out.select(pl.all().gather(order))
