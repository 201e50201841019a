"""csvlog blocks decoded by polars keep the record-by-record reader's answers: a record with too
few fields is rejected with its reason, not padded with nulls by polars' CSV reader."""

from __future__ import annotations

import warnings

import loglib as ll

_GOOD = (
    '2024-03-01 10:00:0{s}.123 UTC,"app","shop",4242,"10.0.0.7:51234",65e1b2.1092,{s},"idle",'
    "2024-03-01 09:59:00 UTC,3/{s},0,LOG,00000,"
    '"connection authorized: user=app database=shop, ssl=off","","","",,"","",,"","psql","client backend",,0'
)
# 20 fields, a comma inside the quotes: polars would pad it with nulls, the by-record reader rejects it
_SHORT = (
    '2024-03-01 10:00:05.123 UTC,"app","shop",4242,"10.0.0.7:51234",65e1b2.1092,5,"idle",'
    '2024-03-01 09:59:00 UTC,3/5,0,LOG,00000,"a, message","","","",,"",""'
)


def _read(lines: list[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = ll.read_pg_log(("\n".join(lines) + "\n").encode(), format="csvlog")
    return df, ll.read_report(df)


def test_plain_block_is_read_whole():
    df, report = _read([_GOOD.format(s=s) for s in range(5)])
    assert (df.height, report.lines_parsed, report.lines_rejected) == (5, 5, 0)
    assert df["event"].to_list() == ["connection_authorized"] * 5
    assert df["ts"].dt.second().to_list() == [0, 1, 2, 3, 4]


def test_short_record_is_rejected_not_padded():
    df, report = _read([_GOOD.format(s=0), _GOOD.format(s=1), _SHORT, _GOOD.format(s=3)])
    assert (df.height, report.lines_read, report.lines_rejected) == (3, 4, 1)
    reasons = report.rejects["reason"].to_list()
    assert reasons == ["csvlog record has 20 fields, expected 23 to 26"], reasons


def _by_kind(body: bytes, fmt: str, chunk_bytes: int) -> tuple:
    """The rows and rejects of ``body`` read from plain bytes (the byte blocks), gzip (the lines)
    and with CRLF line ends (blocks handed to the lines), in blocks of ``chunk_bytes``."""
    import gzip

    import polars as pl

    out = []
    for data in (body, gzip.compress(body), body.replace(b"\n", b"\r\n")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lf = ll.scan_pg_log(data, format=fmt, chunk_bytes=chunk_bytes)
            df = lf.collect()
        report = ll.read_report(lf)
        rejects = report.rejects.select("line", "reason").rows() if report.rejects is not None else []
        cols = df.select("ts", "pid", "event", "message", "detail").with_columns(
            pl.col("event").cast(pl.String)
        )
        out.append((cols.rows(), report.lines_read, report.lines_parsed, rejects))
    return tuple(out)


def test_byte_blocks_read_as_the_lines_do():
    multi = _GOOD.format(s=2).replace('"connection authorized', '"connection authorized\nsecond line\n')
    lines = [_GOOD.format(s=0), _GOOD.format(s=1), multi, "", _SHORT, _GOOD.format(s=3)] * 40
    body = ("\n".join(lines) + "\n").encode()
    for chunk_bytes in (300, 4096, 1 << 20):
        plain, gz, crlf = _by_kind(body, "csvlog", chunk_bytes)
        assert plain == gz == crlf
        rows, read, parsed, rejects = plain
        # every physical line is read; the 4 records of each block are parsed, the blank and short lines not
        assert read == body.count(b"\n") == 320
        assert (len(rows), parsed) == (4 * 40, read - 2 * 40)
        assert rejects[:2] == [(6, "blank line"), (7, "csvlog record has 20 fields, expected 23 to 26")]


def test_jsonlog_byte_blocks_read_as_the_lines_do():
    good = '{"timestamp":"2024-03-01 10:00:0%d.000 UTC","pid":7,"error_severity":"LOG","message":"m %d"}'
    lines = [good % (0, 0), good % (1, 1), "", "not json", '{"pid":1}', good % (2, 2)] * 40
    body = ("\n".join(lines) + "\n").encode()
    for chunk_bytes in (300, 4096, 1 << 20):
        plain, gz, crlf = _by_kind(body, "jsonlog", chunk_bytes)
        assert plain == gz == crlf
        rows, read, parsed, rejects = plain
        # every line is read; the 3 good records of each block are parsed, the 3 bad ones not
        assert read == body.count(b"\n") == 240
        assert (len(rows), parsed) == (3 * 40, read - 3 * 40)
        assert [line for line, _ in rejects[:3]] == [3, 4, 5]
