"""``loglib connections``' summary lines: equal counts come in the documented order, every run
(they came in hash order, so the same log printed them differently from run to run) (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loglib import cli

# two sessions: one ends with its disconnection line, one with a client reset; each kind once
LOG = (
    "2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=10.0.0.5 port=5000\n"
    "2024-03-01 10:00:00.010 UTC [7] app@shop LOG:  connection authorized: user=app database=shop\n"
    "2024-03-01 10:00:09.000 UTC [7] app@shop LOG:  disconnection: session time: 0:00:09.000 "
    "user=app database=shop host=10.0.0.5 port=5000\n"
    "2024-03-01 10:01:00.000 UTC [8] LOG:  connection received: host=10.0.0.6 port=5001\n"
    "2024-03-01 10:01:00.010 UTC [8] app@shop LOG:  connection authorized: user=app database=shop\n"
    "2024-03-01 10:02:00.000 UTC [8] app@shop LOG:  could not receive data from client: Connection reset by peer\n"
)


@pytest.mark.parametrize("attempt", range(3))
def test_ties_in_documented_order(capsys: pytest.CaptureFixture, tmp_path: Path, attempt: int) -> None:
    from loglib.core.schema import SESSION_END_REASONS
    from loglib.formats.pg_messages import PG_EVENT_KINDS

    log = tmp_path / "pg.log"
    log.write_text(LOG)
    assert cli.main(["connections", str(log), "--prefix", "%m [%p] %q%u@%d ", "-q", "--no-cache"]) == 0
    out = capsys.readouterr().out
    events = next(ln for ln in out.splitlines() if ln.startswith("connection events: "))
    named = [item.rsplit(" ", 1)[0] for item in events.removeprefix("connection events: ").split(", ")]
    counts = [int(item.rsplit(" ", 1)[1]) for item in events.removeprefix("connection events: ").split(", ")]
    assert counts[:3] == [2, 2, 1]
    expected = sorted(named, key=lambda e: (-counts[named.index(e)], PG_EVENT_KINDS.index(e)))
    assert named == expected and len(named) >= 4
    sessions = next(ln for ln in out.splitlines() if ln.startswith("sessions: "))
    reasons = [item.split(":")[0] for item in sessions.split("(", 1)[1].rstrip(")").split(", ")]
    assert reasons == sorted(reasons, key=SESSION_END_REASONS.index) and len(reasons) == 2
