"""Secrets and markup planted in every source of an incident never reach a file a report writes.

One secret of each kind (tests/secrets_corpus.py) goes into the app log, the PostgreSQL log, a
Prometheus label, and incident.toml's title, description and event notes; markup that would run
goes into the same places. ``build_report`` runs twice, redacted (the default) and with
``redact=False``: every secret must be exposed somewhere by the unredacted run (so the test sees
every path a secret can take) and found nowhere, whole or as any 8-character window, in any file
of the redacted run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loglib.present.redact import Redactor
from tests.secrets_corpus import CORPUS, KINDS
from tests.test_report import _has_browser

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "incidents" / "pool-exhaustion"
MARKUP = [
    "<img src=x onerror=\"window.__pwned='img'\">",
    "<script>window.__pwned='script'</script>",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
]


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def plant(folder: Path) -> None:
    """Copy the bundled leak incident into ``folder`` with the corpus and the markup planted."""
    shutil.copytree(SOURCE, folder)
    toml = (folder / "incident.toml").read_text()
    lines = toml.splitlines()
    lines = [ln for ln in lines if not ln.startswith("title =")]
    head = [
        "title = " + _toml_str(f"Checkout 503s {MARKUP[0]} {CORPUS[2].text}"),
        "description = " + _toml_str(f"Leak {MARKUP[1]} {CORPUS[0].text} {CORPUS[-1].text}"),
    ]
    events = []
    for i, secret in enumerate([*CORPUS, *MARKUP]):
        text = secret.text if hasattr(secret, "text") else secret
        events += [
            "",
            "[[events]]",
            f'at = "2026-11-22T00:15:{i % 60:02d}Z"',
            'kind = "note"',
            "text = " + _toml_str(text),
        ]
    (folder / "incident.toml").write_text("\n".join(head + lines + events) + "\n")

    app = next((folder / "app").glob("*.log"))
    with app.open("a") as f:
        for i, secret in enumerate([*CORPUS, *MARKUP]):
            text = (secret.text if hasattr(secret, "text") else secret).replace("\n", " ")
            f.write(f"2026-11-22 00:21:05,{i:03d} ERROR checkout.api [MainThread] POST /pay failed: {text}\n")
    pg = folder / "pg" / "postgresql.log"
    with pg.open("a") as f:
        for i, secret in enumerate(CORPUS[:12]):
            f.write(
                f"2026-11-22 00:21:05.{i:03d} UTC [31337] checkout@shop ERROR:  bad input: {secret.text}\n"
            )
        f.write("2026-11-22 00:21:05.900 UTC [31337] checkout@shop LOG:  statement: " + CORPUS[6].text + "\n")
    prom = json.loads((folder / "prometheus" / "pg_up.json").read_text())
    labels = prom["data"]["result"][0]["metric"]
    labels["dsn"] = CORPUS[0].text
    labels["note"] = CORPUS[18].text
    (folder / "prometheus" / "pg_up.json").write_text(json.dumps(prom))


def _texts(out: Path) -> dict[str, str]:
    """Every text file a run wrote (PNG pixels are not searched: their text comes from the same
    figures as the SVGs, which are)."""
    found = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.suffix != ".png":
            found[str(path.relative_to(out))] = path.read_text(encoding="utf-8", errors="replace")
    return found


def _holders(secret, files: dict[str, str]) -> list[str]:
    return [name for name, text in files.items() if any(f in text for f in secret.fragments())]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from loglib.report import build_report

    base = tmp_path_factory.mktemp("secrets")
    plant(base / "incident")
    build_report(base / "incident", base / "redacted")
    build_report(base / "incident", base / "raw", redact=False)
    return base


def test_every_secret_has_a_way_out_without_redaction(runs):
    """The planting is real: with redact=False each kind reaches some output file."""
    raw = _texts(runs / "raw")
    unexposed = [s.kind for s in CORPUS if not _holders(s, raw)]
    assert unexposed == []
    assert "Secrets NOT redacted" in raw["report.html"]


@pytest.mark.parametrize("kind", KINDS)
def test_no_output_file_holds_a_secret(runs, kind):
    files = _texts(runs / "redacted")
    secret = next(s for s in CORPUS if s.kind == kind)
    assert _holders(secret, files) == []


def test_report_says_it_was_redacted(runs):
    html = (runs / "redacted" / "report.html").read_text()
    assert "Secrets redacted" in html
    assert "[REDACTED]" in html


def test_no_markup_from_the_data_in_markdown(runs):
    for name in ("summary.md", "findings.md", "timeline.md"):
        path = runs / "redacted" / name
        if path.exists():
            text = path.read_text()
            assert "<img" not in text and "<script" not in text and "<svg" not in text, name


#: what each planted tag looks like once it is text (``&lt;``), and live
_AS_TEXT = [m.replace("<", "&lt;", 1) for m in MARKUP]
_LIVE = ["<img src=x", "<script>window", "<svg onload"]


@pytest.mark.parametrize("which", ["redacted", "raw"])
def test_no_markup_from_the_data_in_any_file(runs, which):
    """Every file but report.html (checked in its DOM below) holds the planted tags only as text:
    report.ipynb's text/plain, streams and figure JSON, timeline.csv, the chart SVGs, the
    Markdown; with and without redaction. The tags did reach the files (as text)."""
    files = _texts(runs / which)
    live = {name: [t for t in _LIVE if t in text] for name, text in files.items() if name != "report.html"}
    assert {k: v for k, v in live.items() if v} == {}
    as_text = [name for name, text in files.items() if any(t[:12] in text for t in _AS_TEXT)]
    assert "report.ipynb" in as_text and "timeline.csv" in as_text


def test_notebook_outputs_hold_no_markup(runs):
    """Output by output in report.ipynb: no mime type but text/html (escaped by design) holds a
    planted tag; the figures' JSON holds their text as entities, which plotly shows as ``<``."""
    nb = json.loads((runs / "redacted" / "report.ipynb").read_text())
    seen = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {"stream": out.get("text", "")})
            for mime, value in data.items():
                text = (
                    value
                    if isinstance(value, str)
                    else json.dumps(value)
                    if mime.endswith("json")
                    else "".join(value)
                )
                if mime != "text/html":
                    assert not [t for t in _LIVE if t in text], mime
                if mime.endswith("plotly.v1+json") and "&lt;img src=x" in text:
                    seen.append(mime)
    assert seen, "the planted note should be in a figure, as text"


def test_no_element_from_the_data_runs_in_the_report(runs):
    """In headless Chromium: the report's DOM has no element the data carried, and nothing ran."""
    if not _has_browser():
        pytest.skip("Chromium")
    from tests.browser import chromium_page, offline

    for which in ("redacted", "raw"):
        with chromium_page() as page:
            offline(page)
            page.goto((runs / which / "report.html").as_uri(), wait_until="load")
            page.wait_for_timeout(500)
            assert page.evaluate("window.__pwned === undefined"), which
            assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0, which
            planted = page.evaluate(
                "[...document.scripts].some(s => s.textContent.trim() === \"window.__pwned='script'\")"
            )
            assert not planted, which


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22 00:21:04.917 UTC [26027] checkout@shop LOG:  disconnection: session time: 0:01:23.308 "
        "user=checkout database=shop host=127.0.0.1 port=50220",
        "connection authorized: user=app database=shop application_name=psql",
        "bypass=true compass: north ping: 3ms tokens=5 key (id)=(7) already exists",
        "request 1732234328123 took 1234.567 ms; pid 31337; order 4111-1111-1111-1112",
        "POST /checkout 503 Service Unavailable in 2.003s",
    ],
)
def test_ordinary_log_text_is_left_alone(text):
    assert Redactor().text(text) == text


def test_loglib_parse_redacts_when_asked(tmp_path):
    import polars as pl

    from loglib.cli import main

    log = tmp_path / "app.log"
    log.write_text(
        "".join(f"2026-11-22 00:21:05,{i:03d} ERROR api [x] {s.text}\n" for i, s in enumerate(CORPUS[:20]))
    )
    for flag, expect_clean in (("--redact", True), (None, False)):
        out = tmp_path / ("clean.parquet" if flag else "raw.parquet")
        args = [
            "parse",
            "app",
            str(log),
            "--out",
            str(out),
            "-q",
            "--tz",
            "UTC",
            "--pattern",
            "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s",
        ]
        assert main([*args, flag] if flag else args) == 0
        text = "\n".join(pl.read_parquet(out)["message"].to_list())
        leaked = [s.kind for s in CORPUS[:20] if _holders(s, {"out": text})]
        assert (leaked == []) is expect_clean
