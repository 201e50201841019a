"""CLI conventions (issue 13): one line per user error on stderr, exit 2, in the CLI's own words."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loglib import __version__, cli
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "sample-pg" / "postgresql.log"
INCIDENT = ROOT / "data" / "incidents" / "idle-drops"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's own exits (--version, --help, usage mistakes)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("loglib: error: ") and "Traceback" not in err
    return lines[0]


class TestUserErrors:
    """Every user mistake: exit 2, one line on stderr, nothing printed before it."""

    def test_version(self, capsys: pytest.CaptureFixture) -> None:
        """``loglib --version`` prints the package version."""
        code, out, _ = run(capsys, "--version")
        assert code == 0 and out.strip() == f"loglib {__version__}"

    def test_bad_every_before_any_output(self, capsys: pytest.CaptureFixture) -> None:
        """``--every 5x`` is refused before half a table has been printed."""
        code, out, err = run(capsys, "connections", str(SAMPLE), "--every", "5x")
        assert code == 2 and out == ""
        assert "--every" in one_error_line(err) and "'5x'" in err

    def test_bad_leak_every_before_any_work(self, capsys: pytest.CaptureFixture, tmp_path) -> None:
        """``loglib report --leak-every 5x`` is one line on stderr, exit 2, nothing written."""
        code, out, err = run(
            capsys, "report", str(SAMPLE.parent), "--out", str(tmp_path / "o"), "--leak-every", "5x"
        )
        assert code == 2 and out == "" and "'5x'" in one_error_line(err)
        assert not (tmp_path / "o").exists()

    @pytest.mark.parametrize(
        "argv",
        [
            ("connections", str(SAMPLE)),
            ("timeline", str(INCIDENT)),
            ("report", str(INCIDENT), "--out", "never-created"),
            ("parse", "postgres", str(SAMPLE), "--out", "never.parquet"),
        ],
        ids=lambda a: a[0],
    )
    def test_bad_tz(self, capsys: pytest.CaptureFixture, argv: tuple[str, ...], tmp_path: Path) -> None:
        """``--tz Europe/Berln``: one line naming the flag and the value, and no work done."""
        code, out, err = run(capsys, *argv, "--tz", "Europe/Berln")
        assert code == 2 and out == ""
        line = one_error_line(err)
        assert "--tz" in line and "'Europe/Berln'" in line and "tz=" not in line
        assert not Path("never-created").exists()

    def test_unwritable_out_before_any_work(
        self, capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An ``--out`` that cannot be created is found before the notebook runs."""
        import loglib.report

        def never(*_a: object, **_k: object) -> None:
            raise AssertionError("the report ran although --out cannot be written")

        monkeypatch.setattr(loglib.report, "build_report", never)
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        code, _, err = run(capsys, "report", str(INCIDENT), "--out", str(blocker / "out"))
        assert code == 2 and "--out" in one_error_line(err)
        code, _, err = run(capsys, "report", str(INCIDENT), "--out", str(blocker))
        assert code == 2 and "is a file" in one_error_line(err)

    def test_unwritable_parse_out(self, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
        """``loglib parse --out`` in a folder that cannot exist: one line, before reading."""
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        code, _, err = run(capsys, "parse", "postgres", str(SAMPLE), "--out", str(blocker / "x.parquet"))
        assert code == 2 and "--out" in one_error_line(err)

    def test_binary_input_is_one_short_line(self, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
        """A binary file's error echoes a short piece of it, not a kilobyte of escapes."""
        blob = tmp_path / "core.bin"
        blob.write_bytes(bytes(range(256)) * 64)
        for kind in ("postgres", "app", "prometheus"):
            code, _, err = run(capsys, "parse", kind, str(blob), "--out", str(tmp_path / "x.parquet"), "-q")
            line = one_error_line(err)
            assert code == 2 and len(line) <= cli.MAX_ERROR + len("loglib: error: ")
            assert "format=" not in line and "prefix=" not in line, line

    def test_no_python_hints(self, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
        """An empty input's message has no ``raise_if_empty=False`` (there is no such flag)."""
        empty = tmp_path / "empty.log"
        empty.write_bytes(b"")
        code, _, err = run(capsys, "parse", "postgres", str(empty), "--out", str(tmp_path / "x.parquet"))
        line = one_error_line(err)
        assert code == 2 and "raise_if_empty" not in line and "=False" not in line

    def test_usage_mistake_is_one_line(self, capsys: pytest.CaptureFixture) -> None:
        """argparse's own errors (unknown command, missing argument) are one line too."""
        for argv in (("bogus",), ("report",), ("connections", str(SAMPLE), "--by", "colour")):
            code, _, err = run(capsys, *argv)
            assert code == 2
            one_error_line(err)

    def test_option_the_reader_does_not_take(self, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
        """``loglib parse postgres --pattern``: named as the flag."""
        code, _, err = run(
            capsys, "parse", "postgres", str(SAMPLE), "--out", str(tmp_path / "x.parquet"), "--pattern", "x"
        )
        assert code == 2 and "--pattern" in one_error_line(err)

    def test_cli_words(self) -> None:
        """Keyword arguments become flags; Python-only hints go; long quoted values are cut."""
        text = cli.cli_words(f"x: First line: {'a' * 500!r}. Pass format= or prefix='%m' and tz=UTC")
        assert "--format" in text and "--prefix '%m'" in text and "--tz UTC" in text
        assert len(text) < 200


class TestProgress:
    """A progress line for every step longer than a second; quick steps stay quiet."""

    def test_slow_step_says_so(self, capsys: pytest.CaptureFixture) -> None:
        """A step over ``quiet_for`` prints its name, a heartbeat and how long it took."""
        steps = cli._Steps(quiet_for=0.05, every=0.1)
        with steps.step("reading x"):
            time.sleep(0.35)
        err = capsys.readouterr().err
        assert "reading x …" in err and "still running" in err and "reading x: done in" in err

    def test_quick_step_is_quiet(self, capsys: pytest.CaptureFixture) -> None:
        """A step that ends within a second prints nothing."""
        with cli._Steps().step("reading x"):
            pass
        assert capsys.readouterr().err == ""

    def test_heartbeat_repeats_a_long_step(self) -> None:
        """The report's progress says again which cell is still running (the export takes ~10 s)."""
        lines: list[str] = []
        progress, stop = cli._heartbeat(lines.append, every=1.0)
        progress("[  1.0s] executing notebook cell 14/14: bundle = ll.export_bundle(inc)")
        time.sleep(2.3)
        stop()
        assert any(ln.startswith("… still executing notebook cell 14/14: bundle") for ln in lines), lines

    def test_cells_are_named(self) -> None:
        """Progress names the cell by its first line of code."""
        from loglib.report import _cell_label

        assert _cell_label("# export\nbundle = ll.export_bundle(inc, out_dir)\n") == (
            ": bundle = ll.export_bundle(inc, out_dir)"
        )


class TestWhatWasRead:
    """Nothing lost without a word: one line per source with lines read, parsed and rejected."""

    def test_connections_names_the_rejects(self, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
        """A bad line is counted and named as file:line on the terminal."""
        log = tmp_path / "pg.log"
        log.write_bytes(SAMPLE.read_bytes() + b"garbage\n")
        code, out, _ = run(capsys, "connections", str(log))
        assert code == 0
        assert "2,199 lines read in 1 file(s), 2,198 parsed, 1 rejected" in out
        assert f"rejected {log}:2199:" in out

    def test_timeline_prints_one_line_per_source(self, capsys: pytest.CaptureFixture) -> None:
        """``loglib timeline`` says what it read from each source (on stderr, beside the table)."""
        code, _, err = run(capsys, "timeline", str(INCIDENT))
        assert code == 0
        assert "What was read:" in err
        for source in ("postgres (postgres)", "app (app)", "prometheus (prometheus)"):
            assert source in err

    def test_read_summary_frame(self) -> None:
        """``read_summary`` is a frame: one row per source, first rejects as file:line."""
        import loglib as ll
        from loglib.analysis.reads import read_summary

        inc = ll.Incident.load(INCIDENT)
        frame = read_summary(inc.read_reports())
        assert frame["source"].to_list() == ["postgres", "app", "prometheus"]
        assert (frame["lines_read"] == frame["lines_parsed"] + frame["lines_rejected"]).all()
