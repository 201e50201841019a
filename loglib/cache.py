"""Parse once per incident, across processes: a Parquet cache of each source's parsed frame.

``loglib report`` reads every source in the CLI (to fail fast on a bad one) and again in the
notebook's kernel; a notebook re-run reads them again. :func:`cached_read` keeps each reader's
frame (canonical schema, as Parquet) and its :class:`~loglib.ReadReport` in a user cache
folder, keyed by the files' identity (device, inode, size, mtime), the reader and its
options, and the code of loglib's parsing layers, so a second read of unchanged files loads
Parquet instead of parsing text, in any process.

* Where: ``$LOGLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/loglib``, else ``~/.cache/loglib``:
  outside the incident folder, so it is never shared or bundled with it.
* Off: ``LOGLIB_NO_CACHE=1`` (``loglib report --no-cache``); cleared by ``loglib cache clear``
  (:func:`clear_cache`). At most :data:`MAX_BYTES` are kept; the least recently used go first.
* Secrets: the cache holds the parsed logs as they are, like the logs themselves (mode 0700).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from loglib.core.rejects import ReadReport, finish_read, read_report
from loglib.core.schema import REJECTS, conform
from loglib.sources.files import expand_sources

#: bump when the cached layout changes (2: the metrics frame's text columns are Categorical; 3: the
#: event frames' repeated text columns too)
FORMAT = 3
#: the cache keeps at most this many bytes (override with LOGLIB_CACHE_MAX_MB)
MAX_BYTES = 20 * 1024**3
#: a frame smaller than this many input bytes is not worth a Parquet round trip
MIN_INPUT_BYTES = 1 << 20
#: the packages whose code decides what a reader returns: a change there is a new cache
_PARSING_CODE = ("sources", "core", "formats")


def cache_dir() -> Path:
    """The cache folder: ``$LOGLIB_CACHE_DIR``, ``$XDG_CACHE_HOME/loglib`` or ``~/.cache/loglib``.

    Examples
    --------
    >>> import os
    >>> os.environ["LOGLIB_CACHE_DIR"] = "/tmp/loglib-cache"
    >>> str(cache_dir())
    '/tmp/loglib-cache'
    """
    explicit = os.environ.get("LOGLIB_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "loglib"


def cache_enabled() -> bool:
    """False when ``LOGLIB_NO_CACHE`` is set to anything but ``0`` or an empty string."""
    return os.environ.get("LOGLIB_NO_CACHE", "") in ("", "0")


@dataclass(frozen=True)
class CacheStats:
    """What the cache holds: ``entries`` frames in ``bytes`` bytes at ``folder``."""

    folder: Path
    entries: int
    bytes: int

    def __str__(self) -> str:
        return f"{self.entries} cached frame(s), {self.bytes / 1e6:,.1f} MB in {self.folder}"


def cache_stats() -> CacheStats:
    """How many frames the cache holds and their size."""
    folder = cache_dir()
    metas = list(folder.glob("*.json")) if folder.is_dir() else []
    size = sum(p.stat().st_size for p in folder.glob("*") if p.is_file()) if folder.is_dir() else 0
    return CacheStats(folder, len(metas), size)


def clear_cache() -> CacheStats:
    """Remove every cached frame (only the files loglib writes there); return what was removed.

    Examples
    --------
    >>> print(clear_cache())  # doctest: +SKIP
    3 cached frame(s), 182.4 MB in /home/me/.cache/loglib
    """
    before = cache_stats()
    if before.folder.is_dir():
        for p in before.folder.iterdir():
            if p.is_file() and p.name.startswith("v") and p.suffix in (".json", ".parquet", ".tmp"):
                p.unlink(missing_ok=True)
    return before


_code_key: str | None = None


def _code_version() -> str:
    """A digest of the parsing layers' files (names, sizes, mtimes): new code, new cache."""
    global _code_key
    if _code_key is None:
        from loglib import __version__

        root = Path(__file__).resolve().parent
        h = hashlib.sha256(__version__.encode())
        for sub in _PARSING_CODE:
            for p in sorted((root / sub).rglob("*.py")):
                st = p.stat()
                h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        _code_key = h.hexdigest()[:16]
    return _code_key


def _identity(paths: Sequence[str]) -> tuple[list[list[Any]], int]:
    files, total = [], 0
    for src in expand_sources(list(paths)):
        st = os.stat(src.path)
        files.append([os.path.realpath(src.path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns])
        total += st.st_size
    return files, total


def cache_key(fn: Callable[..., Any], paths: Sequence[str], options: Mapping[str, Any]) -> tuple[str, int]:
    """The key of a read (files' identity + reader + options + code) and the input's bytes."""
    files, total = _identity(paths)
    doc = {
        "format": FORMAT,
        "code": _code_version(),
        "reader": f"{fn.__module__}.{fn.__qualname__}",
        "options": sorted((k, repr(v)) for k, v in options.items()),
        "files": files,
    }
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:32], total


def _report_doc(report: ReadReport) -> dict[str, Any]:
    return {
        "reader": report.reader,
        "files": report.files,
        "format": report.format,
        "lines_read": report.lines_read,
        "lines_parsed": report.lines_parsed,
        "entries": report.entries,
        "notes": report.notes,
    }


def without_null_buffers(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with each column that holds only nulls as one null scalar instead of a buffer.

    A reader's frame has a column for every field of its schema, and a log that never writes one
    (``sqlstate``, ``session_id``, ``detail`` in a stderr log) still pays its row width for it: a
    String column of nulls is a 16-byte view per row (85 MB for 5.3 M rows). As a scalar column
    it costs nothing until an operation needs it materialised. The frame is equal to the input
    (``assert_frame_equal``): same columns, dtypes and values.

    Examples
    --------
    >>> frame = pl.DataFrame({"a": [1, 2], "b": pl.Series([None, None], dtype=pl.String)})
    >>> without_null_buffers(frame).equals(frame)
    True
    """
    empty = [name for name, col in zip(frame.columns, frame.get_columns(), strict=True)
             if frame.height and col.null_count() == frame.height]  # fmt: skip
    if not empty:
        return frame
    return frame.with_columns(pl.lit(None, dtype=frame.schema[name]).alias(name) for name in empty)


def _load(stem: Path) -> pl.DataFrame | None:
    meta, frame_file, rejects_file = (
        stem.with_suffix(".json"),
        stem.with_suffix(".parquet"),
        stem.with_name(stem.name + "-rejects.parquet"),
    )
    try:
        doc = json.loads(meta.read_text())
        frame = pl.read_parquet(frame_file)
        rejects = pl.read_parquet(rejects_file) if doc.get("has_report") else None
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None  # not there, or half written by a run that died: read the files instead
    with contextlib.suppress(OSError):
        os.utime(meta)  # least recently used goes first
    frame = without_null_buffers(frame)
    if rejects is None:
        return frame
    return finish_read(frame, _stored_report(doc, rejects), strict=False, stacklevel=4)


def _stored_report(doc: dict, rejects: pl.DataFrame) -> ReadReport:
    """The :class:`ReadReport` an entry's meta and rejects files hold, saying where it came from."""
    report = ReadReport(**doc["report"])
    report.rejects = rejects
    report.notes = [*report.notes, "read from loglib's parse cache (the files are unchanged since)"]
    return report


def _load_report(stem: Path) -> tuple[bool, ReadReport | None]:
    """``(found, report)`` of a cache entry without its frame: the meta and rejects files only."""
    try:
        doc = json.loads(stem.with_suffix(".json").read_text())
        if not stem.with_suffix(".parquet").is_file():
            return False, None
        if not doc.get("has_report"):
            return True, None
        rejects = pl.read_parquet(stem.with_name(stem.name + "-rejects.parquet"))
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return False, None
    with contextlib.suppress(OSError):
        os.utime(stem.with_suffix(".json"))
    return True, _stored_report(doc, conform(rejects, REJECTS).sort("file", "line", maintain_order=True))


def _store(stem: Path, frame: pl.DataFrame) -> None:
    try:
        report = read_report(frame)
    except KeyError:
        report = None
    stem.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pid = os.getpid()
    tmp_frame = stem.with_name(f"{stem.name}.{pid}.tmp")
    tmp_rejects = stem.with_name(f"{stem.name}-rejects.{pid}.tmp")
    tmp_meta = stem.with_name(f"{stem.name}.json.{pid}.tmp")
    frame.write_parquet(tmp_frame, compression="lz4", statistics=False)
    doc: dict[str, Any] = {"has_report": report is not None, "written": time.time()}
    if report is not None:
        report.rejects.write_parquet(tmp_rejects)
        doc["report"] = _report_doc(report)
        os.replace(tmp_rejects, stem.with_name(stem.name + "-rejects.parquet"))
    tmp_meta.write_text(json.dumps(doc))
    os.replace(tmp_frame, stem.with_suffix(".parquet"))
    os.replace(tmp_meta, stem.with_suffix(".json"))  # last: the entry exists once this is there
    _evict(stem.parent)


def _evict(folder: Path) -> None:
    limit = int(os.environ.get("LOGLIB_CACHE_MAX_MB", MAX_BYTES // 2**20)) * 2**20
    entries = []
    for meta in folder.glob("v*.json"):
        parts = list(folder.glob(meta.stem + "*"))
        with contextlib.suppress(OSError):
            entries.append((meta.stat().st_mtime, sum(p.stat().st_size for p in parts), parts))
    total = sum(size for _, size, _ in entries)
    for _, size, parts in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        for p in parts:
            p.unlink(missing_ok=True)
        total -= size


def cached_read(
    fn: Callable[..., pl.DataFrame],
    paths: Sequence[str],
    options: Mapping[str, Any],
    *,
    use_cache: bool | None = None,
) -> pl.DataFrame:
    """``fn(paths, **options)``, from the Parquet cache when these files were read so before.

    The frame comes back with its :class:`~loglib.ReadReport` (``loglib.read_report`` works,
    and rejected lines warn as on a fresh read); its notes say it came from the cache. Inputs
    under :data:`MIN_INPUT_BYTES` are always parsed (faster than a Parquet round trip).

    Examples
    --------
    >>> import loglib as ll
    >>> from loglib.cache import cached_read
    >>> pg = cached_read(ll.read_pg_log, ["pg/postgresql.log"], {"prefix": "%m [%p] "})  # doctest: +SKIP
    """
    if use_cache is None:
        use_cache = cache_enabled()
    if not use_cache:
        return fn(list(paths), **options)
    key, size = cache_key(fn, paths, options)
    if size < MIN_INPUT_BYTES:
        return fn(list(paths), **options)
    stem = cache_dir() / f"v{FORMAT}-{key}"
    frame = _load(stem)
    if frame is not None:
        return frame
    frame = fn(list(paths), **options)
    try:
        _store(stem, frame)
    except (OSError, pl.exceptions.PolarsError) as exc:  # a full or read-only cache: the read succeeded
        warnings.warn(f"loglib's parse cache {stem.parent} cannot be written ({exc}); going on without it",
                      stacklevel=2)  # fmt: skip
    return frame


def cached_read_report(
    fn: Callable[..., pl.DataFrame], paths: Sequence[str], options: Mapping[str, Any]
) -> ReadReport | None:
    """The :class:`~loglib.ReadReport` of ``fn(paths, **options)`` with the frame left in the cache.

    What ``loglib report`` needs before its kernel runs: every source checked (a bad one fails
    here, with its message) and counted, without holding the frames in this process. A cache hit
    loads only the entry's report and rejects (a few KB), not its Parquet frame; a miss parses,
    stores the frame in the cache and drops it. None for a reader without a report (pool
    events, ``pg_activity``). Inputs the cache does not keep (under :data:`MIN_INPUT_BYTES`,
    or with the cache off) are parsed and dropped likewise.

    Examples
    --------
    >>> import loglib as ll
    >>> from loglib.cache import cached_read_report
    >>> cached_read_report(ll.read_pg_log, ["pg/postgresql.log"], {}).lines_read  # doctest: +SKIP
    7021408
    """
    if cache_enabled():
        key, size = cache_key(fn, paths, options)
        if size >= MIN_INPUT_BYTES:
            found, report = _load_report(cache_dir() / f"v{FORMAT}-{key}")
            if found:
                return report
    frame = cached_read(fn, paths, options)
    try:
        return read_report(frame)
    except KeyError:
        return None


__all__ = [
    "CacheStats",
    "cache_dir",
    "cache_enabled",
    "cache_stats",
    "cached_read",
    "cached_read_report",
    "clear_cache",
]
