"""Redaction of secrets (and, on request, hosts) in text, frames and figures before they leave loglib.

Always removed: passwords in connection URLs and DSNs, ``password=``-like fields in any spelling
(``PGPASSWORD=``, ``"api_key":``, ``X-Api-Key:``, ``&token=``), SQL ``PASSWORD '…'`` clauses, cookies
and session ids, bearer and basic credentials, API keys and tokens of well-known shapes (JWTs, cloud,
SaaS and webhook keys), private keys, Luhn-valid card numbers and e-mail addresses; the patterns
live in :mod:`loglib.formats.secrets`. A secret is always replaced whole. With ``hosts=True`` IP addresses and host names are replaced by stable
pseudonyms (``db-1`` for a database server, ``client-7`` for a client address, ``host-2`` for
other hosts): the same value always gets the same pseudonym, so correlations still read.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import polars as pl

from loglib._compat import to_polars
from loglib.formats import secrets as _s

SECRET = "[REDACTED]"
EMAIL = "[EMAIL]"

# hosts (only with hosts=True)
_IPV4 = r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])"
_H4 = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?<![\w:])(?:(?:{_H4}:){{7}}{_H4}"  # full form
    rf"|(?:{_H4}(?::{_H4})*)?::{_H4}(?::{_H4})*"  # compressed, ends with a group (fe80::1, ::1)
    rf"|{_H4}(?::{_H4})*::)(?![\w:])"  # compressed, ends with :: (fe80::)
)
_HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*"
_DB_SCHEMES = (
    r"(?:jdbc:)?(?:postgres(?:ql)?|pgsql|mysql|mariadb|redis|rediss|mongodb(?:\+srv)?|amqps?|mssql|sqlserver"
    r"|oracle|cockroachdb|timescaledb)(?:\+[a-z0-9]+)?"
)
# host positions that name a database server
_DB_HOST = re.compile(
    rf"""(?ix)
    (?P<pre>\b{_DB_SCHEMES}://(?:[^\s/@]*@)?) (?P<host>{_HOSTNAME})                   # URL host
    | (?P<pre2>\bhost(?:name|addr)?\s*=\s*["']?) (?P<host2>{_HOSTNAME})              # DSN host=
    | (?P<pre3>\bconnection\ to\ server\ at\ ["']) (?P<host3>{_HOSTNAME})            # libpq message
    | (?P<pre4>\btranslate\ host\ name\ ["']) (?P<host4>{_HOSTNAME})
    """
)
_IP = re.compile(f"{_IPV4}|{_IPV6}")
#: columns whose whole value is a host (pseudonymised as a whole with hosts=True)
HOST_COLUMNS: dict[str, str] = {
    "client_host": "client",
    "host": "host",
    "instance": "host",
    "hostname": "host",
}
_NOT_HOSTS = frozenset({"localhost", "unknown", "[unknown]", "[local]", "local"})


class Redactor:
    """Removes secrets from text, frames and figures; optionally pseudonymises hosts and IPs.

    One ``Redactor`` keeps its pseudonyms, so the same host reads the same in every table and
    chart it redacts (``10.0.3.7`` is ``client-1`` everywhere).

    Parameters
    ----------
    hosts
        Replace IP addresses and host names by stable pseudonyms (``db-1``, ``client-7``,
        ``host-2``). Off by default: hosts are usually not secret, and they help a reader.
    extra
        More regular expressions whose matches become ``[REDACTED]`` (e.g. customer ids).
    paths
        Local folders and what to write instead (``{"/home/ana/incidents/x": "x"}``): a file
        under one becomes relative to it, the folder itself its replacement. Exports name no
        local absolute path (a bundle is shared).
    secrets
        Remove secrets (default). ``secrets=False`` is the paths-only mode of ``--no-redact``:
        local paths are still made relative (and hosts pseudonymised if asked), secrets kept.

    Examples
    --------
    >>> from loglib.present.redact import Redactor
    >>> r = Redactor(hosts=True)
    >>> r.text("postgresql://app:hunter2@db.internal:5432/shop from 10.1.2.3")
    'postgresql://app:[REDACTED]@db-1:5432/shop from client-1'
    >>> r.text("retry from 10.1.2.3; mail ops@example.com")
    'retry from client-1; mail [EMAIL]'
    >>> Redactor(secrets=False, paths={"/home/ana/inc": "inc"}).text("pw=hunter2 in /home/ana/inc/app.log:3")
    'pw=hunter2 in app.log:3'
    """

    def __init__(
        self,
        *,
        hosts: bool = False,
        extra: Iterable[str | re.Pattern[str]] = (),
        paths: Mapping[str, str] | None = None,
        secrets: bool = True,
    ) -> None:
        self.hosts = bool(hosts)
        self.secrets = bool(secrets)
        # longest first: a folder inside another is replaced before its parent
        folders = sorted(
            ((str(k).rstrip("/"), v) for k, v in (paths or {}).items() if str(k).strip("/")),
            key=lambda kv: -len(kv[0]),
        )
        # a folder followed by "/" (a file in it: made relative) or by no more of a name
        self.paths = [(f, re.compile(re.escape(f) + r"(/|(?![\w\-]|\.\w))"), v) for f, v in folders]
        # the same folders cut short by a display ("/home/ana/incid…"): the cut part becomes "…"
        self._cut_paths = [_cut_pattern(f) for f, _ in folders if f.count("/") >= 2]
        self.extra = tuple(re.compile(p) if isinstance(p, str) else p for p in extra)
        self.pseudonyms: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._cache: dict[str, str] = {}

    # --- pseudonyms ------------------------------------------------------------------------
    def pseudonym(self, value: str, kind: str = "host") -> str:
        """The stable pseudonym of a host or address (``kind`` names new ones: db, client, host)."""
        key = value.lower()
        if key not in self.pseudonyms:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            self.pseudonyms[key] = f"{kind}-{n}"
        return self.pseudonyms[key]

    def _hosts(self, text: str) -> str:
        def db(m: re.Match[str]) -> str:
            for i in ("", "2", "3", "4"):
                host = m.group(f"host{i}")
                if host is not None:
                    if host.lower() in _NOT_HOSTS or re.fullmatch(r"\d+", host):
                        return m.group(0)
                    return m.group(f"pre{i}") + self.pseudonym(host, "db")
            return m.group(0)

        text = _DB_HOST.sub(db, text)
        return _IP.sub(lambda m: self.pseudonym(m.group(0), "client"), text)

    # --- text ------------------------------------------------------------------------------
    def text(self, value: str | None) -> str | None:
        """``value`` with secrets removed (and hosts pseudonymised when asked); None stays None."""
        if value is None or not isinstance(value, str):
            return value
        hit = self._cache.get(value)
        if hit is not None:
            return hit
        out = value
        for folder, pattern, name in self.paths:
            if folder in out:
                out = pattern.sub(lambda m, n=name: "" if m.group(1) else n, out)
        for cut in self._cut_paths:
            out = cut.sub("…", out)
        if self.secrets:
            out = self._secrets(out)
        if self.hosts:
            out = self._hosts(out)
        if len(self._cache) < 200_000:
            self._cache[value] = out
        return out

    def _secrets(self, out: str) -> str:
        out = _s.PEM.sub(SECRET, out)
        out = _s.URL_PASSWORD.sub(lambda m: m.group("head") + SECRET + m.group("at"), out)
        out = _s.SQL_PASSWORD.sub(lambda m: m.group("head") + "'" + SECRET + "'", out)
        out = _s.TOKENS.sub(SECRET, out)
        out = _s.AUTHORIZATION.sub(lambda m: m.group("head") + SECRET, out)
        out = _s.AUTH_HEADER.sub(_auth_sub, out)
        out = _s.COOKIE.sub(_cookie_sub, out)
        out = _s.KEY_VALUE.sub(_kv_sub, out)
        out = _s.CARD.sub(_card_sub, out)
        out = _s.CUT_TOKEN.sub(SECRET + "…", out)
        for pattern in self.extra:
            out = pattern.sub(SECRET, out)
        return _s.EMAIL.sub(EMAIL, out)

    def value(self, value: str | None, column: str | None = None) -> str | None:
        """A cell: a whole host value of a host column becomes its pseudonym, else :meth:`text`."""
        if value is None:
            return None
        if self.hosts and column is not None:
            kind = HOST_COLUMNS.get(column.lower())
            if kind and value.strip() and value.lower() not in _NOT_HOSTS:
                host, sep, port = value.rpartition(":") if _has_port(value) else (value, "", "")
                return self.pseudonym(host, kind) + sep + port
        return self.text(value)

    # --- frames ----------------------------------------------------------------------------
    def frame(self, frame: Any, *, columns: Iterable[str] | None = None) -> pl.DataFrame:
        """Every text in ``frame`` redacted: string columns, lists of strings, struct fields (labels).

        Parameters
        ----------
        frame
            A polars or pandas frame.
        columns
            Only these columns (default: every column that can carry text).
        """
        df = to_polars(frame)
        chosen = set(columns) if columns is not None else None
        exprs = []
        for name, dtype in df.schema.items():
            if chosen is not None and name not in chosen:
                continue
            if _has_text(dtype):
                exprs.append(self._expr(pl.col(name), dtype, name))
        return df.with_columns(exprs) if exprs else df

    def _expr(self, expr: pl.Expr, dtype: pl.DataType, column: str) -> pl.Expr:
        if dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
            fn = self._mapper(column)
            return expr.cast(pl.String).map_batches(fn, return_dtype=pl.String)
        if isinstance(dtype, pl.List):
            return expr.list.eval(self._expr(pl.element(), dtype.inner, column))
        if isinstance(dtype, pl.Struct):
            fields = [
                self._expr(expr.struct.field(f.name), f.dtype, f.name).alias(f.name)
                if _has_text(f.dtype)
                else expr.struct.field(f.name)
                for f in dtype.fields
            ]
            return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields)).alias(column)
        return expr

    def _mapper(self, column: str) -> Callable[[pl.Series], pl.Series]:
        def apply(s: pl.Series) -> pl.Series:
            uniq = s.drop_nulls().unique(maintain_order=True)  # pseudonyms numbered in order seen
            if uniq.len() == 0:
                return s.cast(pl.String)
            mapping = {v: self.value(v, column) for v in uniq.to_list()}
            return s.replace_strict(mapping, default=None, return_dtype=pl.String)

        return apply

    # --- figures ---------------------------------------------------------------------------
    def figure(self, fig: Any) -> Any:
        """A copy of a plotly figure whose every text (titles, labels, legend, hover) is redacted."""
        import plotly.graph_objects as go

        spec = fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else dict(fig)
        clean = self._walk(spec, None)
        return go.Figure(clean, skip_invalid=True)

    def _walk(self, obj: Any, key: str | None) -> Any:
        if isinstance(obj, str):
            return obj if key in _FIGURE_CODE_KEYS else self.text(obj)
        if isinstance(obj, dict):
            return {k: self._walk(v, k) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self._walk(v, key) for v in obj]
        if (
            type(obj).__module__ == "numpy"
            and getattr(obj, "dtype", None) is not None
            and obj.dtype.kind in "OUS"
        ):
            return [self._walk(v, key) for v in obj.tolist()]
        return obj

    # --- notebooks (the report's last guard) -----------------------------------------------
    def notebook(self, nb: Any) -> int:
        """Redact every output of an executed notebook in place; return how many texts changed.

        Streams, ``text/*`` outputs (HTML by its text nodes and attributes, so escaped quotes
        don't hide a secret), JSON outputs (plotly figures) and tracebacks. Images are left:
        loglib's notebook draws its charts as plotly JSON, which is redacted.
        """
        from loglib.present.markup import map_outputs

        def clean(value: Any, mime: str) -> Any:
            if not (mime.startswith("text/") or mime.endswith("json")):
                return value  # images: base64, not text
            if isinstance(value, str):
                return self.html(value) if mime == "text/html" else self.text(value)
            return self._walk(value, None)

        return map_outputs(nb, clean)

    def html(self, markup: str) -> str:
        """``markup`` with secrets removed from its text, attributes and scripts.

        Text nodes are unescaped before redaction and escaped again after, so that
        ``PASSWORD &#x27;x&#x27;`` is found like ``PASSWORD 'x'``.
        """
        parts = _SCRIPT.split(markup)
        for i, part in enumerate(parts):
            if i % 4 == 2:  # the code inside <script>/<style>: only its string literals are data
                parts[i] = part if _is_library(part) else _JS_STRING.sub(self._js_string, part)
                continue
            if i % 4:  # the <script …> and </script> tags themselves
                continue
            part = self.text(part) or ""
            parts[i] = _TEXT_NODE.sub(
                lambda m: ">" + html.escape(self.text(html.unescape(m.group(1))) or "", quote=False) + "<",
                part,
            )
        return "".join(parts)

    def _js_string(self, m: re.Match[str]) -> str:
        literal = m.group(0)
        try:
            value = json.loads(literal)
        except ValueError:  # not a JSON string (a JS-only escape): left as it is
            return literal
        clean = self.text(value)
        if clean == value:
            return literal
        # re-encoded so that nothing in it can close the script: </script> stays \u003c\u002fscript\u003e
        return json.dumps(clean).replace("<", "\\u003c").replace(">", "\\u003e").replace("/", "\\u002f")


def _is_library(code: str) -> bool:
    """A bundled library (plotly.js, require.js) inlined in an output: code, never data."""
    return len(code) > 500_000 or "plotly.js v" in code[:2000]


_JS_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_SCRIPT = re.compile(r"(<(?:script|style)\b[^>]*>)(.*?)(</(?:script|style)>)", re.S | re.I)
_TEXT_NODE = re.compile(r">([^<>]*&[^<>]*)<")


def redact_displays(redactor: Redactor | None = None, *, hosts: bool = False) -> Redactor:
    """Redact every polars/pandas frame a notebook displays, before it is drawn; return the redactor.

    Call once in a notebook's first cell (the postmortem does): frames are redacted whole, then
    displayed, so a secret is never cut into a visible prefix by the table's width.

    >>> from loglib.present.redact import redact_displays
    >>> r = redact_displays()      # doctest: +SKIP
    """
    from IPython import get_ipython

    red = redactor or Redactor(hosts=hosts)
    shell = get_ipython()
    if shell is None:
        return red
    formatters = shell.display_formatter.formatters
    for mime, method in (("text/html", "_repr_html_"), ("text/plain", "__repr__")):
        for type_name in ("polars.dataframe.frame.DataFrame", "pandas.core.frame.DataFrame"):
            module, _, name = type_name.rpartition(".")

            def show(frame: Any, _p: Any = None, _c: Any = None, _m: str = method, _mime: str = mime) -> Any:
                clean = red.frame(frame)
                if type(frame).__module__.startswith("pandas"):
                    clean = clean.to_pandas()
                text = getattr(clean, _m)()
                if _mime == "text/plain" and _p is not None:
                    _p.text(text)
                    return None
                return text

            formatters[mime].for_type_by_name(module, name, show)
    return red


#: figure keys whose strings are code, colours or enums, never evidence text
_FIGURE_CODE_KEYS = frozenset(
    {"color", "bgcolor", "bordercolor", "fillcolor", "linecolor", "gridcolor", "tickcolor", "type", "mode",
     "xref", "yref", "xanchor", "yanchor", "axref", "ayref", "dash", "shape", "symbol", "family",
     "tickformat", "hoverformat", "fill", "orientation", "hovermode", "barmode", "layer", "xaxis", "yaxis",
     "anchor", "overlaying", "matches", "side", "textposition", "ticks", "rangemode"}
)  # fmt: skip


_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "apikey"})


def _auth_sub(m: re.Match[str]) -> str:
    return m.group(0) if m.group("cred").startswith("[REDACTED") else m.group("kind") + m.group("sp") + SECRET


def _cookie_sub(m: re.Match[str]) -> str:
    def pair(p: re.Match[str]) -> str:
        if p.group("name").lower() in _s.COOKIE_ATTRIBUTES or not p.group("value"):
            return p.group(0)
        return p.group("name") + "=" + SECRET

    return m.group("head") + _s.COOKIE_PAIR.sub(pair, m.group("body"))


def _card_sub(m: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", m.group(0))
    return "[CARD]" if _s.luhn_ok(digits) else m.group(0)


def _kv_sub(m: re.Match[str]) -> str:
    value, quote = m.group("value"), m.group("q")
    if quote:  # a quoted value inside an escaped string: \"password\": \"…\"
        return m.group("key") + m.group("sep") + quote + SECRET + quote
    if value.startswith(("'", '"')):
        return m.group("key") + m.group("sep") + value[0] + SECRET + value[0]
    if value.lower() in _AUTH_SCHEMES:  # "Authorization: Bearer …": the credential is already gone
        return m.group(0)
    if value == SECRET or value.startswith("[REDACTED") or _s.COOKIE.match(m.group(0)):
        return m.group(0)
    return m.group("key") + m.group("sep") + SECRET


def _has_port(value: str) -> bool:
    return value.count(":") == 1 and value.rpartition(":")[2].isdigit()


def _has_text(dtype: pl.DataType) -> bool:
    if dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return _has_text(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_has_text(f.dtype) for f in dtype.fields)
    return False


def _cut_pattern(folder: str) -> re.Pattern[str]:
    """``folder`` cut short: a prefix longer than its first part, ending in ``…`` or a space."""
    head_end = folder.index("/", 1) + 1  # "/home/": a cut must keep at least the first part
    rest = folder[head_end:]
    nested = ""
    for ch in reversed(rest[:120]):
        nested = f"(?:{re.escape(ch)}{nested})?"
    # a display cuts with "…", or (polars' text tables) at the column's edge, before a space
    return re.compile(re.escape(folder[:head_end]) + nested + r"(?:[^\s…]*…|(?=\s))")


def local_paths(incident_dir: Any = None, out_dir: Any = None) -> dict[str, str]:
    """What exports write for local folders: the incident folder's own name, ``.`` for the folder
    written to, ``~`` for the home directory (each as given and resolved).

    >>> local_paths("/srv/incidents/pool-exhaustion", "/srv/out")["/srv/incidents/pool-exhaustion"]
    'pool-exhaustion'
    """
    import os
    from pathlib import Path

    out: dict[str, str] = {}
    home = os.path.expanduser("~")
    if home not in ("", "/", "~"):
        out[home] = "~"
    for folder, name in ((out_dir, "."), (incident_dir, None)):
        if folder is None:
            continue
        path = Path(folder)
        for form in {str(path), str(path.resolve())}:
            if os.path.isabs(form) and form != "/":
                out[form] = name or path.resolve().name
    return out


def redact_text(text: str | None, *, hosts: bool = False, redactor: Redactor | None = None) -> str | None:
    """``text`` with secrets (and, with ``hosts=True``, hosts) removed. See :class:`Redactor`.

    Examples
    --------
    >>> from loglib.present.redact import redact_text
    >>> redact_text("host=db1 user=app password=s3cr3t dbname=shop")
    'host=db1 user=app password=[REDACTED] dbname=shop'
    >>> redact_text("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl")
    'Authorization: Bearer [REDACTED]'
    """
    return (redactor or Redactor(hosts=hosts)).text(text)


def redact_frame(
    frame: Any, *, hosts: bool = False, columns: Iterable[str] | None = None, redactor: Redactor | None = None
) -> pl.DataFrame:
    """Every text cell of ``frame`` redacted (strings, lists, struct fields such as metric labels)."""
    return (redactor or Redactor(hosts=hosts)).frame(frame, columns=columns)


def redact_figure(fig: Any, *, hosts: bool = False, redactor: Redactor | None = None) -> Any:
    """A copy of a plotly figure with titles, trace names, labels and hover text redacted."""
    return (redactor or Redactor(hosts=hosts)).figure(fig)
