"""Issue 13: Hypothesis writes incident folders nobody tuned loglib on, and every face completes or
names the one thing it needs.

Each folder takes a random subset of the idle-drops incident's sources, real lines cut at a random
place, and damage: empty files, binary junk, a file cut mid-line, a truncated ``.gz``, a broken or
reshaped Prometheus answer; the app's ``tz`` is an odd zone (+05:45, +13:45, −03:30), and the
declared events and window may lie far outside the data. ``Incident.load``, ``ll.timeline`` and
``export_bundle`` must then finish, or raise a loglib error whose message is one short line.
"""

from __future__ import annotations

import gzip
import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loglib as ll
from loglib.errors import LoglibError
from tests.matrix_folders import INCIDENTS, SHAPES, dump_toml, write_prometheus

SOURCE = INCIDENTS / "idle-drops"
DOC = tomllib.loads((SOURCE / "incident.toml").read_text())
APP = (SOURCE / "app" / "app.log").read_bytes().splitlines(keepends=True)
PG = (SOURCE / "pg" / "postgresql.log").read_bytes().splitlines(keepends=True)
ZONES = ["UTC", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns", "Pacific/Kiritimati"]
DAMAGE = ["none", "empty", "binary", "cut_mid_line", "gz_truncated"]
AT = ["2026-11-22T00:14:00Z", "1999-01-01T00:00:00Z", "2099-12-31T23:59:59Z", "2026-11-22T00:11:00+05:45"]


def _log(lines: list[bytes], start: int, n: int, damage: str) -> tuple[str, bytes]:
    body = b"".join(lines[start : start + n])
    if damage == "empty":
        return ".log", b""
    if damage == "binary":
        return ".log", body + b"\x00\xff\xfe\x01 junk \x89PNG\r\n" + bytes(range(256))
    if damage == "cut_mid_line":
        return ".log", body[: max(1, len(body) - 17)]
    if damage == "gz_truncated":
        packed = gzip.compress(body)
        return ".log.gz", packed[: max(10, len(packed) * 2 // 3)]
    return ".log", body


source_st = st.fixed_dictionaries(
    {"start": st.integers(0, 1500), "n": st.integers(0, 400), "damage": st.sampled_from(DAMAGE)}
)
folder_st = st.fixed_dictionaries(
    {
        "app": st.none() | source_st,
        "postgres": st.none() | source_st,
        "prometheus": st.none() | st.sampled_from([*SHAPES, "broken"]),
        "tz": st.sampled_from(ZONES),
        "events": st.lists(
            st.tuples(st.sampled_from(AT), st.sampled_from(["deploy", "restart", "note"])), max_size=3
        ),
        "window": st.none() | st.tuples(st.sampled_from(AT), st.sampled_from(AT)),
    }
).filter(lambda f: f["app"] or f["postgres"] or f["prometheus"])


def write_folder(spec: dict, folder: Path) -> Path:
    """The incident folder ``spec`` describes (see ``folder_st``)."""
    sources = []
    for kind, lines in (("app", APP), ("postgres", PG)):
        if spec[kind] is None:
            continue
        suffix, data = _log(lines, spec[kind]["start"], spec[kind]["n"], spec[kind]["damage"])
        (folder / kind).mkdir(parents=True)
        (folder / kind / f"{kind}{suffix}").write_bytes(data)
        entry = dict(next(s for s in DOC["sources"] if s["kind"] == kind))
        entry["paths"] = [f"{kind}/{kind}.log*"]
        if kind == "app":
            entry["tz"] = spec["tz"]
        sources.append(entry)
    if spec["prometheus"] is not None:
        shape = spec["prometheus"]
        write_prometheus(
            SOURCE / "prometheus", folder / "prometheus", "recorded" if shape == "broken" else shape
        )
        if shape == "broken":
            (folder / "prometheus" / "up.json").write_text(
                json.dumps(json.loads((SOURCE / "prometheus" / "up.json").read_text()))[:90]
            )
        sources.append({"kind": "prometheus", "paths": ["prometheus/*.json"]})
    doc = {"title": "generated", "sources": sources, "app": DOC["app"], "postgres": DOC["postgres"]}
    if spec["window"]:
        doc["start"], doc["end"] = sorted(spec["window"])
    doc["events"] = [{"at": at, "kind": kind, "text": f"{kind} at {at}"} for at, kind in spec["events"]]
    if not doc["events"]:
        del doc["events"]
    (folder / "incident.toml").write_text(dump_toml(doc))
    return folder


def _one_line(exc: LoglibError) -> None:
    text = str(exc)
    assert "\n" not in text and 0 < len(text) <= 600, text


@pytest.mark.filterwarnings("ignore::loglib.RejectedLinesWarning")  # rejects are the point here
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=folder_st)
def test_generated_folder(tmp_path_factory, spec) -> None:
    """Load, timeline and bundle complete, or stop at a one-line loglib error."""
    root = tmp_path_factory.mktemp("gen")
    folder = write_folder(spec, root / "incident")
    try:
        inc = ll.Incident.load(folder)
        inc.read_reports()
    except LoglibError as exc:  # a source nothing can be read from: named in one line
        _one_line(exc)
        return
    try:
        tl = ll.timeline(inc)
        assert tl.height >= 0
        bundle = ll.export_bundle(inc, root / "out", formats=("svg",))
    except LoglibError as exc:
        _one_line(exc)
        return
    summary = (root / "out" / "summary.md").read_text()
    assert "## What was read" in summary
    assert all(reason for reason in bundle.skipped.values())
