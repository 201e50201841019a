"""Sniffing a JSON-lines sample: the line formats that cannot match a line starting with ``{`` are
told so from their pattern's parse, not by compiling and running them (issue 17)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from loglib.formats import app_formats
from loglib.formats.app_formats import LINE_FORMATS, python_format, sniff
from loglib.formats.regex_head import never_at_brace

JSON_LINES = [
    json.dumps({"level": "info", "time": 1709287200 + i, "msg": f"GET /x/{i} 200"}) for i in range(50)
]
#: lines starting with ``{`` that are not all JSON: each pattern said to exclude ``{`` must match none
BRACE_LINES = [
    "{",
    "{}",
    '{"a": 1}',
    "{ [INFO] x",
    "{2024-03-01 10:00:00,120 INFO app: x",
    "{\tE, [2024-03-01T10:00:00.000 #1]",
    "{level=info msg=x",
    "{INFO: x",
]
#: patterns of every head shape the parse knows, with whether they exclude ``{``
TRICKY = {
    r"^\[?\{": False,
    r"^(?:a|b)?\{": False,
    r"^(?:a|b)?c": True,
    r"^a*": False,
    r"^(?:x|)\{": False,
    r"^(?:x|)y": True,
    r"^[\w-]+": True,
    r"^[^\w]": False,
    r"^[^{]": True,
    r"^\s*\{": False,
    r"^\s*a": True,
    r"^.": False,
    r"\[x": False,
    r"^[[:punct:]]": False,
    r"^[a-z--b]": False,
    r"^(?i:info)": True,
    r"^\D": False,
    r"^[!-~]": False,
    r"^(?:INFO|\{)": False,
    r"^INFO|^\{": False,
    r"^INFO|^WARN": True,
    r"^INFO|WARN": False,
}


@pytest.mark.parametrize("pattern", [*TRICKY, *(f.regex for f in LINE_FORMATS)])
def test_an_excluding_pattern_matches_no_brace_line(pattern: str) -> None:
    excludes = never_at_brace(pattern)
    if pattern in TRICKY:
        assert excludes == TRICKY[pattern]
    if excludes:
        assert not pl.Series(BRACE_LINES).str.contains(pattern).any()


def test_json_sample_runs_no_line_format_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every built-in line format starts with something else than ``{``: a JSON sample is
    sniffed without running any of their regexes, with the answer of running them all."""
    ran: list[str] = []
    real = app_formats._regex_mask

    def spy(sample: pl.Series, regex: str) -> pl.Series:
        ran.append(regex)
        return real(sample, regex)

    monkeypatch.setattr(app_formats, "_regex_mask", spy)
    quick = sniff(JSON_LINES)
    assert ran == []
    assert quick is not None and quick.formats == ["json"]
    monkeypatch.setattr(app_formats, "never_at_brace", lambda pattern: False)
    assert sniff(JSON_LINES) == quick
    assert len(ran) == len(LINE_FORMATS)


def test_a_pattern_that_may_start_with_a_brace_still_runs() -> None:
    """A ``pattern=`` format reading the whole line matches JSON lines too: it is still run."""
    whole = python_format("%(message)s")
    assert not never_at_brace(whole.regex)
    found = sniff(JSON_LINES, [whole])
    assert found is not None and found.formats == [whole]
    mixed = sniff([*JSON_LINES, "2024-03-01 10:00:00,120 INFO app.web: up"])
    assert mixed is not None and mixed.formats == ["json"]
