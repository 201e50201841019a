"""Which charts a postmortem shows: every chart the evidence supports, and those behind each finding."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loglib.analysis.evidence import NoEvidenceError
from loglib.analysis.findings import DETECTORS
from loglib.postmortem._detectors import run_detectors
from loglib.postmortem._summary import _quiet
from loglib.present import charts

#: chart name -> its title in documents
CHART_TITLES = {
    "overview": "Incident overview",
    "error_rate": "Connection errors by class",
    "pool_utilisation": "Pool utilisation",
    "db_connections": "PostgreSQL connections",
    "leak_rate": "Leak rate",
    "session_durations": "Session durations",
    "before_after": "Before and after the fix",
}


def incident_charts(
    incident: Any, *, every: str | None = None, leak_every: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every chart that the incident's evidence supports: ``({name: figure}, {name: why skipped})``.

    A chart is skipped when it raises ``ValueError`` (no such evidence; the reason is kept), or
    when the detector it draws from failed (that failure is the reason); any other error is a
    bug and propagates. ``every`` is the bucket of the time charts, ``leak_every`` of the leak
    rate (default: :func:`leak_every` of the incident, as the report's notebook chooses it).
    """
    makers = {
        "overview": lambda: charts.overview(incident, every=every),
        "error_rate": lambda: charts.error_rate(incident, every=every),
        "pool_utilisation": lambda: charts.pool_utilisation(incident),
        "db_connections": lambda: charts.db_connections(incident, every=every),
        "leak_rate": lambda: charts.leak_rate(incident, every=leak_every or _auto_leak_every(incident)),
        "session_durations": lambda: charts.session_durations(incident),
        "before_after": lambda: charts.before_after(incident),
    }
    figs, skipped = {}, {}
    failed = {f.kind: f for f in run_detectors(incident).failed}
    if "idle_drops" in failed:  # the histogram marks the timeout that detector infers
        del makers["session_durations"]
        skipped["session_durations"] = str(failed["idle_drops"])
    for name, make in makers.items():
        try:
            fig = make()  # each chart reports its own progress (``charts._memo``)
        except ValueError as exc:  # the evidence cannot draw it (the message says why)
            skipped[name] = str(exc).splitlines()[0]
            continue
        if name == "before_after" and not any(t.type == "bar" for t in fig.data):
            skipped[name] = "no measure differs between the windows before and after the fix"
            continue
        figs[name] = fig
    return figs, skipped


def leak_every(incident: Any) -> str:
    """``1h``, or a finer step when the evidence is shorter than a few hours."""
    try:
        start, end = incident.window()
    except NoEvidenceError:
        return "1h"
    seconds = (end - start).total_seconds()
    for step, size in (("1h", 3600), ("10m", 600), ("1m", 60), ("10s", 10)):
        if seconds >= 4 * size:
            return step
    return "1s"


_auto_leak_every = leak_every  # incident_charts has a parameter of the same name


#: charts that show the evidence of each finding kind (each detector's ``CHARTS``)
EVIDENCE_CHARTS: dict[str, tuple[str, ...]] = {kind: shape.CHARTS for kind, shape in DETECTORS.items()}


def evidence_charts(incident: Any, found: Iterable[Any] | None = None) -> dict[str, Any]:
    """The charts that show the evidence of the findings (:data:`EVIDENCE_CHARTS`), by name.

    With no finding, the error-rate and connection charts. Charts the evidence cannot draw are left out.
    """
    with _quiet():
        found = list(run_detectors(incident).found if found is None else found)
    names: list[str] = []
    for f in found:
        shape = DETECTORS.get(f.kind)
        names += [n for n in (shape.CHARTS if shape is not None else ()) if n not in names]
    if not names:
        names = ["error_rate", "db_connections"]
    out = {}
    for name in names:
        try:
            with _quiet():
                fig = getattr(charts, name)(incident)
        except ValueError:  # the evidence cannot draw it
            continue
        if name == "before_after" and not any(t.type == "bar" for t in fig.data):
            continue
        out[name] = fig
    return out
