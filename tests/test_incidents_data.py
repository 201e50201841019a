"""The bundled incidents (``data/incidents/``, made by ``data/generate/``) are well formed, and
loglib's readers recover the ground truth each generator wrote to ``truth.json``."""

from __future__ import annotations

import glob
import json
import re
import tomllib
from datetime import datetime, timedelta

import polars as pl
import pytest

import loglib as ll
from tests.conftest import ROOT

INCIDENTS = ROOT / "data" / "incidents"
NAMES = ("pool-exhaustion", "post-deploy", "idle-drops")
SOURCE_KINDS = {"app", "postgres", "prometheus", "pool_events", "pg_activity"}
EVENT_KINDS = {"deploy", "restart", "action", "fix", "alert", "note"}
# no pool_recycle: the apps use SQLAlchemy's "never" (-1), which Incident does not accept
APP_KEYS = {
    "pool_size",
    "max_overflow",
    "pool_timeout",
    "pool_pre_ping",
    "workers",
    "instances",
}
# an app log event starts with a timestamp; traceback lines do not
APP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+) \[([^\]]+)\] (.*)$")


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def truth(name: str) -> dict:
    return json.loads((INCIDENTS / name / "truth.json").read_text())


def config(name: str) -> dict:
    return tomllib.loads((INCIDENTS / name / "incident.toml").read_text())


def pg_events(name: str) -> pl.DataFrame:
    src = next(s for s in config(name)["sources"] if s["kind"] == "postgres")
    return ll.read_pg_log(INCIDENTS / name / "pg" / "postgresql.log", prefix=src["prefix"], strict=True)


def app_events_raw(name: str) -> list[tuple[datetime, str, str, str]]:
    """(time, level, logger, message + traceback) per app log event, by a plain regex."""
    events: list[list] = []
    for line in (INCIDENTS / name / "app" / "app.log").read_text().splitlines():
        m = APP_LINE.match(line)
        if m:
            at = datetime.fromisoformat(m[1].replace(",", ".") + "+00:00")
            events.append([at, m[2], m[3], m[5]])
        else:
            events[-1][3] += "\n" + line
    return [tuple(e) for e in events]


def near(a: datetime, b: datetime, seconds: float) -> bool:
    return abs((a - b).total_seconds()) <= seconds


# --- every folder ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
class TestFolder:
    def test_files(self, name):
        folder = INCIDENTS / name
        for rel in ("incident.toml", "truth.json", "README.md", "app/app.log", "pg/postgresql.log"):
            assert (folder / rel).is_file(), rel
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert size < 5_000_000

    def test_incident_toml(self, name):
        cfg = config(name)
        assert cfg["title"]
        assert ts(cfg["start"]) < ts(cfg["end"])
        assert cfg["postgres"] == {"max_connections": 30, "superuser_reserved_connections": 3}
        assert {s["kind"] for s in cfg["sources"]} <= SOURCE_KINDS
        for src in cfg["sources"]:
            for pattern in src["paths"]:
                assert glob.glob(str(INCIDENTS / name / pattern)), pattern
        assert set(cfg["app"]) == APP_KEYS
        assert cfg["app"]["pool_pre_ping"] is False
        assert {e["kind"] for e in cfg["events"]} <= EVENT_KINDS
        for ev in cfg["events"]:
            assert ts(cfg["start"]) <= ts(ev["at"]) <= ts(cfg["end"])
        pool = truth(name)["pool"]
        for key in ("pool_size", "max_overflow", "pool_timeout"):
            assert cfg["app"][key] == pool[key]

    def test_events_match_truth(self, name):
        assert config(name)["events"] == truth(name)["events"]

    def test_pg_log_reads_strictly(self, name):
        ev = pg_events(name)
        assert ev.height > 50
        report = ll.read_report(ev)
        assert report.lines_rejected == 0
        assert report.lines_read == sum(1 for _ in (INCIDENTS / name / "pg" / "postgresql.log").open())
        assert ev["ts"].min() >= ts(config(name)["start"]) - timedelta(minutes=1)

    def test_prometheus_reads_strictly(self, name):
        m = ll.read_prometheus(INCIDENTS / name / "prometheus" / "*.json", strict=True)
        names = set(m["metric"].unique())
        for metric in ("http_requests_total", "db_pool_checked_out", "db_pool_size", "pg_up",
                       "status:http_requests:rate30s", "job:http_503:ratio_rate30s", "pg_stat_activity_count"):  # fmt: skip
            assert metric in names, metric
        cfg = config(name)
        assert m["ts"].min() >= ts(cfg["start"]) and m["ts"].max() <= ts(cfg["end"]) + timedelta(seconds=5)

    def test_every_app_line_is_an_event_or_traceback(self, name):
        events = app_events_raw(name)
        assert events[0][3].startswith("checkout-api ")
        assert all(e[1] in {"INFO", "WARNING", "ERROR"} for e in events)

    def test_app_errors_match_the_driver(self, name):
        """Every 503 the load driver saw is one ERROR with a traceback in the app log."""
        t = truth(name)
        failed = [e for e in app_events_raw(name) if e[1] == "ERROR" and "database" in e[3].split("\n")[0]]
        assert len(failed) == t["status_counts"].get("503", 0)
        assert all("Traceback (most recent call last)" in e[3] for e in failed)

    def test_incident_loads(self, name):
        """loglib.Incident reads the folder: every source, the pool settings, the events."""
        if not hasattr(ll, "Incident"):
            pytest.skip("loglib.Incident is not on this branch yet")
        inc = ll.Incident.load(INCIDENTS / name)
        cfg = config(name)
        assert inc.title == cfg["title"]
        assert inc.app_settings.pool_size == cfg["app"]["pool_size"]
        assert inc.postgres_settings.max_connections == 30
        assert inc.pg.height == pg_events(name).height
        assert inc.app.height == len(app_events_raw(name))
        assert inc.metrics.height > 0
        assert inc.declared_events.height == len(cfg["events"])

    def test_read_app_log(self, name):
        if not hasattr(ll, "read_app_log"):
            pytest.skip("read_app_log is not on this branch yet")
        src = next(s for s in config(name)["sources"] if s["kind"] == "app")
        app = ll.read_app_log(
            INCIDENTS / name / "app" / "app.log",
            pattern=src["pattern"],
            tz=src["tz"],
            service=src["service"],
            strict=True,
        )
        raw = app_events_raw(name)
        assert app.height == len(raw)
        assert app.filter(pl.col("level") == "error").height == sum(e[1] == "ERROR" for e in raw)


# --- pool exhaustion ------------------------------------------------------------------------


class TestPoolExhaustion:
    name = "pool-exhaustion"

    @pytest.fixture(scope="class")
    @classmethod
    def sessions(cls) -> pl.DataFrame:
        return ll.pg_sessions(pg_events(cls.name)).filter(pl.col("application") == "checkout-api")

    def test_leaked_sessions_end_at_restart_and_deploy(self, sessions):
        """The leaked sessions are the app sessions that end on an EOF with an open transaction:
        the process exited while they were checked out. They end at the restart and the deploy."""
        t = truth(self.name)
        leaked = sessions.filter(pl.col("end_reason") == "client_reset")
        assert leaked.height == t["leaked_total"]
        at_restart = leaked.filter(
            pl.col("end").is_between(ts(t["restart"]), ts(t["restart"]) + timedelta(seconds=10))
        )
        at_deploy = leaked.filter(
            pl.col("end").is_between(ts(t["deploy"]), ts(t["deploy"]) + timedelta(seconds=10))
        )
        assert [at_restart.height, at_deploy.height, 0] == t["leaks_per_phase"]

    def test_eof_lines(self):
        t = truth(self.name)
        ev = pg_events(self.name)
        eof = ev.filter(pl.col("event") == "unexpected_eof")
        assert eof.height == t["leaked_total"]
        assert eof["message"].str.contains("with an open transaction").all()

    def test_leaks_and_pool_timeouts_in_the_app_log(self):
        t = truth(self.name)
        raw = app_events_raw(self.name)
        leaks = [e for e in raw if "OrderLimitError: order" in e[3] and e[1] == "ERROR"]
        assert len(leaks) == t["leaked_total"]
        for e, at in zip(leaks, t["leaks"], strict=True):
            assert near(e[0], ts(at), 1.5)
        timeouts = [
            e
            for e in raw
            if "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 3 reached" in e[3]
        ]
        assert len(timeouts) == t["pool_timeouts"]
        assert sum(t["pool_timeouts_per_phase"]) == t["pool_timeouts"]
        assert t["pool_timeouts_per_phase"][2] == 0
        # pool timeouts start only once 8 connections have leaked in that process
        for (a, b), first, n_leaks in zip(
            [(t["app_start"], t["restart"]), (t["restart"], t["deploy"])], t["first_pool_timeout_per_phase"],
            t["leaks_per_phase"], strict=False,
        ):  # fmt: skip
            assert n_leaks == 8
            leaks_in = [ts(x) for x in t["leaks"] if ts(a) <= ts(x) < ts(b)]
            assert ts(first) > max(leaks_in)

    def test_leak_rate(self):
        t = truth(self.name)
        # 2 % of 5 req/s: 6 per real minute while the pool has room; the 8th leak ends that phase
        first = [ts(x) for x in t["leaks"][:8]]
        per_minute = 7 / ((first[-1] - first[0]).total_seconds() / 60)
        assert 2 < per_minute < 15

    def test_read_app_log_classes(self):
        if not hasattr(ll, "read_app_log"):
            pytest.skip("read_app_log is not on this branch yet")
        t = truth(self.name)
        app = ll.read_app_log(INCIDENTS / self.name / "app" / "app.log", tz="UTC")
        assert app.filter(pl.col("error_class") == "pool_timeout").height == t["pool_timeouts"]
        assert (
            app.filter(pl.col("exc_type").cast(pl.String).str.ends_with("OrderLimitError")).height
            == t["leaked_total"]
        )

    def test_metrics(self):
        t = truth(self.name)
        m = ll.read_prometheus(INCIDENTS / self.name / "prometheus" / "*.json", strict=True)
        out = m.filter(pl.col("metric") == "db_pool_checked_out")
        assert out["value"].max() == t["pool"]["pool_size"] + t["pool"]["max_overflow"]
        # after the fix the pool never fills
        after = out.filter(pl.col("ts") > ts(t["deploy"]) + timedelta(seconds=5))
        assert after["value"].max() < 8
        # the exporter sees the leaked sessions: 8 backends idle in transaction
        idle_tx = m.filter(
            (pl.col("metric") == "pg_stat_activity_count")
            & (pl.col("labels").struct.field("state") == "idle in transaction")
        )
        assert idle_tx["value"].max() == 8
        alerts = m.filter(pl.col("metric") == "ALERTS")
        firing = alerts.filter(pl.col("labels").struct.field("alertstate") == "firing")
        assert set(firing["labels"].struct.field("alertname")) == {"Checkout503s", "DbPoolSaturated"}
        # a page fires in each leaking phase, none after the fix
        pages = firing.filter(pl.col("labels").struct.field("alertname") == "Checkout503s")["ts"]
        assert pages.filter(pages < ts(t["restart"])).len() > 0
        assert pages.filter((pages > ts(t["restart"])) & (pages < ts(t["deploy"]))).len() > 0
        assert pages.filter(pages > ts(t["deploy"]) + timedelta(seconds=60)).len() == 0


# --- errors after each deploy ---------------------------------------------------------------


class TestPostDeploy:
    name = "post-deploy"

    def test_shutdowns_at_each_deploy(self):
        t = truth(self.name)
        ev = pg_events(self.name)
        fast = ev.filter(pl.col("message") == "received fast shutdown request")["ts"].to_list()
        smart = ev.filter(pl.col("message") == "received smart shutdown request")["ts"].to_list()
        assert len(fast) == len(t["deploys"]) == 3
        for d, at in zip(t["deploys"], fast, strict=True):
            assert near(at, ts(d["smart_gave_up"] or d["deploy"]), 2)
        assert [d["version"] for d in t["deploys"] if d["shutdown"] == "smart"] == ["2.3.2"]
        assert len(smart) == 1 and near(smart[0], ts(t["deploys"][1]["deploy"]), 2)
        ready = ev.filter(pl.col("event") == "server_ready")["ts"].to_list()
        assert len(ready) == 4  # first start + one per deploy
        for d, at in zip(t["deploys"], ready[1:], strict=True):
            assert near(at, ts(d["pg_ready"]), 2)

    def test_app_sessions_end_at_each_deploy(self):
        t = truth(self.name)
        s = ll.pg_sessions(pg_events(self.name)).filter(pl.col("application") == "checkout-api")
        killed = s.filter(pl.col("end_reason").is_in(["admin_termination", "server_shutdown"]))
        for d in t["deploys"]:
            stop = ts(d["smart_gave_up"] or d["deploy"])
            assert (
                killed.filter(
                    pl.col("end").is_between(stop - timedelta(seconds=1), stop + timedelta(seconds=3))
                ).height
                >= 1
            )
        # no other way for an app session to end abnormally
        assert set(s["end_reason"].drop_nulls()) <= {
            "admin_termination",
            "server_shutdown",
            "disconnection",
            "rejected",
        }

    def test_app_errors_only_in_deploy_windows(self):
        t = truth(self.name)
        assert t["errors_outside_deploys"] == 0
        errors = [e for e in app_events_raw(self.name) if e[1] == "ERROR"]
        windows = [(ts(d["deploy"]), ts(d["app_ready"]) + timedelta(seconds=5)) for d in t["deploys"]]
        assert errors and all(any(a <= e[0] <= b for a, b in windows) for e in errors)
        for d, (a, b) in zip(t["deploys"], windows, strict=True):
            inside = [e for e in errors if a <= e[0] <= b]
            assert len(inside) == d["errors_503"] > 0
            # the first failure of each deploy is a stale pooled connection: the server's goodbye
            assert "AdminShutdown: terminating connection due to administrator command" in inside[0][3]
            assert all("Connection refused" in e[3] for e in inside[1:])
        text = "\n".join(e[3] for e in errors)
        assert "Connection refused" in text
        assert "terminating connection due to administrator command" in text

    def test_read_app_log_classes(self):
        if not hasattr(ll, "read_app_log"):
            pytest.skip("read_app_log is not on this branch yet")
        app = ll.read_app_log(INCIDENTS / self.name / "app" / "app.log", tz="UTC")
        classes = set(app["error_class"].drop_nulls())
        assert "connection_refused" in classes
        assert classes <= {"connection_refused", "admin_shutdown", "server_closed", "server_not_ready",
                           "conn_invalidated", "pool_timeout", "connection_reset"}  # fmt: skip

    def test_metrics(self):
        t = truth(self.name)
        m = ll.read_prometheus(INCIDENTS / self.name / "prometheus" / "*.json", strict=True)
        pg_up = m.filter(pl.col("metric") == "pg_up").sort("ts")
        down = pg_up.filter(pl.col("value") == 0)["ts"]
        for d in t["deploys"]:
            assert (
                down.filter(down.is_between(ts(d["deploy"]), ts(d["pg_ready"]) + timedelta(seconds=5))).len()
                > 0
            )


# --- idle drops -----------------------------------------------------------------------------


class TestIdleDrops:
    name = "idle-drops"

    @pytest.fixture(scope="class")
    @classmethod
    def events(cls) -> pl.DataFrame:
        return pg_events(cls.name)

    def test_one_client_reset_per_kill(self, events):
        t = truth(self.name)
        s = ll.pg_sessions(events).filter(pl.col("application") == "checkout-api")
        resets = s.filter(pl.col("end_reason") == "client_reset").sort("end")
        assert resets.height == t["drops"] == len(t["kills"])
        for end, kill in zip(resets["end"], sorted(t["kills"], key=lambda k: k["at"]), strict=True):
            assert near(end, ts(kill["at"]), 1)
        # the port each killed session came from is the proxy's upstream port
        assert set(resets["client_port"].to_list()) == {k["pg_client_port"] for k in t["kills"]}

    def test_idle_timeout_from_last_statement(self, events):
        """Each reset comes the idle timeout after the session's last statement."""
        t = truth(self.name)
        s = ll.pg_sessions(events).filter(pl.col("end_reason") == "client_reset")
        stmts = (
            events.filter(pl.col("message").str.starts_with("statement: "))
            .group_by("pid")
            .agg(pl.col("ts").max().alias("last"))
        )
        idle = s.join(stmts, on="pid").select((pl.col("end") - pl.col("last")).dt.total_milliseconds() / 1000)
        assert idle.height == t["drops"]
        assert idle.to_series().is_between(t["idle_timeout_seconds"], t["idle_timeout_seconds"] + 1.5).all()

    def test_errors_only_after_long_gaps(self):
        t = truth(self.name)
        errors = [e for e in app_events_raw(self.name) if e[1] == "ERROR"]
        assert len(errors) == t["status_counts"].get("503", 0) > 0
        after_long = [ts(g["end"]) for g in t["gaps"] if g["longer_than_timeout"]]
        for e in errors:
            assert any(timedelta(0) <= e[0] - g <= timedelta(seconds=5) for g in after_long)
        for b, prev in zip(t["bursts"][1:], t["gaps"], strict=False):
            if not prev["longer_than_timeout"]:
                assert b["errors"] == 0
        assert "server closed the connection unexpectedly" in "\n".join(e[3] for e in errors)

    def test_kills_follow_long_gaps_only(self):
        t = truth(self.name)
        long_gaps = [(ts(g["start"]), ts(g["end"])) for g in t["gaps"] if g["longer_than_timeout"]]
        tail = ts(t["bursts"][-1]["end"])
        for k in t["kills"]:
            at = ts(k["at"])
            assert any(a <= at <= b for a, b in long_gaps) or at >= tail
            assert (at - ts(k["idle_since"])).total_seconds() >= t["idle_timeout_seconds"]
