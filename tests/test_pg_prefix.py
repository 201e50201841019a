"""log_line_prefix compilation: every documented escape, %q and padding."""

import re

import pytest

from loglib.formats.pg_prefix import COMMON_PREFIXES, ESCAPES, compile_prefix

LINE_BY_PREFIX = [
    ("%m [%p] ", "2024-03-01 10:00:00.123 UTC [42] LOG:  x", {"pid": "42", "ts_m": "2024-03-01 10:00:00.123 UTC"}),
    ("%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
     "2024-03-01 10:00:00 CET [42]: [3-1] user=app,db=shop,app=psql,client=10.0.0.1 LOG:  x",
     {"user": "app", "database": "shop", "application": "psql", "client_host": "10.0.0.1"}),
    ("%t:%r:%u@%d:[%p]:", "2024-03-01 10:00:00 UTC:10.0.0.1(5432):u@d:[9]:LOG:  x",
     {"remote": "10.0.0.1(5432)", "user": "u", "database": "d"}),
    ("%n %e %c %b %v %x %s %i %L %P %Q ",
     "1709287200.123 57P01 65e1a8b0.2a client backend 3/25 0 2024-03-01 09:00:00 UTC idle 127.0.0.1  -42 FATAL:  y",
     {"ts_n": "1709287200.123", "sqlstate": "57P01", "session_id": "65e1a8b0.2a", "backend_type": "client backend"}),
    ("%-10u|%5p|", "app       |   42|LOG:  x", {"user": "app       ", "pid": "42"}),
    ("100%% %p ", "100% 7 LOG:  x", {"pid": "7"}),
]  # fmt: skip


class TestCompilePrefix:
    @pytest.mark.parametrize(("prefix", "line", "expected"), LINE_BY_PREFIX)
    def test_fields_are_captured(self, prefix, line, expected):
        """Each escape's field is captured under its documented group name."""
        m = re.match(compile_prefix(prefix).regex, line)
        assert m is not None
        for key, value in expected.items():
            assert m[key].strip() == value.strip()

    def test_q_makes_the_session_part_optional(self):
        """With %q, lines of non-session processes (no user@db) still match."""
        c = compile_prefix("%m [%p] %q%u@%d ")
        assert (
            re.match(c.regex, "2024-03-01 10:00:00.123 UTC [41] LOG:  checkpoint starting: time")["user"]
            is None
        )
        m = re.match(c.regex, "2024-03-01 10:00:00.123 UTC [42] app@shop ERROR:  boom")
        assert (m["user"], m["database"], m["severity"], m["message"]) == ("app", "shop", "ERROR", "boom")

    def test_every_documented_escape_is_known(self):
        """All escapes of PostgreSQL's log_line_prefix documentation are handled."""
        assert set("aubdhLrpPtmnieclsvxQ") <= set(ESCAPES)

    @pytest.mark.parametrize("prefix", COMMON_PREFIXES)
    def test_common_prefixes_compile(self, prefix):
        """Every prefix tried during detection compiles to a valid regex."""
        re.compile(compile_prefix(prefix).regex)
