"""A safe ``--out`` (issue 19): checked first, one run at a time, only loglib's own old files cleared."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from loglib.outdir import LOCK, OutDirError, claim_out


class TestClaimOut:
    """claim_out: writable, locked, cleared of exactly the previous run's files."""

    def test_previous_run_files_are_cleared_others_kept(self, tmp_path: Path) -> None:
        """A stale before_after.md and chart of an earlier run go; a file of the user's stays."""
        out = tmp_path / "out"
        with claim_out(out) as claim:
            (out / "charts").mkdir()
            for name in ("before_after.md", "charts/old.png", "report.html"):
                (out / name).write_text("old run")
            claim.record([out / "before_after.md", out / "charts/old.png", out / "report.html"])
        (out / "my-notes.txt").write_text("mine")
        with claim_out(out) as claim:
            assert sorted(Path(p).name for p in claim.cleared) == [
                "before_after.md",
                "old.png",
                "report.html",
            ]
        assert (out / "my-notes.txt").read_text() == "mine"
        assert not (out / "charts").exists()  # emptied, and made by loglib

    def test_manifest_never_reaches_outside(self, tmp_path: Path) -> None:
        """A manifest naming ../ files (edited by hand) removes nothing outside the folder."""
        out = tmp_path / "out"
        out.mkdir()
        victim = tmp_path / "precious.txt"
        victim.write_text("keep")
        (out / ".loglib-manifest").write_text('{"files": ["../precious.txt", "/etc/hostname"]}')
        with claim_out(out):
            pass
        assert victim.read_text() == "keep"

    def test_second_run_is_refused_while_the_first_holds_it(self, tmp_path: Path) -> None:
        """Two runs into one folder cannot interleave: the second gets one clear error."""
        out = tmp_path / "out"
        out.mkdir()
        held = open(out / LOCK, "a+")  # noqa: SIM115 - another run's hold, released below
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        try:
            with (
                pytest.raises(OutDirError, match=r"in use by another loglib run \(pid 4242\)"),
                claim_out(out),
            ):
                pass
        finally:
            held.close()
        with claim_out(out):  # free again
            pass

    def test_unwritable(self, tmp_path: Path) -> None:
        """A folder that cannot be created is one clear error before any work."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(OutDirError, match="cannot be written"), claim_out(blocker / "out"):
            pass
        with pytest.raises(OutDirError, match="is a file"), claim_out(blocker):
            pass
        assert os.listdir(tmp_path) == ["file"]


def test_cli_report_lists_only_this_runs_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``loglib report`` twice into one --out: the second run's folder holds no file of the first's."""
    import loglib.report
    from loglib import cli
    from loglib.report import ReportResult

    out = tmp_path / "out"
    runs = iter([["before_after.md", "report.html"], ["report.html"]])

    def fake_build(incident_dir: str, out_dir: str, **_: object) -> ReportResult:
        names = next(runs)
        for name in names:
            (Path(out_dir) / name).write_text("x")
        (Path(out_dir) / "report.ipynb").write_text("{}")
        files = [Path(out_dir) / n for n in names]
        return ReportResult(out_dir=Path(out_dir), html=files[-1], notebook=Path(out_dir) / "report.ipynb",
                            files=files, findings=[], seconds=0.0, browser_error=None)  # fmt: skip

    monkeypatch.setattr(loglib.report, "build_report", fake_build)
    monkeypatch.setattr(cli, "_print_reads", lambda *_a, **_k: None)
    incident = str(Path(__file__).resolve().parent.parent / "data" / "incidents" / "idle-drops")
    assert cli.main(["report", incident, "--out", str(out), "-q"]) == 0
    assert (out / "before_after.md").exists()
    assert cli.main(["report", incident, "--out", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "report.html",
        "report.ipynb",
    ]
