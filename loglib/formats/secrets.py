"""What a secret looks like in logs, metrics labels and notes: the one home of redaction's patterns.

:mod:`loglib.present.redact` applies them; this module only names them. Each pattern matches
the whole secret (never a prefix of it), so a replacement never keeps a readable part.

Example
-------
>>> from loglib.formats.secrets import TOKENS
>>> bool(TOKENS.search("key AKIAIOSFODNN7EXAMPLE used"))
True
"""

from __future__ import annotations

import re

#: names whose value is a secret, in any spelling: ``password=``, ``"api_key":``, ``PGPASSWORD=``,
#: ``DB_PASSWORD=``, ``X-Api-Key:``, ``sessionid=``, ``Cookie:`` …
KEY_WORDS = (
    r"password|passwd|passphrase|secret|client_?secret|token|access_?token|refresh_?token"
    r"|auth_?token|id_?token|api_?key|apikey|x-api-key|access_?key(?:_?id)?|secret_?key|private_?key"
    r"|aws_secret_access_key|aws_session_token|account_?key|accountkey|sharedaccesskey|sas_?token"
    r"|signature|credentials?|authorization|cookie|set-cookie|session(?:_?id)?|sessid|sid"
    r"|jsessionid|phpsessid|connect\.sid|csrf_?token|xsrf-token|webhook_?url|dsn|database_url|conn_?str"
    r"|connection_?string|license_?key|encryption_?key|signing_?key|master_?key"
)
#: short names that are secrets only on their own or after a separator (``db_pass``, not ``bypass``)
SHORT_KEY_WORDS = r"pass|pwd|pw|sid|pin|otp|sig|auth|dsn|key"
#: ``key=value`` / ``key: value`` / ``"key": "value"`` / ``&key=value``; a key may carry a prefix
#: with or without a separator (``PGPASSWORD``, ``DB_PASSWORD``, ``stripeApiKey``)
KEY_VALUE = re.compile(
    rf"""(?ix)
    (?P<key>(?:\\*["'])?(?<![A-Za-z0-9])
        (?:[A-Za-z0-9_.-]*?(?:{KEY_WORDS}) | (?:[A-Za-z0-9]+[_.-])*(?:{SHORT_KEY_WORDS}))
        (?![A-Za-z0-9])(?:\\*["'])?)
    (?P<sep>\s*[=:]\s*)
    (?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|(?P<q>\\+["'])(?:(?!(?P=q)).)*(?P=q)|(?!\[REDACTED)[^\s"',;&)}}\]<>\\]+)
    """
)
#: a cookie header: every ``name=value`` pair after ``Cookie:`` / ``Set-Cookie:``
COOKIE = re.compile(r"(?i)(?P<head>\b(?:set-)?cookie\s*[:=]\s*)(?P<body>[^\r\n]+)")
COOKIE_PAIR = re.compile(r"(?P<name>[^\s=;,]+)=(?P<value>[^;\s,]*)")
#: cookie attributes that are not secrets
COOKIE_ATTRIBUTES = frozenset(
    {"path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority", "version"}
)
#: ``CREATE/ALTER ROLE|USER … PASSWORD '…'`` (and ENCRYPTED PASSWORD, $$…$$ quoting)
SQL_PASSWORD = re.compile(
    r"""(?ix)(?P<head>\b(?:encrypted\s+|unencrypted\s+)?password\s+)(?P<value>'(?:[^']|'')*'|\$\$.*?\$\$|E'(?:[^'\\]|\\.)*')"""
)
#: ``scheme://user:password@host``
URL_PASSWORD = re.compile(r"(?i)(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)(?P<at>@)")
#: ``Authorization: Bearer …`` and friends
AUTH_HEADER = re.compile(
    r"(?i)\b(?P<kind>bearer|basic|token|digest|negotiate|apikey)(?P<sp>\s+)(?P<cred>[A-Za-z0-9._~+/=-]{8,})"
)
#: an ``Authorization:`` header's credential, whatever its length
AUTHORIZATION = re.compile(
    r"""(?i)(?P<head>\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|digest|negotiate|token|apikey)\s+)?+)"""
    r"""(?P<cred>(?!\[REDACTED)[^\s"',;]+)"""
)
#: PEM private keys (also cut ones: to the end of the text)
PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)
#: tokens with a recognisable shape, wherever they stand
TOKENS = re.compile(
    r"""(?x)
    \beyJ[A-Za-z0-9_-]{10,}(?:\.[A-Za-z0-9_-]*){0,2}                                 # JWT (also cut ones)
    | \b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b                     # AWS access key id
    | \bAIza[0-9A-Za-z_-]{35}\b                                                       # Google API key
    | \bya29\.[0-9A-Za-z_-]{20,}                                                      # Google OAuth token
    | \b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{10,}\b | \bwhsec_[0-9A-Za-z]{20,}\b     # Stripe
    | \bsk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}                    # OpenAI / Anthropic
    | \bgh[pousr]_[A-Za-z0-9]{30,}\b | \bgithub_pat_[A-Za-z0-9_]{40,}\b               # GitHub
    | \bgl(?:pat|dt|rt|ptt|cbt|oas|ft|imt|agent|soat)-[A-Za-z0-9_-]{20,}              # GitLab
    | \bGR1348941[A-Za-z0-9_-]{20,}                                                   # GitLab runner
    | \bxox[abposre]-[A-Za-z0-9-]{10,} | \bxapp-\d-[A-Za-z0-9-]{20,}                  # Slack tokens
    | https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]+       # Slack webhook
    | https://[a-z0-9.-]*discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]+      # Discord webhook
    | \bnpm_[A-Za-z0-9]{36}\b                                                         # npm
    | \bpypi-AgE[A-Za-z0-9_-]{50,}                                                    # PyPI
    | \bhf_[A-Za-z0-9]{30,}\b                                                         # Hugging Face
    | \b(?:AC|SK)[0-9a-f]{32}\b                                                       # Twilio
    | \bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}                                    # SendGrid
    | \bkey-[0-9a-z]{32}\b                                                            # Mailgun
    | \bHRKU-[A-Za-z0-9_-]{20,}                                                       # Heroku
    | \bdo[opr]_v1_[0-9a-f]{64}\b                                                     # DigitalOcean
    | \bsntry[su]_[A-Za-z0-9_=+/-]{20,}                                               # Sentry token
    | https?://[0-9a-f]{32}(?::[0-9a-f]{32})?@[a-z0-9.-]*sentry\.io/\d+                # Sentry DSN
    | \bshp(?:at|ss|ca|pa)_[0-9a-fA-F]{32}\b                                          # Shopify
    | \bdapi[0-9a-f]{32}\b                                                            # Databricks
    | \bAccountKey=[A-Za-z0-9+/=]{20,}                                                # Azure storage
    | \bglc_[A-Za-z0-9+/=_-]{30,}                                                     # Grafana cloud
    | \bnrak-[A-Z0-9]{27}\b                                                           # New Relic
    """
)
#: a token of a known kind cut short for display ("ghp_a1b2c3…"): the visible part goes too
CUT_TOKEN = re.compile(
    r"(?:\b(?:gh[pousr]_|github_pat_|gl[a-z]{2,5}-|xox[a-z]-|xapp-|sk-|[sr]k_(?:live|test)_|whsec_|eyJ|AKIA|ASIA"
    r"|AIza|ya29\.|SG\.|hf_|pypi-|npm_|HRKU-|do[opr]_v1_|sntry[su]_|shp[a-z]{2}_|dapi|glc_|nrak-)"
    r"[A-Za-z0-9_.+/=-]*)(?:…|\.\.\.)"
)
#: a card number: 13–19 digits starting 2–6 (the card networks' ranges), optionally grouped by spaces or dashes (Luhn-checked before use)
CARD = re.compile(r"(?<![\d.-])[2-6](?:[ -]?\d){12,18}(?![\d-])")
#: e-mail addresses
EMAIL = re.compile(r"(?<![\w.+/:-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (13–19 of them) pass the Luhn check card numbers carry.

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    if not 13 <= len(digits) <= 19 or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
