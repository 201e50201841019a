"""The one opener on hostile input (issues 13 and 19): special files, loops, twins, damage, odd encodings."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

import loglib as ll
from loglib.sources import files
from loglib.sources.files import SourceError, expand_sources, iter_line_chunks

PG = b"2024-03-01 10:00:%02d.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\n"


def pg_lines(n: int) -> bytes:
    return b"".join(PG % (i % 60) for i in range(n))


def read_pg(paths: object) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        return ll.read_pg_log(paths, raise_if_empty=False)


class TestSpecialFiles:
    """FIFOs, devices and symlink loops are one clear line; a folder still means the logs in it."""

    def test_fifo_is_refused_without_hanging(self, tmp_path: Path) -> None:
        """A FIFO nobody writes to is refused at once instead of hanging forever."""
        fifo = tmp_path / "pipe.log"
        os.mkfifo(fifo)
        with pytest.raises(SourceError, match="FIFO"):
            read_pg(fifo)

    @pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
    def test_device_is_refused(self, device: str) -> None:
        """Devices never run until killed: one line naming what the path is."""
        with pytest.raises(SourceError, match="character device"):
            read_pg(device)

    def test_symlink_loop(self, tmp_path: Path) -> None:
        """A symlink loop says so."""
        (tmp_path / "a.log").symlink_to(tmp_path / "b.log")
        (tmp_path / "b.log").symlink_to(tmp_path / "a.log")
        with pytest.raises(SourceError, match="symlink loop"):
            read_pg(tmp_path / "a.log")

    def test_folder_with_a_fifo_reads_its_logs(self, tmp_path: Path) -> None:
        """A folder means the regular files in it: a FIFO beside them is passed over."""
        (tmp_path / "postgresql.log").write_bytes(pg_lines(3))
        os.mkfifo(tmp_path / "pipe")
        assert read_pg(tmp_path).height == 3

    def test_cli_says_it_in_one_line(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        """``loglib connections /dev/zero``: one line, exit 2."""
        from loglib import cli

        assert cli.main(["connections", "/dev/zero"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "character device" in err[0]


class TestSameFileTwice:
    """The same file through ``../``, a symlink or a hard link is read once, with a note."""

    def test_twins_read_once(self, tmp_path: Path) -> None:
        """Rows are not doubled, and the report names the twins."""
        pg = tmp_path / "pg"
        pg.mkdir()
        log = pg / "postgresql.log"
        log.write_bytes(pg_lines(5))
        (tmp_path / "link.log").symlink_to(log)
        os.link(log, tmp_path / "hard.log")
        df = read_pg([str(log), str(tmp_path / "pg" / ".." / "pg" / "postgresql.log"), str(tmp_path / "link.log"),
                      str(tmp_path / "hard.log")])  # fmt: skip
        assert df.height == 5
        notes = ll.read_report(df).notes
        assert sum("same file" in n for n in notes) == 3


class TestDamagedArchives:
    """A truncated archive keeps every line ``zcat`` recovers, and says where it ends."""

    @pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
    def test_truncated_gz_is_zcat_equivalent(self, tmp_path: Path, keep: float) -> None:
        """Every complete line zcat prints from a cut .gz is read (issue 13: 0 of 48 were kept)."""
        whole = gzip.compress(pg_lines(5000))
        cut = tmp_path / "postgresql.log.gz"
        cut.write_bytes(whole[: int(len(whole) * keep)])
        if shutil.which("zcat") is None:
            pytest.skip("zcat is not installed")
        zcat = subprocess.run(["zcat", str(cut)], capture_output=True).stdout
        complete = zcat.count(b"\n")
        df = read_pg(cut)
        assert df.height >= complete
        reasons = ll.rejects(df)["reason"].to_list()
        assert any("truncated" in r and "after byte" in r for r in reasons), reasons

    def test_concatenated_members(self, tmp_path: Path) -> None:
        """``cat a.gz b.gz`` is read whole, like zcat does."""
        f = tmp_path / "x.log.gz"
        f.write_bytes(gzip.compress(pg_lines(3)) + gzip.compress(pg_lines(4)))
        assert read_pg(f).height == 7

    def test_runaway_decompression_is_cut(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A small .gz that expands without end is cut at the limit and the cut is counted."""
        monkeypatch.setattr(files, "MAX_DECOMPRESSED_BYTES", 1 << 20)
        f = tmp_path / "bomb.log.gz"
        f.write_bytes(gzip.compress(pg_lines(200_000)))  # ~17 MB from ~100 kB
        df = read_pg(f)
        assert 0 < df.height < 200_000
        assert ll.rejects(df)["reason"].str.contains("cut after").any()


class TestLines:
    """Line endings, over-long lines and encodings."""

    def test_cr_only_endings(self) -> None:
        """CR-only line endings are line endings (not one entry for the whole file)."""
        data = pg_lines(4).replace(b"\n", b"\r")
        assert read_pg(data).height == 4

    @pytest.mark.parametrize(
        "line",
        [
            '{"level":30,"time":1700000000%03d,"pid":1,"hostname":"h","msg":"request %d"}',  # pino
            "2023-11-14 22:13:20,%03d INFO app.web: request %d",  # Python logging
        ],
    )
    def test_cr_only_app_logs(self, line: str) -> None:
        """An app log with CR-only endings is sniffed and read line by line as with LF: JSON
        lines too (their format was sniffed from one 'line' holding the whole file, and rejected)."""
        lines = [line % (i, i) for i in range(40)]
        df = ll.read_app_log("\r".join(lines).encode() + b"\r", tz="UTC")
        assert (
            df.height == 40 and df["message"].to_list()[-1] == "request 39" and df["line"].to_list()[-1] == 40
        )
        assert ll.rejects(df).height == 0

    @pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
    def test_utf16_and_utf32_are_read(self, encoding: str) -> None:
        """UTF-16/UTF-32 logs (with a byte-order mark, or UTF-16 LE without) are read like UTF-8."""
        data = pg_lines(4).decode().encode(encoding)
        assert read_pg(data).height == 4

    def test_overlong_line_is_cut_with_memory_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A line past the limit is one line, cut, never held whole; the lines around it survive."""
        monkeypatch.setattr(files, "MAX_LINE_BYTES", 1 << 20)
        data = pg_lines(2) + b"x" * (5 << 20) + b"\n" + pg_lines(3)
        src = expand_sources(data)[0]
        chunks = list(iter_line_chunks(src, chunk_bytes=256 * 1024))
        lines = [t for c in chunks for t in c.lines.to_list()]
        assert len(lines) == 6
        assert max(len(t) for t in lines) <= files.MAX_LINE_KEEP + 64
        assert [n for c in chunks for n in c.cut] == [3]
        df = read_pg(data)
        report = ll.read_report(df)
        assert report.lines_read == 6 and df.height >= 5

    def test_overlong_line_without_newline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file that is one endless line (a sparse file, /dev/zero copied) ends as one cut line."""
        monkeypatch.setattr(files, "MAX_LINE_BYTES", 1 << 20)
        src = expand_sources(b"\x00" * (4 << 20))[0]
        chunks = list(iter_line_chunks(src, chunk_bytes=256 * 1024))
        assert sum(c.lines.len() for c in chunks) == 1 and [n for c in chunks for n in c.cut] == [1]


class TestChunkBody:
    """``keep_body=True`` hands a chunk's bytes over only when they are exactly its lines (issue 17)."""

    @pytest.mark.parametrize(
        ("data", "plain"),
        [
            (b"a\nb\n", True),
            (b"a\nb", True),  # no newline at the end
            (b"a\r\nb\r\n", False),  # CRLF: the lines lost their CR
            (b"2024-03-01 10:00:00 first\r2024-03-01 10:00:01 second\r", True),  # CR-only: read as LF
            (b"a\rb\n", False),  # a CR inside a line
            (b"caf\xe9\nb\n", False),  # Latin-1: the lines are not these bytes
        ],
    )
    def test_body_is_the_lines_or_none(self, data: bytes, plain: bool) -> None:
        """A body is kept only when it is ``"\\n".join(lines)`` in UTF-8."""
        src = expand_sources(data)[0]
        for chunk in iter_line_chunks(src, keep_body=True):
            if plain:
                assert chunk.body == "\n".join(chunk.lines.to_list()).encode()
            else:
                assert chunk.body is None
        assert all(c.body is None for c in iter_line_chunks(src))

    def test_cut_line_keeps_no_body(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A chunk with a cut line (its mark added) keeps no body."""
        monkeypatch.setattr(files, "MAX_LINE_BYTES", 1 << 20)
        src = expand_sources(pg_lines(2) + b"x" * (3 << 20) + b"\n" + pg_lines(3))[0]
        chunks = list(iter_line_chunks(src, chunk_bytes=256 * 1024, keep_body=True))
        assert all(c.body is None for c in chunks if c.cut)
        for c in chunks:
            if c.body is not None:
                assert c.body == "\n".join(c.lines.to_list()).encode()
