"""Generate ``data/incidents/idle-drops/``: a middlebox kills idle TCP connections.

checkout-api 3.1.0 (pool_size 5, max_overflow 5, pool_timeout 2 s, no ``pool_pre_ping``, no
``pool_recycle``) reaches PostgreSQL through a small TCP proxy (asyncio, in this generator)
standing for a NAT gateway / firewall: a connection that carries no byte in either direction
for ``IDLE_TIMEOUT`` seconds is killed with a TCP reset to both sides (``SO_LINGER`` 0).
Traffic comes in bursts; after a quiet gap longer than the timeout every pooled connection is
dead, and the next requests fail (``server closed the connection unexpectedly`` / ``Connection
reset by peer``) until SQLAlchemy has invalidated the pool. PostgreSQL logs ``could not receive
data from client: Connection reset by peer`` at the moment of each kill; ``log_statement =
'all'`` for the app's role shows each session's last activity.

Run: ``python data/generate/idle_drops.py`` (about 7 minutes, real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time

from common import Run, count, iso, iso_s, write_json, write_toml
from readme import render

from tests.pgserver import free_port

POOL = {"pool_size": 5, "max_overflow": 5, "pool_timeout": 2.0}
IDLE_TIMEOUT = 20.0  # seconds
RATE = 6.0
# (active seconds, quiet seconds after): quiet gaps above the timeout kill the pool's connections
CYCLES = ((30, 32), (20, 10), (20, 28), (25, 8), (20, 35), (20, 24), (20, 12), (25, 30), (20, 0))
SCALE = 30


class IdleKillProxy:
    """A TCP relay that resets both sides of a connection idle for ``timeout`` seconds."""

    def __init__(self, upstream_port: int, timeout: float) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.timeout = timeout
        self.kills: list[dict] = []
        self.conns: dict[int, dict] = {}
        self._n = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self.loop.create_task(self._reaper())
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _client(self, c_reader, c_writer) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.close()
            return
        self._n += 1
        key = self._n
        state = {"last": time.time(), "writers": (c_writer, u_writer), "opened": time.time(),
                 "client_port": c_writer.get_extra_info("peername")[1],
                 "server_side_port": u_writer.get_extra_info("sockname")[1]}  # fmt: skip
        self.conns[key] = state

        async def pipe(reader, writer) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await reader.read(65536):
                    state["last"] = time.time()
                    writer.write(data)
                    await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        await asyncio.gather(pipe(c_reader, u_writer), pipe(u_reader, c_writer))
        self.conns.pop(key, None)

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.time()
            for key, st in list(self.conns.items()):
                if now - st["last"] >= self.timeout:
                    self.conns.pop(key, None)
                    for w in st["writers"]:
                        sock = w.get_extra_info("socket")
                        with contextlib.suppress(OSError):
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        w.transport.abort()  # close with linger 0: a TCP reset
                    self.kills.append({"at": iso(now), "idle_since": iso(st["last"]),
                                       "opened": iso(st["opened"]), "pg_client_port": st["server_side_port"]})  # fmt: skip


def main() -> None:
    t_begin = time.time()
    with Run("idle-drops", app_args={**POOL, "version": "3.1.0"}) as run:
        proxy = IdleKillProxy(run.pg.port, IDLE_TIMEOUT)
        proxy.start()
        run.db_port = proxy.port
        import psycopg

        with psycopg.connect(run.pg.dsn, autocommit=True, application_name="setup") as c:
            c.execute("alter role checkout set log_statement = 'all'")
        start = run.start_app()
        run.wait_scraped()
        schedule = []
        t = 0.0
        for active, quiet in CYCLES:
            schedule.append((t, t + active))
            t += active + quiet
        total = t

        def rate(now: float) -> float:
            return RATE if any(a <= now < b for a, b in schedule) else 0.0

        gaps = []
        load_start = time.time()
        load = threading.Thread(target=run.load, args=(total, rate, pick))
        load.start()
        load.join()
        for (_a, b), (_, quiet) in zip(schedule, CYCLES, strict=True):
            if quiet:
                gaps.append({"start": iso(load_start + b), "end": iso(load_start + b + quiet), "seconds": quiet,
                             "longer_than_timeout": quiet > IDLE_TIMEOUT})  # fmt: skip
        time.sleep(IDLE_TIMEOUT + 2)  # the last burst's connections are reaped too
        end_kills = time.time()
        run.export(start - 10, end_kills + 5)
        run.finish()
        proxy.stop()
    res = sorted(run.results, key=lambda r: r.at)
    bursts = []
    for a, b in schedule:
        s0, s1 = load_start + a, load_start + b
        errs = [r for r in res if s0 <= r.at < s1 and r.status != 200]
        bursts.append({"start": iso(s0), "end": iso(s1), "errors": len(errs),
                       "first_error": iso(errs[0].at) if errs else None})  # fmt: skip
    truth = {
        "incident": "idle-drops",
        "scale": SCALE,
        "real_time": True,
        "window": [iso_s(start - 10), iso_s(end_kills + 5)],
        "idle_timeout_seconds": IDLE_TIMEOUT,
        "pool": {**POOL, "pool_pre_ping": False, "pool_recycle": -1},
        "request_rate_per_s_in_bursts": RATE,
        "requests": len(res),
        "status_counts": {str(s): count(res, status=s) for s in sorted({r.status for r in res})},
        "drops": len(proxy.kills),
        "kills": proxy.kills,
        "gaps": gaps,
        "bursts": bursts,
        "app_start": iso(start),
        "end": iso(end_kills),
        "generation_seconds": round(time.time() - t_begin),
    }
    events = [{"at": iso_s(start), "kind": "note",
               "text": f"checkout-api reaches PostgreSQL through a NAT gateway that drops TCP flows idle "
                       f"for {IDLE_TIMEOUT:.0f} s"}]  # fmt: skip
    truth["events"] = events
    write_toml(
        run.out / "incident.toml",
        title="Dropped database connections after quiet periods",
        window=(start - 10, end_kills + 5),
        max_connections=30,
        app={**POOL, "pool_pre_ping": False, "workers": 1, "instances": 1},  # pool_recycle: -1 (never)
        events=events,
    )
    write_json(run.out / "truth.json", truth)
    render(run.out.name)
    print({k: truth[k] for k in ("requests", "status_counts", "drops")})
    for b in bursts:
        print(b)


def pick(rng):
    if rng.random() < 0.3:
        return ("catalog", "/catalog", "GET")
    return ("order", f"/checkout?total={rng.randint(20, 900)}", "POST")


if __name__ == "__main__":
    main()
