"""Findings: which known incident shapes the evidence shows (``findings``, ``findings_frame``).

One module per shape, each a :class:`Detector`: its ``detect(evidence)``, the ``recommend``
that turns its findings' numbers into advice, and the ``CHARTS`` that show its evidence.
:data:`DETECTORS` is the registry; a new shape is one new module added to :data:`SHAPES`.

>>> import loglib as ll
>>> sorted(ll.analysis.findings.DETECTORS)
['connection_leak', 'idle_drops', 'pool_exhaustion', 'post_deploy']
"""

from __future__ import annotations

from typing import Any

from loglib.analysis.evidence import as_evidence
from loglib.analysis.findings import connection_leak, idle_drops, pool_exhaustion, post_deploy
from loglib.analysis.findings.finding import Detector, Finding, findings_frame

__all__ = [
    "DETECTORS",
    "FINDING_KINDS",
    "SHAPES",
    "Detector",
    "Finding",
    "findings",
    "findings_frame",
]

#: every detector, most important first: a new incident shape is one module added here
SHAPES: tuple[Detector, ...] = (pool_exhaustion, connection_leak, post_deploy, idle_drops)
#: finding kind -> its detector module
DETECTORS: dict[str, Detector] = {shape.KIND: shape for shape in SHAPES}
#: the finding kinds, in the order :func:`findings` runs them
FINDING_KINDS: tuple[str, ...] = tuple(DETECTORS)


def findings(incident: Any, *, kinds: tuple[str, ...] | list[str] | None = None) -> list[Finding]:
    """Run every detector on an incident's evidence; the findings, most important first.

    Parameters
    ----------
    incident
        An :class:`~loglib.Evidence` or an :class:`~loglib.Incident` (its ``.evidence``): its
        app, PostgreSQL and metrics frames, pool settings and events are used, whichever exist.
    kinds
        Run only these detectors (names from ``FINDING_KINDS``).

    Returns
    -------
    list of Finding
        Each with ``kind``, ``statement``, ``numbers`` (dict), ``evidence`` (frame), ``start``,
        ``end`` and ``confidence``. :func:`findings_frame` turns the list into a frame.

    Examples
    --------
    >>> import loglib as ll
    >>> [f.kind for f in ll.findings(ll.Incident.load("data/incidents/pool-exhaustion"))]
    ['pool_exhaustion']
    """
    chosen = list(kinds) if kinds is not None else list(DETECTORS)
    unknown = [k for k in chosen if k not in DETECTORS]
    if unknown:
        msg = f"kinds={unknown!r}: not detectors; choose from {', '.join(DETECTORS)}"
        raise ValueError(msg)
    ev = as_evidence(incident)
    out: list[Finding] = []
    for kind in chosen:
        out.extend(DETECTORS[kind].detect(ev))
    return out
