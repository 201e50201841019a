"""The vectorised JSON-lines reader (polars decodes, expressions map the fields) against the
record-by-record reader it replaces, on logs written by the libraries themselves.

Each input is read twice: as loglib reads it, and with the polars decoder switched off, so that
every record goes through the record-by-record reader (the reference for what a record means).
The two reads must agree row for row, reject for reject. A second set of tests counts the records
that still take the record-by-record path: only lines polars cannot read (a broken line, ``NaN``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import random
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib.sources.app import _json, _json_fast
from loglib.sources.app._json_nested import python_float

APP = Path(__file__).resolve().parent / "files" / "app"
WILD = Path(__file__).resolve().parent / "files" / "wild"


def _read(data: bytes, **kw) -> tuple[pl.DataFrame, pl.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = ll.read_app_log(data, tz="UTC", raise_if_empty=False, **kw)
    return df, ll.rejects(df)


def _reference(data: bytes, monkeypatch: pytest.MonkeyPatch, **kw) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The read with every record decoded one by one."""
    with monkeypatch.context() as m:
        m.setattr(_json, "decode_json", lambda lines, body=None: None)
        return _read(data, **kw)


def _slow_records(data: bytes, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many records the read sends through the record-by-record reader."""
    calls = []
    add = _json._JsonRows.add
    with monkeypatch.context() as m:
        m.setattr(_json._JsonRows, "add", lambda self, i, text: (calls.append(i), add(self, i, text)))
        _read(data)
    return len(calls)


# ---------------------------------------------------------------- logs written by real libraries


def _capture(setup: Callable[[io.StringIO], Callable[..., None]]) -> bytes:
    buf = io.StringIO()
    emit = setup(buf)
    emit()
    return buf.getvalue().encode()


def _pool_error() -> Exception:
    """A real SQLAlchemy pool timeout, raised and caught (so it carries a traceback)."""
    sa = pytest.importorskip("sqlalchemy")
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise sa.exc.TimeoutError(
                "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00"
            ) from exc
    except sa.exc.TimeoutError as exc:
        return exc


def _loguru_serialize() -> bytes:
    loguru = pytest.importorskip("loguru")
    logger = loguru.logger
    buf = io.StringIO()
    sink = logger.add(buf, serialize=True, colorize=False)
    try:
        log = logger.bind(request_id="r-7", user=42)
        for i in range(30):
            log.info("GET /orders/{} 200", i)
        log.warning("slow checkout: {} ms", 2500)
        try:
            raise _pool_error()
        except Exception:
            logger.exception("checkout failed")
        logger.opt(exception=_pool_error()).error("retry failed\nsecond line")
        logger.bind(ratio=0.5, flag=True, nothing=None).debug("with extras")
    finally:
        logger.remove(sink)
    return buf.getvalue().encode()


def _structlog_json(dict_tracebacks: bool) -> bytes:
    structlog = pytest.importorskip("structlog")
    buf = io.StringIO()
    exc = structlog.processors.dict_tracebacks if dict_tracebacks else structlog.processors.format_exc_info
    log = structlog.wrap_logger(
        structlog.PrintLogger(file=buf),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exc,
            structlog.processors.JSONRenderer(),
        ],
    )
    for i in range(30):
        log.info("request started", path=f"/orders/{i}", request_id=f"r-{i}", ms=i * 1.5)
    log.warning("pool nearly full", checked_out=14, size=15, overflow=None)
    try:
        raise _pool_error()
    except Exception:
        log.exception("checkout failed", request_id="r-9")
    log.info("counts", tags=["a", "b"], nested={"k": "v", "n": 2})
    return buf.getvalue().encode()


def _python_json_logger() -> bytes:
    jsonlogger = pytest.importorskip("pythonjsonlogger.json")
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(
        jsonlogger.JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(process)d")
    )
    log = logging.getLogger("app.orders.jsonlogger")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        for i in range(30):
            log.info("GET /orders/%d 200", i, extra={"request_id": f"r-{i}", "duration_ms": i + 0.25})
        try:
            raise _pool_error()
        except Exception:
            log.exception("checkout failed", extra={"request_id": "r-31"})
    finally:
        log.removeHandler(handler)
    return buf.getvalue().encode()


def _traceback_text() -> str:
    import traceback

    return "".join(traceback.format_exception(_pool_error()))


#: hand-written records in the documented shapes of loggers not installed here (one line each)
SHAPES = {
    "bunyan": '{"name":"api","hostname":"web-1","pid":4242,"level":50,"msg":"query failed","time":"2024-03-01T10:00:0{s}.000Z","v":0,'
    '"err":{"message":"Connection terminated unexpectedly","name":"Error","stack":"Error: Connection terminated unexpectedly\\n    at Connection.<anonymous> (pg/lib/client.js:132:73)"}}',
    "zerolog": '{"level":"error","error":"dial tcp 10.0.0.5:5432: connect: connection refused","time":"2024-03-01T10:00:0{s}Z","message":"db connect"}',
    "slog": '{"time":"2024-03-01T10:00:0{s}.123456789Z","level":"ERROR","msg":"query","err":"pq: sorry, too many clients already","attempt":3}',
    "logstash": '{"@timestamp":"2024-03-01T10:00:0{s}.120+00:00","@version":"1","message":"HikariPool-1 - Connection is not available, request timed out after 30000ms.",'
    '"logger_name":"com.zaxxer.hikari.pool.HikariPool","thread_name":"http-nio-8080-exec-1","level":"ERROR","level_value":40000,'
    '"stack_trace":"java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.\\n\\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)"}',
    "ecs": '{"@timestamp":"2024-03-01T10:00:0{s}.000Z","log.level":"error","message":"checkout failed","ecs.version":"1.6.0",'
    '"log":{"logger":"app.db","origin":{"file":{"line":9,"name":"db.py"},"function":"get"}},"process":{"pid":7,"name":"MainProcess"},'
    '"service":{"name":"checkout"},"error":{"type":"sqlalchemy.exc.TimeoutError","message":"QueuePool limit of size 5 overflow 10 reached","stack_trace":"Traceback (most recent call last):\\n  File \\"db.py\\", line 9"}}',
    "winston": '{"level":"warn","message":"retrying","service":"checkout","timestamp":"2024-03-01T10:00:0{s}.000Z","attempt":2,"meta":null}',
    "pino-http": '{"level":30,"time":170928720{s}000,"pid":1,"hostname":"web-1","req":{"id":{s},"method":"GET","url":"/orders",'
    '"headers":{"host":"localhost:3000","user-agent":"curl/8.4.0"},"remoteAddress":"::1","remotePort":50412},'
    '"res":{"statusCode":200,"headers":{"content-type":"application/json"}},"responseTime":12,"msg":"request completed"}',
    "ecs nested": '{"@timestamp":"2024-03-01T10:00:0{s}.000Z","log":{"level":"warn","logger":"app"},"message":"pool nearly full","service":{"name":"checkout"},"host":{"name":"web-1"}}',
    "zap": '{"level":"error","ts":170928720{s}.5,"caller":"db/pool.go:88","msg":"acquire","error":"driver: bad connection","stacktrace":"main.main\\n\\t/app/main.go:12"}',
}


def _shapes(n: int = 3) -> bytes:
    return "".join(
        line.replace("{s}", str(i % 10)) + "\n" for i in range(n) for line in SHAPES.values()
    ).encode()


def _floats() -> bytes:
    """Numbers polars reads as floats: ints among floats in one key, exponents, the extremes
    Python writes in scientific notation, -0, whole floats, ints beyond 2**53."""
    values = ["1.5", "5", "-0", "5.0", "1e5", "1E-7", "1e-05", "2.5e-07", "0.0001", "9.999e-05", "1e16",
              "12345678901234567890", "-3.25e+300", "0", "0.0", "7"]  # fmt: skip
    lines = [
        f'{{"level":"info","ts":"2024-03-01T10:00:{i % 60:02d}Z","msg":"m{i}","ratio":{v},"n":{i}.5}}'
        for i, v in enumerate(values * 3)
    ]
    return ("\n".join(lines) + "\n").encode()


def _mixed() -> bytes:
    """JSON records with what real services print between them: a traceback on stderr, a broken
    (cut) record, Python json's NaN, a blank line, a JSON value that is no record."""
    parts = [
        APP.joinpath("pino.json").read_bytes(),
        _traceback_text().encode(),
        _structlog_json(dict_tracebacks=False),
        b'{"level":30,"time":1709287200000,"msg":"cut off mid-rec\n',
        b'{"event": "ratio", "level": "info", "timestamp": "2024-03-01T10:00:00Z", "ratio": NaN}\n',
        b"\n",
        b'{"id": 7, "name": "joe"}\n',
        b"[1, 2]\n",
        _shapes(2),
        APP.joinpath("winston.json").read_bytes(),
    ]
    return b"".join(parts)


INPUTS: dict[str, Callable[[], bytes]] = {
    **{name: (lambda name=name: APP.joinpath(name).read_bytes()) for name in
       ("pino.json", "winston.json", "zap.json", "logrus.json", "structlog.json")},
    "tracing-subscriber-0.3.json": lambda: WILD.joinpath("tracing-subscriber-0.3.json").read_bytes(),
    "loguru serialize": _loguru_serialize,
    "structlog format_exc_info": lambda: _structlog_json(dict_tracebacks=False),
    "structlog dict_tracebacks": lambda: _structlog_json(dict_tracebacks=True),
    "python-json-logger": _python_json_logger,
    "documented shapes": _shapes,
    **{f"shape:{k}": (lambda k=k: "".join(SHAPES[k].replace("{s}", str(i)) + "\n" for i in range(5)).encode()) for k in SHAPES},
    "mixed": _mixed,
    "floats": _floats,
}  # fmt: skip


@pytest.mark.parametrize("name", list(INPUTS))
def test_same_as_record_by_record(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every column of every event, and every reject, as the record-by-record reader has them."""
    data = INPUTS[name]()
    fast, fast_rejects = _read(data)
    slow, slow_rejects = _reference(data, monkeypatch)
    assert slow.height > 0
    assert_frame_equal(fast, slow)
    assert_frame_equal(fast_rejects, slow_rejects)


@pytest.mark.parametrize("name", list(INPUTS))
def test_same_with_a_sampled_schema(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk decoded with the schema of its first two lines: the records with keys (or nested
    fields, or nulls) the sample did not have are decoded apart, and every row still agrees."""
    data = INPUTS[name]()
    with monkeypatch.context() as m:
        m.setattr(_json_fast, "SAMPLE_LINES", 2)
        fast, fast_rejects = _read(data)
    slow, slow_rejects = _reference(data, monkeypatch)
    assert_frame_equal(fast, slow)
    assert_frame_equal(fast_rejects, slow_rejects)


def test_records_with_keys_the_sample_lacks_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key, a nested field, a null or a duplicate key first seen after the sample reaches
    ``extra`` (polars drops the keys a given schema lacks: the key count tells)."""
    lines = [
        '{"msg":"a","level":"info","o":{"p":1}}',
        '{"msg":"b","level":"info","o":{"p":1},"new":2}',
        '{"msg":"c","level":"info","o":{"p":1,"q":"x"}}',
        '{"msg":"d","level":"info","o":{"p":1},"gone":null}',
        '{"msg":"e","level":"info","o":{"p":1},"o":{"p":2}}',
        '{"msg":"f","level":"info","o":{"p":1},"s":"{\\"k\\": 1, \\"j\\": 2}"}',
        '{"msg":"g \\":x","level":"info","o":{"p":1},"s2":"y"}',  # a quote before a colon in a string
        '{"msg":"h","level":"info","o":{"p":1},"s3" : "y"}',  # a space before the colon
        '{"msg":"i C:\\\\","level":"info","o":{"p":1},"s4":"y"}',  # an escaped backslash before a quote
        '{"msg":"j","level":"info","o":{"p":1},"k\\u00e9":"y"}',  # an escape in the key
    ]
    data = ("\n".join(lines) + "\n").encode()
    with monkeypatch.context() as m:
        m.setattr(_json_fast, "SAMPLE_LINES", 1)
        fast, _ = _read(data)
    extras = [{kv["key"]: kv["value"] for kv in row or []} for row in fast["extra"].to_list()]
    assert extras == [
        {"o": '{"p": 1}'},
        {"o": '{"p": 1}', "new": "2"},
        {"o": '{"p": 1, "q": "x"}'},
        {"o": '{"p": 1}', "gone": None},
        {"o": '{"p": 2}'},
        {"o": '{"p": 1}', "s": '{"k": 1, "j": 2}'},
        {"o": '{"p": 1}', "s2": "y"},
        {"o": '{"p": 1}', "s3": "y"},
        {"o": '{"p": 1}', "s4": "y"},
        {"o": '{"p": 1}', "k\u00e9": "y"},
    ]
    assert_frame_equal(fast, _reference(data, monkeypatch)[0])


@pytest.mark.parametrize(
    "lines",
    [
        ['{"msg":"a","level":"info","o":{"p":null}}', '{"msg":"b","level":"info","o":{"p":"x"}}'],
        ['{"msg":"a","level":"info","o":[]}', '{"msg":"b","level":"info","o":["x"]}'],
        ['{"msg":"a","level":"info","o":null}', '{"msg":"b","level":"info","o":{"p":1}}'],
        ['{"msg":"a","level":"info","o":[{"p":null}]}', '{"msg":"b","level":"info","o":[{"p":2}]}'],
    ],
)
def test_nulls_and_objects_of_one_key(lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that is null in one record and an object or array in another: the null stays an
    extra (it was dropped), and a sample whose object field is only ever null no longer makes
    polars 2.1 panic on the chunk (issue 17)."""
    data = ("\n".join(lines) + "\n").encode()
    with monkeypatch.context() as m:
        m.setattr(_json_fast, "SAMPLE_LINES", 1)
        fast, _ = _read(data)
    assert_frame_equal(fast, _reference(data, monkeypatch)[0])


@pytest.mark.parametrize(
    "data",
    [
        b'{"msg":"a","level":"info"}\r\n{"msg":"b","level":"warn"}\r\n',
        b'{"msg":"a\x00b","level":"info"}\n{"msg":"c","level":"info"}\n',
        b'{"msg":"d","level":"info"}\n  {"msg":"indented","level":"info"}\n{"msg":"e","level":"info"}',
    ],
)
def test_decoded_from_the_chunk_bytes(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk's bytes are decoded as read only when they are its lines: CRLF endings, a NUL,
    an indented record and a last line without a newline read as the reference reads them
    (issue 17)."""
    fast, fast_rejects = _read(data)
    slow, slow_rejects = _reference(data, monkeypatch)
    assert_frame_equal(fast, slow)
    assert_frame_equal(fast_rejects, slow_rejects)


def test_keys_counted_in_the_line() -> None:
    """The keys a line spells, at any depth, whatever its strings hold: quotes and colons,
    backslashes, braces (the count that tells a record the sample's schema holds whole from one
    that lost a key)."""
    rng = random.Random(5)
    pieces = ['\\":', "\\\\", '" :', "{", "}", ",", ":", '"', "\t", "x", "é", "null", "\\n"]

    def value(depth: int) -> object:
        kind = rng.randrange(6 if depth < 3 else 3)
        if kind == 0:
            return "".join(rng.choice(pieces) for _ in range(rng.randrange(6)))
        if kind == 1:
            return rng.choice([None, True, 1, -2.5])
        if kind == 2:
            return "plain"
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return {
            rng.choice(["k", ":k", "k:", "", "k,", 'k"', "k\\", "é", "k\n"]) + str(i): value(depth + 1)
            for i in range(rng.randrange(4))
        }

    def keys(v: object) -> int:
        if isinstance(v, dict):
            return len(v) + sum(keys(x) for x in v.values())
        return sum(keys(x) for x in v) if isinstance(v, list) else 0

    records = [{"msg": "m", **{f"a{i}": value(0) for i in range(rng.randrange(5))}} for _ in range(3000)]
    lines = [
        json.dumps(
            r,
            ensure_ascii=rng.random() < 0.5,
            separators=rng.choice([(",", ":"), (", ", ": "), (",", " : ")]),
        )
        for r in records
    ]
    got = pl.Series(lines).str.count_matches(_json_fast._SPELLED_KEY).to_list()
    assert got == [keys(r) for r in records]
    # the quick count, where it is given, is never below the regex's (issue 17)
    series = pl.Series(lines)
    quick = _json_fast._spelled_at_least(series, series.str.contains("null", literal=True)).to_list()
    assert [q for q, n in zip(quick, got, strict=True) if q is not None and q < n] == []
    assert sum(q is not None for q in quick) > 500


def test_same_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks that see different keys (and a broken line in one of them) still agree."""
    data = _mixed() * 3
    kw = {"tz": "UTC", "chunk_bytes": 4096}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = ll.scan_app_log(data, **kw).collect()
        with monkeypatch.context() as m:
            m.setattr(_json, "decode_json", lambda lines, body=None: None)
            slow = ll.scan_app_log(data, **kw).collect()
    assert_frame_equal(fast, slow)


#: inputs whose every record polars reads (the others mix one key's types across formats, or are
#: Rust tracing's nested ``fields``)
WHOLE = [
    n
    for n in INPUTS
    if n not in ("mixed", "documented shapes", "structlog.json", "tracing-subscriber-0.3.json")
]


@pytest.mark.parametrize("name", WHOLE)
def test_no_record_read_one_by_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """loguru's record, ECS/pino-http objects, structlog's dict_tracebacks and explicit nulls are
    all mapped by expressions: no record of these logs goes through Python."""
    assert _slow_records(INPUTS[name](), monkeypatch) == 0


def test_python_float_spelling() -> None:
    """Floats of every size and shape spelled as Python's repr spells them."""
    rng = random.Random(17)
    xs = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    xs += [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(20_000)]
    xs += [1e-4, 9.999999999999999e-05, 1e-5, 5e-324, -0.0, 0.0, 1e16, 9999999999999998.0, 0.00012]
    xs = [x for x in xs if math.isfinite(x)]
    got = pl.select(python_float(pl.lit(pl.Series(xs, dtype=pl.Float64)))).to_series().to_list()
    assert [g for g, x in zip(got, xs, strict=True) if g != repr(x)] == []


def test_a_broken_line_leaves_the_rest_to_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut record and a NaN in a chunk are read alone; the chunk's other records are not."""
    pino = APP.joinpath("pino.json").read_bytes()
    data = pino * 20 + b'{"level":30,"time":1709287200000,"msg":"cut off mid-rec\n' + pino * 20
    data += b'{"level": 30, "time": 1709287200000, "msg": "ratio", "ratio": NaN}\n' + pino
    assert _slow_records(data, monkeypatch) == 2


if __name__ == "__main__":  # write the inputs out, to look at them
    out = Path(sys.argv[1])
    out.mkdir(exist_ok=True)
    for key, make in INPUTS.items():
        out.joinpath(key.replace(" ", "_") + ".json").write_bytes(make())
    print(json.dumps(sorted(INPUTS)))


def test_json_sources_read_in_larger_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON source read with the default chunk size goes through the driver in
    ``APP_JSON_CHUNK_BYTES`` chunks (each chunk costs polars a fixed set of calls); a text source
    and a chunk size given to ``scan_app_log`` keep theirs (issue 17)."""
    from loglib.sources.app import _common, _parser

    seen: list[int] = []
    real = _parser.read_entries

    def spy(parser, report, *, chunk_bytes):
        seen.append(chunk_bytes)
        return real(parser, report, chunk_bytes=chunk_bytes)

    monkeypatch.setattr(_parser, "read_entries", spy)
    record = b'{"level":30,"time":1709287200000,"msg":"up"}\n'
    assert ll.read_app_log(record, tz="UTC").height == 1
    assert ll.read_app_log(b"2024-03-01 10:00:00,120 INFO app.web: up\n", tz="UTC").height == 1
    assert ll.scan_app_log(record, tz="UTC", chunk_bytes=4096).collect().height == 1
    assert seen == [_common.APP_JSON_CHUNK_BYTES, _common.APP_CHUNK_BYTES, 4096]
    assert _common.APP_JSON_CHUNK_BYTES > _common.APP_CHUNK_BYTES
