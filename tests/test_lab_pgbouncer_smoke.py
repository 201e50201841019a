"""The lab's pgBouncer recorder still works: one tiny scenario (~75 s) with real pgBouncer and PostgreSQL.

``data/generate/lab/record.py pgbouncer 1 --smoke``: one app process behind pgBouncer in
transaction mode, pgBouncer killed (SIGKILL) at 25 s and restarted (SIGTERM) by a deploy at 45 s.
The truth must agree with the orchestrator's raw stream, and pgBouncer's own log, read by
loglib, must show each of its starts and its clean stops where the truth has them.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from tests.conftest import require
from tests.lab_record import record_smoke
from tests.pgbouncerserver import find_pgbouncer
from tests.pgserver import find_pg_bin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data" / "generate"))

from lab.truth import read_jsonl  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.pgbouncer]


def t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    require(find_pg_bin() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    require(find_pgbouncer() is not None, "pgbouncer")
    out = tmp_path_factory.mktemp("lab-pgbouncer")
    return record_smoke("pgbouncer", out)


def test_truth_has_the_pooler_restarts(recording: Path):
    truth = json_of(recording)
    assert truth["params"]["pgbouncer"]["pool_mode"] == "transaction"
    stops = truth["pooler_restarts"]
    assert [s["signal"] for s in stops] == ["SIGKILL", "SIGTERM"]
    for s in stops:
        assert t(s["at"]) < t(s["ready"]) < t(s["at"]) + 10
    orch = read_jsonl(recording / "truth" / "orchestrator.jsonl.gz")
    raw = [e for e in orch if e["ev"] == "pooler_stop" and e.get("why") != "end of recording"]
    assert len(raw) == len(stops)
    assert truth["requests"]["answered"] > 50


def test_pgbouncer_log_shows_each_start_and_clean_stop(recording: Path):
    truth = json_of(recording)
    assert (recording / "pgbouncer" / "pgbouncer.log.gz").is_file()
    inc = ll.Incident.load(recording)
    assert inc.pgbouncer is not None
    starts = inc.pgbouncer.filter(pl.col("event") == "pooler_start")["ts"].dt.epoch("us") / 1e6
    # the first start, then one after each restart, within 2 s of the orchestrator's "ready"
    assert starts.len() == 1 + len(truth["pooler_restarts"])
    for s, got in zip(truth["pooler_restarts"], starts.to_list()[1:], strict=True):
        assert abs(got - t(s["ready"])) < 2
    # SIGKILL logs nothing; the deploy's SIGTERM (and the end of the recording) log a shutdown
    shutdowns = inc.pgbouncer.filter(pl.col("event") == "pooler_shutdown")["ts"].dt.epoch("us") / 1e6
    sigterm = [t(s["at"]) for s in truth["pooler_restarts"] if s["signal"] == "SIGTERM"]
    assert all(any(abs(x - at) < 2 for x in shutdowns.to_list()) for at in sigterm)
    assert not any(
        abs(x - t(s["at"])) < 1
        for x in shutdowns.to_list()
        for s in truth["pooler_restarts"]
        if s["signal"] == "SIGKILL"
    )
    assert inc.pgbouncer.filter(pl.col("event") == "server_connect").height >= 1


def json_of(recording: Path) -> dict:
    import json

    return json.loads((recording / "truth.json").read_text())
