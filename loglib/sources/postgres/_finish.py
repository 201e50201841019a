"""What every PostgreSQL format ends with: UTC times, the event, fields read from messages, the schema; English messages."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from loglib.core.schema import EVENT_TEXT, PG_EVENTS, UTC_TS, conform
from loglib.core.timeparse import localize, parse_epoch, parse_iso, parse_naive
from loglib.formats.pg_catalogs import Language, languages
from loglib.formats.pg_messages import (
    AUTHORIZED_FIELDS,
    DISCONNECTION_FIELDS,
    PG_EVENT_RULES,
    RECEIVED_FIELDS,
    with_event,
)
from loglib.formats.pg_prefix import SEVERITIES

_UNKNOWN = ("", "[unknown]", "unknown")
#: ``%r`` is host(port); csvlog/cnpg ``connection_from`` is host:port
REMOTE_PARTS = r"^(?P<h>.*?)(?:\((?P<p>\d+)\)|:(?P<q>\d+))?$"


@dataclass
class _Options:
    format: str | None
    prefix: str | None
    tz: str | None
    year: int | None
    chunk_bytes: int


def _nulls(name: str, n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=pl.String, eager=True).alias(name)


def _known(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_in(list(_UNKNOWN))).then(None).otherwise(expr)


def _finish(raw: pl.DataFrame, opts: _Options, where: str) -> pl.DataFrame:
    """Intermediate columns -> canonical ``pg_events`` rows."""
    cols = set(raw.columns)
    for c in ("ts_text", "zone", "iso", "epoch", "remote", "client_host", "client_port", "detail", "host",
              "user", "database", "application", "sqlstate", "session_id", "pid"):  # fmt: skip
        if c not in cols:
            raw = raw.with_columns(pl.lit(None, dtype=pl.Float64 if c == "epoch" else pl.String).alias(c))
    # time: wall clock + zone, ISO with offset, or epoch seconds
    if "ts_fmt" in cols:
        naive = parse_naive(raw["ts_text"].str.replace(r"  +", " "), raw["ts_fmt"][0])
        ts = localize(naive, None, tz=opts.tz, where=where)
    else:
        ts = (
            localize(parse_naive(raw["ts_text"]), raw["zone"], tz=opts.tz, where=where)
            if raw["ts_text"].is_not_null().any()
            else pl.Series("ts", [None] * raw.height, dtype=UTC_TS)
        )
    ts = pl.select(pl.coalesce(ts.cast(UTC_TS), parse_iso(raw["iso"]), parse_epoch(raw["epoch"]))).to_series()
    # fields cut from the lines still hold the chunk's line buffers: the message is copied out
    # first (the event and field regexes below then read compact text: 34 -> 28 CPU-ms for a
    # chunk of 42k entries) and the repeated fields become Categorical codes at the end (each
    # distinct text kept once), so the lines can be freed (a 317 MB read held 750 MB before its
    # sort, 590 MB with the copies)
    raw = raw.with_columns(pl.concat_str(pl.col("message"), pl.lit("")))
    message = raw["message"]
    padded = message.str.contains(r"\s$").fill_null(False)
    if padded.any():  # trailing blanks (a statement's last line), stripped on those rows only
        idx = padded.arg_true()
        raw = raw.with_columns(message.scatter(idx, message.gather(idx).str.strip_chars_end()))
    raw = with_event(raw)
    # %r is host(port); csvlog/cnpg connection_from is host:port
    remote = raw["remote"]
    if remote.null_count() < raw.height:
        parts = remote.str.extract_groups(REMOTE_PARTS).struct.unnest()
        raw = raw.with_columns(_remote_h=parts["h"], _remote_p=pl.coalesce(parts["p"], parts["q"]))
    else:
        raw = raw.with_columns(_remote_h=remote, _remote_p=remote)
    pid = raw["pid"].cast(pl.Int64, strict=False)
    if pid.null_count() and raw["session_id"].null_count() < raw.height:
        # %c is '<start time hex>.<pid hex>': the pid of prefixes that carry only it (Azure's '%t-%c-')
        session_pid = raw["session_id"].str.extract(r"^[0-9a-f]+\.([0-9a-f]+)$", 1)
        pid = pid.fill_null(session_pid.str.to_integer(base=16, strict=False))
    frame = raw.with_columns(
        ts=ts,
        pid=pid,
        client_host=pl.coalesce(_known(pl.col("client_host")), _known(pl.col("_remote_h"))),
        client_port=pl.coalesce(pl.col("client_port"), pl.col("_remote_p")),
        user=_known(pl.col("user")),
        database=_known(pl.col("database")),
        application=_known(pl.col("application")),
        sqlstate=_known(pl.col("sqlstate")),
    )
    frame = _message_fields(frame).with_columns(pl.col(PG_EVENTS.categorical).cast(EVENT_TEXT))
    return conform(frame, PG_EVENTS)


def _message_fields(frame: pl.DataFrame) -> pl.DataFrame:
    """Fields the prefix did not give, read from the connection messages that carry them: each
    event's regex runs once, on that event's rows only, and fills only what is still unknown."""
    event, message = frame["event"], frame["message"]
    columns = {c: frame[c] for c in ("client_host", "client_port", "user", "database", "application")}

    def fill(name: str, rows: pl.Series, values: pl.Series) -> None:
        col = columns[name]
        if rows.len() == 0:
            return
        current = col.gather(rows)
        if current.null_count():
            columns[name] = col.scatter(rows, current.fill_null(values.cast(col.dtype)))

    def unknown(values: pl.Series) -> pl.Series:
        return pl.select(_known(pl.lit(values))).to_series()

    def needing(name: str, *fields: str) -> pl.Series:
        """The rows of event ``name`` where one of ``fields`` is still unknown."""
        rows = (event == name).arg_true()
        if rows.len() == 0:
            return rows
        missing = pl.select(pl.any_horizontal(pl.lit(columns[f].gather(rows)).is_null() for f in fields))
        return rows.filter(missing.to_series())

    rows = needing("connection_received", "client_host", "client_port")
    if rows.len():
        got = message.gather(rows).str.extract_groups(RECEIVED_FIELDS).struct.unnest()
        fill("client_host", rows, got["1"])
        fill("client_port", rows, got["2"])
    rows = needing("connection_authorized", "user", "database", "application")
    if rows.len():
        got = _extract_distinct(message.gather(rows), AUTHORIZED_FIELDS)
        for name, group in (("user", "1"), ("database", "2"), ("application", "3")):
            fill(name, rows, unknown(got[group]))
    duration = pl.repeat(None, frame.height, dtype=pl.Duration("us"), eager=True).alias("session_duration")
    rows = (event == "disconnection").arg_true()
    if rows.len():
        got = message.gather(rows).str.extract_groups(DISCONNECTION_FIELDS).struct.unnest()
        fill("user", rows, unknown(got["4"]))
        fill("database", rows, unknown(got["5"]))
        fill("client_host", rows, got["6"])
        fill("client_port", rows, got["7"])
        h, m, sec = pl.col("1"), pl.col("2"), pl.col("3")
        took = got.select(
            pl.when(h.is_not_null()).then(
                pl.duration(
                    hours=h.cast(pl.Int64),
                    minutes=m.cast(pl.Int64),
                    microseconds=(sec.cast(pl.Float64) * 1_000_000).round(0).cast(pl.Int64),
                    time_unit="us",
                )
            )
        ).to_series()
        duration = duration.scatter(rows, took)
    return frame.with_columns(*(s.alias(n) for n, s in columns.items()), duration)


def _extract_distinct(values: pl.Series, regex: str) -> pl.DataFrame:
    """``values.str.extract_groups(regex)`` unnested, the regex run once per distinct value (a
    file's ``connection authorized`` messages repeat a few user/database/application sets).

    >>> _extract_distinct(pl.Series(["a=1", "a=2", "a=1"]), r"a=(\\d)")["1"].to_list()
    ['1', '2', '1']
    """
    distinct = values.unique().to_frame("_v")
    got = distinct.with_columns(pl.col("_v").str.extract_groups(regex).alias("_g")).unnest("_g")
    return values.to_frame("_v").join(got, on="_v", how="left", maintain_order="left").drop("_v")


def _english_messages(entries: pl.DataFrame, lang: Language | None) -> pl.DataFrame:
    """Event-naming messages and ``[unknown]`` back in English, through the server's catalog."""
    if lang is None or entries.height == 0:
        return entries
    entries = entries.with_columns(
        pl.col("message").map_elements(lang.english, return_dtype=pl.String, skip_nulls=True)
    )
    fields = [c for c in ("user", "database", "application", "remote", "client_host") if c in entries.columns]
    return entries.with_columns(pl.col(fields).replace(lang.unknown, "[unknown]"))


_EVENT_HEAD = "^(?:" + "|".join(f"(?:{regex[1:]})" for _, _, regex in PG_EVENT_RULES) + ")"


class _RecordLanguage:
    """The language of a csvlog/jsonlog/CloudNativePG source, decided on its first ``WINDOW``
    records whatever chunks they come in: the frames before the decision are held back, then every
    frame is translated alike, so the eager read and each chunk size give the same rows. Catalogs
    are looked up only when a severity is not English or no record names an English event."""

    WINDOW = 400

    def __init__(self) -> None:
        self.lang: Language | None = None

    def english(self, frames: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        """``frames`` (one source's raw records, in file order) with English severities and messages.

        >>> raw = pl.DataFrame({"severity": ["LOG"], "message": ["connection received: host=x port=1"]})
        >>> [f["message"][0] for f in _RecordLanguage().english([raw, raw])]
        ['connection received: host=x port=1', 'connection received: host=x port=1']
        """
        stream = iter(frames)
        held: deque[pl.DataFrame] = deque()
        seen = 0
        for raw in stream:
            held.append(raw)
            seen += raw.height
            if seen >= self.WINDOW:
                break
        self.lang = self._decide(list(held))
        while held:  # popped as they go: a held chunk is not kept alive to the source's end
            yield self._translate(held.popleft())
        for raw in stream:
            yield self._translate(raw)

    def _translate(self, raw: pl.DataFrame) -> pl.DataFrame:
        if self.lang is None or raw.height == 0:
            return raw
        raw = raw.with_columns(pl.col("severity").replace(self.lang.severities).str.strip_chars())
        return _english_messages(raw, self.lang)

    @classmethod
    def _decide(cls, held: list[pl.DataFrame]) -> Language | None:
        """The language of the first ``WINDOW`` records: None when all their severities are English
        and one of their messages names an English event (or none carries a message)."""
        if not held:
            return None
        window = pl.concat([f.select(pl.col("severity", "message").cast(pl.String)) for f in held])
        window = window.head(cls.WINDOW)
        sev = window["severity"].drop_nulls()
        foreign = sev.filter(~sev.is_in(list(SEVERITIES)))
        msgs = window["message"].drop_nulls()
        if foreign.len() == 0 and (msgs.len() == 0 or msgs.str.contains(_EVENT_HEAD).any()):
            return None
        words, texts = set(foreign.unique().to_list()), msgs.to_list()

        def score(lang: Language) -> int:
            return len(words & set(lang.severities)) * 100 + sum(t.startswith(lang.starts) for t in texts)

        ranked = sorted(languages(), key=score, reverse=True)
        return ranked[0] if ranked and score(ranked[0]) > 0 else None
