"""pgBouncer logs (1.9–1.24; log file, stderr and syslog) into the canonical ``pgbouncer_events`` frame.

One row per line. The header (time, pid, level) is told per line, so a file that mixes the
old and new stderr headers, or a syslog file holding other programs, reads as it is; the
socket prefix and the message vocabulary come from :mod:`loglib.formats.pgbouncer_lines`.
Lines that are not pgBouncer lines go to the one rejects mechanism with file, line and reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects, finish_read, record_damage
from loglib.core.schema import EVENT_TEXT, PGBOUNCER_EVENTS, UTC_TS, conform
from loglib.core.timeparse import check_tz, localize, parse_iso, parse_naive
from loglib.errors import FormatError
from loglib.formats import pgbouncer_lines as v
from loglib.sources._lazy import collect_batches, scan_batches
from loglib.sources.files import (
    DEFAULT_CHUNK_BYTES,
    SCAN_CHUNK_BYTES,
    LineChunk,
    PathsLike,
    Source,
    expand_sources,
    iter_line_chunks,
    map_ordered,
    prefetch,
)

#: the header forms a line can have, as named in the read report
FORMS = ("stderr", "stderr (up to 1.11)", "syslog")
#: the columns every header form is normalised to before the message is parsed
_HEAD = {"ts": UTC_TS, "pid": pl.Int64, "level": pl.String, "msg": pl.String, "form": pl.String}
_OTHER_PROGRAM = "syslog line of another program"


@dataclass(frozen=True)
class _Options:
    tz: str | None
    year: int | None
    chunk_bytes: int


@dataclass
class _Parsed:
    """One chunk: its rows, its rejected lines (``line``, ``text``, ``reason``) and forms seen."""

    chunk: LineChunk
    rows: pl.DataFrame
    rejected: pl.DataFrame
    forms: tuple[str, ...]


def _stderr(rows: pl.DataFrame, opts: _Options, where: str) -> pl.DataFrame:
    g = rows["text"].str.extract_groups(v.STDERR_HEADER).struct.unnest()
    hit = g["msg"].is_not_null()
    g, rows = g.filter(hit), rows.filter(hit)
    if not rows.height:
        return rows.with_columns(*(pl.lit(None, d).alias(c) for c, d in _HEAD.items()))
    ts = localize(parse_naive(g["ts_text"]), g["zone"], tz=opts.tz, where=where)
    return rows.with_columns(
        ts=ts,
        pid=pl.coalesce(g["pid_b"], g["pid_n"]).cast(pl.Int64),
        level=g["level"],
        msg=g["msg"],
        form=pl.when(g["pid_b"].is_not_null()).then(pl.lit(FORMS[0])).otherwise(pl.lit(FORMS[1])),
    )


def _syslog_level(pri: pl.Series) -> pl.Series:
    return (pri.cast(pl.Int64) % 8).replace_strict(v.SYSLOG_LEVELS, default=None, return_dtype=pl.String)


def _syslog(rows: pl.DataFrame, opts: _Options, where: str) -> pl.DataFrame:
    """BSD, RFC 3339 and RFC 5424 syslog lines; ``ident`` is kept to tell other programs apart."""
    parts = []
    rest = rows
    for regex, suffix in ((v.SYSLOG_BSD, "b"), (v.SYSLOG_ISO, "i"), (v.SYSLOG_5424, "r")):
        if not rest.height:
            break
        g = rest["text"].str.extract_groups(regex).struct.unnest()
        hit = g[f"msg_{suffix}"].is_not_null()
        if not hit.any():
            continue
        g, matched, rest = g.filter(hit), rest.filter(hit), rest.filter(~hit)
        if suffix == "b":
            if opts.year is None:
                msg = (
                    f"{where}: BSD syslog timestamps have no year (e.g. {g['sys_ts'][0]!r}); pass year= "
                    "(e.g. year=2024). loglib will not guess it."
                )
                raise FormatError(msg)
            stamp = pl.lit(f"{opts.year} ") + pl.col("sys_ts").str.replace(r"  +", " ")
            naive = parse_naive(g.select(stamp).to_series(), "%Y %b %e %H:%M:%S")
            ts = localize(naive, None, tz=opts.tz, where=where)
        else:
            ts = parse_iso(g[f"iso_{suffix}"])
        pid = g[f"pid_s{suffix}"].replace("-", None)
        pri = (
            g[f"pri_{suffix}"]
            if f"pri_{suffix}" in g.columns
            else pl.Series([None] * g.height, dtype=pl.String)
        )
        parts.append(
            matched.with_columns(
                ts=ts.cast(UTC_TS),
                pid=pid.cast(pl.Int64),
                level=_syslog_level(pri),
                msg=g[f"msg_{suffix}"],
                form=pl.lit(FORMS[2]),
                ident=g[f"ident_{suffix}"],
            )
        )
    if not parts:
        return rows.clear().with_columns(
            *(pl.lit(None, d).alias(c) for c, d in _HEAD.items()), ident=pl.lit(None, pl.String)
        )
    return pl.concat(parts)


def _parse(chunk: LineChunk, opts: _Options) -> _Parsed:
    """Header, socket prefix and event of every line of one chunk."""
    n = chunk.lines.len()
    frame = pl.DataFrame(
        {
            "line": pl.int_range(chunk.first_line, chunk.first_line + n, eager=True, dtype=pl.Int64),
            "text": chunk.lines,
        }
    )
    std = _stderr(frame, opts, chunk.source)
    rest = frame.join(std.select("line"), on="line", how="anti", maintain_order="left")
    syslog = _syslog(rest, opts, chunk.source) if rest.height else None
    ours = [std.select("line", "text", *_HEAD)]
    rejected = rest
    if syslog is not None and syslog.height:
        mine = syslog["ident"].str.to_lowercase().str.contains("bouncer")
        ours.append(syslog.filter(mine).select("line", "text", *_HEAD))
        others = syslog.filter(~mine)
        rejected = rest.join(syslog.filter(mine).select("line"), on="line", how="anti", maintain_order="left")
        rejected = rejected.join(others.select("line", "ident"), on="line", how="left", maintain_order="left")
    else:
        rejected = rejected.with_columns(ident=pl.lit(None, pl.String))
    rows = pl.concat(ours).sort("line") if len(ours) > 1 else ours[0]
    text = pl.col("text")
    reasons = rejected.select(
        "line",
        "text",
        reason=pl.when(text.str.strip_chars() == "")
        .then(pl.lit("blank line"))
        .when(pl.col("ident").is_not_null())
        .then(pl.concat_str(pl.lit(f"{_OTHER_PROGRAM} ("), pl.col("ident"), pl.lit("), not pgBouncer")))
        .otherwise(
            pl.lit(
                "not a pgBouncer log line: no '2024-03-01 10:00:00.123 UTC [pid] LEVEL' header "
                "and no syslog header"
            )
        ),
    )
    forms = tuple(rows["form"].unique().to_list()) if rows.height else ()
    return _Parsed(chunk, _events(rows, chunk.source), reasons, forms)


def _events(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """Header rows -> canonical ``pgbouncer_events`` rows. What only some lines carry (login,
    connect, close, stats numbers) is parsed on those lines alone and joined back."""
    g = rows["msg"].str.extract_groups(v.SOCKET_PREFIX).struct.unnest()
    frame = rows.hstack(g.select("side", "ptr", "db", "user", "addr", "port", "body"))
    frame = v.classify(frame.with_columns(body=pl.coalesce("body", "msg")))
    ev, body = pl.col("event"), pl.col("body")

    def only(kind: str | tuple[str, ...], **exprs: pl.Expr) -> pl.DataFrame:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        return frame.filter(ev.is_in(kinds)).select("line", **exprs)

    attempt = body.str.extract_groups(v.LOGIN_ATTEMPT)
    connect = body.str.extract_groups(v.SERVER_CONNECT)
    for extra in (
        only("login_attempt", _db=attempt.struct.field("db"), _user=attempt.struct.field("user")),
        only(
            "server_connect",
            local_addr=connect.struct.field("laddr").str.strip_prefix("[").str.strip_suffix("]"),
            local_port=connect.struct.field("lport"),
        ),
        only(
            ("client_close", "server_close", "login_failed"),
            age_s=body.str.extract(v.CLOSING, 2).cast(pl.Int64),
        ),
        only("stats", stats=v.stats_struct(body)),
    ):
        frame = frame.join(extra, on="line", how="left", maintain_order="left")

    def known(col: str, unknown: str) -> pl.Expr:
        return pl.when(pl.col(col) != unknown).then(pl.col(col))

    return conform(
        frame.with_columns(
            side=pl.col("side").replace_strict({"C": "client", "S": "server"}, default=None),
            conn=pl.concat_str("side", pl.lit("-"), "ptr"),
            db=pl.coalesce(known("db", "(nodb)"), "_db"),
            user=pl.coalesce(known("user", "(nouser)"), "_user"),
            addr=pl.col("addr").str.strip_prefix("[").str.strip_suffix("]"),
            message=body,
            file=pl.lit(name, dtype=EVENT_TEXT),
        ),
        PGBOUNCER_EVENTS,
    )  # type: ignore[return-value]


def _batches(sources: list[Source], opts: _Options, report: ReadReport) -> Iterator[pl.DataFrame]:
    forms: set[str] = set()
    for source in sources:
        report.files.append(source.name)
        chunks = prefetch(iter_line_chunks(source, chunk_bytes=opts.chunk_bytes))
        seen = False
        for parsed in map_ordered(lambda c: _parse(c, opts), chunks):
            chunk = parsed.chunk
            seen = seen or chunk.lines.len() > 0
            report.lines_read += chunk.lines.len()
            report.lines_parsed += parsed.rows.height
            r = parsed.rejected
            add_rejects(report, source.name, r["line"].to_list(), r["reason"].to_list(), r["text"].to_list())
            if chunk.fallback_decoded:
                report.notes.append(
                    f"{source.name}: {chunk.fallback_decoded} line(s) were not UTF-8 and were read as Latin-1"
                )
            if chunk.damage:
                record_damage(report, source.name, chunk.first_line + chunk.lines.len() - 1, chunk.damage)
            forms.update(parsed.forms)
            report.format = " + ".join(f for f in FORMS if f in forms) or None
            if parsed.rows.height:
                yield parsed.rows
        if not seen:
            report.notes.append(f"{source.name} is empty")


def _check(tz: str | None, year: int | None) -> None:
    check_tz(tz)
    if year is not None and not (1970 <= int(year) <= 2200):
        msg = f"year={year!r} is not a plausible four-digit year"
        raise ValueError(msg)


def scan_pgbouncer_log(
    paths: PathsLike,
    *,
    tz: str | None = None,
    year: int | None = None,
    chunk_bytes: int = SCAN_CHUNK_BYTES,
) -> pl.LazyFrame:
    """Lazily read pgBouncer logs: the streaming twin of :func:`read_pgbouncer_log`.

    Rows come in file order. ``loglib.read_report(lazy_frame)`` holds the counts of the last
    collect.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> lf = ll.scan_pgbouncer_log(b"2024-03-01 10:00:00.000 UTC [7] LOG stats: 3 xacts/s, 9 queries/s, "
    ...                            b"in 10 B/s, out 90 B/s, xact 900 us, query 250 us, wait 0 us\\n")
    >>> lf.select(pl.col("stats").struct.field("queries_per_s")).collect().item()
    9
    """
    _check(tz, year)
    sources = expand_sources(paths)
    opts = _Options(tz, year, chunk_bytes)
    report = ReadReport("read_pgbouncer_log")
    report.notes.extend(sources.notes)
    return scan_batches(
        lambda rep: _batches(sources, opts, rep),
        PGBOUNCER_EVENTS,
        report,
        "loglib.scan_pgbouncer_log",
        sources,
    )


def read_pgbouncer_log(
    paths: PathsLike,
    *,
    tz: str | None = None,
    year: int | None = None,
    strict: bool = False,
    raise_if_empty: bool = True,
) -> pl.DataFrame:
    """Read pgBouncer logs into the canonical ``pgbouncer_events`` frame, one row per line.

    Parameters
    ----------
    paths
        A file, a glob (``"pgbouncer/pgbouncer.log*"``), a directory, a list of those, or the
        log itself as ``bytes``; rotated and compressed files as everywhere in loglib.
    tz
        The zone of times written without one (BSD syslog), or to settle an ambiguous
        abbreviation in the ``logfile`` header (``CST``, ``IST``).
    year
        The year of BSD syslog times, which carry none.
    strict
        Raise :class:`~loglib.errors.ParseError` at the first line that is not a pgBouncer line
        (blank lines and other programs' syslog lines are known noise), instead of warning.
    raise_if_empty
        Raise :class:`~loglib.errors.NoDataError` when the files hold no pgBouncer line at all.

    Returns
    -------
    polars.DataFrame
        Columns of ``loglib.schema.PGBOUNCER_EVENTS`` sorted by ``ts``; ``event`` is one of
        ``loglib.PGBOUNCER_EVENT_KINDS``. A failed login is one ``login_failed`` row (its close),
        a refused client a ``pooler_error`` row (``log_pooler_errors``) and a ``client_close``.
        A pooler killed with SIGKILL leaves no ``pooler_shutdown``: its restart is the next
        ``pooler_start`` (with a new ``pid``, after a ``stale pidfile`` line).

    Examples
    --------
    >>> import loglib as ll
    >>> log = (b"2024-03-01 10:00:00.000 UTC [7] LOG process up: PgBouncer 1.18.0, libevent 2.1.12-stable (epoll)\\n"
    ...        b"2024-03-01 10:00:01.000 UTC [7] LOG C-0x55d1c0: shop/app@10.0.0.5:51234 login attempt: db=shop user=app tls=no\\n"
    ...        b"2024-03-01 10:00:09.000 UTC [7] LOG C-0x55d1c0: shop/app@10.0.0.5:51234 closing because: client unexpected eof (age=8s)\\n"
    ...        b"2024-03-01 10:00:10.000 UTC [7] LOG got SIGTERM, fast exit\\n")
    >>> ll.read_pgbouncer_log(log).select("event", "conn", "port", "reason", "age_s").rows()
    [('pooler_start', None, None, 'PgBouncer 1.18.0', None), ('login_attempt', 'C-0x55d1c0', 51234, None, None), ('client_close', 'C-0x55d1c0', 51234, 'client unexpected eof', 8), ('pooler_shutdown', None, None, 'got SIGTERM, fast exit', None)]

    .. versionchanged:: 0.1
       The repeated text columns (``level``, ``side``, ``db``, ``user``,
       ``event``, ``file``…) are ``Categorical``
       (``loglib.schema.EVENT_TEXT``): compare them as text; ``.cast(pl.String)`` before
       ``.str`` functions.
    """
    _check(tz, year)
    sources = expand_sources(paths)
    opts = _Options(tz, year, DEFAULT_CHUNK_BYTES)
    report = ReadReport("read_pgbouncer_log")
    report.notes.extend(sources.notes)
    frame = collect_batches(
        _batches(sources, opts, report), PGBOUNCER_EVENTS, sources, report,
        what="pgBouncer log lines", raise_if_empty=raise_if_empty,
    )  # fmt: skip
    return finish_read(frame, report, strict=strict)
