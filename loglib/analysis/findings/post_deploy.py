"""Post-deploy flakiness: connection errors after a deploy or restart, the time to recover, how the old
connections were closed (``detect``), what to change (``recommend``) and the charts that show it.

>>> import loglib as ll
>>> from loglib.analysis.findings import post_deploy
>>> inc = ll.Incident.load("data/incidents/post-deploy")         # doctest: +SKIP
>>> [f.numbers["recovery_s"] for f in post_deploy.detect(inc.evidence)]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib.analysis.evidence import Evidence
from loglib.analysis.findings.finding import Finding
from loglib.analysis.pgbouncer import pooler_refusals
from loglib.core.schema import CHANGE_KINDS, UTC_TS

#: the finding kind this module detects
KIND = "post_deploy"
#: the charts that show this finding's evidence (``loglib.charts`` names)
CHARTS: tuple[str, ...] = ("error_rate", "before_after")

#: app error classes of connection trouble around a deploy (pool timeouts are the pool detector's)
FLAKY_CLASSES = (
    "server_closed",
    "connection_reset",
    "admin_shutdown",
    "crash_restart",
    "server_not_ready",
    "connection_refused",
    "connect_timeout",
    "ssl_eof",
    "conn_invalidated",
    "conn_already_closed",
    "too_many_connections",
    "dns_failure",
    "pooler_error",
)
#: declared and detected events this close are one deploy/restart
MOMENT_GAP = timedelta(seconds=5)
#: how long after a deploy/restart errors are attributed to it
AFTER = timedelta(minutes=5)
#: at least this many errors after an event make a finding
MIN_ERRORS = 2
#: the error rate after the event must be this many times the rate before it
RATE_FACTOR = 3.0
#: sessions ending this close to the event were closed by it
CLOSE_WINDOW = (timedelta(seconds=-5), timedelta(seconds=30))


def baseline_start(at: datetime, span: timedelta, settled: datetime | None) -> datetime:
    """Where the quiet time before the event at ``at`` starts: ``span`` before it, but strictly
    after ``settled`` (the previous event's last error), so that error is not counted again.

    >>> from datetime import UTC
    >>> t = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    >>> baseline_start(t, timedelta(minutes=5), t - timedelta(seconds=97)).time()
    datetime.time(9, 58, 23, 1)
    """
    return at - span if settled is None else max(at - span, settled + timedelta(microseconds=1))


def _moments(events: pl.DataFrame) -> pl.DataFrame:
    """Deploys and restarts, one per minute-long cluster (a declared event names the cluster)."""
    ev = events.filter(pl.col("kind").is_in(CHANGE_KINDS) & pl.col("ts").is_not_null())
    if ev.height == 0:
        return ev
    ev = ev.sort("ts").with_columns(
        _o=pl.col("origin") != "declared",
        _cluster=(pl.col("ts").diff() > MOMENT_GAP).fill_null(True).cum_sum(),
    )
    return (
        ev.sort("_cluster", "_o", "ts")
        .group_by("_cluster", maintain_order=True)
        .agg(
            pl.col("ts").min(),
            pl.col("kind").first(),
            pl.col("text").first(),
            pl.col("origin").unique().sort().str.join("+").alias("origin"),
        )
        .sort("ts")
    )


#: levels of lines that note a problem without being a failed request
_BELOW_ERROR = ("trace", "debug", "info", "notice", "warning", "warn")


def connection_errors(inc: Evidence) -> pl.DataFrame:
    """The connection errors deploys are judged by (``ts``, ``source``, ``what``, ``file``, ``line``),
    one per failed request, from the closest witness there is:

    * app events of :data:`FLAKY_CLASSES` at level error or above;
    * with no app log, pgBouncer's refusals (``pooler_refusals``: ``what`` is ``pooler: <reason>``);
    * with neither, PostgreSQL's ``server_not_ready`` refusals. Behind a pgBouncer those are its own
      logins to the server (retried every ``server_login_retry``), not the app's requests.

    Examples
    --------
    >>> import loglib as ll
    >>> from loglib.analysis.findings.post_deploy import connection_errors
    >>> log = b"2024-03-01 10:00:04.000 UTC [7] WARNING C-0x3: shop/app@10.0.0.5:5002 pooler error: query_wait_timeout\\n"
    >>> connection_errors(ll.Evidence.from_frames(pgbouncer=ll.read_pgbouncer_log(log)))["what"].to_list()
    ['pooler: query_wait_timeout']
    """
    parts = []
    if inc.app is not None and inc.app.height:
        # a failed request is one error: a library's INFO/WARNING note about the same connection
        # (SQLAlchemy's "Invalidate connection") is not another one
        level = pl.col("level").cast(pl.String).fill_null("error").str.to_lowercase()
        parts.append(
            inc.app.filter(
                pl.col("error_class").is_in(list(FLAKY_CLASSES))
                & pl.col("ts").is_not_null()
                & ~level.is_in(list(_BELOW_ERROR))
            ).select("ts", pl.lit("app").alias("source"), pl.col("error_class").alias("what"), "file", "line")
        )
    witnessed = bool(parts and parts[0].height)
    # the pooler's and the server's refusal of an attempt are the app's error seen from them:
    # counted only when there is no app log to count the failed requests
    pgbouncer = inc.pgbouncer if inc.pgbouncer is not None and inc.pgbouncer.height else None
    if pgbouncer is not None and not witnessed:
        refused = pooler_refusals(inc).select(
            "ts",
            pl.lit("pgbouncer").alias("source"),
            pl.concat_str(pl.lit("pooler: "), pl.col("reason")).alias("what"),
            "file",
            "line",
        )
        if refused.height:
            parts.append(refused)
    if inc.pg is not None and inc.pg.height and not witnessed and pgbouncer is None:
        parts.append(
            inc.pg.filter((pl.col("event") == "server_not_ready") & pl.col("ts").is_not_null()).select(
                "ts", pl.lit("postgres").alias("source"), pl.col("event").alias("what"), "file", "line"
            )
        )
    return pl.concat(parts).sort("ts") if parts else pl.DataFrame(schema={"ts": UTC_TS, "what": pl.String})


def detect(inc: Evidence) -> list[Finding]:
    """For each deploy or restart (declared or detected): errors by class after it, recovery, graceful close.

    Errors are app events of :data:`FLAKY_CLASSES` (plus PostgreSQL ``server_not_ready``
    refusals) from the event until ``AFTER`` later or the next event. A finding is made when
    there are at least ``MIN_ERRORS`` and their rate is ``RATE_FACTOR`` times the rate in the
    same span before the event (a baseline that starts after the previous event's errors, so
    one deploy's errors are not the next one's "normal"). ``recovery_s`` is the time from the event to the last of them.
    Sessions PostgreSQL saw end from 5 s before to 30 s after the event tell whether the old
    connections were closed gracefully (``disconnection``) or dropped (resets, terminations,
    server shutdown).
    """
    moments = _moments(inc.events)
    if moments.height == 0:
        return []
    errors = connection_errors(inc)
    sessions = inc.sessions
    from loglib.analysis.deploys import compare_deploys  # it imports this module's constants

    compared = compare_deploys(inc)
    out = []
    times = moments["ts"].to_list()
    settled = None  # when the previous event's errors ended: the baseline starts after them
    for i, row in enumerate(moments.iter_rows(named=True)):
        at = row["ts"]
        until = min(at + AFTER, times[i + 1]) if i + 1 < len(times) else at + AFTER
        span = until - at
        after = errors.filter(pl.col("ts").is_between(at, until, closed="left"))
        since = baseline_start(at, span, settled)
        before = errors.filter(pl.col("ts").is_between(since, at, closed="left"))
        rate_before = before.height / max((at - since).total_seconds(), 1.0)
        rate_after = after.height / max(span.total_seconds(), 1.0)
        if after.height:
            settled = after["ts"].max()
        if after.height < MIN_ERRORS or rate_after < RATE_FACTOR * max(rate_before, 1e-9):
            continue
        by_class = dict(after.group_by("what").len().sort("len", descending=True).iter_rows())
        recovery = (after["ts"].max() - at).total_seconds()
        numbers = {
            "at": at,
            "event": row["kind"],
            "origin": row["origin"],
            "errors": after.height,
            "errors_before": before.height,
            "errors_by_class": by_class,
            "recovery_s": round(recovery, 3),
        }
        restarted = compared.filter(pl.col("at") == at)["restarted"]
        if restarted.len():
            numbers["restarted"] = restarted[0].to_list()
        close_text = ""
        if sessions is not None and sessions.height:
            ended = sessions.filter(pl.col("end").is_between(at + CLOSE_WINDOW[0], at + CLOSE_WINDOW[1]))
            reasons = dict(ended.group_by("end_reason").len().sort("end_reason").iter_rows())
            clean = int(reasons.get("disconnection", 0))
            dropped = int(sum(v for k, v in reasons.items() if k not in ("disconnection", "rejected")))
            numbers.update(closed_clean=clean, closed_dropped=dropped, closed_by_reason=reasons)
            if clean or dropped:
                graceful = (
                    "gracefully"
                    if dropped == 0
                    else ("not gracefully" if clean == 0 else "partly gracefully")
                )
                close_text = (
                    f" Old connections were closed {graceful}: {clean} clean disconnection(s), {dropped} "
                    "reset/terminated."
                )
        classes = ", ".join(f"{n} {k}" for k, n in by_class.items())
        statement = (
            f"After the {row['kind']} at {at:%H:%M:%S} UTC ({row['text']}), {after.height} connection error(s) "
            f"followed ({classes}) against {before.height} in the quiet time before; the last came "
            f"{recovery:.3g} s after it (time to recover).{close_text}"
        )
        evidence = after.with_columns(since_s=(pl.col("ts") - at).dt.total_microseconds() / 1e6)
        out.append(Finding("post_deploy", statement, numbers, evidence, at, after["ts"].max(), "medium"))
    shared = compare_finding(inc)
    return ([shared] if shared is not None else []) + out


# --- what the deploys with errors share -------------------------------------------------------


def _how(r: dict[str, Any], col: str) -> str:
    return f"{r['at']:%H:%M:%S}: {r[col]}"


#: what a deploy can have done, from its ``compare_deploys`` row: key -> (words, test, detail)
TRAITS: dict[str, tuple[str, Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], str] | None]] = {
    "pgbouncer_restarted": ("pgBouncer was restarted", lambda r: "pgbouncer" in r["restarted"], None),
    "pgbouncer_abrupt": (
        "pgBouncer was stopped abruptly (a fast exit or killed), dropping its clients",
        lambda r: r["pgbouncer_stopped"] in ("fast", "killed", "failed"),
        lambda r: _how(r, "pgbouncer_stopped"),
    ),
    "pgbouncer_killed": (
        "pgBouncer was killed (SIGKILL, the OOM killer or a crash: no shutdown line)",
        lambda r: r["pgbouncer_stopped"] in ("killed", "failed"),
        None,
    ),
    "sessions_dropped": (
        "client sessions were dropped instead of drained and closed",
        lambda r: (r["sessions_dropped"] or 0) > 0,
        lambda r: _how(r, "sessions_dropped"),
    ),
    "app_restarted": ("the app was restarted", lambda r: "app" in r["restarted"], None),
    "app_killed": (
        "the app was killed (its connections vanished), not stopped gracefully",
        lambda r: r["app_stopped"] == "killed",
        None,
    ),
    "postgres_restarted": ("PostgreSQL was restarted", lambda r: "postgres" in r["restarted"], None),
    "postgres_abrupt": (
        "PostgreSQL was stopped abruptly (fast or immediate shutdown, or a crash)",
        lambda r: r["postgres_stopped"] in ("fast", "killed"),
        lambda r: _how(r, "postgres_stopped"),
    ),
    "pg_sessions_dropped": (
        "PostgreSQL sessions were reset or terminated",
        lambda r: (r["pg_sessions_dropped"] or 0) > 0,
        lambda r: _how(r, "pg_sessions_dropped"),
    ),
    "not_paused": (
        "pgBouncer was not paused first (PAUSE … RESUME)",
        lambda r: r["pgbouncer_paused"] is False,
        None,
    ),
    "pgbouncer_reloaded": (
        "pgBouncer reloaded its configuration (RELOAD, SIGHUP)",
        lambda r: r["pgbouncer_reloaded"] is True,
        None,
    ),
}


def _is_bad(r: dict[str, Any]) -> bool:
    """The same test as a per-deploy finding: enough errors, well above the quiet time before."""
    return r["errors"] >= MIN_ERRORS and r["errors"] > RATE_FACTOR * r["errors_before"]


def _traits(rows: list[dict[str, Any]]) -> dict[str, tuple[str, Callable[[dict[str, Any]], bool], Any]]:
    """:data:`TRAITS` plus one per pgBouncer pool whose clients were dropped or refused."""
    out = dict(TRAITS)
    for pool in sorted({p for r in rows for p in (r["pools"] or [])}):
        out[f"pool:{pool}"] = (
            f"clients of pgBouncer pool {pool} were dropped or refused",
            lambda r, pool=pool: pool in (r["pools"] or []),
            None,
        )
    return out


def _name(r: dict[str, Any]) -> str:
    return f"{r['text']} at {r['at']:%H:%M:%S} UTC"


def compare_finding(inc: Evidence) -> Finding | None:
    """What the deploys with errors share and the clean ones do not (one finding), from ``compare_deploys``.

    A deploy or restart "has errors" by the same test as its own finding (at least
    ``MIN_ERRORS``, ``RATE_FACTOR`` times the quiet time before). Each :data:`TRAITS` entry
    (pgBouncer restarted or stopped abruptly, sessions dropped rather than drained, the app
    killed, PostgreSQL restarted, pgBouncer not paused, reloaded, a pool's clients dropped) that
    holds for every deploy with errors and for none of the others is named: that is what
    explains them. When none does, the closest one is named with its counts. None when fewer
    than two deploys are compared or none had errors.

    Examples
    --------
    >>> import loglib as ll  # doctest: +SKIP
    >>> f = ll.analysis.findings.post_deploy.compare_finding(ll.Incident.load(folder).evidence)  # doctest: +SKIP
    >>> f.numbers["shared"]  # doctest: +SKIP
    ['pgbouncer_abrupt', 'sessions_dropped']
    """
    from loglib.analysis.deploys import compare_deploys  # it imports this module's constants

    cmp = compare_deploys(inc)
    rows = cmp.to_dicts()
    bad = [r for r in rows if _is_bad(r)]
    clean = [r for r in rows if not _is_bad(r)]
    if len(rows) < 2 or not bad:
        return None
    traits = _traits(rows)
    has = {k: ([t(r) for r in bad], [t(r) for r in clean]) for k, (_, t, _) in traits.items()}
    shared = [k for k, (b, c) in has.items() if all(b) and not any(c)] if clean else []
    common = [k for k, (b, _) in has.items() if all(b)]
    errors = sum(r["errors"] for r in bad)
    numbers: dict[str, Any] = {
        "compared": len(rows),
        "with_errors": [f"{_name(r)} ({r['errors']} errors)" for r in bad],
        "without_errors": [f"{_name(r)} ({r['errors']} errors)" for r in clean],
        "errors": errors,
        "shared": shared,
        "shared_by_all_with_errors": common,
    }

    def words(k: str) -> str:
        label, _, detail = traits[k]
        return label + (f" ({', '.join(detail(r) for r in bad)})" if detail else "")

    n_bad = f"{len(bad)} of {len(rows)} deploys and restarts"
    if shared:
        verb = (
            f"share what the other {len(clean)} do not"
            if len(bad) > 1
            else f"differs from the other {len(clean)}"
        )
        lead = f"The {n_bad} that brought connection errors {verb}: " + "; ".join(map(words, shared)) + "."
        if len(bad) == 1:
            lead = lead.replace(
                "deploys and restarts that brought", "deploys and restarts, the one that brought"
            )
        confidence = "medium" if len(rows) >= 3 else "low"
    elif clean:
        score = {k: sum(b) / len(bad) - sum(c) / len(clean) for k, (b, c) in has.items()}
        best = max(score, key=lambda k: score[k])
        b, c = has[best]
        numbers["closest"] = best
        lead = (
            f"Nothing loglib compares separates the {n_bad} that brought connection errors from the other "
            f"{len(clean)}; the closest: {traits[best][0]} in {sum(b)} of {len(bad)} with errors and "
            f"{sum(c)} of {len(clean)} without."
        )
        confidence = "low"
    else:
        lead = (
            f"All {len(rows)} deploys and restarts brought connection errors; none was clean to compare with."
        )
        lead += (" What they all share: " + "; ".join(map(words, common)) + ".") if common else ""
        confidence = "low"
    listing = f" With errors: {'; '.join(numbers['with_errors'])}."
    if clean:
        listing += f" Without: {'; '.join(_name(r) for r in clean)}."
    statement = lead + listing + f" ({len(rows)} deploys: a pattern to check, not a proof.)"
    evidence = cmp.select(
        ts="at",
        source=pl.lit("compare_deploys"),
        what=pl.format(
            "{}: {} error(s); restarted: {}", "text", "errors", pl.col("restarted").list.join(", ")
        ),
    )
    first_error = min((r["first_error"] for r in bad if r["first_error"] is not None), default=None)
    last_error = max((r["last_error"] for r in bad if r["last_error"] is not None), default=None)
    numbers["recovery_s_max"] = max(r["recovery_s"] or 0.0 for r in bad)
    return Finding(KIND, statement, numbers, evidence, first_error, last_error, confidence)


def recommend(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """What to change after a ``post_deploy`` finding: ``add(recommendation, because)`` for each.

    ``pre_ping`` is the app's ``pool_pre_ping`` setting (None when unknown): advice already in
    place is left out.

    Examples
    --------
    >>> from loglib.analysis.findings import Finding, post_deploy
    >>> f = Finding("post_deploy", "…", {"errors_by_class": {"admin_shutdown": 2}})
    >>> post_deploy.recommend(f, None, lambda rec, why: print(why))
    2 quer(ies) were terminated by the shutdown.
    """
    n = f.numbers or {}
    if "shared" in n:
        _recommend_from_comparison(n, add)
        return
    classes = n.get("errors_by_class") or {}
    rec_s = n.get("recovery_s")
    restarted = n.get("restarted")  # known when the deploys were compared
    pooler_only = restarted is not None and "pgbouncer" in restarted and "postgres" not in restarted
    if classes.get("connection_refused") and pooler_only:
        add(
            "Keep something listening on pgBouncer's port through the deploy (PAUSE … RESUME or RELOAD "
            "instead of a restart, or so_reuseport with a second pgBouncer), and retry `connection "
            "refused` with backoff.",
            f"Connections were refused for up to {rec_s:g} s while pgBouncer restarted."
            if rec_s
            else "Connections were refused while pgBouncer restarted.",
        )
    elif classes.get("connection_refused"):
        add(
            "Roll the application only after PostgreSQL accepts connections again (a readiness "
            "check on the database in the deploy), and retry `connection refused` with backoff.",
            f"Connections were refused for up to {rec_s:g} s after a deploy restarted PostgreSQL."
            if rec_s
            else "Connections were refused after a deploy restarted PostgreSQL.",
        )
    if n.get("closed_dropped") and pre_ping is not True:
        add(
            "Enable pool_pre_ping=True so connections broken by the restart are replaced before use.",
            f"{n['closed_dropped']} pooled connection(s) were cut by the "
            + ("pgBouncer restart." if pooler_only else "server restart."),
        )
    if classes.get("pooler_error"):
        add(
            "Give pgBouncer's clients somewhere to wait instead of an error: PAUSE … RESUME around "
            "PostgreSQL work, a query_wait_timeout longer than the restart, and retries with backoff.",
            f"{classes['pooler_error']} request(s) got pgBouncer's own error (server login failing, "
            "query_wait_timeout, server conn crashed?…).",
        )
    if classes.get("admin_shutdown"):
        add(
            "Drain the application before restarting PostgreSQL (or use a fast switchover) so "
            "in-flight queries are not terminated.",
            f"{classes['admin_shutdown']} quer(ies) were terminated by the shutdown.",
        )


#: shared trait -> what to change when the deploys with errors share it
_ADVICE: dict[str, str] = {
    "pgbouncer_abrupt": (
        "Do not stop pgBouncer abruptly in a deploy: apply configuration with RELOAD (or SIGHUP), wrap a "
        "PostgreSQL restart in PAUSE … RESUME, or replace the process without a gap (so_reuseport with a "
        "second pgBouncer, or the online restart `pgbouncer -R`). If it must stop, drain the app first and "
        "send SIGINT (it waits for its server connections); never SIGKILL, and not SIGTERM before 1.23 "
        "(a fast exit that drops every client)."
    ),
    "pgbouncer_killed": (
        "Find out what killed pgBouncer (the OOM killer in the kernel log, a supervisor's SIGKILL after a "
        "stop timeout) and stop it with SIGINT, or PAUSE … RESUME, instead."
    ),
    "pgbouncer_restarted": (
        "Keep pgBouncer running through deploys: RELOAD for configuration, PAUSE … RESUME around "
        "PostgreSQL work; restart it only in its own, drained, maintenance step."
    ),
    "sessions_dropped": (
        "Drain before anything restarts: take the app out of the load balancer (readiness false), let "
        "in-flight requests finish, close the pool (`engine.dispose()`), then stop it or pgBouncer."
    ),
    "app_killed": (
        "Stop the app gracefully: SIGTERM with a grace period longer than the slowest request "
        "(terminationGracePeriodSeconds, a preStop hook), so its connections are closed, not cut."
    ),
    "app_restarted": (
        "Roll the app gradually with readiness checks, so old instances serve until the new ones are ready."
    ),
    "postgres_abrupt": (
        "Restart PostgreSQL behind pgBouncer's PAUSE (clients wait instead of failing) and RESUME once it "
        "accepts connections; without pgBouncer, drain the app first and use a smart shutdown or a switchover."
    ),
    "postgres_restarted": (
        "Put readiness before traffic: send requests (or RESUME pgBouncer) only after PostgreSQL accepts "
        "connections again."
    ),
    "pg_sessions_dropped": (
        "Enable pool_pre_ping=True (or a server_check_query in pgBouncer) so connections the restart broke "
        "are replaced before a request uses them."
    ),
    "not_paused": (
        "PAUSE pgBouncer before the restart and RESUME after it, as the deploys without errors did: clients "
        "wait for a connection instead of failing."
    ),
    "pgbouncer_reloaded": (
        "Check what the RELOAD changed: a changed [databases] entry makes pgBouncer close that database's "
        "server connections (database configuration changed)."
    ),
}


def _recommend_from_comparison(n: dict[str, Any], add: Callable[[str, str], None]) -> None:
    """Advice from what the deploys with errors share (``shared``), then retries for every case."""
    bad = "; ".join(n.get("with_errors") or [])
    clean = "; ".join(n.get("without_errors") or [])
    shared = n.get("shared") or []
    # the abrupt stop's advice covers the restart's
    implied = {"pgbouncer_restarted": "pgbouncer_abrupt", "postgres_restarted": "postgres_abrupt",
               "app_restarted": "app_killed"}  # fmt: skip
    for key in [k for k in shared if implied.get(k) not in shared]:
        label = (
            TRAITS[key][0] if key in TRAITS else f"clients of pgBouncer pool {key.split(':', 1)[1]} suffered"
        )
        if key.startswith("pool:"):
            add(
                f"Look at pgBouncer pool {key.split(':', 1)[1]} first (its pool_size, max_db_connections and "
                "clients): the deploys with errors dropped or refused its clients and no other's.",
                f"In the deploys with errors ({bad}) {label}; in the others ({clean}) not.",
            )
            continue
        if key in _ADVICE:
            add(_ADVICE[key], f"In the deploys with errors ({bad}) {label}; in the others ({clean}) not.")
    errors = n.get("errors")
    if errors:
        add(
            "Retry connection errors in the app with backoff and jitter (idempotent requests only), so a "
            "restart costs latency instead of failed requests.",
            f"{errors} connection error(s) followed the deploys with errors; the last came "
            f"{n.get('recovery_s_max', 0):.3g} s after its deploy.",
        )
