"""The fast split of a stderr line's head (lead regex, tail matched once per distinct value) reads
exactly what the prefix's own regexes read, line by line, on heads built to trip it: free-text
fields holding ``': '`` or ``'@'``, a message holding another ``SEVERITY: ``, no zone, offset and
long zones, non-ASCII names, one to three spaces after the colon, bad pids and times."""

from __future__ import annotations

import re

import polars as pl
import pytest

from loglib.formats.pg_prefix import compile_prefix
from loglib.sources.postgres._lines import _continuation_series, _parse_prefixed

TS = "2024-03-01 10:00:00.123"
HEADS = {
    "%m [%p] %q%u@%d ": [
        f"{TS} UTC [42] app@shop LOG:  connection authorized: user=app database=shop",
        f"{TS} UTC [42] LOG:  checkpoint starting: time",
        f"{TS} UTC [42] a: b@db LOG:  user holding ': '",
        f"{TS} UTC [42] LOG: x@db LOG:  a message holding a head",
        f"{TS} UTC [42] LOG:  a message with ERROR:  inside",
        f"{TS} UTC [42] app@shop ERROR: x LOG:  two severities",
        f"{TS} [42] LOG:  no zone",
        f"{TS} UTC [42] jürgen@bäckerei LOG:  non-ASCII names é",
        f"{TS} UTC [42] app@shop LOG:   three spaces",
        f"{TS} UTC [42] app@shop LOG: one space",
        f"{TS} UTC [42] app@shop LOG:",
        f"{TS} UTC [42] app@shop LOG:  ",
        f"{TS} +05:30 [42] LOG:  offset zone",
        f"{TS} America/New_York [42] LOG:  long zone",
        f"{TS} UTC [42] @ LOG:  empty user and database",
        f"{TS} UTC [42] [unknown]@[unknown] LOG:  connection received: host=[local]",
        f"{TS} UTC [42] app@sh op LOG:  database with a space",
        f"{TS} UTC [42] a@b@c LOG:  two at signs",
        f"{TS} UTC [42] app@shop DEBUG1:  debug",
        f"{TS} UTC [42] app@shop FEHLER:  not an English severity",
        f"{TS} UTC [4x2] LOG:  bad pid",
        f"{TS}4 UTC [42] LOG:  four fraction digits",
        f"{TS} UTC [42] app@shop LOG:  message: with: colons: and LOG: x",
        "not a log line",
        "",
        "\tcontinuation",
    ],
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ": [
        "2024-03-01 10:00:00 UTC [42]: [3-1] user=app,db=shop,app=psql,client=10.0.0.1 LOG:  x",
        "2024-03-01 10:00:00 UTC [42]: [3-1] user=,db=,app=,client= LOG:  empty fields",
        "2024-03-01 10:00:00 UTC [42]: [3-1] user=app,db=shop,app=my: app,client=10.0.0.1 LOG:  app holding ': '",
        "2024-03-01 10:00:00 UTC [42]: [3-1] user=a,b,db=shop,app=psql,client=h LOG:  user holding ','",
        "2024-03-01 10:00:00 UTC [42]: [3-1] LOG:  no session part",
        "2024-03-01 10:00:00 UTC [42]: [x-1] user=app,db=shop,app=psql,client=h LOG:  bad line number",
    ],
}


def _expected(compiled, line: str, continuation: bool) -> dict:
    """What the fast regex reads (the exact one for a non-continuation line it misses), as ``re`` reads it."""
    m = re.match(compiled.fast_regex, line)
    if m is not None:
        got = {g: m[g] for g in compiled.groups if g in m.re.groupindex}
        got["message"] = line[m.end("_head") :]
    elif not continuation and (m := re.match(compiled.regex, line)) is not None:
        got = m.groupdict()
    else:
        got = {g: None for g in compiled.groups}
    for name, width in (("ts_m", 23), ("ts_t", 19)):
        if name in got:
            stamp = got.pop(name)
            got["ts_text"] = None if stamp is None else stamp[:width]
            got["zone"] = None if stamp is None else stamp[width + 1 :] or None
    return got


@pytest.mark.parametrize("prefix", sorted(HEADS))
def test_the_fast_split_reads_what_the_regexes_read(prefix):
    compiled = compile_prefix(prefix)
    assert compiled.lead_regex is not None  # the fast way is the one under test
    lines = HEADS[prefix] * 3  # repeated tails: each distinct tail is matched once for all its rows
    frame = pl.DataFrame({"line": range(len(lines)), "text": lines})
    cont = _continuation_series(frame["text"]).to_list()
    got = _parse_prefixed(frame, compiled, "stderr").to_dicts()
    for row, line, is_cont in zip(got, lines, cont, strict=True):
        expected = _expected(compiled, line, is_cont)
        assert {k: row[k] for k in expected} == expected, line


def test_prefixes_whose_tail_prints_a_colon_have_no_fast_split():
    """The tail is cut at the first ': ': a tail that prints ':' itself (RDS) keeps the regex way."""
    assert compile_prefix("%t:%r:%u@%d:[%p]:").lead_regex is None
    assert compile_prefix(" %m [%p] ").lead_regex is None  # a continuation could start the lead


@pytest.mark.parametrize("prefix", sorted(HEADS))
def test_the_fast_split_adds_only_the_prefix_fields(prefix):
    """The lead's helper groups (the ``%l`` digits, the tail) are not left in the parsed frame."""
    compiled = compile_prefix(prefix)
    frame = pl.DataFrame({"line": range(len(HEADS[prefix])), "text": HEADS[prefix]})
    added = set(_parse_prefixed(frame, compiled, "stderr").columns) - {"line", "text"}
    assert added == (set(compiled.groups) - {"ts_m", "ts_t"}) | {"ts_text", "zone"}
