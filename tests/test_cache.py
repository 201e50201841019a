"""The Parquet parse cache (issue 19): parse once per incident, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import loglib as ll
from loglib import cache
from loglib.cache import cache_dir, cached_read, clear_cache

ROOT = Path(__file__).resolve().parent.parent
POOL = ROOT / "data" / "incidents" / "pool-exhaustion"
PREFIX = "%m [%p] %q%u@%d "
LINE = (
    "2024-03-01 10:00:{s:02d}.000 UTC [{pid}] app@shop LOG:  connection received: host=10.0.0.5 port=5000\n"
)


@pytest.fixture(autouse=True)
def _small_inputs_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)


def write_log(path: Path, n: int = 5, *, junk: bool = True) -> Path:
    path.write_text(
        "".join(LINE.format(s=i % 60, pid=i) for i in range(n)) + ("not a log line\n" if junk else "")
    )
    return path


def counts(report: ll.ReadReport) -> tuple:
    """What a read counted: lines read and parsed, entries, format."""
    return report.lines_read, report.lines_parsed, report.entries, report.format


class Counting:
    """A reader that counts its calls (the cache must not call it on a hit)."""

    def __init__(self) -> None:
        self.calls = 0
        self.__module__, self.__qualname__ = "tests", "Counting"

    def __call__(self, paths: list[str], **options: object) -> pl.DataFrame:
        self.calls += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ll.RejectedLinesWarning)
            return ll.read_pg_log(paths, **options)


class TestCachedRead:
    """cached_read: the same frame and report, without parsing, until a file changes."""

    def test_second_read_loads_parquet(self, tmp_path: Path) -> None:
        """Same rows and dtypes, same report (rejects included), and the reader is not called."""
        log = write_log(tmp_path / "postgresql.log")
        fn = Counting()
        first = cached_read(fn, [str(log)], {"prefix": PREFIX})
        with pytest.warns(ll.RejectedLinesWarning):  # rejected lines still warn, as on a fresh read
            second = cached_read(fn, [str(log)], {"prefix": PREFIX})
        assert fn.calls == 1
        assert_frame_equal(first, second)
        a, b = ll.read_report(first), ll.read_report(second)
        assert counts(b) == counts(a)
        assert_frame_equal(a.rejects, b.rejects)
        assert any("parse cache" in n for n in b.notes)
        assert list(cache_dir().glob("*.parquet"))

    def test_metrics_frame_keeps_its_categorical_dtypes(self) -> None:
        """A cached metrics frame is the fresh one: Categorical text, labels struct, every value."""
        paths = [str(p) for p in sorted((POOL / "prometheus").glob("*"))]
        fresh = ll.read_prometheus(paths)
        cached_read(ll.read_prometheus, paths, {})
        hit = cached_read(ll.read_prometheus, paths, {})
        expected = {c.name: c.dtype for c in ll.schema.METRICS.columns} | {"labels": fresh.schema["labels"]}
        assert dict(hit.schema) == dict(fresh.schema) == expected
        assert fresh.schema["series"] == pl.Categorical
        assert_frame_equal(hit, fresh, check_exact=True)
        assert any("cache" in n for n in ll.read_report(hit).notes)

    def test_changed_file_is_parsed_again(self, tmp_path: Path) -> None:
        """A file that grew (new size, new mtime) is a new key: the new line is in the frame."""
        log = write_log(tmp_path / "postgresql.log", 5, junk=False)
        fn = Counting()
        assert cached_read(fn, [str(log)], {"prefix": PREFIX}).height == 5
        with open(log, "a") as fh:
            fh.write(LINE.format(s=30, pid=99))
        assert cached_read(fn, [str(log)], {"prefix": PREFIX}).height == 6
        assert fn.calls == 2

    def test_other_options_other_entry(self, tmp_path: Path) -> None:
        """Reader options are part of the key."""
        log = write_log(tmp_path / "postgresql.log", junk=False)
        fn = Counting()
        cached_read(fn, [str(log)], {"prefix": PREFIX})
        cached_read(fn, [str(log)], {"prefix": PREFIX, "tz": "UTC"})
        assert fn.calls == 2

    def test_no_cache(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """LOGLIB_NO_CACHE=1 parses every time and writes nothing."""
        monkeypatch.setenv("LOGLIB_NO_CACHE", "1")
        log = write_log(tmp_path / "postgresql.log", junk=False)
        fn = Counting()
        cached_read(fn, [str(log)], {})
        cached_read(fn, [str(log)], {})
        assert fn.calls == 2 and not list(cache_dir().glob("*"))

    def test_clear(self, tmp_path: Path) -> None:
        """clear_cache removes the cached frames and only them."""
        log = write_log(tmp_path / "postgresql.log", junk=False)
        cached_read(Counting(), [str(log)], {})
        (cache_dir() / "mine.txt").write_text("keep")
        assert clear_cache().entries == 1
        assert [p.name for p in cache_dir().iterdir()] == ["mine.txt"]

    def test_half_written_entry_is_ignored(self, tmp_path: Path) -> None:
        """A run killed while writing leaves no usable entry: the files are parsed again."""
        log = write_log(tmp_path / "postgresql.log", junk=False)
        fn = Counting()
        cached_read(fn, [str(log)], {})
        for p in cache_dir().glob("*.parquet"):
            p.write_bytes(b"PAR1 cut")
        assert cached_read(fn, [str(log)], {}).height == 5
        assert fn.calls == 2


class TestIncidentAndProcesses:
    """The CLI, an Incident and another process share one parse."""

    def test_another_process_loads_the_parquet(self, tmp_path: Path) -> None:
        """An incident parsed here is loaded from Parquet by a fresh interpreter (the report's kernel)."""
        from loglib.incident import forget_frames

        forget_frames()  # an earlier test may hold these frames in this process
        ll.Incident.load(POOL).read_reports()  # parses, fills the cache (app.log is 2.2 MB)
        code = (
            "import warnings, loglib as ll; warnings.simplefilter('ignore');"
            f"r = ll.Incident.load({str(POOL)!r}).read_reports();"
            "print(any('parse cache' in n for n in r['app'].notes), r['app'].entries)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["True", "1151"]

    def test_cli_cache_info_and_clear(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        """`loglib cache` says what it holds; `loglib cache clear` empties it."""
        from loglib import cli

        log = write_log(tmp_path / "postgresql.log", junk=False)
        assert cli.main(["connections", str(log), "--prefix", PREFIX, "-q"]) == 0
        capsys.readouterr()
        assert cli.main(["cache"]) == 0
        assert "1 cached frame(s)" in capsys.readouterr().out
        assert cli.main(["cache", "clear"]) == 0
        assert "removed 1 cached frame(s)" in capsys.readouterr().out
        assert not list(cache_dir().glob("*.parquet"))


class TestReportOnly:
    """What `loglib report` checks before its kernel runs: the reports, without the frames (issue 19)."""

    def test_hit_reads_no_frame(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A cache hit gives the fresh read's counts and rejects and never opens the frame's Parquet."""
        from loglib.cache import cached_read_report

        log = write_log(tmp_path / "postgresql.log")
        fn = Counting()
        fresh = ll.read_report(cached_read(fn, [str(log)], {"prefix": PREFIX}))
        opened: list[str] = []
        real = pl.read_parquet

        def spy(source: object, *args: object, **kwargs: object) -> pl.DataFrame:
            opened.append(Path(str(source)).name)
            return real(source, *args, **kwargs)

        monkeypatch.setattr(pl, "read_parquet", spy)
        got = cached_read_report(fn, [str(log)], {"prefix": PREFIX})
        assert fn.calls == 1
        assert got is not None
        assert counts(got) == counts(fresh)
        assert_frame_equal(got.rejects, fresh.rejects)
        assert any("parse cache" in n for n in got.notes)
        assert opened and all(name.endswith("-rejects.parquet") for name in opened)

    def test_miss_fills_the_cache(self, tmp_path: Path) -> None:
        """A miss parses once and leaves the frame in the cache for the next process."""
        from loglib.cache import cached_read_report

        log = write_log(tmp_path / "postgresql.log", junk=False)
        fn = Counting()
        assert cached_read_report(fn, [str(log)], {}).entries == 5
        assert cached_read(fn, [str(log)], {}).height == 5
        assert fn.calls == 1

    def test_incident_check_holds_no_frame(self, tmp_path: Path) -> None:
        """check_incident(frames=False) keeps no frame in the process and reports every source
        as read_reports() does; a file two sources reach keeps its note."""
        import shutil

        from loglib import incident
        from loglib.report import check_incident

        folder = tmp_path / "inc"
        shutil.copytree(POOL, folder)
        toml = (folder / "incident.toml").read_text()
        toml += '\n[[sources]]\nkind = "postgres"\nname = "again"\npaths = ["pg/../pg/postgresql.log"]\n'
        toml += 'prefix = "%m [%p] %q%u@%d "\n'
        (folder / "incident.toml").write_text(toml)
        incident.forget_frames()
        checked = check_incident(folder, frames=False).read_reports(frames=False)
        assert all(f.height == 0 for f in incident._CACHE.values())  # only the twin's empty frame
        incident.forget_frames()
        full = ll.Incident.load(folder).read_reports()
        assert checked.keys() == full.keys()
        for name, rep in full.items():
            got = checked[name]
            assert counts(got) == counts(rep)
            assert [n for n in got.notes if "same file" in n] == [n for n in rep.notes if "same file" in n]
        assert any("same file" in n for n in checked["again"].notes)


class TestNullColumns:
    """A column of nulls loads from the cache as one null scalar, and nothing downstream changes (issue 19)."""

    def test_null_columns_load_as_scalars(self, tmp_path: Path) -> None:
        """A stderr log's absent fields (sqlstate, session_id, detail) hold no buffer after a cache
        load; the frame equals the parsed one."""
        log = write_log(tmp_path / "postgresql.log", 50, junk=False)
        first = cached_read(ll.read_pg_log, [str(log)], {"prefix": PREFIX})
        second = cached_read(ll.read_pg_log, [str(log)], {"prefix": PREFIX})
        assert_frame_equal(first, second)
        for name in ("sqlstate", "session_id", "detail"):
            assert first[name].null_count() == first.height
        assert cache.without_null_buffers(first).equals(first)
        assert cache.without_null_buffers(pl.DataFrame({"a": [1, None]})).equals(
            pl.DataFrame({"a": [1, None]})
        )

    @pytest.mark.parametrize("name", ["pool-exhaustion", "post-deploy", "idle-drops"])
    def test_postmortem_the_same_from_the_cache(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bundled incident loaded from the cache gives the sessions, events, findings and timeline
        of a fresh parse."""
        from loglib import incident

        folder = ROOT / "data" / "incidents" / name

        def postmortem() -> tuple:
            incident.forget_frames()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inc = ll.Incident.load(folder)
                found = ll.findings(inc)
                return (inc.sessions, inc.events, [f.statement for f in found],
                        ll.timeline_document(inc).render("md"), ll.leak_rates(inc, every="1m"))  # fmt: skip

        monkeypatch.setenv("LOGLIB_NO_CACHE", "1")
        fresh = postmortem()
        monkeypatch.delenv("LOGLIB_NO_CACHE")
        postmortem()  # fills the cache
        cached = postmortem()
        for a, b in zip(fresh, cached, strict=True):
            if isinstance(a, pl.DataFrame):
                assert_frame_equal(a, b)
            else:
                assert a == b
