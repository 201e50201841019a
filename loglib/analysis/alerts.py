"""Replay an alerting rule on exported metrics: when would it have gone pending, fired, resolved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import polars as pl

from loglib.analysis.metrics import metrics_wide, resample
from loglib.core.schema import ALERT_TRANSITIONS, UTC_TS, conform
from loglib.core.timeparse import to_timedelta

OPERATORS: dict[str, Callable[[pl.Expr, float], pl.Expr]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    "==": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
}

Target = str | pl.Expr | Callable[[pl.DataFrame], pl.Series | pl.Expr | pl.DataFrame]


def _is_long(frame: pl.DataFrame) -> bool:
    return {"ts", "series", "value"} <= set(frame.columns)


def _wide_to_long(wide: pl.DataFrame) -> pl.DataFrame:
    value_cols = [c for c in wide.columns if c != "ts"]
    return wide.unpivot(index="ts", on=value_cols, variable_name="series", value_name="value").select(
        pl.col("ts").cast(UTC_TS), "series", pl.col("value").cast(pl.Float64)
    )


def _evaluate(frame: pl.DataFrame, target: Target, every: str | timedelta | None) -> tuple[pl.DataFrame, str]:
    """The series the rule looks at, long (``ts``, ``series``, ``value``), and a label for it."""
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if "ts" not in frame.columns:
        msg = f"frame needs a ts column: pass loglib.read_prometheus output or loglib.metrics_wide output; got {frame.columns}"
        raise ValueError(msg)
    long = _is_long(frame)
    if isinstance(target, str):
        if long:
            picked = frame.filter(pl.col("series") == target)
            if picked.height == 0 and "metric" in frame.columns:
                picked = frame.filter(pl.col("metric") == target)
            if picked.height == 0:
                known = sorted(frame["series"].unique().to_list())[:10]
                msg = f"no series or metric named {target!r} in the frame; series include {known}"
                raise ValueError(msg)
            picked = resample(picked, every) if every is not None else picked.select("ts", "series", "value")
            return picked, target
        if target not in frame.columns:
            msg = f"no column {target!r} in the wide frame; columns are {frame.columns}"
            raise ValueError(msg)
        return _wide_to_long(frame.select("ts", target)), target
    wide = metrics_wide(frame, every) if long else frame
    if isinstance(target, pl.Expr):
        result: object = wide.select("ts", target)
        label = ", ".join(c for c in result.columns if c != "ts")  # type: ignore[union-attr]
    elif callable(target):
        result = target(wide)
        label = getattr(target, "__name__", "rule")
        if isinstance(result, pl.Expr):
            result = wide.select("ts", result)
        elif isinstance(result, pl.Series):
            result = pl.DataFrame({"ts": wide["ts"], result.name or label: result})
        elif isinstance(result, pl.DataFrame) and "ts" not in result.columns:
            result = pl.concat([wide.select("ts"), result], how="horizontal")
        if not isinstance(result, pl.DataFrame):
            msg = f"the callable must return a polars Series, Expr or DataFrame, got {type(result).__name__}"
            raise TypeError(msg)
    else:
        msg = (
            "expr_or_series must be a series key or metric name (str), a polars expression over the wide "
            f"frame (e.g. pl.col('a') / pl.col('b')), or a callable; got {type(target).__name__}"
        )
        raise TypeError(msg)
    return _wide_to_long(result), label  # type: ignore[arg-type]


def replay_alert(
    frame: pl.DataFrame,
    expr_or_series: Target,
    op: str,
    threshold: float,
    for_: str | timedelta = "5m",
    *,
    every: str | timedelta | None = None,
    max_gap: str | timedelta | None = None,
    name: str | None = None,
) -> pl.DataFrame:
    """Replay a Prometheus alerting rule (``expr op threshold``, ``for: for_``) on exported data.

    The rule is evaluated at every sample time, per series, the way Prometheus' rule manager
    does it: when the condition becomes true the alert is ``pending`` (``active_since`` is that
    time); once it has held at every evaluation for ``for_`` it is ``firing``; when it is false
    again, or the data is missing, a firing alert is ``resolved`` and a pending one goes
    ``inactive`` (Prometheus drops such an alert silently; loglib records when).

    Parameters
    ----------
    frame
        The long frame of :func:`loglib.read_prometheus`, or a wide frame (``ts`` plus one
        column per series) such as :func:`loglib.metrics_wide` returns.
    expr_or_series
        What the rule looks at:

        * a ``series`` key (``'db_pool_checked_out{instance="api-1"}'``) or a metric name, every
          series of which is then its own alert (as Prometheus alerts per label set); on a wide
          frame, a column name;
        * a polars expression over the wide frame, e.g.
          ``pl.col('db_pool_checked_out{instance="api-1"}') / pl.col('db_pool_size{instance="api-1"}')``;
          each column it yields is its own alert;
        * a callable taking the wide frame and returning a Series, an Expr or a DataFrame.
    op
        One of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``. A NaN value compares false (true
        for ``!=``), as in PromQL.
    threshold
        The number the value is compared with.
    for_
        How long the condition must hold before the alert fires (``"5m"``, a ``timedelta``;
        ``"0s"`` fires at once, without a pending state).
    every
        Resample (last value per bucket, see :func:`loglib.metrics_wide`) before evaluating. An
        expression over several series needs aligned timestamps: ``query_range`` exports have
        them; raw scrapes need ``every``.
    max_gap
        Longer than this between two samples of a series, and the series is missing in between:
        the condition is broken, as a missing step breaks a Prometheus ``for`` window. Default:
        1.5 × the series' median sampling interval, i.e. one missing step. ``max_gap="5m"``
        mimics Prometheus' 5-minute lookback on raw scrape data. The resolution (or drop) is
        placed at the first missing step: the last sample + the median interval.
    name
        The ``alert`` column; by default the rule written out (``error_ratio > 0.05 for 5m``).

    Returns
    -------
    polars.DataFrame
        Columns of ``loglib.schema.ALERT_TRANSITIONS`` (``ts``, ``alert``, ``series``, ``state``,
        ``value``, ``active_since``, ``reason``), one row per state change, sorted by series and
        time. An alert still pending or firing at the end of the data has no closing row.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
    >>> ratio = [0.01, 0.07, 0.08, 0.09, 0.02]
    >>> df = pl.DataFrame({"ts": [t0 + timedelta(minutes=i) for i in range(5)],
    ...                    "series": "error_ratio", "value": ratio})
    >>> ll.replay_alert(df, "error_ratio", ">", 0.05, for_="2m").select("ts", "state", "value", "reason")
    shape: (3, 4)
    ┌─────────────────────────┬──────────┬───────┬─────────────────┐
    │ ts                      ┆ state    ┆ value ┆ reason          │
    │ ---                     ┆ ---      ┆ ---   ┆ ---             │
    │ datetime[μs, UTC]       ┆ str      ┆ f64   ┆ str             │
    ╞═════════════════════════╪══════════╪═══════╪═════════════════╡
    │ 2024-03-01 10:01:00 UTC ┆ pending  ┆ 0.07  ┆ condition true  │
    │ 2024-03-01 10:03:00 UTC ┆ firing   ┆ 0.09  ┆ held for 2m     │
    │ 2024-03-01 10:04:00 UTC ┆ resolved ┆ 0.02  ┆ condition false │
    └─────────────────────────┴──────────┴───────┴─────────────────┘
    """
    if op not in OPERATORS:
        msg = f"op={op!r} is not one of {', '.join(map(repr, OPERATORS))}"
        raise ValueError(msg)
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        msg = f"threshold={threshold!r} is not a number"
        raise TypeError(msg) from None
    hold = to_timedelta(for_, argument="for_")
    if hold < timedelta(0):
        msg = f"for_={for_!r} is negative"
        raise ValueError(msg)
    gap = to_timedelta(max_gap, argument="max_gap") if max_gap is not None else None
    if gap is not None and gap <= timedelta(0):
        msg = f"max_gap={max_gap!r} must be positive"
        raise ValueError(msg)
    long, label = _evaluate(frame, expr_or_series, every)
    for_text = for_ if isinstance(for_, str) else str(for_)
    alert = name or f"{label} {op} {threshold:g} for {for_text}"
    return _transitions(long, op, threshold, hold, gap, alert, for_text)


def _transitions(
    long: pl.DataFrame,
    op: str,
    threshold: float,
    hold: timedelta,
    gap: timedelta | None,
    alert: str,
    for_text: str,
) -> pl.DataFrame:
    value = pl.col("value")
    cond = OPERATORS[op](value, threshold)
    cond = (value.is_nan() & pl.lit(op == "!=")) | (~value.is_nan() & cond)
    df = (
        long.filter(pl.col("value").is_not_null())
        .sort("series", "ts")
        .with_columns(dt=pl.col("ts").diff().over("series"))
        .with_columns(step=pl.col("dt").median().over("series"))
    )
    limit = pl.lit(gap) if gap is not None else pl.col("step") * 1.5
    df = df.with_columns(cond=cond, broken=(pl.col("dt") > limit).fill_null(False))
    prev = pl.col("cond").shift(1).over("series").fill_null(False)
    df = df.with_columns(start=pl.col("cond") & (~prev | pl.col("broken")))
    df = df.with_columns(
        run=pl.col("start").cum_sum().over("series"),
        next_ts=pl.col("ts").shift(-1).over("series"),
        next_value=pl.col("value").shift(-1).over("series"),
        next_broken=pl.col("broken").shift(-1).over("series"),
    )
    held = (pl.col("ts") - pl.col("ts").first()) >= hold
    runs = (
        df.filter("cond")
        .group_by("series", "run", maintain_order=True)
        .agg(
            since=pl.col("ts").first(),
            since_value=pl.col("value").first(),
            fire_ts=pl.col("ts").filter(held).first(),
            fire_value=pl.col("value").filter(held).first(),
            last_ts=pl.col("ts").last(),
            next_ts=pl.col("next_ts").last(),
            next_value=pl.col("next_value").last(),
            next_broken=pl.col("next_broken").last(),
            step=pl.col("step").first(),
        )
        .with_columns(fired=pl.col("fire_ts").is_not_null())
    )
    common = [pl.lit(alert).alias("alert"), "series", pl.col("since").alias("active_since")]
    pending = runs.filter(pl.lit(hold > timedelta(0))).select(
        pl.col("since").alias("ts"),
        *common,
        pl.lit("pending").alias("state"),
        pl.col("since_value").alias("value"),
        pl.lit("condition true").alias("reason"),
    )
    firing = runs.filter("fired").select(
        pl.col("fire_ts").alias("ts"),
        *common,
        pl.lit("firing").alias("state"),
        pl.col("fire_value").alias("value"),
        pl.lit(f"held for {for_text}" if hold > timedelta(0) else "condition true").alias("reason"),
    )
    no_data = pl.col("next_broken")
    ended = runs.filter(pl.col("next_ts").is_not_null()).select(
        pl.when(no_data).then(pl.col("last_ts") + pl.col("step")).otherwise(pl.col("next_ts")).alias("ts"),
        *common,
        pl.when("fired").then(pl.lit("resolved")).otherwise(pl.lit("inactive")).alias("state"),
        pl.when(no_data).then(None).otherwise(pl.col("next_value")).alias("value"),
        pl.when(no_data).then(pl.lit("no data")).otherwise(pl.lit("condition false")).alias("reason"),
    )
    order = {"pending": 0, "firing": 1, "inactive": 2, "resolved": 2}
    out = pl.concat([pending, firing, ended], how="vertical_relaxed")
    out = out.sort("series", "ts", pl.col("state").replace_strict(order, return_dtype=pl.Int8))
    return conform(out, ALERT_TRANSITIONS)  # type: ignore[return-value]
