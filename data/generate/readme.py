"""Write each incident folder's ``README.md`` from its ``truth.json`` (the generators call this).

Run ``python data/generate/readme.py`` to re-render all three after editing the text here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

INCIDENTS = Path(__file__).resolve().parents[1] / "incidents"

COMMON = """\
## Files

| path | written by |
|---|---|
| `incident.toml` | the generator: sources, pool settings, events (format of the incidents issue) |
| `app/app.log` | checkout-api (`data/generate/app.py`, SQLAlchemy {sqla} + psycopg 3), Python `logging`: `%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s`, UTC, tracebacks from `logger.exception` |
| `pg/postgresql.log` | PostgreSQL 15, stderr, `log_line_prefix = '%m [%p] %q%u@%d '`, `log_connections`/`log_disconnections` on, UTC |
| `prometheus/*.json` | Prometheus 2.42 `/api/v1/query_range` answers (step 5 s), saved byte for byte; the app is scraped every 2 s, `prometheus-postgres-exporter` 0.11 every 5 s |
| `truth.json` | the generator: what it did and saw (the ground truth below) |

Series: `http_requests_total{{path,status}}`, the recording rules `status:http_requests:rate30s`
and `job:http_503:ratio_rate30s`, `ALERTS` (rules `Checkout503s`: 503 ratio > 5 % for 30 s,
`DbPoolSaturated`: every pool slot checked out for 30 s), the pool gauges `db_pool_size`,
`db_pool_max_overflow`, `db_pool_checked_out`, `db_pool_checked_in`, `db_pool_overflow`
(SQLAlchemy's `pool.overflow()`: negative while the pool is not full), `up`, and from the
exporter `pg_up`, `pg_stat_activity_count{{datname="shop"}}` (by state),
`pg_stat_database_numbackends{{datname="shop"}}`, `pg_settings_max_connections`.

## How it was made

Everything ran for real on one machine (loopback), in real time: a throwaway PostgreSQL, the
app as its own process (a restart is a new process), a load driver sending HTTP requests,
`prometheus-postgres-exporter` and Prometheus. Every line of `app/` and `pg/` was written by
the app or the server; the generator only copies the PostgreSQL log and saves Prometheus's
answers. Reproduce with `python data/generate/{script}.py` (needs the PostgreSQL 15 server
binaries, `apt-get install prometheus prometheus-postgres-exporter`; about {minutes} minutes).
The run picks free ports, so ports, pids and times differ from run to run; the shape does not.

**Scale.** Time is not faked, it is short: the run lasts about {minutes} minutes, and settings
are shrunk to match (pool timeout 1–2 s instead of 30 s, idle timeout 20 s instead of minutes).
Read one real second as about {scale} incident seconds (a {minutes}-minute run ≈ {hours:.1f} hours);
rates "per scaled hour" in the tables use that factor.
"""


def table(rows: list[tuple[str, object]]) -> str:
    return "\n".join(["| fact | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def pool_exhaustion(t: dict) -> tuple[str, str]:
    phases = t["leaks_per_phase"]
    rows = [
        ("pool", f"pool_size {t['pool']['pool_size']}, max_overflow {t['pool']['max_overflow']}, "
                 f"pool_timeout {t['pool']['pool_timeout']} s, no pre-ping"),
        ("requests sent / by status", f"{t['requests']} / {t['status_counts']} (0 = no answer: app restarting)"),
        ("app started", t["app_start"]),
        ("leaked connections", f"{t['leaked_total']} ({phases[0]} before the restart, {phases[1]} after, "
                               f"{phases[2]} after the fix); times in `truth.json` `leaks`"),
        ("leak rate", f"{t['big_order_share']:.0%} of {t['request_rate_per_s']} req/s = "
                      f"{t['big_order_share'] * t['request_rate_per_s'] * 60:.0f} leaks per real minute while "
                      f"the pool has room ≈ {t['big_order_share'] * t['request_rate_per_s'] * 3600 / t['scale']:.0f}"
                      " per scaled hour"),
        ("first pool timeout (503) per phase", ", ".join(str(x) for x in t["first_pool_timeout_per_phase"])),
        ("pool timeouts (503, `QueuePool limit ... reached`)",
         f"{t['pool_timeouts']} ({', '.join(map(str, t['pool_timeouts_per_phase']))} per phase)"),
        ("operator restart (SIGTERM)", t["restart"]),
        ("fix deployed (1.4.3)", t["deploy"]),
        ("big orders refused cleanly after the fix (422)", t["big_orders_refused_after_fix"]),
    ]  # fmt: skip
    story = f"""\
# Incident: checkout 503s from a connection pool exhausted by leaked sessions

checkout-api 1.4.2 runs SQLAlchemy with `QueuePool(pool_size=5, max_overflow=3,
pool_timeout=1)`. Its order handler opens `Session(engine)` without a context manager; for an
order over the limit it commits, reads `order.total` (which begins a new transaction: a
connection is checked out again) and raises. The exception is kept in an in-memory buffer for
a `/debug/errors` page, and its traceback keeps the session, so that connection is never
returned: each over-limit order (about {t["big_order_share"]:.0%} of requests) leaks one pooled
connection, which PostgreSQL shows as a session `idle in transaction` that never ends.

## Story

1. {t["app_start"]}: 1.4.2 starts; requests succeed while the pool has room. Each leak is an
   `ERROR checkout.api ... POST /checkout failed` with an `OrderLimitError` traceback.
2. After 8 leaks (5 + 3 overflow) every slot is held: each request waits 1 s and fails with
   `sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 3 reached, connection timed
   out, timeout 1.00` → 503. The `DbPoolSaturated` and `Checkout503s` alerts fire.
3. {t["restart"]}: an operator restarts the service. The process exits without returning the
   leaked connections (as a forked worker does, `os._exit`); PostgreSQL logs `unexpected EOF on
   client connection with an open transaction` for each leaked session. The new process starts
   with an empty pool — and the leak starts over.
4. {t["deploy"]}: 1.4.3 is deployed (`with Session(engine) as session:`; over-limit orders get
   a 422). The leaked sessions of the second process end the same way; nothing leaks after.

## Ground truth (`truth.json`)

{table(rows)}

What loglib should recover (`tests/test_incidents_data.py`): the PostgreSQL sessions of
`checkout-api` that end in `client_reset` (unexpected EOF with an open transaction) are exactly
the leaked ones, ending at the restart and the deploy; the app log has one `OrderLimitError`
traceback per leak and one `QueuePool limit` traceback per 503; `db_pool_checked_out` reaches 8,
the exporter counts 8 sessions `idle in transaction`, and both alerts fire in each leaking phase only.
"""
    return story, "pool_exhaustion"


def post_deploy(t: dict) -> tuple[str, str]:
    rows = [
        ("pool", f"pool_size {t['pool']['pool_size']}, max_overflow {t['pool']['max_overflow']}, "
                 f"pool_timeout {t['pool']['pool_timeout']} s, pool_pre_ping false"),
        ("requests sent / by status", f"{t['requests']} / {t['status_counts']}"),
        ("errors outside the deploy windows", t["errors_outside_deploys"]),
        ("PostgreSQL down per deploy", f"{t['pg_down_seconds']:.0f} s (+ the smart-shutdown wait in 2.3.2)"),
    ]  # fmt: skip
    rows += [
        (f"deploy {d['version']} ({d['shutdown']})",
         f"at {d['deploy']}; PostgreSQL stopped {d['pg_stopped']}, ready {d['pg_ready']}; app rolled "
         f"{d['app_restart']}; {d['errors_503']} × 503, {d['unanswered']} unanswered; errors "
         f"{d['first_error']} – {d['last_error']}; recovered after {d['recovery_seconds']} s")
        for d in t["deploys"]
    ]  # fmt: skip
    story = f"""\
# Incident: connection resets and refusals for minutes after every deploy

checkout-api 2.3 (SQLAlchemy `QueuePool(pool_size=5, max_overflow=5, pool_timeout=2)`, no
`pool_pre_ping`) at ~{t["request_rate_per_s"]:.0f} requests/s. Every deploy runs the release's
migration step, which restarts PostgreSQL to apply a configuration change, then rolls the app.
From the app's side the database drops out "for a few minutes after each deploy, then it
stabilizes by itself" (the seed write-up). The cause is visible only when the three sources are
lined up.

## Story (one per deploy: {", ".join(d["version"] for d in t["deploys"])})

1. The deploy starts; PostgreSQL gets a fast shutdown request (`received fast shutdown
   request`), terminates every backend (`FATAL: terminating connection due to administrator
   command`) and stops. For deploy 2.3.2 the step first asks for a smart shutdown, which waits
   for clients to leave: the pool never leaves, so after 10 s `pg_ctl` gives up and the step
   falls back to fast. (A new connection in those 10 s would be refused with `the database
   system is shutting down`; in this run the pool had enough, so the only trace is `received
   smart shutdown request` followed by nothing for 10 s.)
2. The app still holds its pooled connections. Without pre-ping the next request on one of them
   fails (`psycopg.errors.AdminShutdown: terminating connection due to administrator command`:
   the server's goodbye was waiting in the socket); SQLAlchemy invalidates the pool.
3. For the ~{t["pg_down_seconds"]:.0f} s the server is down, every new connection is refused
   (`connection to server at "127.0.0.1", port ... failed: Connection refused`): 503s.
4. The server starts (`database system is ready to accept connections`); 3 s later the app
   rolls to the new version (a few requests find nothing listening).

## Ground truth (`truth.json`)

{table(rows)}

What loglib should recover (`tests/test_incidents_data.py`): a fast shutdown (and the smart
one) in the PostgreSQL log at each deploy time, the app's sessions ending by admin termination
or shutdown at each, `pg_up` at 0 while the server is down, and app errors (one
`admin_shutdown` per deploy, then `connection_refused`) only inside the deploy windows.
"""
    return story, "post_deploy"


def idle_drops(t: dict) -> tuple[str, str]:
    long_gaps = [g for g in t["gaps"] if g["longer_than_timeout"]]
    rows = [
        ("idle timeout of the middlebox", f"{t['idle_timeout_seconds']:.0f} s (≈ {t['idle_timeout_seconds'] * t['scale'] / 60:.0f} "
                                          "scaled minutes)"),
        ("pool", f"pool_size {t['pool']['pool_size']}, max_overflow {t['pool']['max_overflow']}, "
                 f"pool_timeout {t['pool']['pool_timeout']} s, pool_pre_ping false, pool_recycle -1"),
        ("requests sent / by status", f"{t['requests']} / {t['status_counts']}"),
        ("connections killed (TCP reset to both sides)", f"{t['drops']}; times in `truth.json` `kills`"),
        ("quiet gaps", f"{len(t['gaps'])}, of which {len(long_gaps)} longer than the timeout: "
                       + ", ".join(f"{g['seconds']} s" for g in t["gaps"])),
        ("failed requests per burst", ", ".join(str(b["errors"]) for b in t["bursts"])),
    ]  # fmt: skip
    story = f"""\
# Incident: connections dropped after quiet periods (a middlebox kills idle TCP flows)

checkout-api 3.1.0 (SQLAlchemy `QueuePool(pool_size=5, max_overflow=5, pool_timeout=2)`, no
`pool_pre_ping`, no `pool_recycle`) reaches PostgreSQL through a NAT gateway: here a small TCP
proxy in the generator (asyncio) that resets both sides of a flow that carried no byte for
{t["idle_timeout_seconds"]:.0f} s (`SO_LINGER` 0, then close: a RST). Traffic comes in bursts.

## Story

1. During a burst the pooled connections are busy and nothing is dropped.
2. In a quiet gap longer than {t["idle_timeout_seconds"]:.0f} s the proxy resets every pooled
   connection. PostgreSQL notices at once: `LOG: could not receive data from client:
   Connection reset by peer`, then the session's `disconnection` — {t["idle_timeout_seconds"]:.0f} s
   after the session's last statement (`log_statement = 'all'` for the app's role shows it).
   The app does not notice: its pool still holds the dead sockets.
3. The next burst: the first request on a dead connection fails (`psycopg.OperationalError:
   consuming input failed: server closed the connection unexpectedly`, or `Connection reset by
   peer`) → 503; SQLAlchemy logs `Invalidate connection ...` and reconnects. Gaps shorter than
   the timeout cause nothing.

## Ground truth (`truth.json`)

{table(rows)}

What loglib should recover (`tests/test_incidents_data.py`): one `client_reset` session end
per kill, each about {t["idle_timeout_seconds"]:.0f} s after that session's last statement (the
idle timeout), app errors only at the start of bursts that follow long gaps.
"""
    return story, "idle_drops"


RENDER = {"pool-exhaustion": pool_exhaustion, "post-deploy": post_deploy, "idle-drops": idle_drops}


def render(name: str) -> Path:
    import sqlalchemy

    folder = INCIDENTS / name
    truth = json.loads((folder / "truth.json").read_text())
    story, script = RENDER[name](truth)
    minutes = round(truth["generation_seconds"] / 60)
    common = COMMON.format(sqla=sqlalchemy.__version__, script=script, minutes=minutes, scale=truth["scale"],
                           hours=minutes * truth["scale"] / 60)  # fmt: skip
    out = folder / "README.md"
    out.write_text(story + "\n" + common)
    return out


if __name__ == "__main__":
    for name in sys.argv[1:] or RENDER:
        print(render(name))
