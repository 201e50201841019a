"""Shared fixtures: the throwaway PostgreSQL server, corpus paths, tool requirements."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgserver import PgServer, find_pg_bin, start_server

ROOT = Path(__file__).resolve().parent.parent
FILES = Path(__file__).resolve().parent / "files"
# the shared corpus sits beside the project root; LOGLIB_CORPUS points elsewhere
CORPUS = Path(
    os.environ.get("LOGLIB_CORPUS")
    or next(
        (str(p) for p in (ROOT.parent / "shared" / "corpus", Path("/work/shared/corpus")) if p.is_dir()),
        str(ROOT.parent / "shared" / "corpus"),
    )
)
# CI sets LOGLIB_REQUIRE_TOOLS=1: a missing server or tool then fails instead of skipping.
REQUIRE_TOOLS = os.environ.get("LOGLIB_REQUIRE_TOOLS") == "1"


def frames_seen(monkeypatch: pytest.MonkeyPatch, method: str) -> list[list[str]]:
    """The columns of every frame ``polars.DataFrame.<method>`` is called on from now on (memory
    tests: which columns a filter or a sort copies)."""
    import polars as pl

    seen: list[list[str]] = []
    real = getattr(pl.DataFrame, method)

    def spy(self: pl.DataFrame, *args: object, **kwargs: object) -> object:
        seen.append(self.columns)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, method, spy)
    return seen


def require(condition: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when an external tool is missing."""
    if condition:
        return
    if REQUIRE_TOOLS:
        pytest.fail(f"{what} is required (LOGLIB_REQUIRE_TOOLS=1)")
    pytest.skip(f"{what} is not installed")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, name)
    return path  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _own_parse_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own empty Parquet parse cache (loglib.cache), never the user's."""
    folder = tmp_path_factory.mktemp("loglib-cache")
    monkeypatch.setenv("LOGLIB_CACHE_DIR", str(folder))
    monkeypatch.delenv("LOGLIB_NO_CACHE", raising=False)
    return folder


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real logs (../shared/corpus)."""
    require(CORPUS.is_dir(), f"the shared corpus at {CORPUS}")
    return CORPUS


@pytest.fixture
def pg_server() -> Iterator[PgServer]:
    """A fresh PostgreSQL server with connection logging in stderr, csvlog and jsonlog."""
    require(find_pg_bin() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    server = start_server()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
