"""Whether an anchored line regex can match a line that starts with ``{`` (a JSON record).

Format sniffing scores every line format against a sample. When every sample line is a JSON
object, a format whose regex must begin with another character matches none of them, and is
known to without compiling the regex (polars compiles each sniffing regex once per process:
tens of milliseconds for the two dozen line formats, before the first chunk is read).

The answer comes from the pattern's parse (Python's ``re`` parser, which reads the syntax these
patterns use as Rust's regex reads it) and is conservative: anything it does not know, it says
may match.
"""

from __future__ import annotations

import re
from functools import lru_cache

try:  # Python 3.11+
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

#: Rust syntax that Python's parser reads as something else (nested classes, POSIX classes,
#: Unicode classes, and in a class the set operations): such a pattern never excludes anything
_RUST_ONLY = re.compile(r"\[\[|\[:|\\[pPzAQE]")
_CLASS = re.compile(r"\[(?:\\.|[^\]\\])*\]")
_SET_OPERATION = re.compile(r"&&|~~|--")
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
#: the categories ``{`` belongs to (not a digit, a word character or a space)
_BRACE_IN = {_c.CATEGORY_NOT_DIGIT, _c.CATEGORY_NOT_WORD, _c.CATEGORY_NOT_SPACE}
_BRACE_NOT_IN = {_c.CATEGORY_DIGIT, _c.CATEGORY_WORD, _c.CATEGORY_SPACE}
_BRACE = ord("{")


@lru_cache(maxsize=256)
def never_at_brace(pattern: str) -> bool:
    """True when no match of ``pattern`` can start a line whose first character is ``{``: the
    pattern is anchored with ``^`` and what follows must match another character first.

    >>> never_at_brace(r"^\\[(?P<ts>\\d{4})\\]"), never_at_brace(r"^(?P<ts>\\d{4}-\\d\\d)"), never_at_brace(r"^(?:INFO|WARN):")
    (True, True, True)
    >>> never_at_brace(r"^(?P<kv>(?:\\w+=\\S*)*)"), never_at_brace(r"^[^a]"), never_at_brace(r"\\[x"), never_at_brace(r"^.")
    (False, False, False, False)
    """
    if _RUST_ONLY.search(pattern) or any(_SET_OPERATION.search(c) for c in _CLASS.findall(pattern)):
        return False
    try:
        parsed = list(_p.parse(pattern))
    except (re.error, RecursionError, OverflowError):
        return False
    return _anchored(parsed)


def _anchored(items: list) -> bool:
    """A top-level sequence: ``^`` and then a head that excludes ``{`` (or branches that all are)."""
    if len(items) == 1 and items[0][0] == _c.BRANCH:
        return all(_anchored(list(branch)) for branch in items[0][1][1])
    if len(items) == 1 and items[0][0] == _c.SUBPATTERN:
        return _anchored(list(items[0][1][3]))
    if not items or items[0] != (_c.AT, _c.AT_BEGINNING):
        return False
    return _head_excludes(items[1:])


def _head_excludes(items: list) -> bool:
    """Whether every match of the parsed ``items`` starts with a character other than ``{``."""
    for i, (op, av) in enumerate(items):
        if op == _c.AT and av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
            continue  # another start anchor: zero width, still at the line's start
        if op == _c.LITERAL:
            return av != _BRACE
        if op == _c.NOT_LITERAL:  # [^x]
            return av == _BRACE
        if op == _c.IN:
            return not _in_set(av)
        if op == _c.SUBPATTERN:
            return _head_excludes([*av[3], *items[i + 1 :]])
        if op == _c.BRANCH:
            return all(_head_excludes([*branch, *items[i + 1 :]]) for branch in av[1])
        if op in _REPEATS:  # the body first; an optional one may be skipped: then what follows
            body = _head_excludes(list(av[2]))
            return body and (av[0] >= 1 or _head_excludes(items[i + 1 :]))
        return False  # anything else (., a look-around, a back-reference) may match it
    return False  # an empty head matches an empty start


def _in_set(items: list) -> bool:
    """Whether the class ``[...]`` may hold ``{`` (True when not known)."""
    negate = bool(items) and items[0][0] == _c.NEGATE
    found = False
    for op, av in items[1:] if negate else items:
        if op == _c.LITERAL:
            found |= av == _BRACE
        elif op == _c.RANGE:
            found |= av[0] <= _BRACE <= av[1]
        elif op == _c.CATEGORY and av in _BRACE_IN:
            found = True
        elif not (op == _c.CATEGORY and av in _BRACE_NOT_IN):
            return True
    return found != negate
