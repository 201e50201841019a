"""Live capture of pg_stat_activity against a real PostgreSQL that restarts under it: the outage is a
recorded gap, sampling resumes, the password is never written, and a killed capture stays readable."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest

import loglib as ll
from loglib.capture import capture_pg_activity
from tests.conftest import ROOT

pytestmark = pytest.mark.postgres
SECRET = "s3cr3t-Pa55word"


def _secret_url(pg_server) -> str:
    # the server trusts loopback connections, so any password works: it only has to stay out of the files
    return f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{pg_server.port}/postgres"


def _samples(out: Path) -> int:
    return len(list((out / "activity").glob("*.parquet")))


def _wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = "condition not met in time"
            raise TimeoutError(msg)
        time.sleep(0.05)


def _in_thread(result: dict, *args, **kwargs) -> threading.Thread:
    """Run capture_pg_activity in a thread; its summary lands in ``result["summary"]``."""

    def run() -> None:
        result["summary"] = capture_pg_activity(*args, **kwargs)

    worker = threading.Thread(target=run)
    worker.start()
    return worker


def _no_secret_under(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


class TestRestartUnderCapture:
    def test_gap_recorded_and_sampling_resumes(self, pg_server, tmp_path, caplog):
        """A server restart mid-capture becomes one gap with start < end; samples exist on both sides."""
        out = tmp_path / "capture"
        stop = threading.Event()
        result = {}
        idle_tx = psycopg.connect(pg_server.dsn, application_name="leaky-api")
        idle_tx.execute("select 1")  # opens a transaction and leaves it idle
        with caplog.at_level(logging.INFO, logger="loglib.capture"):
            worker = _in_thread(
                result,
                _secret_url(pg_server),
                out,
                every="0.2s",
                duration="60s",
                max_backoff="0.4s",
                stop=stop,
            )
            try:
                _wait_for(lambda: _samples(out) >= 5)
                pg_server.stop("fast")
                _wait_for(lambda: any((out / "gaps").glob("*.parquet")))  # the capture noticed the outage
                pg_server.start()
                before = _samples(out)
                _wait_for(lambda: _samples(out) >= before + 3)
            finally:
                stop.set()
                worker.join(timeout=20)
                with contextlib.suppress(psycopg.Error):
                    idle_tx.close()
        summary = result["summary"]
        assert summary.gaps == 1 and summary.failed_attempts >= 1
        gaps = ll.read_pg_activity_gaps(out)
        assert gaps.height == 1
        gap = gaps.row(0, named=True)
        assert gap["end"] is not None and gap["start"] < gap["end"]
        assert gap["duration"] == gap["end"] - gap["start"]
        assert gap["attempts"] == summary.failed_attempts
        assert "127.0.0.1" in gap["error"] or "connection" in gap["error"].lower()
        activity = ll.read_pg_activity(out, strict=True)
        times = activity["ts"].unique().sort()
        assert times.len() == summary.samples
        assert (times <= gap["start"]).sum() >= 5 and (times >= gap["end"]).sum() >= 3
        assert not ((times > gap["start"]) & (times < gap["end"])).any()  # nothing sampled inside the gap
        assert ll.read_report(activity).lines_rejected == 0
        # the restart shows in the samples too: a new server start time after the gap
        before_gap = activity.filter(pl.col("ts") <= gap["start"])["server_start"].unique()
        after_gap = activity.filter(pl.col("ts") >= gap["end"])["server_start"].unique()
        assert before_gap.len() == after_gap.len() == 1 and before_gap[0] < after_gap[0]
        clients = activity.filter(pl.col("backend_type") == "client backend")
        assert clients["application"].to_list().count("loglib-capture") == 0  # the sampler leaves itself out
        # analyses: the idle transaction before the restart, and none after
        states = ll.pg_activity_states(activity)
        assert states.filter(pl.col("ts") <= gap["start"])["idle_in_transaction"].min() == 1
        assert states.filter(pl.col("ts") >= gap["end"])["idle_in_transaction"].max() == 0
        assert states["max_connections"].unique().to_list() == [20]
        idle = ll.pg_idle_in_transaction(activity, older_than="500ms")
        assert idle.height == 1 and idle["application"][0] == "leaky-api"
        assert idle["max_idle"][0] >= timedelta(seconds=0.5)
        oldest = ll.pg_oldest_xact(activity)
        before_gap = oldest.filter(pl.col("ts") <= gap["start"])
        assert before_gap["oldest_xact_age"].is_sorted() and (before_gap["application"] == "leaky-api").all()
        # the password is nowhere: not in files, not in log messages
        _no_secret_under(out)
        assert all(SECRET not in r.getMessage() for r in caplog.records)
        assert any("***" in r.getMessage() for r in caplog.records)

    def test_server_down_at_start_is_a_gap_that_ends(self, pg_server, tmp_path):
        """Starting while the server is down records a gap from the capture start to the first sample."""
        out = tmp_path / "capture"
        pg_server.stop("fast")
        stop = threading.Event()
        result = {}
        worker = _in_thread(
            result, pg_server.url, out, every="0.2s", duration="30s", max_backoff="0.3s", stop=stop
        )
        try:
            _wait_for(lambda: any((out / "gaps").glob("*.parquet")) if (out / "gaps").exists() else False)
            assert ll.read_pg_activity_gaps(out)["end"].to_list() == [None]  # written while still down
            pg_server.start()
            _wait_for(lambda: _samples(out) >= 2)
        finally:
            stop.set()
            worker.join(timeout=20)
        gaps = ll.read_pg_activity_gaps(out)
        assert gaps.height == 1 and gaps["end"][0] is not None


class TestCommandLine:
    def _run(self, pg_server, out: Path, sig: int) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "loglib.cli", "capture", "pg-activity", _secret_url(pg_server),
               "--every", "0.1s", "--for", "60s", "--out", str(out)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: _samples(out) >= 3, timeout=30)
        finally:
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=20)
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)

    def test_ctrl_c_stops_cleanly_without_the_password(self, pg_server, tmp_path):
        """Ctrl-C ends the command with a summary; its output and files never show the password."""
        out = tmp_path / "capture"
        done = self._run(pg_server, out, signal.SIGINT)
        assert done.returncode == 0, done.stderr
        assert "interrupted" in done.stdout and "postgres:***@" in done.stdout
        assert SECRET not in done.stdout + done.stderr
        _no_secret_under(out)
        assert ll.read_pg_activity(out, strict=True)["ts"].n_unique() >= 3

    def test_a_killed_capture_is_readable(self, pg_server, tmp_path):
        """SIGKILL mid-capture leaves only complete Parquet files: every sample taken reads back."""
        out = tmp_path / "capture"
        self._run(pg_server, out, signal.SIGKILL)
        files = sorted((out / "activity").glob("*.parquet"))
        activity = ll.read_pg_activity(out, strict=True)
        assert activity["ts"].n_unique() == len(files) >= 3
        _no_secret_under(out)


def test_bad_arguments_name_the_problem(tmp_path):
    """A non-PostgreSQL URL or a bad interval is refused, and the message hides the password."""
    with pytest.raises(ValueError, match=r"sqlite://"):
        capture_pg_activity("sqlite://", tmp_path, duration="1s")
    with pytest.raises(ValueError, match="every="):
        capture_pg_activity(f"postgresql://u:{SECRET}@h/db", tmp_path, every="soon")
    with pytest.raises(ValueError) as info:
        capture_pg_activity(f"mysql://u:{SECRET}@h/db", tmp_path)
    assert SECRET not in str(info.value) and "***" in str(info.value)
