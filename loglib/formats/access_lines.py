"""HTTP access lines in application logs: the status of each answered request (``http_status``).

An access line names the request in quotes and its status right after it, as the common and
combined log formats, gunicorn, uvicorn, Rails' and most home-grown access loggers write it
(``"GET /catalog HTTP/1.1" 200 512``, ``"POST /checkout?total=523" 503 1.002s``); structured
logs carry it as a field (``status``, ``status_code``, ``statusCode``, ``http.status_code``,
``res.statusCode``, ``http.response.status_code``).

>>> import polars as pl
>>> from loglib.formats.access_lines import http_status_expr
>>> df = pl.DataFrame({"message": ['"GET /catalog HTTP/1.1" 200 512', '127.0.0.1:5 - "POST /c" 503 0.1s',
...                                "POST /checkout failed: database pool exhausted"]})
>>> df.select(http_status_expr(pl.col("message"))).to_series().to_list()
[200, 503, None]
"""

from __future__ import annotations

import polars as pl

#: the quoted request line and the status after it
REQUEST_LINE = (
    r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|CONNECT|TRACE) [^"\n]{0,2000}" ([1-5][0-9][0-9])(?:[^0-9]|$)'
)
#: the same line with the time the request took right after the status, with its unit
#: (``"POST /checkout?total=523" 503 1.002s``, ``… 200 34ms``): most home-grown access loggers
REQUEST_DURATION = (
    r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|CONNECT|TRACE) [^"\n]{0,2000}" [1-5][0-9][0-9] '
    r"(\d+(?:\.\d+)?)(ms|s)(?:[^0-9A-Za-z]|$)"
)
#: structured-log fields that hold a response status
STATUS_KEYS: tuple[str, ...] = (
    "status",
    "status_code",
    "statusCode",
    "http.status_code",
    "http_status",
    "res.statusCode",
    "http.response.status_code",
    "response.status",
)


def http_status_expr(message: pl.Expr, extra: pl.Expr | None = None) -> pl.Expr:
    """The response status of an access line (Int16), from the message or a status field; else null."""
    from_line = message.str.extract(REQUEST_LINE, 1).cast(pl.Int16, strict=False)
    if extra is None:
        return from_line.alias("http_status")
    return pl.coalesce(from_line, status_field_expr(extra)).alias("http_status")


def status_field_expr(extra: pl.Expr) -> pl.Expr:
    """The response status a structured record's extras hold (:data:`STATUS_KEYS`), Int16; else null.

    >>> rec = [{"key": "user", "value": "7"}, {"key": "statusCode", "value": "503"}]
    >>> pl.select(status_field_expr(pl.lit(pl.Series([rec])))).item()
    503
    """
    return (
        extra.list.eval(
            pl.when(pl.element().struct.field("key").is_in(STATUS_KEYS)).then(
                pl.element().struct.field("value")
            )
        )
        .list.drop_nulls()
        .list.first()
        .str.extract(r"^([1-5][0-9][0-9])$", 1)
        .cast(pl.Int16, strict=False)
        .alias("http_status")
    )


def http_duration_expr(message: pl.Expr) -> pl.Expr:
    """Seconds the request of an access line took (Float64), when the line gives them with a unit
    right after the status; else null. A bare number is never guessed (ms? s? bytes?).

    >>> df = pl.DataFrame({"message": ['"POST /c?total=5" 503 1.002s', '"GET /x" 200 34ms', '"GET /y" 200 512']})
    >>> df.select(http_duration_expr(pl.col("message"))).to_series().to_list()
    [1.002, 0.034, None]
    """
    parts = message.str.extract_groups(REQUEST_DURATION)  # one regex pass for the value and its unit
    value = parts.struct.field("1").cast(pl.Float64, strict=False)
    unit = parts.struct.field("2")
    return pl.when(unit == "ms").then(value / 1000).otherwise(value).alias("http_duration_s")
