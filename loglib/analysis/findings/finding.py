"""What a detector returns (:class:`Finding`), the shape every detector module has (:class:`Detector`),
and findings as a frame (:func:`findings_frame`).

A finding has a ``kind``, a plain-language ``statement``, its ``numbers`` (a dict) and its
``evidence`` (a frame of the rows that prove it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from loglib.core.schema import FINDINGS, UTC_TS

if TYPE_CHECKING:
    from collections.abc import Callable

    from loglib.analysis.evidence import Evidence


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


class Detector(Protocol):
    """What a detector module exports (``loglib.analysis.findings.pool_exhaustion`` is one).

    ``KIND``
        The finding kind it detects (``"pool_exhaustion"``).
    ``detect(evidence)``
        Its findings on an :class:`~loglib.Evidence` (an empty list when the shape is absent).
    ``recommend(finding, pre_ping, add)``
        Calls ``add(recommendation, because)`` for each change its finding asks for;
        ``pre_ping`` is the app's ``pool_pre_ping`` (None when unknown).
    ``CHARTS``
        The names of the ``loglib.charts`` that show its evidence.
    """

    KIND: str
    CHARTS: tuple[str, ...]

    def detect(self, inc: Evidence) -> list[Finding]: ...

    def recommend(self, f: Finding, pre_ping: bool | None, add: Callable[[str, str], None]) -> None: ...


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
