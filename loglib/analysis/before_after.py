"""Before and after a fix: the windows either side of it and the measures that changed (``before_after_table``).

Error rate, p95 wait (from a Prometheus histogram), pool utilisation and PostgreSQL refusals in
two equal windows around the fix: the incident's windows named ``before``/``after``, else
either side of ``at``. By default the fix is the last deploy (else action or restart) after
which the failures fell; the "after" window starts once it was in place (its replacement
process up, plus one metric step), so it holds no sample from before it. A deploy that
brought failures is never taken for a fix.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib._compat import is_frame, to_polars
from loglib.analysis.evidence import AppSettings, Evidence, NoEvidenceError, as_evidence
from loglib.analysis.series import histogram_quantile, pool_series
from loglib.core.timeparse import parse_instant
from loglib.formats.pg_messages import REFUSAL_EVENTS


def fix_windows(
    ev: Evidence | None, before: Any, after: Any, at: Any, span: tuple[datetime, datetime] | None
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime], str]:
    """The windows before and after the fix, and how they were chosen (see :func:`before_after_table`)."""
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
    settled = None
    if at is None and ev is not None and span is not None:
        at, settled, how = _the_fix(ev, span)
    if at is None or span is None:
        msg = "before/after needs before=(start, end) and after=(start, end), at=<time of the fix>, or an Incident with a deploy event or windows named 'before'/'after'"
        raise ValueError(msg)
    at = parse_instant(at, argument="at")
    begin = settled or at
    length = min(at - span[0], span[1] - begin)
    if length <= timedelta(0):
        msg = f"at={at.isoformat()} is not inside the evidence window {span[0].isoformat()} – {span[1].isoformat()}"
        raise ValueError(msg)
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

    A deploy that brought failures is not a fix: when no step lowered them, raise ValueError
    saying so (pass ``at=`` to compare around a time anyway).
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
    msg = (
        "before/after: no deploy, action or restart in the evidence lowered the failures"
        f"{last}, so there is no fix to compare around; pass at=<time> (or windows named "
        "'before'/'after') to compare anyway"
    )
    raise ValueError(msg)


def _in_place(ev: Evidence, events: pl.DataFrame, at: datetime) -> datetime:
    """When the fix at ``at`` was running: the app's last restart of its roll-out, plus one step of
    the metrics (their samples lag the process they describe)."""
    rolled = events.filter(
        pl.col("kind").is_in(["restart", "deploy"]) & pl.col("ts").is_between(at, at + ROLL_OUT)
    )["ts"]
    done = max([at, *rolled.to_list()])
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
    rows = []

    def per_minute(frame: pl.DataFrame | None, cond: pl.Expr, s: datetime, e: datetime) -> float | None:
        if frame is None:
            return None
        n = _in_window(frame, s, e).filter(cond).height
        return n / max((e - s).total_seconds() / 60, 1e-9)

    if app_f is not None:
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
                "app log: rows with an error_class",
            )
        )
    p_b, name = histogram_quantile(met, 0.95, b0, b1)
    p_a, _ = histogram_quantile(met, 0.95, a0, a1)
    rows.append(
        (
            "p95 wait",
            "s",
            p_b,
            p_a,
            f"histogram {name}" if name else "no latency/wait histogram in the metrics",
        )
    )
    settings = ev.app_settings if ev is not None else AppSettings()
    pools = pool_series(met, pool_size=settings.pool_size, max_overflow=settings.max_overflow)
    if pools:

        def util(s: datetime, e: datetime, fn: str) -> float | None:
            vals = []
            for p in pools:
                w = _in_window(p.frame, s, e)
                if w.height and p.size:
                    vals.append(getattr(w["value"] / p.size * 100, fn)())
            return max(vals) if vals else None

        rows.append(
            (
                "pool utilisation, mean",
                "% of pool_size",
                util(b0, b1, "mean"),
                util(a0, a1, "mean"),
                f"series {pools[0].series}",
            )
        )
        rows.append(
            (
                "pool utilisation, peak",
                "% of pool_size",
                util(b0, b1, "max"),
                util(a0, a1, "max"),
                f"series {pools[0].series}",
            )
        )
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
    change = (
        pl.when(pl.col("before").is_null() | pl.col("after").is_null()).then(pl.lit("n/a"))
        .when(pl.col("before") == 0).then(pl.when(pl.col("after") == 0).then(pl.lit("0%")).otherwise(pl.lit("new")))
        .otherwise(((pl.col("after") / pl.col("before") - 1) * 100).round(0).cast(pl.Int64).map_elements(lambda v: f"{v:+d}%", return_dtype=pl.String))
    )  # fmt: skip
    return out.with_columns(
        pl.col("before").round(3), pl.col("after").round(3), change=change,
        window_before=pl.lit(f"{b0:%H:%M:%S}–{b1:%H:%M:%S} UTC"), window_after=pl.lit(f"{a0:%H:%M:%S}–{a1:%H:%M:%S} UTC"),
        split=pl.lit(how),
    ).select("measure", "unit", "before", "after", "change", "evidence", "window_before", "window_after", "split")  # fmt: skip
