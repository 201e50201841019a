"""Every line counted once (issue 19): twin sources, rotations during a read, clocks that step back."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib.sources import files

PREFIX = "%m [%p] %q%u@%d "


def pg(t: str, pid: int, msg: str) -> str:
    return f"2024-03-01 {t} UTC [{pid}] app@shop LOG:  {msg}\n"


def session(t0: str, t1: str, pid: int, port: int) -> str:
    return (
        pg(t0, pid, f"connection received: host=10.0.0.5 port={port}")
        + pg(t0, pid, "connection authorized: user=app database=shop")
        + pg(
            t1,
            pid,
            f"disconnection: session time: 0:00:01.000 user=app database=shop host=10.0.0.5 port={port}",
        )
    )


def read(paths: object) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ll.RejectedLinesWarning)
        return ll.read_pg_log(paths, prefix=PREFIX)


class TestClockStepsBack:
    """A clock stepping back mid-log is reported, and sessions stay whole (paired in file order)."""

    LOG = (
        pg("10:00:00.000", 7, "connection received: host=10.0.0.5 port=5000")
        + pg("10:00:00.010", 7, "connection authorized: user=app database=shop")
        + pg("10:00:01.000", 8, "connection received: host=10.0.0.5 port=5001")
        + pg("09:00:02.000", 8, "connection authorized: user=app database=shop")  # NTP steps back 1 h
        + pg(
            "09:00:03.000",
            7,
            "disconnection: session time: 0:00:03.000 user=app database=shop host=10.0.0.5 port=5000",
        )
        + pg(
            "09:00:04.000",
            8,
            "disconnection: session time: 0:00:03.000 user=app database=shop host=10.0.0.5 port=5001",
        )
    ).encode()

    def test_no_phantom_open_sessions(self) -> None:
        """Two sessions, both closed: a time sort made four, two of them open for ever."""
        sessions = ll.pg_sessions(read(self.LOG))
        assert sessions.height == 2
        assert sessions["open_at_end"].to_list() == [False, False]
        assert sessions["end_reason"].to_list() == ["disconnection", "disconnection"]
        assert not sessions["started_before_log"].any()

    def test_step_is_reported_with_its_line(self) -> None:
        """The read report names the file:line where the clock went back, and by how much."""
        notes = ll.read_report(read(self.LOG)).notes
        assert any("<bytes>:4: the clock steps back 60 min" in n for n in notes), notes

    def test_concurrent_writers_are_not_a_step(self) -> None:
        """Lines a few hundred ms out of order (backends racing to the log) are no step."""
        log = session("10:00:00.900", "10:00:01.500", 7, 5000) + session(
            "10:00:01.200", "10:00:02.000", 8, 5001
        )
        assert not any("clock" in n for n in ll.read_report(read(log.encode())).notes)

    def test_rotated_files_pair_in_file_order(self, tmp_path: Path) -> None:
        """A session crossing a rotation whose clock stepped back is one closed session."""
        (tmp_path / "postgresql.log.1").write_text(
            pg("10:00:00.000", 7, "connection received: host=10.0.0.5 port=5000")
            + pg("10:00:00.010", 7, "connection authorized: user=app database=shop")
        )
        (tmp_path / "postgresql.log").write_text(
            pg("09:30:00.000", 9, "connection received: host=10.0.0.5 port=5009")
            + pg(
                "09:30:01.000",
                7,
                "disconnection: session time: 0:00:01.000 user=app database=shop host=10.0.0.5 port=5000",
            )
        )
        sessions = ll.pg_sessions(read(tmp_path / "postgresql.log*"))
        seven = sessions.filter(pl.col("pid") == 7)
        assert seven.height == 1 and seven["end_reason"][0] == "disconnection"


class TestRotationDuringRead:
    """A logrotate while loglib reads: the rotated lines are read where they went, once."""

    @pytest.mark.parametrize("how", ["read", "scan"])
    def test_rotation_between_listing_and_reading(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
    ) -> None:
        """x.log.1 and x.log listed; logrotate moves them on before x.log is opened: nothing
        skipped, and the read report says where the lines were found (a scan's too)."""
        old, cur = tmp_path / "postgresql.log.1", tmp_path / "postgresql.log"
        old.write_text(session("09:00:00.000", "09:00:01.000", 5, 4000))
        cur.write_text(session("10:00:00.000", "10:00:01.000", 7, 5000))
        real_open = files._open_file
        rotated = []

        def open_and_rotate(path: Path):  # the first open happens, then logrotate runs
            fh = real_open(path)
            if not rotated:
                rotated.append(True)
                old.rename(tmp_path / "postgresql.log.2")
                cur.rename(old)
                cur.write_text(session("11:00:00.000", "11:00:01.000", 9, 6000))
            return fh

        monkeypatch.setattr(files, "_open_file", open_and_rotate)
        if how == "read":
            df = read(tmp_path / "postgresql.log*")
            notes = ll.read_report(df).notes
        else:
            lazy = ll.scan_pg_log(tmp_path / "postgresql.log*", prefix=PREFIX)
            df = lazy.collect()
            notes = ll.read_report(lazy).notes
        assert sorted(df["pid"].unique().to_list()) == [5, 7]  # the rotated lines: not skipped, not doubled
        assert df.height == 6
        assert any("was rotated while loglib read" in n and "postgresql.log.1" in n for n in notes), notes


class TestTwinSources:
    """Two [[sources]] reaching one file (a glob, ../, a link) read it once, with a note."""

    def test_two_sources_one_file(self, tmp_path: Path) -> None:
        """Rows and sessions are not doubled; the second source's report names the twin."""
        (tmp_path / "pg").mkdir()
        log = tmp_path / "pg" / "postgresql.log"
        log.write_text(
            session("10:00:00.000", "10:00:01.000", 7, 5000)
            + session("10:00:02.000", "10:00:03.000", 8, 5001)
        )
        (tmp_path / "pg" / "other.log").write_text(session("10:01:00.000", "10:01:01.000", 9, 5002))
        (tmp_path / "incident.toml").write_text(
            'title = "twins"\n'
            f'[[sources]]\nkind = "postgres"\nname = "primary"\npaths = ["pg/postgresql.log"]\nprefix = "{PREFIX}"\n'
            f'[[sources]]\nkind = "postgres"\nname = "again"\npaths = ["pg/../pg/*.log"]\nprefix = "{PREFIX}"\n'
        )
        inc = ll.Incident.load(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ll.RejectedLinesWarning)
            assert inc.pg.height == 9
            assert inc.sessions.height == 3
            notes = inc.read_reports()["again"].notes
        assert any("same file as" in n and "'primary'" in n for n in notes), notes

    def test_a_source_wholly_inside_another(self, tmp_path: Path) -> None:
        """A second source that only repeats the first's files is empty, and says why."""
        (tmp_path / "postgresql.log").write_text(session("10:00:00.000", "10:00:01.000", 7, 5000))
        (tmp_path / "link.log").symlink_to(tmp_path / "postgresql.log")
        (tmp_path / "incident.toml").write_text(
            'title = "twins"\n'
            f'[[sources]]\nkind = "postgres"\npaths = ["postgresql.log"]\nprefix = "{PREFIX}"\n'
            f'[[sources]]\nkind = "postgres"\nname = "link"\npaths = ["link.log"]\nprefix = "{PREFIX}"\n'
        )
        inc = ll.Incident.load(tmp_path)
        assert inc.pg.height == 3
        assert any("same file as" in n for n in inc.read_reports()["link"].notes)
