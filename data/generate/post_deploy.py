"""Generate ``data/incidents/post-deploy/``: errors for a while after every deploy.

checkout-api 2.3 runs with pool_size 5, max_overflow 5, pool_timeout 2 s and no
``pool_pre_ping``, at ~6 requests/s. Each of three deploys runs the release's migration step,
which restarts PostgreSQL to apply a config change (``pg_ctl stop -m fast``, ~12 s of package
and config work, ``pg_ctl start``), then rolls the app to the new version while the database
is already back. During a deploy:

* (deploy 2.3.2) the step first asks for a smart shutdown, which waits for clients to leave:
  the pool never does (a new connection would be refused: ``the database system is shutting
  down``), and after 10 s the step falls back to a fast shutdown;
* PostgreSQL terminates the pooled connections (``FATAL: terminating connection due to
  administrator command``);
* the app's next use of a stale pooled connection fails (no pre-ping), and new connections are
  refused (``Connection refused``) until the server is back (``the database system is
  starting up`` if it catches the server mid-start);
* requests during the app roll find nothing listening.

Run: ``python data/generate/post_deploy.py`` (about 7 minutes, real time).
"""

from __future__ import annotations

import threading
import time

from common import Run, count, iso, iso_s, write_json, write_toml
from readme import render

POOL = {"pool_size": 5, "max_overflow": 5, "pool_timeout": 2.0}
RATE = 6.0
DOWN = 12.0  # seconds PostgreSQL is stopped during a deploy
# version, seconds after the start, shutdown: "fast", or "smart" first (pg_ctl gives up after
# SMART_WAIT s because the pool never lets go, and the pipeline falls back to fast)
DEPLOYS = (("2.3.1", 70, "fast"), ("2.3.2", 200, "smart"), ("2.3.3", 330, "fast"))
SMART_WAIT = 10
RUN = 420
SCALE = 30


def pick(rng):
    if rng.random() < 0.3:
        return ("catalog", "/catalog", "GET")
    return ("order", f"/checkout?total={rng.randint(20, 900)}", "POST")


def main() -> None:
    t_begin = time.time()
    with Run("post-deploy", app_args={**POOL, "version": "2.3.0", "query_seconds": 0.03}) as run:
        start = run.start_app()
        run.wait_scraped()
        load = threading.Thread(target=run.load, args=(RUN, lambda _t: RATE, pick))
        load.start()
        deploys = []
        for version, at, mode in DEPLOYS:
            time.sleep(max(0.0, start + at - time.time()))
            d = {"version": version, "at": time.time(), "shutdown": mode}
            if mode == "smart":
                run.pg._run("pg_ctl", "-D", str(run.pg.data_dir), "-m", "smart", "-t", str(SMART_WAIT), "-w",
                            "stop", check=False)  # fmt: skip
                d["smart_gave_up"] = time.time()
            run.pg.stop("fast")
            d["pg_stopped"] = time.time()
            time.sleep(DOWN)
            d["pg_start"] = time.time()
            run.pg.start()
            d["pg_ready"] = time.time()
            time.sleep(3)
            d["app_restart"] = run.stop_app()
            run.start_app(version=version)
            d["app_ready"] = time.time()
            deploys.append(d)
        load.join()
        end = time.time()
        run.export(start - 10, end + 5)
        run.finish()
    res = sorted(run.results, key=lambda r: r.at)
    per_deploy = []
    for i, d in enumerate(deploys):
        # a request sent just before the deploy can fail because of it: windows open 1 s early
        until = deploys[i + 1]["at"] - 1 if i + 1 < len(deploys) else end
        errs = [r for r in res if d["at"] - 1 <= r.at < until and r.status != 200]
        per_deploy.append({
            "version": d["version"],
            "deploy": iso(d["at"]),
            "shutdown": d["shutdown"],
            "smart_gave_up": iso(d["smart_gave_up"]) if "smart_gave_up" in d else None,
            "pg_stopped": iso(d["pg_stopped"]),
            "pg_start": iso(d["pg_start"]),
            "pg_ready": iso(d["pg_ready"]),
            "app_restart": iso(d["app_restart"]),
            "app_ready": iso(d["app_ready"]),
            "errors_503": sum(1 for r in errs if r.status == 503),
            "unanswered": sum(1 for r in errs if r.status == 0),
            "first_error": iso(errs[0].at) if errs else None,
            "last_error": iso(errs[-1].at) if errs else None,
            "recovery_seconds": round(errs[-1].at + errs[-1].seconds - d["at"], 1) if errs else 0.0,
        })  # fmt: skip
    truth = {
        "incident": "post-deploy",
        "scale": SCALE,
        "real_time": True,
        "window": [iso_s(start - 10), iso_s(end + 5)],
        "pool": {**POOL, "pool_pre_ping": False},
        "request_rate_per_s": RATE,
        "requests": len(res),
        "status_counts": {str(s): count(res, status=s) for s in sorted({r.status for r in res})},
        "errors_outside_deploys": sum(
            1
            for r in res
            if r.status != 200 and not any(d["at"] - 1 <= r.at <= d["app_ready"] + 5 for d in deploys)
        ),
        "pg_down_seconds": DOWN,
        "deploys": per_deploy,
        "app_start": iso(start),
        "end": iso(end),
        "generation_seconds": round(time.time() - t_begin),
    }
    events = [
        {"at": iso_s(d["at"]), "kind": "deploy",
         "text": f"Deploy {d['version']}: migration step restarts PostgreSQL, then the app rolls"}
        for d in deploys
    ]  # fmt: skip
    truth["events"] = events
    write_toml(
        run.out / "incident.toml",
        title="Connection errors for minutes after every deploy",
        window=(start - 10, end + 5),
        max_connections=30,
        app={**POOL, "pool_pre_ping": False, "workers": 1, "instances": 1},  # pool_recycle: -1 (never)
        events=events,
    )
    write_json(run.out / "truth.json", truth)
    render(run.out.name)
    print({k: truth[k] for k in ("requests", "status_counts", "errors_outside_deploys")})
    for d in per_deploy:
        print(d)


if __name__ == "__main__":
    main()
