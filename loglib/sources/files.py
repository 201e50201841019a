"""The one file opener: paths, globs, directories, rotated sets, compression, decoding.

Every reader gets its input through :func:`expand_sources` and :func:`iter_line_chunks`, so
``.gz``/``.bz2``/``.xz`` files, rotated sets and in-memory bytes behave the same everywhere.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import polars as pl

from loglib.errors import NoDataError

PathsLike = str | os.PathLike | bytes | Iterable[str | os.PathLike]

T = TypeVar("T")
R = TypeVar("R")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
_ROTATION = re.compile(r"^(?P<base>.*?)\.(?P<n>\d{1,4})$")
DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024
#: lazy scans trade a little speed for memory: about 60 % of the file's size at peak on 1 GB logs
SCAN_CHUNK_BYTES = 8 * 1024 * 1024
_BZ2_BLOCK = b"1AY&SY"  # bzip2 block header (pi), after "BZh" and the block size digit
_BZ2_EOS = b"\x17rE8P\x90"  # end-of-stream marker (sqrt pi): an empty .bz2


def _decompressor(head: bytes):
    """The opener for a compressed stream, told by full magic numbers (so a text file that merely
    starts with "BZh" stays text), or None for plain text."""
    if head.startswith(b"\x1f\x8b\x08"):
        return lambda raw: gzip.GzipFile(fileobj=raw)
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (_BZ2_BLOCK, _BZ2_EOS):
        return bz2.BZ2File
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile
    return None


@dataclass(frozen=True)
class Source:
    """One input: a file on disk, or bytes handed over in memory (``name`` is then ``<bytes>``)."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    @contextmanager
    def open_raw(self) -> Iterator[io.BufferedIOBase]:
        """The decompressed byte stream (compression is told by magic bytes, not the suffix)."""
        raw: io.BufferedIOBase = (
            io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # noqa: SIM115
        )
        with raw:
            head = raw.read(10)
            raw.seek(0)
            opener = _decompressor(head)
            if opener is None:
                yield raw
                return
            with opener(raw) as stream:
                yield stream

    def head(self, n_bytes: int = 65536) -> bytes:
        """The first ``n_bytes`` of decompressed content (for format sniffing)."""
        with self.open_raw() as fh:
            try:
                return fh.read(n_bytes)
            except (EOFError, OSError, lzma.LZMAError):
                return b""


def _rotation_key(path: Path) -> tuple[str, int]:
    name = path.name
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    m = _ROTATION.match(name)
    if m:
        # logrotate: postgresql.log.2 is older than .1, which is older than postgresql.log
        return (str(path.parent / m["base"]), -int(m["n"]))
    return (str(path.parent / name), 0)


def expand_sources(paths: PathsLike) -> list[Source]:
    """Turn a path, glob, directory, list of those, or raw bytes into ordered sources.

    Rotated sets are ordered oldest first (``x.log.2.gz``, ``x.log.1``, ``x.log``); other
    files sort by name, which puts date-stamped files (``postgresql-2024-03-01.log``) in order.

    Examples
    --------
    >>> [s.name for s in expand_sources(b"one line\\n")]
    ['<bytes>']
    """
    if isinstance(paths, bytes | bytearray):
        return [Source("<bytes>", data=bytes(paths))]
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        msg = "no paths given: pass a file, a glob such as 'pg/postgresql.log*', a directory or a list"
        raise NoDataError(msg)
    found: list[Path] = []
    for item in items:
        if isinstance(item, bytes | bytearray):
            msg = "raw bytes must be passed alone, not inside a list of paths"
            raise TypeError(msg)
        p = Path(item).expanduser()
        if p.is_dir():
            matches = [c for c in p.iterdir() if c.is_file() and not c.name.startswith(".")]
        elif p.exists():
            matches = [p]
        else:
            matches = [Path(m) for m in glob.glob(str(p), recursive=True) if Path(m).is_file()]
        if not matches:
            msg = f"no file matches {str(item)!r} (looked for a file, a directory and a glob)"
            raise NoDataError(msg)
        found.extend(matches)
    unique = sorted(set(found), key=lambda q: (_rotation_key(q), str(q)))
    return [Source(str(p), path=p) for p in unique]


@dataclass
class LineChunk:
    """A run of consecutive lines of one source.

    ``lines`` is a String Series without line terminators; ``first_line`` is the 1-based
    line number of its first element. ``damage`` is set on the last chunk of a source whose
    compressed stream ended early (a truncated ``.gz``).
    """

    source: str
    first_line: int
    lines: pl.Series
    fallback_decoded: int = 0
    damage: str | None = None


def _decode(block: bytes) -> tuple[str, int]:
    """UTF-8, and per line Latin-1 for lines that are not UTF-8 (mixed encodings are normal)."""
    try:
        return block.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    parts = block.split(b"\n")
    out = []
    fallback = 0
    for part in parts:
        try:
            out.append(part.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(part.decode("latin-1"))
            fallback += 1
    return "\n".join(out), fallback


def _split_lines(text: str) -> pl.Series:
    lines = pl.Series("text", [text], dtype=pl.String).str.split("\n").explode()
    # CRLF files lose their \r; the common LF-only chunk skips the extra pass
    return lines.str.strip_suffix("\r") if "\r" in text else lines


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead of the consumer.

    Reading, decompressing and splitting the next chunk then overlaps with parsing this one
    (zlib, bz2 and polars release the GIL). Exceptions are re-raised in the consumer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, None))
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer
            q.put((done, exc))

    worker = threading.Thread(target=produce, name="loglib-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def map_ordered(fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2) -> Iterator[R]:
    """``fn(item)`` for every item in ``workers`` threads, yielded in input order.

    At most ``workers`` items are in flight, so memory stays bounded; polars releases the GIL,
    so parsing two chunks at once uses both cores. Exceptions surface in input order.
    """
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loglib-parse") as pool:
        pending: deque[Future[R]] = deque()
        for item in source:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def iter_line_chunks(source: Source, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[LineChunk]:
    """Yield the lines of ``source`` in chunks of about ``chunk_bytes`` decompressed bytes.

    Every physical line is yielded exactly once, numbered from 1; a last line without a
    newline is kept. A compressed stream that ends early yields what was readable and marks
    the last chunk with ``damage``.
    """
    next_line = 1
    carry = b""
    damage: str | None = None
    with source.open_raw() as fh:
        # small reads, so that a truncated compressed stream loses at most one read's worth
        step = min(chunk_bytes, 256 * 1024)
        while True:
            blocks: list[bytes] = []
            size = 0
            while size < chunk_bytes:
                try:
                    piece = fh.read(step)
                except (EOFError, OSError, lzma.LZMAError, ValueError) as exc:
                    damage = f"compressed stream is truncated or corrupt ({exc}); the rest of the file is unreadable"
                    piece = b""
                if not piece:
                    break
                blocks.append(piece)
                size += len(piece)
            if not blocks:
                break
            data = carry + b"".join(blocks)
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            text, fallback = _decode(data[:cut])
            lines = _split_lines(text)
            yield LineChunk(source.name, next_line, lines, fallback)
            next_line += lines.len()
            if damage:
                break
    if carry:
        text, fallback = _decode(carry)
        lines = _split_lines(text)
        yield LineChunk(source.name, next_line, lines, fallback, damage)
    elif damage:
        yield LineChunk(source.name, next_line, pl.Series("text", [], dtype=pl.String), 0, damage)
