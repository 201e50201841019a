"""What users saw: requests answered and failed, from access lines or ``http_requests_total`` (``request_impact``).

Access lines in the application log (``http_status``, one per answered request) are counted
exactly; without them, a request counter with a ``code`` or ``status`` label gives a lower bound
(increases between scrapes: requests before a series' first sample and after its last are not
seen). Failed means a 5xx answer; 503 is also counted on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from loglib.analysis.evidence import Evidence, as_evidence
from loglib.formats.metric_names import REQUESTS_TOTAL_PATTERN


@dataclass(frozen=True)
class RequestImpact:
    """Requests answered and failed in the evidence, and how they were counted.

    ``method`` is ``"access lines"`` (exact: every answered request) or ``"http_requests_total"``
    (``bound="at least"``: increases of the counter between scrapes). ``peak_*`` is the minute
    (UTC) with the most failed requests.
    """

    method: str
    bound: str
    evidence: str
    answered: int
    failed: int
    status_503: int
    first_failed: datetime | None
    last_failed: datetime | None
    peak_minute: datetime | None
    peak_failed: int
    peak_answered: int

    @property
    def failed_share(self) -> float | None:
        """Failed ÷ answered (0–1), or None without answered requests."""
        return self.failed / self.answered if self.answered else None

    @property
    def affected(self) -> timedelta | None:
        """From the first failed request to the last (users were affected at least this long)."""
        if self.first_failed is None or self.last_failed is None:
            return None
        return self.last_failed - self.first_failed


def request_impact(data: object) -> RequestImpact | None:
    """Requests answered, failed (5xx) and 503s, the first and last failure and the worst minute.

    ``data`` is an Evidence (or an Incident: its ``.evidence``; cached). None when neither access
    lines nor a request counter with a status label is in the evidence: loglib does not guess.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
    >>> app = pl.DataFrame({"ts": [t0 + timedelta(seconds=s) for s in range(4)],
    ...                     "http_status": pl.Series([200, 503, 503, 500], dtype=pl.Int16)})
    >>> imp = ll.request_impact(ll.Evidence.from_frames(app=app))
    >>> imp.answered, imp.failed, imp.status_503, round(imp.failed_share, 2), imp.bound
    (4, 3, 2, 0.75, 'exact')
    """
    ev = as_evidence(data)
    return ev.cached("request_impact", lambda: _impact(ev))


def request_rows(data: object) -> tuple[pl.DataFrame, str] | None:
    """Answered requests as ``ts``, ``n``, ``status`` rows and where they come from (access lines,
    else increases of a request counter: a lower bound); None without either."""
    ev = as_evidence(data)
    rows = _access_rows(ev)
    if rows is not None:
        return rows, "app log: access lines (one per answered request)"
    counted = _counter_rows(ev.metrics)
    return None if counted is None else (counted[0], counted[1])


def _access_rows(ev: Evidence) -> pl.DataFrame | None:
    """``ts``, ``n`` (1), ``status`` of each access line, once per Evidence; None without any.

    The three columns are taken before the filter: filtering the app frame first copied every
    column of almost every row (most lines of a busy app log are access lines)."""
    app = ev.app
    if app is None or "http_status" not in app.columns:
        return None

    def rows() -> pl.DataFrame:
        return app.select("ts", n=pl.lit(1, pl.Int64), status=pl.col("http_status").cast(pl.Int32)).filter(
            pl.col("status").is_not_null() & pl.col("ts").is_not_null()
        )

    found = ev.cached("access_rows", rows)
    return found if found.height else None


def _impact(ev: Evidence) -> RequestImpact | None:
    rows = _access_rows(ev)
    if rows is not None:
        return _from_rows(rows, "access lines", "exact", "app log: access lines (one per answered request)")
    return _from_counter(ev.metrics)


def _from_rows(rows: pl.DataFrame, method: str, bound: str, evidence: str) -> RequestImpact:
    """``rows``: ``ts``, ``n`` (requests), ``status``."""
    failed = rows.filter(pl.col("status") >= 500)
    per_min = (
        rows.with_columns(minute=pl.col("ts").dt.truncate("1m"), bad=pl.col("status") >= 500)
        .group_by("minute")
        .agg(answered=pl.col("n").sum(), failed=pl.col("n").filter(pl.col("bad")).sum())
        .sort("failed", "minute", descending=[True, False])
    )
    peak = per_min.row(0, named=True) if failed.height else None
    return RequestImpact(
        method=method,
        bound=bound,
        evidence=evidence,
        answered=int(rows["n"].sum()),
        failed=int(failed["n"].sum()),
        status_503=int(rows.filter(pl.col("status") == 503)["n"].sum()),
        first_failed=failed["ts"].min() if failed.height else None,
        last_failed=failed["ts"].max() if failed.height else None,
        peak_minute=peak["minute"] if peak else None,
        peak_failed=int(peak["failed"]) if peak else 0,
        peak_answered=int(peak["answered"]) if peak else 0,
    )


def _from_counter(metrics: pl.DataFrame | None) -> RequestImpact | None:
    counted = _counter_rows(metrics)
    if counted is None:
        return None
    rows, evidence, name = counted
    return _from_rows(rows, name, "at least", evidence)


def _counter_rows(metrics: pl.DataFrame | None) -> tuple[pl.DataFrame, str, str] | None:
    """Increases of a request counter per series: a drop is a restart (the new value counts), and a
    series first seen after the counter's first scrape started at 0 (its first value counts)."""
    if metrics is None or metrics.height == 0 or "metric" not in metrics.columns:
        return None
    counters = metrics.filter(pl.col("metric").cast(pl.String).str.contains(REQUESTS_TOTAL_PATTERN))
    if counters.height == 0 or "labels" not in counters.columns:
        return None
    fields = {f.name for f in counters.schema["labels"].fields}
    key = next((k for k in ("code", "status", "status_code") if k in fields), None)
    if key is None:
        return None
    rows = (
        counters.with_columns(
            status=pl.col("labels").struct.field(key).cast(pl.String).cast(pl.Int32, strict=False)
        )
        .filter(pl.col("status").is_not_null() & pl.col("value").is_finite())  # NaN/±Inf: no reading
        .sort("series", "ts")
        .with_columns(step=pl.col("value").diff().over("series"))
        .with_columns(
            step=pl.when(pl.col("step").is_null() & (pl.col("ts") > pl.col("ts").min()))
            .then(pl.col("value"))
            .otherwise(pl.col("step"))
        )
        .with_columns(n=pl.when(pl.col("step") < 0).then(pl.col("value")).otherwise(pl.col("step")))
        .filter(pl.col("n") > 0)
        .select("ts", pl.col("n").round(0).cast(pl.Int64), "status")
    )
    if rows.height == 0:
        return None
    name = counters["metric"][0]
    return (
        rows,
        f"{name}{{{key}}}: increases between scrapes, a lower bound (requests before a series' first sample are not seen)",
        name,
    )
