"""Progress you can trust (issue 19): long steps say how far they are, on the CLI and from the kernel."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from loglib.core import progress

ROOT = Path(__file__).resolve().parent.parent
POOL = ROOT / "data" / "incidents" / "pool-exhaustion"
LINE = (
    "2024-03-01 10:00:{s:02d}.000 UTC [{pid}] app@shop LOG:  connection received: host=10.0.0.5 port=5000\n"
)


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step is "long": progress shows at once."""
    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    monkeypatch.setattr(progress, "EVERY", 0.0)


class TestSteps:
    """step() and ByteProgress on the loglib.progress logger."""

    def test_quick_steps_are_silent(self, caplog: pytest.LogCaptureFixture) -> None:
        """A step that ends within QUIET_FOR says nothing (small incidents stay quiet)."""
        with caplog.at_level(logging.INFO, logger="loglib.progress"), progress.step("pairing sessions"):
            pass
        assert caplog.messages == []

    def test_long_step_says_when_done(self, eager: None, caplog: pytest.LogCaptureFixture) -> None:
        """A long step says it started and how long it took."""
        with caplog.at_level(logging.INFO, logger="loglib.progress"), progress.step("pairing sessions"):
            pass
        assert caplog.messages[-1].startswith("pairing sessions: done in ")


def test_cli_connections_shows_bytes_read(eager: None, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`loglib connections` on a log says how many MB of how many it has read."""
    from loglib import cli

    log = tmp_path / "postgresql.log"
    log.write_text("".join(LINE.format(s=i % 60, pid=i) for i in range(20_000)))
    before = list(logging.getLogger("loglib.progress").handlers)  # pytest's caplog may have left its own
    assert cli.main(["connections", str(log), "--prefix", "%m [%p] %q%u@%d ", "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert f"reading {log}: " in err and " MB" in err, err
    assert logging.getLogger("loglib.progress").handlers == before  # the CLI removes what it added


def test_report_relays_the_kernels_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`loglib report`: what the notebook's kernel is doing inside a cell reaches the CLI's progress."""
    from loglib.report import build_report

    monkeypatch.setenv("LOGLIB_PROGRESS_QUIET_FOR", "0")  # the kernel's steps all count as long
    lines: list[str] = []
    build_report(POOL, tmp_path / "out", progress=lines.append)
    kernel = [ln for ln in lines if "kernel: " in ln]
    assert any("detector pool_exhaustion" in ln for ln in kernel), lines
    assert any("chart overview" in ln for ln in kernel), lines
    assert not (tmp_path / "out" / ".loglib-progress.log").exists()


def test_a_kernel_of_your_own_logs_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook run in a kernel loglib did not start (nbclient, as JupyterLab's): a long step's
    lines reach the kernel's log (its stderr), without any set-up in the notebook."""
    import nbformat
    from nbclient import NotebookClient

    from loglib.report import kernel_env

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import time\nfrom loglib.core.progress import step\n"
            "with step('pairing the sessions of a test'):\n    time.sleep(0.2)"
        )
    ]
    env = kernel_env({"LOGLIB_PROGRESS_QUIET_FOR": "0"})
    env.pop("LOGLIB_PROGRESS_FILE", None)
    log = tmp_path / "kernel.log"
    with open(log, "w") as err:
        NotebookClient(nb, kernel_name="python3", timeout=120).execute(env=env, stderr=err)
    assert "pairing the sessions of a test: done in" in log.read_text()
