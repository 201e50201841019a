"""The deploys table counts what its columns say: connection errors, and beside them the requests
that failed waiting for a pool connection (``pool_timeouts``), each in the stated span. Checked
against the bundled pool-exhaustion log read by hand and against the lab apps' own request records
(development and held-out recordings: looked at, not tuned on)."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.findings.post_deploy import AFTER
from loglib.postmortem._deploys import DEPLOY_TABLE_NOTE, deploy_table

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "data" / "lab"
#: the lab recordings with pool timeouts and a deploy or restart to compare
WITH_TIMEOUTS = [
    p.parent.name
    for p in sorted(LAB.glob("*/truth.json"))
    if (t := json.loads(p.read_text()))["requests"].get("pool_timeouts") and t.get("restarts")
]
#: an app's log line and its own request record of one failure are this close (both written at once)
SLACK = timedelta(seconds=0.5)


def _spans(cmp: pl.DataFrame) -> list[tuple[tuple[datetime, datetime], tuple[datetime, datetime]]]:
    """Each row's after and before spans, by the rule DEPLOY_TABLE_NOTE states."""
    out = []
    ats = cmp["at"].to_list()
    settled = None
    for i, at in enumerate(ats):
        until = min(at + AFTER, ats[i + 1]) if i + 1 < len(ats) else at + AFTER
        since = at - (until - at)
        if settled is not None:
            since = max(since, settled + timedelta(microseconds=1))
        out.append(((at, until), (since, at)))
        if cmp["last_error"][i] is not None:
            settled = cmp["last_error"][i]
    return out


def _count(times: list[datetime], span: tuple[datetime, datetime], widen: timedelta) -> int:
    return sum(span[0] - widen <= t < span[1] + widen for t in times)


def test_the_bundled_operator_restart_shows_the_pool_timeouts_around_it():
    inc = ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion")
    # by hand: each "QueuePool limit" exception belongs to the ERROR line that heads its traceback
    header = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ERROR ")
    times, at = [], None
    for line in (ROOT / "data/incidents/pool-exhaustion/app/app.log").read_text().splitlines():
        if m := header.match(line):
            at = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        elif "QueuePool limit of size" in line and at is not None:
            times.append(at)
    assert times
    cmp = ll.compare_deploys(inc)
    for (after, before), row in zip(_spans(cmp), cmp.iter_rows(named=True), strict=True):
        assert row["pool_timeouts"] == _count(times, after, timedelta(0))
        assert row["pool_timeouts_before"] == _count(times, before, timedelta(0))
    assert cmp["pool_timeouts_before"][0] > 0 and cmp["errors"].to_list() == [0, 0]
    table = deploy_table(inc)
    assert table["Pool timeouts before"].to_list() == cmp["pool_timeouts_before"].to_list()
    assert table["Connection errors after"].to_list() == cmp["errors"].to_list()
    assert "not a rate" in DEPLOY_TABLE_NOTE and "Pool timeouts after/before" in DEPLOY_TABLE_NOTE


@pytest.mark.parametrize("name", WITH_TIMEOUTS)
def test_pool_timeouts_per_deploy_match_the_apps_own_records(name):
    folder = LAB / name
    truth = []
    for path in sorted((folder / "truth").glob("app-*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            for line in fh:
                r = json.loads(line)
                if r.get("ev") == "req_end" and r.get("outcome") == "pool_timeout":
                    truth.append(datetime.fromtimestamp(r["t"], UTC))
    cmp = ll.compare_deploys(ll.Incident.load(folder))
    assert cmp.height
    for (after, before), row in zip(_spans(cmp), cmp.iter_rows(named=True), strict=True):
        for got, span in ((row["pool_timeouts"], after), (row["pool_timeouts_before"], before)):
            assert _count(truth, span, -SLACK) <= got <= _count(truth, span, SLACK), (row["text"], span)


def test_without_an_app_log_pool_timeouts_are_unknown_not_zero():
    pg = ll.read_pg_log(
        b"2024-03-01 10:01:00.000 UTC [1] LOG:  received fast shutdown request\n"
        b"2024-03-01 10:01:03.000 UTC [9] LOG:  database system is ready to accept connections\n"
    )
    cmp = ll.compare_deploys(ll.Evidence.from_frames(pg=pg))
    assert cmp["pool_timeouts"].to_list() == [None] and cmp["errors"].to_list() == [0]
