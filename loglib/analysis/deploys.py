"""Deploys side by side (``compare_deploys``): the errors each brought, what it restarted, how.

The rows are the deploys and restarts of the post-deploy findings (declared in incident.toml,
or seen in the logs: app start lines, PostgreSQL restarts, mass session ends), plus pgBouncer
restarts that no deploy explains. For each: the connection errors from it to ``AFTER`` later
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
from loglib.analysis.findings.post_deploy import AFTER, MOMENT_GAP, _moments, connection_errors
from loglib.analysis.pgbouncer import pgbouncer_processes, pgbouncer_sessions
from loglib.core.schema import (
    CHANGE_KINDS,
    DEPLOY_COMPARISON,
    DEPLOY_COMPONENTS,
    INCIDENT_EVENTS,
    UTC_TS,
    conform,
)
from loglib.formats.pgbouncer_lines import LOGIN_FAILURE_REASONS

#: a component that restarted this long before a deploy restarted for it
BEFORE = timedelta(seconds=60)
#: an app's old connections end this close before its new process logs its start
APP_STOP_WINDOW = (timedelta(seconds=-60), timedelta(seconds=5))
#: the worse of two ways to stop wins (two pgBouncer restarts in one deploy: the worse one)
_WORST = {"graceful": 0, "fast": 1, "killed": 2, "failed": 2}
#: PostgreSQL's shutdown request lines -> how it stopped
_PG_STOPS = (("smart", "graceful"), ("fast", "fast"), ("immediate", "killed"))
_PG_DROPPED = ("client_reset", "admin_termination", "server_shutdown", "unknown")
#: pgBouncer client closes that the application itself caused by vanishing
_APP_VANISHED = ("client unexpected eof",)


def _between(col: str, lo: datetime, hi: datetime) -> pl.Expr:
    return pl.col(col).is_between(lo, hi, closed="left")


def _extra_pgbouncer_moments(moments: pl.DataFrame, procs: pl.DataFrame) -> pl.DataFrame:
    """pgBouncer restarts that no deploy or restart explains, as moments of their own."""
    stops = procs.filter(pl.col("stopped").is_not_null() & pl.col("end").is_not_null())
    if not stops.height:
        return moments
    for at in moments["ts"]:
        stops = stops.filter(~_between("end", at - BEFORE, at + AFTER))
    extra = stops.select(
        ts=pl.col("end"),
        kind=pl.lit("restart"),
        text=pl.concat_str(pl.lit("pgBouncer stopped ("), pl.col("stopped"), pl.lit(") and restarted")),
        origin=pl.lit("pgbouncer"),
    )
    return pl.concat([moments.select("ts", "kind", "text", "origin"), extra]).sort("ts")


def _pg_stopped(pg: pl.DataFrame | None, lo: datetime, hi: datetime) -> str | None:
    if pg is None:
        return None
    lines = pg.filter(_between("ts", lo, hi) & pl.col("event").is_in(["server_shutdown", "crash_restart"]))
    found = "killed" if (lines["event"] == "crash_restart").any() else None
    for word, how in _PG_STOPS:
        if lines["message"].str.starts_with(f"received {word} shutdown request").any():
            found = _worse(found, how)
    return found or "killed"  # a restart with no shutdown request line: the server died


def _worse(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if _WORST[a] >= _WORST[b] else b


class _Judge:
    """What each deploy's window holds, from one Evidence (frames filtered, never re-parsed)."""

    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        self.events = ev.events
        self.errors = connection_errors(ev)
        self.procs = pgbouncer_processes(ev) if ev.pgbouncer is not None else None
        self.clients = None
        self.pooler = None
        if ev.pgbouncer is not None:
            s = pgbouncer_sessions(ev)
            self.clients = s.filter(
                (pl.col("side") == "client") & pl.col("logged_in") & pl.col("end").is_not_null()
            )
            self.pooler = ev.pgbouncer.filter(
                (pl.col("event") == "pooler_error")
                & ~pl.col("reason").fill_null("").str.contains(LOGIN_FAILURE_REASONS)
            )
        pg = ev.sessions
        self.pg_sessions = None if pg is None else pg.filter(pl.col("end").is_not_null())

    def restarts(self, origin: tuple[str, ...], lo: datetime, hi: datetime) -> pl.DataFrame:
        return self.events.filter(
            pl.col("origin").is_in(list(origin)) & (pl.col("kind") == "restart") & _between("ts", lo, hi)
        )

    def app_stopped(self, starts: pl.Series, lo: datetime) -> str:
        """``killed`` when the app's connections vanished (EOF, reset) just before it came up again."""
        vanished = 0
        for start in starts:
            a, b = max(lo, start + APP_STOP_WINDOW[0]), start + APP_STOP_WINDOW[1]
            if self.clients is not None:
                vanished += self.clients.filter(
                    _between("end", a, b) & pl.col("end_reason").is_in(_APP_VANISHED)
                ).height
            elif self.pg_sessions is not None:
                vanished += self.pg_sessions.filter(
                    _between("end", a, b) & (pl.col("end_reason") == "client_reset")
                ).height
        return "killed" if vanished else "graceful"

    def row(self, m: dict[str, Any], lo: datetime, until: datetime, since: datetime) -> dict[str, Any]:
        at = m["ts"]
        after = self.errors.filter(_between("ts", at, until))
        before = self.errors.filter(_between("ts", since, at))
        out: dict[str, Any] = {
            "at": at, "kind": m["kind"], "text": m["text"], "origin": m["origin"],
            "errors": after.height, "errors_before": before.height,
            "first_error": after["ts"].min(), "last_error": after["ts"].max(),
        }  # fmt: skip
        out["recovery_s"] = None if not after.height else (out["last_error"] - at).total_seconds()
        out["pooler_errors"] = (
            0 if self.pooler is None else self.pooler.filter(_between("ts", at, until)).height
        )
        restarted = set()
        apps = self.restarts(("app", "connections"), lo, until)
        if apps.height:
            restarted.add("app")
            out["app_stopped"] = self.app_stopped(apps["ts"], lo)
        if self.procs is not None:
            stops = self.procs.filter(pl.col("stopped").is_not_null() & _between("end", lo, until))
            if stops.height:
                restarted.add("pgbouncer")
                for how in stops["stopped"]:
                    out["pgbouncer_stopped"] = _worse(out.get("pgbouncer_stopped"), how)
        if self.restarts(("postgres",), lo, until).height:
            restarted.add("postgres")
            out["postgres_stopped"] = _pg_stopped(self.ev.pg, lo, until)
        out["restarted"] = [c for c in DEPLOY_COMPONENTS if c in restarted]
        pg_dropped = 0
        if self.pg_sessions is not None:
            pg_dropped = self.pg_sessions.filter(
                _between("end", lo, until) & pl.col("end_reason").is_in(list(_PG_DROPPED))
            ).height
        out["pg_sessions_dropped"] = pg_dropped
        if self.clients is not None:
            out["sessions_dropped"] = self.clients.filter(
                _between("end", lo, until) & (pl.col("end_reason") != "client close request")
            ).height
        else:
            out["sessions_dropped"] = pg_dropped
        return out


def _compare(ev: Evidence) -> pl.DataFrame:
    judge = _Judge(ev)
    moments = _moments(judge.events)
    if judge.procs is not None:
        moments = _extra_pgbouncer_moments(moments, judge.procs)
    if not moments.height:
        return DEPLOY_COMPARISON.empty()
    rows = []
    times = moments["ts"].to_list()
    settled = None  # when the previous deploy's errors ended: the baseline starts after them
    prev_until = None
    for i, m in enumerate(moments.iter_rows(named=True)):
        at = m["ts"]
        until = min(at + AFTER, times[i + 1]) if i + 1 < len(times) else at + AFTER
        span = until - at
        # the baseline starts just after the previous deploy's last error
        since = at - span if settled is None else max(at - span, settled + timedelta(microseconds=1))
        lo = at - BEFORE if prev_until is None else max(at - BEFORE, prev_until)
        row = judge.row(m, lo, until, since)
        rows.append(row)
        if row["errors"]:
            settled = row["last_error"]
        prev_until = until
    frame = pl.DataFrame(rows, schema_overrides={"at": UTC_TS, "first_error": UTC_TS, "last_error": UTC_TS})
    return conform(frame, DEPLOY_COMPARISON)  # type: ignore[return-value]


def compare_deploys(data: Any) -> pl.DataFrame:
    """One row per deploy (declared or detected), side by side: errors, what restarted, how it stopped.

    ``data`` is an Evidence (or an Incident: its ``.evidence``). Errors are the post-deploy
    findings' connection errors (app error classes of connection trouble, PostgreSQL
    ``server_not_ready``) from the deploy to ``AFTER`` later or the next deploy; ``errors_before``
    counts the same span before it, after the previous deploy's errors settled. A component
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


def _pgbouncer_marks(procs: pl.DataFrame) -> pl.DataFrame:
    """One mark per pgBouncer stop: ``restart`` when another process followed, else ``note``."""
    stops = procs.with_columns(_next=pl.col("start").shift(-1)).filter(
        pl.col("stopped").is_not_null() & pl.col("end").is_not_null()
    )
    restarted = pl.col("_next").is_not_null()
    return stops.select(
        ts=pl.col("end"),
        kind=pl.when(restarted).then(pl.lit("restart")).otherwise(pl.lit("note")),
        text=pl.when(restarted)
        .then(pl.format("pgBouncer restarted ({})", "stopped"))
        .otherwise(pl.format("pgBouncer stopped ({})", "stopped")),
        origin=pl.lit("pgbouncer"),
        source=pl.lit("pgbouncer"),
        file="file",
        line="line",
        detail=pl.format(
            "{}; {} client(s), {} server connection(s) dropped",
            "stop_reason",
            "clients_dropped",
            "servers_dropped",
        ),
    )


def _with_outcome(events: pl.DataFrame, cmp: pl.DataFrame) -> pl.DataFrame:
    """The mark nearest each compared deploy (within ``MOMENT_GAP``) says in ``detail`` what followed it."""
    if not cmp.height:
        return events
    indexed = events.with_row_index("_i")
    moments = indexed.filter(pl.col("kind").is_in(CHANGE_KINDS)).select("_i", "ts").sort("ts")
    restarted = pl.col("restarted").list.join(", ")
    outcome = (
        cmp.select(
            "at",
            _outcome=pl.concat_str(
                pl.format("{} connection error(s) after it", "errors"),
                pl.when(pl.col("restarted").list.len() > 0)
                .then(pl.concat_str(pl.lit("; restarted: "), restarted))
                .otherwise(pl.lit("; nothing restarted")),
            ),
        )
        .sort("at")
        .join_asof(moments, left_on="at", right_on="ts", strategy="nearest", tolerance=MOMENT_GAP)
        .drop_nulls("_i")
        .unique("_i", keep="first")
    )
    marked = indexed.join(outcome.select("_i", "_outcome"), on="_i", how="left", maintain_order="left")
    return marked.with_columns(
        detail=pl.when(pl.col("detail").is_not_null() & pl.col("_outcome").is_not_null())
        .then(pl.concat_str(pl.col("detail"), pl.lit(" — "), pl.col("_outcome")))
        .otherwise(pl.coalesce("detail", "_outcome"))
    ).select(events.columns)


def deploy_marks(data: Any) -> pl.DataFrame:
    """The events the charts mark (``Evidence.marks``): ``Evidence.events`` plus pgBouncer's restarts.

    A pgBouncer restart (``pgbouncer_processes``: a stop followed by a start) is a ``restart``
    of origin ``pgbouncer``, stamped when the old process stopped; a final stop is a ``note``.
    Columns: ``loglib.schema.INCIDENT_EVENTS`` and ``detail``, what a hover adds to ``text``: how
    pgBouncer stopped and what it dropped, and for each deploy or restart that ``compare_deploys``
    compares, what followed it.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> log = (b"2024-03-01 10:00:00.000 UTC [7] LOG process up: PgBouncer 1.18.0, libevent 2.1.12\\n"
    ...        b"2024-03-01 10:05:00.000 UTC [7] LOG got SIGTERM, fast exit\\n"
    ...        b"2024-03-01 10:05:01.000 UTC [9] LOG process up: PgBouncer 1.18.0, libevent 2.1.12\\n")
    >>> ll.Evidence.from_frames(pgbouncer=ll.read_pgbouncer_log(log)).marks.select("kind", "text", "detail").rows()
    [('restart', 'pgBouncer restarted (fast)', 'got SIGTERM, fast exit; 0 client(s), 0 server connection(s) dropped — 0 connection error(s) after it; restarted: pgbouncer')]
    """
    ev = as_evidence(data)

    def compute() -> pl.DataFrame:
        events = conform(ev.events, INCIDENT_EVENTS).with_columns(detail=pl.lit(None, pl.String))
        if ev.pgbouncer is not None and ev.pgbouncer.height:
            marks = _pgbouncer_marks(pgbouncer_processes(ev))
            marks = conform(marks, INCIDENT_EVENTS).with_columns(marks["detail"])  # type: ignore[union-attr]
            events = pl.concat([events, marks]).sort("ts")
        return _with_outcome(events, compare_deploys(ev))  # type: ignore[arg-type]

    return ev.cached("deploy_marks", compute)
