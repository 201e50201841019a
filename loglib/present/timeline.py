"""The incident timeline (``loglib.timeline``): derived events merged with the human ones, bursts collapsed."""

from __future__ import annotations

import re
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
    "what": pl.String,
    "action": pl.String,
}


def _hms(t: datetime) -> str:
    return t.strftime("%H:%M:%S")


def span_text(seconds: float) -> str:
    """A span for people, to the second: ``52 s``, ``2 min 52 s``, ``1 h 3 min``.

    >>> span_text(172), span_text(52), span_text(3780), span_text(120)
    ('2 min 52 s', '52 s', '1 h 3 min', '2 min')
    """
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(total, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")


def _relative(root: Any) -> pl.Expr:
    """``file`` relative to the incident folder ``root`` when under it, else its last two parts."""
    short = pl.col("file").cast(pl.String).str.extract(r"([^\\/]*[\\/]?[^\\/]+)$", 1)
    if root is None:
        return short
    prefix = str(root).rstrip("/\\") + "/"
    under = pl.col("file").cast(pl.String).str.starts_with(prefix)
    return pl.when(under).then(pl.col("file").cast(pl.String).str.slice(len(prefix))).otherwise(short)


def _evidence_expr(root: Any) -> pl.Expr:
    where = _relative(root)
    return (
        pl.when(pl.col("line").is_not_null())
        .then(pl.concat_str(where, pl.lit(":"), pl.col("line").cast(pl.String)))
        .otherwise(where)
    )


def _evidence_of(file: Any, line: Any, root: Any) -> str:
    if file is None:
        return ""
    frame = pl.DataFrame({"file": [str(file)], "line": [line]}, schema={"file": pl.String, "line": pl.Int64})
    return frame.select(_evidence_expr(root)).item() or ""


def short_series(series: str | None) -> str:
    """A series as a reader needs it: the metric and the one label that tells it apart.

    >>> short_series('ALERTS{alertname="Checkout503s", alertstate="firing", severity="page"}')
    'ALERTS{alertname="Checkout503s"}'
    >>> short_series('db_pool_checked_out{instance="127.0.0.1:33739", job="checkout-api"}')
    'db_pool_checked_out{instance="127.0.0.1:33739"}'
    """
    if not series:
        return ""
    metric, brace, labels = series.partition("{")
    if not brace:
        return series
    for key in ("alertname", "pool", "instance_name", "pod", "instance", "job"):
        m = re.search(rf'\b{key}="([^"]*)"', labels)
        if m:
            return f'{metric}{{{key}="{m.group(1)}"}}'
    return metric


def _bursts(frame: pl.DataFrame, key: str, gap: timedelta, root: Any = None) -> pl.DataFrame:
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
            first_ev=_evidence_expr(root).first(),
            last_ev=_evidence_expr(root).last(),
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


def _burst_what(count: int, label: str, start: datetime, end: datetime, sample: str | None) -> str:
    """The burst for a document whose Time cell holds the span: count, label, length, a sample."""
    seconds = (end - start).total_seconds()
    took = (f" in {span_text(seconds)}" if seconds >= 1 else " within 1 s") if count > 1 else ""
    head = f"{count} × {label}{took}" if count > 1 else label
    return head + (f': "{sample}"' if sample else "")


def _row(
    time: datetime,
    source: str,
    event: str,
    detail: str,
    count: int = 1,
    evidence: str = "",
    end: datetime | None = None,
    what: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    return {
        "time": time,
        "end": end or time,
        "source": source,
        "event": event,
        "detail": detail,
        "count": count,
        "evidence": evidence,
        "what": detail if what is None else what,
        "action": action,
    }


def _app_rows(app: pl.DataFrame, gap: timedelta, root: Any = None) -> list[dict[str, Any]]:
    if "error_class" not in app.columns:
        return []
    err = app.filter(pl.col("ts").is_not_null() & pl.col("error_class").is_not_null())
    rows = []
    firsts = set()
    for r in _bursts(err, "error_class", gap, root).iter_rows(named=True):
        cls = r["error_class"]
        event = f"first {cls}" if cls not in firsts else cls
        first = cls not in firsts
        firsts.add(cls)
        args = (r["count"], cls, r["time"], r["end"], r["sample"])
        what = _burst_what(*args)
        rows.append(
            _row(
                r["time"],
                "app",
                event,
                _burst_detail(*args),
                r["count"],
                r["evidence"],
                r["end"],
                what=f"first {what}" if first and r["count"] == 1 else what,
            )
        )
    if err.height:
        last = err.sort("ts").row(-1, named=True)
        end_of_app = app["ts"].max()
        if end_of_app is not None and end_of_app - last["ts"] > gap:
            quiet = d.format_seconds((end_of_app - last["ts"]).total_seconds())
            ev = _evidence_of(last.get("file"), last.get("line"), root)
            rows.append(
                _row(
                    last["ts"],
                    "app",
                    "recovery",
                    f"last database error ({last['error_class']}); none in the {quiet} after it",
                    1,
                    ev,
                )
            )
    return rows


def _pg_rows(pg: pl.DataFrame, gap: timedelta, root: Any = None) -> list[dict[str, Any]]:
    ev = pg.filter(pl.col("ts").is_not_null() & pl.col("event").is_in(list(PG_EVENT_LABELS)))
    rows = []
    for r in _bursts(ev, "event", gap, root).iter_rows(named=True):
        label = PG_EVENT_LABELS[r["event"]]
        args = (r["count"], label, r["time"], r["end"], None)
        rows.append(
            _row(
                r["time"],
                "postgres",
                r["event"],
                _burst_detail(*args),
                r["count"],
                r["evidence"],
                r["end"],
                what=f"PostgreSQL: {_burst_what(*args)}",
            )
        )
    return rows


def _detected(events: pl.DataFrame | None, p: dict[str, Any]) -> dict[str, Any] | None:
    """The restart or stop event ``detect_events`` made of pgBouncer process ``p`` (origin
    ``pgbouncer``, stamped within the process's life: at its shutdown line, or for a killed one
    where PostgreSQL saw its server sessions end), or None."""
    if events is None or not events.height or p["end"] is None:
        return None
    lo = p["start"] or p["end"]
    mine = events.filter(
        (pl.col("origin") == "pgbouncer") & pl.col("ts").is_between(lo, p["end"]) & pl.col("ts").is_not_null()
    )
    return mine.sort("ts").row(-1, named=True) if mine.height else None


def _both(*evidence: str) -> str:
    """Evidence cells of one event seen twice, once each, in order."""
    return ", ".join(dict.fromkeys(e for e in evidence if e))


def _pgbouncer_rows(
    frame: pl.DataFrame, holder: Any, gap: timedelta, root: Any = None, events: pl.DataFrame | None = None
) -> tuple[list[dict[str, Any]], set[int]]:
    """One row per pgBouncer restart (or final stop) and per burst of pooler errors. ``holder``
    (an Incident or Evidence) shares its cached ``pgbouncer_processes``; else ``frame`` is used.

    A restart ``detect_events`` found too (an ``events`` row of origin ``pgbouncer``) is this same
    row: stamped at the event's time (a killed pgBouncer: when PostgreSQL saw its server sessions
    end), with both evidence cells. Returns the rows and the ``_i`` of the events they took in."""
    from loglib.analysis.pgbouncer import pgbouncer_processes

    cached = holder is not None and (hasattr(holder, "evidence") or hasattr(holder, "cached"))
    procs = pgbouncer_processes(holder if cached else frame).sort("process").to_dicts()
    rows = []
    merged: set[int] = set()
    for p, nxt in zip(procs, [*procs[1:], None], strict=True):
        if p["stopped"] is None:
            continue
        dropped = f"{p['clients_dropped']} client and {p['servers_dropped']} server connection(s) dropped"
        how = {"killed": "killed (no shutdown line)", "failed": "failed to start"}.get(
            p["stopped"], p["stopped"]
        )
        stop = p["end"] or p["start"]
        seen = _detected(events, p)
        seen_ev, when = "", ""
        if seen is not None:
            merged.add(seen["_i"])
            seen_ev = _evidence_of(seen["file"], seen["line"], root)
            if seen["ts"] < stop:
                when = ", when PostgreSQL saw its server sessions end"
            stop = seen["ts"]
        up = None if nxt is None else nxt["start"]
        if up is None:
            detail = f"pgBouncer (pid {p['pid']}) stopped {how}{when}: {p['stop_reason']}; {dropped}"
            ev = _both(seen_ev, _evidence_of(p["file"], p["line"], root))
            rows.append(_row(stop, "pgbouncer", "pgbouncer stopped", detail, 1, ev))
            continue
        detail = (
            f"pgBouncer restarted: stopped {how} at {_hms(stop)}{when} ({p['stop_reason']}), up again at "
            f"{_hms(up)} ({nxt['version']}); {dropped}"
        )
        ev = _both(seen_ev, _evidence_of(nxt["file"], nxt["line"], root))
        rows.append(_row(stop, "pgbouncer", "pgbouncer restart", detail, 1, ev, max(stop, up)))
    errors = frame.filter((pl.col("event") == "pooler_error") & pl.col("ts").is_not_null())
    reasons = errors.with_columns(pl.col("reason").fill_null(""))
    for r in _bursts(reasons, "reason", gap, root).iter_rows(named=True):
        args = (r["count"], f"pgBouncer pooler error ({r['reason']})", r["time"], r["end"], None)
        rows.append(
            _row(
                r["time"],
                "pgbouncer",
                "pooler_error",
                _burst_detail(*args),
                r["count"],
                r["evidence"],
                r["end"],
                what=_burst_what(*args),
            )
        )
    return rows, merged


def _declared_rows(events: pl.DataFrame, root: Any = None) -> list[dict[str, Any]]:
    rows = []
    for r in events.filter(pl.col("ts").is_not_null()).sort("ts").iter_rows(named=True):
        origin = r.get("origin") or "declared"
        source = "incident.toml" if origin == "declared" else (r.get("source") or origin)
        ev = "incident.toml" if origin == "declared" else _evidence_of(r.get("file"), r.get("line"), root)
        kind = r.get("kind") or "note"
        text = r.get("text") or ""
        what = f"Fix: {text}" if kind == "fix" and not text.lower().startswith("fix") else text
        action = r.get("action")
        if r.get("owner"):
            action = f"{action} (owner: {r['owner']})" if action else f"owner: {r['owner']}"
        rows.append(_row(r["ts"], source, kind, text, 1, ev, what=what, action=action))
    return rows


def _merge_runs(
    runs: list[tuple[datetime, datetime]], debounce: timedelta
) -> list[list[tuple[datetime, datetime]]]:
    """Runs ``(start, stop)`` in time order, grouped where the pause between two is under ``debounce``."""
    groups: list[list[tuple[datetime, datetime]]] = []
    for run in runs:
        if groups and run[0] - groups[-1][-1][1] < debounce:
            groups[-1].append(run)
        else:
            groups.append([run])
    return groups


def _span_note(group: list[tuple[datetime, datetime]]) -> str:
    """How the runs of a debounced span add up: "; in 3 runs, 2 min 40 s in all"."""
    if len(group) == 1:
        return ""
    held = sum((b - a).total_seconds() for a, b in group)
    return f"; {len(group)} runs, {span_text(held)} in all"


def _alert_rows(
    alerts: pl.DataFrame | None, metrics: pl.DataFrame | None, debounce: timedelta
) -> list[dict[str, Any]]:
    """One row per firing span of each alert; re-fires within ``debounce`` of the last are the same span."""
    spans = firing_spans(alerts=alerts, metrics=metrics)
    by_alert: dict[tuple[str, str], list[Any]] = {}
    for s in sorted(spans, key=lambda s: s.start):
        by_alert.setdefault((s.name, s.evidence), []).append(s)
    rows = []
    for (name, evidence), group in by_alert.items():
        open_end = group[-1].end is None
        runs = [(s.start, s.end or s.start) for s in group]
        merged = _merge_runs(runs, debounce)
        short = short_series(evidence.removeprefix("series ").removeprefix("replay_alert series "))
        short = f"series {short}" if evidence.startswith("series") else evidence
        for n, g in enumerate(merged):
            start, stop = g[0][0], g[-1][1]
            still = open_end and n == len(merged) - 1
            took = span_text((stop - start).total_seconds())
            if still:
                detail = f"{name} firing from {_hms(start)}, still firing at the end of the evidence"
                what = f"alert {name} firing, still firing at the end of the evidence"
            else:
                detail = f"{name} firing {_hms(start)}–{_hms(stop)} ({took}{_span_note(g)})"
                what = f"alert {name} firing ({took}{_span_note(g)})"
            rows.append(_row(start, "alert", "alert firing", detail, len(g), short, stop, what=what))
    return rows


def _pool_rows(pools: list[PoolSeries], debounce: timedelta) -> list[dict[str, Any]]:
    """One row per span at capacity (``pool_size + max_overflow`` checked out); pauses shorter than
    ``debounce`` do not end a span (a pool flapping at its limit is one span, its runs counted)."""
    rows = []
    for p in pools:
        if not p.size:
            continue
        cap = p.size + (p.overflow or 0)
        f = p.frame.with_columns(full=pl.col("value") >= cap)
        f = f.with_columns(run=(pl.col("full") != pl.col("full").shift(1)).fill_null(True).cum_sum())
        runs = f.group_by("run", maintain_order=True).agg(
            pl.col("full").first(), start=pl.col("ts").first(), until=pl.col("ts").last()
        )
        runs = runs.with_columns(stop=pl.col("start").shift(-1).fill_null(pl.col("until")))
        full = [(r["start"], r["stop"]) for r in runs.filter(pl.col("full")).iter_rows(named=True)]
        limit = f"{cap:g} of {p.size:g}+{(p.overflow or 0):g} connections checked out"
        who = f"{p.name}: " if len(pools) > 1 else ""
        for g in _merge_runs(full, debounce):
            start, stop = g[0][0], g[-1][1]
            took = span_text((stop - start).total_seconds())
            detail = f"{p.name}: pool at capacity {_hms(start)}–{_hms(stop)} ({took}{_span_note(g)}); {limit}"
            what = f"{who}pool at capacity ({took}{_span_note(g)}): {limit}"
            rows.append(
                _row(
                    start,
                    "prometheus",
                    "pool at capacity",
                    detail,
                    len(g),
                    f"series {short_series(p.series)}",
                    stop,
                    what=what,
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
    debounce: str | timedelta = "30s",
    tz: str | None = None,
) -> pl.DataFrame:
    """The incident's timeline: derived events merged with the human ones, one row per burst.

    Derived events: the first error of each ``error_class`` and every later burst of it, the
    recovery (the last database error of any class, when quiet followed), PostgreSQL refusals, resets and
    terminations, restarts and deploys (found in the logs), each alert's firing span, each span
    of the pool at capacity, and pgBouncer restarts (how it stopped, what it dropped) and pooler
    errors. Human events come from ``incident.toml`` (source ``incident.toml``), with their
    ``action`` and ``owner``.

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
    debounce
        States (pool at capacity, an alert firing) that pause for less than this are one span
        ("pool at capacity 22:41:10–22:44:02 (2 min 52 s; 14 runs …)"); ``"0s"``: every run is
        its own row.
    tz
        An IANA zone (``"Europe/Berlin"``): adds ``time_local`` (times stay UTC in ``time``).

    Returns
    -------
    polars.DataFrame
        ``time`` (UTC), [``time_local``], ``end`` (the same as ``time`` for a moment), ``source``,
        ``event``, ``detail``, ``count``, ``evidence`` (``file:line`` relative to the incident
        folder, ``first … last`` for a burst, or the series), ``what`` (the event in words for a
        document whose time cell holds the span: :func:`loglib.timeline_table`) and ``action``
        (incident.toml's ``action``, with its ``owner``), sorted by time.

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
    calm = to_timedelta(debounce, argument="debounce")
    root = getattr(inc, "root", None)
    rows: list[dict[str, Any]] = []
    if f["app"] is not None:
        rows += _app_rows(f["app"], gap, root)
    if f["pg"] is not None and "event" in f["pg"].columns:
        rows += _pg_rows(f["pg"], gap, root)
    events = f.get("events")
    events = events.with_row_index("_i") if events is not None and events.height else None
    if f.get("pgbouncer") is not None and f["pgbouncer"].height:
        # a pgBouncer restart is one row: its process, and the event detect_events made of it
        found, merged = _pgbouncer_rows(f["pgbouncer"], inc if pgbouncer is None else None, gap, root, events)
        rows += found
        if events is not None and merged:
            events = events.filter(~pl.col("_i").is_in(sorted(merged)))
    if events is not None and events.height:
        rows += _declared_rows(events.drop("_i"), root)
    rows += _alert_rows(d.frame_or_none(alerts), f["metrics"], calm)
    pools = pool_series(d.evidence_of(f), pool_size=pool_size, max_overflow=max_overflow)
    rows += _pool_rows(pools, calm)
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
