"""`loglib --help` stays fast by construction: no heavy library is imported to print help (issue 17)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: libraries that cost tenths of a second to import; help must not need any of them
HEAVY = ("polars", "pandas", "plotly", "sqlalchemy", "numpy", "pyarrow")

_PROBE = """
import sys
from loglib.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["parse", "--help"], ["report", "--help"], ["connections", "--help"]]
)
def test_help_imports_no_heavy_library(argv):
    """Each help screen prints without importing polars, pandas, plotly, sqlalchemy, numpy or pyarrow.

    A fresh interpreter is used so that modules other tests imported do not hide a regression.
    """
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage: loglib" in done.stdout
    assert done.stderr.strip().splitlines()[-1:] in ([], [""]), done.stderr
