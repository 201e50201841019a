"""The text formats' timestamp-first fast path gives every row exactly the groups of the whole regex."""

from __future__ import annotations

import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from loglib.formats.app_formats import LINE_FORMATS
from loglib.sources.app._text_fast import regex_groups, split_ts

# lines a fixed-width cut would get wrong: other fraction widths, a zone word after the time, a
# 'Level 5' level, non-ASCII loggers, a bracket missing, tracebacks, the other formats' examples
_EDGES = [
    "2024-03-01 10:00:00,123 UTC INFO a: b",
    "2024-03-01 10:00:00,1234567 INFO a: b",
    "2024-03-01T10:00:00Z GMT ERROR x",
    "2024-03-01 10:00:00,123 Level 5 app: hi",
    "2024-03-01 10:00:00,123 INFO ünï: cødé: ✓",
    "2024-03-01 10:00:00,123 - app.db - ERROR - x - y",
    "[2024-03-01 10:00:00,123] ERROR in app: x",
    "[2024-03-01 10:00:00,123 ERROR in app: x",
    "2024-03-01 10:00:00.123 ERROR [main] a.b.C - x",
    "2024-03-01 10:00:00 +0000 INFO",
    "[2024-03-01 10:00:00 +0000] [7] [CRITICAL] WORKER TIMEOUT (pid:13)",
    "2024/03/01 10:00:00.123456 main.go:4: x",
    "2024-03-01 10:00:00.123 | ERROR    | app.db:connect:42 - checkout failed",
    "Traceback (most recent call last):",
    '  File "/app/db.py", line 41, in load',
    "",
]


def _lines() -> pl.Series:
    rng = random.Random(17)
    base = _EDGES + [f.example for f in LINE_FORMATS]
    mutated = []
    for line in base * 40:
        if line:
            i = rng.randrange(len(line))
            mutated.append(line[:i] + rng.choice(" :,.Z+-[]1aé\t") + line[i + rng.randrange(2) :])
    return pl.Series("text", base + mutated, dtype=pl.String)


@pytest.mark.parametrize("fmt", LINE_FORMATS, ids=lambda f: f"{f.name}-{f.label}")
def test_fast_path_equals_whole_regex(fmt):
    text = _lines()
    want = text.str.extract_groups("^(?P<_m>)" + fmt.regex.removeprefix("^")).struct.unnest()
    assert_frame_equal(regex_groups(fmt.regex, text), want)


@pytest.mark.parametrize("fmt", LINE_FORMATS, ids=lambda f: f"{f.name}-{f.label}")
def test_repeated_prefixes_equal_the_whole_regex(fmt):
    """A log repeats its prefixes (level, logger): their groups are captured once per distinct one and
    looked up for every row, and give every row the whole regex's groups (issue 17)."""
    base = _lines()
    text = pl.concat([base.head(len(_EDGES) + len(LINE_FORMATS))] * 30 + [base.tail(25)])
    want = text.str.extract_groups("^(?P<_m>)" + fmt.regex.removeprefix("^")).struct.unnest()
    assert_frame_equal(regex_groups(fmt.regex, text), want)


def test_uncaptured_matches_the_same_text():
    """Groups made non-capturing leave the match alone: classes, escapes and lookalikes kept (issue 17)."""
    from loglib.sources.app._text_fast import uncaptured

    assert uncaptured(r"^(?P<a>x)(y|\(z)[(?P<b>](?:w)") == r"^(?:x)(?:y|\(z)[(?P<b>](?:w)"
    for fmt in LINE_FORMATS:
        text = _lines()
        assert_frame_equal(
            text.str.extract(uncaptured(fmt.regex), 0).to_frame(), text.str.extract(fmt.regex, 0).to_frame()
        )


def test_python_logging_takes_the_fast_path():
    """The formats the benchmark and most logs use are split (else the test above proves nothing new)."""
    split = [f for f in LINE_FORMATS if split_ts(f.regex) is not None]
    assert {"python", "loguru", "java", "go", "gunicorn"} <= {f.name for f in split}
    py = next(f for f in LINE_FORMATS if f.label == "level name:")
    assert split_ts(py.regex).rest.startswith(" (?P<level>")


def test_exc_chains_equal_the_expression():
    """exc_chains (each language's chain on its own rows) gives exc_chain_expr's lists, row for row (issue 17)."""
    from loglib.formats.app_formats import exc_chain_expr, exc_chains

    texts = [
        'Traceback (most recent call last):\n  File "a.py", line 1, in f\n    g()\nValueError: bad',
        "psycopg.OperationalError: refused\n\nThe above exception was the direct cause of the following exception:"
        '\n\nTraceback (most recent call last):\n  File "b.py", line 2\nsqlalchemy.exc.OperationalError: x',
        "java.sql.SQLTransientConnectionException: timed out\n\tat com.zaxxer.Pool.get(Pool.java:1)\n"
        "Caused by: java.net.ConnectException: refused\n\tat x.y(Z.java:2)",
        "Error: connect ECONNREFUSED\n    at TCPConnectWrap.afterConnect (net.js:1)",
        "[object] (Illuminate\\\\Database\\\\QueryException(code: 7): SQLSTATE[08006] at /app/x.php:1)",
        "ActiveRecord::ConnectionTimeoutError (could not obtain a connection):\n  app/x.rb:1",
        "just text",
        "",
        None,
    ]
    rng = random.Random(17)
    mixed = [rng.choice(texts) for _ in range(300)]
    for sample in (texts, mixed, [None], ["x"]):
        s = pl.Series("traceback", sample, dtype=pl.String)
        assert_frame_equal(exc_chains(s).to_frame(), pl.select(exc_chain_expr(pl.lit(s)).alias("traceback")))
