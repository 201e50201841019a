"""Work done once per incident (issue 19): each chart drawn once for the notebook and the bundle."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import loglib as ll
from loglib.present.charts import _connections, _overview

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "data" / "incidents" / "pool-exhaustion"


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many times the overview and the connections chart were really drawn (not copied)."""
    seen: Counter = Counter()
    real_subplots = _overview.make_subplots
    real_db = _connections._db_open_traces

    def subplots(*a: Any, **k: Any) -> Any:
        seen["overview"] += 1
        return real_subplots(*a, **k)

    def db_traces(*a: Any, **k: Any) -> Any:
        seen["db_open_traces"] += 1
        return real_db(*a, **k)

    monkeypatch.setattr(_overview, "make_subplots", subplots)
    monkeypatch.setattr(_connections, "_db_open_traces", db_traces)
    monkeypatch.setattr(_overview, "_db_open_traces", db_traces)
    return seen


def test_the_notebook_and_the_bundle_draw_each_chart_once(tmp_path: Path, draws: Counter) -> None:
    """The postmortem's overview cell, its evidence charts and export_bundle: one drawing each."""
    inc = ll.Incident.load(POOL)
    shown = ll.charts.overview(inc)  # the notebook's overview cell
    ll.postmortem.evidence_charts(inc)  # the evidence cell (db_connections among them)
    assert draws["overview"] == 1
    before = draws["db_open_traces"]
    assert before >= 2  # the overview's panel and the connections chart
    bundle = ll.export_bundle(inc, tmp_path, formats=["html"])
    assert "overview" in bundle.charts and "db_connections" in bundle.charts
    assert draws["overview"] == 1
    assert draws["db_open_traces"] == before
    written = (tmp_path / "charts" / "overview.html").read_text()
    assert shown.layout.title.text in written


def test_each_call_gets_its_own_copy(draws: Counter) -> None:
    """Changing one returned figure changes neither the next one nor what the bundle draws."""
    ev = ll.Incident.load(POOL).evidence
    first = ll.charts.overview(ev)
    first.update_layout(title={"text": "changed by the user"})
    first.data[0].name = "renamed"
    second = ll.charts.overview(ev)
    assert draws["overview"] == 1
    assert second is not first
    assert second.layout.title.text != "changed by the user"
    assert second.data[0].name != "renamed"
    assert second.to_json() == ll.charts.overview(ev).to_json()


def test_other_options_and_plain_frames_are_drawn_again(draws: Counter) -> None:
    """A chart is kept per options; one drawn from frames (no Evidence to keep it in) is drawn each time."""
    ev = ll.Incident.load(POOL).evidence
    ll.charts.overview(ev, every="1m")
    ll.charts.overview(ev, every="1m")
    assert draws["overview"] == 1
    ll.charts.overview(ev, every="5m")
    assert draws["overview"] == 2
    plain = ll.Evidence.from_frames(app=ev.app, pg=ev.pg, metrics=ev.metrics)  # another Evidence
    ll.charts.overview(plain, every="1m")
    assert draws["overview"] == 3
    n = draws["db_open_traces"]
    ll.charts.db_connections(ev.pg)
    ll.charts.db_connections(ev.pg)
    assert draws["db_open_traces"] == n + 2


# --- sessions paired once ---------------------------------------------------------------------------

INCIDENTS = sorted(p for p in (ROOT / "data" / "incidents").iterdir() if (p / "incident.toml").is_file())


@pytest.fixture
def pairings(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many times PostgreSQL sessions were really paired (``_pg_sessions``)."""
    from loglib.analysis import sessions

    seen: Counter = Counter()
    real = sessions._pg_sessions

    def counted(ev: Any) -> Any:
        seen["paired"] += 1
        return real(ev)

    monkeypatch.setattr(sessions, "_pg_sessions", counted)
    sessions._MEMO.clear()
    return seen


def test_aligned_and_connections_use_the_incidents_sessions(pairings: Counter) -> None:
    """inc.aligned() and pg_connections(inc.pg) do not pair the sessions the Evidence already has."""
    from loglib.analysis import sessions

    inc = ll.Incident.load(POOL)
    assert inc.sessions is not None and pairings["paired"] == 1
    sessions._MEMO.clear()  # not by luck of the one-frame memo: the sessions are handed over
    aligned = inc.aligned("1m")
    assert pairings["paired"] == 1
    fresh = ll.align(app=inc.app, pg=inc.pg, metrics=inc.metrics, events=inc.events, every="1m",
                     start=inc.window()[0], end=inc.window()[1])  # fmt: skip
    assert pairings["paired"] == 2
    assert aligned.equals(fresh)
    table = ll.pg_connections(inc.pg, every="1m", sessions=inc.sessions)
    assert pairings["paired"] == 2
    assert table.equals(ll.pg_connections(inc.pg.clone(), every="1m"))


@pytest.mark.parametrize("folder", INCIDENTS, ids=lambda p: p.name)
def test_shared_sessions_give_the_same_connections(folder: Path) -> None:
    """On every bundled incident with PostgreSQL logs: the Evidence's sessions give the same table."""
    inc = ll.Incident.load(folder)
    if inc.pg is None or inc.pg.height == 0:
        pytest.skip("no PostgreSQL log")
    own = ll.pg_connections(inc.pg.clone(), every="1m")
    assert ll.pg_connections(inc.pg, every="1m", sessions=inc.sessions).equals(own)


def test_rows_without_a_time_are_not_paired() -> None:
    """A line whose time is unknown takes no part in the counts (as before sessions were shared)."""
    pg = ll.Incident.load(POOL).pg
    holes = (
        pg.with_row_index("_i")
        .with_columns(ts=pl.when(pl.col("_i") % 7 == 3).then(None).otherwise("ts"))
        .drop("_i")
    )
    assert holes["ts"].null_count() > 0
    kept = holes.filter(holes["ts"].is_not_null())
    assert ll.pg_connections(holes, every="1m").equals(ll.pg_connections(kept, every="1m"))


# --- overview marks added at once --------------------------------------------------------------------


def _one_by_one(fig: Any, marks: list[tuple[str, dict[str, Any]]], *, rows: int) -> None:
    """The reference: plotly's own add_vline/add_vrect, one call per mark."""
    for kind, options in marks:
        getattr(fig, f"add_{kind}")(**options)


@pytest.mark.parametrize("folder", [*INCIDENTS, ROOT / "data" / "lab" / "deploy-20"], ids=lambda p: p.name)
def test_overview_marks_are_plotlys_own(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Event lines and alert bands added at once give the figure plotly's add_vline/add_vrect give."""
    from loglib.present.charts import _marks

    calls: list[int] = []
    real = _marks._spanning

    def spy(fig: Any, marks: list, *, rows: int) -> None:
        calls.append(len(marks))
        real(fig, marks, rows=rows)

    monkeypatch.setattr(_overview, "_spanning", spy)
    fast = _overview.overview(ll.Incident.load(folder))
    if not sum(calls):
        pytest.skip("no events or alert spans to mark")
    monkeypatch.setattr(_overview, "_spanning", _one_by_one)
    slow = _overview.overview(ll.Incident.load(folder))
    assert len(fast.layout.shapes) == len(slow.layout.shapes) > 0
    assert fast.to_json() == slow.to_json()


def test_first_evidence_is_the_first_rows_file_and_line() -> None:
    """Aggregating file and line, then formatting, names the row evidence_expr().first() named."""
    from loglib.present import _data as d

    frame = pl.DataFrame(
        {
            "k": [1, 1, 2, 2, 3, 3],
            "file": [
                "/srv/inc/pg/a.log",
                "/srv/inc/pg/b.log",
                None,
                "app/x.log",
                "C:\\inc\\app\\y.log",
                "z.log",
            ],
            "line": [7, 8, 9, 10, None, 3],
        }
    ).with_columns(pl.col("file").cast(pl.Categorical))
    direct = frame.group_by("k", maintain_order=True).agg(evidence=d.evidence_expr().first())
    kept = frame.group_by("k", maintain_order=True).agg(**d.first_evidence()).pipe(d.with_evidence)
    assert kept.equals(direct)
    assert kept["evidence"].to_list() == ["pg/a.log:7", None, "app\\y.log"]
