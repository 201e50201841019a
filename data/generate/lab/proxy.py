"""A middlebox between the app and PostgreSQL that resets connections idle for ``timeout`` seconds.

Stands for a NAT gateway, firewall or cloud load balancer: a TCP relay (asyncio, in a thread of
the recorder) that, when a connection has carried no byte in either direction for ``timeout``
seconds, closes both sides with ``SO_LINGER`` 0 (a TCP reset). Each drop is written to its
truth stream (JSON lines) with the connection's idle age, its age and both ports.

>>> p = IdleKillProxy(upstream_port=1, timeout=20.0, truth_path="/tmp/drops.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.pgserver import free_port


class IdleKillProxy:
    """A TCP relay on a free loopback port that resets both sides of a connection idle for ``timeout`` s."""

    def __init__(self, upstream_port: int, timeout: float, truth_path: Path) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.timeout = timeout
        self.truth = open(truth_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
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
        self.truth.close()

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
        now = time.time()
        state = {"last": now, "opened": now, "writers": (c_writer, u_writer),
                 "app_port": c_writer.get_extra_info("peername")[1],
                 "pg_client_port": u_writer.get_extra_info("sockname")[1]}  # fmt: skip
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
            await asyncio.sleep(0.2)
            now = time.time()
            for key, st in list(self.conns.items()):
                if now - st["last"] < self.timeout:
                    continue
                self.conns.pop(key, None)
                for w in st["writers"]:
                    sock = w.get_extra_info("socket")
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    w.transport.abort()  # linger 0: a TCP reset to both sides
                self.truth.write(json.dumps({
                    "t": now, "ev": "drop", "idle_s": round(now - st["last"], 3), "age_s": round(now - st["opened"], 3),
                    "last": st["last"], "app_port": st["app_port"], "pg_client_port": st["pg_client_port"],
                }) + "\n")  # fmt: skip
