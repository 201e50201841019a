"""Draw docs/gallery/*.png from the bundled data: the sample PostgreSQL leak and every incident folder.

Run from the project root: ``python docs/make_gallery.py``. It uses one headless Chromium for all
charts (``apt-get install chromium`` if loglib says there is none). Incidents come from
``data/incidents/*`` when that folder exists, else from the test fixtures in
``tests/files/incidents/*`` (real SQLAlchemy, PostgreSQL and Prometheus output as well).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import loglib as ll  # noqa: E402

OUT = ROOT / "docs" / "gallery"


def sample_pg() -> dict:
    """Charts of data/sample-pg: a connection leak fills PostgreSQL (events from its truth.json)."""
    folder = ROOT / "data" / "sample-pg"
    pg = ll.read_pg_log(folder / "postgresql.log", prefix="%m [%p] %q%u@%d ")
    truth = json.loads((folder / "truth.json").read_text())
    events = pl.DataFrame(
        {
            "ts": [e["at"] for e in truth["events"]],
            "kind": [e["kind"] for e in truth["events"]],
            "text": [e["text"] for e in truth["events"]],
        }
    ).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC"),
        file=pl.lit(None, pl.String),
        line=pl.lit(None, pl.Int64),
    )
    return {
        "sample-pg_db_connections": ll.charts.db_connections(
            pg,
            events=events,
            max_connections=20,
            reserved=3,
            title="Sample: PostgreSQL connections during a leak",
        ),
        "sample-pg_leak_rate": ll.charts.leak_rate(
            pg, events=events, title="Sample: connections leaked per hour"
        ),
        "sample-pg_session_durations": ll.charts.session_durations(
            pg, title="Sample: how long sessions lasted"
        ),
    }


def incident_folders() -> list[Path]:
    data = sorted(p.parent for p in (ROOT / "data" / "incidents").glob("*/incident.toml"))
    return data or sorted(p.parent for p in (ROOT / "tests" / "files" / "incidents").glob("*/incident.toml"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    figs = sample_pg()
    for folder in incident_folders():
        inc = ll.Incident.load(folder)
        charts, skipped = ll.postmortem.incident_charts(inc)
        for name, fig in charts.items():
            figs[f"{folder.name}_{name}"] = fig
        for name, why in skipped.items():
            print(f"{folder.name}: no {name} ({why})")
    for old in OUT.glob("*.png"):
        old.unlink()
    written = ll.export_figures(figs, OUT, formats=("png",))
    for path in written:
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
