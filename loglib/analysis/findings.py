"""Findings: which known incident shapes the evidence shows (``findings``, ``findings_frame``).

Each detector lives in its own module (``detect_pool``, ``detect_deploy``, ``detect_idle``)
and returns :class:`Finding` objects: a ``kind``, a plain-language ``statement``, its
``numbers`` (a dict) and its ``evidence`` (a frame of the rows that prove it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from loglib.core.schema import FINDINGS, UTC_TS

if TYPE_CHECKING:
    from loglib.incident import Incident

FINDING_KINDS: tuple[str, ...] = ("pool_exhaustion", "post_deploy", "idle_drops")


@dataclass(frozen=True)
class Finding:
    """One finding: ``kind``, ``statement``, ``numbers`` (dict) and ``evidence`` (frame)."""

    kind: str
    statement: str
    numbers: dict[str, Any] = field(default_factory=dict)
    evidence: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    start: datetime | None = None
    end: datetime | None = None
    confidence: str = "medium"

    def __str__(self) -> str:
        return f"[{self.kind}] {self.statement}"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def findings_frame(found: list[Finding]) -> pl.DataFrame:
    """Findings as a frame (``loglib.schema.FINDINGS``): ``numbers`` as JSON text, evidence as a row count.

    Examples
    --------
    >>> import loglib as ll
    >>> ll.findings_frame([ll.Finding("idle_drops", "Resets after 300 s idle.", {"idle_timeout_s": 300})]).select(
    ...     "kind", "numbers", "evidence_rows"
    ... )
    shape: (1, 3)
    ┌────────────┬─────────────────────────┬───────────────┐
    │ kind       ┆ numbers                 ┆ evidence_rows │
    │ ---        ┆ ---                     ┆ ---           │
    │ str        ┆ str                     ┆ u32           │
    ╞════════════╪═════════════════════════╪═══════════════╡
    │ idle_drops ┆ {"idle_timeout_s": 300} ┆ 0             │
    └────────────┴─────────────────────────┴───────────────┘
    """
    rows = [
        {
            "kind": f.kind,
            "statement": f.statement,
            "start": f.start,
            "end": f.end,
            "confidence": f.confidence,
            "numbers": json.dumps(f.numbers, default=_json_default),
            "evidence_rows": f.evidence.height,
        }
        for f in found
    ]
    if not rows:
        return FINDINGS.empty()
    return pl.DataFrame(rows, schema={**FINDINGS.polars_schema, "start": UTC_TS, "end": UTC_TS})


def findings(incident: Incident, *, kinds: tuple[str, ...] | list[str] | None = None) -> list[Finding]:
    """Run every detector on an incident; the findings, most important first.

    Parameters
    ----------
    incident
        An :class:`~loglib.Incident` (its app, PostgreSQL and metrics frames, pool settings and
        events are used, whichever exist).
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
    >>> for f in ll.findings(ll.Incident.load("data/incidents/pool-exhaustion")):  # doctest: +SKIP
    ...     print(f.statement, f.numbers)
    """
    from loglib.analysis.detect_deploy import detect_post_deploy
    from loglib.analysis.detect_idle import detect_idle_drops
    from loglib.analysis.detect_pool import detect_pool_exhaustion

    detectors = {
        "pool_exhaustion": detect_pool_exhaustion,
        "post_deploy": detect_post_deploy,
        "idle_drops": detect_idle_drops,
    }
    chosen = list(kinds) if kinds is not None else list(detectors)
    unknown = [k for k in chosen if k not in detectors]
    if unknown:
        msg = f"kinds={unknown!r}: not detectors; choose from {', '.join(FINDING_KINDS)}"
        raise ValueError(msg)
    out: list[Finding] = []
    for kind in chosen:
        out.extend(detectors[kind](incident))
    return out
