"""Each pgBouncer restart is one timeline row: the row of its process (how it stopped, what it
dropped) and the event ``detect_events`` made of it are the same moment, kept once with both
evidence cells, stamped when the connections went away. Checked against the lab orchestrator's
own record of each pgBouncer restart (pgbouncer-60/-64/-68/-130 development, -61/-63 held-out:
looked at, not tuned on) and on a hand-written log."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.pgbouncer import pgbouncer_processes
from tests.test_deploys import PGBOUNCER

ROOT = Path(__file__).resolve().parents[1]
LAB = sorted(p.parent.name for p in (ROOT / "data" / "lab").glob("pgbouncer-*/truth.json"))


def _pgbouncer_stops(tl: pl.DataFrame) -> pl.DataFrame:
    """Timeline rows that say pgBouncer stopped or restarted, whichever part of loglib wrote them."""
    return tl.filter(pl.col("detail").str.contains(r"(?i)pgbouncer\b.*\b(?:stopped|restarted)"))


@pytest.mark.parametrize("name", LAB)
def test_each_pgbouncer_restart_is_one_row_at_the_time_it_happened(name):
    folder = ROOT / "data" / "lab" / name
    truth = json.loads((folder / "truth.json").read_text())
    inc = ll.Incident.load(folder)
    stops = _pgbouncer_stops(ll.timeline(inc))
    restarts = stops.filter(pl.col("event") == "pgbouncer restart")
    assert restarts.height == len(truth["pooler_restarts"]), stops.select("time", "detail").rows()
    # one row per process that stopped, restart or final stop
    assert stops.height == pgbouncer_processes(inc)["stopped"].drop_nulls().len()
    for r, row in zip(truth["pooler_restarts"], restarts.iter_rows(named=True), strict=True):
        at = datetime.fromisoformat(r["at"].replace("Z", "+00:00"))
        assert abs(row["time"] - at) <= timedelta(seconds=1), (r, row["detail"])
    # both witnesses stay: the detected event's line and the next process's start line
    events = inc.evidence.events.filter(pl.col("origin") == "pgbouncer")
    assert events.height == stops.height
    for e in events.iter_rows(named=True):
        where = f"pgbouncer/{Path(e['file']).name}:{e['line']}"
        assert stops.filter(pl.col("time") == e["ts"])["evidence"].str.contains(where, literal=True).all(), e
    doc = ll.timeline_table(inc)
    assert doc.height == doc.unique().height


def test_a_handwritten_log_fast_graceful_and_killed():
    ev = ll.Evidence.from_frames(pgbouncer=ll.read_pgbouncer_log(PGBOUNCER))
    stops = _pgbouncer_stops(ll.timeline(ev))
    assert stops["event"].to_list() == ["pgbouncer restart"] * 3
    assert [s.split(" at ")[0] for s in stops["detail"]] == [
        "pgBouncer restarted: stopped fast",
        "pgBouncer restarted: stopped graceful",
        "pgBouncer restarted: stopped killed (no shutdown line)",
    ]
    assert stops["evidence"].str.contains(", ", literal=True).all()  # the event's line and the start line
