"""Every detector run once per Evidence, each on its own: a detector that fails is reported by name.

:func:`run_detectors` is what the postmortem (summary, findings.md, the bundle) reads; a bug in
one detector shows as "the idle_drops detector failed: KeyError: …" next to the other
detectors' findings, never as "no known incident shape was found".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loglib.analysis.evidence import as_evidence
from loglib.analysis.findings import DETECTORS, Finding, findings
from loglib.core.progress import step


@dataclass(frozen=True)
class DetectorFailure:
    """A detector that raised: its ``kind`` and the ``error``."""

    kind: str
    error: BaseException

    @property
    def reason(self) -> str:
        """``"KeyError: 'ts'"``: the exception's type and message, on one line."""
        return " ".join(f"{type(self.error).__name__}: {self.error}".split())

    def __str__(self) -> str:
        return f"the {self.kind} detector failed: {self.reason}"


@dataclass(frozen=True)
class DetectorResults:
    """What the detectors said: the ``found`` findings, most important first, and the ``failed`` detectors."""

    found: tuple[Finding, ...]
    failed: tuple[DetectorFailure, ...]


def run_detectors(data: Any) -> DetectorResults:
    """Run every detector (:data:`loglib.analysis.findings.DETECTORS`) once per Evidence, each on its own.

    Parameters
    ----------
    data
        An Evidence or an Incident (its ``.evidence``).

    Returns
    -------
    DetectorResults
        The findings in the order :func:`loglib.findings` gives them, and one
        :class:`DetectorFailure` per detector that raised (with the exception).

    Examples
    --------
    >>> import loglib as ll
    >>> res = ll.postmortem.run_detectors(ll.Incident.load("data/incidents/pool-exhaustion"))
    >>> [f.kind for f in res.found], res.failed
    (['pool_exhaustion'], ())
    """
    ev = as_evidence(data)

    def compute() -> DetectorResults:
        found: list[Finding] = []
        failed: list[DetectorFailure] = []
        for kind in DETECTORS:
            try:
                with step(f"detector {kind}"):
                    found.extend(findings(ev, kinds=[kind]))
            # blanket on purpose (2 of 3 in loglib/): one detector's bug must
            # not hide the others' findings; it is reported by name, with its error
            except Exception as exc:
                failed.append(DetectorFailure(kind, exc))
        return DetectorResults(tuple(found), tuple(failed))

    return ev.cached("postmortem.detectors", compute)
