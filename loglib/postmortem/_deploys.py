"""The postmortem's deploy comparison: ``compare_deploys`` as one table to paste (``deploy_table``)."""

from __future__ import annotations

from typing import Any

import polars as pl

from loglib.analysis.deploys import compare_deploys, pool_timeouts
from loglib.analysis.evidence import as_evidence
from loglib.analysis.findings.post_deploy import AFTER

#: what the table's numbers are, said under it
DEPLOY_TABLE_NOTE = (
    "One row per deploy or restart (declared in incident.toml or seen in the logs), times in UTC. "
    "Every count is of failed requests, one per failed request, not a rate (no denominator). "
    f"**Connection errors after**: requests that failed for a connection from it to "
    f"{AFTER.total_seconds() / 60:.0f} min later or the next row (from the app log; without one "
    "pgBouncer's refusals, else PostgreSQL's); **before**: a span as long before it, from after the "
    "previous row's last error (the baseline). **Pool timeouts after/before** (when the app log has "
    "any): requests that failed waiting for a pool connection (QueuePool limit…) in the same two spans; "
    "they are the pool's trouble, not the connections', and are not among the connection errors. "
    "**Recovered**: seconds to the last connection error. "
    "**Restarted**: the components whose own logs show a restart around it, and how each stopped "
    "(graceful, fast, killed). **Sessions dropped**: client sessions that were being served and were "
    "cut instead of closed, from up to 1 min before it to 5 min after it or the next row (pgBouncer's "
    "logged-in clients "
    "when there is a pgBouncer log, else PostgreSQL's sessions); a login that was refused is no "
    "dropped session: with a pgBouncer log, **Sessions refused** counts the clients it closed with its "
    "own error in the same span."
)


def _restarted(r: dict[str, Any]) -> str:
    how = {"app": r["app_stopped"], "pgbouncer": r["pgbouncer_stopped"], "postgres": r["postgres_stopped"]}
    parts = [f"{c} ({how[c]})" if how.get(c) else c for c in r["restarted"] or []]
    return ", ".join(parts) or "nothing"


def _pgbouncer_cell(r: dict[str, Any]) -> str:
    said = [w for w, on in (("paused", r["pgbouncer_paused"]), ("reloaded", r["pgbouncer_reloaded"])) if on]
    return ", ".join(said) or "no"


def deploy_table(incident: Any) -> pl.DataFrame:
    """Every deploy and restart side by side, as text cells ready for a document (``deploys.md``).

    ``compare_deploys`` worded: the deploy (UTC time and text), connection errors after it and
    before it, pool timeouts after and before it (when the app log has any), the time to recover, what restarted and how it stopped, the sessions dropped and,
    with a pgBouncer log, its refusals, whether it was paused or reloaded, and the pools whose
    clients were hit. :data:`DEPLOY_TABLE_NOTE` says what each number is. Empty when there is
    no deploy or restart to compare.

    Examples
    --------
    >>> import loglib as ll
    >>> inc = ll.Incident.load("data/incidents/post-deploy")  # doctest: +SKIP
    >>> ll.postmortem.deploy_table(inc).columns  # doctest: +SKIP
    ['Deploy or restart (UTC)', 'Connection errors after', 'Connection errors before', 'Recovered (s)', ...]
    """
    ev = as_evidence(incident)
    cmp = compare_deploys(ev)
    if not cmp.height:
        return pl.DataFrame(schema={"Deploy or restart (UTC)": pl.String})
    pgbouncer = ev.pgbouncer is not None and ev.pgbouncer.height > 0
    timeouts = (pool_timeouts(ev) if ev.app is not None else pl.Series([])).len() > 0
    rows = []
    for r in cmp.iter_rows(named=True):
        row = {
            "Deploy or restart (UTC)": f"{r['at']:%H:%M:%S} {r['text']}",
            "Connection errors after": r["errors"],
            "Connection errors before": r["errors_before"],
            **(
                {"Pool timeouts after": r["pool_timeouts"], "Pool timeouts before": r["pool_timeouts_before"]}
                if timeouts
                else {}
            ),
            "Recovered (s)": "–" if r["recovery_s"] is None else f"{r['recovery_s']:.3g}",
            "Restarted (how it stopped)": _restarted(r),
            "Sessions dropped": r["sessions_dropped"],
        }
        if ev.pg is not None and pgbouncer:
            row["PostgreSQL sessions dropped"] = r["pg_sessions_dropped"]
        if pgbouncer:
            row["Sessions refused"] = r["sessions_refused"]
            row["pgBouncer errors"] = r["pooler_errors"]
            row["pgBouncer paused/reloaded"] = _pgbouncer_cell(r)
        rows.append(row)
    out = pl.DataFrame(rows)
    pools = cmp["pools"].to_list()
    if pgbouncer and any(pools):
        out = out.with_columns(pl.Series("Pools hit", [", ".join(p or []) or "–" for p in pools]))
    return out
