"""How each restart went down is decided once, where it is detected (``incident_events.stopped``),
and ``compare_deploys`` reads it: on every lab recording with a restart (development and held-out:
looked at, not tuned on) it says what the orchestrator did (SIGTERM graceful, SIGKILL killed)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.postmortem._deploys import deploy_table

ROOT = Path(__file__).resolve().parents[1]
LAB = sorted(p.parent for p in (ROOT / "data" / "lab").glob("*/truth.json"))
#: the orchestrator's signal -> how the app stopped
SIGNALS = {"SIGTERM": "graceful", "SIGKILL": "killed"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _near(cmp: pl.DataFrame, at: datetime) -> pl.DataFrame:
    return cmp.filter((pl.col("at") - at).abs() <= timedelta(seconds=6))


def test_the_bundled_operator_restart_was_graceful_as_the_timeline_says():
    inc = ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion")
    restarts = inc.evidence.events.filter((pl.col("origin") == "app") & (pl.col("kind") == "restart"))
    assert restarts["stopped"].to_list() == ["graceful", "graceful"]
    assert restarts["text"].str.contains("graceful: stop line").all()
    cmp = ll.compare_deploys(inc)
    assert cmp["app_stopped"].to_list() == ["graceful", "graceful"]
    assert deploy_table(inc)["Restarted (how it stopped)"].to_list() == ["app (graceful)"] * 2


@pytest.mark.parametrize(
    "folder",
    [p for p in LAB if json.loads((p / "truth.json").read_text()).get("restarts")],
    ids=lambda p: p.name,
)
def test_each_app_restart_stopped_as_the_orchestrator_stopped_it(folder):
    truth = json.loads((folder / "truth.json").read_text())
    inc = ll.Incident.load(folder)
    cmp = ll.compare_deploys(inc)
    for r in truth["restarts"]:
        row = _near(cmp, _at(r["at"]))
        assert row.height == 1, (r, cmp.select("at", "text").rows())
        assert row["app_stopped"][0] == SIGNALS[r["signal"]], (r["at"], r["signal"], row["text"][0])
    for r in truth.get("db_restarts") or []:  # pg_ctl stop -m fast
        row = _near(cmp, _at(r["at"]))
        assert row["postgres_stopped"].to_list() == ["fast"], r


def test_deploys_reads_how_it_stopped_and_parses_no_text():
    source = (ROOT / "loglib" / "analysis" / "deploys.py").read_text()
    assert '"message"' not in source and "starts_with" not in source
    assert "stopped" in ll.schema.INCIDENT_EVENTS.names
