"""Localised PostgreSQL servers (``lc_messages`` other than English), read through the server's own
message catalogs: the ``postgres-<major>.mo`` files that the ``postgresql`` package installs.

A catalog maps each English msgid to its translation. Read backwards it gives the severities
(``FEHLER`` → ``ERROR``, ``ASTUCE`` → ``HINT``) and the messages that name events
(``Verbindung wird abgebrochen aufgrund von Anweisung des Administrators`` → ``terminating
connection due to administrator command``), so that events and fields work in every language
PostgreSQL speaks. Only the messages the event rules look at are translated back; the rest of a
localised message is left as the server wrote it.

Examples
--------
>>> lang = language_of(["2024-03-01 10:00:00.000 UTC [7] FEHLER:  Relation »t« existiert nicht"])
>>> lang.code if lang else None  # doctest: +SKIP
'de'
"""

from __future__ import annotations

import functools
import gettext
import glob
import os
import re
from dataclasses import dataclass, field

from loglib.formats.pg_messages import PG_EVENT_RULES

#: where the catalogs live: LOGLIB_PG_LOCALEDIR, else the system's locale directories
_LOCALE_DIRS = ("/usr/share/locale", "/usr/local/share/locale", "/usr/local/pgsql/share/locale")
_PRIMARY = ("LOG", "ERROR", "FATAL", "PANIC", "WARNING", "NOTICE", "INFO", "DEBUG")
_SECONDARY = ("DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION")
# a printf conversion as PostgreSQL's messages use them (%m is strerror)
_CONVERSION = re.compile(r"%(?:\d+\$)?[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfFgGcspm]")
# connection-authorized fragments appended to "connection authorized: user=%s" (postinit.c)
_FRAGMENT = re.compile(r"^ (?:\w+=%s|SSL enabled \(|GSS \()")


@dataclass
class Language:
    """One catalog read backwards: severity words and message pieces to English."""

    code: str
    #: translated severity word (as printed before ':  ', e.g. 'ASTUCE ') -> English
    severities: dict[str, str] = field(default_factory=dict)
    #: (translated literal piece, English piece) of the messages events depend on, longest first
    pieces: list[tuple[str, str]] = field(default_factory=list)
    #: translated first pieces: only messages starting with one are translated back
    starts: tuple[str, ...] = ()
    unknown: str = "[unknown]"

    def severity_words(self) -> tuple[str, ...]:
        """Every severity this server may print, translated and English, longest first."""
        words = {*self.severities, *_PRIMARY, *_SECONDARY, "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5"}
        return tuple(sorted(words, key=len, reverse=True))

    def english_severity(self, word: str) -> str:
        return self.severities.get(word, word.strip())

    def english(self, message: str) -> str:
        """The message with its event-naming pieces in English (unchanged when none starts it).

        >>> de = Language("de", pieces=[("Verbindung empfangen: Host=", "connection received: host="),
        ...     (" Port=", " port=")], starts=("Verbindung empfangen: Host=",))
        >>> de.english("Verbindung empfangen: Host=10.0.0.5 Port=5000")
        'connection received: host=10.0.0.5 port=5000'
        """
        if not message.startswith(self.starts):
            return message
        for translated, english in self.pieces:
            if translated in message:
                message = message.replace(translated, english)
        return message


def _pieces(text: str) -> list[str]:
    return _CONVERSION.split(text.replace("%%", "\0"))


def _filled(msgid: str) -> str:
    """A msgid with sample values in its conversions, for testing it against the event rules."""
    return _CONVERSION.sub(lambda m: "1" if m.group(0)[-1] in "diouxX" else "x", msgid)


@functools.cache
def _event_rule() -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{regex})" for _, _, regex in PG_EVENT_RULES))


@functools.cache
def _names_an_event(msgid: str) -> bool:
    """True for a msgid an event rule matches (every language's catalog has the same msgids)."""
    return bool(_FRAGMENT.match(msgid) or _event_rule().match(_filled(msgid)))


def _event_msgids(catalog: dict) -> list[str]:
    return [m for m in catalog if isinstance(m, str) and m and catalog[m] and _names_an_event(m)]


def _language(code: str, path: str) -> Language | None:
    with open(path, "rb") as fh:
        catalog = gettext.GNUTranslations(fh)._catalog  # the msgid -> msgstr table
    lang = Language(code)
    for word in _PRIMARY:
        lang.severities[catalog.get(word) or word] = word
    for word in _SECONDARY:
        translated = catalog.get(f"{word}:  ")
        if translated and translated.endswith(":  "):
            lang.severities[translated[:-3]] = word
    lang.severities = {k: v for k, v in lang.severities.items() if k != v}
    starts: list[str] = []
    pairs: dict[str, str] = {}
    for msgid in _event_msgids(catalog):
        msgstr = catalog[msgid]
        if "$" in msgstr:  # reordered arguments: pieces do not line up
            continue
        src, dst = _pieces(msgstr), _pieces(msgid)
        if len(src) != len(dst):
            continue
        for translated, english in zip(src, dst, strict=True):
            translated, english = translated.replace("\0", "%"), english.replace("\0", "%")
            if len(translated.strip()) >= 2 and translated != english:
                pairs.setdefault(translated, english)
        if not _FRAGMENT.match(msgid) and len(src[0]) >= 4:
            starts.append(src[0].replace("\0", "%"))
    lang.pieces = sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)
    lang.starts = tuple(dict.fromkeys(starts))
    lang.unknown = catalog.get("[unknown]") or "[unknown]"
    if not lang.severities and not lang.pieces:
        return None
    return lang


def catalog_paths(domain: str = "postgres") -> dict[str, str]:
    """``{language code: path}`` of the newest installed catalog of ``domain`` per language:
    ``postgres`` (the server's ``postgres-<major>.mo``) or ``libpq`` (the client library's
    ``libpq5-<major>.mo``, which the ``libpq5`` package installs) or ``libc`` (glibc's strerror)."""
    dirs = (
        [os.environ["LOGLIB_PG_LOCALEDIR"]] if os.environ.get("LOGLIB_PG_LOCALEDIR") else list(_LOCALE_DIRS)
    )
    found: dict[str, tuple[int, str]] = {}
    for base in dirs:
        for path in glob.glob(os.path.join(base, "*", "LC_MESSAGES", f"{domain}*.mo")):
            code = path.split(os.sep)[-3]
            major = re.fullmatch(rf"{domain}\d?-?(\d+)?\.mo", os.path.basename(path))
            if major is None:  # another program's catalog whose name starts the same
                continue
            version = int(major.group(1)) if major.group(1) else 0
            if code not in found or version > found[code][0]:
                found[code] = (version, path)
    return {code: path for code, (_v, path) in sorted(found.items())}


def _catalog_paths() -> dict[str, str]:
    return catalog_paths("postgres")


@functools.cache
def languages() -> tuple[Language, ...]:
    """Every installed PostgreSQL catalog, read backwards (empty when none is installed)."""
    out = []
    for code, path in _catalog_paths().items():
        try:
            lang = _language(code, path)
        except (OSError, ValueError):  # an unreadable or foreign .mo: that language is not offered
            continue
        if lang is not None:
            out.append(lang)
    return tuple(out)


def language_of(lines: list[str]) -> Language | None:
    """The language whose translated severities (``FEHLER:  ``, ``ASTUCE :  ``…) most lines carry."""
    best, best_n = None, 0
    for lang in languages():
        marks = tuple(f"{w}:  " for w in lang.severities)
        if not marks:
            continue
        n = sum(1 for ln in lines if any(m in ln for m in marks))
        if n > best_n:
            best, best_n = lang, n
    return best
