"""What to change, from the findings' numbers: one recommender per finding kind (``recommendations``).

Each detector's findings carry the numbers their recommendations need (``leaked_total``,
``recommended_pool_size``, ``idle_timeout_s`` …); :data:`RECOMMENDERS` maps a finding kind to the
function that turns them into advice. A new detector adds its recommender here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import polars as pl

from loglib.analysis.findings import Finding


def _pool_exhaustion(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """Recommendations for ``pool_exhaustion`` findings."""
    n = f.numbers or {}
    leaked = n.get("leaked_total")
    if leaked:
        rate = n.get("leaks_per_hour")
        add(
            "Fix the leak: return every connection on every path, errors included "
            "(`with Session(engine) as session:`, `try/finally: conn.close()`); do not keep "
            "exceptions or tracebacks that hold a session.",
            f"{leaked:g} connection(s) leaked"
            + (f", about {rate:g} per hour" if rate else "")
            + f" ({n.get('leak_method', '?')}, {n.get('leak_confidence', '?')} confidence).",
        )
        add(
            "Alert on the leak, not the outage: the floor of the pool's checked-out gauge rising, "
            "or PostgreSQL sessions `idle in transaction` older than a few minutes.",
            "The pool filled long before the 503s were noticed.",
        )
    rec = n.get("recommended_pool_size")
    if rec and rec != n.get("pool_size"):
        add(
            f"Size the pool at pool_size={rec} (with max_overflow for bursts) once the leak is fixed.",
            f"Peak concurrent use was {n.get('peak_concurrent', '?')} connection(s) "
            f"(p99 {n.get('p99_concurrent', '?')}); configured {n.get('pool_size')}+{n.get('max_overflow')}.",
        )
    if n.get("server_refusals"):
        add(
            "Cap the connections all processes can open below the server's slots "
            "(pool_size+max_overflow × processes ≤ max_connections − reserved), or add PgBouncer.",
            f"PostgreSQL refused {n['server_refusals']} connection(s).",
        )


def _post_deploy(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """Recommendations for ``post_deploy`` findings."""
    n = f.numbers or {}
    classes = n.get("errors_by_class") or {}
    rec_s = n.get("recovery_s")
    if classes.get("connection_refused"):
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
            f"{n['closed_dropped']} pooled connection(s) were cut by the server restart.",
        )
    if classes.get("admin_shutdown"):
        add(
            "Drain the application before restarting PostgreSQL (or use a fast switchover) so "
            "in-flight queries are not terminated.",
            f"{classes['admin_shutdown']} quer(ies) were terminated by the shutdown.",
        )


def _idle_drops(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """Recommendations for ``idle_drops`` findings."""
    n = f.numbers or {}
    # measured (idle_timeout_s) or, without statement logging, only an upper bound
    timeout = n.get("idle_timeout_s")
    bound = n.get("idle_timeout_max_s")
    limit = timeout if timeout is not None else bound
    said = (
        f"the {timeout:.0f} s idle timeout"
        if timeout is not None
        else f"the idle timeout, which is at most {bound:.0f} s"
        if bound is not None
        else "the idle timeout"
    )
    recycle = n.get("recommended_pool_recycle_s")
    if recycle:
        because = (
            f"{n.get('drops', '?')} connection(s) were reset after about {timeout:.0f} s idle."
            if timeout is not None
            else f"{n.get('drops', '?')} connection(s) were reset at most {bound:.0f} s after they "
            "logged in (an upper bound: PostgreSQL did not log statements)."
            if bound is not None
            else "Connections were reset after sitting idle."
        )
        add(
            f"Set pool_recycle={recycle:g} (below {said}) so no pooled connection outlives it.",
            because,
        )
    if n.get("recommended_pool_pre_ping") and pre_ping is not True:
        add(
            "Enable pool_pre_ping=True so a dropped connection is replaced instead of failing a request.",
            f"{n.get('app_errors_after_reset', '?')} request(s) failed on the first use after a drop.",
        )
    if limit is not None:
        add(
            f"Or keep connections alive through the middlebox: TCP keepalives shorter than "
            f"{limit:.0f} s (`keepalives_idle` in the DSN, or the server's tcp_keepalives_idle).",
            "A firewall, NAT or load balancer drops connections idle longer than that.",
        )


#: finding kind -> the function that adds its recommendations (``add(recommendation, because)``)
RECOMMENDERS: dict[str, Callable[[Finding, bool | None, Callable[[str, str], None]], None]] = {
    "pool_exhaustion": _pool_exhaustion,
    "post_deploy": _post_deploy,
    "idle_drops": _idle_drops,
}


def recommendations(found: Iterable[Finding], incident: Any = None) -> pl.DataFrame:
    """What to change, from the findings' numbers: ``finding``, ``recommendation``, ``because``.

    Parameters
    ----------
    found
        :func:`loglib.findings` of the incident.
    incident
        The incident (or its Evidence), for its ``[app]`` settings (a recommendation already in place is left out).

    Examples
    --------
    >>> import loglib as ll
    >>> f = ll.Finding("idle_drops", "Resets after 20 s idle.",
    ...                {"idle_timeout_s": 20.0, "recommended_pool_recycle_s": 16, "recommended_pool_pre_ping": True})
    >>> ll.postmortem.recommendations([f])["recommendation"].to_list()[0]
    'Set pool_recycle=16 (below the 20 s idle timeout) so no pooled connection outlives it.'
    """
    settings = getattr(incident, "app_settings", None)
    pre_ping = getattr(settings, "pool_pre_ping", None)
    rows: list[tuple[str, str, str]] = []

    def add(kind: str, rec: str, why: str) -> None:
        if (kind, rec, why) not in rows:
            rows.append((kind, rec, why))

    for f in found:
        recommend = RECOMMENDERS.get(f.kind)
        if recommend is not None:
            recommend(f, pre_ping, lambda rec, why, kind=f.kind: add(kind, rec, why))
    return pl.DataFrame(
        rows, schema={"finding": pl.String, "recommendation": pl.String, "because": pl.String}, orient="row"
    )
