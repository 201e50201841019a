"""Progress of long steps (reading, sessions, detectors, charts), on the ``loglib.progress`` logger.

Steps that end within :data:`QUIET_FOR` seconds say nothing, so small incidents stay quiet; a
longer one says ``… still <step> (12 s)`` every :data:`EVERY` seconds and ``<step>: done in
14.2 s`` at its end; reads say how many bytes of the file were read. Where the lines go:

* the CLI shows them on stderr (``-q`` for none): :func:`to_stream`;
* a notebook kernel run by ``loglib report`` appends them to ``$LOGLIB_PROGRESS_FILE`` (the
  kernel's log), which the CLI follows and prints, so a long cell is not silent;
* in a kernel of your own (JupyterLab, nbclient, papermill) they go to the kernel's log, its
  own stderr: JupyterLab's server log, or the terminal nbclient runs in (``LOGLIB_PROGRESS=0``:
  none); ``loglib.core.progress.to_stream(sys.stdout)`` shows them in the cell instead.

Examples
--------
>>> from loglib.core.progress import step
>>> with step("pairing PostgreSQL sessions"):
...     pass
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

logger = logging.getLogger("loglib.progress")
#: a step shorter than this prints nothing (``$LOGLIB_PROGRESS_QUIET_FOR`` changes it)
QUIET_FOR = float(os.environ.get("LOGLIB_PROGRESS_QUIET_FOR", "2"))
#: seconds between "still …" lines, and between "reading …: x of y MB" lines
EVERY = 5.0
_START_WALL = time.time()


def say(line: str) -> None:
    """Log one progress line (INFO on ``loglib.progress``)."""
    logger.info(line)


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Time ``what``: silent when quick, a heartbeat while long, its duration at its end."""
    if not logger.isEnabledFor(logging.INFO):
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        if done.wait(QUIET_FOR):
            return
        say(f"{what} …")
        while not done.wait(EVERY):
            say(f"… still {what} ({time.monotonic() - start:.0f} s)")

    watcher = threading.Thread(target=beat, name="loglib-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        took = time.monotonic() - start
        if took >= QUIET_FOR:
            say(f"{what}: done in {took:.1f} s")


class ByteProgress:
    """``reading NAME: 412 of 1,024 MB (40 %)``, at most every :data:`EVERY` seconds."""

    def __init__(self, name: str, total: int | None) -> None:
        self.name, self.total = name, total
        self.start = self.last = time.monotonic()
        self.on = logger.isEnabledFor(logging.INFO)

    def update(self, done: int) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self.last < EVERY or now - self.start < QUIET_FOR:
            return
        self.last = now
        rate = done / 1e6 / max(now - self.start, 1e-9)
        if self.total:
            say(f"reading {self.name}: {done / 1e6:,.0f} of {self.total / 1e6:,.0f} MB "
                f"({100 * done / self.total:.0f} %, {rate:,.0f} MB/s)")  # fmt: skip
        else:
            say(f"reading {self.name}: {done / 1e6:,.0f} MB ({rate:,.0f} MB/s)")


class _Elapsed(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{record.created - _START_WALL:5.1f}s] {record.getMessage()}"


def to_stream(stream: TextIO | None = None) -> logging.Handler:
    """Show progress lines on ``stream`` (stderr), each with the seconds since loglib was imported."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Elapsed())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def _to_file_from_env() -> None:
    """``$LOGLIB_PROGRESS_FILE``: append progress lines there (a kernel run by ``loglib report``)."""
    path = os.environ.get("LOGLIB_PROGRESS_FILE")
    if not path:
        return
    with contextlib.suppress(OSError):  # no progress is no reason to fail the notebook
        handler = logging.FileHandler(path, mode="a", encoding="utf-8", delay=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _in_kernel() -> bool:
    """True inside a Jupyter (ipykernel) kernel: JupyterLab's, or one nbclient/papermill started."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and "ipykernel" in sys.modules and type(get()).__name__ == "ZMQInteractiveShell"


def _to_kernel_log() -> None:
    """In a kernel of your own: progress lines go to the kernel's log (its own stderr, which
    JupyterLab's server log and the terminal that runs nbclient/papermill show), not into
    cell outputs. ``LOGLIB_PROGRESS=0`` turns it off; a handler you added first wins."""
    if os.environ.get("LOGLIB_PROGRESS", "") == "0" or logger.handlers or not _in_kernel():
        return
    stream = sys.__stderr__
    if stream is None:  # pragma: no cover - a kernel without a stderr
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Elapsed())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


_to_file_from_env()
_to_kernel_log()
