"""Every line of a PostgreSQL syslog (or Cloud SQL) log is an entry's first line, a continuation
folded into an entry, or a reject with file:line: lines without PostgreSQL's ``[seq-part]``
(``systemd[1]: Started …``, other programs, garbage) used to vanish while counted as parsed."""

from __future__ import annotations

import bz2
import gzip
import re
import warnings
from pathlib import Path

import polars as pl
import pytest

import loglib as ll

CORPUS = Path("/work/shared/corpus/pgbadger")
#: a PostgreSQL syslog line continuing entry n: ``postgres[pid]: [n-m]`` with m > 1 (the test's own reading)
_PART = re.compile(
    r"^\S+ +\d+ \d\d:\d\d:\d\d \S+ postgres\[\d+\]: \[\d+-(\d+)\] |^\S+T\S+ \S+ postgres\[\d+\]: \[\d+-(\d+)\] "
)

SAMPLE = (
    "Mar  1 10:00:00 db1 postgres[12]: [3-1] user=app,db=shop LOG:  statement: select 1,\n"
    "Mar  1 10:00:00 db1 systemd[1]: Started Session 4 of user root.\n"
    "Mar  1 10:00:00 db1 postgres[12]: [3-2] #011 2\n"
    "Mar  1 10:00:01 db1 kernel: [12345.6] eth0: link up\n"
    "Mar  1 10:00:02 db1 postgres[12]: [4-1] user=app,db=shop LOG:  connection received: host=10.0.0.5\n"
    "Mar  1 10:00:02 db1 postgres[12]: user=app,db=shop LOG:  checkpoint starting: time\n"
    "garbage that is no syslog line\n"
    "2024-03-01T10:00:03+00:00 db1 CRON[99]: (root) CMD (true)\n"
    "Mar  1 10:00:04 db1 postgres[13]: [5-1] user=app,db=shop ERROR:  boom\n"
    "Mar  1 10:00:05 db1 postgres[13]: [6-1] user=app,db=shop LOG:  connection received: host=10.0.0.6\n"
)
OTHER = "syslog line of another program ({}), not PostgreSQL"


def _continuations(text: str) -> list[int]:
    return [
        n for n, ln in enumerate(text.splitlines(), 1) if (m := _PART.match(ln)) and int(m[1] or m[2]) > 1
    ]


def _accounted(df: pl.DataFrame, rejects: pl.DataFrame, text: str) -> None:
    """Entries' first lines, folded continuations and rejects are disjoint and cover every line."""
    firsts, cont, rejected = df["line"].to_list(), _continuations(text), rejects["line"].to_list()
    everything = firsts + cont + rejected
    assert sorted(everything) == list(range(1, text.count("\n") + 1))


def _read(source, **kw) -> tuple[pl.DataFrame, ll.ReadReport]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        df = ll.read_pg_log(source, **kw)
    return df, ll.read_report(df)


def _scan(source, chunk: int, **kw) -> tuple[pl.DataFrame, ll.ReadReport]:
    lazy = ll.scan_pg_log(source, chunk_bytes=chunk, **kw)
    return lazy.collect(), ll.read_report(lazy)


def test_sample_lines_without_seq_part_are_rejected_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    path.write_text(SAMPLE)
    df, report = _read(path, year=2024, tz="UTC")
    assert df["line"].to_list() == [1, 5, 9, 10]
    assert df["message"][0] == "statement: select 1,\n 2"  # systemd's line between the parts is no part
    assert report.rejects.select("line", "reason").rows() == [
        (2, OTHER.format("systemd")),
        (4, OTHER.format("kernel")),
        (6, "PostgreSQL syslog line without a [seq-part] number (loglib reads the default "
            "syslog_sequence_numbers = on, syslog_split_messages = on)"),
        (7, "not a syslog line (no 'Mon dd hh:mm:ss host ident[pid]: ' header)"),
        (8, OTHER.format("CRON")),
    ]  # fmt: skip
    assert report.rejects["text"][0] == SAMPLE.splitlines()[1]
    assert report.lines_read == 10 == report.lines_parsed + report.lines_rejected
    _accounted(df, report.rejects, SAMPLE)
    # other programs' lines are known noise; PostgreSQL's unreadable line and the garbage are not
    assert report.unexplained["line"].to_list() == [6, 7]
    with pytest.warns(ll.RejectedLinesWarning, match="5 line"):
        ll.read_pg_log(path, year=2024, tz="UTC")
    with pytest.raises(ll.ParseError, match=":6: PostgreSQL syslog line"):
        ll.read_pg_log(path, year=2024, tz="UTC", strict=True)
    noise_only = "".join(
        ln for ln in SAMPLE.splitlines(keepends=True) if "garbage" not in ln and "checkpoint" not in ln
    )
    assert ll.read_pg_log(noise_only.encode(), year=2024, tz="UTC", strict=True).height == 4
    # the chunked reader, with chunks so small that every line boundary is a chunk boundary somewhere
    for chunk in (64, 100, 157, 1 << 20):
        got, rep = _scan(path, chunk, year=2024, tz="UTC")
        assert got.sort("line").equals(df.sort("line")), f"chunk_bytes={chunk}"
        assert rep.rejects.sort("line").equals(report.rejects), f"chunk_bytes={chunk}"
        assert (rep.lines_read, rep.lines_parsed) == (report.lines_read, report.lines_parsed)


@pytest.mark.parametrize("name", ["pg-syslog.1.bz2", "pg-syslog.2.gz"])
def test_corpus_syslog_every_line_accounted(name: str) -> None:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    opener = bz2.open if name.endswith(".bz2") else gzip.open
    with opener(path, "rt") as fh:
        text = fh.read()
    systemd = [n for n, ln in enumerate(text.splitlines(), 1) if " systemd[1]: " in ln]
    assert systemd  # the file holds other programs' lines, so the test can fail
    df, report = _read(path, year=2024, tz="UTC")
    _accounted(df, report.rejects, text)
    assert report.rejects["line"].to_list() == systemd
    assert set(report.rejects["reason"]) == {OTHER.format("systemd")}
    assert report.unexplained.height == 0
    got, rep = _scan(path, 1 << 16, year=2024, tz="UTC")
    assert got.height == df.height and rep.rejects.sort("line").equals(report.rejects)
    assert (rep.lines_read, rep.lines_parsed) == (report.lines_read, report.lines_parsed)


def test_cloudsql_lines_without_text_payload_are_rejected() -> None:
    path = CORPUS / "cloudsql.log.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    data = b"".join([*lines[:5], b"garbage, not JSON\n", b'{"insertId": "x"}\n', *lines[5:10]])
    df, report = _read(data)
    assert report.format.startswith("cloudsql")
    assert df.height + report.lines_rejected <= report.lines_read == 12
    assert report.rejects.select("line", "reason").rows() == [
        (6, "not a Cloud Logging JSON record with a textPayload"),
        (7, "not a Cloud Logging JSON record with a textPayload"),
    ]
    assert report.lines_parsed == 10
