"""Redaction: real-looking secrets in every column that carries text never reach an export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import polars as pl
import pytest

import loglib as ll
from loglib.present.redact import EMAIL, SECRET, Redactor, redact_figure, redact_frame, redact_text

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
# Real-looking (but invented) secrets, one per kind the issue names.
SECRETS = {
    "url_password": "Tr0ub4dor&3x",
    "dsn_password": "pgPa55-w0rd",
    "bearer": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "api_key": "sk_live_51HqLyjWDarjtT1zdp7dcXYZabc",
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "aws_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "email": "jane.doe@acme-payments.com",
    "azure": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq",
}
LINES = {
    "url": f"could not connect: postgresql://checkout:{SECRETS['url_password']}@db-prod.internal:5432/shop",
    "dsn": f"host=10.20.30.40 port=5432 user=checkout password={SECRETS['dsn_password']} dbname=shop",
    "bearer": f"upstream said 401 for Authorization: Bearer {SECRETS['bearer']}",
    "api_key": f'payment call failed {{"api_key": "{SECRETS["api_key"]}", "amount": 12}}',
    "github": f"cloning with token {SECRETS['github']}",
    "aws": f"AWS_ACCESS_KEY_ID={SECRETS['aws_id']} AWS_SECRET_ACCESS_KEY={SECRETS['aws_secret']}",
    "email": f"order 42 for {SECRETS['email']} failed",
    "azure": f"DefaultEndpointsProtocol=https;AccountName=shop;AccountKey={SECRETS['azure']};EndpointSuffix=core.windows.net",
}


def _assert_clean(text: str) -> None:
    for kind, secret in SECRETS.items():
        assert secret not in text, f"{kind} secret leaked"


class TestRedactText:
    @pytest.mark.parametrize("kind", list(LINES))
    def test_each_kind_of_secret_is_removed(self, kind):
        """Every kind of secret in a log line is replaced, and the rest of the line stays."""
        out = redact_text(LINES[kind])
        _assert_clean(out)
        assert SECRET in out or EMAIL in out

    def test_url_keeps_user_and_host(self):
        """A connection URL keeps its user and host, only the password goes."""
        out = redact_text(LINES["url"])
        assert out.endswith(f"postgresql://checkout:{SECRET}@db-prod.internal:5432/shop")

    def test_private_key_block(self):
        """A PEM private key is removed whole."""
        pem = (
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----\nok"
        )
        out = redact_text(pem)
        assert "MIIEow" not in out and out.endswith("ok")

    def test_ordinary_text_is_untouched(self):
        """Error text with dotted names, versions and times is left alone."""
        text = "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached at 09:30:12 (PostgreSQL 15.18)"
        assert redact_text(text) == text
        assert (
            redact_text("checkout@shop LOG:  connection authorized")
            == "checkout@shop LOG:  connection authorized"
        )

    def test_none_stays_none(self):
        """Null cells stay null."""
        assert redact_text(None) is None


class TestPseudonyms:
    def test_hosts_are_kept_unless_asked(self):
        """Hosts and IPs stay by default (they help a reader)."""
        assert "10.20.30.40" in redact_text(LINES["dsn"])

    def test_stable_pseudonyms(self):
        """The same host gets the same pseudonym everywhere; servers are db-N, other addresses client-N."""
        r = Redactor(hosts=True)
        a = r.text(LINES["url"])
        b = r.text(
            'connection to server at "db-prod.internal" (10.9.8.7), port 5432 failed from 192.168.1.20'
        )
        c = r.text("retrying 192.168.1.20")
        assert "db-1" in a and "db-1" in b
        assert "192.168.1.20" not in b + c
        client = r.pseudonyms["192.168.1.20"]
        assert client.startswith("client-") and client in b and client in c

    def test_ipv6(self):
        """IPv6 addresses are pseudonymised, times are not."""
        out = Redactor(hosts=True).text("from 2001:db8::17 at 09:30:12")
        assert "2001:db8" not in out and "09:30:12" in out

    def test_host_columns_whole_value(self):
        """A host column's value (with a port) is replaced as a whole."""
        df = pl.DataFrame(
            {"client_host": ["10.1.1.1", "10.1.1.1", None], "instance": ["api-7.prod:9100", None, None]}
        )
        out = redact_frame(df, hosts=True)
        assert out["client_host"].to_list() == ["client-1", "client-1", None]
        assert out["instance"][0] == "host-1:9100"


def _app_frame() -> pl.DataFrame:
    """An application-log frame with secrets in every column that can carry text."""
    n = len(LINES)
    texts = list(LINES.values())
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=i) for i in range(n)],
            "level": ["error"] * n,
            "logger": ["shop.api"] * n,
            "message": texts,
            "exc_type": ["OperationalError"] * n,
            "exc_chain": [["OperationalError", t] for t in texts],
            "traceback": [f'Traceback (most recent call last):\n  File "app.py", line 3\n{t}' for t in texts],
            "error_class": ["connection_refused"] * n,
            "request_id": [f"req-{i} {SECRETS['email']}" for i in range(n)],
            "extra": [[{"key": "dsn", "value": LINES["dsn"]}, {"key": "auth", "value": LINES["bearer"]}]] * n,
            "file": ["app/app.log"] * n,
            "line": list(range(1, n + 1)),
        },
        schema_overrides={"extra": pl.List(pl.Struct({"key": pl.String, "value": pl.String}))},
    )


def _pg_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0, T0 + timedelta(seconds=1)],
            "user": ["checkout", "checkout"],
            "client_host": ["10.20.30.40", "10.20.30.41"],
            "message": [LINES["dsn"], LINES["url"]],
            "detail": [LINES["aws"], LINES["azure"]],
            "event": ["auth_failed", "auth_failed"],
            "file": ["pg/postgresql.log"] * 2,
            "line": [1, 2],
        }
    )


def _metrics_frame() -> pl.DataFrame:
    series = f'db_pool_checked_out{{instance="10.20.30.40:9100", dsn="{LINES["url"]}"}}'
    return pl.DataFrame(
        {
            "ts": [T0, T0 + timedelta(seconds=5)],
            "metric": ["db_pool_checked_out"] * 2,
            "labels": [{"instance": "10.20.30.40:9100", "dsn": LINES["url"]}] * 2,
            "series": [series] * 2,
            "value": [1.0, 2.0],
            "file": ["prom/x.json"] * 2,
        }
    )


class TestRedactFrame:
    @pytest.mark.parametrize("make", [_app_frame, _pg_frame, _metrics_frame])
    def test_no_secret_survives_in_any_column(self, make):
        """String, list and struct columns (messages, tracebacks, extra fields, labels) are all redacted."""
        out = redact_frame(make(), hosts=True)
        _assert_clean(json.dumps(out.to_dicts(), default=str))
        assert "10.20.30.40" not in json.dumps(out.to_dicts(), default=str)

    def test_types_and_shape_are_kept(self):
        """Redaction keeps the schema and the row count."""
        df = _app_frame()
        out = redact_frame(df)
        assert out.schema == df.schema and out.height == df.height

    def test_pandas_input(self):
        """A pandas frame is redacted too (and comes back as polars)."""
        out = redact_frame(_pg_frame().to_pandas())
        assert isinstance(out, pl.DataFrame)
        _assert_clean(json.dumps(out.to_dicts(), default=str))


class TestRedactFigure:
    def test_titles_names_labels_and_hover(self):
        """Every text in a figure (title, trace name, text, hover data, annotations, axis titles) is redacted."""
        fig = go.Figure(
            go.Bar(
                x=[1],
                y=[2],
                name=LINES["url"],
                text=[LINES["email"]],
                customdata=[[LINES["bearer"], "app.log:3"]],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
        fig.update_layout(title=LINES["dsn"], xaxis_title=LINES["aws"])
        fig.add_annotation(text=LINES["azure"], x=1, y=1)
        out = redact_figure(fig)
        _assert_clean(out.to_json())
        assert "%{customdata[0]}" in out.to_json()

    def test_charts_from_secret_laden_frames(self, tmp_path):
        """A chart and a timeline built from secret-laden logs export clean by default."""
        app = _app_frame()
        fig = ll.charts.error_rate(app, every="1s")
        html = ll.export_figure(fig, tmp_path / "errors.html")
        _assert_clean(html.read_text())
        tl = ll.timeline(app=app, pg=_pg_frame(), metrics=_metrics_frame())
        for fmt in ("md", "html", "csv"):
            _assert_clean(ll.export_table(tl, tmp_path / f"timeline.{fmt}").read_text())

    def test_redact_false_is_explicit(self, tmp_path):
        """Only redact=False writes secrets."""
        tl = ll.timeline(app=_app_frame())
        text = ll.export_table(tl, tmp_path / "raw.md", redact=False).read_text()
        assert SECRETS["url_password"] in text


def test_host_pseudonyms_are_numbered_in_the_order_seen():
    """The same frame gets the same pseudonyms on every run: host-1 is the first host in the frame."""
    hosts = [f"db{n}.prod.internal" for n in range(200, 0, -1)]
    frame = pl.DataFrame({"client_host": hosts + hosts[:5]})
    first = Redactor(hosts=True).frame(frame)["client_host"].to_list()
    assert first[:3] == ["client-1", "client-2", "client-3"]
    assert first == Redactor(hosts=True).frame(frame)["client_host"].to_list()
    assert first[200:] == first[:5]
