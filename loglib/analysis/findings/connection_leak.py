"""Connections leaked while the pool never ran out (``detect``), what to change (``recommend``) and
the chart that shows it.

A leak that a restart, a crash or a deploy kept emptying, or a pool still large enough, fails no
request yet: the pool-exhaustion finding does not fire, but the leak is there and will fill the
pool once nothing empties it. This finding says how many leaked, how fast (leaks ÷ the app's run
time, as the pool-exhaustion finding says it) and how soon the pool would fill at that rate.
When the pool did run out, the pool-exhaustion finding carries the leak and this one stays quiet.

>>> from loglib.analysis.findings import connection_leak
>>> connection_leak.KIND, connection_leak.MIN_LEAKS
('connection_leak', 3)
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from loglib.analysis.evidence import Evidence
from loglib.analysis.findings.finding import Finding
from loglib.analysis.findings.pool_exhaustion import (
    EXHAUSTION_CLASSES,
    MIN_FAILURES,
    overall_leak_rate,
    rate_words,
    summarize_leaks,
)
from loglib.analysis.leaks import leak_rates
from loglib.formats.pg_messages import REFUSAL_EVENTS

#: the finding kind this module detects
KIND = "connection_leak"
#: the charts that show this finding's evidence (``loglib.charts`` names)
CHARTS: tuple[str, ...] = ("leak_rate", "pool_utilisation")
#: at least this many leaked connections make a finding
MIN_LEAKS = 3


def _pool_ran_out(inc: Evidence) -> bool:
    """The pool-exhaustion finding fires (it carries the leak then)."""
    n = 0
    if inc.app is not None and inc.app.height and "error_class" in inc.app.columns:
        n += inc.app.filter(pl.col("error_class").is_in(list(EXHAUSTION_CLASSES))).height
    if inc.pg is not None and inc.pg.height:
        n += inc.pg.filter(pl.col("event").is_in(list(REFUSAL_EVENTS))).height
    return n >= MIN_FAILURES


def detect(inc: Evidence) -> list[Finding]:
    """A leak of at least ``MIN_LEAKS`` connections (best ``leak_rates`` method) in an incident
    whose pool never ran out; its rate over the app's run time and the time it would take to
    fill the pool."""
    if _pool_ran_out(inc):
        return []
    start, end = inc.window()
    every = f"{max(1, round((end - start).total_seconds() / 40))}s"
    rates = leak_rates(inc, every=every)
    leaks = summarize_leaks(rates, every)
    total = leaks.get("leaked_total") or 0
    if total < MIN_LEAKS:
        return []
    numbers: dict = {
        "leaked_total": total,
        "leak_method": leaks.get("method"),
        "leak_confidence": leaks.get("confidence"),
    }
    numbers["leaks_per_hour"], numbers["leaks_per_hour_over"] = overall_leak_rate(
        total, inc.app, leaks.get("leaks_per_hour")
    )
    cfg = inc.app_settings
    numbers["capacity"] = cfg.capacity
    processes = (cfg.workers or 1) * (cfg.instances or 1)
    rate = numbers["leaks_per_hour"]
    sentences = [
        f"Connections leaked without the pool running out: {total:g} in all, {rate:g} per hour "
        f"({numbers['leaks_per_hour_over']}; {numbers['leak_method']}, {numbers['leak_confidence']} confidence)."
    ]
    if cfg.capacity and rate:
        fill_min = cfg.capacity * processes / rate * 60
        numbers["minutes_to_fill"] = round(fill_min, 1)
        sentences.append(
            f"At that rate the {processes} process(es)' pools of {cfg.capacity} fill in about {fill_min:.0f} "
            "min; restarts and deploys emptied them before that, so no request failed for want of a "
            "connection yet."
        )
    leaked = rates.filter(pl.col("method") == numbers["leak_method"]).filter(pl.col("leaked") > 0)
    return [
        Finding(
            KIND,
            " ".join(sentences),
            numbers,
            leaked,
            leaked["ts"].min() if leaked.height else None,
            leaked["ts"].max() if leaked.height else None,
            leaks.get("confidence") or "medium",
        )
    ]


def recommend(f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None:
    """What to change after a ``connection_leak`` finding: ``add(recommendation, because)`` for each.

    Examples
    --------
    >>> from loglib.analysis.findings import Finding, connection_leak
    >>> f = Finding("connection_leak", "…", {"leaked_total": 18, "leaks_per_hour": 63.9,
    ...             "leaks_per_hour_over": "leaks ÷ the app's run time, 10:00:00–10:16:54 UTC (…)",
    ...             "minutes_to_fill": 9.4, "leak_method": "pg_sessions", "leak_confidence": "high"})
    >>> connection_leak.recommend(f, None, lambda rec, why: print(rec.split(":")[0], "|", why))
    Fix the leak before it fills the pool | 18 connection(s) leaked, about 63.9 per hour (leaks ÷ the app's run time) (pg_sessions, high confidence); the pools would fill in about 9 min without a restart.
    Alert on the leak | Restarts hid it: the pool never ran out, so no error said so.
    """
    n = f.numbers or {}
    fill = n.get("minutes_to_fill")
    add(
        "Fix the leak before it fills the pool: return every connection on every path, errors "
        "included (`with Session(engine) as session:`, `try/finally: conn.close()`).",
        f"{n.get('leaked_total', '?'):g} connection(s) leaked{rate_words(n)} "
        f"({n.get('leak_method', '?')}, {n.get('leak_confidence', '?')} confidence)"
        + (f"; the pools would fill in about {fill:.0f} min without a restart." if fill else "."),
    )
    add(
        "Alert on the leak: the floor of the pool's checked-out gauge rising, or PostgreSQL sessions "
        "`idle in transaction` older than a few minutes.",
        "Restarts hid it: the pool never ran out, so no error said so.",
    )
