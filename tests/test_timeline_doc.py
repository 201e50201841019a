"""The timeline people paste: Time/Event/Evidence/Action, ≤ 30 rows, read back by real renderers.

timeline.md must be read by a CommonMark + tables parser (markdown-it-py) into exactly the cells of
timeline.csv, the HTML fragment must render as that table in headless Chromium, and
``loglib timeline`` must print timeline.md byte for byte.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from markdown_it import MarkdownIt

import loglib as ll
from tests.browser import chromium_page

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(p for p in (ROOT / "data" / "incidents").iterdir() if (p / "incident.toml").is_file())
#: one lab recording of each shape, development and held-out (never tuned on)
LAB = [ROOT / "data" / "lab" / n for n in ("leak-11", "deploy-20", "idle-33", "mixed-42", "control-51")]
T0 = datetime(2024, 3, 1, 9, 30, 12, tzinfo=UTC)


class _Cells(HTMLParser):
    """Rows of text of every ``<tr>`` (th and td), as a browser would show them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def markdown_cells(text: str) -> list[list[str]]:
    """The table of a Markdown document as a CommonMark + GFM-tables renderer reads it."""
    parser = _Cells()
    parser.feed(MarkdownIt("commonmark").enable("table").render(text))
    return parser.rows


def csv_cells(text: str) -> list[list[str]]:
    """The CSV's cells as text: loglib writes a tag-opening ``<`` as ``&lt;`` (no live markup in any file)
    and puts a ``'`` before a cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR)."""
    rows = csv.reader(io.StringIO(text))
    return [
        [
            re.sub(r"^'(?=[=+\-@\t\r])|&lt;(?=[A-Za-z/!?])", lambda m: "<" if m[0] != "'" else "", c)
            for c in row
        ]
        for row in rows
    ]


@pytest.fixture(scope="module", params=BUNDLED + LAB, ids=lambda p: p.name)
def doc(request) -> ll.TimelineDocument:
    return ll.timeline_document(ll.Incident.load(request.param))


class TestPastesAsItIs:
    def test_markdown_reads_back_as_the_csv(self, doc):
        """markdown-it reads timeline.md into the same cells as timeline.csv, header included."""
        assert markdown_cells(doc.render("md")) == csv_cells(doc.render("csv"))

    def test_about_thirty_rows_with_the_columns_of_a_postmortem(self, doc):
        """At most 30 rows; Time (UTC, with the date when one day), Event, Evidence, Action."""
        assert 0 < doc.table.height <= 30
        assert doc.table.columns[1:] == ["Event", "Evidence", "Action"]
        assert doc.table.columns[0].startswith("Time (UTC")
        assert f"{doc.table.height} rows" in doc.note

    def test_evidence_is_relative_and_short(self, doc):
        """Evidence names a file in the incident folder (never an absolute path) or a short series."""
        for cell in doc.table["Evidence"]:
            assert not cell.startswith("/") and str(ROOT) not in cell
            if cell.startswith("series "):
                assert cell.count("=") <= 1, cell  # the metric and the one label that tells it apart
        assert str(ROOT) not in doc.render("md") + doc.render("html") + doc.render("csv")

    def test_pool_flaps_are_spans(self, doc):
        """No "pool below capacity" rows: each span at capacity is one row with its start–end."""
        events = doc.table["Event"].to_list()
        assert not any("below capacity" in e for e in events)
        for time, event in zip(doc.table[doc.table.columns[0]], events, strict=True):
            if "pool at capacity" in event:
                assert "–" in time


def test_cli_prints_exactly_timeline_md(tmp_path):
    """`loglib timeline` prints the bundle's timeline.md byte for byte (and --format csv its CSV)."""
    inc_dir = ROOT / "data" / "incidents" / "pool-exhaustion"
    bundle = ll.export_bundle(ll.Incident.load(inc_dir), tmp_path / "b", formats=())
    exe = [sys.executable, "-m", "loglib.cli", "timeline", str(inc_dir), "-q"]
    md = subprocess.run(exe, capture_output=True, text=True, check=True).stdout
    assert md == (tmp_path / "b" / "timeline.md").read_text(encoding="utf-8")
    csv_out = subprocess.run([*exe, "--format", "csv"], capture_output=True, text=True, check=True).stdout
    assert csv_out == (tmp_path / "b" / "timeline.csv").read_text(encoding="utf-8")
    assert {"timeline.md", "timeline.html", "timeline.csv", "timeline_full.csv"} <= set(bundle.documents)
    assert all("|" not in line[1:-1].replace("\\|", "") or line.startswith("|") for line in md.splitlines())


def test_html_fragment_renders_as_the_table_in_chromium(tmp_path):
    """Headless Chromium renders the fragment's table with the CSV's cells; styles are inline only."""
    doc = ll.timeline_document(ll.Incident.load(ROOT / "data" / "incidents" / "pool-exhaustion"))
    fragment = doc.render("html")
    assert "<style" not in fragment and "<html" not in fragment and "class=" not in fragment
    page_file = tmp_path / "paste.html"
    page_file.write_text(f'<!DOCTYPE html><meta charset="utf-8"><body>{fragment}</body>', encoding="utf-8")
    with chromium_page(width=1400, height=900) as page:
        page.goto(page_file.as_uri())
        rows = page.eval_on_selector_all(
            "table tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))"
        )
        box = page.eval_on_selector("table", "t => t.getBoundingClientRect().width")
        page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    assert rows == csv_cells(doc.render("csv"))
    assert box <= 1400  # fits a page: no cell runs off the right edge
    assert (tmp_path / "timeline.png").stat().st_size > 10_000


class TestActions:
    def test_action_and_owner_from_incident_toml(self, tmp_path):
        """incident.toml events carry `action` and `owner`; the Action column shows both."""
        src = ROOT / "data" / "incidents" / "pool-exhaustion"
        inc_dir = tmp_path / "inc"
        shutil.copytree(src, inc_dir)
        toml = (inc_dir / "incident.toml").read_text()
        toml += (
            '\n[[events]]\nat = "2026-11-22T00:16:10Z"\nkind = "action"\ntext = "Checkout503s paged"\n'
            'action = "Oncall paged"\nowner = "alice"\n'
        )
        (inc_dir / "incident.toml").write_text(toml)
        table = ll.timeline_table(ll.Incident.load(inc_dir))
        row = table.filter(pl.col("Event") == "Checkout503s paged").row(0, named=True)
        assert row["Action"] == "Oncall paged (owner: alice)" and row["Evidence"] == "incident.toml"

    def test_action_must_be_text(self, tmp_path):
        """A non-text action is refused with where it is."""
        import tomllib

        src = ROOT / "data" / "incidents" / "pool-exhaustion"
        doc = tomllib.loads((src / "incident.toml").read_text())
        doc["events"] = [{"at": "2026-11-22T00:16:10Z", "text": "paged", "action": 3}]
        with pytest.raises(ll.IncidentError, match=r"events\[0\]\.action: expected text, got 3"):
            ll.Incident.from_dict(doc, root=src)


class TestSpansAndWidening:
    @staticmethod
    def flapping_gauge() -> pl.DataFrame:
        """A pool of 2 at capacity for 3 minutes, dropping below it for one 1 s sample in 5."""
        ts = [T0 + timedelta(seconds=s) for s in range(180)]
        vals = [1.0 if s % 5 == 4 else 2.0 for s in range(180)] + [0.0]
        ts.append(T0 + timedelta(seconds=200))
        return pl.DataFrame(
            {
                "ts": ts,
                "metric": "db_pool_checked_out",
                "series": 'db_pool_checked_out{instance="a"}',
                "value": vals,
                "file": "m.json",
            }
        )

    def test_flaps_are_one_span(self):
        """36 one-second flaps below capacity leave one row "pool at capacity (2 min 59 s …)"; 0 s debounce keeps each run."""
        tl = ll.timeline(metrics=self.flapping_gauge(), pool_size=2, max_overflow=0)
        assert tl.height == 1
        row = tl.row(0, named=True)
        # the last dip (at 179 s) ends it; 36 runs of 4 s at capacity
        assert row["what"].startswith("pool at capacity (2 min 59 s; 36 runs, 2 min 24 s in all)")
        assert (row["time"], row["end"]) == (T0, T0 + timedelta(seconds=179))
        each = ll.timeline(metrics=self.flapping_gauge(), pool_size=2, max_overflow=0, debounce="0s")
        assert each.height == 36

    def test_many_bursts_widen_until_thirty_rows(self):
        """80 bursts of errors 90 s apart widen the burst gap until the table fits, and the note says so."""
        ts = [T0 + timedelta(seconds=90 * i + k) for i in range(80) for k in range(3)]
        app = pl.DataFrame(
            {"ts": ts, "error_class": "pool_timeout", "message": "pool exhausted", "file": "a.log"}
        ).with_columns(line=pl.int_range(1, pl.len() + 1))
        doc = ll.timeline_document(app=app)
        assert doc.table.height <= 30
        assert "less than 2 min apart" in doc.note
        full = ll.timeline_document(app=app, full=True)
        assert full.table.height == 80  # every burst (the app log ends with the last one: no recovery row)

    def test_two_days_put_dates_in_cells(self):
        """An incident over midnight UTC has the date in each Time cell and no date in the header."""
        app = pl.DataFrame(
            {
                "ts": [datetime(2024, 3, 1, 23, 59, tzinfo=UTC), datetime(2024, 3, 2, 0, 5, tzinfo=UTC)],
                "error_class": ["pool_timeout", "connection_reset"],
                "message": "x",
                "file": "a.log",
                "line": [1, 2],
            }
        )
        table = ll.timeline_table(app=app, tz="Asia/Tokyo")
        assert table.columns[:2] == ["Time (UTC)", "Time (Asia/Tokyo, 2024-03-02)"]
        assert table.row(0)[:2] == ("2024-03-01 23:59:00", "08:59:00")

    def test_secrets_removed_before_cells_are_cut(self):
        """A password in a long message is redacted whole before the Event cell is shortened."""
        secret = "PGPASSWORD=JJ8X1o9585abcdef"
        app = pl.DataFrame(
            {
                "ts": [T0],
                "error_class": ["pool_timeout"],
                "message": ["x" * 140 + " " + secret + " and more text after the secret"],
                "file": "a.log",
                "line": [1],
            }
        )
        doc = ll.timeline_document(app=app)
        for fmt in ("md", "html", "csv"):
            assert "JJ8X1o" not in doc.render(fmt)

    def test_hostile_text_reads_back_as_text(self):
        """Pipes, HTML, emphasis, dunder names, backticks and entities in log text stay text in Markdown."""
        msg = "a | b <b>x</b> *bold* __init__ `code` &amp; [link](http://e.x) ~~gone~~ _under_ \\ end"
        app = pl.DataFrame(
            {"ts": [T0], "error_class": ["pool_timeout"], "message": [msg], "file": "a.log", "line": [1]}
        )
        doc = ll.timeline_document(app=app)
        cells = markdown_cells(doc.render("md"))
        assert cells == csv_cells(doc.render("csv"))
        assert msg in cells[1][1]

    def test_formula_in_a_log_line_is_not_a_formula_in_the_csv(self, tmp_path):
        """A message starting with ``=HYPERLINK(`` never starts a timeline.csv cell, and in any table
        loglib exports as CSV it is written ``'=HYPERLINK(`` (OWASP CSV injection); numbers stay numbers."""
        msg = '=HYPERLINK("http://evil.example/x","click")'
        app = pl.DataFrame(
            {"ts": [T0], "error_class": ["pool_timeout"], "message": [msg], "file": "a.log", "line": [1]}
        )
        doc = ll.timeline_document(app=app)
        rows = list(csv.reader(io.StringIO(doc.render("csv"))))
        assert not any(c.startswith(("=", "+", "@")) for row in rows for c in row)
        assert any("=HYPERLINK(" in c for c in rows[1])  # quoted inside the Event cell, never its start
        assert markdown_cells(doc.render("md")) == csv_cells(doc.render("csv"))
        out = ll.export_table(pl.DataFrame({"m": [msg, "-3"], "n": [-1, 2]}), tmp_path / "t.csv")
        back = pl.read_csv(out)
        assert back["m"].to_list() == ["'" + msg, "-3"] and back["n"].dtype == pl.Int64

    def test_bad_format(self):
        doc = ll.timeline_document(app=TestSpansAndWidening.flapping_gauge().head(0))
        with pytest.raises(ValueError, match="md, html, csv"):
            doc.render("pdf")
