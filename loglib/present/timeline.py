"""The incident timeline (``loglib.timeline``): derived events merged with the human ones, bursts collapsed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from loglib.analysis.series import PoolSeries, firing_spans, pool_series
from loglib.core.schema import UTC_TS
from loglib.core.timeparse import check_tz, to_timedelta
from loglib.formats.pg_messages import PG_EVENT_LABELS
from loglib.present import _data as d

TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    "time": UTC_TS,
    "end": UTC_TS,
    "source": pl.String,
    "event": pl.String,
    "detail": pl.String,
    "count": pl.UInt32,
    "evidence": pl.String,
}


def _hms(t: datetime) -> str:
    return t.strftime("%H:%M:%S")


def _bursts(frame: pl.DataFrame, key: str, gap: timedelta) -> pl.DataFrame:
    """One row per burst of the same ``key``: rows closer than ``gap`` to the previous one join it."""
    if frame.height == 0:
        return pl.DataFrame(
            schema={
                key: pl.String,
                "time": UTC_TS,
                "end": UTC_TS,
                "count": pl.UInt32,
                "evidence": pl.String,
                "sample": pl.String,
                "burst": pl.UInt32,
            }
        )
    if "file" not in frame.columns:
        frame = frame.with_columns(file=pl.lit(None, pl.String), line=pl.lit(None, pl.Int64))
    sample = pl.col("message") if "message" in frame.columns else pl.lit(None, pl.String)
    return (
        frame.sort("ts")
        .with_columns(_new=(pl.col("ts").diff().over(key) > gap).fill_null(True))
        .with_columns(burst=pl.col("_new").cum_sum().over(key).cast(pl.UInt32))
        .group_by(key, "burst", maintain_order=True)
        .agg(
            time=pl.col("ts").first(),
            end=pl.col("ts").last(),
            count=pl.len().cast(pl.UInt32),
            first_ev=d.evidence_expr().first(),
            last_ev=d.evidence_expr().last(),
            sample=sample.first(),
        )
        .with_columns(
            evidence=pl.when(pl.col("count") > 1)
            .then(pl.concat_str(pl.col("first_ev"), pl.lit(" … "), pl.col("last_ev")))
            .otherwise(pl.col("first_ev"))
        )
        .drop("first_ev", "last_ev")
    )


def _burst_detail(count: int, label: str, start: datetime, end: datetime, sample: str | None) -> str:
    head = f"{count} × {label}, {_hms(start)}–{_hms(end)}" if count > 1 else f"{label} at {_hms(start)}"
    return head + (f': "{sample}"' if sample else "")


def _row(
    time: datetime,
    source: str,
    event: str,
    detail: str,
    count: int = 1,
    evidence: str = "",
    end: datetime | None = None,
) -> dict[str, Any]:
    return {
        "time": time,
        "end": end or time,
        "source": source,
        "event": event,
        "detail": detail,
        "count": count,
        "evidence": evidence,
    }


def _app_rows(app: pl.DataFrame, gap: timedelta) -> list[dict[str, Any]]:
    if "error_class" not in app.columns:
        return []
    err = app.filter(pl.col("ts").is_not_null() & pl.col("error_class").is_not_null())
    rows = []
    firsts = set()
    for r in _bursts(err, "error_class", gap).iter_rows(named=True):
        cls = r["error_class"]
        event = f"first {cls}" if cls not in firsts else cls
        firsts.add(cls)
        rows.append(
            _row(
                r["time"],
                "app",
                event,
                _burst_detail(r["count"], cls, r["time"], r["end"], r["sample"]),
                r["count"],
                r["evidence"],
                r["end"],
            )
        )
    if err.height:
        last = err.sort("ts").row(-1, named=True)
        end_of_app = app["ts"].max()
        if end_of_app is not None and end_of_app - last["ts"] > gap:
            quiet = d.format_seconds((end_of_app - last["ts"]).total_seconds())
            ev = d.evidence(last.get("file"), last.get("line"))
            rows.append(
                _row(
                    last["ts"],
                    "app",
                    "recovery",
                    f"last connection error ({last['error_class']}); none in the {quiet} after it",
                    1,
                    ev,
                )
            )
    return rows


def _pg_rows(pg: pl.DataFrame, gap: timedelta) -> list[dict[str, Any]]:
    ev = pg.filter(pl.col("ts").is_not_null() & pl.col("event").is_in(list(PG_EVENT_LABELS)))
    rows = []
    for r in _bursts(ev, "event", gap).iter_rows(named=True):
        label = PG_EVENT_LABELS[r["event"]]
        rows.append(
            _row(
                r["time"],
                "postgres",
                r["event"],
                _burst_detail(r["count"], label, r["time"], r["end"], None),
                r["count"],
                r["evidence"],
                r["end"],
            )
        )
    return rows


def _pgbouncer_rows(frame: pl.DataFrame, holder: Any, gap: timedelta) -> list[dict[str, Any]]:
    """One row per pgBouncer restart (or final stop) and per burst of pooler errors. ``holder``
    (an Incident or Evidence) shares its cached ``pgbouncer_processes``; else ``frame`` is used."""
    from loglib.analysis.pgbouncer import pgbouncer_processes

    cached = holder is not None and (hasattr(holder, "evidence") or hasattr(holder, "cached"))
    procs = pgbouncer_processes(holder if cached else frame).sort("process").to_dicts()
    rows = []
    for p, nxt in zip(procs, [*procs[1:], None], strict=True):
        if p["stopped"] is None:
            continue
        dropped = f"{p['clients_dropped']} client and {p['servers_dropped']} server connection(s) dropped"
        how = {"killed": "killed (no shutdown line)", "failed": "failed to start"}.get(
            p["stopped"], p["stopped"]
        )
        stop = p["end"] or p["start"]
        up = None if nxt is None else nxt["start"]
        if up is None:
            detail = f"pgBouncer (pid {p['pid']}) stopped {how}: {p['stop_reason']}; {dropped}"
            rows.append(
                _row(stop, "pgbouncer", "pgbouncer stopped", detail, 1, d.evidence(p["file"], p["line"]))
            )
            continue
        detail = (
            f"pgBouncer restarted: stopped {how} at {_hms(stop)} ({p['stop_reason']}), up again at "
            f"{_hms(up)} ({nxt['version']}); {dropped}"
        )
        ev = d.evidence(nxt["file"], nxt["line"])
        rows.append(_row(stop, "pgbouncer", "pgbouncer restart", detail, 1, ev, max(stop, up)))
    errors = frame.filter((pl.col("event") == "pooler_error") & pl.col("ts").is_not_null())
    for r in _bursts(errors.with_columns(pl.col("reason").fill_null("")), "reason", gap).iter_rows(
        named=True
    ):
        label = f"pgBouncer pooler error ({r['reason']})"
        detail = _burst_detail(r["count"], label, r["time"], r["end"], None)
        rows.append(_row(r["time"], "pgbouncer", "pooler_error", detail, r["count"], r["evidence"], r["end"]))
    return rows


def _declared_rows(events: pl.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in events.filter(pl.col("ts").is_not_null()).sort("ts").iter_rows(named=True):
        origin = r.get("origin") or "declared"
        source = "incident.toml" if origin == "declared" else (r.get("source") or origin)
        ev = "incident.toml" if origin == "declared" else d.evidence(r.get("file"), r.get("line"))
        rows.append(_row(r["ts"], source, r.get("kind") or "note", r.get("text") or "", 1, ev))
    return rows


def _alert_rows(alerts: pl.DataFrame | None, metrics: pl.DataFrame | None) -> list[dict[str, Any]]:
    spans = firing_spans(alerts=alerts, metrics=metrics)
    rows = []
    for s in spans:
        rows.append(_row(s.start, "alert", "alert fired", f"{s.name} firing", 1, s.evidence))
        if s.end is not None:
            took = d.format_seconds((s.end - s.start).total_seconds())
            rows.append(
                _row(s.end, "alert", "alert resolved", f"{s.name} resolved after {took}", 1, s.evidence)
            )
    return rows


def _pool_rows(pools: list[PoolSeries]) -> list[dict[str, Any]]:
    rows = []
    for p in pools:
        if not p.size:
            continue
        cap = p.size + (p.overflow or 0)
        f = p.frame.with_columns(full=pl.col("value") >= cap)
        f = f.with_columns(run=(pl.col("full") != pl.col("full").shift(1)).fill_null(True).cum_sum())
        runs = f.group_by("run", maintain_order=True).agg(
            pl.col("full").first(),
            start=pl.col("ts").first(),
            until=pl.col("ts").last(),
            file=pl.col("file").first(),
        )
        nxt = runs["start"].shift(-1)
        for r, after in zip(runs.iter_rows(named=True), nxt.to_list(), strict=True):
            if not r["full"]:
                continue
            stop = after or r["until"]
            held = d.format_seconds((stop - r["start"]).total_seconds())
            detail = (
                f"{p.name}: {cap:g} of {p.size:g}+{(p.overflow or 0):g} connections checked out for {held}"
            )
            rows.append(
                _row(r["start"], "prometheus", "pool reached capacity", detail, 1, f"series {p.series}", stop)
            )
            if after is not None:
                rows.append(
                    _row(
                        after,
                        "prometheus",
                        "pool below capacity",
                        f"{p.name}: connections free again",
                        1,
                        f"series {p.series}",
                    )
                )
    return rows


def timeline(
    incident: Any = None,
    *,
    app: Any = None,
    pg: Any = None,
    metrics: Any = None,
    events: Any = None,
    alerts: Any = None,
    pgbouncer: Any = None,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    burst_gap: str | timedelta = "60s",
    tz: str | None = None,
) -> pl.DataFrame:
    """The incident's timeline: derived events merged with the human ones, one row per burst.

    Derived events: the first error of each ``error_class`` and every later burst of it, the
    recovery (the last connection error, when quiet followed), PostgreSQL refusals, resets and
    terminations, restarts and deploys (found in the logs), alerts fired and resolved, the
    pool reaching (and leaving) capacity, and pgBouncer restarts (how it stopped, what it
    dropped) and pooler errors. Human events come from ``incident.toml`` (source
    ``incident.toml``).

    Parameters
    ----------
    incident
        An :class:`~loglib.Incident` (or an object with ``app``, ``pg``, ``metrics``, ``events``).
    app, pg, metrics, events, alerts, pgbouncer
        Frames that override or stand in for the incident's (polars or pandas). ``alerts`` is a
        :func:`loglib.replay_alert` frame; default: Prometheus' own ``ALERTS`` series.
        ``pgbouncer`` is a ``read_pgbouncer_log`` frame.
    pool_size, max_overflow
        For "pool reached capacity"; default: the incident's ``[app]`` or the ``*pool_size*``
        series.
    burst_gap
        Events of the same kind closer than this are one row ("37 × pool_timeout,
        09:30:12–09:34:50").
    tz
        An IANA zone (``"Europe/Berlin"``): adds ``time_local`` (times stay UTC in ``time``).

    Returns
    -------
    polars.DataFrame
        ``time`` (UTC), [``time_local``], ``end``, ``source``, ``event``, ``detail``, ``count``,
        ``evidence`` (``file:line``, ``first … last`` for a burst, or the series), sorted by time.

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2024, 3, 1, 9, 30, 12, tzinfo=UTC)
    >>> app = pl.DataFrame({"ts": [t0 + timedelta(seconds=7 * i) for i in range(37)] + [t0 + timedelta(hours=1)],
    ...                     "error_class": ["pool_timeout"] * 37 + [None], "message": "QueuePool limit reached",
    ...                     "file": "app.log", "line": list(range(1, 39))})
    >>> ll.timeline(app=app)["detail"][0]
    '37 × pool_timeout, 09:30:12–09:34:24: "QueuePool limit reached"'
    """
    f = d.unpack(incident, "app", app=app, pg=pg, metrics=metrics, events=events, pgbouncer=pgbouncer)
    inc = f["incident"]
    gap = to_timedelta(burst_gap, argument="burst_gap")
    rows: list[dict[str, Any]] = []
    if f["app"] is not None:
        rows += _app_rows(f["app"], gap)
    if f["pg"] is not None and "event" in f["pg"].columns:
        rows += _pg_rows(f["pg"], gap)
    if f.get("pgbouncer") is not None and f["pgbouncer"].height:
        rows += _pgbouncer_rows(f["pgbouncer"], inc if pgbouncer is None else None, gap)
    if f.get("events") is not None and f["events"].height:
        rows += _declared_rows(f["events"])
    rows += _alert_rows(d.frame_or_none(alerts), f["metrics"])
    rows += _pool_rows(pool_series(d.evidence_of(f), pool_size=pool_size, max_overflow=max_overflow))
    out = pl.DataFrame(rows, schema=TIMELINE_SCHEMA) if rows else pl.DataFrame(schema=TIMELINE_SCHEMA)
    order = {"incident.toml": 0, "alert": 1, "prometheus": 2, "postgres": 3, "pgbouncer": 4, "app": 5}
    out = out.sort(
        pl.col("time"),
        pl.col("source").replace_strict(order, default=6, return_dtype=pl.Int8),
        maintain_order=True,
    )
    if tz is not None:
        zone = check_tz(tz)
        out = out.with_columns(pl.col("time").dt.convert_time_zone(zone).alias("time_local")).select(
            "time", "time_local", *[c for c in TIMELINE_SCHEMA if c != "time"]
        )
    return out
