"""Localised database-client errors (libpq, and the psycopg/asyncpg/SQLAlchemy messages that wrap it)
classified like English ones, through the message catalogs PostgreSQL ships.

A client whose locale is not English gets libpq's own messages translated by ``libpq5-<major>.mo``
(``Verbindung zum Server auf »db« (10.0.0.5), Port 5432 fehlgeschlagen: …``, ``Timeout
abgelaufen``) and the server's reasons translated by the server's ``postgres-<major>.mo``
(``tut mir leid, schon zu viele Verbindungen``), with the system's reason from glibc's
``libc.mo`` (``Verbindungsaufbau abgelehnt``). :data:`CLIENT_MSGIDS` names the English msgids
behind each ``error_class``; :func:`localized_rules` turns every installed translation of them
into an :class:`~loglib.formats.error_rules.ErrorRule` with the tier of the English rule.

Examples
--------
>>> from loglib.formats.client_catalogs import msgstr_pattern
>>> msgstr_pattern("Passwort-Authentifizierung für Benutzer »%s« fehlgeschlagen")
'Passwort-Authentifizierung für Benutzer »[^\\\\n]*?« fehlgeschlagen'
"""

from __future__ import annotations

import functools
import gettext
import graphlib
import re

from loglib.formats.pg_catalogs import _CONVERSION, catalog_paths

#: (error_class, priority, catalog domain, English msgid): the messages a localised client shows
CLIENT_MSGIDS: tuple[tuple[str, int, str, str], ...] = (
    # what the server said (postgres-<major>.mo; postinit.c, postgres.c, auth.c, postmaster.c)
    ("too_many_connections", 100, "postgres", "sorry, too many clients already"),
    ("too_many_connections", 100, "postgres", "remaining connection slots are reserved for non-replication superuser connections"),
    ("too_many_connections", 100, "postgres", 'too many connections for role "%s"'),
    ("too_many_connections", 100, "postgres", 'too many connections for database "%s"'),
    ("auth_failed", 100, "postgres", 'password authentication failed for user "%s"'),
    ("auth_failed", 100, "postgres", 'no pg_hba.conf entry for host "%s", user "%s", database "%s", %s'),
    ("idle_in_tx_timeout", 100, "postgres", "terminating connection due to idle-in-transaction timeout"),
    ("idle_session_timeout", 100, "postgres", "terminating connection due to idle-session timeout"),
    ("admin_shutdown", 100, "postgres", "terminating connection due to administrator command"),
    ("crash_restart", 100, "postgres", "terminating connection because of crash of another server process"),
    ("server_not_ready", 100, "postgres", "the database system is starting up"),
    ("server_not_ready", 100, "postgres", "the database system is shutting down"),
    ("server_not_ready", 100, "postgres", "the database system is in recovery mode"),
    ("server_not_ready", 100, "postgres", "the database system is not yet accepting connections"),
    ("statement_timeout", 100, "postgres", "canceling statement due to statement timeout"),
    ("lock_timeout", 100, "postgres", "canceling statement due to lock timeout"),
    ("deadlock", 100, "postgres", "deadlock detected"),
    # what libpq itself said (libpq5-<major>.mo; fe-connect.c, fe-misc.c, fe-secure-openssl.c)
    ("dns_failure", 80, "libpq", 'could not translate host name "%s" to address: %s\n'),
    ("connect_timeout", 80, "libpq", "timeout expired\n"),
    ("ssl_eof", 80, "libpq", "SSL SYSCALL error: EOF detected\n"),
    ("ssl_eof", 80, "libpq", "SSL connection has been closed unexpectedly\n"),
    ("server_closed", 50, "libpq",
     "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n"
     "\tbefore or while processing the request.\n"),
    ("server_closed", 50, "libpq", "server closed the connection unexpectedly\n"),
    ("conn_already_closed", 40, "libpq", "no connection to the server\n"),
    ("conn_already_closed", 40, "libpq", "connection pointer is NULL\n"),
    # the system's words inside libpq's (glibc strerror / gai_strerror, libc.mo): "… failed: Connection refused"
    ("connection_refused", 80, "libc", "Connection refused"),
    ("connect_timeout", 80, "libc", "Connection timed out"),
    ("dns_failure", 80, "libc", "Name or service not known"),
    ("dns_failure", 80, "libc", "Temporary failure in name resolution"),
    ("connection_reset", 50, "libc", "Connection reset by peer"),
)  # fmt: skip

#: a Rust-regex metacharacter (Python's re.escape also escapes characters Rust refuses escaped)
_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


def msgstr_pattern(msgstr: str) -> str:
    """A translated message as a Rust regex: its first line, literal, with each ``%s``/``%d`` any
    text on that line."""
    first = msgstr.split("\n", 1)[0].replace("%%", "%")
    parts = _CONVERSION.split(first)
    return r"[^\n]*?".join(_META.sub(r"\\\1", p) for p in parts).strip()


@functools.cache
def _catalog(path: str) -> dict:
    with open(path, "rb") as fh:
        return gettext.GNUTranslations(fh)._catalog  # the msgid -> msgstr table


@functools.cache
def localized_rules() -> tuple:
    """One rule per installed translation of :data:`CLIENT_MSGIDS` (none without catalogs).

    glibc's words are taken in the languages PostgreSQL speaks (where libpq's surround them).
    Literal pieces shorter than 8 characters are not used alone (a two-word translation would
    match ordinary text); the ``source`` of each rule names its catalog and msgid.
    """
    from loglib.formats.error_rules import ErrorRule

    by_class: dict[tuple[str, int], list[str]] = {}
    sources: dict[tuple[str, int], set[str]] = {}
    texts: dict[str, list[tuple[str, str]]] = {}  # language -> (class, first literal piece)
    spoken = {*catalog_paths("postgres"), *catalog_paths("libpq")}
    for domain in ("postgres", "libpq", "libc"):
        for code, path in catalog_paths(domain).items():
            if code not in spoken:  # glibc speaks more languages than PostgreSQL does
                continue
            try:
                catalog = _catalog(path)
            except (OSError, ValueError):  # an unreadable catalog: that language is not offered
                continue
            for error_class, priority, dom, msgid in CLIENT_MSGIDS:
                msgstr = catalog.get(msgid)
                if dom != domain or not msgstr or msgstr == msgid:
                    continue
                pieces = _CONVERSION.split(msgstr.split("\n", 1)[0])
                if len(max(pieces, key=len).strip().encode()) < 8:  # bytes: 检测到死锁 says enough
                    continue
                key = (error_class, priority)
                pattern = msgstr_pattern(msgstr)
                if pattern not in by_class.setdefault(key, []):
                    by_class[key].append(pattern)
                sources.setdefault(key, set()).add(f"{path.rsplit('/', 1)[-1]} {code}")
                texts.setdefault(code, []).append((error_class, pieces[0].strip()))
    rules = [
        ErrorRule(cls, "|".join(patterns), prio, "translations in " + ", ".join(sorted(sources[(cls, prio)])))
        for (cls, prio), patterns in by_class.items()
    ]
    return tuple(_specific_first(rules, texts))


def _specific_first(rules: list, texts: dict[str, list[tuple[str, str]]]) -> list:
    """Rules ordered so that a class whose translation contains another's comes first: Italian
    ``annullamento dell'istruzione a causa di timeout di lock`` (lock_timeout) contains
    ``… a causa di timeout`` (statement_timeout), which English never does."""
    before: dict[str, set[str]] = {r.error_class: set() for r in rules}
    for pairs in texts.values():
        for cls_a, text_a in pairs:
            for cls_b, text_b in pairs:
                if cls_a != cls_b and len(text_a) >= 4 and text_a in text_b and text_a != text_b:
                    before[cls_a].add(cls_b)  # cls_b is the more specific: it goes first
    try:
        order = list(graphlib.TopologicalSorter(before).static_order())
    except graphlib.CycleError:  # two classes each containing the other somewhere: keep the table's order
        return rules
    return sorted(rules, key=lambda r: order.index(r.error_class))
