"""The ts-first fast path of a text format's regex: the timestamp stripped by one search, the rest matched apart.

A regex's capture engine is slow on a long, branchy timestamp group. The leading timestamp is
cut off with a plain search instead (``str.replace``), the rest of the regex captures its groups
from there, and the message is the text after the matched prefix. A row the pieces do not
match (a traceback line, an odd timestamp) takes the whole regex: every row gets exactly the
groups the whole regex gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

_MESSAGE_TAIL = "(?P<message>.*)$"


@dataclass(frozen=True)
class _Split:
    """``^LEAD(?P<ts>TS)REST``: LEAD a plain literal, TS free of named groups."""

    lead: str
    ts: str
    rest: str
    names: tuple[str, ...]


def _group_end(regex: str, start: int) -> int | None:
    """Index just past the group opening at ``regex[start] == '('`` (escapes and classes skipped)."""
    depth, i, in_class = 0, start, False
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if regex[i + 1 : i + 2] == "]":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


@lru_cache(maxsize=64)
def split_ts(regex: str) -> _Split | None:
    """The pieces of ``regex`` when it starts with a literal and a ``ts`` group, else None.

    >>> s = split_ts(r"^\\[(?P<ts>\\d{4}-\\d\\d)\\] (?P<level>[A-Z]+) (?P<message>.*)$")
    >>> (s.lead, s.ts, s.rest)
    ('[', '\\\\d{4}-\\\\d\\\\d', '\\\\] (?P<level>[A-Z]+) ')
    """
    m = re.match(r"^\^((?:\\[\[\]()])*)\(\?P<ts>", regex)
    if m is None or not regex.endswith(_MESSAGE_TAIL):
        return None
    end = _group_end(regex, m.end(1))
    if end is None:
        return None
    ts = regex[m.end() : end - 1]
    rest = regex[end : -len(_MESSAGE_TAIL)]
    if "(?P<" in ts or "(?P<message>" in rest or "$" in rest.replace("\\$", ""):
        return None
    names = tuple(re.findall(r"\(\?P<(\w+)>", rest))
    return _Split(m.group(1).replace("\\", ""), ts, rest, names)


def regex_groups(regex: str, text: pl.Series) -> pl.DataFrame:
    """``text.str.extract_groups`` of ``^(?P<_m>)`` + ``regex``, unnested: the same columns and
    values, the timestamp cut off first where the regex allows (:func:`split_ts`).

    >>> t = pl.Series(["2024-03-01 10:00:00,123 ERROR db: down", "  File x", "2024-03-01 10:00:01 INFO a: ok"])
    >>> regex_groups(r"^(?P<ts>[\\d:, -]+?) (?P<level>[A-Z]+) (?P<logger>\\S*?): (?P<message>.*)$", t).rows()
    [('', '2024-03-01 10:00:00,123', 'ERROR', 'db', 'down'), (None, None, None, None, None), ('', '2024-03-01 10:00:01', 'INFO', 'a', 'ok')]
    """
    full = "^(?P<_m>)" + regex.removeprefix("^")
    split = split_ts(regex)
    if split is None or text.len() == 0:
        return text.str.extract_groups(full).struct.unnest()
    sub = text.str.slice(len(split.lead)) if split.lead else text
    after = sub.str.replace("^(?:" + split.ts + ")", "")
    ts_len = sub.str.len_chars() - after.str.len_chars()
    pre = after.str.extract_groups("^(?P<_pre>" + split.rest + ")").struct.unnest()
    pre_len = pre["_pre"].str.len_chars()
    ok = pre_len.is_not_null() & (ts_len > 0)
    if split.lead:
        ok = ok & text.str.starts_with(split.lead)
    cols = {
        "_m": pl.repeat("", text.len(), eager=True, dtype=pl.String),
        "ts": pl.select(pl.lit(sub).str.head(pl.lit(ts_len))).to_series(),
        **{name: pre[name] for name in split.names},
        "message": pl.select(pl.lit(after).str.slice(pl.lit(pre_len))).to_series(),
    }
    bad = (~ok.fill_null(False)).arg_true()
    slow = text.gather(bad).str.extract_groups(full).struct.unnest() if bad.len() else None
    order = ["_m", *re.findall(r"\(\?P<(\w+)>", regex)]
    out = []
    for name in order:
        col = cols[name].alias(name)
        if slow is not None:
            col = col.scatter(bad, slow[name])
        out.append(col)
    return pl.DataFrame(out)
