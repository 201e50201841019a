"""Blocks of whole csvlog/jsonlog records read as bytes, for the readers' polars fast path.

A plain file (not compressed, not UTF-16/32, lines ending in LF) is read in blocks of bytes that
end at a line break outside any quoted field, so polars' CSV/NDJSON reader gets the bytes as
they are: no split into lines first, no quote counting per line. Anything else is read the
general way (:func:`~loglib.sources.files.iter_line_chunks`), from the first line the blocks
could not take on (see :class:`ByLines`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from loglib.core.progress import ByteProgress
from loglib.sources.files import (
    MAX_LINE_BYTES,
    LineChunk,
    Source,
    _cr_only,
    _lines_of,
    _Recoded,
    _size,
    _Streamed,
)


@dataclass
class ByteBlock:
    """Whole physical lines of one source: ``body`` ends with a newline, except the last block of
    a file whose last line has none; ``first_line`` is the 1-based number of its first line."""

    body: bytes
    first_line: int


@dataclass
class ByLines:
    """The rest of the source, from ``first_line`` on, is read line by line (a compressed or
    re-encoded stream, a CR-only file, a record or line longer than ``MAX_LINE_BYTES``)."""

    first_line: int


def _balanced_end(data: bytes, quoted: bool) -> int:
    """The index just past the last newline of ``data`` that ends a record (outside double quotes
    when ``quoted``), or 0 when there is none.

    >>> _balanced_end(b'a,"x\\ny"\\nb,"z\\n', True), _balanced_end(b'a\\nb', False)
    (8, 2)
    """
    end = data.rfind(b"\n")
    if not quoted or end < 0:
        return end + 1
    inside = data.count(b'"') % 2  # quote parity after the end of data
    after = 0  # quotes between the newline at ``end`` and the end of data
    prev = len(data)
    while end >= 0:
        after += data.count(b'"', end + 1, prev)
        if (inside - after) % 2 == 0:
            return end + 1
        prev, end = end + 1, data.rfind(b"\n", 0, end)
    return 0


def byte_blocks(source: Source, block_bytes: int, *, quoted: bool) -> Iterator[ByteBlock | ByLines]:
    """The blocks of ``source`` in order, each about ``block_bytes`` (a record is never split);
    a :class:`ByLines` ends the stream when the rest must be read line by line.

    >>> [b.body for b in byte_blocks(Source("<bytes>", data=b'1,"a\\nb"\\n2,c\\n3'), 6, quoted=True)]
    [b'1,"a\\nb"\\n2,c\\n', b'3']
    """
    line = 1
    with source.open_raw() as fh:
        if isinstance(fh, _Streamed | _Recoded):
            yield ByLines(1)
            return
        shown = ByteProgress(source.name, _size(source))
        done = 0
        carry = b""
        while True:
            piece = fh.read(block_bytes)
            if line == 1 and not carry and _cr_only(piece[:65536]):
                yield ByLines(1)
                return
            done += len(piece)
            shown.update(done)
            data = carry + piece if carry else piece
            if not piece:
                if data:
                    yield ByteBlock(data, line)
                return
            end = _balanced_end(data, quoted)
            if end > MAX_LINE_BYTES or (end == 0 and len(data) > MAX_LINE_BYTES):
                yield ByLines(line)  # a line may be over-long: it is cut the way iter_line_chunks cuts it
                return
            if end == 0:
                carry = data
                continue
            block, carry = (data, b"") if end == len(data) else (data[:end], data[end:])
            yield ByteBlock(block, line)
            line += block.count(b"\n")


def block_lines(block: ByteBlock) -> pl.Series:
    """The lines of ``block`` as :func:`~loglib.sources.files.iter_line_chunks` gives them (the CR
    of a CRLF dropped, a line that is not UTF-8 read as Latin-1).

    >>> block_lines(ByteBlock(b"a\\r\\nb\\n", 1)).to_list()
    ['a', 'b']
    """
    body = block.body[:-1] if block.body.endswith(b"\n") else block.body
    return _lines_of(body)[0]


def from_line(chunks: Iterable[LineChunk], start: int) -> Iterator[LineChunk]:
    """``chunks`` without the lines before line ``start``.

    >>> c = LineChunk("x", 1, pl.Series(["a", "b", "c"]))
    >>> [(k.first_line, k.lines.to_list()) for k in from_line([c], 2)]
    [(2, ['b', 'c'])]
    """
    for chunk in chunks:
        if chunk.first_line >= start:
            yield chunk
        elif chunk.first_line + chunk.lines.len() > start or chunk.damage:
            skip = min(start - chunk.first_line, chunk.lines.len())
            cut = tuple(c for c in chunk.cut if c >= start)
            yield dataclasses.replace(
                chunk, first_line=start, lines=chunk.lines.slice(skip), body=None, cut=cut
            )
