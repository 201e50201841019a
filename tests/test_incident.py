"""Incident: incident.toml loading with clear errors, cached frames, clock offsets, alignment."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.incident import IncidentError
from tests.conftest import FILES, ROOT

INCIDENTS = FILES / "incidents"


def _folder(tmp_path: Path, toml: str) -> Path:
    """An incident folder with the healthy fixture's logs and the given incident.toml."""
    for sub in ("app", "pg"):
        shutil.copytree(INCIDENTS / "healthy" / sub, tmp_path / sub)
    (tmp_path / "incident.toml").write_text(toml)
    return tmp_path


BASE = """title = "t"
[[sources]]
kind = "postgres"
paths = ["pg/postgresql.log"]
[[sources]]
kind = "app"
paths = ["app/*.log"]
tz = "UTC"
"""


class TestLoad:
    """Incident.load reads every fixture and exposes its frames."""

    @pytest.mark.parametrize("name", ["pool-leak", "deploy", "idle-drops", "healthy"])
    def test_fixtures_load(self, name):
        """Each committed incident loads; its app and PostgreSQL frames are there."""
        inc = ll.Incident.load(INCIDENTS / name)
        assert inc.app.height > 0
        assert inc.pg.height > 0
        assert inc.sessions.height > 0
        assert set(inc.events.columns) == set(ll.schema.INCIDENT_EVENTS.names)

    def test_issue_example_keys(self, tmp_path):
        """The issue's example file (prefix, tz, [app], [[events]]) is accepted."""
        inc = ll.Incident.load(
            _folder(
                tmp_path,
                BASE.replace(
                    'paths = ["pg/postgresql.log"]',
                    'paths = ["pg/postgresql.log*"]\nprefix = "%m [%p] %q%u@%d "',
                )
                + '[app]\npool_size = 5\nmax_overflow = 3\n[[events]]\nat = "2026-11-21T22:19:25Z"\nkind = "restart"\n'
                'text = "Operator restarted the service"\n',
            )
        )
        assert inc.app_settings.capacity == 8
        declared = inc.events.filter(pl.col("origin") == "declared")
        assert declared.select("kind", "text").rows() == [("restart", "Operator restarted the service")]

    def test_frames_are_cached(self):
        """A second load of unchanged files reuses the parsed frames (a notebook re-run is instant)."""
        a = ll.Incident.load(INCIDENTS / "healthy")
        b = ll.Incident.load(INCIDENTS / "healthy")
        assert a.read("postgres", raw=True) is b.read("postgres", raw=True)
        assert a.aligned("1s") is a.aligned("1s")

    def test_clock_offset_applied(self, tmp_path):
        """A source's clock_offset is subtracted from its timestamps; read(raw=True) keeps them."""
        inc = ll.Incident.load(_folder(tmp_path, BASE + 'clock_offset = "4s"\n'))
        raw = inc.read("app", raw=True)["ts"]
        assert (raw - inc.app["ts"]).unique().to_list() == [timedelta(seconds=4)]

    def test_with_offset(self):
        """with_offset returns a copy with one source on another clock."""
        inc = ll.Incident.load(INCIDENTS / "healthy")
        moved = inc.with_offset("app", "-350ms")
        assert (moved.app["ts"] - inc.app["ts"]).unique().to_list() == [timedelta(milliseconds=350)]


class TestErrors:
    """Every mistake in incident.toml is named with its key."""

    @pytest.mark.parametrize(
        ("extra", "match"),
        [
            ("colour = 1\n", r"unknown key\(s\) 'colour'"),
            ('[[events]]\nat = "yesterday"\n', r"events\[0\]\.at: 'yesterday' is not a time"),
            ('[[events]]\nat = "2026-11-21T22:19:25"\n', "has no time zone"),
            (
                '[[events]]\nat = "2026-11-21T22:19:25Z"\nkind = "party"\n',
                r"events\[0\]\.kind: must be one of",
            ),
            ('[app]\npool_size = "5"\n', r"app\.pool_size: expected int"),
            ("[app]\npoolsize = 5\n", r"app: unknown key\(s\) 'poolsize'"),
            (
                '[[windows]]\nname = "a"\nstart = "2026-01-01T00:00:00Z"\nend = "2026-01-01T01:00:00Z"\n'
                '[[windows]]\nname = "b"\nstart = "2026-01-01T00:30:00Z"\nend = "2026-01-01T02:00:00Z"\n',
                "'a' and 'b' overlap",
            ),
            ('start = "2026-01-02T00:00:00Z"\nend = "2026-01-01T00:00:00Z"\n', "is not before end"),
        ],
    )
    def test_bad_file(self, tmp_path, extra, match):
        """The message names the key and what is wrong."""
        # top-level keys must come before the first table
        text = extra + BASE if not extra.startswith("[") else BASE + extra
        with pytest.raises(IncidentError, match=match):
            ll.Incident.load(_folder(tmp_path, text))

    def test_missing_file(self, tmp_path):
        """A path that matches nothing is named."""
        with pytest.raises(IncidentError, match=r"sources\[1\]\.paths: 'nope/\*\.log' matches no file"):
            ll.Incident.load(_folder(tmp_path, BASE.replace("app/*.log", "nope/*.log")))

    def test_unknown_reader_option(self, tmp_path):
        """Options are the reader's own keyword arguments."""
        with pytest.raises(IncidentError, match=r"sources\[0\]: unknown key\(s\) 'prefx'"):
            ll.Incident.load(
                _folder(tmp_path, BASE.replace('kind = "postgres"', 'kind = "postgres"\nprefx = "%m"'))
            )

    def test_unknown_kind(self, tmp_path):
        """Source kinds are listed."""
        with pytest.raises(
            IncidentError, match="must be one of app, postgres, prometheus, pool_events, pg_activity"
        ):
            ll.Incident.load(_folder(tmp_path, BASE.replace('kind = "app"', 'kind = "nginx"')))

    def test_no_toml(self, tmp_path):
        """A folder without incident.toml says so."""
        with pytest.raises(IncidentError, match=r"incident\.toml"):
            ll.Incident.load(tmp_path)


class TestAligned:
    """Incident.aligned puts all sources on one grid."""

    def test_columns_and_grid(self):
        """One row per bucket over the window; app, pg and metric columns named by the rule."""
        inc = ll.Incident.load(INCIDENTS / "pool-leak")
        wide = inc.aligned("1s")
        start, end = inc.window()
        assert wide["ts"].diff().drop_nulls().unique().to_list() == [timedelta(seconds=1)]
        assert wide["ts"][0] <= start < wide["ts"][0] + timedelta(seconds=1)
        assert wide["ts"][-1] <= end
        assert {"app:events", "app:errors", "app:pool_timeout", "pg:new", "pg:open", "event:restart"} <= set(
            wide.columns
        )
        assert any(c.startswith("metric:db_pool_checked_out{") for c in wide.columns)
        assert wide["app:pool_timeout"].sum() == inc.app["error_class"].eq("pool_timeout").sum()


class TestSql:
    def test_round_trip_through_sqlite(self, tmp_path):
        """Incident.to_sql then Incident.from_sql gives back every frame unchanged."""
        inc = ll.Incident.load(INCIDENTS / "pool-leak")
        url = f"sqlite:///{tmp_path / 'incident.db'}"
        inc.to_sql(url)
        back = ll.Incident.from_sql(url)
        assert back.title == inc.title
        for name in ("app", "pg", "sessions", "metrics", "events"):
            original, restored = getattr(inc, name), getattr(back, name)
            assert restored is not None, name
            assert original.equals(restored), name
        assert back.frames()["findings"].height == inc.frames()["findings"].height


class TestSettings:
    def test_pool_recycle_minus_one_means_never(self, tmp_path):
        """pool_recycle = -1 is SQLAlchemy's 'never recycle', accepted as written; other negatives are errors."""
        doc = {
            "title": "t",
            "sources": [{"kind": "postgres", "paths": ["x.log"]}],
            "app": {"pool_recycle": -1},
        }
        (tmp_path / "x.log").write_text("2024-03-01 10:00:00 UTC [1] LOG:  x\n")
        assert ll.Incident.from_dict(doc, root=tmp_path).app_settings.pool_recycle == -1
        doc["app"] = {"pool_recycle": -5}
        with pytest.raises(IncidentError, match="negative"):
            ll.Incident.from_dict(doc, root=tmp_path)


class TestEvents:
    def test_detected_duplicate_of_a_declared_restart_is_dropped(self):
        """The operator's declared restart and the sessions it ended at once are one event, not two;
        the app's own stop line is kept beside it (it dates the restart to the app's clock)."""
        inc = ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion")
        kinds = inc.events.filter(pl.col("kind").is_in(["restart", "deploy", "fix"]))
        assert "connections" not in kinds["origin"].to_list()
        assert kinds.filter(pl.col("origin") == "declared").height == 2
        app = kinds.filter(pl.col("origin") == "app")
        assert app.height == 2  # the operator restart and the deploy, each at the app's stop line
        declared = kinds.filter(pl.col("origin") == "declared")["ts"]
        assert all(abs((a - d).total_seconds()) < 2 for a, d in zip(app["ts"], declared, strict=True))

    def test_undeclared_mass_end_is_kept(self):
        """Without declared events, an application's sessions ending at once is reported as a restart."""
        inc = ll.Incident.from_dict(
            {"title": "t", "sources": [{"kind": "postgres", "paths": ["postgresql.log"]}]},
            root=ROOT / "data" / "sample-pg",
        )
        assert (inc.events["origin"] == "connections").sum() == 2
