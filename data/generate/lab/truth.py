"""``truth.json`` from the lab's own event streams, never from the logs loglib reads.

Inputs (JSON lines in one folder): ``app-N.jsonl`` (each process of slot N: start, stop,
requests, checkouts, checkins, leaks), ``orchestrator.jsonl`` (starts, stops with their
signal, PostgreSQL restarts, actions), ``client.jsonl`` (the load driver's view of each
request) and ``proxy.jsonl`` (each middlebox drop with the connection's idle age).

Definitions (the lab README repeats them):

* a **leak** is counted at the time the app abandoned the connection, bucketed by UTC hour;
  the overall rate divides by the app's run time (first process start to last process end);
* a **restart** is an orchestrator action that stopped and started app processes (operator
  restart, crash, deploy); ``app_line_at`` is the app's own line: the stop line of the first
  process stopped by SIGTERM, or the start line of the first replacement after a SIGKILL. The
  final stop is not a restart. A PostgreSQL restart is its own moment (``db_restarts``), and
  so is a pgBouncer restart (``pooler_restarts``: stop with its signal, ready again);
* a **pool-exhaustion window** is a span where some process had every connection checked out
  and requests failed for it (overlapping spans of several processes are one window);
* **errors after an action** are requests that failed with a database error (not pool
  timeouts) from 1 s before the action until 30 s after its last replacement process answered
  (or 1 s before the next action); the **baseline** counts them in the span before it as long
  as the span to the next action, strictly after the previous action's last error;
* **demand** is the mean number of connections held by requests (leaked checkouts excluded)
  outside the exhaustion windows: the sum of hold times over that time.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

#: full spans closer than this (s) are one exhaustion window (the pool flickering at capacity)
MERGE_GAP = 5.0
#: a checkin handed straight to a waiting request dips below capacity for this long at most (s)
HANDOFF_GAP = 0.1
#: errors up to this long after an action's last replacement answered are still the action's (s)
SETTLE_S = 30.0
#: the finding thresholds: pool timeouts, errors after one action, middlebox drops, leaks
MIN_POOL_TIMEOUTS = 3
MIN_DEPLOY_ERRORS = 2
MIN_DROPS = 3
#: leaks that make a finding of their own when the pool never ran out (too few pool timeouts)
MIN_LEAKS = 3


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}Z"


def hour(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file (``.jsonl`` or ``.jsonl.gz``); none when it is missing."""
    if not path.exists():
        gz = path.with_name(path.name + ".gz")
        if not gz.exists():
            return []
        path = gz
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def _lifetimes(app: list[dict], orch: list[dict]) -> dict[int, dict]:
    """Per pid: slot, start, end and how it ended (SIGTERM, SIGKILL)."""
    life: dict[int, dict] = {}
    for e in app:
        if e["ev"] == "process_start":
            life[e["pid"]] = {"proc": e["proc"], "start": e["t"], "end": None, "how": None, "stop_line": None}
        elif e["ev"] == "stop_requested" and e["pid"] in life:
            life[e["pid"]].update(stop_line=e["t"], how=e["signal"])
        elif e["ev"] == "process_stop" and e["pid"] in life:
            life[e["pid"]]["end"] = e["t"]
    kills = [e for e in orch if e["ev"] == "stop" and e["signal"] == "SIGKILL"]
    for pid, lt in life.items():
        if lt["end"] is None:  # killed: it ended at the orchestrator's SIGKILL of its slot
            k = next((e["t"] for e in kills if e["proc"] == lt["proc"] and e["t"] >= lt["start"]), None)
            lt.update(end=k, how="SIGKILL")
        _ = pid
    return life


def _full_spans(app: list[dict], life: dict[int, dict], capacity: int) -> list[tuple[float, float, int]]:
    """(start, end, pid) where a process had ``capacity`` connections checked out."""
    spans = []
    by_pid: dict[int, list[dict]] = defaultdict(list)
    for e in app:
        if e["ev"] in ("checkout", "checkin"):
            by_pid[e["pid"]].append(e)
    for pid, evs in by_pid.items():
        since = None
        for e in evs:
            if e["out"] >= capacity and since is None:
                since = e["t"]
            elif e["out"] < capacity and since is not None:
                spans.append((since, e["t"], pid))
                since = None
        if since is not None:
            spans.append((since, life.get(pid, {}).get("end") or evs[-1]["t"], pid))
    return sorted(spans)


def _merge(spans: list[tuple[float, float]], gap: float) -> list[list[float]]:
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _windows(spans: list[tuple[float, float, int]], timeouts: list[dict], wait: float) -> list[dict]:
    """Exhaustion windows: a process's full spans joined across hand-offs (a checkin straight to a
    waiter, ``HANDOFF_GAP``), kept when full for at least ``wait`` (the pool timeout: long enough
    for a request to fail), then merged across processes and gaps under ``MERGE_GAP``; kept when
    a request failed for want of a connection while waiting in it."""
    by_pid: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for a, b, pid in spans:
        by_pid[pid].append((a, b))
    sustained = [(a, b) for ss in by_pid.values() for a, b in _merge(ss, HANDOFF_GAP) if b - a >= wait * 0.9]
    out = []
    for a, b in _merge(sustained, MERGE_GAP):
        ts = sorted(r["t"] for r in timeouts if r["t"] - wait <= b and r["t"] >= a)
        if ts:
            out.append(
                {
                    "start": iso(a),
                    "end": iso(b),
                    "seconds": round(b - a, 3),
                    "pool_timeouts": len(ts),
                    "first_failure": iso(ts[0]),
                    "last_failure": iso(ts[-1]),
                }
            )
    return out


def _restarts(
    orch: list[dict], life: dict[int, dict]
) -> tuple[list[dict], list[dict], list[dict], dict | None]:
    actions = [e for e in orch if e["ev"] == "action"]
    stops = [e for e in orch if e["ev"] == "stop" and e["why"] not in ("end of recording", "cleanup")]
    starts = sorted((lt["start"], lt["proc"]) for lt in life.values())
    lines = sorted((lt["stop_line"], lt["proc"]) for lt in life.values() if lt["stop_line"])
    restarts = []
    for k, a in enumerate(actions):
        nxt = actions[k + 1]["t"] if k + 1 < len(actions) else float("inf")
        mine = [s for s in stops if a["t"] <= s["t"] < nxt]
        if not mine:
            continue
        first = mine[0]
        if first["signal"] == "SIGTERM":
            line = next((t for t, p in lines if p == first["proc"] and t >= first["t"]), None)
        else:
            line = next((t for t, p in starts if p == first["proc"] and t >= first["t"]), None)
        start_line = next((t for t, p in starts if p == first["proc"] and t >= first["t"]), None)
        back = [next((t for t, p in starts if p == s["proc"] and t >= s["t"]), s["t"]) for s in mine]
        restarts.append(
            {
                "at": iso(first["t"]),
                "kind": a["kind"],
                "signal": first["signal"],
                "processes": len(mine),
                "app_line_at": iso(line),
                "last_start_line_at": iso(max(back)),
                "start_line_at": iso(start_line),
                "text": a.get("version") or a.get("how") or a["kind"],
            }
        )
    db = []
    for e in orch:
        if e["ev"] == "db_stop":
            ready = next((x["t"] for x in orch if x["ev"] == "db_ready" and x["t"] > e["t"]), None)
            db.append({"at": iso(e["t"]), "ready": iso(ready)})
    pooler = []
    for e in orch:
        if e["ev"] == "pooler_stop" and e.get("why") != "end of recording":
            ready = next((x["t"] for x in orch if x["ev"] == "pooler_ready" and x["t"] > e["t"]), None)
            pooler.append({"at": iso(e["t"]), "signal": e["signal"], "ready": iso(ready)})
    final = [e for e in orch if e["ev"] == "stop" and e["why"] == "end of recording"]
    final_stop = None
    if final:
        line = next((t for t, _p in lines if t >= final[0]["t"]), None)
        final_stop = {"at": iso(final[0]["t"]), "app_line_at": iso(line)}
    return restarts, db, pooler, final_stop


def _after_actions(orch: list[dict], ends: list[dict], stop: float) -> list[dict]:
    actions = [e for e in orch if e["ev"] == "action"]
    db_errors = sorted(r["t"] for r in ends if r["outcome"] == "db_error")
    out, settled = [], None
    for k, a in enumerate(actions):
        at = a["t"]
        until = actions[k + 1]["t"] - 1 if k + 1 < len(actions) else stop
        # the action is over when its last replacement process answers; errors later are not its own
        done = max((e["t"] for e in orch if e["ev"] == "ready" and at <= e["t"] < until), default=at)
        errs = [t for t in db_errors if at - 1 <= t < min(until, done + SETTLE_S)]
        span = until - at
        since = at - span if settled is None else max(at - span, settled)
        # strictly after the previous action's last error: that error is the previous action's
        before = [t for t in db_errors if since <= t < at - 1 and (settled is None or t > settled)]
        if errs:
            settled = errs[-1]
        out.append(
            {
                "at": iso(at),
                "kind": a["kind"],
                "version": a.get("version"),
                "signal": a.get("signal"),
                "db_restart": a.get("db_restart", False),
                "pooler_restart": a.get("pooler_restart", False) or a["kind"] == "pooler_restart",
                "errors": len(errs),
                "baseline_errors": len(before),
                "recovery_s": round(errs[-1] - at, 3) if errs else 0.0,
                "last_error": iso(errs[-1]) if errs else None,
            }
        )
    return out


def _demand(app: list[dict], windows: list[dict], run: tuple[float, float]) -> dict:
    open_: dict[tuple[int, int], float] = {}
    holds = []
    for e in app:
        key = (e["pid"], e["conn"]) if "conn" in e else None
        if e["ev"] == "checkout":
            open_[key] = e["t"]
        elif e["ev"] == "checkin" and key in open_:
            holds.append((open_.pop(key), e["t"]))
    spans = [
        (datetime.fromisoformat(w["start"]).timestamp(), datetime.fromisoformat(w["end"]).timestamp())
        for w in windows
    ]
    outside = [(a, b) for a, b in holds if not any(s <= a <= e for s, e in spans)]
    full = sum(e - s for s, e in spans)
    busy_time = (run[1] - run[0]) - full
    total_hold = sum(b - a for a, b in outside)
    return {
        "checkouts": len(outside),
        "mean_hold_s": round(total_hold / len(outside), 4) if outside else None,
        "checkouts_per_s": round(len(outside) / busy_time, 4) if busy_time > 0 else None,
        "mean_busy": round(total_hold / busy_time, 4) if busy_time > 0 else None,
        "never_checked_in": len(open_),
    }


def build_truth(sc, folder: Path, *, window: tuple[float, float]) -> dict:
    """Everything the harness compares, from the streams in ``folder``; ``sc`` is the Scenario."""
    files = sorted(folder.glob("app-*.jsonl*"))
    app = sorted((e for p in files for e in read_jsonl(p)), key=lambda e: e["t"])
    orch = read_jsonl(folder / "orchestrator.jsonl")
    client = read_jsonl(folder / "client.jsonl")
    drops = read_jsonl(folder / "proxy.jsonl")
    life = _lifetimes(app, orch)
    run = (min(lt["start"] for lt in life.values()), max(lt["end"] or lt["start"] for lt in life.values()))
    ends = [e for e in app if e["ev"] == "req_end"]
    status = Counter(str(e["status"]) for e in ends)
    outcome = Counter(e["outcome"] for e in ends)
    failed = sum(1 for e in ends if e["status"] >= 500)
    leaks = [e for e in app if e["ev"] == "leak"]
    db_stops = [e["t"] for e in orch if e["ev"] == "db_stop"]
    pooler_stops = [e["t"] for e in orch if e["ev"] == "pooler_stop"]
    for lk in leaks:
        exit_t = life.get(lk["pid"], {}).get("end")
        db_t = next((t for t in db_stops if t > lk["t"]), None)
        dropped = next((d for d in drops if d.get("app_port") == lk.get("port") and d["t"] > lk["t"]), None)
        pooler_t = next((t for t in pooler_stops if t > lk["t"]), None)
        cands = [(exit_t, "app_exit"), (db_t, "db_restart"), (dropped["t"] if dropped else None, "middlebox"),
                 (pooler_t, "pooler_restart")]  # fmt: skip
        lk["ended"] = min(((t, why) for t, why in cands if t is not None), default=(None, "open"))
    per_hour = Counter(hour(e["t"]) for e in leaks)
    run_h = (run[1] - run[0]) / 3600
    spans = _full_spans(app, life, sc.capacity)
    timeouts = [e for e in ends if e["outcome"] == "pool_timeout"]
    windows = _windows(spans, timeouts, wait=sc.pool_timeout)
    restarts, db_restarts, pooler_restarts, final_stop = _restarts(orch, life)
    after = _after_actions(orch, ends, run[1])
    hours = sorted({hour(t) for t in (run[0], run[1])} | set(per_hour))
    truth = {
        "name": sc.name,
        "seed": sc.seed,
        "shape": sc.shape,
        "params": sc.to_dict(),
        "window": [iso(window[0]), iso(window[1])],
        "app_run": {
            "first_start": iso(run[0]),
            "last_end": iso(run[1]),
            "seconds": round(run[1] - run[0], 3),
            "processes_started": len(life),
            "capacity_per_process": sc.capacity,
            "capacity_total": sc.capacity * sc.processes,
        },
        "requests": {
            "answered": len(ends),
            "by_status": dict(sorted(status.items())),
            "by_outcome": dict(sorted(outcome.items())),
            "failed": failed,
            "failed_share": round(failed / len(ends), 5) if ends else 0.0,
            "status_503": status.get("503", 0),
            "pool_timeouts": outcome.get("pool_timeout", 0),
            "db_errors": outcome.get("db_error", 0),
            "client_sent": len(client),
            "client_unanswered": sum(1 for c in client if c["status"] == 0),
        },
        "leaks": {
            "total": len(leaks),
            "per_hour": {h: per_hour.get(h, 0) for h in hours},
            "per_hour_in_transaction": {
                h: sum(1 for e in leaks if e.get("in_tx") and hour(e["t"]) == h) for h in hours
            },
            "rate_per_hour": round(len(leaks) / run_h, 3) if run_h else 0.0,
            "rate_denominator": "app run time: first process start to last process end",
            "by_path": dict(Counter(e["path"] for e in leaks)),
            "ended_by": dict(Counter(e["ended"][1] for e in leaks)),
            "times": [
                {
                    "at": iso(e["t"]),
                    "path": e["path"],
                    "proc": e["proc"],
                    "backend": e.get("backend"),
                    "ended": iso(e["ended"][0]),
                    "ended_by": e["ended"][1],
                }
                for e in leaks
            ],
        },
        "exhaustion_windows": windows,
        "restarts": restarts,
        "db_restarts": db_restarts,
        "pooler_restarts": pooler_restarts,
        "final_stop": final_stop,
        "after_actions": after,
        "idle_drops": {
            "total": len(drops),
            "idle_timeout_s": sc.idle_timeout,
            "idle_s_min": min((d["idle_s"] for d in drops), default=None),
            "idle_s_max": max((d["idle_s"] for d in drops), default=None),
            "times": [{"at": iso(d["t"]), "idle_s": d["idle_s"], "age_s": d["age_s"]} for d in drops],
        },
        "demand": _demand(app, windows, run),
    }
    kinds = []
    if truth["requests"]["pool_timeouts"] >= MIN_POOL_TIMEOUTS:
        kinds.append("pool_exhaustion")
    elif len(leaks) >= MIN_LEAKS:
        kinds.append("connection_leak")
    if any(a["errors"] >= MIN_DEPLOY_ERRORS for a in after):
        kinds.append("post_deploy")
    if len(drops) >= MIN_DROPS:
        kinds.append("idle_drops")
    truth["expected_findings"] = kinds
    truth["summary"] = {
        "requests": len(ends),
        "failed": failed,
        "leaks": len(leaks),
        "pool_timeouts": outcome.get("pool_timeout", 0),
        "windows": len(windows),
        "restarts": len(restarts),
        "db_restarts": len(db_restarts),
        "pooler_restarts": len(pooler_restarts),
        "drops": len(drops),
        "db_errors": outcome.get("db_error", 0),
        "hours": hours,
        "findings": kinds,
    }
    return truth


def store_streams(src: Path, dest: Path) -> None:
    """Gzip the raw streams of ``src`` into ``dest``, compacted: a request is kept as its end
    (which holds its start), without the request id."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.jsonl*")):
        rows = read_jsonl(path)
        if path.name.startswith("app-"):
            rows = [{k: v for k, v in r.items() if k != "rid"} for r in rows if r["ev"] != "req_start"]
        name = path.name if path.suffix == ".gz" else path.name + ".gz"
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        (dest / name).write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))


def rebuild(folder: Path) -> dict:
    """Re-derive ``folder/truth.json`` from its stored streams (``truth/*.jsonl.gz``) and parameters."""
    from lab.params import Action, Scenario

    old = json.loads((folder / "truth.json").read_text())
    params = dict(old["params"])
    params["actions"] = tuple(Action(**a) for a in params["actions"])
    params["bursts"] = tuple(tuple(b) for b in params["bursts"])
    sc = Scenario(**params)
    store_streams(folder / "truth", folder / "truth")
    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in old["window"])
    truth = build_truth(sc, folder / "truth", window=(start, end))
    truth["recording"] = old.get("recording")
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for arg in sys.argv[1:]:
        print(arg, rebuild(Path(arg))["summary"])
