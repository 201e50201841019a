"""The postmortem (``loglib.postmortem``): what an incident cost, what happened, what to change, which
charts show it, and the export bundle that carries it into an incident document.

It sits above the incident and the presentation: it runs every detector once per Evidence
(:func:`run_detectors`: a failing detector is reported by name, with its error), words the
impact and summary, gathers each finding kind's recommendations, chooses the charts and writes
the bundle. ``loglib report`` executes the ``postmortem`` notebook, whose cells call these.

>>> import loglib as ll
>>> inc = ll.Incident.load("data/incidents/pool-exhaustion")      # doctest: +SKIP
>>> ll.postmortem.summary(inc)                                     # doctest: +SKIP
>>> ll.export_bundle(inc, "out/pool-exhaustion")                   # doctest: +SKIP
"""

from loglib.postmortem._bundle import Bundle, export_bundle
from loglib.postmortem._charts import (
    CHART_TITLES,
    EVIDENCE_CHARTS,
    evidence_charts,
    incident_charts,
    leak_every,
)
from loglib.postmortem._deploys import DEPLOY_TABLE_NOTE, deploy_table
from loglib.postmortem._detectors import DetectorFailure, DetectorResults, run_detectors
from loglib.postmortem._reads import read_table, what_was_read
from loglib.postmortem._recommend import RECOMMENDERS, recommendations
from loglib.postmortem._summary import Markdown, impact, summary, window_around

__all__ = [
    "CHART_TITLES",
    "DEPLOY_TABLE_NOTE",
    "EVIDENCE_CHARTS",
    "RECOMMENDERS",
    "Bundle",
    "DetectorFailure",
    "DetectorResults",
    "Markdown",
    "deploy_table",
    "evidence_charts",
    "export_bundle",
    "impact",
    "incident_charts",
    "leak_every",
    "read_table",
    "recommendations",
    "run_detectors",
    "summary",
    "what_was_read",
    "window_around",
]
