"""Charts: figure structure, polars and pandas input, hover that leads back to evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import plotly.io as pio
import polars as pl
import pytest

import loglib as ll
from loglib.present import charts, theme
from tests.conftest import FILES, frames_seen

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
POOL_LEAK = FILES / "incidents" / "pool-leak"
IDLE = FILES / "incidents" / "idle-drops"
DEPLOY = FILES / "incidents" / "deploy"


@pytest.fixture(params=["polars", "pandas"])
def frame(request):
    """Turns a polars frame into the input type under test (great-tables' frame_constructor)."""
    if request.param == "polars":
        return lambda df: df
    return lambda df: df.to_pandas()


def app_frame() -> pl.DataFrame:
    ts = [T0 + timedelta(seconds=s) for s in (1, 2, 3, 20, 21, 62, 100)]
    return pl.DataFrame(
        {
            "ts": ts,
            "level": ["error"] * 6 + ["info"],
            "error_class": ["pool_timeout"] * 4 + ["connection_reset", "pool_timeout", None],
            "message": ["QueuePool limit reached"] * 7,
            "file": ["app/app.log"] * 7,
            "line": [11, 12, 13, 14, 15, 16, 17],
        }
    )


def metrics_frame() -> pl.DataFrame:
    ts = [T0 + timedelta(seconds=10 * i) for i in range(10)]
    gauge = 'db_pool_checked_out{instance="api-1"}'
    size = 'db_pool_size{instance="api-1"}'
    over = 'db_pool_max_overflow{instance="api-1"}'
    values = [1, 2, 3, 4, 5, 5, 5, 2, 1, 1]
    rows = [(t, "db_pool_checked_out", gauge, float(v)) for t, v in zip(ts, values, strict=True)]
    rows += [(t, "db_pool_size", size, 4.0) for t in ts] + [
        (t, "db_pool_max_overflow", over, 1.0) for t in ts
    ]
    return pl.DataFrame(rows, schema=["ts", "metric", "series", "value"], orient="row").with_columns(
        file=pl.lit("prom/pool.json")
    )


def bars(fig):
    return [t for t in fig.data if t.type == "bar"]


class TestTheme:
    def test_template_registered(self):
        """The loglib templates are registered with plotly, with the Okabe–Ito colourway."""
        assert "loglib" in pio.templates and "loglib_slides" in pio.templates
        assert pio.templates["loglib"].layout.colorway[0] == theme.OKABE_ITO["blue"]
        assert pio.templates["loglib_slides"].layout.font.size > pio.templates["loglib"].layout.font.size

    def test_unknown_preset(self):
        """An unknown preset names the allowed ones."""
        with pytest.raises(ValueError, match="'doc', 'slides'"):
            theme.make_template("poster")

    def test_time_axis_says_utc(self):
        """Time axes are labelled as UTC."""
        fig = charts.error_rate(app_frame(), every="10s")
        assert fig.layout.xaxis.title.text == "time (UTC)"
        assert fig.layout.template.layout.font.family.startswith("Inter")


class TestErrorRate:
    def test_one_stacked_trace_per_class(self, frame):
        """One bar trace per error_class, counts per bucket, polars or pandas input."""
        fig = charts.error_rate(frame(app_frame()), every="10s")
        assert {t.name for t in bars(fig)} == {"pool_timeout", "connection_reset"}
        pool = next(t for t in bars(fig) if t.name == "pool_timeout")
        assert list(pool.y) == [3, 1, 1]
        assert fig.layout.barmode == "stack"

    def test_hover_leads_to_file_line(self):
        """Each bar's hover names the first file:line of its bucket."""
        pool = next(t for t in bars(charts.error_rate(app_frame(), every="10s")) if t.name == "pool_timeout")
        assert pool.customdata[0][1] == "app/app.log:11"
        assert "first: %{customdata[1]}" in pool.hovertemplate

    def test_threshold_and_firing_spans(self):
        """The threshold is a line; replaying it gives firing spans drawn as bands."""
        fig = charts.error_rate(app_frame(), every="10s", threshold=2)
        lines = [s for s in fig.layout.shapes if s.type == "line" and s.y0 == 2]
        bands = [s for s in fig.layout.shapes if s.type == "rect"]
        assert lines and len(bands) == 1
        assert any(t.name and t.name.startswith("alert firing") for t in fig.data)

    def test_alerts_frame_gives_spans(self):
        """A replay_alert frame passed in is drawn as firing spans."""
        series = pl.DataFrame(
            {"ts": [T0 + timedelta(minutes=i) for i in range(5)], "series": "r", "value": [0.0, 1, 1, 1, 0]}
        )
        alerts = ll.replay_alert(series, "r", ">", 0.5, for_="0s")
        fig = charts.error_rate(app_frame(), alerts=alerts)
        band = next(s for s in fig.layout.shapes if s.type == "rect")
        assert band.x0 == T0 + timedelta(minutes=1)

    def test_needs_app(self):
        """Without application logs the error says what is needed."""
        with pytest.raises(ValueError, match="read_app_log"):
            charts.error_rate(None)


class TestPool:
    def test_utilisation_lines(self, frame):
        """Checked-out as % of capacity (size 4 + overflow 1): a full pool is 100 %, pool_size a line at 80 %."""
        fig = charts.pool_utilisation(frame(metrics_frame()))
        line = fig.data[0]
        assert max(line.y) == pytest.approx(100.0)
        ys = sorted(s.y0 for s in fig.layout.shapes if s.type == "line" and s.y0 == s.y1)
        assert ys == [80, 100]
        texts = [a.text for a in fig.layout.annotations]
        assert any(t.startswith("pool_size = 4") for t in texts) and any(
            t.startswith("capacity 4+1") for t in texts
        )
        assert "series: %{customdata[1]}" in line.hovertemplate
        assert line.customdata[0][1] == 'db_pool_checked_out{instance="api-1"}'

    def test_settings_override_series(self):
        """pool_size= wins over the series."""
        fig = charts.pool_utilisation(metrics_frame(), pool_size=5, max_overflow=0)
        assert max(fig.data[0].y) == pytest.approx(100.0)

    def test_no_gauge(self):
        """Metrics without a checked-out gauge give a clear error."""
        with pytest.raises(ValueError, match="checked-out gauge"):
            charts.pool_utilisation(metrics_frame().filter(pl.col("metric") == "db_pool_size"))


@pytest.fixture(scope="module")
def inc():
    """The pool-leak incident of tests/files (real SQLAlchemy, PostgreSQL and Prometheus output)."""
    return ll.Incident.load(POOL_LEAK)


class TestIncidentCharts:
    def test_overview_panels(self, inc):
        """The overview has errors, pool, DB connections and events on one shared time axis."""
        fig = charts.overview(inc)
        axes = [k for k in fig.layout if k.startswith("yaxis")]
        assert len(axes) == 4
        assert fig.layout.xaxis.matches == "x4" or fig.layout.xaxis2.matches == "x4"
        assert fig.layout.title.text == inc.title
        restarts = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]
        assert restarts, "restart markers drawn across panels"
        events = next(t for t in fig.data if t.name == "restart")
        assert "Operator restarted the service" in events.text

    def test_db_connections(self, inc):
        """Connections open against max_connections, and new connections per bucket."""
        fig = charts.db_connections(inc)
        assert any(s.y0 == 20 for s in fig.layout.shapes if s.type == "line")
        opened = next(t for t in fig.data if t.name == "connections open")
        assert max(opened.y) >= 4
        accepted = next(t for t in fig.data if t.name == "connections accepted")
        assert accepted.customdata[0][1].startswith("pg/postgresql.log:")

    def test_db_connections_frames(self, inc, frame):
        """db_connections takes a PostgreSQL frame too (polars or pandas)."""
        fig = charts.db_connections(frame(inc.pg), max_connections=20)
        assert any(t.name == "connections open" for t in fig.data)

    def test_leak_rate_names_method(self, inc):
        """The leak chart names the counting method and marks lower bounds."""
        fig = charts.leak_rate(inc, every="10s")
        text = " ".join(a.text for a in fig.layout.annotations)
        assert "checked_out_gauge" in text
        assert any("lower bound" in (t.name or "") for t in fig.data)

    def test_leak_rate_from_rates_frame(self, frame):
        """A leak_rates frame is drawn as it is."""
        rates = pl.DataFrame(
            {
                "ts": [T0, T0 + timedelta(hours=1)],
                "scope": "s",
                "leaked": [3.0, None],
                "method": "pg_sessions",
                "confidence": ["medium", "none"],
                "saturated": [False, True],
                "note": ["n", "full"],
            }
        )
        fig = charts.leak_rate(frame(rates))
        assert "pg_sessions" in fig.layout.annotations[0].text
        assert [t.name for t in fig.data] == ["leaked", "not visible (pool/server full)"]

    def test_session_histogram_marks_idle_timeout(self):
        """Idle drops: the inferred idle timeout is marked on the log duration axis."""
        fig = charts.session_durations(ll.Incident.load(IDLE))
        assert any("idle timeout" in a.text and "inferred" in a.text for a in fig.layout.annotations)
        assert fig.layout.xaxis.title.text == "session duration (log scale)"
        assert len(fig.layout.xaxis.tickvals) >= 3

    def test_session_histogram_filters_only_what_it_draws(self, monkeypatch):
        """Memory (issue 19): the histogram's filters copy the five columns it draws, not every
        column of the sessions frame (120 MB at a gigabyte of logs)."""
        inc = ll.Incident.load(IDLE)
        sessions = inc.evidence.sessions
        filtered = frames_seen(monkeypatch, "filter")
        fig = charts.session_durations(sessions, idle_timeout=timedelta(seconds=10))
        assert bars(fig) and sessions.width > 10
        # duration, end_reason, open_at_end, file, line, and the derived secs, outcome, bin
        assert filtered and max(map(len, filtered)) <= 8

    def test_session_histogram_from_pg_frame(self, inc, frame):
        """Sessions are derived from a PostgreSQL frame; hover gives an example file:line."""
        fig = charts.session_durations(frame(inc.pg), idle_timeout=timedelta(seconds=10))
        trace = bars(fig)[0]
        assert ":" in trace.customdata[0][2]
        assert any("given" in a.text for a in fig.layout.annotations)

    def test_before_after(self, inc):
        """The incident declares no fix: no table from a guess; at= compares anywhere; table and chart agree."""
        with pytest.raises(ValueError, match="needs a declared fix"):
            charts.before_after_table(inc)
        at = inc.window()[0] + (inc.window()[1] - inc.window()[0]) / 2
        table = charts.before_after_table(inc, at=at)
        assert table.columns[:5] == ["measure", "unit", "before", "after", "change"]
        share = table.filter(pl.col("unit").str.starts_with("% of capacity"))
        assert share.height == 2 and share["before"].max() <= 100 and share["after"].max() <= 100
        fig = charts.before_after(inc, at=at)
        assert {t.legendgroup for t in fig.data} == {"before", "after"}

    def test_before_after_windows(self):
        """Explicit windows are used as given."""
        table = charts.before_after_table(
            app_frame(),
            before=(T0, T0 + timedelta(seconds=30)),
            after=(T0 + timedelta(seconds=30), T0 + timedelta(seconds=120)),
        )
        row = table.row(0, named=True)
        assert row["before"] == pytest.approx(10.0) and row["after"] == pytest.approx(1 / 1.5, abs=1e-3)

    def test_before_after_needs_a_split(self):
        """Without windows, a time or a deploy event, the error says what to give."""
        with pytest.raises(ValueError, match="at="):
            charts.before_after_table(app_frame())


class TestPandasParity:
    def test_same_figure_from_pandas(self):
        """polars and pandas input give the same traces."""
        a = charts.error_rate(app_frame(), every="10s")
        b = charts.error_rate(app_frame().to_pandas(), every="10s")
        assert [list(t.y) for t in a.data if t.type == "bar"] == [
            list(t.y) for t in b.data if t.type == "bar"
        ]


def test_idle_overview_marks_postgresql_resets():
    """Issue 15: the idle-drops overview marks the resets PostgreSQL logged, one marker per bucket."""
    inc = ll.Incident.load(IDLE)
    resets = inc.pg.filter(pl.col("event") == "client_reset")
    assert resets.height  # 'could not receive data from client: Connection reset by peer'
    fig = charts.overview(inc)
    marks = [t for t in fig.data if t.name == "PostgreSQL resets"]
    assert len(marks) == 1
    counts = [c[0] for c in marks[0].customdata]
    assert sum(counts) == resets.height and len(counts) <= 90  # aggregated: bounded by the buckets
    assert all(":" in c[1] for c in marks[0].customdata)  # first line's file:line


@pytest.mark.parametrize("name", ["idle-drops", "pool-exhaustion", "post-deploy"])
def test_event_labels_are_short_with_the_full_text_in_the_hover(name):
    """Issue 15: chart labels next to markers are cut (short_label's 38 characters + "…"), the full text in the hover."""
    from loglib.postmortem._charts import incident_charts

    figs, _ = incident_charts(
        ll.Incident.load(Path(__file__).resolve().parents[1] / "data" / "incidents" / name)
    )
    labelled = 0
    for fig in figs.values():
        for t in fig.data:
            if t.type == "scatter" and t.mode and "text" in t.mode and t.text is not None:
                for label, custom in zip(t.text, t.customdata, strict=True):
                    labelled += 1
                    assert len(label) <= 39, label
                    if label.endswith("…"):
                        assert (
                            str(custom[0]).startswith(label[:-1].rstrip()[:10])
                            and len(str(custom[0])) > len(label) - 1
                        )
    assert labelled


@pytest.mark.parametrize(
    "where", ["data/lab/deploy-23", "data/lab/pgbouncer-60", "data/incidents/post-deploy"]
)
def test_event_labels_near_the_right_edge_open_to_the_left(where):
    """Issue 15: 'app checkout-api stopped …' at a log's last line ran past the chart's right edge and
    was cut in the PNG. A label opening to the right must end inside the axis (the layout's width
    estimate per character and for the marker); the ones that would not open to the left."""
    from loglib.present.charts._overview import LABEL_CHAR_SHARE, LABEL_PAD_SHARE

    inc = ll.Incident.load(Path(__file__).resolve().parents[1] / where)
    fig = ll.charts.overview(inc)
    start, end = inc.window()
    width = (end - start).total_seconds()
    checked = 0
    spans: dict[float, list[tuple[float, float]]] = {}  # lane (y) -> label spans (shares of the axis)
    for t in fig.data:
        if t.type == "scatter" and t.mode and "text" in t.mode and t.text is not None:
            positions = t.textposition
            if not isinstance(positions, tuple | list):
                positions = [positions] * len(t.x)
            for x, y, label, pos in zip(t.x, t.y, t.text, positions, strict=True):
                share = (x - start).total_seconds() / width
                need = LABEL_CHAR_SHARE * len(label) + LABEL_PAD_SHARE if label else 0.0
                a, b = (share, share + need) if pos == "middle right" else (share - need, share)
                assert pos in ("middle right", "middle left")
                assert b <= 1.01 and a >= -0.05, f"{label!r} runs off the chart ({a:.2f}–{b:.2f})"
                for lo, hi in spans.get(y, []):
                    assert min(b, hi) - max(a, lo) <= 1e-9, f"labels overlap in lane {y}: {label!r}"
                spans.setdefault(y, []).append((a, b))
                checked += 1
    assert checked
