"""`loglib report` / `demo` / `parse` / `timeline`, run the way a user runs them: as a command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.present.export import BrowserNotFoundError, find_browser
from tests.browser import chromium_page, offline
from tests.conftest import ROOT, require

INCIDENTS = ROOT / "data" / "incidents"
SAMPLE_LOG = ROOT / "data" / "sample-pg" / "postgresql.log"
PREFIX = "%m [%p] %q%u@%d "


def loglib(*args: str, env: dict | None = None, cwd: Path = ROOT, timeout: int = 300):
    """Run the `loglib` command (this checkout's) and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "loglib.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _has_browser() -> bool:
    try:
        find_browser()
    except BrowserNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`loglib demo --out DIR`: the report on the first bundled incident (needs Chromium for PNG/SVG)."""
    require(_has_browser(), "Chrome/Chromium (apt-get install chromium)")
    out = tmp_path_factory.mktemp("demo") / "out"
    done = loglib("demo", "--out", str(out))
    return done, out


class TestReport:
    def test_exit_and_output(self, demo):
        """Exit 0; stdout says where everything is; stderr shows progress with elapsed time."""
        done, out = demo
        assert done.returncode == 0, done.stderr[-3000:]
        assert str(out / "report.html") in done.stdout
        assert "charts/overview.png" in done.stdout and "summary.md" in done.stdout
        assert "pool ran out of connections" in done.stdout
        assert re.search(r"\[\s*\d+\.\ds\] executing notebook cell \d+/\d+", done.stderr)
        assert "pool-exhaustion" in done.stderr and str(out) in done.stderr
        # the bundle's images are drawn once the kernel (and its frames) are gone, and the queue is removed
        assert re.search(r"drawing 14 chart image\(s\) in one browser \(the kernel has exited\)", done.stderr)
        assert not (out / ".loglib-charts").exists()

    def test_bundle(self, demo):
        """The export bundle is beside report.html: charts PNG+SVG, timeline, findings, summary."""
        _, out = demo
        for name in ("overview", "pool_utilisation", "leak_rate"):
            assert (out / "charts" / f"{name}.png").stat().st_size > 10_000
            assert (out / "charts" / f"{name}.svg").read_text().startswith("<svg")
        for doc in ("timeline.md", "findings.md", "summary.md"):
            assert (out / doc).stat().st_size > 200
        assert "pool ran out of connections" in (out / "findings.md").read_text()

    def test_html_offline(self, demo):
        """report.html is the executed postmortem: charts inline (plotly.js once), nothing from a URL."""
        _, out = demo
        html = (out / "report.html").read_text()
        assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", html)
        assert html.count("Plotly.newPlot(") >= 4
        assert "Postmortem: Checkout 503s" in html
        for heading in ("Summary and impact", "Timeline", "Overview", "Root cause", "Leak rate per hour",
                        "Findings and recommendations", "Export bundle"):  # fmt: skip
            assert heading in html
        assert "Fix the leak" in html
        assert 'class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr"' not in html

    def test_html_renders_offline_in_chromium(self, demo):
        """Opened from disk with the network cut, every chart of report.html draws."""
        _, out = demo
        with chromium_page() as page:
            attempted = offline(page)
            page.goto((out / "report.html").as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
            assert page.locator(".js-plotly-plot").count() >= 4
        assert attempted == []


class TestErrors:
    def _one_line(self, done, *words: str) -> str:
        assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
        lines = [line for line in done.stderr.splitlines() if line.startswith("loglib: error:")]
        assert len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr
        for w in words:
            assert w in lines[0]
        return lines[0]

    def test_missing_folder(self, tmp_path):
        done = loglib("report", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
        self._one_line(done, "does not exist", "nope")

    def test_folder_without_toml(self, tmp_path):
        done = loglib("report", str(tmp_path), "--out", str(tmp_path / "o"))
        self._one_line(done, "no incident.toml")

    def test_bad_toml(self, tmp_path):
        (tmp_path / "incident.toml").write_text(
            'title = "x"\n[[sources]]\nkind = "syslog-ng"\npaths = ["a"]\n'
        )
        done = loglib("report", str(tmp_path), "--out", str(tmp_path / "o"))
        self._one_line(done, "bad incident.toml", "kind")

    def test_unreadable_source(self, tmp_path):
        (tmp_path / "pg").mkdir()
        (tmp_path / "pg" / "postgresql.log").write_bytes(bytes(range(256)) * 20)
        (tmp_path / "incident.toml").write_text(
            'title = "x"\n[[sources]]\nkind = "postgres"\npaths = ["pg/postgresql.log"]\n'
        )
        done = loglib("report", str(tmp_path), "--out", str(tmp_path / "o"))
        self._one_line(done, "cannot read source", "postgres")

    def test_no_browser(self, tmp_path):
        """No browser for static export: a clear error with the fix, and report.html is written anyway."""
        out = tmp_path / "o"
        done = loglib("report", str(INCIDENTS / "idle-drops"), "--out", str(out), "-q",
                      env={"LOGLIB_BROWSER": "/nonexistent"})  # fmt: skip
        line = self._one_line(done, "LOGLIB_BROWSER", "apt-get install chromium", "report.html was written")
        assert "PNG/SVG" in line
        html = (out / "report.html").read_text()
        assert html.count("Plotly.newPlot(") >= 3 and "pool_recycle" in html
        assert (out / "summary.md").exists() and (out / "findings.md").exists()
        assert not list(out.glob("charts/*.png")) and (out / "charts" / "overview.html").exists()


class TestParse:
    @pytest.mark.parametrize("suffix", ["parquet", "csv"])
    def test_round_trip(self, tmp_path, suffix):
        """`loglib parse postgres` writes the frame read_pg_log returns."""
        out = tmp_path / f"frames.{suffix}"
        done = loglib("parse", "postgres", str(SAMPLE_LOG), "--prefix", PREFIX, "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert str(out) in done.stdout and "rows" in done.stdout
        want = ll.read_pg_log(SAMPLE_LOG, prefix=PREFIX)
        got = pl.read_parquet(out) if suffix == "parquet" else pl.read_csv(out, infer_schema=False)
        assert got.height == want.height and got.columns == want.columns
        if suffix == "parquet":
            assert got.equals(want)
        else:
            assert got["event"].to_list() == want["event"].to_list()
            assert got["line"].cast(pl.Int64).to_list() == want["line"].to_list()

    def test_app_and_prometheus(self, tmp_path):
        folder = INCIDENTS / "idle-drops"
        done = loglib("parse", "app", str(folder / "app" / "app.log"), "--tz", "UTC",
                      "--pattern", "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s",
                      "--out", str(tmp_path / "app.csv"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "server_closed" in (tmp_path / "app.csv").read_text()
        done = loglib("parse", "prometheus", str(folder / "prometheus"), "--out", str(tmp_path / "m.parquet"))
        assert done.returncode == 0, done.stderr
        assert pl.read_parquet(tmp_path / "m.parquet")["metric"].n_unique() > 5

    def test_errors(self, tmp_path):
        done = loglib("parse", "postgres", str(tmp_path / "none*.log"), "--out", str(tmp_path / "x.parquet"))
        assert (
            done.returncode == 2
            and done.stderr.startswith("loglib: error:")
            and "Traceback" not in done.stderr
        )
        done = loglib("parse", "postgres", str(SAMPLE_LOG), "--out", str(tmp_path / "x.xlsx"))
        assert done.returncode == 2 and ".parquet or .csv" in done.stderr


class TestTimeline:
    def test_prints_a_table(self):
        done = loglib("timeline", str(INCIDENTS / "post-deploy"), "--tz", "Europe/Berlin")
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert out.startswith("# Timeline: Connection errors for minutes after every deploy")
        assert re.search(
            r"^\| Time \(UTC, 2026-11-22\) \| Time \(Europe/Berlin, 2026-11-22\) \| Event \|", out, re.M
        )
        assert out.count("Deploy 2.3.") == 3 and "Europe/Berlin" in out
        assert "pg/postgresql.log:" in out

    def test_missing_folder(self, tmp_path):
        done = loglib("timeline", str(tmp_path / "nope"))
        assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_timeline_into_a_closed_pipe_is_quiet():
    """`loglib timeline … | head` ends without a traceback when the reader stops early."""
    import subprocess
    import sys

    cmd = f"{sys.executable} -m loglib.cli timeline data/incidents/idle-drops | head -1"
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], cwd=ROOT, capture_output=True, text=True)
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("# ")


def test_kernel_allocator_is_the_users_choice(monkeypatch):
    """Memory (issue 19): loglib sets no allocator options for the kernel (returning freed pages at
    once cost +24 % kernel CPU for 86 MB of peak at 1.1 GB); a user's own setting reaches it."""
    from loglib.report import MALLOC_CONF_ENV, kernel_env

    monkeypatch.delenv(MALLOC_CONF_ENV, raising=False)
    assert MALLOC_CONF_ENV not in kernel_env()
    monkeypatch.setenv(MALLOC_CONF_ENV, "dirty_decay_ms:0,muzzy_decay_ms:0")
    assert kernel_env()[MALLOC_CONF_ENV] == "dirty_decay_ms:0,muzzy_decay_ms:0"


def test_sources_parsed_in_a_child(tmp_path, monkeypatch):
    """Memory (issue 19): ``loglib report`` parses in a child process, which leaves every source in
    the parse cache (and its progress lines here); this process then only loads the reports."""
    from loglib.report import _parse_in_child, check_incident

    cache = tmp_path / "cache"
    monkeypatch.setenv("LOGLIB_CACHE_DIR", str(cache))
    monkeypatch.setenv("LOGLIB_PROGRESS_QUIET_FOR", "0")
    folder = INCIDENTS / "pool-exhaustion"
    lines: list[str] = []
    _parse_in_child(folder, lines.append)
    inc = ll.Incident.load(folder)
    # what a process of its own would have cached (a fresh interpreter: this one may hold reads of
    # this folder from earlier tests in memory, and then caches nothing)
    code = "import sys; from loglib.report import check_incident; check_incident(sys.argv[1], frames=False)"
    env = dict(os.environ, LOGLIB_CACHE_DIR=str(tmp_path / "here"))
    subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(folder)], env=env, check=True)
    assert {p.name for p in cache.iterdir()} == {p.name for p in (tmp_path / "here").iterdir()} != set()
    assert any(line.startswith("  parse: ") for line in lines)
    monkeypatch.setenv("LOGLIB_CACHE_DIR", str(cache))
    before = {p: p.stat().st_mtime_ns for p in cache.glob("*.parquet")}
    reads = check_incident(folder, frames=False).read_reports(frames=False)
    assert reads.keys() == {s.name or s.kind for s in inc.sources}
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.parquet")} == before  # nothing parsed again
