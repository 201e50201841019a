"""The one browser session (kaleido + Chrome/Chromium) that draws static charts: found once, started once.

The browser is looked up once (``LOGLIB_BROWSER``, then kaleido's ``BROWSER_PATH``, then
``chromium``, ``chromium-browser``, ``google-chrome`` … on ``PATH``); when there is none the error
says how to install one, and every wait on the browser has a timeout, so nothing hangs. Nothing is
ever downloaded. :func:`browser_session` is the process-wide session every export shares.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import threading
from collections.abc import Sequence
from typing import Any

from loglib.errors import LoglibError

#: executables tried, in order, when no browser is named
BROWSER_NAMES: tuple[str, ...] = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "microsoft-edge",
)
_WELL_KNOWN = (
    "/usr/bin/chromium",
    "/usr/lib/chromium/chromium",
    "/snap/bin/chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
)
INSTALL_HINT = (
    "install one: `apt-get install chromium` (Debian/Ubuntu), `dnf install chromium` (Fedora), "
    "`brew install --cask chromium` (macOS), or point LOGLIB_BROWSER at a Chrome/Chromium executable"
)
#: seconds to wait for the browser to start, and for one image
START_TIMEOUT = 60.0
RENDER_TIMEOUT = 60.0


class BrowserNotFoundError(LoglibError, RuntimeError):
    """No Chrome/Chromium for kaleido to draw static images with; the message says how to install one."""


class ExportError(LoglibError, RuntimeError):
    """The browser started but could not draw a figure (or took longer than the timeout)."""


def _wait(coroutine: Any, loop: asyncio.AbstractEventLoop, timeout: float) -> Any:
    """Run ``coroutine`` on the browser's event loop and wait at most ``timeout`` seconds for it.

    Raises
    ------
    ExportError
        On the timeout (``__cause__`` is the ``TimeoutError``) or whatever kaleido raised.
    """
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    try:
        return future.result(timeout=timeout)
    except TimeoutError as exc:
        future.cancel()
        msg = f"did not finish within {timeout:g} s"
        raise ExportError(msg) from exc
    # blanket on purpose (3 of 3 in loglib/): kaleido and its browser driver
    # raise their own exception types; each is re-raised as an ExportError with the cause
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}"
        raise ExportError(msg) from exc


def find_browser() -> str:
    """The Chrome/Chromium executable kaleido will use (never downloads one).

    Looked up in order: ``LOGLIB_BROWSER``, ``BROWSER_PATH`` (kaleido's own variable), the
    names in :data:`BROWSER_NAMES` on ``PATH``, well-known install locations.

    Raises
    ------
    BrowserNotFoundError
        When a variable names a file that is not an executable, or nothing is found.
    """
    for var in ("LOGLIB_BROWSER", "BROWSER_PATH"):
        value = os.environ.get(var)
        if value:
            path = shutil.which(value) or value
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                msg = f"{var}={value!r} is not an executable Chrome/Chromium; fix the variable or {INSTALL_HINT}"
                raise BrowserNotFoundError(msg)
            return path
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for path in _WELL_KNOWN:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    msg = f"no Chrome/Chromium found for static chart export (PNG/SVG/PDF); {INSTALL_HINT}. HTML export needs no browser."
    raise BrowserNotFoundError(msg)


class BrowserSession:
    """One headless browser (kaleido) for many figures; a context manager, or the shared one.

    Use :func:`browser_session` for the process-wide session that every export shares; it is
    closed at exit. ``starts`` counts browser launches across all sessions (for tests).

    Examples
    --------
    >>> from loglib.present.export import BrowserSession
    >>> with BrowserSession() as session:                                  # doctest: +SKIP
    ...     session.write([(fig1, "a.png", "png"), (fig2, "b.svg", "svg")])
    """

    starts = 0

    def __init__(self, *, browser: str | None = None, timeout: float = RENDER_TIMEOUT) -> None:
        self.browser = browser or find_browser()
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while the browser is running."""
        return self._kaleido is not None

    def open(self) -> BrowserSession:
        """Start the browser (once); raises :class:`ExportError` if it does not come up in time."""
        if self.is_open:
            return self
        try:
            from kaleido import Kaleido
        except ImportError:  # pragma: no cover - kaleido is a dependency
            msg = "static chart export needs kaleido: `pip install kaleido` (and a Chrome/Chromium)"
            raise ExportError(msg) from None
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="loglib-kaleido", daemon=True)
        thread.start()

        async def start() -> Any:
            k = Kaleido(path=self.browser, mathjax=False, timeout=self.timeout)
            await k.open()
            return k

        try:
            self._kaleido = _wait(start(), loop, START_TIMEOUT)
        except ExportError as exc:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            kind = (
                f"did not start within {START_TIMEOUT:g} s"
                if isinstance(exc.__cause__, TimeoutError)
                else f"failed to start ({exc})"
            )
            msg = f"the browser {self.browser!r} {kind}; {INSTALL_HINT}"
            raise ExportError(msg) from exc.__cause__
        self._loop, self._thread = loop, thread
        BrowserSession.starts += 1
        return self

    def write(
        self,
        jobs: Sequence[tuple[Any, str | os.PathLike, str]],
        *,
        scale: float = 2,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        """Draw ``(figure, path, format)`` jobs in this one browser (PNG at ``scale``, SVG/PDF at 1)."""
        self.open()
        objs = []
        for fig, path, fmt in jobs:
            w = width or _layout_size(fig, "width", 1000)
            h = height or _layout_size(fig, "height", 520)
            opts = {"format": fmt, "scale": scale if fmt == "png" else 1, "width": w, "height": h}
            objs.append({"fig": fig, "path": str(path), "opts": opts})
        with self._lock:
            try:
                _wait(
                    self._kaleido.write_fig_from_object(objs, cancel_on_error=True),
                    self._loop,
                    self.timeout * max(1, len(objs)) + 10,
                )
            except ExportError as exc:
                what = (
                    f"took longer than {self.timeout:g} s each"
                    if isinstance(exc.__cause__, TimeoutError)
                    else f"failed ({exc})"
                )
                msg = f"drawing {len(objs)} figure(s) {what}"
                raise ExportError(msg) from exc.__cause__

    def close(self) -> None:
        """Stop the browser."""
        if not self.is_open:
            return
        loop, k = self._loop, self._kaleido
        self._kaleido = None
        with contextlib.suppress(ExportError):  # a browser that will not close cleanly is stopped below
            _wait(k.close(), loop, 15)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> BrowserSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _layout_size(fig: Any, key: str, default: int) -> int:
    """The figure's own width/height, else its template's, else ``default``."""
    layout = getattr(fig, "layout", None)
    if layout is None:
        return default
    own = getattr(layout, key, None)
    if own:
        return int(own)
    template = getattr(layout, "template", None)
    value = getattr(getattr(template, "layout", None), key, None) if template is not None else None
    return int(value) if value else default


_SHARED: BrowserSession | None = None
_SHARED_LOCK = threading.Lock()


def browser_session() -> BrowserSession:
    """The process-wide browser session (started on first use, closed at exit)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or not _SHARED.is_open:
            _SHARED = BrowserSession().open()
            atexit.register(_SHARED.close)
        return _SHARED


def close_browser() -> None:
    """Close the shared browser session, if one is open."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is not None:
            _SHARED.close()
            _SHARED = None
