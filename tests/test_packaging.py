"""The promises around the package: README commands, CI, conda environment, documented schema."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from loglib.core.schema import schema_markdown
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _sh_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", README, re.DOTALL)]


class TestReadme:
    def test_two_setup_commands(self):
        """The set-up section has exactly two commands: the main job and the tests."""
        setup = README.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
        blocks = re.findall(r"```sh\n(.*?)```", setup, re.DOTALL)
        commands = [b.strip() for b in blocks if "python3 -m venv" in b]
        assert len(commands) == 2
        assert commands[0].endswith("loglib demo")
        assert "pytest" in commands[1]

    def test_ci_runs_the_readme_test_command_verbatim(self):
        """.ci/run ends with the README's test command, character for character."""
        test_command = next(b for b in _sh_blocks() if "pytest" in b)
        ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
        assert ci[-1] == test_command

    def test_schema_section_is_current(self):
        """The README's canonical-frames section is what loglib.core.schema prints."""
        section = README.split("<!-- schema:start -->", 1)[1].split("<!-- schema:end -->", 1)[0]
        assert section.strip() == schema_markdown().strip()


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[ ]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


class TestEnvironment:
    def test_environment_yml_matches_pyproject(self):
        """Every runtime and test dependency of pyproject.toml is in environment.yml, and no more."""
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["test"])
        env = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
        listed = {
            re.split(r"[<>=! ]", line.strip()[2:], maxsplit=1)[0].lower().replace("_", "-")
            for line in env.splitlines()
            if line.startswith("  - ") and not line.strip().startswith(("- pip", "- -e"))
        }
        listed -= {"python"}
        conda_names = {"python-kaleido": "kaleido"}  # conda-forge's name for the PyPI package
        assert {conda_names.get(n, n) for n in listed} == wanted

    def test_imports_without_pandas(self):
        """loglib imports and reads a log with pandas unavailable: pandas is only an edge."""
        code = (
            "import sys; sys.modules['pandas'] = None\n"
            "import loglib as ll\n"
            "df = ll.read_pg_log(b'2024-03-01 10:00:00 UTC [1] LOG:  x\\n', prefix='%t [%p] ')\n"
            "assert df.height == 1\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


class TestLint:
    def test_ruff_is_clean(self):
        """The code passes ruff with the project's settings (part of the test command, so CI runs it)."""
        ruff = Path(sys.executable).with_name("ruff")
        cmd = [str(ruff)] if ruff.exists() else [sys.executable, "-m", "ruff"]
        done = subprocess.run(
            [*cmd, "check", "loglib", "tests", "benchmarks", "data"], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
