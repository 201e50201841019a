"""pg_sessions' packed sort keys pair exactly as the five columns did (issue 17)."""

from __future__ import annotations

import warnings

import polars as pl
import pytest

import loglib as ll
from loglib.analysis import sessions
from tests.conftest import ROOT, frames_seen

FIVE = ["_host", "pid", "_rank", "_line", "_order"]


def _both(ev: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> tuple[pl.DataFrame, pl.DataFrame]:
    packed = sessions._pg_sessions(ev)
    with monkeypatch.context() as m:
        m.setattr(sessions, "_pairing_keys", lambda conn: FIVE)
        five = sessions._pg_sessions(ev)
    return packed, five


def test_rotated_lab_logs_read_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several files (file ranks > 0), pids reused across them, every lab end reason."""
    paths = sorted(str(p) for p in (ROOT / "data" / "lab").glob("*/pg/postgresql.log.gz"))[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = ll.read_pg_log(paths)
    assert ev["file"].n_unique() > 1
    packed, five = _both(ev, monkeypatch)
    assert packed.height > 0 and packed.equals(five)


@pytest.mark.parametrize("pid_shift", [0, 2**40, -(2**20)])
def test_pids_out_of_range_fall_back(monkeypatch: pytest.MonkeyPatch, pid_shift: int) -> None:
    """pids no 32 bits hold (or negative) take the five-column sort, with the same sessions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = ll.read_pg_log(ROOT / "data" / "sample-pg" / "postgresql.log")
    ev = ev.with_columns(pl.col("pid") + pid_shift)
    packed, five = _both(ev, monkeypatch)
    assert packed.height > 0 and packed.equals(five)
    conn = pl.DataFrame({"_host": [0], "pid": [ev["pid"].min()], "_rank": [0], "_line": [1], "_order": [0]})
    assert (sessions._pairing_keys(conn) == FIVE) == (pid_shift != 0)


def test_only_the_order_and_the_output_are_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory (issue 19): the pairing sorts the row order alone and gathers three columns (no sorted
    copy of the sort keys), and the sessions are put in order after the working columns are dropped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = ll.read_pg_log(ROOT / "data" / "sample-pg" / "postgresql.log")
    expected = sessions._pg_sessions(ev)
    sorted_columns = frames_seen(monkeypatch, "sort")
    got = sessions._pg_sessions(ev)
    assert got.equals(expected) and got.height > 0
    assert not [c for c in sorted_columns if "_rank" in c or "_line" in c]  # the keys are not copied
    assert not [c for c in sorted_columns if "start" in c and "_order" in c]  # nor the working columns
