"""The workbook the way users meet it: JupyterLab in headless Chromium, the postmortem run from the menu."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from loglib import report
from tests.browser import chromium_page, offline
from tests.conftest import ROOT, require

INCIDENT = ROOT / "data" / "incidents" / "pool-exhaustion"
#: user settings of the throwaway JupyterLab: every cell rendered (no windowing), no news prompt, and
#: the notebook's kernel started on open ("Always start the preferred kernel" in the Select Kernel
#: dialog): that dialog raced Run All on a busy machine and JupyterLab started two kernels
SETTINGS = {
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """`jupyter lab` on a free loopback port with a token, rooted in a folder with the postmortem notebook."""
    jupyter = Path(sys.executable).with_name("jupyter")
    require(jupyter.exists() or shutil.which("jupyter") is not None, "jupyter (pip install jupyterlab)")
    root = tmp_path / "lab"
    root.mkdir()
    nb = report.parameterize(
        report.read_notebook(report.notebook_path("postmortem")),
        incident_dir=str(INCIDENT),
        out_dir=str(tmp_path / "bundle"),
        chart_formats=["html"],  # no static export inside the test: that is tested elsewhere
    )
    nbformat.write(nb, str(root / "postmortem.ipynb"))
    settings = tmp_path / "settings"
    for plugin, values in SETTINGS.items():
        path = settings / (plugin.replace(":", "/") + ".jupyterlab-settings")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(settings)}  # fmt: skip
    cmd = [
        str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.3)
        yield url, token, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


#: the state of a Run All, read from the page: cells finished ([n]) and queued or running ([*]),
#: the bundle's "N files in …" line (the last cell), and any traceback shown
_RUN_STATE = """() => {
  const prompts = [...document.querySelectorAll('.jp-InputArea-prompt')].map(p => p.textContent);
  const outputs = [...document.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent);
  const errors = [...document.querySelectorAll(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
    .map(o => o.textContent).filter(t => /Traceback|Error/.test(t));
  return {finished: prompts.filter(p => /\\[\\d+\\]/.test(p)).length,
          pending: prompts.filter(p => p.includes('*')).length,
          done: outputs.some(t => /\\d+ files in /.test(t)), errors: errors.map(t => t.slice(-500))};
}"""
#: seconds one cell may take before the run counts as stuck (the export cell takes ~10 s when idle)
STALL_S = 300
#: the whole run, however it progresses
RUN_S = 1200
#: seconds with nothing queued or running (and the last cell not reached) that mean the queue was dropped
DROPPED_S = 30


def _wait_for_run_all(page, shots: Path) -> bool:
    """Wait while the cells keep finishing: True at the last cell's output; fail at once on a
    traceback that stopped the run, or when no cell has finished for STALL_S seconds. A busy
    machine makes each cell slower, never a correct run fail.

    False when the run ended silently: nothing queued or running, no error, the last cell never
    reached. Run All queues every cell at once, so that only happens when JupyterLab dropped the
    queue: it started two kernels for the page and replaced the one the cells were sent to (CI,
    2026-12-03: "1 cell(s) finished, 0 pending"; lab.log showed two kernels started 50 ms apart).
    """
    start = last_change = time.monotonic()
    last = None
    while True:
        state = page.evaluate(_RUN_STATE)
        if state["done"]:
            return True
        now = time.monotonic()
        if state["errors"] and not state["pending"]:
            page.screenshot(path=str(shots / "jupyterlab-error.png"))
            pytest.fail(f"a cell failed and the run stopped: {state['errors'][0]}")
        progress = (state["finished"], state["pending"])
        if progress != last:
            last, last_change = progress, now
        elif not state["pending"] and now - last_change > DROPPED_S:
            page.screenshot(path=str(shots / "jupyterlab-dropped.png"))
            return False
        elif now - last_change > STALL_S or now - start > RUN_S:
            page.screenshot(path=str(shots / "jupyterlab-stalled.png"))
            pytest.fail(
                f"Run All stalled: {state['finished']} cell(s) finished, {state['pending']} pending, "
                f"no progress for {now - last_change:.0f} s ({now - start:.0f} s in all)"
            )
        page.wait_for_timeout(1000)  # not time.sleep: see _one_kernel


#: the highest execution count shown ([n]), or -1 while some cell is queued or running ([*])
_LAST_COUNT = """() => {
  const prompts = [...document.querySelectorAll('.jp-InputArea-prompt')].map(p => p.textContent);
  if (prompts.some(p => p.includes('*'))) return -1;
  return Math.max(0, ...prompts.map(p => +((p.match(/\\[(\\d+)\\]/) || [0, 0])[1])));
}"""


def _run_all(page, shots: Path) -> None:
    """Run → Run All Cells, clicked again until execution started: a prompt shows [*] or a count
    above any shown before. On a busy machine the click can land before the kernel's channels are
    up, and the cells are then only selected."""
    before = page.evaluate(_LAST_COUNT)
    started = f"(() => {{ const n = ({_LAST_COUNT})(); return n === -1 || n > {before}; }})()"
    for attempt in range(4):
        try:
            # a modal JupyterLab dialog (kernel selection, a kernel restarting on a busy machine)
            # intercepts every click (CI, 2026-12-03): accept it with its default choice first
            dialog = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
            if dialog.count():
                page.screenshot(path=str(shots / f"jupyterlab-dialog-{attempt}.png"))
                dialog.first.click(timeout=20_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=20_000)
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click(timeout=20_000)
            page.wait_for_function(started, timeout=15_000)
            break
        except Exception:
            page.screenshot(path=str(shots / f"jupyterlab-not-started-{attempt}.png"))
            if attempt == 3:
                raise
            page.keyboard.press("Escape")  # close a menu left open, so the next click lands


def _one_kernel(page, shots: Path, url: str, token: str, timeout: float = 180) -> None:
    """Wait until the server runs exactly one kernel and it is idle: JupyterLab sometimes starts
    two for a freshly opened notebook and shuts one down a moment later; cells sent before that
    settles can go to the kernel that is about to go.

    The waits are ``page.wait_for_timeout``, never ``time.sleep``: every request of the page goes
    through :func:`tests.browser.offline`'s route handler, which runs in this thread, so while it
    sleeps the page's API calls (starting the kernel) wait too."""
    deadline = time.monotonic() + timeout
    stable = 0
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=10) as resp:
            kernels = json.load(resp)
        stable = stable + 1 if len(kernels) == 1 and kernels[0].get("execution_state") == "idle" else 0
        if stable >= 3:  # the same answer over ~1.5 s
            return
        page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "jupyterlab-kernels.png"))
    pytest.fail(f"JupyterLab never settled on one idle kernel: {kernels}")


def test_postmortem_runs_in_jupyterlab(lab):
    """Open the notebook, Run → Run All Cells, and the charts render with no error output."""
    url, token, tmp = lab
    shots = Path(os.environ.get("LOGLIB_SCREENSHOTS") or tmp)
    shots.mkdir(parents=True, exist_ok=True)
    with chromium_page(width=1400, height=1000) as page:
        attempted = offline(page)
        page.set_default_timeout(180_000)  # loading JupyterLab on a busy machine; the run is waited on below
        page.goto(f"{url}/lab/tree/postmortem.ipynb?token={token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        # the kernel must be ready before Run All, or the first cells queue behind its start-up
        page.wait_for_selector(
            ".jp-NotebookPanel-toolbar [data-status='idle'], .jp-Notebook-ExecutionIndicator[data-status='idle']"
        )
        _one_kernel(page, shots, url, token)
        for run in range(2):
            _run_all(page, shots)
            # the last cell writes the bundle: its output means every cell before it ran
            if _wait_for_run_all(page, shots):
                break
            if run == 1:
                pytest.fail("Run All was dropped twice (nothing queued, last cell not reached); see lab.log")
            _one_kernel(page, shots, url, token)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
        plots = page.locator(".js-plotly-plot").count()
        prompts = page.locator(".jp-InputArea-prompt").all_inner_texts()
        errors = page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        ).all_inner_texts()
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "jupyterlab-postmortem.png"))
        page.locator(".js-plotly-plot").nth(1).scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "jupyterlab-postmortem-2.png"))
    assert plots >= 4
    assert not [p for p in prompts if "*" in p], prompts  # nothing still running or queued
    assert not [e for e in errors if "Error" in e or "Traceback" in e], errors
    assert (tmp / "bundle" / "summary.md").exists()
    assert attempted == [] or all("127.0.0.1" in u for u in attempted), attempted
