"""Issue 13: every face completes on an incident folder written by someone else (crash regressions)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.analysis.series import pool_series
from tests.conftest import ROOT

T0 = 1763770318  # 2025-11-22 00:11:58 UTC
INCIDENTS = ROOT / "data" / "incidents"


def answer(*series: tuple[dict, list]) -> bytes:
    result = [{"metric": m, "values": v} for m, v in series]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()


class TestUnnamedSeries:
    """Prometheus answers without ``__name__`` (aggregations, expressions) get a stable, readable name."""

    def test_labels_name_the_series(self) -> None:
        """``sum by (state) (...)``: the metric is the label set as Prometheus shows it, never null."""
        df = ll.read_prometheus(answer(({"state": "active"}, [[T0, "3"]]), ({"state": "idle"}, [[T0, "1"]])))
        assert df.select("metric", "series").rows() == [
            ('{state="active"}', '{state="active"}'),
            ('{state="idle"}', '{state="idle"}'),
        ]
        assert any("without __name__" in n for n in ll.read_report(df).notes)

    def test_labelless_series_named_by_file_and_kept_apart(self, tmp_path: Path) -> None:
        """Two different ``sum(rate(...))`` answers in two files stay two series (named by file)."""
        (tmp_path / "http_503_rate.json").write_bytes(answer(({}, [[T0, "0.5"], [T0 + 15, "0.7"]])))
        (tmp_path / "http_200_rate.json").write_bytes(answer(({}, [[T0, "9"], [T0 + 15, "8"]])))
        df = ll.read_prometheus(tmp_path)
        assert sorted(df["metric"].unique().to_list()) == ["http_200_rate", "http_503_rate"]
        assert df.height == 4  # nothing merged away as a "duplicate point"

    def test_name_given_wins(self) -> None:
        """``name=`` names unnamed series and leaves named ones alone."""
        df = ll.read_prometheus(answer(({}, [[T0, "1"]]), ({"__name__": "up"}, [[T0, "1"]])), name="errs")
        assert sorted(df["metric"].to_list()) == ["errs", "up"]


class TestIncidentTomlName:
    """incident.toml: ``name`` names the source, and a prometheus source passes it to ``read_prometheus``."""

    def toml(self, folder: Path, extra: str) -> Path:
        (folder / "prom").mkdir(parents=True, exist_ok=True)
        (folder / "prom" / "q.json").write_bytes(answer(({"code": "503"}, [[T0, "2"], [T0 + 60, "4"]])))
        (folder / "incident.toml").write_text(
            f'title = "t"\n[[sources]]\nkind = "prometheus"\npaths = ["prom/*.json"]\n{extra}'
        )
        return folder

    def test_name_passes_through(self, tmp_path: Path) -> None:
        """The source's ``name`` is the metric name of unnamed series, and still the source's name."""
        inc = ll.Incident.load(self.toml(tmp_path, 'name = "http_503_rate"\n'))
        assert inc.metrics["metric"].unique().to_list() == ["http_503_rate"]
        assert inc.read("http_503_rate").height == 2

    def test_without_name_labels_name_it(self, tmp_path: Path) -> None:
        """Without ``name`` the series is named from its labels (the source is called ``prometheus``)."""
        inc = ll.Incident.load(self.toml(tmp_path, ""))
        assert inc.metrics["metric"].unique().to_list() == ['{code="503"}']

    def test_allowed_keys_list_name_once(self, tmp_path: Path) -> None:
        """An unknown key's message lists every allowed key once."""
        with pytest.raises(ll.IncidentError) as err:
            ll.Incident.load(self.toml(tmp_path, 'nmae = "x"\n'))
        allowed = str(err.value).split("allowed: ", 1)[1].split(", ")
        assert allowed.count("name") == 1
        assert len(allowed) == len(set(allowed))


class TestIdleDropsUpperBound:
    """Idle-drops recommendations when only an upper bound of the idle timeout is known."""

    def test_recommendations_with_upper_bound_only(self) -> None:
        """PostgreSQL without statement logging: the bound is said to be a bound, nothing crashes."""
        from loglib.postmortem import recommendations

        f = ll.Finding(
            "idle_drops",
            "Resets at most 21 s after login.",
            {
                "drops": 6,
                "idle_timeout_max_s": 21.4,
                "recommended_pool_recycle_s": 17,
                "recommended_pool_pre_ping": True,
            },
        )
        recs = recommendations([f])
        text = " ".join(recs["recommendation"].to_list() + recs["because"].to_list())
        assert "pool_recycle=17" in text
        assert "at most 21 s" in text
        assert "None" not in text


class TestPoolSeriesNullNames:
    """Charts' pool series on a metrics frame whose names are null (built by hand, older readers)."""

    def test_null_metric_names_do_not_crash(self) -> None:
        """Series without a metric name are skipped; named pool gauges are still found."""
        df = ll.read_prometheus(
            answer(({"__name__": "db_pool_checked_out", "instance": "a"}, [[T0, "3"]]), ({}, [[T0, "1"]]))
        )
        df = df.with_columns(metric=pl.when(pl.col("metric") == "{}").then(None).otherwise(pl.col("metric")))
        found = pool_series(df, pool_size=5, max_overflow=0)
        assert [s.series for s in found] == ['db_pool_checked_out{instance="a"}']


def test_unnamed_metrics_through_every_face(tmp_path: Path) -> None:
    """An incident whose metrics are aggregations without ``__name__``: timeline, overview, findings complete."""
    folder = tmp_path / "inc"
    shutil.copytree(INCIDENTS / "idle-drops", folder)
    for f in (folder / "prometheus").glob("*.json"):
        doc = json.loads(f.read_text())
        for el in doc["data"]["result"]:
            el["metric"].pop("__name__", None)
        f.write_text(json.dumps(doc))
    inc = ll.Incident.load(folder)
    assert inc.metrics["metric"].null_count() == 0
    assert ll.timeline(inc).height
    assert ll.charts.overview(inc) is not None
    ll.findings(inc)
