"""Before and after a fix: the windows either side of it and the measures that changed (``before_after_table``).

Pool capacity, pool utilisation as a share of capacity (``pool_size + max_overflow``), the 503
and 5xx rate of answered requests, request wait p95 (where a histogram exists), leaked
connections per hour and PostgreSQL refusals, in two equal windows around the fix: the
incident's windows named ``before``/``after``, else either side of ``at`` (default: the declared
``fix`` event; without one there is no table: :class:`NeedsFixError` names the candidate, the
last deploy, action or restart after which the failures fell, and how to declare it). The after window starts once the fix was in place.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib._compat import is_frame, to_polars
from loglib.analysis.evidence import AppSettings, Evidence, NoEvidenceError, as_evidence
from loglib.analysis.series import histogram_quantile, pool_series
from loglib.core.schema import CHANGE_KINDS
from loglib.core.timeparse import parse_instant
from loglib.formats.lifecycle import APP_START_PATTERN
from loglib.formats.metric_names import OVERFLOW_PATTERN, POOL_SIZE_PATTERN
from loglib.formats.pg_messages import REFUSAL_EVENTS

#: what before_after_table says when nothing tells it where the fix is
NEEDS_FIX = (
    'before/after needs the fix: declare it in incident.toml ([[events]] at = <when>, kind = "fix", '
    'text = "..."), or give at=<time of the fix>, or before=(start, end) and after=(start, end), or '
    "windows named 'before'/'after'"
)


class NeedsFixError(ValueError):
    """Before/after has no declared fix: it says how to declare one and names loglib's candidate
    (never computed from it).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> e = NeedsFixError(datetime(2024, 3, 1, 9, 5, tzinfo=UTC), "deploy: v2")
    >>> print(e.toml())
    [[events]]
    at = "2024-03-01T09:05:00Z"
    kind = "fix"
    text = "deploy: v2"
    >>> e.reason
    'no fix event is declared in incident.toml'

    ``reason`` is the short why, for a document (no API hint such as ``pass at=``); ``why`` is
    the full one (the candidate's, or with no candidate the whole explanation).
    """

    def __init__(
        self,
        at: datetime | None,
        step: str,
        why: str = "after which the failures fell",
        *,
        reason: str = "no fix event is declared in incident.toml",
    ) -> None:
        self.at, self.step, self.why, self.reason = at, step, why, reason
        cand = f"the {step} at {at:%Y-%m-%d %H:%M:%S} UTC, {why}" if at is not None else why
        super().__init__(
            f'before/after needs a declared fix (an [[events]] entry with kind = "fix" in incident.toml); '
            f"no numbers are computed from a guess. Candidate: {cand}"
        )

    def toml(self) -> str:
        """The incident.toml snippet that declares the candidate as the fix."""
        at = f"{self.at:%Y-%m-%dT%H:%M:%SZ}" if self.at is not None else "<time of the fix, UTC>"
        text = self.step.replace('"', "'") if self.at is not None else "what fixed it"
        return f'[[events]]\nat = "{at}"\nkind = "fix"\ntext = "{text}"'


def fix_windows(
    ev: Evidence | None, before: Any, after: Any, at: Any, span: tuple[datetime, datetime] | None
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime], str]:
    """The windows before and after the fix, and how they were chosen (see :func:`before_after_table`).

    The fix is ``at``, else the last declared ``fix`` event, else (said so in the split) the last
    deploy, action or restart after which the failures fell. The after window starts once the
    fix was in place (the app's last restart of its roll-out, plus one metric step), so it holds
    no pre-fix sample.
    """
    if before is not None and after is not None:
        b0, b1, a0, a1 = (
            parse_instant(v, argument=f"{name}[{i}]")
            for name, pair in (("before", before), ("after", after))
            for i, v in enumerate(pair)
        )
        return (b0, b1), (a0, a1), "given"
    wins = ev.windows if ev is not None else ()
    named = {w.name.lower(): w for w in wins}
    b = next((w for n, w in named.items() if "before" in n), None)
    a = next((w for n, w in named.items() if "after" in n), None)
    if at is None and b is not None and a is not None:
        return (b.start, b.end), (a.start, a.end), "incident windows"
    how = "given"
    events = ev.events.filter(pl.col("ts").is_not_null()) if ev is not None else None
    declared = events.filter(pl.col("kind") == "fix") if events is not None else None
    if at is None and declared is not None and declared.height:
        row = declared.sort("ts").row(-1, named=True)
        at, how = row["ts"], f"fix: {row['text']}"
    elif at is None and ev is not None and span is not None:
        cand, _, step = _the_fix(ev, span)
        raise NeedsFixError(cand, step)
    if at is None or span is None:
        raise ValueError(NEEDS_FIX)
    at = parse_instant(at, argument="at")
    begin = _in_place(ev, events, at) if ev is not None and events is not None else at
    length = min(at - span[0], span[1] - begin)
    if length <= timedelta(0):
        msg = f"at={at.isoformat()} leaves no time before or after it in the evidence window {span[0].isoformat()} – {span[1].isoformat()}"
        raise ValueError(msg)
    if how != "given":
        how += f"; after window from {begin:%H:%M:%S} (the fix in place: its last restart + one metric step)"
    return (at - length, at), (begin, begin + length), how


#: a replacement process comes up within this long of the fix's first step (a rolling deploy)
ROLL_OUT = timedelta(seconds=60)


def _failures(ev: Evidence) -> pl.Series:
    """Times of the incident's failures: app errors with an error_class, PostgreSQL refusals."""
    parts = []
    if ev.app is not None and "error_class" in ev.app.columns:
        parts.append(ev.app.filter(pl.col("error_class").is_not_null())["ts"])
    if ev.pg is not None and ev.pg.height:
        parts.append(ev.pg.filter(pl.col("event").is_in(REFUSAL_EVENTS))["ts"])
    return (
        pl.concat(parts).drop_nulls().sort() if parts else pl.Series("ts", [], dtype=pl.Datetime("us", "UTC"))
    )


def _the_fix(ev: Evidence, span: tuple[datetime, datetime]) -> tuple[datetime, datetime | None, str]:
    """The fix: the last deploy (else action or restart) after which failures fell, compared over
    equal spans either side; and when it was in place (its replacement process's restart, plus
    one metric step: a scrape just after it still shows the old process).

    A deploy that brought failures is not a fix: when no step lowered them, raise
    :class:`NeedsFixError` without a candidate, its ``reason`` saying so (pass ``at=`` to
    compare around a time anyway).
    """
    events = ev.events.filter(pl.col("ts").is_not_null())
    fails = _failures(ev)
    deploys = events.filter(pl.col("kind") == "deploy")["ts"]
    # a restart within a deploy's roll-out is that deploy's own step, not a fix of its own
    in_deploy = pl.lit(False)
    for d in deploys:
        in_deploy = in_deploy | pl.col("ts").is_between(d, d + ROLL_OUT)
    for kinds in (["deploy"], ["action", "restart"]):
        steps = events.filter(pl.col("kind").is_in(kinds) & (pl.col("origin") != "connections"))
        if kinds != ["deploy"]:
            steps = steps.filter(~in_deploy)
        steps = steps.sort("ts")
        for row in reversed(steps.rows(named=True)):
            at = row["ts"]
            length = min(at - span[0], span[1] - at)
            if length <= timedelta(0):
                continue
            before = int(fails.is_between(at - length, at, closed="left").sum())
            after = int(fails.is_between(at, at + length, closed="left").sum())
            if before > after:
                return at, _in_place(ev, events, at), f"{row['kind']}: {row['text']}"
    last = f" (the last failure was at {fails.max():%H:%M:%S} UTC)" if fails.len() else ""
    reason = f"no deploy, action or restart in the evidence lowered the failures{last}"
    why = (
        f"{reason}, so there is no fix to compare around; pass at=<time> (or windows named "
        "'before'/'after') to compare anyway, or declare the fix in incident.toml ([[events]] kind = \"fix\")"
    )
    raise NeedsFixError(None, "", why, reason=reason)


def _in_place(ev: Evidence, events: pl.DataFrame, at: datetime) -> datetime:
    """When the fix at ``at`` was running: the app's last restart of its roll-out — the last
    replacement's own start line, when the log has one (a restart is stamped at its stop line) —
    plus one step of the metrics (their samples lag the process they describe)."""
    rolled = events.filter(pl.col("kind").is_in(CHANGE_KINDS) & pl.col("ts").is_between(at, at + ROLL_OUT))[
        "ts"
    ]
    done = max([at, *rolled.to_list()])
    app = ev.app
    if app is not None and app.height and "message" in app.columns:
        started = app.filter(
            pl.col("ts").is_between(at, done + ROLL_OUT) & pl.col("message").str.contains(APP_START_PATTERN)
        )["ts"]
        if started.len():
            done = max(done, started.max())  # type: ignore[type-var]
    step = timedelta(0)
    if ev.metrics is not None and ev.metrics.height:
        diffs = ev.metrics.sort("ts")["ts"].unique().diff().drop_nulls()
        step = diffs.median() if diffs.len() else timedelta(0)  # type: ignore[assignment]
    return done + (step or timedelta(0))


def before_after_table(
    data: Any,
    *,
    before: tuple[Any, Any] | None = None,
    after: tuple[Any, Any] | None = None,
    at: Any = None,
    app: Any = None,
    pg: Any = None,
    metrics: Any = None,
) -> pl.DataFrame:
    """Before/after figures of a fix: error rate, p95 wait, pool utilisation, refused connections.

    Parameters
    ----------
    data
        An :class:`~loglib.Evidence` (or an Incident: its ``.evidence``), or an application-log
        frame. From an Evidence with no other argument the table is computed once and cached.
    app, pg, metrics
        Frames that stand in for the Evidence's.
    before, after
        ``(start, end)`` of each window: aware datetimes or ISO text with ``Z``/an offset (a naive
        time is refused, never taken as UTC). Default: the Incident's
        windows named ``before``/``after``; else equal windows either side of ``at``.
    at
        The time of the fix (aware, like ``before``); default: the Incident's last deploy (else
        action/restart) event.

    Returns
    -------
    polars.DataFrame
        ``measure``, ``unit``, ``before``, ``after``, ``change`` (text, e.g. ``-92%``),
        ``evidence`` (where each figure comes from), plus ``window_before``/``window_after``.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
    >>> app = pl.DataFrame({"ts": [t0 + timedelta(seconds=s) for s in (5, 20, 50, 100)],
    ...                     "error_class": ["pool_timeout"] * 3 + [None], "level": "error",
    ...                     "file": "app.log", "line": [1, 2, 3, 4]})
    >>> tbl = ll.before_after_table(app, at=t0 + timedelta(minutes=1))
    >>> tbl.select("measure", "before", "after", "change").row(0)
    ('error rate', 3.0, 0.0, '-100%')

    .. versionchanged:: 0.1
       Naive times in ``before``/``after``/``at`` raise :class:`~loglib.TimezoneError` instead
       of being taken as UTC.
    """
    ev = None if data is None or is_frame(data) else as_evidence(data)
    if ev is not None and before is None and after is None and at is None and app is pg is metrics is None:
        return ev.cached("before_after", lambda: _table(ev, ev.app, ev.pg, ev.metrics, None, None, None))
    if ev is None and data is not None and app is None:
        app = data
    app_f = _frame(app, ev, "app")
    pg_f = _frame(pg, ev, "pg")
    met = _frame(metrics, ev, "metrics")
    return _table(ev, app_f, pg_f, met, before, after, at)


def _pool_rows(
    pools: list[Any],
    met: pl.DataFrame | None,
    before: tuple[datetime, datetime],
    after: tuple[datetime, datetime],
) -> list[tuple[str, str, float | None, float | None, str]]:
    """Capacity (pool_size + max_overflow, per window from the size series when there is one) and
    utilisation as a share of it: a full pool is 100 %, never more."""
    sizes = (
        met.filter(
            pl.col("metric").cast(pl.String).str.contains(POOL_SIZE_PATTERN)
            & ~pl.col("metric").cast(pl.String).str.contains(OVERFLOW_PATTERN)
        )
        if met is not None and "metric" in met.columns
        else None
    )

    def capacity(p: Any, s: datetime, e: datetime) -> float:
        size = p.size
        if sizes is not None and sizes.height:
            w = _in_window(sizes, s, e)
            if w.height:
                size = float(w["value"].max())
        cap = size + (p.overflow or 0)
        peak = _in_window(p.frame, s, e).filter(pl.col("value").is_finite())["value"].max()
        return max(cap, float(peak)) if peak is not None else cap  # a gauge above it: settings are stale

    def util(s: datetime, e: datetime, fn: str) -> float | None:
        vals = []
        for p in pools:
            w = _in_window(p.frame, s, e).filter(pl.col("value").is_finite())  # NaN/±Inf: no reading
            if w.height:
                vals.append(getattr(w["value"] / capacity(p, s, e) * 100, fn)())
        return max(vals) if vals else None

    cap_b = sum(capacity(p, *before) for p in pools)
    cap_a = sum(capacity(p, *after) for p in pools)
    series = f"series {pools[0].series}" + (f" and {len(pools) - 1} more" if len(pools) > 1 else "")
    unit = "% of capacity (pool_size + max_overflow)"
    return [
        (
            "pool capacity",
            "connections (pool_size + max_overflow)",
            cap_b,
            cap_a,
            "pool size series or [app] settings",
        ),
        ("pool utilisation, peak", unit, util(*before, "max"), util(*after, "max"), series),
        ("pool utilisation, mean", unit, util(*before, "mean"), util(*after, "mean"), series),
    ]


def _request_rows(ev: Evidence | None, app_f: pl.DataFrame | None) -> tuple[pl.DataFrame, str] | None:
    from loglib.analysis.requests import request_rows

    if ev is None:
        ev = Evidence.from_frames(app=app_f)
    return request_rows(ev)


def _leak_rows(
    ev: Evidence | None, before: tuple[datetime, datetime], after: tuple[datetime, datetime]
) -> tuple[str, str, float | None, float | None, str] | None:
    """Leaked connections per hour in each window, from the best leak evidence (1-minute buckets)."""
    if ev is None:
        return None
    from loglib.analysis.leaks import leak_rates

    rates = leak_rates(ev, "1m", best_only=True)
    if rates.height == 0:
        return None

    def per_hour(s: datetime, e: datetime) -> float | None:
        w = rates.filter((pl.col("ts") >= s) & (pl.col("ts") < e))
        if w.height == 0 or w["leaked"].null_count() == w.height:
            return None
        return float(w["leaked"].sum()) / max((e - s).total_seconds() / 3600, 1e-9)

    method = rates["method"][0]
    blind = rates.filter(pl.col("saturated").fill_null(False)).height
    note = f"leak_rates, method {method}, 1-minute buckets" + (
        "; a full pool hides new leaks (those minutes count none)" if blind else ""
    )
    return ("leaked connections", "per hour", per_hour(*before), per_hour(*after), note)


def _frame(given: Any, ev: Evidence | None, name: str) -> pl.DataFrame | None:
    if given is not None:
        return to_polars(given)
    return getattr(ev, name) if ev is not None else None


def _span(ev: Evidence | None, *frames: pl.DataFrame | None) -> tuple[datetime, datetime] | None:
    if ev is not None:
        try:
            return ev.window()
        except NoEvidenceError:  # no timestamps anywhere: the frames' own span, if any
            pass
    app, pg, metrics = frames
    return Evidence.from_frames(app=app, pg=pg, metrics=metrics).data_span()


def _in_window(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end)) if "ts" in frame.columns else frame


def _table(
    ev: Evidence | None,
    app_f: pl.DataFrame | None,
    pg_f: pl.DataFrame | None,
    met: pl.DataFrame | None,
    before: Any,
    after: Any,
    at: Any,
) -> pl.DataFrame:
    span = _span(ev, app_f, pg_f, met)
    (b0, b1), (a0, a1), how = fix_windows(ev, before, after, at, span)
    rows: list[tuple[str, str, float | None, float | None, str]] = []

    def per_minute(frame: pl.DataFrame | None, cond: pl.Expr, s: datetime, e: datetime) -> float | None:
        if frame is None:
            return None
        # counted, not filtered: a filter copies every column of the rows it keeps (a gigabyte log)
        inside = (pl.col("ts") >= s) & (pl.col("ts") < e) if "ts" in frame.columns else pl.lit(True)
        n = frame.select((inside & cond).fill_null(False).sum()).item()
        return n / max((e - s).total_seconds() / 60, 1e-9)

    settings = ev.app_settings if ev is not None else AppSettings()
    pools = pool_series(met, pool_size=settings.pool_size, max_overflow=settings.max_overflow)
    pools = [p for p in pools if p.size]
    if pools:
        rows += _pool_rows(pools, met, (b0, b1), (a0, a1))
    requests = _request_rows(ev, app_f)
    if requests is not None:
        reqs, source = requests

        def share(s: datetime, e: datetime, cond: pl.Expr) -> float | None:
            w = _in_window(reqs, s, e)
            total = w["n"].sum()
            return 100 * w.filter(cond)["n"].sum() / total if total else None

        for name, cond in (("503 rate", pl.col("status") == 503), ("5xx rate", pl.col("status") >= 500)):
            rows.append((name, "% of answered requests", share(b0, b1, cond), share(a0, a1, cond), source))
    elif app_f is not None:
        cond = (
            pl.col("error_class").is_not_null()
            if "error_class" in app_f.columns
            else pl.col("level").is_in(["error", "critical"])
        )
        rows.append(
            (
                "error rate",
                "errors/min",
                per_minute(app_f, cond, b0, b1),
                per_minute(app_f, cond, a0, a1),
                "app log: rows with an error_class (no access lines or request counter for a 503 rate)",
            )
        )
    p_b, name = histogram_quantile(met, 0.95, b0, b1)
    if name:
        p_a, _ = histogram_quantile(met, 0.95, a0, a1)
        rows.append(("request wait p95", "s", p_b, p_a, f"histogram {name}"))
    leaks = _leak_rows(ev, (b0, b1), (a0, a1))
    if leaks is not None:
        rows.append(leaks)
    if pg_f is not None:
        cond = pl.col("event").is_in(REFUSAL_EVENTS)
        rows.append(
            (
                "connections refused by PostgreSQL",
                "per min",
                per_minute(pg_f, cond, b0, b1),
                per_minute(pg_f, cond, a0, a1),
                "PostgreSQL log: " + " / ".join(REFUSAL_EVENTS),
            )
        )
    out = pl.DataFrame(
        rows,
        schema={
            "measure": pl.String,
            "unit": pl.String,
            "before": pl.Float64,
            "after": pl.Float64,
            "evidence": pl.String,
        },
        orient="row",
    )
    # a NaN/±Inf figure (from NaN or Inf samples) is no reading: unknown, never drawn or compared
    out = out.with_columns(
        pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in ("before", "after")
    )
    change = (
        pl.when(~pl.col("before").is_finite().fill_null(False) | ~pl.col("after").is_finite().fill_null(False)).then(pl.lit("n/a"))
        .when(pl.col("before") == 0).then(pl.when(pl.col("after") == 0).then(pl.lit("0%")).otherwise(pl.lit("new")))
        .otherwise(((pl.col("after") / pl.col("before") - 1) * 100).round(0).cast(pl.Int64).map_elements(lambda v: f"{v:+d}%", return_dtype=pl.String))
    )  # fmt: skip
    return out.with_columns(
        pl.col("before").round(3), pl.col("after").round(3), change=change,
        window_before=pl.lit(f"{b0:%H:%M:%S}–{b1:%H:%M:%S} UTC"), window_after=pl.lit(f"{a0:%H:%M:%S}–{a1:%H:%M:%S} UTC"),
        split=pl.lit(how),
    ).select("measure", "unit", "before", "after", "change", "evidence", "window_before", "window_after", "split")  # fmt: skip
