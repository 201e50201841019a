"""Compile a PostgreSQL ``log_line_prefix`` into one regular expression with named groups.

Every escape of the PostgreSQL documentation (runtime-config-logging) is supported, including
padding (``%-10u``) and ``%q`` (the rest of the prefix is omitted by non-session processes,
so it becomes an optional group). The regex is for polars' Rust engine, which runs in linear
time on any input: no catastrophic backtracking.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: the PostgreSQL log formats the reader knows (``read_pg_log(format=...)``)
FORMATS = ("stderr", "csvlog", "jsonlog", "syslog", "rds", "cloudsql", "cnpg")
_TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_ZONE = r"(?:[A-Za-z][A-Za-z0-9_/+\-]*|[+\-]\d\d(?::?\d\d)?)"

SEVERITIES = (
    "LOG",
    "ERROR",
    "FATAL",
    "PANIC",
    "WARNING",
    "NOTICE",
    "INFO",
    "DEBUG1",
    "DEBUG2",
    "DEBUG3",
    "DEBUG4",
    "DEBUG5",
    "DEBUG",
    "DETAIL",
    "HINT",
    "CONTEXT",
    "STATEMENT",
    "QUERY",
    "LOCATION",
)
#: severities that continue the entry before them instead of starting one
SECONDARY = ("DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION")
SEVERITY_HEAD_RE = "(?P<severity>" + "|".join(SEVERITIES) + r"):  ?"
SEVERITY_RE = SEVERITY_HEAD_RE + "(?P<message>.*)"


@dataclass(frozen=True)
class _Escape:
    group: str | None  # capture name, or None to match without capturing
    pattern: str


# What each escape prints. Groups named here are the ones the reader understands.
ESCAPES: dict[str, _Escape] = {
    "a": _Escape("application", r".*?"),
    "u": _Escape("user", r".*?"),
    "d": _Escape("database", r".*?"),
    "r": _Escape("remote", r"[^\s:]*?(?:\(\d+\))?|\[local\]|[0-9a-fA-F:.]*?(?:\(\d+\))?"),
    "h": _Escape("client_host", r"\S*?"),
    "L": _Escape(None, r"\S*?"),
    "b": _Escape("backend_type", r".*?"),
    "p": _Escape("pid", r"\d+"),
    "P": _Escape(None, r"\d*"),
    "t": _Escape("ts_t", _TS + r"(?: " + _ZONE + ")?"),
    "m": _Escape("ts_m", _TS + r"\.\d{3}(?: " + _ZONE + ")?"),
    "n": _Escape("ts_n", r"\d+\.\d{3}"),
    "i": _Escape(None, r".*?"),
    "e": _Escape("sqlstate", r"[0-9A-Z]{5}"),
    "c": _Escape("session_id", r"[0-9a-f]+\.[0-9a-f]+"),
    "l": _Escape(None, r"\d+"),
    "s": _Escape(None, _TS + r"(?: " + _ZONE + ")?"),
    "v": _Escape(None, r"[0-9/]*"),
    "x": _Escape(None, r"\d*"),
    "Q": _Escape(None, r"-?\d+"),
}

_TOKEN = re.compile(r"%(-?\d+)?(.)", re.DOTALL)

#: log_line_prefix settings seen in the wild, tried in this order when none is given
COMMON_PREFIXES: tuple[str, ...] = (
    "%m [%p] %q%u@%d ",  # Debian/Ubuntu packages
    "%m [%p] ",  # PostgreSQL 10+ default
    "%t:%r:%u@%d:[%p]:",  # AWS RDS
    "%t:%h:%u@%d:[%p]:",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",  # pgBadger's recommended family
    "%t [%p]: [%l-1] user=%u,db=%d,host=%h,app=%a ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a ",
    "%t [%p]: [%l-1] user=%u,db=%d ",
    "%t [%p]: [%l-1] db=%d,user=%u,app=%a,client=%h ",
    "%t [%p]: [%l-1] db=%d,user=%u ",
    "%t [%p]: [%l-1] [%x] usr=%u,db=%d,appli=%a ",
    "%t [%p]: db=%d,user=%u,app=%a,client=%h ",
    "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%m [%p] user=%u,db=%d ",
    "%m [%p] [queryid=%Q] %q%u@%d ",
    "%m [%p] %q[user=%u,db=%d,app=%a] ",
    "%m [%p] %u@%d ",
    "%t [%p-%l] %q%u@%d ",
    "%t [%p] ",
    "%m %u %d [%p] ",
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: [%l-1] ",
    "%t [%p]: [%l-1] ",
    "< %m > ",
    "%m [%p]: [%l-1] db=%d,user=%u,host=%h ",  # Cloud SQL text downloads
    "%t-%c-",  # Azure Database for PostgreSQL Flexible Server
    "%m : %p : ",
    "%n [%p] ",  # epoch timestamps
    "user=%u, db=%d, app=%a, client=%h ",
    "%m ",
    "%t ",
)

# The parts prefixes are made of: a head (time and pid) and a body (session fields), as the
# PostgreSQL docs, pgBadger, distributions and managed services write them. Every head x body
# combination is tried after the table above, so that a guide's body after another head is found too.
_HEADS = (
    "%m [%p] ",
    "%t [%p] ",
    "%m [%p]: [%l-1] ",
    "%t [%p]: [%l-1] ",
    "%m [%p]: ",
    "%t [%p]: ",
    "%m : %p : ",
    "%n [%p] ",
    "%t [%p-%l] ",
    "%m [%p-%l] ",
    "%m %c ",
    "",
)
_BODIES = (
    "",
    "%q%u@%d ",
    "%u@%d ",
    "user=%u,db=%d ",
    "db=%d,user=%u ",
    "user=%u,db=%d,app=%a ",
    "user=%u,db=%d,app=%a,client=%h ",
    "user=%u, db=%d, app=%a, client=%h ",
    "user=%u,db=%d,host=%h,app=%a ",
    "db=%d,user=%u,app=%a,client=%h ",
    "db=%d,user=%u,host=%h ",
    "%q[user=%u,db=%d,app=%a] ",
)
#: every prefix detection tries, in order: the table first, then the head x body combinations
DETECTION_PREFIXES: tuple[str, ...] = tuple(
    dict.fromkeys((*COMMON_PREFIXES, *(h + b for h in _HEADS for b in _BODIES if h + b)))
)  # fmt: skip


@dataclass(frozen=True)
class CompiledPrefix:
    """A compiled ``log_line_prefix``.

    ``regex`` matches a whole line and captures every field plus ``severity`` and ``message``
    (exact: free-text fields are lazy ``.*?``). ``fast_regex`` matches only the line's head,
    up to and including ``SEVERITY:  ``, captured as ``_head``; free-text fields followed by a
    literal character ``c`` use ``[^c]*``, which lets the regex engine capture in one pass.
    The reader uses the fast one and retries lines it does not match with the exact one.

    ``lead_regex`` (None when the prefix has no such lead) splits the head the fast way: the
    prefix's leading run of fields with a shape of their own (``%m``/``%t`` with their zone, and
    ``%p``/``%l`` digit runs, each ended by a literal) as ``ts_text``/``zone``/``pid`` (``%l``
    as ``_l0``, ``_l1``...), then ``_tail``, the text up to the first ``': '``. The lead is its
    groups and ``lead_chars`` characters of literals, so the message starts after their lengths
    (and an optional second space). A file has few distinct ``_tail`` values (``app@shop LOG``),
    so ``tail_regex``, the rest of the prefix and the severity anchored at both ends, is matched
    once per distinct value.
    """

    prefix: str
    regex: str
    fast_regex: str
    groups: tuple[str, ...]
    lead_regex: str | None = None
    tail_regex: str | None = None
    #: ``SEVERITY: `` anywhere: a message holding one may end a longer head (the exact path decides)
    severity_colon: str = ""
    #: the characters of the lead that are not in its groups (literals, the space before a zone)
    lead_chars: int = 0

    @property
    def has_time(self) -> bool:
        return any(g.startswith("ts_") for g in self.groups)


_LAZY = ".*?"
_LAZY_NONSPACE = r"\S*?"


def _literal(text: str) -> str:
    return re.escape(text)


def severity_head(severities: tuple[str, ...] | None = None) -> str:
    """The ``SEVERITY:  `` regex; ``severities`` adds a localised server's words (``FEHLER``, ``ASTUCE ``)."""
    if severities is None:
        return SEVERITY_HEAD_RE
    return "(?P<severity>" + "|".join(re.escape(w) for w in severities) + r"):  ?"


@functools.cache
def compile_prefix(prefix: str, severities: tuple[str, ...] | None = None) -> CompiledPrefix:
    """Compile ``prefix`` (the server's setting, verbatim) into a full-line regex.

    The regex matches ``<prefix><SEVERITY>:  <message>`` and captures the escapes' fields
    plus ``severity`` and ``message``.

    Examples
    --------
    >>> import re
    >>> c = compile_prefix("%m [%p] %q%u@%d ")
    >>> re.match(c.regex, "2024-03-01 10:00:00.123 UTC [42] app@shop LOG:  x")["user"]
    'app'
    >>> re.match(c.regex, "2024-03-01 10:00:00.123 UTC [41] LOG:  checkpoint starting")["pid"]
    '41'
    """
    tokens = list(_TOKEN.finditer(prefix))
    exact: list[str] = []
    fast: list[str] = []
    groups: list[str] = []
    optional_open = False
    pos = 0
    for i, m in enumerate(tokens):
        literal = _literal(prefix[pos : m.start()])
        exact.append(literal)
        fast.append(literal)
        pos = m.end()
        padding, esc = m.group(1), m.group(2)
        if esc == "%":
            exact.append("%")
            fast.append("%")
            continue
        if esc == "q":
            if not optional_open:
                exact.append("(?:")
                fast.append("(?:")
                optional_open = True
            continue
        spec = ESCAPES.get(esc)
        if spec is None:
            # PostgreSQL prints nothing for an unknown escape
            continue
        pat = fast_pat = spec.pattern
        following = prefix[pos : tokens[i + 1].start()] if i + 1 < len(tokens) else prefix[pos:]
        if pat in (_LAZY, _LAZY_NONSPACE) and following and not padding:
            stop = re.escape(following[0])
            fast_pat = f"[^{stop}\\n]*" if pat == _LAZY else f"[^{stop}\\s]*"
        if padding:
            pat = fast_pat = rf" *(?:{pat}) *"
        if spec.group and spec.group not in groups:
            groups.append(spec.group)
            exact.append(f"(?P<{spec.group}>{pat})")
            fast.append(f"(?P<{spec.group}>{fast_pat})")
        else:
            exact.append(f"(?:{pat})")
            fast.append(f"(?:{fast_pat})")
    exact.append(_literal(prefix[pos:]))
    fast.append(_literal(prefix[pos:]))
    if optional_open:
        exact.append(")?")
        fast.append(")?")
    head = severity_head(severities)
    regex = "^" + "".join(exact) + head + "(?P<message>.*)$"
    fast_regex = "^(?P<_head>" + "".join(fast) + head + ")"
    lead, tail, lead_chars = _lead_tail(prefix, tokens, severities)
    words = SEVERITIES if severities is None else severities
    return CompiledPrefix(
        prefix, regex, fast_regex, (*groups, "severity", "message"), lead, tail,
        "(?:" + "|".join(re.escape(w) for w in words) + "): ", lead_chars,
    )  # fmt: skip


#: the escapes a lead may hold: times (with their zone) and digit runs, each ended by a literal
_LEAD_TIMES = {"m": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", "t": _TS}
_LEAD_DIGITS = {"p": "pid", "l": None}


def _lead_tail(
    prefix: str, tokens: list[re.Match[str]], severities: tuple[str, ...] | None
) -> tuple[str | None, str | None, int]:
    """``lead_regex``, ``tail_regex`` and ``lead_chars`` of :class:`CompiledPrefix` (None, None, 0
    when there is no lead).

    Each lead field is followed by a literal that cannot continue it (a time's zone ends at a
    space, a digit run at a non-digit), so the lead matches one way only, as in the fast regex.
    The tail must print no ``:`` of its own: ``_tail`` ends at the line's first ``': '`` after the lead.
    The prefix must not start with a blank, so that a continuation line matches neither regex.

    >>> lead, tail, chars = _lead_tail("%m [%p] %q%u@%d ", list(_TOKEN.finditer("%m [%p] %q%u@%d ")), None)
    >>> re.match(lead, "2024-03-01 10:00:00.123 UTC [42] app@shop LOG:  x").group("zone", "pid", "_tail")
    ('UTC', '42', 'app@shop LOG')
    >>> chars  # ' ' before the zone, ' [' and '] '
    5
    >>> re.match(tail, "app@shop LOG: ").group("user", "database", "severity")
    ('app', 'shop', 'LOG')
    """
    lead: list[str] = []
    pos = chars = 0
    for i, m in enumerate(tokens):
        esc, following = (
            m.group(2),
            prefix[m.end() : tokens[i + 1].start() if i + 1 < len(tokens) else len(prefix)],
        )
        if m.group(1) or not following or (esc not in _LEAD_TIMES and esc not in _LEAD_DIGITS):
            break
        if esc in _LEAD_TIMES and following[0] != " ":
            break
        if esc in _LEAD_DIGITS and following[0].isdigit():
            break
        lead.append(_literal(prefix[pos : m.start()]))
        chars += m.start() - pos + len(following)
        if esc in _LEAD_TIMES:
            lead.append(f"(?P<ts_text>{_LEAD_TIMES[esc]}) (?P<zone>{_ZONE})")
            chars += 1
        else:
            group = _LEAD_DIGITS[esc] or f"_l{i}"
            lead.append(rf"(?P<{group}>\d+)")
        lead.append(_literal(following))
        pos = m.end() + len(following)
    rest = prefix[pos:]
    # a line the lead cannot start (a continuation: tab, space or nothing) the fast regex cannot either
    if not lead or prefix[0].isspace() or ":" in _TOKEN.sub("", rest) or "%%" in rest:
        return None, None, 0
    tail = compile_prefix(rest, severities).fast_regex
    # the tail's fast regex, anchored at both ends: 'app@shop LOG: ' is the whole input
    tail = tail.replace("^(?P<_head>", "^(?:", 1) + "$"
    return "^" + "".join(lead) + r"(?P<_tail>[^:\n]*): ", tail, chars
