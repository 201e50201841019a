"""How a PostgreSQL log is told apart: its format, its log_line_prefix, its language; known noise."""

from __future__ import annotations

import json
import re

import polars as pl

from loglib.errors import FormatError
from loglib.formats.pg_catalogs import Language, language_of
from loglib.formats.pg_prefix import DETECTION_PREFIXES, FORMATS, compile_prefix
from loglib.sources.files import (
    Source,
)

RDS_PREFIX = "%t:%r:%u@%d:[%p]:"
#: textPayload prefixes of Cloud SQL for PostgreSQL (the service sets log_line_prefix itself)
CLOUDSQL_PREFIXES = (
    "[%p]: [%l-1] db=%d,user=%u,host=%h ",
    "[%p]: [%l-1] db=%d,user=%u ",
    "[%p]: [%l-1] ",
    "",
)
#: prefixes seen after the syslog header's ``[n-m]`` part
SYSLOG_PREFIXES = (
    "db=%d,user=%u,app=%a,client=%h ",
    "user=%u,db=%d,app=%a,client=%h ",
    "user=%u,db=%d,app=%a ",
    "user=%u,db=%d ",
    "db=%d,user=%u ",
    "%q%u@%d ",
    "",
)

_SYSLOG_BSD = (
    r"^(?P<sys_ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<ident>[^\s\[:]+)\[(?P<pid>\d+)\]: "
    r"\[(?P<seq>\d+)-(?P<part>\d+)\] ?(?P<rest>.*)$"
)
_SYSLOG_ISO = (
    r"^(?P<sys_iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (?P<host>\S+) "
    r"(?P<ident>[^\s\[:]+)\[(?P<pid>\d+)\]: \[(?P<seq>\d+)-(?P<part>\d+)\] ?(?P<rest>.*)$"
)
#: any syslog line's header, PostgreSQL's ``[seq-part]`` or not (``systemd[1]: ``, ``kernel: ``): the
#: ident of a line the two regexes above miss
_SYSLOG_HEADER = (
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) "
    r"\S+ (?P<ident>[^\s\[:]+)(?:\[\d+\])?: "
)
# lines that other code writes into the server's log, as the server's stderr: known noise
_MEMORY_DUMP = (
    r"^\s*(?:Grand total: \d+ bytes in \d+ blocks; |\d+ more child contexts containing \d+ total in \d+ blocks; "
    r"|\S[^\n]*?: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); \d+ used)"
)
_COMMAND_OUTPUT = (
    r"^(?:cp|mv|ln|cat|rsync|scp|ssh|gzip|gunzip|zstd|lz4|xz|test|sh|bash|dash|/bin/sh|/usr/bin/[\w.\-]+"
    r"|pgbackrest|wal-g|barman-wal-archive|barman-wal-restore|barman-cloud-wal-archive)(?:: line \d+|: \d+)?: "
)
#: reject reasons of that noise (loglib.core.rejects.NOISE_REASONS names them)
MEMORY_DUMP_REASON = "PostgreSQL memory context dump (printed on out of memory), not a log entry"
COMMAND_OUTPUT_REASON = "archive_command/restore_command output, not a server log entry"


def _nonblank_lines(head: bytes, n: int = 400) -> list[str]:
    text = head.decode("utf-8", "replace")
    # CR-only endings are line endings too (the reader splits them so): a prefix is judged per line
    lines = re.split(r"\r\n|\n|\r", text)
    if len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut in the middle
    return [ln.rstrip("\r") for ln in lines if ln.strip()][:n]


def _best_prefix(
    lines: list[str],
    candidates: tuple[str, ...],
    *,
    strip_tab: bool = True,
    severities: tuple[str, ...] | None = None,
) -> tuple[str, float]:
    """The candidate prefix matching most lines (ties: the earlier, more specific one)."""
    sample = pl.Series(
        [ln for ln in lines if not (strip_tab and ln.startswith(("\t", " ")))], dtype=pl.String
    )
    # known noise (memory-context dumps, archive_command output) says nothing about the prefix
    sample = sample.filter(~sample.str.contains(_MEMORY_DUMP) & ~sample.str.contains(_COMMAND_OUTPUT))
    if sample.len() == 0:
        return candidates[0], 0.0
    scored = []
    for order, cand in enumerate(candidates):
        share = sample.str.contains(compile_prefix(cand, severities).regex).mean() or 0.0
        literal = len(re.sub(r"%-?\d*.", "", cand))
        required = compile_prefix(cand.replace("%q", ""), severities).regex
        if share and "%q" in cand and not sample.str.contains(required).any():
            # the optional part never shows: it is specific only in name ('%n [%p] %q…' on a '%n [%p] ' log)
            literal = len(re.sub(r"%-?\d*.", "", cand.split("%q", 1)[0]))
        # most lines matched first; among equals, the most specific prefix (most literal text)
        scored.append((round(share, 3), literal, -order, cand, share))
    best = max(scored)
    return best[3], best[4]


def _is_cnpg(line: str) -> bool:
    """A CloudNativePG pod log record: a PostgreSQL ``record``, a ``logger``-named instance-manager
    record (``postgres``, ``instance-manager``, ``wal-archive``…) or one naming its ``logging_pod``."""
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    return (
        isinstance(obj.get("record"), dict)
        or obj.get("logger") in ("postgres", "instance-manager")
        or ("logging_pod" in obj and "msg" in obj)
    )


def detect_format(source: Source) -> tuple[str, str | None]:
    """Guess ``(format, prefix)`` of one source from its first lines.

    Raises :class:`~loglib.errors.FormatError` describing the first line when nothing fits.
    """
    lines = _nonblank_lines(source.head())
    if not lines:
        return "stderr", None
    first = lines[0].lstrip("\ufeff")
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except ValueError:
            obj = {}
        if isinstance(obj, dict):
            if "textPayload" in obj or "cloudsql" in str(obj.get("logName", "")):
                return "cloudsql", None
            # a pod's log usually opens with the operator's and instance manager's own records
            if any(_is_cnpg(ln) for ln in lines if ln.startswith("{")):
                return "cnpg", None
            if "error_severity" in obj or ("timestamp" in obj and "pid" in obj):
                return "jsonlog", None
    if re.match(r'^"?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Za-z0-9+\-:/_]+"?,', first):
        return "csvlog", None
    sample = pl.Series(lines, dtype=pl.String)
    if (sample.str.contains(_SYSLOG_BSD) | sample.str.contains(_SYSLOG_ISO)).mean() >= 0.5:
        return "syslog", None
    prefix, share = _best_prefix(lines, DETECTION_PREFIXES)
    if share < 0.3 and (lang := language_of(lines)) is not None:  # a localised server (lc_messages)
        prefix, share = _best_prefix(lines, DETECTION_PREFIXES, severities=lang.severity_words())
    if share < 0.3:
        msg = (
            f"{source.name}: no known PostgreSQL log format fits (best stderr prefix {prefix!r} matches "
            f"{share:.0%} of the first lines). First line: {first[:200]!r}. Pass format= "
            f"({', '.join(FORMATS)}) and, for stderr, prefix= with the server's log_line_prefix verbatim."
        )
        raise FormatError(msg)
    return ("rds" if prefix == RDS_PREFIX else "stderr"), prefix


def _localised(source: Source, fmt: str, prefix: str | None) -> Language | None:
    """The language of a stderr/RDS server log whose lines the English prefix leaves unmatched
    because their severities are translated (``FEHLER:  ``); None for English logs."""
    if fmt not in ("stderr", "rds") or prefix is None:
        return None
    lines = [ln for ln in _nonblank_lines(source.head()) if not ln.startswith(("\t", " "))]
    sample = pl.Series(lines, dtype=pl.String)
    missed = sample.filter(~sample.str.contains(compile_prefix(prefix).regex)).to_list()
    if not missed:  # every line reads in English: no catalog is even loaded
        return None
    lang = language_of(missed)
    if lang is None:
        return None
    localised = sample.str.contains(compile_prefix(prefix, lang.severity_words()).regex).sum()
    return lang if localised > sample.len() - len(missed) else None
