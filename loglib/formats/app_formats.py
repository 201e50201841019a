"""Application log formats: the table of known line formats, level names, exception chains, sniffing.

Every text format is one anchored Rust regex whose named groups are the canonical fields
(``ts``, ``level``, ``logger``, ``message``, ``pid``, ``caller``, ``request_id``; ``x_*``
groups go to ``extra``), plus how its timestamp reads. A line that matches starts an event;
the lines after it that match nothing (tracebacks, stack traces, continuation text) belong
to that event. JSON lines (structlog, pino, winston, zap, logrus, loguru, slog, bunyan, ECS)
are one format, ``json``, whose fields are found by key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from loglib.formats.log_pattern import CompiledPattern, compile_log_pattern
from loglib.formats.regex_head import never_at_brace

ISO_TS = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?: ?(?:Z|[+-]\d\d:?\d\d|UTC|GMT))?"
_LEVEL_WORD = r"(?i:TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|ERR|CRITICAL|FATAL|SEVERE|PANIC)"

#: container runtimes' own timestamp in front of every line: ``docker logs --timestamps``,
#: ``kubectl logs --timestamps`` and CRI log files (``<ts> stdout F <line>``)
CONTAINER_PREFIX = r"^(?P<outer_ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (?:(?:stdout|stderr) [FP] )?"


# zap's console encoder after the time: level, then the optional logger (Named) and caller columns, the
# message and the JSON fields. A logger cannot end in ':<digits>' (that is a caller) and a message cannot
# start with '{' (that is the fields), so the optional columns are never mistaken for one another.
_ZAP_LOGGER = r"(?:[^\t]*[^\t\d]|[^\t]*[^\t:\d]\d+)"
_ZAP_REST = (
    r"(?P<level>[A-Za-z]+)\t(?:(?P<logger>" + _ZAP_LOGGER + r")\t)?(?:(?P<caller>[^\t]+:\d+)\t)?"
    r"(?P<message>[^\t{][^\t]*)(?:\t(?P<x_fields>\{.*))?$"
)
# logback / log4j level names as %-5level writes them
_JAVA_LEVEL = r"(?:TRACE|DEBUG|INFO|WARN|ERROR|FATAL)"


# logfmt: a line made only of key=value pairs, with a time key and a level key in either order, whatever
# key comes first (logrus ``time=… level=``, go-kit ``ts=… caller=… level=``, Loki ``level=… ts=``,
# Grafana ``logger=… t=… level=`` and its older ``t=… lvl=``). The whole line is the ``kv`` group.
_PAIR = r"[\w.\-/@]+=(?:\"(?:[^\"\\]|\\.)*\"|\S*)"
_TIME_PAIR = r"(?:time|ts|t)=(?:\"[^\"]*\"|\S+)"
_LEVEL_PAIR = r"(?:level|lvl)=\S+"
LOGFMT_LINE = (
    rf"^(?P<kv>(?:{_PAIR} +)*(?:{_TIME_PAIR} +(?:{_PAIR} +)*{_LEVEL_PAIR}|{_LEVEL_PAIR} +(?:{_PAIR} +)*{_TIME_PAIR})"
    rf"(?: +{_PAIR})*) *$"
)


@dataclass(frozen=True)
class LineFormat:
    """One text format: an anchored regex, how its ``ts`` group reads, and its post-processing.

    ``time`` is ``"iso"`` (ISO-like text, zone optional), ``"none"`` (the format has no
    timestamp), ``"epoch"`` (seconds) or a chrono format string for ``str.to_datetime``.
    """

    name: str
    regex: str
    time: str = "iso"
    post: str | None = None
    label: str = ""
    example: str = ""
    source: str = ""
    zone_in_time: bool = False

    @property
    def described(self) -> str:
        return f"{self.name} ({self.label})" if self.label else self.name


def _py(label: str, pattern: str, example: str, source: str, datefmt: str | None = None) -> LineFormat:
    """A Python logging format string as a sniffable format (any ISO-like asctime accepted)."""
    compiled = compile_log_pattern(pattern, datefmt=datefmt, strict_levels=True)
    regex = compiled.regex.replace("(?P<ts>" + _default_asctime_regex() + ")", "(?P<ts>" + ISO_TS + ")")
    return LineFormat("python", regex, "iso", None, label, example, source)


def _default_asctime_regex() -> str:
    from loglib.formats.log_pattern import DEFAULT_ASCTIME

    return DEFAULT_ASCTIME


def python_format(pattern: str, datefmt: str | None = None) -> LineFormat:
    """The :class:`LineFormat` of a user's logging format string (``pattern=``/``datefmt=``)."""
    compiled: CompiledPattern = compile_log_pattern(pattern, datefmt=datefmt)
    time = "iso" if compiled.time_format is None else compiled.time_format
    if "ts" not in compiled.groups:
        time = "epoch" if "epoch" in compiled.groups else "none"
    return LineFormat(
        "python", compiled.regex, time, None, f"pattern {pattern!r}", "", "", compiled.zone_in_time
    )


# The table. Order matters only for ties when sniffing: more specific formats first.
LINE_FORMATS: tuple[LineFormat, ...] = (
    LineFormat(
        "gunicorn",
        r"^\[(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\] \[(?P<pid>\d+)\] \[(?P<level>[A-Z]+)\] (?P<message>.*)$",
        example="[2024-03-01 10:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:13)",
        source="gunicorn glogging.py CONFIG_DEFAULTS: '%(asctime)s [%(process)d] [%(levelname)s] %(message)s', "
        "datefmt '[%Y-%m-%d %H:%M:%S %z]'",
    ),
    LineFormat(
        "loguru",
        r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \| (?P<level>[A-Z]+) *\| "
        r"(?P<caller>(?P<logger>[^\s:]*):[^\s:]*:\d+) - (?P<message>.*)$",
        example="2024-03-01 10:00:00.123 | ERROR    | app.db:connect:42 - checkout failed",
        source="loguru _defaults.py LOGURU_FORMAT '{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | "
        "{name}:{function}:{line} - {message}'",
    ),
    LineFormat(
        "spring",
        r"^(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d)?) +(?P<level>[A-Z]+) +(?P<pid>\d+) --- "
        r"(?:\[(?P<x_application>[^\]]*)\] )?\[ *(?P<x_thread>[^\]]*)\] (?:\[(?P<x_correlation>[^\]]*)\] )?"
        r"(?P<logger>\S+) *: (?P<message>.*)$",
        example="2024-03-01T10:00:00.123Z ERROR 1 --- [app] [nio-8080-exec-1] com.zaxxer.hikari.pool.HikariPool : "
        "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
        source="spring-boot logging/logback/defaults.xml CONSOLE_LOG_PATTERN (Boot 2: yyyy-MM-dd HH:mm:ss.SSS; "
        "Boot 3: yyyy-MM-dd'T'HH:mm:ss.SSSXXX, [%applicationName] since 3.2)",
    ),
    LineFormat(
        "rails",
        r"^[DIWEFAU], \[(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?) #(?P<pid>\d+)\] +(?P<level>[A-Z]+) -- "
        r"(?P<logger>[^:]*): (?P<message>.*)$",
        post="rails",
        example="E, [2024-03-01T10:00:00.123456 #42] ERROR -- : [8d5c5f1f-0b1a-4e9e-9f0e-2f3c4d5e6f70] "
        "ActiveRecord::ConnectionTimeoutError (could not obtain a connection from the pool within 5.000 seconds ...)",
        source="ruby logger/formatter.rb Format = \"%.1s, [%s #%d] %5s -- %s: %s\\n\"; ActiveSupport::TaggedLogging",
    ),
    LineFormat(
        "monolog",
        r"^\[(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)\] (?P<logger>[\w.\-]+)\."
        r"(?P<level>[A-Z]+): (?P<message>.*)$",
        post="monolog",
        example="[2024-03-01 10:00:00] production.ERROR: SQLSTATE[08006] [7] connection to server ... failed "
        '{"exception":"[object] (PDOException(code: 7): ... at /app/vendor/Connector.php:70)',
        source="Monolog LineFormatter::SIMPLE_FORMAT '[%datetime%] %channel%.%level_name%: %message% %context% "
        "%extra%'; Laravel's Y-m-d H:i:s and [stacktrace] blocks",
    ),
    LineFormat(
        "structlog",
        r"^(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?Z?) \[(?P<level>[a-z]+) *\] (?P<rest>.*)$",
        post="structlog",
        example="2024-03-01T10:00:00.123456Z [error    ] checkout failed                [app.db] pool=main",
        source="structlog dev.py ConsoleRenderer (level padded in brackets, event padded to 30, [logger], key=value)",
    ),
    LineFormat(
        "logfmt",
        LOGFMT_LINE,
        time="none",
        post="logfmt",
        example='time="2024-03-01T10:00:00Z" level=error msg="query failed" error="pq: sorry, too many clients already"',
        source="logrus text_formatter.go (non-TTY: time=, level=, msg=, sorted fields); Go log/slog TextHandler; "
        "go-kit log (Prometheus, Loki, postgres_exporter: ts=/level= in any order); Grafana (logger=, t=, lvl=)",
    ),
    LineFormat(
        "zap_console",
        r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\t" + _ZAP_REST,
        example="2024-03-01T10:00:00.000Z\tERROR\tdb/pool.go:42\tquery failed\t{\"error\": \"driver: bad connection\"}",
        source="zap NewDevelopmentConfig console encoder (tab-separated ts, LEVEL, [logger], [caller], msg, "
        "JSON fields; no logger column unless Named(), no caller column with WithCaller(false))",
    ),
    LineFormat(
        "zap_console",
        r"^(?P<ts>\d\.\d+e\+09|\d{9,10}(?:\.\d+)?)\t" + _ZAP_REST,
        time="epoch",
        label="epoch",
        example="1.709287200123e+09\terror\tdb/pool.go:42\tping failed\t{\"error\": \"driver: bad connection\"}",
        source="zap NewProductionConfig with Encoding \"console\" (epoch seconds as a float, lowercase level)",
    ),
    LineFormat(
        "uvicorn",
        r"^(?P<level>CRITICAL|ERROR|WARNING|INFO|DEBUG|TRACE): +(?P<message>.*)$",
        time="none",
        example="ERROR:    Exception in ASGI application",
        source="uvicorn config.py LOGGING_CONFIG '%(levelprefix)s %(message)s' (levelname + ':' padded to 9)",
    ),
    LineFormat(
        "java",
        r"^(?P<ts>" + ISO_TS + r") \[(?P<x_thread>[^\]]*)\] +(?P<level>" + _JAVA_LEVEL + r") +(?P<logger>\S+) +- "
        r"(?P<message>.*)$",
        label="[thread] level",
        example="2024-03-01 10:00:00,123 [http-nio-8080-exec-1] ERROR com.zaxxer.hikari.pool.HikariPool - "
        "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
        source="logback manual, chapter Layouts: '%d [%thread] %-5level %logger{36} - %msg%n'; Log4j 2 "
        "PatternLayout '%d{yyyy-MM-dd HH:mm:ss.SSS} [%t] %-5level %logger{36} - %msg%n'; log4j 1 '%d [%t] %-5p %c - %m%n'",
    ),
    LineFormat(
        "java",
        r"^(?P<ts>" + ISO_TS + r") +(?P<level>" + _JAVA_LEVEL + r") +\[(?P<x_thread>[^\]]*)\] +(?P<logger>\S+) *[-:] "
        r"(?P<message>.*)$",
        label="level [thread]",
        example="2024-03-01 10:00:00.123 ERROR [main] o.h.engine.jdbc.spi.SqlExceptionHelper - Connection refused",
        source="logback/log4j2 layouts '%d %-5level [%thread] %logger{36} - %msg%n' (level before the thread)",
    ),
    _py("logging HOWTO", "%(asctime)s - %(name)s - %(levelname)s - %(message)s",
        "2024-03-01 10:00:00,123 - app.db - ERROR - checkout failed", "Python docs, logging HOWTO"),
    _py("level name:", "%(asctime)s %(levelname)s %(name)s: %(message)s",
        "2024-03-01 10:00:00,123 ERROR app.db: checkout failed", "loglib issue 3 example"),
    _py("[level] name:", "%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        "2024-03-01 10:00:00,123 [ERROR] app.db: checkout failed", "common dictConfig format"),
    _py("cookbook", "%(asctime)s %(name)-12s %(levelname)-8s %(message)s",
        "2024-03-01 10:00:00,123 app.db       ERROR    checkout failed", "Python logging cookbook"),
    _py("flask", "[%(asctime)s] %(levelname)s in %(module)s: %(message)s",
        "[2024-03-01 10:00:00,123] ERROR in app: checkout failed", "Flask docs, Logging: dictConfig example"),
    _py("celery", "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
        "[2024-03-01 10:00:00,123: ERROR/MainProcess] checkout failed", "celery app/defaults.py worker_log_format"),
    _py("colon", "%(asctime)s:%(levelname)s:%(name)s:%(message)s",
        "2024-03-01 10:00:00,123:ERROR:app.db:checkout failed", "common basicConfig variant"),
    _py("django verbose", "{levelname} {asctime} {module} {process:d} {thread:d} {message}",
        "ERROR 2024-03-01 10:00:00,123 views 7 1401 checkout failed", "Django docs, logging 'verbose' formatter"),
    _py("basicConfig", "%(levelname)s:%(name)s:%(message)s",
        "ERROR:app.db:checkout failed", "Python logging BASIC_FORMAT (no timestamp)"),
    LineFormat(
        "go",
        r"^(?P<ts>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?:(?P<caller>[\w.\-/]+\.go:\d+): )?(?P<message>.*)$",
        post="level_from_message",
        example="2024/03/01 10:00:00 main.go:42: pq: sorry, too many clients already",
        source="Go log package, LstdFlags ('2009/01/23 01:23:23 message'), Lshortfile, Lmicroseconds",
    ),
    LineFormat(
        "generic",
        r"^\[?(?P<ts>" + ISO_TS + r")\]?\s+[\[(]?(?P<level>" + _LEVEL_WORD + r")[\])]?:?\s+(?P<message>.*)$",
        example="2024-03-01T10:00:00Z ERROR connection refused",
        source="timestamp, level, message: many home-grown formats",
    ),
    LineFormat(
        "bare",
        r"^\[(?P<level>" + _LEVEL_WORD + r")\]:? (?P<message>.*)$",
        time="none",
        example="[ERROR] Database query failed: connection timeout",
        source="Log lines with only a level tag (e.g. Go log.Printf(\"[ERROR] ...\"), shared/seeds incident logs)",
    ),
)  # fmt: skip

JSON_EXAMPLE = '{"level":50,"time":1709287200000,"pid":7,"hostname":"api-1","msg":"timeout exceeded when trying to connect"}'

#: every format name ``read_app_log(format=...)`` accepts
APP_LOG_FORMATS: tuple[str, ...] = (*dict.fromkeys(f.name for f in LINE_FORMATS), "json")

FORMAT_ALIASES = {
    "laravel": "monolog", "logrus": "logfmt", "slog": "logfmt", "spring_boot": "spring", "logging": "python",
    "pino": "json", "winston": "json", "zap": "json", "bunyan": "json", "structlog_json": "json",
    "loguru_json": "json", "ecs": "json", "jsonl": "json", "ndjson": "json", "celery": "python", "django": "python",
    "logback": "java", "log4j": "java", "log4j2": "java",
}  # fmt: skip


def formats_named(name: str) -> list[LineFormat | str]:
    """The candidates a ``format=`` name stands for (``python`` has several common patterns)."""
    key = FORMAT_ALIASES.get(name, name)
    if key == "json":
        return ["json"]
    found = [f for f in LINE_FORMATS if f.name == key]
    if not found:
        names = ", ".join(repr(n) for n in (*APP_LOG_FORMATS, *FORMAT_ALIASES))
        msg = f"format={name!r} is not a known application log format; use one of {names}, or pattern= for logging"
        raise ValueError(msg)
    return list(found)


# --- levels ------------------------------------------------------------------------------------

LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")

_LEVEL_MAP = {
    **dict.fromkeys(("trace", "trac", "debug", "debu", "d", "t", "fine", "finer", "finest", "verbose", "v",
                     "dbg", "notset"), "debug"),
    **dict.fromkeys(("info", "i", "notice", "success", "information", "informational", "inf", "config"), "info"),
    **dict.fromkeys(("warn", "warning", "w", "wrn"), "warning"),
    **dict.fromkeys(("error", "err", "erro", "e", "severe", "exception", "eror"), "error"),
    **dict.fromkeys(("critical", "crit", "fatal", "fata", "f", "panic", "pani", "dpanic", "emergency", "emerg",
                     "alert", "c"), "critical"),
}  # fmt: skip

#: pino / bunyan numeric levels
NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}
#: Python logging levelno
PY_LEVELNO = {5: "trace", 10: "debug", 20: "info", 25: "success", 30: "warning", 40: "error", 50: "critical"}


_LEVEL_MAP_CASES = {
    **_LEVEL_MAP,
    **{k.upper(): v for k, v in _LEVEL_MAP.items()},
    **{k.title(): v for k, v in _LEVEL_MAP.items()},
}


def level_expr(raw: pl.Expr) -> pl.Expr:
    """Normalise level names (``ERROR``, ``E``, ``erro``, ``WARN``, ``fatal``…) to :data:`LEVELS`; unknown → null."""
    direct = raw.replace_strict(_LEVEL_MAP_CASES, default=None, return_dtype=pl.String)
    slow = (
        raw.str.strip_chars()
        .str.to_lowercase()
        .replace_strict(_LEVEL_MAP, default=None, return_dtype=pl.String)
    )
    return pl.when(direct.is_not_null() | raw.is_null()).then(direct).otherwise(slow)


def normalize_levels(raw: pl.Series) -> pl.Series:
    """:func:`level_expr` of a column, worked out once per distinct value (a log has a handful of
    level words) and looked up for every row.

    >>> normalize_levels(pl.Series(["INFO", " Warn", None, "INFO", "loud"])).to_list()
    ['info', 'warning', None, 'info', None]
    """
    distinct = raw.drop_nulls().unique()
    if distinct.len() == 0:
        return pl.repeat(None, raw.len(), dtype=pl.String, eager=True).alias(raw.name)
    words = tuple(sorted(distinct.cast(pl.String).to_list()))
    named = pl.Series(_level_names(words), dtype=pl.String)
    return raw.replace_strict(pl.Series(words, dtype=raw.dtype), named, default=None, return_dtype=pl.String)


@lru_cache(maxsize=256)
def _level_names(words: tuple[str, ...]) -> tuple[str | None, ...]:
    """:func:`level_expr` of a few level words, worked out once per set (every chunk has the same)."""
    return tuple(pl.select(level_expr(pl.lit(pl.Series(words, dtype=pl.String)))).to_series().to_list())


def normalize_level(raw: str | None) -> str | None:
    """:func:`level_expr` for one value."""
    if raw is None:
        return None
    return _LEVEL_MAP.get(str(raw).strip().lower())


# --- exception chains --------------------------------------------------------------------------

# Python: an exception line follows the indented frame lines (loguru puts blank lines between).
_PY_EXC = (
    r"(?m)^(?:[ \t]+\S[^\n]*|>[^\n]*|[│╰└][^\n]*)\n(?:[ \t]*\n)*[A-Za-z_][\w.]*(?::[ \t][^\n]*|:?[ \t]*)$"
)
_PY_NAME = r"(?m)^([A-Za-z_][\w.]*)(?::[ \t]|:?[ \t]*$)"
# JVM and Node: 'pkg.Type: message' followed by '\tat ...', and 'Caused by: pkg.Type'
_JVM_EXC = (
    r"(?m)^[ \t]*(?:Caused by|\[cause\]): [A-Za-z_$][\w$.]*"
    r"|^(?:Exception in thread \"[^\"\n]*\" )?(?:[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|[A-Z]\w*(?:Error|Exception))"
    r"(?:: [^\n]*|:)?\n[ \t]+(?:at |\.\.\. \d)"
)
_JVM_NAME = r"^[ \t]*(?:(?:Caused by|\[cause\]): |Exception in thread \"[^\"\n]*\" )?([A-Za-z_$][\w$.]*)"
# Laravel: '[object] (Illuminate\\Database\\QueryException(code: 7): ...' and '[previous exception] [object] (...'
_PHP_EXC = r"\[object\] \(([A-Za-z_\\]+)\(code: "
# Ruby / Rails: 'ActiveRecord::ConnectionTimeoutError (message):'
_RUBY_EXC = r"(?m)^(?:\[[^\]\n]*\] )*(?:Caused by: )?[A-Z]\w*(?:::[A-Z]\w*)+ \("
_RUBY_NAME = r"([A-Z]\w*(?:::[A-Z]\w*)+) \($"


def _chain_branches(text: pl.Expr) -> list[tuple[pl.Expr, pl.Expr]]:
    """(when, chain) per language, tried in order; the last one (Ruby) takes the rest."""
    py = (
        text.str.extract_all(_PY_EXC)
        .list.eval(pl.element().str.extract(r"([A-Za-z_][\w.]*)(?::[ \t][^\n]*|:?[ \t]*)$", 1))
        .list.reverse()
    )
    jvm = text.str.extract_all(_JVM_EXC).list.eval(pl.element().str.extract(_JVM_NAME, 1))
    php = text.str.extract_all(_PHP_EXC).list.eval(
        pl.element().str.extract(_PHP_EXC, 1).str.replace_all("\\\\", "\\", literal=True)
    )
    ruby = text.str.extract_all(_RUBY_EXC).list.eval(pl.element().str.extract(_RUBY_NAME, 1))
    return [
        (text.str.contains("Traceback (most recent call last)", literal=True), py),
        (text.str.contains("[object] (", literal=True), php),
        (text.str.contains(r"\n[ \t]+at |(?:^|\n)[ \t]*Caused by: "), jvm),
        (pl.lit(True), ruby),
    ]


def exc_chain_expr(text: pl.Expr) -> pl.Expr:
    """Chained exception types in a traceback text, outermost first (null when none).

    Python prints the root cause first and the raised exception last, so its list is
    reversed; Java (``Caused by:``), Node, Laravel and Rails print the outermost first.
    """
    (first, first_chain), *rest = _chain_branches(text)
    chain = pl.when(first).then(first_chain)
    for when, branch in rest[:-1]:
        chain = chain.when(when).then(branch)
    chain = chain.otherwise(rest[-1][1])
    return pl.when(chain.list.len() > 0).then(chain).otherwise(None)


def exc_chains(text: pl.Series) -> pl.Series:
    """:func:`exc_chain_expr` of a column, each language's chain read on its own rows only (the
    expression reads all four on every row, then picks one).

    >>> tb = 'Traceback (most recent call last):\\n  File "a.py", line 1\\nValueError: x'
    >>> exc_chains(pl.Series([tb, None, "plain text"])).to_list()
    [['ValueError'], None, None]
    """
    branches = _chain_branches(pl.col("t"))
    kind = pl.when(branches[0][0]).then(0)
    for k, (when, _) in enumerate(branches[1:-1], 1):
        kind = kind.when(when).then(k)
    frame = pl.DataFrame({"t": text}).with_row_index("_i")
    frame = frame.with_columns(_k=kind.otherwise(len(branches) - 1))
    parts = [
        frame.filter(pl.col("_k") == k).select("_i", chain.alias("c"))
        for k, (_, chain) in enumerate(branches)
    ]
    chain = pl.concat(parts).sort("_i").select(pl.when(pl.col("c").list.len() > 0).then(pl.col("c")))
    return chain.to_series().alias(text.name)


# --- sniffing ----------------------------------------------------------------------------------

#: a JSON record's message keys, first found wins (Rust tracing nests it: ``fields.message``)
JSON_MESSAGE_KEYS = ("msg", "message", "event", "@message")
#: the keys each canonical field of a JSON record is read from, the first one present wins
JSON_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "ts": ("time", "timestamp", "ts", "@timestamp", "t", "date", "datetime", "asctime"),
    "level": ("level", "severity", "levelname", "log.level", "lvl", "loglevel"),
    "logger": ("logger", "logger_name", "name", "log.logger", "component", "target"),
    "service": ("service", "service.name", "app", "application"),
    "host": ("hostname", "host", "host.name"),
    "pid": ("pid", "process.pid"),
    "request_id": (
        "request_id",
        "requestId",
        "req_id",
        "reqId",
        "x_request_id",
        "x-request-id",
        "request.id",
        "http.request.id",
        "correlation_id",
        "correlationId",
    ),
    "caller": ("caller", "source", "func"),
    "tb": ("exception", "exc_info", "stack", "stacktrace", "stack_trace", "error.stack_trace"),
    "err": ("error", "err", "error.message"),
}
#: error fields whose text stands in for a missing message (a record that is only an error)
JSON_ERROR_KEYS = ("error", "err", "exception", "error.message", "exc_info", "stack_trace")
#: the reject reason of a one-line JSON object that is no log record
JSON_NOT_A_RECORD = (
    "a JSON object, but not a log record: no message (msg, message, event, fields.message) "
    "and no error (error, err, exception, error.message)"
)


def _headline(text: str) -> str:
    """The line of an error text that names it: a Python traceback's last line, else the first."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    return lines[-1].strip() if lines[0].startswith("Traceback (most recent call last)") else lines[0].strip()


def json_error_text(obj: dict) -> str | None:
    """The headline of a record's error fields (``error``, ``err``, ``exception``, ``error.message``…).

    >>> json_error_text({"level": "error", "err": {"type": "Error", "message": "connect ECONNREFUSED"}})
    'connect ECONNREFUSED'
    """
    for key in JSON_ERROR_KEYS:
        value = obj.get(key)
        if isinstance(value, list):  # structlog dict_tracebacks: [{exc_type, exc_value, frames}, ...]
            named = [e for e in value if isinstance(e, dict) and e.get("exc_type")]
            value = f"{named[-1]['exc_type']}: {named[-1].get('exc_value', '')}" if named else None
        if isinstance(value, dict):
            value = value.get("message") or value.get("msg") or value.get("type")
        if isinstance(value, str) and value.strip():
            return _headline(value)
    return None


def json_record(obj: object) -> dict | None:
    """A decoded JSON value as a log record with a message, or None when it is not one.

    Rust tracing's nested ``fields`` are lifted to the top level (the record's own keys win);
    a record with no message takes its error's headline as the message, and a tracing event
    with fields but no message is named by its fields (``key=value``, as tracing prints them).
    loguru's ``serialize=True`` records (``text`` + ``record``) are returned as they are.

    >>> json_record({"level": "ERROR", "fields": {"message": "pool timed out", "waited": 30}, "target": "sqlx"})
    {'message': 'pool timed out', 'waited': 30, 'level': 'ERROR', 'target': 'sqlx'}
    >>> json_record({"level": "error", "error": "dial tcp 10.0.0.5:5432: connect: connection refused"})["message"]
    'dial tcp 10.0.0.5:5432: connect: connection refused'
    >>> json_record({"id": 7, "name": "joe"}) is None
    True
    """
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("record"), dict) and "text" in obj:
        return obj
    if any(obj.get(k) is not None for k in JSON_MESSAGE_KEYS):
        return obj
    fields = obj.get("fields")
    nested = isinstance(fields, dict)
    if nested:
        obj = {**fields, **{k: v for k, v in obj.items() if k != "fields"}}
        if any(obj.get(k) is not None for k in JSON_MESSAGE_KEYS):
            return obj
    message = json_error_text(obj)
    if message is None and nested and fields:
        message = " ".join(f"{k}={v}" for k, v in fields.items())
    if message is None:
        return None
    return {"message": message, **obj}


# lines that cannot start an entry in any format: tracebacks and stack traces
_NOT_A_HEADER = (
    r"^(?:\s|Traceback |During handling|The above exception|Caused by:|\[stacktrace\]|\[previous exception\]|#\d+ "
    r"|\(Background on this error|\[SQL: |\[parameters: |\"\}|[\w.$]+(?:Error|Exception)\b|panic: |goroutine \d+)"
)


def is_json_record(text: str) -> bool:
    """True for a line that is one JSON log record (see :func:`json_record`)."""
    t = text.strip()
    if not t.startswith("{"):
        return False
    try:
        obj = json.loads(t)
    except ValueError:
        return False
    return json_record(obj) is not None


@dataclass
class Sniffed:
    """What sniffing found for one source."""

    formats: list[LineFormat | str]
    container_prefix: bool
    share: float


def _shares(
    sample: pl.Series, candidates: list[LineFormat | str]
) -> list[tuple[float, int, LineFormat | str, pl.Series]]:
    out = []
    # JSON lines alone: a format whose regex must start with another character matches none of
    # them, and is not compiled to be told so
    braces = bool(sample.str.starts_with("{").all())
    none = pl.repeat(False, sample.len(), eager=True, dtype=pl.Boolean)
    for order, cand in enumerate(candidates):
        if cand == "json":
            mask = pl.Series([is_json_record(t) for t in sample.to_list()], dtype=pl.Boolean)
        elif braces and never_at_brace(cand.regex):
            mask = none
        else:
            mask = _regex_mask(sample, cand.regex)
        out.append((float(mask.mean() or 0.0), order, cand, mask))
    return out


def _regex_mask(sample: pl.Series, regex: str) -> pl.Series:
    """Which sample lines a format's regex matches."""
    return sample.str.contains(regex)


def sniff(lines: list[str], candidates: list[LineFormat | str] | None = None) -> Sniffed | None:
    """Choose the formats that explain the sample's entry lines (None when nothing fits).

    The best format must match at least 30% of the lines that could start an entry; a
    second (and third) format is added when it explains at least 10% more of them, as when
    uvicorn's own lines and the application's logging share one stream.
    """
    cands: list[LineFormat | str] = list(candidates) if candidates is not None else [*LINE_FORMATS, "json"]
    raw = pl.Series([ln for ln in lines if ln.strip()], dtype=pl.String)
    if raw.len() == 0:
        return None
    best: Sniffed | None = None
    prefixed = raw.str.contains(CONTAINER_PREFIX)
    variants = [(False, raw)]
    if (prefixed.mean() or 0) >= 0.9:
        variants.append((True, raw.str.replace(CONTAINER_PREFIX, "")))
    for strip, sample in variants:
        heads = sample.filter(~sample.str.contains(_NOT_A_HEADER))
        if heads.len() == 0:
            continue
        scored = _shares(heads, cands)
        chosen: list[LineFormat | str] = []
        covered = pl.Series([False] * heads.len())
        total = 0.0
        for _ in range(3):
            gains = []
            for share, order, cand, mask in scored:
                if any(cand is c for c in chosen):
                    continue
                gain = float((mask & ~covered).mean() or 0.0)
                gains.append((round(gain, 2), -order, cand, mask, share))
            if not gains:
                break
            gain, _, cand, mask, _share = max(gains, key=lambda g: (g[0], g[1]))
            if (not chosen and gain < 0.3) or (chosen and gain < 0.1):
                break
            chosen.append(cand)
            covered = covered | mask
            total += gain
        if chosen and (best is None or total > best.share + 0.05):
            best = Sniffed(chosen, strip, total)
    return best


def describe(fmt: LineFormat | str) -> str:
    return fmt if isinstance(fmt, str) else fmt.described


def first_line_hint(lines: list[str]) -> str:
    for ln in lines:
        if ln.strip():
            return ln[:200]
    return ""


def looks_like_header(text: str) -> bool:
    return re.match(_NOT_A_HEADER, text) is None
