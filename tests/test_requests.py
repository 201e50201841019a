"""Impact in requests: access lines counted exactly, ``http_requests_total`` as a lower bound.

Truth is the lab app's own request stream (``truth.json`` ``requests``: every answered request
with its status, written by the app process itself), never the logs loglib reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.requests import _from_counter

ROOT = Path(__file__).resolve().parents[1]
#: development and held-out recordings of every shape, and the three app log formats
LAB = ["leak-10", "leak-11", "deploy-21", "idle-31", "mixed-40", "mixed-41", "control-51"]


def truth(name: str) -> dict:
    return json.loads((ROOT / "data" / "lab" / name / "truth.json").read_text())["requests"]


@pytest.mark.parametrize("name", LAB)
def test_access_lines_count_every_request(name):
    """Answered, failed (5xx) and 503 from access lines equal the app's own request stream."""
    imp = ll.request_impact(ll.Incident.load(ROOT / "data" / "lab" / name))
    t = truth(name)
    assert (imp.answered, imp.failed, imp.status_503) == (t["answered"], t["failed"], t["status_503"])
    assert imp.failed_share == pytest.approx(t["failed_share"], abs=1e-4)
    assert imp.bound == "exact" and imp.method == "access lines"


@pytest.mark.parametrize("name", ["leak-10", "leak-13", "deploy-20", "mixed-42"])
def test_counter_is_a_lower_bound(name):
    """Without access lines, http_requests_total{status} undercounts (never over), within 15 %."""
    ev = ll.Incident.load(ROOT / "data" / "lab" / name).evidence
    imp = _from_counter(ev.metrics)
    t = truth(name)
    assert imp.bound == "at least"
    for got, want in (
        (imp.answered, t["answered"]),
        (imp.failed, t["failed"]),
        (imp.status_503, t["status_503"]),
    ):
        assert want * 0.85 <= got <= want


def test_bundled_incident_against_its_truth():
    """pool-exhaustion: 754 answered (758 sent, 4 unanswered), 376 failed, 360 of them 503."""
    imp = ll.request_impact(ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion"))
    t = json.loads((ROOT / "data" / "incidents" / "pool-exhaustion" / "truth.json").read_text())
    counts = {int(k): v for k, v in t["status_counts"].items()}
    assert imp.answered == t["requests"] - t["unanswered"]
    assert imp.failed == sum(v for k, v in counts.items() if k >= 500)
    assert imp.status_503 == counts[503]


def test_access_line_formats():
    """Common/combined log format, uvicorn, the lab's own line and JSON status fields."""
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    lines = [
        '10.0.0.1 - - [01/Mar/2024:09:00:00 +0000] "GET /catalog HTTP/1.1" 200 512 "-" "curl/8"',
        'INFO:     127.0.0.1:5000 - "POST /checkout HTTP/1.1" 503 Service Unavailable',
        '"POST /checkout?total=523" 500 0.077s',
        "POST /checkout failed: database pool exhausted",
        '{"msg": "request", "status": 502}',
    ]
    from loglib.formats.access_lines import http_status_expr

    frame = pl.DataFrame(
        {
            "message": lines,
            "extra": [None, None, None, None, [{"key": "status", "value": "502"}]],
        },
        schema={"message": pl.String, "extra": ll.core.schema.APP_EXTRA},
    )
    got = frame.select(http_status_expr(pl.col("message"), pl.col("extra"))).to_series().to_list()
    assert got == [200, 503, 500, None, 502]
    app = pl.DataFrame({"ts": [t0 + timedelta(seconds=i) for i in range(5)], "http_status": got})
    imp = ll.request_impact(
        ll.Evidence.from_frames(app=app.with_columns(pl.col("http_status").cast(pl.Int16)))
    )
    assert (imp.answered, imp.failed, imp.status_503) == (4, 3, 1)


def test_no_requests_in_the_evidence_says_so(tmp_path):
    """Without access lines or a counter, the impact table says requests were not measured."""
    from loglib.postmortem import impact

    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    app = pl.DataFrame({"ts": [t0], "error_class": ["pool_timeout"], "message": ["x"], "level": "error"})
    ev = ll.Evidence.from_frames(app=app)
    assert ll.request_impact(ev) is None
    table = impact(ev, found=[])
    row = table.filter(pl.col("measure") == "requests answered and failed").row(0, named=True)
    assert row["value"].startswith("not measured")


def test_summary_md_gives_failed_requests_and_share(tmp_path):
    """The bundle's summary.md states the failed requests and their share, with the evidence."""
    inc = ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion")
    ll.export_bundle(inc, tmp_path, formats=())
    text = (tmp_path / "summary.md").read_text()
    assert "| requests failed (5xx) | 376 of 754 answered (49.9%) |" in text
    assert "| 503 responses | 360 (47.7% of answered) |" in text
