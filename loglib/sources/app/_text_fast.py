"""The ts-first fast path of a text format's regex: the timestamp stripped by one search, the rest matched apart.

A regex's capture engine is slow on a long, branchy timestamp group. The leading timestamp is
cut off with a plain search instead (``str.replace``), the rest of the regex captures its groups
from there, and the message is the text after the matched prefix. A row the pieces do not
match (a traceback line, an odd timestamp) takes the whole regex: every row gets exactly the
groups the whole regex gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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


def _tokens(regex: str) -> Iterator[tuple[int, str, bool]]:
    """``(position, token, in a class)`` for each escape (two characters), ``[]`` that opens a
    class, or other character of ``regex``.

    >>> [t for _, t, c in _tokens(r"a\\([)]") if not c]
    ['a', '\\\\(']
    """
    i, in_class = 0, False
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            yield i, regex[i : i + 2], in_class
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            yield i, ch, True
        elif ch == "[":
            in_class = True
            tok = "[]" if regex[i + 1 : i + 2] == "]" else "["
            yield i, tok, True
            i += len(tok) - 1
        else:
            yield i, ch, False
        i += 1


def _group_end(regex: str, start: int) -> int | None:
    """Index just past the group opening at ``regex[start] == '('`` (escapes and classes skipped)."""
    depth = 0
    for i, tok, in_class in _tokens(regex[start:]):
        if in_class:
            continue
        depth += {"(": 1, ")": -1}.get(tok, 0)
        if tok == ")" and depth == 0:
            return start + i + 1
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


def _outside_classes(regex: str) -> str:
    """``regex`` with its character classes blanked out (``_``): its operators, escapes and literals.

    >>> _outside_classes("a[^$]+$")
    'a____+$'
    """
    return "".join("_" * len(tok) if in_class else tok for _, tok, in_class in _tokens(regex))


def uncaptured(regex: str) -> str:
    """``regex`` with every group made non-capturing: it matches the same text, and a search for
    the whole match alone then runs without the capture engine.

    >>> print(uncaptured("^(?P<ts>[0-9]+) (a|[(]b)"))
    ^(?:[0-9]+) (?:a|[(]b)
    """
    out, skip = [], 0
    for i, tok, in_class in _tokens(regex):
        if i < skip:
            continue
        if tok == "(" and not in_class:
            named = re.match(r"\(\?P?<\w+>", regex[i:])
            if named is not None or regex[i + 1 : i + 2] != "?":
                out.append("(?:")
                skip = i + (named.end() if named is not None else 1)
                continue
        out.append(tok)
    return "".join(out)


def _match_text(text: pl.Series, regex: str) -> pl.Series:
    """The text of each row's leftmost-first match of ``^(?:regex)`` (null where none), found
    without capturing groups."""
    return text.str.extract("^(?:" + uncaptured(regex) + ")", 0)


def _prefix_groups(pre: pl.Series, rest: str, names: tuple[str, ...]) -> pl.DataFrame:
    """The ``names`` groups of ``^(?:rest)`` in each matched prefix ``pre`` (null rows stay null).

    A log repeats a handful of prefixes (`` INFO app.web: ``): their groups are captured once
    per distinct prefix and looked up for every row."""
    if not names:
        return pl.DataFrame()
    uniq = pre.drop_nulls().unique()
    if uniq.len() * 4 > pre.len():  # mostly distinct: capture every row
        return pre.str.extract_groups("^(?:" + rest + ")").struct.unnest().select(names)
    found = uniq.str.extract_groups("^(?:" + rest + ")").struct.unnest().select(names)
    at = pre.replace_strict(uniq, pl.int_range(uniq.len(), eager=True, dtype=pl.UInt32), default=None)
    return found.select(pl.all().gather(at))


def regex_groups(regex: str, text: pl.Series) -> pl.DataFrame:
    """``text.str.extract_groups`` of ``^(?P<_m>)`` + ``regex``, unnested: the same columns and
    values, the timestamp cut off first where the regex allows (:func:`split_ts`).

    The timestamp, then the rest of the prefix are found by searches for their whole match
    (no capture engine); the groups of the prefix are captured once per distinct prefix. A
    prefix without assertions (``\\b``, ``^``) is matched the same alone as inside its line.

    >>> t = pl.Series(["2024-03-01 10:00:00,123 ERROR db: down", "  File x", "2024-03-01 10:00:01 INFO a: ok"])
    >>> regex_groups(r"^(?P<ts>[\\d:, -]+?) (?P<level>[A-Z]+) (?P<logger>\\S*?): (?P<message>.*)$", t).rows()
    [('', '2024-03-01 10:00:00,123', 'ERROR', 'db', 'down'), (None, None, None, None, None), ('', '2024-03-01 10:00:01', 'INFO', 'a', 'ok')]
    """
    full = "^(?P<_m>)" + regex.removeprefix("^")
    split = split_ts(regex)
    if split is None or text.len() == 0 or re.search(r"\\[bBAz]|[$^]", _outside_classes(split.rest)):
        return text.str.extract_groups(full).struct.unnest()
    sub = text.str.slice(len(split.lead)) if split.lead else text
    ts = _match_text(sub, split.ts)
    ts_len = ts.str.len_chars()
    width = ts_len.drop_nulls()
    if width.len() and width.min() == width.max():  # one width (a fixed timestamp format): one cut
        after = sub.str.slice(int(width[0]))  # type: ignore[arg-type]
    else:
        after = sub.str.slice(ts_len.fill_null(0))
    pre = _match_text(after, split.rest)
    pre_len = pre.str.len_chars()
    ok = pre_len.is_not_null() & (ts_len > 0)
    if split.lead:
        ok = ok & text.str.starts_with(split.lead)
    groups = _prefix_groups(pre, split.rest, split.names)
    cols = {
        "_m": pl.repeat("", text.len(), eager=True, dtype=pl.String),
        "ts": ts,
        **{name: groups[name] for name in split.names},
        "message": after.str.slice(pre_len),
    }
    ok = ok.fill_null(False)
    order = ["_m", *re.findall(r"\(\?P<(\w+)>", regex)]
    frame = pl.DataFrame([cols[name].alias(name) for name in order])
    if ok.all():
        return frame
    bad = (~ok).arg_true()
    slow = text.gather(bad)
    if not slow.str.contains(uncaptured(full)).any():  # the usual: traceback lines match nothing
        keep = pl.lit(ok)
        return frame.select(pl.when(keep).then(pl.col(name)).alias(name) for name in order)
    slow = slow.str.extract_groups(full).struct.unnest()
    return pl.DataFrame([frame[name].scatter(bad, slow[name]) for name in order])
