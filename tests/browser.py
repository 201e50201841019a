"""Headless Chromium through Playwright's Python package: Debian's browser, never a downloaded one."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import require

#: what headless Chromium needs as root in a container, and nothing that reaches the network
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """Debian's chromium (or another on PATH)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium_page(*, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in headless Chromium (skips locally, fails in CI, when either is missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "playwright (pip install playwright; no browser download needed)")
    browser_path = chromium_path()
    require(browser_path is not None, "Chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:  # type: ignore[misc]
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=browser_path,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def offline(page: Any) -> list[str]:
    """Abort every request that would leave the machine; return the list of those attempted."""
    attempted: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:", "http://127.0.0.1", "ws://127.0.0.1")):
            r.continue_()
        else:
            attempted.append(url)
            r.abort()

    page.route("**/*", route)
    return attempted
