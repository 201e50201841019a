"""The lab still records: one tiny scenario (70 s of real time) from real PostgreSQL and the lab app.

``data/generate/lab/record.py leak 1 --smoke``: one process, pool 2+0, a leak on ``/checkout``
and an operator restart at 40 s. The truth file must agree with itself and with the raw
streams it was built from, and the folder must load as an incident.
"""

from __future__ import annotations

import gzip
import json
import sys
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from tests.conftest import require
from tests.lab_record import record_smoke
from tests.pgserver import find_pg_bin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data" / "generate"))

from lab.params import draw, split_of  # noqa: E402
from lab.truth import read_jsonl  # noqa: E402

pytestmark = pytest.mark.postgres


def t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    require(find_pg_bin() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    out = tmp_path_factory.mktemp("lab")
    return record_smoke("leak", out)


def test_params_follow_the_seed():
    a, b = draw("idle", 33), draw("idle", 33)
    assert a == b and a.idle_timeout is not None and 15 <= a.idle_timeout <= 120
    assert draw("idle", 34) != a
    assert (split_of(30), split_of(31)) == ("dev", "heldout")


def test_lab_doctests():
    import doctest

    from lab import batch, params, pooler, record

    for module in (params, record, batch, pooler):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_truth_is_consistent(recording: Path):
    truth = json.loads((recording / "truth.json").read_text())
    req, leaks = truth["requests"], truth["leaks"]
    assert truth["params"]["seed"] == 1 and truth["params"]["leak_paths"] == {"/checkout": 0.05}
    assert sum(req["by_status"].values()) == sum(req["by_outcome"].values()) == req["answered"] > 50
    assert req["by_outcome"].get("leak", 0) == leaks["total"] == len(leaks["times"])
    assert sum(leaks["per_hour"].values()) == leaks["total"]
    assert req["pool_timeouts"] == req["by_outcome"].get("pool_timeout", 0) <= req["status_503"]
    # the client only hears what the app answered
    assert req["client_sent"] - req["client_unanswered"] <= req["answered"]
    run = truth["app_run"]
    assert run["processes_started"] == 2  # the first start and the operator's restart
    assert leaks["rate_per_hour"] == pytest.approx(leaks["total"] / (run["seconds"] / 3600), rel=1e-3)
    (restart,) = truth["restarts"]
    assert restart["kind"] == "restart" and restart["signal"] == "SIGTERM"
    assert t(restart["at"]) <= t(restart["app_line_at"]) < t(restart["at"]) + 1
    assert t(restart["app_line_at"]) < t(restart["last_start_line_at"])
    assert truth["final_stop"] is not None and t(truth["final_stop"]["at"]) > t(restart["last_start_line_at"])
    for w in truth["exhaustion_windows"]:
        assert t(w["start"]) <= t(w["first_failure"]) <= t(w["last_failure"]) and w["pool_timeouts"] >= 1
    assert sum(w["pool_timeouts"] for w in truth["exhaustion_windows"]) <= req["pool_timeouts"]
    for lk in leaks["times"]:  # every leaked session ended with its process (no database restart here)
        assert lk["ended_by"] == "app_exit" and t(lk["ended"]) >= t(lk["at"])


def test_truth_matches_its_raw_streams(recording: Path):
    truth = json.loads((recording / "truth.json").read_text())
    app = read_jsonl(recording / "truth" / "app-1.jsonl.gz")
    assert sum(1 for e in app if e["ev"] == "leak") == truth["leaks"]["total"]
    assert sum(1 for e in app if e["ev"] == "req_end") == truth["requests"]["answered"]
    orch = read_jsonl(recording / "truth" / "orchestrator.jsonl.gz")
    assert [e["kind"] for e in orch if e["ev"] == "action"] == ["restart"]
    client = gzip.decompress((recording / "truth" / "client.jsonl.gz").read_bytes()).decode().splitlines()
    assert len(client) == truth["requests"]["client_sent"]


def test_recording_loads_as_an_incident(recording: Path):
    assert not list(recording.rglob("*.log")), "logs are stored gzipped"
    inc = ll.Incident.load(recording)
    assert inc.app is not None and inc.app.height > 50
    assert inc.pg is not None
    assert (
        inc.pg.filter((pl.col("event") == "connection_authorized") & (pl.col("user") == "checkout")).height
        >= 2
    )
    assert inc.app_settings.pool_size == 2 and inc.app_settings.instances == 1
