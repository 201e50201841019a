"""The one file opener: paths, globs, directories, rotated sets, compression, decoding.

Every reader gets its input through :func:`expand_sources` and :func:`iter_line_chunks`, so
``.gz``/``.bz2``/``.xz`` files, rotated sets and in-memory bytes behave the same everywhere.
"""

from __future__ import annotations

import bz2
import glob
import io
import lzma
import os
import re
import stat
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import polars as pl

from loglib.core.progress import ByteProgress
from loglib.errors import LoglibError, NoDataError

PathsLike = str | os.PathLike | bytes | Iterable[str | os.PathLike]

T = TypeVar("T")
R = TypeVar("R")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
_ROTATION = re.compile(r"^(?P<base>.*?)\.(?P<n>\d{1,4})$")
#: eager reads: two chunks parsed at once and two read ahead are the read's scratch (16 MiB chunks
#: made a 317 MB stderr read peak about 120 MB higher, for the same CPU time)
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
#: lazy scans trade a little speed for memory: about 60 % of the file's size at peak on 1 GB logs
SCAN_CHUNK_BYTES = 8 * 1024 * 1024
_BZ2_BLOCK = b"1AY&SY"  # bzip2 block header (pi), after "BZh" and the block size digit
_BZ2_EOS = b"\x17rE8P\x90"  # end-of-stream marker (sqrt pi): an empty .bz2
#: a physical line longer than this is cut: its first MAX_LINE_KEEP bytes are kept as the line
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_LINE_KEEP = 4096
#: decompressed bytes one file may expand to before the rest is cut (a "zip bomb")
MAX_DECOMPRESSED_BYTES = 64 * 1024**3
#: byte-order marks of the encodings that are not ASCII-compatible (UTF-32 before UTF-16: FF FE 00 00)
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


class SourceError(LoglibError, OSError):
    """A path that cannot be read as a log: a FIFO, a device, a socket, a symlink loop, a file
    that cannot be opened. The message names the path and what it is."""


class _Streamed(io.RawIOBase):
    """A compressed file decompressed block by block, the way ``zcat`` does it.

    Every byte before a truncation or corruption is handed out (``GzipFile.read`` loses the
    whole read in which the stream ends); :attr:`damage` then says where the stream broke.
    Concatenated members (``cat a.gz b.gz``) are read one after the other. Output stops after
    ``limit`` bytes, with :attr:`damage` saying so.
    """

    def __init__(self, raw: io.BufferedIOBase, kind: str, *, limit: int | None = None) -> None:
        self.raw, self.kind = raw, kind
        self.limit = MAX_DECOMPRESSED_BYTES if limit is None else limit
        self.damage: str | None = None
        self.compressed_read = 0
        self.out = 0
        self._d = self._new()
        self._buf = b""
        self._done = False
        self._pending: bytes | None = None  # compressed input given but not yet decompressed

    def _new(self):
        if self.kind == "gz":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.kind == "bz2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def readable(self) -> bool:
        return True

    def _fill(self, n: int) -> None:
        """Decompress until ``n`` bytes are buffered; never more than ``n`` + 64 KiB at once."""
        while len(self._buf) < n and not self._done:
            if self.out >= self.limit:
                self.damage = (
                    f"decompressed content cut after {self.limit:,} bytes (a file that expands without end); "
                    "the rest is not read"
                )
                self._done = True
                return
            want = max(65536, n - len(self._buf))
            if self._pending is not None:
                data, self._pending = self._pending, None
            else:
                data = self.raw.read(65536)
                if not data:
                    if not getattr(self._d, "eof", False) and self.compressed_read:
                        self.damage = (
                            f"truncated .{self.kind}: the compressed stream ends early after byte "
                            f"{self.compressed_read:,} ({self.out:,} bytes decompressed); every line before that is kept"
                        )
                    self._done = True
                    return
                self.compressed_read += len(data)
            try:
                piece = self._d.decompress(data, want)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                self.damage = (
                    f"corrupt .{self.kind} near byte {self.compressed_read:,} ({exc}); the rest of the file is "
                    "unreadable; every line before that is kept"
                )
                self._done = True
                return
            self._buf += piece
            self.out += len(piece)
            if getattr(self._d, "eof", False):
                rest = self._d.unused_data
                if rest.strip(b"\x00"):  # another member follows (``cat a.gz b.gz``)
                    self._d = self._new()
                    self._pending = rest
            elif self.kind == "gz":
                self._pending = self._d.unconsumed_tail or None
            elif not self._d.needs_input:
                self._pending = b""  # bz2/lzma hold more output for the input they were given

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                piece = self.read(1 << 20)
                if not piece:
                    return b"".join(parts)
                parts.append(piece)
        self._fill(n)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


class _Recoded(io.RawIOBase):
    """A UTF-16/UTF-32 stream handed out as UTF-8, so every reader sees one encoding."""

    def __init__(self, raw: io.BufferedIOBase, encoding: str) -> None:
        import codecs

        self.raw = raw
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._buf = b""
        self._eof = False
        self.encoding = encoding
        self.damage = getattr(raw, "damage", None)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = 1 << 20 if n is None or n < 0 else n
        while len(self._buf) < n and not self._eof:
            block = self.raw.read(max(n, 65536))
            self._eof = not block
            self._buf += self.decoder.decode(block, final=self._eof).encode("utf-8")
        self.damage = getattr(self.raw, "damage", None)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _decompressor(head: bytes):
    """The opener for a compressed stream, told by full magic numbers (so a text file that merely
    starts with "BZh" stays text), or None for plain text."""
    if head.startswith(b"\x1f\x8b\x08"):
        return lambda raw: _Streamed(raw, "gz")
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (_BZ2_BLOCK, _BZ2_EOS):
        return lambda raw: _Streamed(raw, "bz2")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lambda raw: _Streamed(raw, "xz")
    return None


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16/UTF-32 told by a byte-order mark (or the NUL pattern of ASCII text without one),
    only when the start decodes to mostly-ASCII text, as every log does (random bytes do not)."""
    found = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    sample = head[:4096]
    if found is None and len(sample) >= 64:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > len(odd) * 0.9 and even.count(0) < len(even) * 0.1:
            found = "utf-16-le"
        elif even.count(0) > len(even) * 0.9 and odd.count(0) < len(odd) * 0.1:
            found = "utf-16-be"
    if found is None:
        return None
    unit = 4 if "32" in found else 2
    body = sample[: len(sample) // unit * unit]
    try:
        text = body.decode(found).lstrip("\ufeff")
    except UnicodeDecodeError:
        return None
    if not text or sum(c < "\x80" for c in text) < 0.8 * len(text):
        return None
    return found if head.startswith(tuple(b for b, _ in _BOMS)) is False else found.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Source:
    """One input: a file on disk, or bytes handed over in memory (``name`` is then ``<bytes>``)."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    #: ``(st_dev, st_ino)`` when the file was listed: the file meant, even if renamed since
    ident: tuple[int, int] | None = field(default=None, compare=False)
    #: what happened to the file while it was read (a rotation), for the read report
    notes: list[str] = field(default_factory=list, compare=False, repr=False)

    @contextmanager
    def open_raw(self) -> Iterator[io.BufferedIOBase]:
        """The decompressed byte stream as UTF-8-compatible bytes (compression is told by magic
        bytes, not the suffix; UTF-16/UTF-32 text is recoded to UTF-8)."""
        raw: io.BufferedIOBase = io.BytesIO(self.data) if self.data is not None else self._open_listed()
        with raw:
            head = raw.read(10)
            raw.seek(0)
            opener = _decompressor(head)
            stream = raw if opener is None else opener(raw)
            wide = _wide_encoding(_peek(stream))
            yield _Recoded(stream, wide) if wide else stream

    def _open_listed(self) -> io.BufferedIOBase:
        """The file that was listed, even when a rotation renamed it since (``x.log`` -> ``x.log.1``):
        a file is followed by its identity, so a logrotate during a read neither skips the lines
        that were in ``x.log`` nor reads the rotated ones twice."""
        assert self.path is not None
        fh = _open_file(self.path)
        st = os.fstat(fh.fileno())
        if self.ident is None or (st.st_dev, st.st_ino) == self.ident:
            return fh
        fh.close()
        moved = _find_ident(self.path.parent, self.ident)
        if moved is None:
            msg = (
                f"{self.name} was replaced while loglib read (a log rotation) and the file it was is "
                "gone (removed or compressed): read the file now at that path"
            )
            if msg not in self.notes:
                self.notes.append(msg)
            return _open_file(self.path)
        msg = (
            f"{self.name} was rotated while loglib read: its lines were read from {moved.name}, where "
            "the rotation moved them; lines written since are not in this read"
        )
        if msg not in self.notes:
            self.notes.append(msg)
        return _open_file(moved)

    def head(self, n_bytes: int = 65536) -> bytes:
        """The first ``n_bytes`` of decompressed content (for format sniffing)."""
        with self.open_raw() as fh:
            try:
                return fh.read(n_bytes)
            except (EOFError, OSError, lzma.LZMAError):
                return b""


def _find_ident(folder: Path, ident: tuple[int, int]) -> Path | None:
    """The file in ``folder`` whose ``(st_dev, st_ino)`` is ``ident``, or None."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ident and stat.S_ISREG(st.st_mode):
            return Path(entry.path)
    return None


def _peek(stream: io.BufferedIOBase) -> bytes:
    """The first bytes of ``stream`` without consuming them (a seekable file or a :class:`_Streamed`)."""
    if isinstance(stream, _Streamed):
        stream._fill(4096)
        return stream._buf[:4096]
    head = stream.read(4096)
    stream.seek(0)
    return head


def _open_file(path: Path) -> io.BufferedIOBase:
    """``open(path, "rb")``, refusing what is not a regular file before it can hang or run forever."""
    check_regular(path)
    try:
        return open(path, "rb")  # closed by the caller's with-block
    except OSError as exc:
        msg = f"{path}: cannot be opened ({exc.strerror or exc})"
        raise SourceError(msg) from None


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: Path) -> os.stat_result:
    """The ``stat`` of ``path`` if it is a regular file; else one clear :class:`SourceError`."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            what = "a symlink loop" if exc.errno == 40 else "a symlink to nothing"
            msg = f"{path} is {what} ({exc.strerror})"
        else:
            msg = f"{path}: {exc.strerror or exc}"
        raise SourceError(msg) from None
    if not stat.S_ISREG(st.st_mode):
        msg = f"{path} is {_kind_of(st.st_mode)}, not a log file: give a regular file (or a folder of them)"
        raise SourceError(msg)
    return st


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


def read_order(names: Iterable[str]) -> list[str]:
    """File names in the order a reader reads them: rotated sets oldest first, others by name.

    Examples
    --------
    >>> read_order(["pg/postgresql.log", "pg/postgresql.log.2.gz", "pg/postgresql.log.1"])
    ['pg/postgresql.log.2.gz', 'pg/postgresql.log.1', 'pg/postgresql.log']
    """
    return sorted(names, key=lambda name: (_rotation_key(Path(name)), name))


def expand_sources(paths: PathsLike) -> Sources:
    """Turn a path, glob, directory, list of those, or raw bytes into ordered sources.

    Rotated sets are ordered oldest first (``x.log.2.gz``, ``x.log.1``, ``x.log``); other
    files sort by name, which puts date-stamped files (``postgresql-2024-03-01.log``) in order.
    A file reached twice (``pg/../pg/x.log``, a symlink, a hard link) is read once and named in
    ``.notes``; a FIFO, device, socket or symlink loop raises :class:`SourceError`.

    Examples
    --------
    >>> [s.name for s in expand_sources(b"one line\\n")]
    ['<bytes>']
    """
    if isinstance(paths, bytes | bytearray):
        return Sources([Source("<bytes>", data=bytes(paths))])
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
        elif p.exists() or os.path.islink(p):
            check_regular(p)  # a FIFO, a device, a socket or a symlink loop: one clear line
            matches = [p]
        else:
            matches = [Path(m) for m in glob.glob(str(p), recursive=True) if Path(m).is_file()]
        if not matches:
            msg = f"no file matches {str(item)!r} (looked for a file, a directory and a glob)"
            raise NoDataError(msg)
        found.extend(matches)
    ordered = [Path(n) for n in read_order({str(q) for q in found})]
    out = Sources()
    seen: dict[tuple[int, int], str] = {}
    for path in ordered:
        st = check_regular(path)
        first = seen.setdefault((st.st_dev, st.st_ino), str(path))
        if first != str(path):  # the same file by another name (../, a symlink, a hard link)
            out.notes.append(f"{path} is the same file as {first}: read once")
            continue
        out.append(Source(str(path), path=path, ident=(st.st_dev, st.st_ino)))
    return out


class Sources(list):
    """The sources of one read, in order; ``notes`` says which paths were the same file."""

    def __init__(self, *args: Iterable[Source]) -> None:
        super().__init__(*args)
        self.notes: list[str] = []


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
    #: numbers of lines longer than MAX_LINE_BYTES, cut to their first MAX_LINE_KEEP bytes
    cut: tuple[int, ...] = ()
    #: with ``keep_body=True``: the chunk's bytes when they are exactly ``"\n".join(lines)`` (UTF-8,
    #: LF endings, no line cut), for a reader that hands them to polars whole; else None
    body: bytes | None = None


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


def _lines_of(body: bytes) -> tuple[pl.Series, int]:
    """The lines of ``body`` and how many were read as Latin-1: polars' line reader splits the
    block and checks it as UTF-8 (no Python string in between; a third of the CPU of a split of
    the whole block as one string); only a block that is not UTF-8 is decoded line by line.

    >>> _lines_of(b"a\\r\\nb\\xe9\\r\\n")[0].to_list(), _lines_of(b"a\\r\\nb\\xe9\\r\\n")[1]
    (['a', 'bé', ''], 1)
    >>> _lines_of(b"a\\r\\n\\nb")[0].to_list()
    ['a', '', 'b']
    """
    try:
        # the newline added ends the last line: a body ending in a newline keeps its empty last line
        return pl.read_lines(body + b"\n", name="text").to_series(), 0
    except pl.exceptions.ComputeError:  # "invalid utf8": some lines are in another encoding
        text, fallback = _decode(body)
    lines = pl.Series("text", [text], dtype=pl.String).str.split("\n").explode()
    # CRLF files lose their \r, as polars' line reader drops it
    return (lines.str.strip_suffix("\r") if "\r" in text else lines), fallback


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead of the consumer.

    Reading, decompressing and splitting the next chunk then overlaps with parsing this one
    (zlib, bz2 and polars release the GIL). One worker takes the items in order; what it raises
    is re-raised in the consumer, at that item (its ``Future`` carries it).
    """
    done = object()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loglib-prefetch")
    try:
        ahead: deque[Future] = deque(pool.submit(next, items, done) for _ in range(max(1, depth)))
        while True:
            item = ahead.popleft().result()
            if item is done:
                return
            ahead.append(pool.submit(next, items, done))
            yield item
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


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


def iter_line_chunks(
    source: Source, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, keep_body: bool = False
) -> Iterator[LineChunk]:
    """Yield the lines of ``source`` in chunks of about ``chunk_bytes`` decompressed bytes.

    Every physical line is yielded exactly once, numbered from 1; a last line without a
    newline is kept. LF, CRLF and CR-only (old Mac) endings all end lines. A line longer than
    :data:`MAX_LINE_BYTES` is cut to its first :data:`MAX_LINE_KEEP` bytes without ever being
    held whole (``LineChunk.cut`` names it). A compressed stream that ends early yields every
    line before the break and marks the last chunk with ``damage``. ``keep_body=True`` also
    hands over a chunk's bytes (``LineChunk.body``) when they are exactly its lines.
    """
    next_line = 1
    carry = b""
    skipping = False  # inside an over-long line: its bytes are dropped up to the next newline
    cut: list[int] = []
    sep: bytes | None = None  # b"\n", or b"\r" for a CR-only file (told from the first block)
    with source.open_raw() as fh:
        step = min(chunk_bytes, 256 * 1024)
        shown = ByteProgress(source.name, _size(source))
        while True:
            shown.update(_raw_position(fh))
            blocks: list[bytes] = []
            size = 0
            while size < chunk_bytes:
                try:
                    piece = fh.read(step)
                except (EOFError, OSError, lzma.LZMAError, ValueError) as exc:
                    fh.damage = f"compressed stream is truncated or corrupt ({exc}); the rest of the file is unreadable"  # type: ignore[attr-defined]
                    piece = b""
                if not piece:
                    break
                if sep is None:
                    sep = b"\r" if _cr_only(piece) else b"\n"
                blocks.append(piece)
                size += len(piece)
            if not blocks:
                break
            if skipping:
                data = b"".join(blocks)
                end = data.find(sep)
                if end < 0:
                    continue  # still inside the over-long line
                data, skipping = data[end + 1 :], False
                carry += sep  # the cut line ends here
                data = carry + data
            else:  # the carried line and the blocks in one copy
                data = b"".join((carry, *blocks))
            cut_at = data.rfind(sep)
            if cut_at < 0:
                if len(data) > MAX_LINE_BYTES:  # keep the start, drop the rest until the newline
                    carry, skipping = data[:MAX_LINE_KEEP], True
                    cut.append(next_line)
                else:
                    carry = data
                continue
            carry = data[cut_at + 1 :]
            if len(carry) > MAX_LINE_BYTES:
                carry = carry[:MAX_LINE_KEEP]
                skipping = True
            body = data[:cut_at]
            if sep == b"\r":
                body = body.replace(b"\r", b"\n")
            chunk = _emit(source.name, body, next_line, cut, None, keep_body=keep_body)
            yield chunk
            n_new = chunk.lines.len()  # the split's count: a second pass over the bytes is not needed
            del chunk  # not kept alive while the next block is read
            if skipping and next_line + n_new not in cut:
                cut.append(next_line + n_new)
            next_line += n_new
            cut = [c for c in cut if c >= next_line]
        damage = getattr(fh, "damage", None)
    if carry:
        yield _emit(
            source.name,
            carry.replace(b"\r", b"\n") if sep == b"\r" else carry,
            next_line,
            cut,
            damage,
            keep_body=keep_body,
        )
    elif damage:
        yield LineChunk(source.name, next_line, pl.Series("text", [], dtype=pl.String), 0, damage)


def _size(source: Source) -> int | None:
    if source.data is not None:
        return len(source.data)
    try:
        return os.stat(source.path).st_size  # type: ignore[arg-type]
    except OSError:
        return None


def _raw_position(fh: io.IOBase) -> int:
    """Bytes of the file on disk read so far (compressed bytes for a .gz), for progress lines."""
    while isinstance(fh, _Streamed | _Recoded):
        fh = fh.raw
    try:
        return fh.tell()
    except (OSError, ValueError):
        return 0


def head_lines(source: Source, n_bytes: int = 256 * 1024, limit: int = 1000) -> list[str]:
    """The first ``limit`` whole lines of ``source`` (for format sniffing), split as the readers
    split them: LF (a CR before it dropped), or CR alone in a file whose lines end in CR.

    >>> head_lines(Source("<bytes>", data=b"a 2024-01-01 10:00:00 x\\rb 2024-01-01 10:00:01 y\\rc"))
    ['a 2024-01-01 10:00:00 x', 'b 2024-01-01 10:00:01 y']
    """
    raw = source.head(n_bytes)
    parts = raw.decode("utf-8", "replace").split("\r" if _cr_only(raw) else "\n")
    return [ln.rstrip("\r") for ln in (parts[:-1] if len(parts) > 1 else parts)][:limit]


def _cr_only(head: bytes) -> bool:
    """Text whose lines end in CR alone (classic Mac OS, some network gear): no LF, two lines or
    more, mostly printable ASCII, and a first line that looks like a log line (16+ characters
    with a timestamp's digits), so random bytes and stray CRs are not taken for it."""
    if b"\n" in head or head.count(b"\r") < 2:
        return False
    sample = head[:65536]
    printable = sum(32 <= b < 127 or b in (9, 13) for b in sample)
    first = sample.split(b"\r", 1)[0]
    return printable >= 0.9 * len(sample) and len(first) >= 16 and sum(b in b"0123456789" for b in first) >= 4


def _emit(
    name: str, body: bytes, first: int, cut: list[int], damage: str | None, *, keep_body: bool = False
) -> LineChunk:
    lines, fallback = _lines_of(body)
    mine = [c - first for c in cut if first <= c < first + lines.len()]
    if mine:
        marks = pl.Series([f" [loglib: line cut at {MAX_LINE_BYTES // 1024**2} MiB]"] * len(mine))
        lines = lines.scatter(mine, lines.gather(mine) + marks)
    plain = keep_body and not fallback and not mine and b"\r" not in body
    return LineChunk(
        name, first, lines, fallback, damage, tuple(c + first for c in mine), body if plain else None
    )
