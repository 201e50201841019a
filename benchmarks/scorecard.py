"""The truth harness: loglib's numbers on every lab recording against the lab's own truth.

``python benchmarks/scorecard.py [--set dev|heldout|all] [NAME ...]`` prints one table per
scenario (number, loglib, truth, ok) and a pass count per set. ``tests/test_truth.py`` asserts
the same checks. Only loglib's public API is used: ``ll.Incident.load``, ``ll.findings``,
``ll.leak_rates``, ``Incident.events`` and the ``app`` frame.

Tolerances (the lab README says what each truth number means):

* leaks per UTC hour: exact for ``pool_events``, and for ``pg_sessions`` when every leaked
  session ended with its process (PostgreSQL logs the open-transaction EOF); else within ±10 %.
  An hour loglib labels a lower bound (a ``note`` "lower bound: <why>") must hold: truth ≥ it;
* the overall leak rate: ±10 % of leaks ÷ the app's run time;
* restarts: no invented and no missed moment; each app restart's time within 1 s of the app's
  own line (the stop line after SIGTERM; the kill or the replacement's start line after SIGKILL);
* exhaustion windows: the count exactly; their total duration within ±10 % or the pool
  timeout + 2 s per window, whichever is larger (fewer than 3 pool timeouts make no finding:
  then none is expected, as for errors after a deploy with fewer than 2);
* pool timeouts, 503s: exact; failed share: ±1 % (relative);
* idle drops: exact; idle timeout ±10 %, or an upper bound (labelled as one) not below the truth;
* errors per deploy (and per pgBouncer restart) and the baseline before it: exact; recovery ±1 s or ±10 %;
* finding kinds: the same set (none on healthy controls);
* Little's-law demand: within ±25 % of the request-scoped truth and never above what the
  connections could carry (capacity × processes).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loglib as ll  # noqa: E402

LAB = ROOT / "data" / "lab"
METHODS = ("pool_events", "checked_out_gauge", "pg_sessions", "idle_in_transaction_gauge")
ACCESS = re.compile(r'"(?:GET|POST) [^"]*" (\d{3}) ')
RESTART_KINDS = ("restart", "deploy")
#: actions whose errors are compared, and the prefix of their checks: a deploy, and pgBouncer
#: restarted by an operator (the post-deploy finding covers a pgBouncer restart no deploy explains)
AFTER_KINDS = {"deploy": "deploy", "pooler_restart": "pooler"}
#: a leak figure labelled a lower bound, with its reason (``note``: "lower bound: <why>")
LOWER_BOUND = r"^lower bound: \S"
#: the detectors' own thresholds (``truth.py`` uses the same for ``expected_findings``)
MIN_POOL_TIMEOUTS = 3


@dataclass
class Check:
    """One comparison: ``name`` (stable id), ``loglib`` and ``truth`` as shown, ``ok``."""

    name: str
    loglib: object
    truth: object
    ok: bool
    note: str = ""


def ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def within(value: float | None, truth: float, rel: float, absolute: float = 0.0) -> bool:
    return value is not None and abs(value - truth) <= max(rel * abs(truth), absolute) + 1e-9


def recordings(which: str = "all") -> list[Path]:
    """Lab folders (with ``truth.json``) of a set: ``dev``, ``heldout`` or ``all``."""
    out = []
    for folder in sorted(LAB.glob("*/truth.json")):
        truth = json.loads(folder.read_text())
        split = "dev" if truth["seed"] % 2 == 0 else "heldout"
        if which in ("all", split):
            out.append(folder.parent)
    return out


def evidence_kinds(truth: dict) -> set[str]:
    """Which evidence the recording has, from its parameters (not from loglib)."""
    p = truth["params"]
    have = {"pg_sessions"}
    if p["pool_event_log"]:
        have.add("pool_events")
    if p["pool_gauge"]:
        have.add("checked_out_gauge")
    if p["exporter"]:
        have.add("idle_in_transaction_gauge")
    return have


def check_names(truth: dict) -> list[str]:
    """The checks that apply to a recording, decided from its truth and parameters alone."""
    names = [f"leaks_per_hour[{m}]" for m in METHODS if m in evidence_kinds(truth)]
    if truth["leaks"]["total"]:
        names.append("leak_rate")
    names += ["restart_count", "restart_times", "exhaustion_windows", "exhaustion_duration", "pool_timeouts"]
    names += ["status_503", "failed_share", "idle_drops"]
    if truth["idle_drops"]["total"] >= 3:
        names.append("idle_timeout")
    for i, a in enumerate(truth["after_actions"]):
        if a["kind"] in AFTER_KINDS:
            k = AFTER_KINDS[a["kind"]]
            names += [f"{k}{i}_errors", f"{k}{i}_baseline", f"{k}{i}_recovery"]
    names.append("finding_kinds")
    if "pool_exhaustion" in truth["expected_findings"]:
        names.append("littles_law")
    return names


class Observed:
    """loglib's view of one recording, computed once."""

    def __init__(self, folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.inc = ll.Incident.load(folder)
            self.found = ll.findings(self.inc)
            self.events = self.inc.events.filter(pl.col("kind").is_in(RESTART_KINDS))
            self.rates = {m: self._rates(m) for m in METHODS}
            self.app = self.inc.app

    def _rates(self, method: str) -> pl.DataFrame | None:
        """Leaks per hour of one method; None when this loglib has no such method."""
        if "method" in inspect.signature(ll.leak_rates).parameters:
            try:
                return ll.leak_rates(self.inc, every="1h", method=method)
            except ValueError:
                return None
        rates = ll.leak_rates(self.inc, every="1h")
        got = rates.filter(pl.col("method") == method)
        if got.height == 0 and method not in set(rates["method"]) and method == "idle_in_transaction_gauge":
            return None
        return got

    def of(self, kind: str) -> list:
        return [f for f in self.found if f.kind == kind]


def _leaks_per_hour(obs: Observed, truth: dict, method: str) -> Check:
    name = f"leaks_per_hour[{method}]"
    rates = obs.rates[method]
    want = (
        truth["leaks"]["per_hour"]
        if method != "idle_in_transaction_gauge"
        else truth["leaks"]["per_hour_in_transaction"]
    )
    if rates is None:
        return Check(name, "method not in this loglib", {h[11:16]: n for h, n in want.items()}, False)
    got: dict[str, float | None] = {}
    bound: set[str] = set()
    if rates.height:
        per = rates.group_by(pl.col("ts").dt.truncate("1h")).agg(
            pl.when(pl.col("leaked").is_null().all()).then(None).otherwise(pl.col("leaked").sum()).alias("n"),
            pl.col("note").fill_null("").str.contains(LOWER_BOUND).any().alias("bound"),
        )
        got = {f"{t:%Y-%m-%dT%H:00:00Z}": n for t, n, _b in per.iter_rows()}
        bound = {f"{t:%Y-%m-%dT%H:00:00Z}" for t, _n, b in per.iter_rows() if b}
    exact = method == "pool_events" or (
        method == "pg_sessions" and set(truth["leaks"]["ended_by"]) <= {"app_exit"}
    )
    ok = True
    for hour, n in want.items():
        g = got.get(hour, 0.0 if rates.height or not n else None)
        if g is not None and hour in bound:  # a labelled lower bound: it must hold, never exceed
            good = g <= n
        else:
            good = n == 0 if g is None else (g == n if exact else within(g, n, 0.10))
        ok = ok and good
    extra = {h: g for h, g in got.items() if h not in want and g}
    ok = ok and not extra
    shown = {h[11:16]: (f"≥ {got.get(h):g}" if h in bound and got.get(h) is not None else got.get(h))
             for h in sorted(set(want) | set(got))}  # fmt: skip
    note = "exact" if exact else "±10%"
    if bound & set(want):
        note += "; ≥: a lower bound loglib labels with its reason, checked as truth ≥ it"
    return Check(name, shown or "no rows", {h[11:16]: n for h, n in want.items()}, ok, note)


def _restart_moments(truth: dict) -> list[dict]:
    moments = []
    for r in truth["restarts"]:
        line, kill = ts(r["app_line_at"]), ts(r["at"])
        anchors = [line] if r["signal"] == "SIGTERM" else [kill, line]
        moments.append({"what": f"{r['kind']} {r['text']}", "lo": kill - timedelta(seconds=2),
                        "hi": ts(r["last_start_line_at"]) + timedelta(seconds=5), "anchors": anchors})  # fmt: skip
    for d in truth["db_restarts"]:
        at = ts(d["at"])
        moments.append({"what": "PostgreSQL restart", "lo": at - timedelta(seconds=2),
                        "hi": (ts(d["ready"]) or at) + timedelta(seconds=5), "anchors": []})  # fmt: skip
    for d in truth.get("pooler_restarts", []):
        at = ts(d["at"])
        moments.append({"what": "pgBouncer restart", "lo": at - timedelta(seconds=2),
                        "hi": (ts(d["ready"]) or at) + timedelta(seconds=5), "anchors": []})  # fmt: skip
    return moments


def _restarts(obs: Observed, truth: dict) -> tuple[Check, Check]:
    moments = _restart_moments(truth)
    times = obs.events["ts"].to_list()
    invented = [t for t in times if not any(m["lo"] <= t <= m["hi"] for m in moments)]
    missed = [m["what"] for m in moments if not any(m["lo"] <= t <= m["hi"] for t in times)]
    seen = len(moments) - len(missed) + len(invented)
    note = "; ".join([*(f"invented {t:%H:%M:%S}" for t in invented), *(f"missed {w}" for w in missed)])
    count = Check("restart_count", seen, len(moments), not invented and not missed, note)
    late = []
    for m in moments:
        if not m["anchors"]:
            continue
        near = [t for t in times if m["lo"] <= t <= m["hi"]]
        best = min((abs((t - a).total_seconds()) for t in near for a in m["anchors"] if a), default=None)
        if best is None or best > 1.0:
            late.append(f"{m['what']}: {'none' if best is None else f'{best:.1f} s off'}")
    n_app = sum(1 for m in moments if m["anchors"])
    return count, Check("restart_times", f"{n_app - len(late)} within 1 s", f"{n_app} app restarts", not late,
                        "; ".join(late))  # fmt: skip


def _exhaustion(obs: Observed, truth: dict) -> list[Check]:
    """Windows, their duration and pool timeouts from the pool_exhaustion finding. Fewer than
    ``MIN_POOL_TIMEOUTS`` pool timeouts make no finding, so then the finding must be absent (0)."""
    f = obs.of("pool_exhaustion")
    n = f[0].numbers if f else {}
    timeouts = truth["requests"]["pool_timeouts"]
    wins = truth["exhaustion_windows"] if timeouts >= MIN_POOL_TIMEOUTS else []
    total = sum(w["seconds"] for w in wins)
    slack = max(0.10 * total, len(wins) * (truth["params"]["pool_timeout"] + 2))
    got_s = n.get("full_s", 0.0 if not f else None)
    want_t = timeouts if timeouts >= MIN_POOL_TIMEOUTS else 0
    note = "" if wins or not timeouts else f"{timeouts} pool timeout(s): below the finding's threshold"
    return [
        Check("exhaustion_windows", n.get("windows", 0), len(wins), n.get("windows", 0) == len(wins), note),
        Check(
            "exhaustion_duration", got_s, round(total, 1), within(got_s, total, 0, slack), f"±{slack:.1f} s"
        ),
        Check("pool_timeouts", n.get("pool_timeouts", 0), want_t, n.get("pool_timeouts", 0) == want_t, note),
    ]


def _requests(obs: Observed, truth: dict) -> list[Check]:
    app = obs.app
    codes = (
        app["message"].str.extract(ACCESS.pattern, 1).drop_nulls().cast(pl.Int64) if app is not None else None
    )
    n503 = int((codes == 503).sum()) if codes is not None else 0
    share = float((codes >= 500).sum() / codes.len()) if codes is not None and codes.len() else None
    t = truth["requests"]
    return [
        Check("status_503", n503, t["status_503"], n503 == t["status_503"], "access lines of the app frame"),
        Check("failed_share", None if share is None else round(share, 4), round(t["failed_share"], 4),
              within(share, t["failed_share"], 0.01, 1e-4)),
    ]  # fmt: skip


def _idle(obs: Observed, truth: dict) -> list[Check]:
    f = obs.of("idle_drops")
    n = f[0].numbers if f else {}
    want = truth["idle_drops"]
    out = [Check("idle_drops", n.get("drops", 0), want["total"], n.get("drops", 0) == want["total"])]
    if want["total"] >= 3:
        timeout = want["idle_timeout_s"]
        if "idle_timeout_s" in n:
            out.append(
                Check(
                    "idle_timeout", n["idle_timeout_s"], timeout, within(n["idle_timeout_s"], timeout, 0.10)
                )
            )
        elif "idle_timeout_max_s" in n:
            bound = n["idle_timeout_max_s"]
            out.append(Check("idle_timeout", f"≤ {bound}", timeout, bound >= timeout * 0.9, "upper bound"))
        else:
            out.append(Check("idle_timeout", None, timeout, False, "no finding"))
    return out


def _deploys(obs: Observed, truth: dict) -> list[Check]:
    acts = truth["after_actions"]
    # one finding per deploy (the comparison of all deploys has no "at" of its own)
    found = [(f.numbers["at"], f.numbers) for f in obs.of("post_deploy") if "at" in f.numbers]
    out = []
    end = ts(truth["app_run"]["last_end"])
    for i, a in enumerate(acts):
        if a["kind"] not in AFTER_KINDS:
            continue
        k = AFTER_KINDS[a["kind"]]
        at = ts(a["at"])
        until = ts(acts[i + 1]["at"]) - timedelta(seconds=1) if i + 1 < len(acts) else end
        mine = sorted((t, n) for t, n in found if at - timedelta(seconds=2) <= t < until)
        errors = sum(n["errors"] for _, n in mine)
        base = mine[0][1]["errors_before"] if mine else 0
        rec = max(((t - at).total_seconds() + n["recovery_s"] for t, n in mine), default=0.0)
        want_errors = a["errors"] if a["errors"] >= 2 else 0  # fewer make no finding
        out += [
            Check(f"{k}{i}_errors", errors, a["errors"], errors == want_errors,
                  f"{a['version'] or 'pgBouncer'} at {at:%H:%M:%S}"),
            Check(f"{k}{i}_baseline", base, a["baseline_errors"], base == a["baseline_errors"] or not mine),
            Check(f"{k}{i}_recovery", round(rec, 1), a["recovery_s"],
                  within(rec, a["recovery_s"], 0.10, 1.0) or want_errors == 0),
        ]  # fmt: skip
    return out


def _littles_law(obs: Observed, truth: dict) -> Check:
    f = obs.of("pool_exhaustion")
    n = f[0].numbers if f else {}
    got = n.get("mean_busy_littles_law")
    want = truth["demand"]["mean_busy"]
    cap = truth["app_run"]["capacity_total"]
    ok = got is not None and got <= cap and within(got, want, 0.25)
    return Check("littles_law", got, want, ok, f"≤ {cap} connections; {n.get('demand_from', 'no demand')}")


def compare(folder: Path, obs: Observed | None = None) -> list[Check]:
    """Every check of one recording (those in :func:`check_names`), in that order."""
    truth = json.loads((folder / "truth.json").read_text())
    obs = obs or Observed(folder)
    checks = [_leaks_per_hour(obs, truth, m) for m in METHODS if m in evidence_kinds(truth)]
    if truth["leaks"]["total"]:
        f = obs.of("pool_exhaustion") or obs.of("connection_leak")
        got = f[0].numbers.get("leaks_per_hour") if f else None
        want = truth["leaks"]["rate_per_hour"]
        checks.append(Check("leak_rate", got, want, within(got, want, 0.10), "leaks ÷ app run time"))
    checks += [*_restarts(obs, truth), *_exhaustion(obs, truth), *_requests(obs, truth), *_idle(obs, truth)]
    checks += _deploys(obs, truth)
    kinds = sorted({f.kind for f in obs.found})
    checks.append(Check("finding_kinds", kinds, sorted(truth["expected_findings"]),
                        kinds == sorted(truth["expected_findings"])))  # fmt: skip
    if "pool_exhaustion" in truth["expected_findings"]:
        checks.append(_littles_law(obs, truth))
    names = check_names(truth)
    return sorted((c for c in checks if c.name in names), key=lambda c: names.index(c.name))


def _cell(v: object, width: int) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(name: str, checks: list[Check], split: str) -> None:
    passed = sum(c.ok for c in checks)
    print(f"\n## {name} ({split}): {passed}/{len(checks)} ok")
    print(f"{'number':<34} {'loglib':<38} {'truth':<30} ok")
    for c in checks:
        print(f"{c.name:<34} {_cell(c.loglib, 38):<38} {_cell(c.truth, 30):<30} {'yes' if c.ok else 'NO'}"
              + (f"  ({c.note})" if c.note else ""))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=["dev", "heldout", "all"], default="all")
    p.add_argument("names", nargs="*", help="only these recordings (folder names)")
    args = p.parse_args(argv)
    totals: dict[str, list[int]] = {}
    for folder in recordings(args.set):
        if args.names and folder.name not in args.names:
            continue
        split = "dev" if json.loads((folder / "truth.json").read_text())["seed"] % 2 == 0 else "heldout"
        checks = compare(folder)
        print_table(folder.name, checks, split)
        t = totals.setdefault(split, [0, 0, 0, 0])
        t[0] += sum(c.ok for c in checks)
        t[1] += len(checks)
        t[2] += all(c.ok for c in checks)
        t[3] += 1
    print("\n## Summary")
    for split, (ok, n, clean, scen) in sorted(totals.items()):
        print(f"{split}: {ok}/{n} checks ok; {clean}/{scen} scenarios fully ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
