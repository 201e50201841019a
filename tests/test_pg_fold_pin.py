"""The vectorised stderr reader gives exactly what a plain line-by-line reading of the same log gives.

The reference below reads one line at a time with Python's ``re`` and the compiled prefix's
regexes, folding continuation lines, DETAIL/HINT/STATEMENT sections, untabbed SQL and known
noise the way the reader documents it, and reading the connection fields (pid, user, database,
application, client host/port, session time) from the prefix first, then from the connection
messages. The reader's fast paths (narrow fold, fields read once on the rows that need them,
chunked reading, parallel chunks) must agree with it on every entry and every rejected line,
on realistic multi-line input with odd lines and at several chunk sizes (entries cross chunks).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import warnings

import polars as pl
import pytest

import loglib as ll
from loglib.formats.pg_messages import AUTHORIZED_FIELDS, DISCONNECTION_FIELDS, RECEIVED_FIELDS
from loglib.formats.pg_prefix import SECONDARY, compile_prefix
from loglib.sources.postgres._detect import _COMMAND_OUTPUT, _MEMORY_DUMP
from loglib.sources.postgres._lines import _SQL_LOG, _SQL_SECTIONS

PREFIXES = ("%m [%p] %q%u@%d ", "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ", "%m [%p] ")


def _head(prefix: str, ts: str, pid: int, session: bool, n: int) -> str:
    """A line's prefix as PostgreSQL prints it (``session``: a backend with user and database)."""
    user, db = ("app", "shop") if session else ("", "")
    if prefix == "%m [%p] %q%u@%d ":
        return f"{ts}.{n % 1000:03d} UTC [{pid}] " + (f"{user}@{db} " if session else "")
    if prefix == "%m [%p] ":
        return f"{ts}.{n % 1000:03d} UTC [{pid}] "
    return f"{ts} UTC [{pid}]: [{n}-1] user={user},db={db},app=psql,client=10.0.0.{pid % 9} "


def _log(prefix: str, seed: int, entries: int = 400) -> str:
    """Realistic stderr with every kind of line the fold handles, in random order."""
    rnd = random.Random(seed)
    lines = ["\tcontinuation before the first entry", "2024-03-01 10:00:00 UTC [3] DETAIL:  orphan detail"]
    for n in range(entries):
        ts = f"2024-03-01 10:{n // 60 % 60:02d}:{n % 60:02d}"
        pid = 100 + rnd.randrange(6)
        head = _head(prefix, ts, pid, rnd.random() < 0.7, n)
        kind = rnd.randrange(12)
        if kind == 0:
            lines += [head + "ERROR:  relation \"t\" does not exist at character 15",
                      head + "STATEMENT:  select *", "\tfrom t", "\twhere x = 1"]  # fmt: skip
        elif kind == 1:
            lines += [head + "LOG:  duration: 1.5 ms  statement: select 1,", "  2,", "", "\t3"]
        elif kind == 2:
            lines += [head + "LOG:  statement: select a,", "b, c", "from t"]  # untabbed SQL (copy-pasted)
        elif kind == 3:
            lines += [head + "FATAL:  password authentication failed for user \"x\"",
                      head + "DETAIL:  Connection matched pg_hba.conf line 99: \"host all all all md5\"",
                      head + "HINT:  check it", "\tsecond hint line"]  # fmt: skip
        elif kind == 4:
            lines += ["TopMemoryContext: 68704 total in 5 blocks; 14552 free (12 chunks); 54152 used",
                      "  CacheMemoryContext: 8192 total in 1 blocks; 7928 free (0 chunks); 264 used"]  # fmt: skip
        elif kind == 5:
            lines += ["this line is not a log entry", "waiting for server to start....", " done"]
        elif kind == 6:
            lines += [head + "LOG:  automatic vacuum of table \"db.public.t\": index scans: 1",
                      "\tpages: 0 removed, 3 remain", "\t#011escaped tab", "\tavg read rate: 0 MB/s"]  # fmt: skip
        elif kind == 7:
            lines += [
                head + "WARNING:  trailing blanks   ",
                head + 'CONTEXT:  SQL function "f"',
                "\tline 2  ",
            ]
        elif kind == 8:
            port = rnd.choice([" port=5000", ""])
            app = rnd.choice(
                [" application_name=psql", " application_name=my app SSL enabled (protocol=TLSv1.3)", ""]
            )
            lines += [head + f"LOG:  connection received: host={rnd.choice(['10.0.0.5', '[local]'])}{port}",
                      head + f"LOG:  connection authorized: user=u{pid} database=d{pid % 3}{app}",
                      head + f"LOG:  disconnection: session time: 1:02:03.{n:03d} user=u{pid} database=d "
                      f"host=10.0.0.{pid % 7}{port}"]  # fmt: skip
        else:
            lines.append(head + f"LOG:  checkpoint {n} complete")
    return "\n".join(lines) + "\n"


def _reference(text: str, prefix: str) -> tuple[list[tuple], list[int]]:
    """(line, severity, message, detail) per entry and the rejected line numbers, line by line."""
    compiled = compile_prefix(prefix)
    fast, exact = re.compile(compiled.fast_regex), re.compile(compiled.regex)
    memory, command, sql_log = re.compile(_MEMORY_DUMP), re.compile(_COMMAND_OUTPUT), re.compile(_SQL_LOG)
    entries: list[dict] = []
    rejected: list[int] = []
    in_sql = False  # the last matched line was SQL (untabbed continuation lines may follow)
    for n, line in enumerate(text.split("\n")[:-1], start=1):
        is_cont = line.startswith(("\t", " ")) or line == ""
        m = fast.match(line)
        sev = msg = None
        if m:
            sev, msg = m["severity"], line[m.end() :]
        elif not is_cont and (m := exact.match(line)):
            sev, msg = m["severity"], m["message"]
        fields = m.groupdict() if m else {}
        if sev is not None:
            in_sql = sev in _SQL_SECTIONS or (sev == "LOG" and bool(sql_log.search(msg)))
            if sev not in SECONDARY:
                entries.append(
                    {"line": n, "severity": sev, "message": [msg], "detail": [], "into": "message", **fields}
                )
            elif entries:
                entries[-1]["detail"].append(f"{sev}: {msg}")
                entries[-1]["into"] = "detail"
            else:
                rejected.append(n)
            continue
        maybe_noise = "blocks; " in line or not line.startswith("\t")
        noise = maybe_noise and bool(memory.search(line) or command.search(line))
        if noise:
            in_sql = False
        if not noise and (is_cont or in_sql) and entries:
            part = line.removeprefix("\t") if is_cont else line
            part = part[4:] if is_cont and part.startswith("#011") else part
            entries[-1][entries[-1]["into"]].append(part)
        else:
            rejected.append(n)
    out = []
    for e in entries:
        message = "\n".join(e["message"])
        message = message.rstrip() if message[-1:].isspace() else message
        row = (e["line"], e["severity"], message, "\n".join(e["detail"]) or None)
        out.append(row + _connection_fields(e, message))
    return out, rejected


def _known(value: str | None) -> str | None:
    return None if value in (None, "", "[unknown]", "unknown") else value


def _connection_fields(entry: dict, message: str) -> tuple:
    """(pid, user, database, application, client_host, client_port, session_duration) of an entry:
    the prefix's fields first, then what its connection message says."""
    rcv = auth = disc = None
    if entry["severity"] == "LOG":
        rcv = re.match(RECEIVED_FIELDS, message) if message.startswith("connection received: ") else None
        auth = re.match(AUTHORIZED_FIELDS, message) if "connection authorized: " in message[:40] else None
        disc = re.match(DISCONNECTION_FIELDS, message) if message.startswith("disconnection: ") else None
    user = _known(entry.get("user")) or _known(auth and auth[1]) or _known(disc and disc[4])
    database = _known(entry.get("database")) or _known(auth and auth[2]) or _known(disc and disc[5])
    application = _known(entry.get("application")) or _known(auth and auth[3])
    host = _known(entry.get("client_host")) or (rcv and rcv[1]) or (disc and disc[6])
    port = (rcv and rcv[2]) or (disc and disc[7])
    took = None
    if disc:
        took = dt.timedelta(
            hours=int(disc[1]), minutes=int(disc[2]), microseconds=round(float(disc[3]) * 1e6)
        )
    return int(entry["pid"]), user, database, application, host, port and int(port), took


def _frame_rows(df: pl.DataFrame) -> list[tuple]:
    columns = ("line", "severity", "message", "detail", "pid", "user", "database", "application",
               "client_host", "client_port", "session_duration")  # fmt: skip
    return df.sort("line").select(columns).rows()


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("seed", [0, 2])
def test_reader_matches_line_by_line_reference(tmp_path, prefix, seed):
    text = _log(prefix, seed)
    path = tmp_path / "postgresql.log"
    path.write_text(text)
    want, want_rejected = _reference(text, prefix)
    assert len(want) > 300 and len(want_rejected) > 50  # the input has both, so the test can fail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        eager = ll.read_pg_log(path, prefix=prefix)
        # small chunks: entries, DETAIL sections and untabbed SQL cross chunk boundaries
        for chunk in (2_000, 7_919):
            lazy = ll.scan_pg_log(path, prefix=prefix, chunk_bytes=chunk)
            got = lazy.collect()
            assert _frame_rows(got) == want, f"chunk_bytes={chunk}"
            report = ll.read_report(lazy)
            assert sorted(report.rejects["line"].to_list()) == want_rejected
    assert _frame_rows(eager) == want
    report = ll.read_report(eager)
    assert sorted(ll.rejects(eager)["line"].to_list()) == want_rejected
    assert report.lines_read == text.count("\n") == report.lines_parsed + report.lines_rejected
