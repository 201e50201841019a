"""Export: PNG/SVG files that are valid images, offline HTML that renders, Markdown, one browser, clear errors."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.present import _browser as browser_module
from loglib.present import export
from loglib.present.export import BrowserNotFoundError, BrowserSession, find_browser
from tests.conftest import FILES, ROOT, require

POOL_LEAK = FILES / "incidents" / "pool-leak"


def _browser() -> str | None:
    try:
        return find_browser()
    except BrowserNotFoundError:
        return None


@pytest.fixture(scope="module")
def session():
    """One shared kaleido browser for the whole module (as exports share one in a process)."""
    require(_browser() is not None, "Chrome/Chromium (apt-get install chromium)")
    s = export.browser_session()
    yield s
    export.close_browser()


@pytest.fixture(scope="module")
def inc():
    return ll.Incident.load(POOL_LEAK)


@pytest.fixture(scope="module")
def figs(inc):
    return {
        "overview": ll.charts.overview(inc),
        "errors": ll.charts.error_rate(inc, threshold=3),
        "pool": ll.charts.pool_utilisation(inc),
        "db": ll.charts.db_connections(inc),
        "sessions": ll.charts.session_durations(inc),
        "leaks": ll.charts.leak_rate(inc, every="10s"),
    }


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
    return struct.unpack(">II", head[16:24])


class TestTargets:
    def test_default_suffix(self, tmp_path):
        """A path without suffix gets .md for tables (and .png for figures)."""
        path = ll.export_table(pl.DataFrame({"a": [1]}), tmp_path / "t")
        assert path.suffix == ".md" and path.exists()
        assert export._format_of(Path("chart"), None, export.FIGURE_FORMATS, {}, "png")[0].name == "chart.png"

    def test_unknown_extension_lists_supported(self, tmp_path):
        """An unknown extension is refused before anything is written, naming the supported ones."""
        with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf, \.html"):
            ll.export_figure(
                ll.charts.error_rate(
                    pl.DataFrame(
                        {"ts": [], "error_class": []},
                        schema={"ts": pl.Datetime("us", "UTC"), "error_class": pl.String},
                    )
                ),
                tmp_path / "x.gif",
            )
        with pytest.raises(ValueError, match=r"\.md, \.html, \.csv"):
            ll.export_table(pl.DataFrame({"a": [1]}), tmp_path / "x.xlsx")
        assert not list(tmp_path.iterdir())

    def test_unknown_format_argument(self, tmp_path):
        """format= is checked too."""
        with pytest.raises(ValueError, match="format='docx'"):
            ll.export_table(pl.DataFrame({"a": [1]}), tmp_path / "x", format="docx")


class TestTables:
    def test_markdown_csv_html(self, tmp_path):
        """Markdown (GitHub table), CSV (readable back, tags from the data as text) and HTML (escaped)."""
        df = pl.DataFrame({"event": ["a|b", "<script>", "wait < 5 s"], "count": [3, 4, 5]})
        md = ll.export_table(df, tmp_path / "t.md").read_text().splitlines()
        assert md[0] == "| event | count |" and md[1] == "| --- | ---: |" and md[2] == "| a\\|b | 3 |"
        back = pl.read_csv(ll.export_table(df, tmp_path / "t.csv"))
        assert back["event"].to_list() == ["a|b", "&lt;script>", "wait < 5 s"]
        assert back["count"].to_list() == [3, 4, 5]
        html = ll.export_table(df, tmp_path / "t.html").read_text()
        assert "&lt;script&gt;" in html and "<script>" not in html


class TestBrowser:
    def test_bad_browser_variable_is_a_clear_error(self, monkeypatch):
        """LOGLIB_BROWSER pointing nowhere fails at once with the install line."""
        monkeypatch.setenv("LOGLIB_BROWSER", "/nonexistent/chrome")
        with pytest.raises(BrowserNotFoundError, match="apt-get install chromium"):
            find_browser()

    def test_no_browser_anywhere(self, monkeypatch, tmp_path):
        """With no browser on PATH or in the usual places, the error says how to install one."""
        monkeypatch.delenv("LOGLIB_BROWSER", raising=False)
        monkeypatch.delenv("BROWSER_PATH", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setattr(browser_module, "_WELL_KNOWN", ())
        with pytest.raises(BrowserNotFoundError, match="apt-get install chromium"):
            find_browser()

    def test_png_export_without_browser_fails_fast(self, tmp_path):
        """A PNG export in a process whose browser is missing fails quickly, never hangs."""
        code = (
            "import loglib as ll, polars as pl\n"
            "fig = ll.charts.error_rate(pl.DataFrame({'ts': [], 'error_class': []},"
            " schema={'ts': pl.Datetime('us', 'UTC'), 'error_class': pl.String}))\n"
            f"ll.export_figure(fig, {str(tmp_path / 'x.png')!r})\n"
        )
        env = {**os.environ, "LOGLIB_BROWSER": "/nonexistent/chromium"}
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0
        assert "BrowserNotFoundError" in done.stderr and "apt-get install chromium" in done.stderr
        assert time.monotonic() - start < 30


class TestImages:
    def test_png_and_svg_are_valid(self, session, figs, tmp_path):
        """PNGs have the PNG signature and 2× the layout size; SVGs are SVG documents with the plot."""
        written = ll.export_figures(figs, tmp_path, formats=("png", "svg"))
        assert len(written) == 2 * len(figs)
        for name, fig in figs.items():
            png = tmp_path / f"{name}.png"
            w, h = png_size(png)
            assert (w, h) == (
                2 * export._layout_size(fig, "width", 0),
                2 * export._layout_size(fig, "height", 0),
            )
            assert w == 2000
            assert png.stat().st_size > 20_000
            svg = (tmp_path / f"{name}.svg").read_text()
            assert svg.startswith("<svg") and 'class="main-svg"' in svg and svg.rstrip().endswith("</svg>")
            assert "trace" in svg

    def test_one_browser_for_many_figures(self, session, figs, tmp_path):
        """Exporting many figures starts no new browser (one session serves them all)."""
        before = BrowserSession.starts
        for i in range(3):
            ll.export_figures(figs, tmp_path / str(i), formats=("png",))
        assert BrowserSession.starts == before
        assert session.is_open

    def test_single_export_reuses_the_session(self, session, figs, tmp_path):
        """export_figure on its own uses the shared browser too, and adds .png when there is no suffix."""
        before = BrowserSession.starts
        path = ll.export_figure(figs["errors"], tmp_path / "errors")
        assert path.name == "errors.png" and png_size(path)[0] == 2000
        assert BrowserSession.starts == before


class TestDeferred:
    def test_queued_images_drawn_later_are_the_same_images(self, session, figs, tmp_path):
        """With ``defer`` the images are only queued (HTML written at once); drawn later in another
        browser they are the PNGs a direct export writes, byte for byte (issue 19)."""
        from loglib.present._deferred import draw_queued, queued_count

        direct = ll.export_figures(figs, tmp_path / "direct", formats=("png", "html"))
        queued = ll.export_figures(figs, tmp_path / "later", formats=("png", "html"), defer=tmp_path / "q")
        assert [p.name for p in queued] == [p.name for p in direct]
        assert not list((tmp_path / "later").glob("*.png"))
        assert sorted(p.name for p in (tmp_path / "later").glob("*.html")) == sorted(
            f"{n}.html" for n in figs
        )
        assert queued_count(tmp_path / "q") == len(figs)
        drawn = draw_queued(tmp_path / "q")
        assert sorted(drawn) == sorted(p for p in queued if p.suffix == ".png")
        for p in drawn:
            assert p.read_bytes() == (tmp_path / "direct" / p.name).read_bytes()

    def test_nothing_queued_draws_nothing(self, tmp_path):
        """An empty or missing queue draws nothing and starts no browser."""
        from loglib.present._deferred import draw_queued, queued_count

        before = BrowserSession.starts
        assert draw_queued(tmp_path / "none") == [] and queued_count(tmp_path / "none") == 0
        assert BrowserSession.starts == before


class TestHtml:
    def test_self_contained(self, figs, tmp_path):
        """HTML inlines plotly.js: no script is loaded from anywhere (works offline)."""
        html = ll.export_figure(figs["overview"], tmp_path / "o.html").read_text()
        assert not re.search(r"<script[^>]+src=", html)
        assert not re.search(r"<link[^>]+href=\"?https?:", html)
        assert len(html) > 3_000_000

    def test_renders_offline_in_headless_chromium(self, figs, tmp_path):
        """Headless Chromium, with networking off, renders the file's plot as SVG."""
        browser = _browser()
        require(browser is not None, "Chrome/Chromium (apt-get install chromium)")
        path = ll.export_figure(figs["errors"], tmp_path / "e.html")
        with tempfile.TemporaryDirectory() as profile:
            cmd = [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",  # any network request fails
                "--virtual-time-budget=10000", "--dump-dom", path.as_uri(),
            ]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        dom = done.stdout
        assert 'class="main-svg"' in dom, done.stderr[-2000:]
        assert "Connection errors by class" in dom
        assert 'class="trace bars"' in dom


class TestBundle:
    def test_bundle(self, session, inc, tmp_path):
        """export_bundle writes every chart (PNG + SVG), timeline, findings and a summary that links them."""
        bundle = ll.export_bundle(inc, tmp_path / "b", tz="Europe/Berlin")
        out = tmp_path / "b"
        for name in ("overview", "error_rate", "pool_utilisation", "db_connections", "session_durations"):
            assert (out / "charts" / f"{name}.png").exists() and (out / "charts" / f"{name}.svg").exists()
        for doc in ("timeline.md", "findings.md", "summary.md"):
            assert (out / doc).exists()
        summary = (out / "summary.md").read_text()
        links = re.findall(r"\]\(([^)]+)\)", summary)
        assert "charts/overview.png" in links and "timeline.md" in links and "findings.md" in links
        assert all((out / link).exists() for link in links)
        assert "Europe/Berlin" in (out / "timeline.md").read_text()
        assert "pool ran out of connections" in (out / "findings.md").read_text()
        assert set(bundle.files) >= {out / "summary.md"}

    def test_bundle_redacts_hosts_consistently(self, session, tmp_path):
        """hosts=True pseudonymises addresses the same way in every file of the bundle.

        On the bundled pool-exhaustion the default bundle names 127.0.0.1 (its metrics' instance label
        in the timeline); pool-leak's no longer does since its before/after table, which named it,
        needs a declared fix."""
        inc = ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion")

        def text(out):
            return "".join(p.read_text() for p in out.rglob("*") if p.suffix in (".md", ".svg", ".csv"))

        ll.export_bundle(inc, tmp_path / "plain", formats=("svg",))
        assert "127.0.0.1" in text(tmp_path / "plain")  # the address is there to be pseudonymised
        ll.export_bundle(inc, tmp_path / "h", hosts=True, formats=("svg",))
        hidden = text(tmp_path / "h")
        assert "127.0.0.1" not in hidden
        assert "client-1" in hidden


def test_browser_is_debian_chromium_here():
    """Where Debian's chromium is installed, loglib finds it without any setting."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed")
    env_free = {k: v for k, v in os.environ.items() if k not in ("LOGLIB_BROWSER", "BROWSER_PATH")}
    code = "from loglib.present.export import find_browser; print(find_browser())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env_free, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == shutil.which("chromium")
