"""What to change, from the findings' numbers: one recommender per finding kind (``recommendations``).

Each detector's findings carry the numbers their recommendations need (``leaked_total``,
``recommended_pool_size``, ``idle_timeout_s`` …), and each detector module
(``loglib/analysis/findings/``) has the ``recommend`` that turns them into advice;
:data:`RECOMMENDERS` gathers them from the registry, by finding kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import polars as pl

from loglib.analysis.findings import DETECTORS, Finding

#: finding kind -> the function that adds its recommendations (``add(recommendation, because)``):
#: each registered detector's own ``recommend`` (:data:`loglib.analysis.findings.DETECTORS`)
RECOMMENDERS: dict[str, Callable[[Finding, bool | None, Callable[[str, str], None]], None]] = {
    kind: shape.recommend for kind, shape in DETECTORS.items()
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
        shape = DETECTORS.get(f.kind)
        if shape is not None:
            shape.recommend(f, pre_ping, lambda rec, why, kind=f.kind: add(kind, rec, why))
    return pl.DataFrame(
        rows, schema={"finding": pl.String, "recommendation": pl.String, "because": pl.String}, orient="row"
    )
