"""Compile a Python ``logging`` format string (and its ``datefmt``) into one regular expression.

``'%(asctime)s %(levelname)s %(name)s: %(message)s'`` becomes a Rust regex with named groups
(``ts``, ``level``, ``logger``, ``message``…) plus a recipe to parse ``asctime``. ``%``-style,
``{``-style and ``$``-style format strings are understood, with widths (``%(levelname)-8s``,
``{levelname:<8}``). The regex runs in polars' linear-time engine: no catastrophic backtracking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: what logging's default asctime looks like (``Formatter.default_time_format`` + ``,%03d`` msecs)
DEFAULT_ASCTIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
LEVEL_NAMES = r"(?:CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG|NOTSET|TRACE|SUCCESS|NOTICE|Level \d+)"

# LogRecord attribute -> (group name or None, regex). Groups named here are understood by the reader;
# any other attribute becomes an ``x_<name>`` group whose value lands in ``extra``.
_ATTRIBUTES: dict[str, tuple[str | None, str]] = {
    "asctime": ("ts", DEFAULT_ASCTIME),
    "created": ("epoch", r"\d+(?:\.\d+)?"),
    "msecs": ("msecs", r"\d+(?:\.\d+)?"),
    "relativeCreated": (None, r"\d+(?:\.\d+)?"),
    "levelname": ("level", r"[A-Za-z][A-Za-z0-9_]*(?: \d+)?"),
    "levelno": ("levelno", r"\d+"),
    "levelprefix": ("level", r"[A-Z]+):(?:\s*"),  # uvicorn: 'INFO:' padded to 9 characters
    "name": ("logger", r"\S*?"),
    "message": ("message", r".*"),
    "process": ("pid", r"\d+"),
    "processName": ("x_processName", r"\S+?"),
    "thread": ("x_thread", r"\d+"),
    "threadName": ("x_threadName", r".+?"),
    "taskName": ("x_taskName", r"\S*?"),
    "module": ("x_module", r"[^\s:]*?"),
    "funcName": ("x_funcName", r"[^\s:]*?"),
    "filename": ("x_filename", r"[^\s:]*?"),
    "pathname": ("x_pathname", r"\S*?"),
    "lineno": ("x_lineno", r"\d+"),
    "request_id": ("request_id", r"\S*?"),
}

# strftime directive -> regex (what time.strftime prints), and whether it carries a zone
_STRFTIME: dict[str, str] = {
    "Y": r"\d{4}", "y": r"\d\d", "m": r"\d\d", "d": r"\d\d", "e": r"[ \d]\d", "H": r"\d\d", "I": r"\d\d",
    "M": r"\d\d", "S": r"\d\d", "f": r"\d{6}", "j": r"\d{3}", "p": r"[AaPp][Mm]", "b": r"[A-Z][a-z]{2}",
    "h": r"[A-Z][a-z]{2}", "B": r"[A-Z][a-z]+", "a": r"[A-Z][a-z]{2}", "A": r"[A-Z][a-z]+",
    "z": r"[+-]\d{4}", "Z": r"[A-Za-z][A-Za-z0-9+\-]*", "%": "%", "s": r"\d+",
}  # fmt: skip

_PERCENT = re.compile(
    r"%\((?P<name>\w+)\)(?P<flags>[#0\- +]*)(?P<width>\d*)(?:\.\d+)?(?P<conv>[sdifrxXeEgGa])"
)
_BRACE = re.compile(r"\{(?P<name>\w+)(?:![rsa])?(?::(?P<spec>[^{}]*))?\}")
_DOLLAR = re.compile(r"\$\{(?P<name>\w+)\}|\$(?P<bare>\w+)")


@dataclass(frozen=True)
class CompiledPattern:
    """A logging format string as a regex, and how to read its ``asctime``.

    ``time_format`` is the chrono format (for ``polars.Series.str.to_datetime``) of the
    ``ts`` group, or None when it is logging's default (``2024-03-01 10:00:00,123``, read as
    ISO-like). ``zone_in_time`` tells that ``datefmt`` prints a zone (``%z``/``%Z``).
    """

    pattern: str
    regex: str
    datefmt: str | None
    groups: tuple[str, ...]
    time_format: str | None = None
    zone_in_time: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def _datefmt_regex(datefmt: str) -> tuple[str, str, bool]:
    """``datefmt`` -> (regex, chrono format with %Z removed, has zone)."""
    out, chrono, zoned, i = [], [], False, 0
    while i < len(datefmt):
        ch = datefmt[i]
        if ch == "%" and i + 1 < len(datefmt):
            d = datefmt[i + 1]
            if d not in _STRFTIME:
                msg = f"datefmt={datefmt!r}: strftime directive %{d} is not supported by loglib"
                raise ValueError(msg)
            out.append(_STRFTIME[d])
            if d in "zZ":
                zoned = True
            if d == "Z":
                out[-1] = f"(?P<zone>{_STRFTIME['Z']})"
                chrono.append("")  # the zone text is removed before parsing
            elif d == "f":
                chrono.append("%6f")
            else:
                chrono.append("%" + d)
            i += 2
            continue
        out.append(rx_escape(ch))
        chrono.append(ch)
        i += 1
    return "".join(out), "".join(chrono), zoned


def _style(pattern: str) -> str:
    if _PERCENT.search(pattern):
        return "%"
    if _BRACE.search(pattern):
        return "{"
    if _DOLLAR.search(pattern):
        return "$"
    msg = (
        f"pattern={pattern!r} has no %(name)s, {{name}} or ${{name}} field; it is not a logging format string"
    )
    raise ValueError(msg)


def compile_log_pattern(
    pattern: str, *, datefmt: str | None = None, strict_levels: bool = False
) -> CompiledPattern:
    """Compile a Python ``logging.Formatter`` format string into a regex with named groups.

    Parameters
    ----------
    pattern
        The handler's format string, verbatim: ``'%(asctime)s [%(levelname)s] %(name)s: %(message)s'``
        (``{``- and ``$``-styles work too).
    datefmt
        The formatter's ``datefmt`` (``'%Y-%m-%d %H:%M:%S'``); None means logging's default
        ``2024-03-01 10:00:00,123``.
    strict_levels
        Accept only the usual level names (used when sniffing, so that a random word is not a level).

    Examples
    --------
    >>> import re
    >>> c = compile_log_pattern("%(asctime)s %(levelname)-8s %(name)s: %(message)s")
    >>> re.match(c.regex, "2024-03-01 10:00:00,123 ERROR    app.db: pool exhausted").group("level", "logger")
    ('ERROR', 'app.db')
    """
    if not isinstance(pattern, str) or not pattern:
        msg = f"pattern= must be a logging format string such as '%(asctime)s %(levelname)s %(message)s', got {pattern!r}"
        raise ValueError(msg)
    style = _style(pattern)
    finder = {"%": _PERCENT, "{": _BRACE, "$": _DOLLAR}[style]
    parts: list[str] = ["^"]
    groups: list[str] = []
    time_format: str | None = None
    zoned = False
    pos = 0
    matches = list(finder.finditer(pattern))
    for n, m in enumerate(matches):
        literal = pattern[pos : m.start()]
        if style == "%":
            literal = literal.replace("%%", "%")
        parts.append(_literal(literal))
        name = m.group("name") or m.groupdict().get("bare")
        group, regex = _ATTRIBUTES.get(name, (f"x_{name}", r".*?"))
        last = n == len(matches) - 1 and not pattern[m.end() :].strip()
        if name == "message" and not last:
            regex = r".*?"
        if name == "asctime" and datefmt is not None:
            regex, time_format, zoned = _datefmt_regex(datefmt)
        if name == "levelname" and strict_levels:
            regex = LEVEL_NAMES
        left, right = _padding(m, style)
        if group is None or group in groups:
            parts.append(f"{left}(?:{regex}){right}")
        else:
            groups.append(group)
            parts.append(f"{left}(?P<{group}>{regex}){right}")
        pos = m.end()
    tail = pattern[pos:]
    parts.append(_literal(tail.replace("%%", "%") if style == "%" else tail))
    parts.append("$")
    return CompiledPattern(pattern, "".join(parts), datefmt, tuple(groups), time_format, zoned)


_META = set("\\.+*?()|[]{}^$")


def rx_escape(text: str) -> str:
    """Escape ``text`` for the Rust regex engine (only its meta characters)."""
    return "".join("\\" + ch if ch in _META else ch for ch in text)


def _literal(text: str) -> str:
    # a run of two or more spaces may have been padding: accept any run of spaces there
    return re.sub(r" {2,}", " +", rx_escape(text))


def _padding(m: re.Match, style: str) -> tuple[str, str]:
    """Padding a width adds around a field: trailing spaces for left-justified, leading otherwise."""
    if style == "%":
        width = m.group("width")
        if not width or "0" in m.group("flags"):
            return "", ""
        return ("", " *") if "-" in m.group("flags") else (" *", "")
    if style == "{":
        spec = m.group("spec") or ""
        sm = re.match(r"^(?:.?[<>^])?\d+", spec)
        if not sm:
            return "", ""
        if ">" in spec[:2]:
            return " *", ""
        if "^" in spec[:2]:
            return " *", " *"
        return "", " *"
    return "", ""
