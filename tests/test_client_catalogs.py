"""Issue 18: libpq/psycopg client errors in other languages classify like English ones.

The real wording comes from real software: psycopg over the system's libpq (``PSYCOPG_IMPL=python``)
with ``LANGUAGE=de|fr|es|ru|ja`` prints libpq's translated messages and glibc's translated
strerror, and the app logs them with Python ``logging``. The server's reasons come from the
server's own catalogs (``postgres-<major>.mo``), as a localised server sends them.
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import loglib as ll
from loglib.formats.client_catalogs import CLIENT_MSGIDS, _catalog, localized_rules
from loglib.formats.pg_catalogs import _CONVERSION, catalog_paths
from tests.conftest import require

APP = textwrap.dedent(
    """
    import locale, logging, sys, time
    locale.setlocale(locale.LC_ALL, "")  # what makes libpq speak the user's language
    import psycopg
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    fmt.converter = time.gmtime
    h = logging.FileHandler(sys.argv[1]); h.setFormatter(fmt)
    log = logging.getLogger("shop.api"); log.addHandler(h); log.setLevel(logging.INFO)
    log.info("request GET /orders")
    try:
        psycopg.connect("host=127.0.0.1 port=1 dbname=shop user=app connect_timeout=2")
    except psycopg.OperationalError:
        log.exception("GET /orders failed")
    """
)


def _system_libpq() -> bool:
    return ctypes.util.find_library("pq") is not None


@pytest.mark.parametrize("lang", ["de", "fr", "es", "ru", "ja"])
def test_real_psycopg_refusal_in_other_languages(tmp_path: Path, lang: str) -> None:
    """psycopg's own localised 'connection … failed: Connection refused' is connection_refused."""
    require(lang in catalog_paths("libpq"), f"libpq's {lang} message catalog (libpq5 package)")
    require(_system_libpq(), "the system libpq (libpq5)")
    log = tmp_path / "app.log"
    env = {**os.environ, "LANGUAGE": lang, "LC_ALL": "C.UTF-8", "PSYCOPG_IMPL": "python"}
    subprocess.run([sys.executable, "-c", APP, str(log)], env=env, check=True, timeout=60)
    text = log.read_text(encoding="utf-8")
    assert "connection to server at" not in text, "libpq did not translate: the test would prove nothing"
    df = ll.read_app_log(log, tz="UTC")
    failed = df.filter(df["level"] == "error")
    assert failed.height == 1
    assert failed["error_class"].to_list() == ["connection_refused"], failed["message"][0]


def _fill(msgstr: str) -> str:
    first = msgstr.split("\n", 1)[0]
    return _CONVERSION.sub(lambda m: "5432" if m.group(0)[-1] in "diouxX" else "checkout", first)


def _server_cases() -> list[tuple[str, str, str]]:
    cases = []
    libpq = catalog_paths("libpq")
    for lang, path in catalog_paths("postgres").items():
        server = _catalog(path)
        prefix = (
            _catalog(libpq[lang]).get('connection to server at "%s" (%s), port %s failed: ', "")
            if lang in libpq
            else ""
        )
        for cls, _prio, domain, msgid in CLIENT_MSGIDS:
            if domain == "postgres" and server.get(msgid):
                line = f"psycopg.OperationalError: connection failed: {_fill(prefix)}FATAL:  {_fill(server[msgid])}"
                cases.append((lang, cls, line))
    return cases


def test_server_reasons_in_every_installed_language() -> None:
    """Each reason a localised server gives, inside libpq's translated wrapper, gets its class."""
    cases = _server_cases()
    require(bool(cases), "PostgreSQL's message catalogs (postgresql package)")
    wrong = [(lang, cls, line) for lang, cls, line in cases if ll.classify_error(line) != cls]
    assert wrong == []
    assert len({lang for lang, _, _ in cases}) >= 5


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # the server's words, as the de/fr/es catalogs of PostgreSQL 15 write them
        ("FATAL:  tut mir leid, schon zu viele Verbindungen", "too_many_connections"),
        ("FATAL:  désolé, trop de clients sont déjà connectés", "too_many_connections"),
        ("FATAL:  Passwort-Authentifizierung für Benutzer »app« fehlgeschlagen", "auth_failed"),
        ("psycopg.errors.AdminShutdown: Verbindung wird abgebrochen aufgrund von Anweisung des Administrators",
         "admin_shutdown"),
        ("FATAL:  el sistema de base de datos está iniciándose", "server_not_ready"),
        # libpq's (libpq5-15 de/fr/ru)
        ("psycopg2.OperationalError: Server beendete die Verbindung unerwartet", "server_closed"),
        ("OperationalError: konnte Hostnamen »db.internal« nicht in Adresse übersetzen: "
         "Der Name oder der Dienst ist nicht bekannt", "dns_failure"),
        ("psycopg2.OperationalError: Timeout abgelaufen", "connect_timeout"),
        ("psycopg2.OperationalError: сервер неожиданно закрыл соединение", "server_closed"),
        ("OperationalError: erreur SYSCALL SSL : EOF détecté", "ssl_eof"),
    ],
)  # fmt: skip
def test_localised_wording(line: str, expected: str) -> None:
    require(bool(localized_rules()), "PostgreSQL's message catalogs (postgresql/libpq5 packages)")
    assert ll.classify_error(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "GET /health 200 Verbindung ok",
        "INFO shop.api: Bestellung 4711 gespeichert (Server eu-1, Port 8080)",
        "INFO app: la connexion est établie",
        "INFO app: 3 Timeouts in der letzten Stunde konfiguriert",
    ],
)
def test_ordinary_localised_text_is_no_error(line: str) -> None:
    assert ll.classify_error(line) is None


def test_rules_name_their_catalogs() -> None:
    """Each translated rule says which catalogs it came from, and keeps its English rule's tier."""
    rules = localized_rules()
    require(bool(rules), "PostgreSQL's message catalogs")
    tiers: dict[str, set[int]] = {}
    for r in ll.formats.error_rules.ERROR_RULES:
        tiers.setdefault(r.error_class, set()).add(r.priority)
    for rule in rules:
        assert rule.source.startswith("translations in ") and ".mo " in rule.source
        assert rule.priority == max(tiers[rule.error_class])
