"""Deploys side by side (``compare_deploys``): the errors each brought, what it restarted, how.

The rows are the deploys and restarts of the post-deploy findings (declared in incident.toml,
or seen in the logs: app start lines, PostgreSQL and pgBouncer restarts, mass session ends).
For each: the connection errors from it to ``AFTER`` later
(or the next deploy) against the quiet time before it, which components restarted around it
(``app``, ``pgbouncer``, ``postgres``, each from its own log), how each stopped, and the
sessions dropped. The one fact that explains a post-deploy incident is often a column here:
the deploys with errors restarted pgBouncer, the clean one did not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib.analysis.evidence import Evidence, as_evidence
from loglib.analysis.findings.post_deploy import (
    _BELOW_ERROR,
    AFTER,
    MOMENT_GAP,
    _moments,
    baseline_start,
    connection_errors,
)
from loglib.analysis.pgbouncer import pgbouncer_processes, pgbouncer_sessions, pooler_refusals
from loglib.core.schema import (
    CHANGE_KINDS,
    DEPLOY_COMPARISON,
    DEPLOY_COMPONENTS,
    INCIDENT_EVENTS,
    UTC_TS,
    conform,
)
from loglib.formats.pgbouncer_lines import LOGIN_FAILURE_REASONS, REFUSAL_REASONS

#: a component that restarted this long before a deploy restarted for it
BEFORE = timedelta(seconds=60)
#: the worse of two ways to stop wins (two pgBouncer restarts in one deploy: the worse one)
_WORST = {"graceful": 0, "fast": 1, "mixed": 2, "killed": 3, "failed": 3}
_PG_DROPPED = ("client_reset", "admin_termination", "server_shutdown", "unknown")
#: admin commands (``reason`` of pgBouncer's ``other`` rows) that pause it, and that reload it
_PAUSES = r"^(?:PAUSE|SUSPEND)\b"
_RELOADS = r"^RELOAD\b"


def _between(col: str, lo: datetime, hi: datetime) -> pl.Expr:
    return pl.col(col).is_between(lo, hi, closed="left")


def _worse(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if _WORST.get(a, -1) >= _WORST.get(b, -1) else b


def _how_stopped(events: pl.DataFrame) -> str | None:
    """How the restarts in ``events`` went down, from their ``stopped``: the worst of them, or
    ``mixed`` when one component stopped gracefully and was also killed; ``unknown`` when none
    says; null without events.

    >>> import polars as pl
    >>> _how_stopped(pl.DataFrame({"stopped": ["graceful", "killed"]})), _how_stopped(pl.DataFrame({"stopped": [None]}))
    ('mixed', 'unknown')
    """
    if not events.height:
        return None
    said = {s for s in events["stopped"].drop_nulls() if s != "unknown"}
    if not said:
        return "unknown"
    if "graceful" in said and said & {"killed", "mixed"}:
        return "mixed"
    worst = None
    for how in sorted(said):
        worst = _worse(worst, how)
    return worst


def pool_timeouts(ev: Evidence) -> pl.Series | None:
    """Times of the app's requests that failed waiting for a pool connection (``error_class``
    ``pool_timeout``: SQLAlchemy's "QueuePool limit … timed out", HikariCP's "Connection is not
    available", …), one per failed request (level error or above, as :func:`connection_errors`
    counts); None without an app log (nothing could see one).

    >>> import polars as pl, loglib as ll
    >>> log = b"2024-03-01 10:00:00,120 ERROR sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 0 reached, connection timed out, timeout 1.00\\n"
    >>> pool_timeouts(ll.Evidence.from_frames(app=ll.read_app_log(log, tz="UTC"))).len()
    1
    """
    if ev.app is None:
        return None
    level = pl.col("level").cast(pl.String).fill_null("error").str.to_lowercase()
    return ev.app.filter(
        (pl.col("error_class") == "pool_timeout")
        & pl.col("ts").is_not_null()
        & ~level.is_in(list(_BELOW_ERROR))
    )["ts"]


class _Judge:
    """What each deploy's window holds, from one Evidence (frames filtered, never re-parsed)."""

    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        self.events = ev.events
        self.errors = connection_errors(ev)
        self.timeouts = pool_timeouts(ev)
        self.procs = None
        if ev.pgbouncer is not None:
            procs = pgbouncer_processes(ev)
            self.procs = procs.with_columns(_next=pl.col("process").shift(-1))
        self.clients = None
        self.pooler = None
        self.commands = None
        self.refused = None
        if ev.pgbouncer is not None:
            s = pgbouncer_sessions(ev)
            self.clients = s.filter(
                (pl.col("side") == "client") & pl.col("logged_in") & pl.col("end").is_not_null()
            )
            self.pooler = ev.pgbouncer.filter(
                (pl.col("event") == "pooler_error")
                & ~pl.col("reason").cast(pl.String).fill_null("").str.contains(LOGIN_FAILURE_REASONS)
            )
            self.commands = ev.pgbouncer.filter(
                (pl.col("event") == "other")
                & pl.col("reason").cast(pl.String).str.contains(f"{_PAUSES}|{_RELOADS}")
            )
            self.refused = pooler_refusals(ev)
            # a client pgBouncer refused a server (its own error) was never served: no dropped session
            cut = self.clients.filter(pl.col("end_reason") != "client close request")
            refused = pl.col("end_reason").fill_null("").str.contains(REFUSAL_REASONS)
            self.dropped = cut.filter(~refused)
            self.refused_sessions = cut.filter(refused)
        pg = ev.sessions
        self.pg_sessions = None if pg is None else pg.filter(pl.col("end").is_not_null())

    def restarts(self, origin: tuple[str, ...], lo: datetime, hi: datetime) -> pl.DataFrame:
        return self.events.filter(
            pl.col("origin").is_in(list(origin)) & (pl.col("kind") == "restart") & _between("ts", lo, hi)
        )

    def row(
        self, m: dict[str, Any], lo: datetime, hi: datetime, until: datetime, since: datetime
    ) -> dict[str, Any]:
        """One deploy: its errors from ``at`` to ``until`` (baseline from ``since``), what restarted and
        dropped from ``lo`` to ``hi``."""
        at = m["ts"]
        after = self.errors.filter(_between("ts", at, until))
        before = self.errors.filter(_between("ts", since, at))
        out: dict[str, Any] = {
            "at": at, "kind": m["kind"], "text": m["text"], "origin": m["origin"],
            "errors": after.height, "errors_before": before.height,
            "first_error": after["ts"].min(), "last_error": after["ts"].max(),
        }  # fmt: skip
        out["recovery_s"] = None if not after.height else (out["last_error"] - at).total_seconds()
        if self.timeouts is not None:
            out["pool_timeouts"] = int(self.timeouts.is_between(at, until, closed="left").sum())
            out["pool_timeouts_before"] = int(self.timeouts.is_between(since, at, closed="left").sum())
        out["pooler_errors"] = (
            0 if self.pooler is None else self.pooler.filter(_between("ts", at, until)).height
        )
        restarted = set()
        apps = self.restarts(("app", "connections"), lo, hi)
        if apps.height:
            restarted.add("app")
            out["app_stopped"] = _how_stopped(apps)
        if self.procs is not None:
            # a stop the log ends with is not a restart (a recording's or an operator's last stop)
            stops = self.procs.filter(
                pl.col("stopped").is_not_null() & pl.col("_next").is_not_null() & _between("end", lo, hi)
            )
            if stops.height:
                restarted.add("pgbouncer")
                for how in stops["stopped"]:
                    out["pgbouncer_stopped"] = _worse(out.get("pgbouncer_stopped"), how)
        pg_restarts = self.restarts(("postgres",), lo, hi)
        if pg_restarts.height:
            restarted.add("postgres")
            out["postgres_stopped"] = _how_stopped(pg_restarts)
        out["restarted"] = [c for c in DEPLOY_COMPONENTS if c in restarted]
        pg_dropped = 0
        if self.pg_sessions is not None:
            pg_dropped = self.pg_sessions.filter(
                _between("end", lo, hi) & pl.col("end_reason").is_in(list(_PG_DROPPED))
            ).height
        out["pg_sessions_dropped"] = pg_dropped
        if self.clients is not None:
            dropped = self.dropped.filter(_between("end", lo, hi))
            out["sessions_dropped"] = dropped.height
            out["sessions_refused"] = self.refused_sessions.filter(_between("end", lo, hi)).height
            out["pools"] = self.pools(dropped, lo, hi)
        else:
            out["sessions_dropped"] = pg_dropped
        if self.commands is not None:
            said = self.commands.filter(_between("ts", lo, hi))["reason"].cast(pl.String)
            out["pgbouncer_paused"] = bool(said.str.contains(_PAUSES).any())
            out["pgbouncer_reloaded"] = bool(said.str.contains(_RELOADS).any())
        return out

    def pools(self, dropped: pl.DataFrame, lo: datetime, hi: datetime) -> list[str]:
        """``db/user`` of the pgBouncer pools whose clients were dropped or refused in the window."""
        assert self.refused is not None
        refused = self.refused.filter(_between("ts", lo, hi))
        both = pl.concat([dropped.select("db", "user"), refused.select("db", "user")], how="vertical_relaxed")
        both = both.drop_nulls()
        return sorted({f"{db}/{user}" for db, user in both.iter_rows()})


def _compare(ev: Evidence) -> pl.DataFrame:
    judge = _Judge(ev)
    moments = _moments(judge.events)
    if not moments.height:
        return DEPLOY_COMPARISON.empty()
    rows = []
    times = moments["ts"].to_list()
    settled = None  # when the previous deploy's errors ended: the baseline starts after them
    prev_hi = None
    for i, m in enumerate(moments.iter_rows(named=True)):
        at = m["ts"]
        until = min(at + AFTER, times[i + 1]) if i + 1 < len(times) else at + AFTER
        span = until - at
        since = baseline_start(at, span, settled)
        # what restarted: from BEFORE it (or where the previous deploy's share ended) to
        # MOMENT_GAP before the next one (a restart just before a deploy is that deploy's)
        lo = at - BEFORE if prev_hi is None else max(at - BEFORE, prev_hi)
        hi = min(at + AFTER, times[i + 1] - MOMENT_GAP) if i + 1 < len(times) else at + AFTER
        row = judge.row(m, lo, max(hi, at), until, since)
        rows.append(row)
        if row["errors"]:
            settled = row["last_error"]
        prev_hi = max(hi, at)
    frame = pl.DataFrame(rows, schema_overrides={"at": UTC_TS, "first_error": UTC_TS, "last_error": UTC_TS})
    return conform(frame, DEPLOY_COMPARISON)  # type: ignore[return-value]


def compare_deploys(data: Any) -> pl.DataFrame:
    """One row per deploy (declared or detected), side by side: errors, what restarted, how it stopped.

    ``data`` is an Evidence (or an Incident: its ``.evidence``). Errors are the post-deploy
    findings' connection errors (app error classes of connection trouble, PostgreSQL
    ``server_not_ready``) from the deploy to ``AFTER`` later or the next deploy; ``errors_before``
    counts the same span before it, after the previous deploy's errors settled. Requests that
    failed waiting for a pool connection are no connection error (they are the pool's shape):
    ``pool_timeouts`` and ``pool_timeouts_before`` count them in the same two spans
    (:func:`pool_timeouts`; null without an app log). All are counts of failed requests. A component
    restarted around a deploy when its own log shows it within ``BEFORE`` before it and up to
    the next deploy: ``app`` (start lines, mass session ends), ``pgbouncer``
    (``pgbouncer_processes``) and ``postgres`` (shutdown/start lines). Columns are
    ``loglib.schema.DEPLOY_COMPARISON``.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    >>> app = ll.schema.conform(pl.DataFrame({"ts": [t0 + timedelta(seconds=s) for s in (61, 62, 63)],
    ...     "error_class": "connection_refused", "file": "app.log", "line": [1, 2, 3]}), ll.schema.APP_EVENTS)
    >>> deploys = pl.DataFrame({"ts": [t0 + timedelta(minutes=1), t0 + timedelta(minutes=20)],
    ...                         "kind": "deploy", "text": ["v41", "v42"]})
    >>> ev = ll.Evidence.from_frames(app=app, events=deploys)
    >>> ll.compare_deploys(ev).select("text", "errors", "errors_before", "recovery_s").rows()
    [('v41', 3, 0, 3.0), ('v42', 0, 0, None)]
    """
    ev = as_evidence(data)
    return ev.cached("compare_deploys", lambda: _compare(ev))


def _with_outcome(events: pl.DataFrame, cmp: pl.DataFrame) -> pl.DataFrame:
    """One mark per compared deploy says in ``detail`` what followed it: the declared event of its
    ``MOMENT_GAP`` cluster, else the event nearest it."""
    if not cmp.height:
        return events
    indexed = events.with_row_index("_i")
    moments = indexed.filter(pl.col("kind").is_in(CHANGE_KINDS)).select("_i", "ts", "origin")
    restarted = pl.col("restarted").list.join(", ")
    outcome = (
        cmp.select(
            "at",
            _outcome=pl.concat_str(
                pl.format("{} connection error(s)", "errors"),
                pl.when(pl.col("pool_timeouts") > 0)
                .then(pl.format(" and {} pool timeout(s)", "pool_timeouts"))
                .otherwise(pl.lit("")),
                pl.lit(" after it"),
                pl.when(pl.col("restarted").list.len() > 0)
                .then(pl.concat_str(pl.lit("; restarted: "), restarted))
                .otherwise(pl.lit("; nothing restarted")),
            ),
        )
        .join(moments, how="cross")
        .with_columns(_gap=(pl.col("ts") - pl.col("at")).abs())
        .filter(pl.col("_gap") <= MOMENT_GAP)
        .sort("at", pl.col("origin") != "declared", "_gap")
        .unique("at", keep="first", maintain_order=True)
        .unique("_i", keep="first", maintain_order=True)
    )
    marked = indexed.join(outcome.select("_i", "_outcome"), on="_i", how="left", maintain_order="left")
    return marked.with_columns(
        detail=pl.when(pl.col("detail").is_not_null() & pl.col("_outcome").is_not_null())
        .then(pl.concat_str(pl.col("detail"), pl.lit(" — "), pl.col("_outcome")))
        .otherwise(pl.coalesce("detail", "_outcome"))
    ).select(events.columns)


def deploy_marks(data: Any) -> pl.DataFrame:
    """The events the charts mark (``Evidence.marks``): ``Evidence.events`` (deploys, and app,
    PostgreSQL and pgBouncer restarts), each deploy or restart that ``compare_deploys`` compares
    saying what followed it.

    Columns: ``loglib.schema.INCIDENT_EVENTS`` and ``detail``, what a chart's hover adds to
    ``text``: the connection errors after it and what restarted (null for other events).

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> log = (b"2024-03-01 10:00:00.000 UTC [7] LOG process up: PgBouncer 1.18.0, libevent 2.1.12\\n"
    ...        b"2024-03-01 10:05:00.000 UTC [7] LOG got SIGTERM, fast exit\\n"
    ...        b"2024-03-01 10:05:01.000 UTC [9] LOG process up: PgBouncer 1.18.0, libevent 2.1.12\\n")
    >>> ll.Evidence.from_frames(pgbouncer=ll.read_pgbouncer_log(log)).marks.select("kind", "text", "detail").rows()
    [('restart', 'pgBouncer stopped (fast) and restarted', '0 connection error(s) after it; restarted: pgbouncer')]
    """
    ev = as_evidence(data)

    def compute() -> pl.DataFrame:
        events = conform(ev.events, INCIDENT_EVENTS).with_columns(detail=pl.lit(None, pl.String))
        return _with_outcome(events, compare_deploys(ev))  # type: ignore[arg-type]

    return ev.cached("deploy_marks", compute)
