"""A corpus of secrets of every kind loglib promises to keep out of its exports.

The shapes follow the public rules of secret scanners (gitleaks' ``config/gitleaks.toml``, MIT
licence; Yelp's detect-secrets plugins, Apache-2.0) and what database incidents put in logs;
see tests/files/secrets/README.md. The values are generated here from a fixed seed, so every
8-character window of a secret's private part is distinctive: finding one in an output means
the secret leaked, whole or cut.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

_rng = random.Random(20261202)
_ALNUM = string.ascii_letters + string.digits


def _r(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _hex(n: int) -> str:
    return _r(n, "0123456789abcdef")


def _card(prefix: str, length: int) -> str:
    body = prefix + "".join(_rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Secret:
    """One planted secret: ``text`` is what is written; ``private`` is the part that must not leak."""

    kind: str
    text: str
    private: str

    def fragments(self, size: int = 8) -> list[str]:
        """Every ``size``-character window of the private part (the whole of it when shorter)."""
        p = self.private
        return [p] if len(p) <= size else [p[i : i + size] for i in range(len(p) - size + 1)]


def _s(kind: str, template: str, private: str, public: str = "") -> Secret:
    """``public`` is the well-known start of the secret (``https://hooks.slack.com/…``): it is
    written but not searched for, since libraries carry it too."""
    return Secret(kind, template.format(p=public + private), private)


_jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJ" + _r(40) + "." + _r(43)
_card_visa, _card_mc, _card_amex = _card("4", 16), _card("51", 16), _card("37", 15)

CORPUS: list[Secret] = [
    _s("dsn_url_password", "postgresql://checkout:{p}@db-prod.internal:5432/shop", _r(14)),
    _s("dsn_keyword_password", "host=db1 user=app password={p} dbname=shop", _r(12)),
    _s("pgpassword_env", "PGPASSWORD={p} psql -h db1", _r(16)),
    _s("env_password", "DB_PASSWORD={p}", _r(15)),
    _s("env_secret", "DJANGO_SECRET_KEY={p}", _r(30)),
    _s("env_token", "GITHUB_TOKEN={p}", _r(20)),
    _s("sql_alter_role", "ALTER ROLE app WITH PASSWORD '{p}'", _r(13)),
    _s("sql_create_user", "CREATE USER report ENCRYPTED PASSWORD '{p}' VALID UNTIL 'infinity'", _r(13)),
    _s("json_password", '{{"user": "app", "password": "{p}"}}', _r(12)),
    _s("json_api_key", '{{"api_key": "{p}", "retry": 3}}', _r(32)),
    _s("logfmt_token", 'level=error msg="auth failed" token={p} attempt=2', _r(24)),
    _s("url_query_token", "GET /v1/orders?access_token={p}&page=2", _r(28)),
    _s("header_api_key", "X-Api-Key: {p}", _r(32)),
    _s("bearer", "Authorization: Bearer {p}", _r(36)),
    _s("basic", "Authorization: Basic {p}", _r(24, _ALNUM + "+/") + "=="),
    _s("cookie", "Cookie: theme=dark; sessionid={p}; lang=en", _r(32)),
    _s("set_cookie", "Set-Cookie: JSESSIONID={p}; Path=/; HttpOnly", _hex(32).upper()),
    _s("session_id", "session_id={p} user=42", _hex(32)),
    _s("jwt", "token accepted: {p}", _jwt),
    _s("jwt_json", '{{"id_token":"{p}"}}', _jwt),
    _s("aws_access_key", "aws access key {p} used", "AKIA" + _r(16, string.ascii_uppercase + string.digits)),
    _s("aws_secret", "aws_secret_access_key = {p}", _r(40, _ALNUM + "/+")),
    _s("gcp_api_key", "maps key {p}", "AIza" + _r(35, _ALNUM + "_-")),
    _s(
        "gcp_private_key_json",
        '"private_key": "{p}\\n-----END PRIVATE KEY-----\\n"',
        _r(60),
        "-----BEGIN PRIVATE KEY-----\\n",
    ),
    _s(
        "pem_key", "key file: {p}\n-----END RSA PRIVATE KEY-----", _r(64), "-----BEGIN RSA PRIVATE KEY-----\n"
    ),
    _s(
        "azure_account_key",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={p};EndpointSuffix=core.windows.net",
        _r(86, _ALNUM + "+/") + "==",
    ),
    _s("azure_client_secret", "AZURE_CLIENT_SECRET={p}", _r(8) + "~" + _r(31)),
    _s("github_pat", "cloned with {p}", "ghp_" + _r(36)),
    _s("github_fine_grained", "cloned with {p}", "github_pat_" + _r(22) + "_" + _r(59)),
    _s("gitlab_pat", "push with {p}", "glpat-" + _r(20)),
    _s("gitlab_deploy", "deploy token {p}", "gldt-" + _r(20)),
    _s("slack_bot", "slack {p}", "xoxb-" + _r(12, string.digits) + "-" + _r(24)),
    _s(
        "slack_webhook",
        "alerts go to {p}",
        "T" + _r(8, string.ascii_uppercase) + "/B" + _r(8, string.ascii_uppercase) + "/" + _r(24),
        "https://hooks.slack.com/services/",
    ),
    _s("npm", "registry token {p}", "npm_" + _r(36)),
    _s("stripe_live", "charge with {p}", "sk_live_" + _r(24)),
    _s("stripe_webhook", "stripe webhook secret {p}", "whsec_" + _r(32)),
    _s("twilio", "twilio key {p}", "SK" + _hex(32)),
    _s("sendgrid", "mail via {p}", "SG." + _r(22, _ALNUM + "_-") + "." + _r(43, _ALNUM + "_-")),
    _s("mailgun", "mailgun {p}", "key-" + _r(32, string.ascii_lowercase + string.digits)),
    _s("heroku", "heroku {p}", "HRKU-" + _r(60, _ALNUM + "_-")),
    _s("digitalocean", "doctl {p}", "dop_v1_" + _hex(64)),
    _s("sentry_dsn", "SENTRY_DSN={p}@o123456.ingest.sentry.io/7890", _hex(32), "https://"),
    _s("sentry_token", "sentry {p}", "sntrys_" + _r(60)),
    _s("pypi", "twine upload with {p}", "pypi-AgEIcHlwaS5vcmc" + _r(60, _ALNUM + "_-")),
    _s("huggingface", "HF {p}", "hf_" + _r(34)),
    _s("openai", "openai {p}", "sk-proj-" + _r(48)),
    _s("card_visa", "payment card {p} declined", _card_visa),
    _s("card_grouped", "card {p} declined", " ".join(_card_mc[i : i + 4] for i in range(0, 16, 4))),
    _s("card_amex", "amex {p}", _card_amex),
    _s("email", "notified {p}@example.com", _r(10, string.ascii_lowercase), "oncall."),
]

#: kinds, for the recall table
KINDS = sorted({s.kind for s in CORPUS})
