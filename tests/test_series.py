"""What the charts draw, derived in analysis (loglib.analysis.series, loglib.analysis.before_after)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import loglib as ll
from loglib.analysis import series
from loglib.analysis.before_after import NeedsFixError
from tests.conftest import FILES, ROOT, frames_seen

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
POOL_LEAK = FILES / "incidents" / "pool-leak"


def sessions_frame() -> pl.DataFrame:
    s = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    e = [T0 + timedelta(seconds=3), None, T0 + timedelta(seconds=2)]
    return pl.DataFrame(
        {
            "start": s,
            "end": e,
            "end_reason": ["disconnection", None, "rejected"],
            "file": "pg.log",
            "line": [1, 2, 3],
        }
    )


def metrics_frame() -> pl.DataFrame:
    rows = []
    for pod, size in (("a", 4.0), ("b", 6.0)):
        rows.append((T0, "db_pool_checked_out", f'db_pool_checked_out{{pod="{pod}"}}', 2.0))
        rows.append((T0, "db_pool_size", f'db_pool_size{{pod="{pod}"}}', size))
    return pl.DataFrame(rows, schema=["ts", "metric", "series", "value"], orient="row").with_columns(
        file=pl.lit("m")
    )


def histogram(counts: dict[str, tuple[float, float]]) -> pl.DataFrame:
    rows = []
    for le, (first, last) in counts.items():
        key = f'db_wait_seconds_bucket{{le="{le}"}}'
        rows += [
            (T0, "db_wait_seconds_bucket", key, first),
            (T0 + timedelta(minutes=1), "db_wait_seconds_bucket", key, last),
        ]
    return pl.DataFrame(rows, schema=["ts", "metric", "series", "value"], orient="row")


class TestOpenConnections:
    def test_counts_starts_and_ends(self):
        """Refused attempts are not sessions; a session open at the end stays counted."""
        got = series.open_connections(sessions_frame())
        assert got["open"].to_list() == [1, 2, 1]

    def test_cached_per_evidence(self):
        """From an Evidence the frame is derived once: the same object comes back."""
        ev = ll.Evidence.from_frames(pg=ll.read_pg_log("data/sample-pg/postgresql.log"))
        assert series.open_connections(ev) is series.open_connections(ev)

    def test_needs_pg(self):
        """An Evidence without PostgreSQL logs says what is missing."""
        with pytest.raises(ValueError, match="PostgreSQL"):
            series.open_connections(ll.Evidence.from_frames())


class TestPoolSeries:
    def test_each_gauge_gets_its_own_size(self):
        """Every gauge is paired with the size series of the same labels."""
        assert [(p.name, p.size) for p in series.pool_series(metrics_frame())] == [("a", 4.0), ("b", 6.0)]

    def test_evidence_settings_win_over_series(self):
        """An Evidence's [app] pool_size is the size of every gauge."""
        ev = ll.Evidence.from_frames(metrics=metrics_frame(), pool_size=5, max_overflow=1)
        assert {(p.size, p.overflow) for p in series.pool_series(ev)} == {(5, 1)}


class TestSpans:
    def test_threshold_replayed_on_counts(self):
        """Buckets above the threshold give one firing span; missing buckets count zero."""
        counts = pl.DataFrame(
            {"bucket": [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)], "n": [5, 6, 1]}
        )
        spans = series.threshold_spans(counts, every="1m", threshold=2, alert_for="0s", name="errors")
        assert [(s.start, s.end) for s in spans] == [(T0, T0 + timedelta(minutes=2))]

    def test_alerts_series(self):
        """Prometheus' ALERTS series give spans named by alertname, with the series as evidence."""
        ts = [T0 + timedelta(seconds=15 * i) for i in range(4)]
        m = pl.DataFrame(
            {
                "ts": ts,
                "metric": "ALERTS",
                "series": 'ALERTS{alertname="Pool", alertstate="firing"}',
                "value": 1.0,
            }
        )
        (span,) = series.firing_spans(metrics=m)
        assert (span.name, span.start, span.end) == ("Pool", ts[0], ts[-1])
        assert span.evidence.startswith("series ALERTS")


class TestHistogramQuantile:
    def test_interpolates_inside_the_bucket(self):
        """p95 of 100 observations, 90 under 0.1 s and 10 under 1 s: 0.55 s (linear in the bucket)."""
        h = histogram({"0.1": (0, 90), "1": (0, 100), "+Inf": (0, 100)})
        value, name = series.histogram_quantile(h, 0.95, T0, T0 + timedelta(minutes=2))
        assert name == "db_wait_seconds_bucket" and value == pytest.approx(0.55)

    def test_no_histogram(self):
        """Metrics without a wait histogram give (None, '')."""
        assert series.histogram_quantile(metrics_frame(), 0.95, T0, T0 + timedelta(minutes=2)) == (None, "")


class TestBeforeAfter:
    def test_table_cached_per_evidence(self):
        """The table of an incident is computed once per Evidence; the chart draws the same table."""
        inc = ll.Incident.load(POOL_LEAK)
        mid = inc.window()[0] + (inc.window()[1] - inc.window()[0]) / 2
        ev = inc.evidence.replace(
            declared_events=pl.DataFrame({"ts": [mid], "kind": ["fix"], "text": ["v2"]})
        )
        table = ll.before_after_table(ev)
        assert ll.before_after_table(ev) is table
        fig = ll.charts.before_after(table)
        assert {t.legendgroup for t in fig.data} == {"before", "after"}

    def test_split_at_the_declared_fix_else_said_to_be_inferred(self):
        """A declared fix is the split; without one there is no table, only the candidate (the deploy after which failures fell) and how to declare it."""
        ev = ll.Evidence.from_frames(
            app=pl.DataFrame(
                {
                    "ts": [T0, T0 + timedelta(minutes=10)],
                    "error_class": ["pool_timeout", None],
                    "service": "api",
                    "message": "x",
                    "level": "error",
                    "file": "a",
                    "line": [1, 2],
                }
            ),
            events=pl.DataFrame({"ts": [T0 + timedelta(minutes=5)], "kind": ["deploy"], "text": ["v2"]}),
        )
        with pytest.raises(NeedsFixError) as err:  # no numbers from a guess
            ll.before_after_table(ev)
        assert (err.value.at, err.value.step) == (T0 + timedelta(minutes=5), "deploy: v2")
        assert 'kind = "fix"' in err.value.toml() and 'text = "deploy: v2"' in err.value.toml()
        fixed = ev.replace(
            declared_events=pl.DataFrame(
                {"ts": [T0 + timedelta(minutes=3)], "kind": ["fix"], "text": ["flag off"]}
            )
        )
        assert ll.before_after_table(fixed)["split"][0].startswith(
            "fix: flag off; after window from 09:33:00"
        )


class TestTheFix:
    """Issue 12 defect 11: before/after picks the fix and its windows from what happened."""

    def test_after_window_holds_no_sample_from_before_the_fix(self):
        """Bundled pool-exhaustion: the after window starts once the fixed process runs (its
        restart plus one scrape step), so the pool's peak is 100% -> 0% of capacity, not 160% -> 160%."""
        inc = ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion")
        table = ll.before_after_table(inc)
        peak = table.filter(pl.col("measure") == "pool utilisation, peak").row(0, named=True)
        assert (peak["before"], peak["after"]) == (100.0, 0.0)  # % of pool_size + max_overflow
        assert table["split"][0].startswith("fix: Deployed checkout-api 1.4.3")
        assert table["window_after"][0].startswith("00:19:30")

    def test_a_deploy_that_brought_errors_is_not_a_fix(self):
        """Errors only after the deploy: it is not taken for a fix; the message says to pass at=."""
        ev = ll.Evidence.from_frames(
            app=pl.DataFrame(
                {
                    "ts": [T0, T0 + timedelta(minutes=6), T0 + timedelta(minutes=7), T0 + timedelta(minutes=10)],
                    "error_class": [None, "server_closed", "server_closed", None],
                    "service": "api", "message": "x", "level": "error", "file": "a", "line": [1, 2, 3, 4],
                }
            ),
            events=pl.DataFrame({"ts": [T0 + timedelta(minutes=5)], "kind": ["deploy"], "text": ["v2"]}),
        )  # fmt: skip
        with pytest.raises(ValueError, match="no fix to compare around; pass at="):
            ll.before_after_table(ev)
        assert ll.before_after_table(ev, at=T0 + timedelta(minutes=5))["split"][0] == "given"


def test_open_connections_filters_only_what_it_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory (issue 19): the filters copy the five columns used, not every column of the sessions."""
    ev = ll.Incident.load(POOL_LEAK).evidence
    sessions = ev.sessions
    expected = series.open_connections(sessions)
    filtered = frames_seen(monkeypatch, "filter")
    got = series.open_connections(sessions)
    assert got.equals(expected) and got.height > 0 and sessions.width > 10
    assert filtered and max(map(len, filtered)) <= 5  # start, end, end_reason, file, line
