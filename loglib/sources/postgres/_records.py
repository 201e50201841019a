"""Record-based PostgreSQL logs (csvlog, jsonlog, CloudNativePG): one record per entry."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects, record_damage
from loglib.sources.files import (
    Source,
    iter_line_chunks,
    map_ordered,
    prefetch,
)
from loglib.sources.postgres._finish import (
    REMOTE_PARTS,
    _extract_distinct,
    _finish,
    _known,
    _Options,
    _RecordLanguage,
)
from loglib.sources.postgres._recblocks import ByLines, ByteBlock, block_lines, byte_blocks, from_line

_CSV_COLUMNS = (
    "log_time", "user_name", "database_name", "process_id", "connection_from", "session_id",
    "session_line_num", "command_tag", "session_start_time", "virtual_transaction_id", "transaction_id",
    "error_severity", "sql_state_code", "message", "detail", "hint", "internal_query", "internal_query_pos",
    "context", "query", "query_pos", "location", "application_name", "backend_type", "leader_pid", "query_id",
)  # fmt: skip
_CSV_WIDTHS = (23, 24, 25, 26)  # PostgreSQL <=12, 13, 14–17 (25: some tools drop leader_pid)
_RAW_STRING_COLUMNS = (
    "pid", "severity", "sqlstate", "user", "database", "application", "client_host", "client_port",
    "remote", "session_id", "message", "detail", "host", "ts_text", "zone",
)  # fmt: skip


#: the most a block of records holds: about six are in flight (read ahead, decoding, finishing)
RECORD_BLOCK_BYTES = 4 * 1024 * 1024


def _block_bytes(opts: _Options) -> int:
    """The chunk size of a record reader: ``chunk_bytes``, at most :data:`RECORD_BLOCK_BYTES`."""
    return min(opts.chunk_bytes, RECORD_BLOCK_BYTES)


def _finished(raws: Iterator[pl.DataFrame], opts: _Options, name: str) -> Iterator[pl.DataFrame]:
    """:func:`_finish` of each raw frame, two at a time in worker threads, in order."""
    yield from map_ordered(lambda raw: _finish(_split_remote(raw), opts, name), raws)


def _split_remote(raw: pl.DataFrame) -> pl.DataFrame:
    """``connection_from`` (``host:port``) into ``client_host`` / ``client_port`` as :func:`_finish`
    splits it, the regex run once per distinct value (a file's clients are few) instead of per record.

    >>> raw = pl.DataFrame({"remote": ["10.0.0.5:5432", "[local]", None], "client_host": [None, None, "h"],
    ...                     "client_port": [None, None, "1"]})
    >>> _split_remote(raw).rows()
    [(None, '10.0.0.5', '5432'), (None, '[local]', None), (None, 'h', '1')]
    """
    if "remote" not in raw.columns or raw["remote"].null_count() == raw.height:
        return raw
    parts = _extract_distinct(raw["remote"], REMOTE_PARTS)
    return raw.with_columns(
        client_host=pl.coalesce(_known(pl.col("client_host")), _known(parts["h"])),
        client_port=pl.coalesce(pl.col("client_port"), parts["p"], parts["q"]),
        remote=pl.lit(None, dtype=pl.String),
    )


def _records_to_frame(records: dict[str, list], name: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        {k: pl.Series(v, dtype=pl.Int64 if k == "line" else pl.String) for k, v in records.items()}
    )
    return frame.with_columns(file=pl.lit(name))


def _new_records() -> dict[str, list]:
    return {k: [] for k in ("line", "ts_text", "zone", "iso", *_RAW_STRING_COLUMNS[:-3])}


def _split_pg_time(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    parts = value.rsplit(" ", 1)
    if len(parts) == 2 and not parts[1][:1].isdigit():
        return parts[0], parts[1]
    return value, None


def _append_record(rec: dict[str, list], line: int, get) -> None:
    ts_text, zone = _split_pg_time(get("log_time"))
    rec["line"].append(line)
    rec["ts_text"].append(ts_text)
    rec["zone"].append(zone)
    rec["iso"].append(None)
    rec["pid"].append(get("process_id"))
    rec["severity"].append(get("error_severity"))
    rec["sqlstate"].append(get("sql_state_code"))
    rec["user"].append(get("user_name"))
    rec["database"].append(get("database_name"))
    rec["application"].append(get("application_name"))
    rec["client_host"].append(None)
    rec["client_port"].append(None)
    rec["remote"].append(get("connection_from"))
    rec["session_id"].append(get("session_id"))
    rec["message"].append(get("message"))
    details = [
        f"{label}: {get(key)}"
        for label, key in (
            ("DETAIL", "detail"),
            ("HINT", "hint"),
            ("QUERY", "internal_query"),
            ("CONTEXT", "context"),
            ("STATEMENT", "query"),
        )
        if get(key)
    ]
    rec["detail"].append("\n".join(details) or None)


class _CsvParser:
    """csvlog: one CSV record per entry; quoted fields may span lines."""

    def __init__(self, source: Source, opts: _Options) -> None:
        self.source = source
        self.opts = opts
        self.language = _RecordLanguage()

    def run(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        yield from _finished(self.language.english(self._raw(report)), self.opts, self.source.name)

    def _raw(self, report: ReadReport) -> Iterator[pl.DataFrame]:
        """Blocks of whole records as bytes (:func:`byte_blocks`), each decoded by polars' CSV
        reader straight from them when it can be (two blocks at a time, in worker threads), else
        split into lines and read as :meth:`_by_lines` reads them, in file order."""
        name = self.source.name

        def decode(item: ByteBlock | ByLines) -> tuple[ByteBlock | ByLines, pl.DataFrame | None]:
            return item, (
                _csvlog_block(item.body, item.first_line, name) if isinstance(item, ByteBlock) else None
            )

        blocks = prefetch(byte_blocks(self.source, _block_bytes(self.opts), quoted=True))
        for item, raw in map_ordered(decode, blocks):
            if isinstance(item, ByLines):
                yield from self._by_lines(report, item.first_line)
                return
            if raw is None:
                lines = block_lines(item)
                raw = _csvlog_frame(lines, item.first_line, None, name)
                yield from self._lines_block(lines, item.first_line, raw, report)
                continue
            report.lines_read += raw.height
            report.lines_parsed += raw.height
            if raw.height:
                yield raw

    def _by_lines(self, report: ReadReport, start: int) -> Iterator[pl.DataFrame]:
        """The lines of the source from line ``start`` on (:func:`iter_line_chunks`), in blocks of
        whole records (a block ends where the quotes before it are balanced)."""
        name = self.source.name
        state: dict = {"damage": None, "last": 0}
        decoded = map_ordered(lambda b: (*b, _csvlog_frame(*b, name)), self._blocks(state, start))
        for lines, first, _body, raw in decoded:
            yield from self._lines_block(lines, first, raw, report)
        if state["damage"]:
            record_damage(report, name, state["last"], state["damage"])

    def _lines_block(
        self, lines: pl.Series, first: int, raw: pl.DataFrame | None, report: ReadReport
    ) -> Iterator[pl.DataFrame]:
        """One block of whole records given as lines: ``raw``, polars' reading of them, else (None)
        read record by record."""
        if raw is None:
            yield from self._block_by_record(lines, first, report)
            return
        report.lines_read += lines.len()
        report.lines_parsed += lines.len()
        if raw.height:
            yield raw

    def _blocks(self, state: dict, start: int = 1) -> Iterator[tuple[pl.Series, int, bytes | None]]:
        """``(lines, first line number, their bytes when the chunk's are them)`` of each block of
        whole records from line ``start`` on; ``state`` gets the damage."""
        carry: pl.Series | None = None  # the lines of a record still open at the chunk's end
        carry_first = 1
        chunks = iter_line_chunks(self.source, chunk_bytes=_block_bytes(self.opts), keep_body=True)
        for chunk in prefetch(from_line(chunks, start)):
            lines, first, body = chunk.lines, chunk.first_line, chunk.body
            if carry is not None:
                lines, first, body = pl.concat([carry, lines]), carry_first, None
            inside = (lines.str.count_matches('"', literal=True).cum_sum() % 2 == 1).fill_null(False)
            closed = (~inside).arg_true()
            n = int(closed[-1]) + 1 if closed.len() else 0
            if n:
                yield lines.head(n), first, body if n == lines.len() else None
            carry, carry_first = (lines.slice(n), first + n) if n < lines.len() else (None, 1)
            state["damage"] = state["damage"] or chunk.damage
            state["last"] = chunk.first_line + chunk.lines.len() - 1
        if carry is not None:
            yield carry, carry_first, None

    def _block_by_record(self, lines: pl.Series, first: int, report: ReadReport) -> Iterator[pl.DataFrame]:
        """Python's csv module, record by record: every bad record's lines rejected with its reason."""
        state = {"line": first - 1}

        def physical_lines() -> Iterator[str]:
            for text in lines:
                state["line"] += 1
                yield text + "\n"

        rec = _new_records()
        reader = csv.reader(physical_lines())
        name = self.source.name
        bad_lines, bad_reasons, bad_texts = [], [], []
        while True:
            start = state["line"] + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row, reason = None, f"malformed CSV record: {exc}"
            else:
                reason = None
                if len(row) not in _CSV_WIDTHS:
                    reason = (
                        "blank line" if not row else f"csvlog record has {len(row)} fields, expected 23 to 26"
                    )
            span = state["line"] - start + 1
            report.lines_read += span
            if reason is not None:
                # every physical line of a bad record is rejected, so read = parsed + rejected holds
                for offset in range(span):
                    bad_lines.append(start + offset)
                    bad_reasons.append(reason if offset == 0 else f"{reason} (continued)")
                    bad_texts.append(",".join(row or []) if offset == 0 else "")
                continue
            report.lines_parsed += span
            values = dict(zip(_CSV_COLUMNS, row, strict=False))
            _append_record(rec, start, lambda k, v=values: v.get(k) or None)
        if bad_lines:
            add_rejects(report, name, bad_lines, bad_reasons, bad_texts)
        if rec["line"]:
            yield _records_to_frame(rec, name)


_QUOTED = r'"(?:[^"]|"")*"'
_QUOTED_BYTES = re.compile(_QUOTED.encode())


def _csvlog_frame(lines: pl.Series, first: int, body: bytes | None, name: str) -> pl.DataFrame | None:
    """A block of whole csvlog records decoded by polars' CSV reader into the raw columns
    :func:`_finish` takes, or None when it is not plain (a blank line, a record of another width
    than the others or than 23 to 26 fields, CSV polars refuses): then it is read record by record."""
    starts = ~(lines.str.count_matches('"', literal=True).cum_sum() % 2 == 1).shift(1, fill_value=False)
    if (starts & (lines == "")).any():
        return None
    at = starts.arg_true()
    records = at.len()
    end = int(at[1]) if records > 1 else lines.len()
    head = pl.Series([lines.head(end).str.join("\n")[0]])
    width = int(head.str.replace_all(_QUOTED, "").str.count_matches(",", literal=True)[0]) + 1
    if width not in _CSV_WIDTHS:
        return None
    body = (lines.str.join("\n")[0] + "\n").encode() if body is None else body + b"\n"
    rows = _csv_rows(body, width, records)
    if rows is None:
        return None
    return _csv_raw(rows, (starts.arg_true() + first).cast(pl.Int64), name)


def _csvlog_block(body: bytes, first: int, name: str) -> pl.DataFrame | None:
    """A block of whole csvlog records (bytes, LF line ends) decoded by polars' CSV reader straight
    from its bytes, when every line is one record of the first one's width (23 to 26 fields): else
    None, and the block is read as lines (:func:`_csvlog_frame`). A blank line is no record.

    >>> rec = b'2024-03-01 10:00:00.000 UTC,app,shop,7,,1.7,1,,,,0,LOG,00000,"a, b",,,,,,,,,,,,0\\n'
    >>> _csvlog_block(rec * 2, 5, "f")[["line", "pid", "message"]].rows()
    [(5, '7', 'a, b'), (6, '7', 'a, b')]
    >>> _csvlog_block(rec + b"\\n" + rec, 5, "f") is None
    True
    """
    if not body.endswith(b"\n"):
        body += b"\n"
    if b"\r" in body:  # a blank line reads as a short record, which _csv_rows refuses
        return None
    head = body[: body.find(b"\n")]
    if head.count(b'"') % 2:  # a record over several lines: the lines tell where each starts
        return None
    width = _QUOTED_BYTES.sub(b"", head).count(b",") + 1
    n = body.count(b"\n")
    rows = _csv_rows(body, width, n) if width in _CSV_WIDTHS else None
    if rows is None:
        return None
    return _csv_raw(rows, pl.int_range(first, first + n, dtype=pl.Int64, eager=True), name)


def _csv_rows(body: bytes, width: int, records: int) -> pl.DataFrame | None:
    """``body`` read by polars as ``records`` records of ``width`` text fields, or None when it
    reads otherwise (see :func:`_all_fields`)."""
    schema = {c: pl.String for c in _CSV_COLUMNS[:width]}
    try:
        rows = pl.read_csv(io.BytesIO(body), has_header=False, schema=schema, quote_char='"')
    except pl.exceptions.PolarsError:
        return None
    if rows.height != records or rows.width != width or not _all_fields(rows, body):
        return None
    return rows


def _csv_raw(rows: pl.DataFrame, lines_at: pl.Series, name: str) -> pl.DataFrame:
    """The raw columns :func:`_finish` takes from csvlog ``rows`` that start at ``lines_at``."""
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in _CSV_COLUMNS if c not in rows.columns]
    rows = rows.with_columns(*missing, pl.col(_CSV_USED).replace("", None))  # an empty field is no value
    detail = [("DETAIL", "detail"), ("HINT", "hint"), ("QUERY", "internal_query"), ("CONTEXT", "context"),
              ("STATEMENT", "query")]  # fmt: skip
    return rows.select(
        line=lines_at,
        **_time_columns(rows, "log_time"),
        iso=pl.lit(None, dtype=pl.String),
        pid=pl.col("process_id"),
        severity=pl.col("error_severity"),
        sqlstate=pl.col("sql_state_code"),
        user=pl.col("user_name"),
        database=pl.col("database_name"),
        application=pl.col("application_name"),
        client_host=pl.lit(None, dtype=pl.String),
        client_port=pl.lit(None, dtype=pl.String),
        remote=pl.col("connection_from"),
        session_id=pl.col("session_id"),
        message=pl.col("message"),
        detail=_detail_expr(detail),
        file=pl.lit(name),
    )


#: the csvlog fields the reader keeps
_CSV_USED = (
    "log_time", "process_id", "error_severity", "sql_state_code", "user_name", "database_name",
    "application_name", "connection_from", "session_id", "message", "detail", "hint", "internal_query",
    "context", "query",
)  # fmt: skip


def _all_fields(rows: pl.DataFrame, body: bytes) -> bool:
    """Did every record of ``body`` have all of ``rows``' fields? polars refuses a longer record
    and pads a shorter one with nulls, so a last column without a null proves it at once; else
    the commas outside the quotes (all commas less those inside values) must number width - 1
    per record.

    >>> f = pl.DataFrame({"a": ["1", "x,y"], "b": ["2", None]})
    >>> _all_fields(f, b'1,2\\n"x,y",\\n'), _all_fields(f, b'1,2\\n"x,y"\\n')
    (True, False)
    """
    if rows[rows.columns[-1]].null_count() == 0:
        return True
    inside = rows.select(pl.sum_horizontal(pl.all().str.count_matches(",", literal=True).sum())).item()
    return body.count(b",") - int(inside or 0) == (rows.width - 1) * rows.height


def _time_parts(stamp: pl.Expr) -> dict[str, pl.Expr]:
    """``ts_text`` and ``zone`` of csvlog/jsonlog's ``log_time`` (``2024-03-01 10:00:00.123 CET``), as
    :func:`_split_pg_time` splits one value."""
    after = stamp.str.extract(r" ([^ ]*)$", 1)
    zoned = stamp.str.contains(" ", literal=True) & ~after.str.contains(r"^\d").fill_null(False)
    empty = stamp.is_null() | (stamp == "")
    return {
        "ts_text": pl.when(empty)
        .then(None)
        .when(zoned)
        .then(stamp.str.extract(r"^(.*) [^ ]*$", 1))
        .otherwise(stamp),
        "zone": pl.when(~empty & zoned).then(after),
    }


def _time_columns(frame: pl.DataFrame, column: str) -> dict[str, pl.Expr]:
    """:func:`_time_parts` of ``frame[column]``, cut at a fixed place when every stamp has the
    first one's layout (``<wall clock> <zone>``, its last blank at the same offset, a zone that
    starts with an ASCII non-digit): then no regex runs.

    >>> f = pl.DataFrame({"t": ["2024-03-01 10:00:00.123 CET", "2024-03-01 10:00:01.5 UTC"]})
    >>> f.select(**_time_columns(f, "t")).rows()
    [('2024-03-01 10:00:00.123', 'CET'), ('2024-03-01 10:00:01.5', 'UTC')]
    >>> f = pl.DataFrame({"t": ["2024-03-01 10:00:00.123 CET", "2024-03-01 10:00:00.123 100"]})
    >>> f.select(**_time_columns(f, "t")).rows()
    [('2024-03-01 10:00:00.123', 'CET'), ('2024-03-01 10:00:00.123 100', None)]
    """
    stamps = frame[column]
    first = stamps.drop_nulls().head(1).to_list()
    cut = first[0].rfind(" ") if first else -1
    if cut > 0 and stamps.null_count() == 0:
        width = stamps.str.len_chars()
        if width.min() == width.max() == len(first[0]):  # the zones are the tails after ``cut``
            tails = stamps.str.slice(cut).unique().to_list()  # " UTC", " CET": a few
            if all(
                len(t) > 1 and t[0] == " " and t[1].isascii() and not t[1].isdigit() and " " not in t[1:]
                for t in tails
            ):
                return {"ts_text": pl.col(column).str.head(cut), "zone": pl.col(column).str.slice(cut + 1)}
    return _time_parts(pl.col(column))


def _detail_expr(parts: list[tuple[str, str]]) -> pl.Expr:
    """``DETAIL: …`` / ``HINT: …`` … lines of the fields that hold text, joined (null when none)."""
    known = [
        pl.when(pl.col(k) != "").then(pl.concat_str(pl.lit(f"{label}: "), pl.col(k))) for label, k in parts
    ]
    joined = pl.concat_str(known, separator="\n", ignore_nulls=True)
    return pl.when(joined != "").then(joined)
