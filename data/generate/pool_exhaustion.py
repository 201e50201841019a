"""Generate ``data/incidents/pool-exhaustion/``: connections leaked on an error path fill the pool.

checkout-api 1.4.2 (``app.py --bug leak``, pool_size 5, max_overflow 3, pool_timeout 1 s) serves
~2 requests/s. About 5 % of orders are over the limit: the error path has already checked a
connection out and never returns it (the session is kept alive by the exception kept for the
``/debug/errors`` page). After 8 leaks the pool is exhausted and every request waits 1 s and
fails with ``QueuePool limit of size 5 overflow 3 reached``: 503. An operator restarts the
service (new process: the pool is empty again), the leak starts over, and finally 1.4.3 with
``with Session(engine)`` is deployed.

Run: ``python data/generate/pool_exhaustion.py`` (about 7 minutes, real time).
"""

from __future__ import annotations

import threading
import time

from common import Run, count, iso, iso_s, write_json, write_toml
from readme import render

POOL = {"pool_size": 5, "max_overflow": 3, "pool_timeout": 1.0}
RATE = 2.0  # requests per second
BIG_ORDER = 0.05  # share of orders over the limit: each one leaks a connection in 1.4.2
PHASES = (140, 140, 90)  # seconds: leak, leak again after the restart, fixed
SCALE = 30  # documented: one real second stands for 30 incident seconds


def pick(rng):
    r = rng.random()
    if r < 0.15:
        return ("catalog", "/catalog", "GET")
    if r < 0.15 + BIG_ORDER:
        return ("big", f"/checkout?total={rng.randint(12_000, 40_000)}", "POST")
    return ("order", f"/checkout?total={rng.randint(20, 900)}", "POST")


def main() -> None:
    t_begin = time.time()
    app_args = {**POOL, "bug": "leak", "version": "1.4.2"}
    with Run("pool-exhaustion", app_args=app_args) as run:
        start = run.start_app()
        run.wait_scraped()
        load = threading.Thread(target=run.load, args=(sum(PHASES) + 4, lambda _t: RATE, pick))
        load.start()
        time.sleep(PHASES[0])
        restart = run.stop_app()
        run.start_app()
        time.sleep(PHASES[1])
        deploy = run.stop_app()
        run.start_app(bug="none", version="1.4.3")
        time.sleep(PHASES[2])
        load.join()
        end = time.time()
        run.export(start - 10, end + 5)
        run.finish()
    res = run.results
    leaks = [r for r in res if r.kind == "big" and r.status == 500]
    phases = [(start, restart), (restart, deploy), (deploy, end)]
    truth = {
        "incident": "pool-exhaustion",
        "scale": SCALE,
        "real_time": True,
        "window": [iso_s(start - 10), iso_s(end + 5)],
        "pool": POOL,
        "request_rate_per_s": RATE,
        "big_order_share": BIG_ORDER,
        "requests": len(res),
        "status_counts": {str(s): count(res, status=s) for s in sorted({r.status for r in res})},
        "leaks": [iso(r.at) for r in leaks],
        "leaked_total": len(leaks),
        "leaks_per_phase": [sum(1 for r in leaks if a <= r.at < b) for a, b in phases],
        "leaks_per_real_minute": round(len(leaks) / ((deploy - start) / 60), 2),
        "leaks_per_scaled_hour": round(len(leaks) / ((deploy - start) / 60) * 60 / SCALE, 1),
        "pool_timeouts": count(res, status=503),
        "pool_timeouts_per_phase": [count(res, status=503, since=a, until=b) for a, b in phases],
        "first_pool_timeout_per_phase": [
            next(
                (iso(r.at) for r in sorted(res, key=lambda r: r.at) if r.status == 503 and a <= r.at < b),
                None,
            )
            for a, b in phases
        ],
        "big_orders_refused_after_fix": count(res, kind="big", status=422),
        "unanswered": count(res, status=0),
        "app_start": iso(start),
        "restart": iso(restart),
        "deploy": iso(deploy),
        "end": iso(end),
        "generation_seconds": round(time.time() - t_begin),
    }
    events = [
        {"at": iso_s(restart), "kind": "restart", "text": "Operator restarted checkout-api (pool exhausted, 503s)",
         "action": "Restarted checkout-api to free the pool", "owner": "oncall"},
        {"at": iso_s(deploy), "kind": "fix", "text": "Deployed checkout-api 1.4.3: sessions closed by a context manager",
         "action": "Leak fixed: every session in a context manager", "owner": "checkout team"},
    ]  # fmt: skip
    truth["events"] = events
    write_toml(
        run.out / "incident.toml",
        title="Checkout 503s: connection pool exhausted by leaked sessions",
        window=(start - 10, end + 5),
        max_connections=30,
        app={**POOL, "pool_pre_ping": False, "workers": 1, "instances": 1},  # pool_recycle: -1 (never)
        events=events,
    )
    write_json(run.out / "truth.json", truth)
    render(run.out.name)
    print(
        {
            k: truth[k]
            for k in ("requests", "status_counts", "leaked_total", "leaks_per_phase", "pool_timeouts")
        }
    )


if __name__ == "__main__":
    main()
