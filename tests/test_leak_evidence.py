"""Leaks from PostgreSQL's direct evidence, and the overall rate's denominator (issue 12 defects 2, 4)."""

from __future__ import annotations

from datetime import UTC

import polars as pl
import pytest

import loglib as ll

PREFIX = "%m [%p] %q%u@%d "


def _pooled_leak_log() -> bytes:
    """An app whose 3 pooled sessions all leaked: no clean session to compare with; the app
    died and PostgreSQL logged an EOF with an open transaction for each."""
    lines = []
    for i, pid in enumerate((101, 102, 103)):
        lines.append(
            f"2024-03-01 10:0{i}:00.000 UTC [{pid}] app@shop LOG:  connection authorized: user=app database=shop application_name=api"
        )
        lines.append(f"2024-03-01 10:0{i}:01.000 UTC [{pid}] app@shop LOG:  statement: BEGIN")
        lines.append(f"2024-03-01 10:1{i}:00.000 UTC [{pid}] app@shop LOG:  statement: SELECT 1")
    for pid in (101, 102, 103):
        lines.append(
            f"2024-03-01 10:20:00.000 UTC [{pid}] app@shop LOG:  unexpected EOF on client connection with an open transaction"
        )
        lines.append(
            f"2024-03-01 10:20:00.001 UTC [{pid}] app@shop LOG:  disconnection: session time: 0:20:00.000 user=app database=shop host=10.0.0.1 port=5{pid}"
        )
    # a middlebox reset of another pooled session: not a leak
    lines.append(
        "2024-03-01 10:00:30.000 UTC [104] app@shop LOG:  connection authorized: user=app database=shop application_name=api"
    )
    lines.append(
        "2024-03-01 10:15:00.000 UTC [104] app@shop LOG:  could not receive data from client: Connection reset by peer"
    )
    lines.append(
        "2024-03-01 10:15:00.001 UTC [104] app@shop LOG:  disconnection: session time: 0:14:30.000 user=app database=shop host=10.0.0.1 port=5104"
    )
    return ("\n".join(lines) + "\n").encode()


def test_sessions_keep_that_they_ended_in_an_open_transaction():
    s = ll.pg_sessions(ll.read_pg_log(_pooled_leak_log(), prefix=PREFIX)).sort("pid")
    assert s["open_transaction"].to_list() == [True, True, True, False]
    assert s["end_reason"].to_list() == ["client_reset"] * 4
    # the last activity is the last statement, not the session start
    assert s["last_activity"][0].minute == 10


def test_pg_sessions_counts_direct_evidence_exactly_without_clean_sessions():
    pg = ll.read_pg_log(_pooled_leak_log(), prefix=PREFIX)
    rates = ll.leak_rates(pg=pg, every="1h").filter(pl.col("method") == "pg_sessions")
    assert rates["leaked"].sum() == 3
    assert rates.filter(pl.col("leaked") > 0)["confidence"].to_list() == ["high"]


def test_the_overall_rate_is_leaks_over_the_apps_run_time():
    ev = ll.Incident.load("data/lab/leak-12").evidence
    found = [f for f in ll.findings(ev) if f.kind == "pool_exhaustion"]
    n = found[0].numbers
    app_ts = ev.app["ts"].drop_nulls()
    hours = (app_ts.max() - app_ts.min()).total_seconds() / 3600
    assert n["leaks_per_hour"] == round(n["leaked_total"] / hours, 1)
    assert "run time" in n["leaks_per_hour_over"]
    assert "leaks ÷ the app's run time" in found[0].statement


@pytest.mark.parametrize(("name", "kind"), [("leak-12", "pool_exhaustion"), ("mixed-40", "connection_leak")])
def test_the_overall_rate_states_its_denominator_wherever_it_is_printed(name, kind):
    """Issue 12 defect 4: leaks ÷ the app's run time (first to last line), in the finding of either
    leak shape and in every text that prints it: the finding, the impact table, the advice."""
    inc = ll.Incident.load(f"data/lab/{name}")
    found = ll.findings(inc)
    (f,) = [f for f in found if f.kind == kind]
    n = f.numbers
    app_ts = inc.evidence.app["ts"].drop_nulls()
    hours = (app_ts.max() - app_ts.min()).total_seconds() / 3600
    assert n["leaks_per_hour"] == round(n["leaked_total"] / hours, 1)
    said = f"{n['leaks_per_hour']:g} per hour ("
    texts = [f.statement, *ll.postmortem.impact(inc, found)["value"]]
    texts += ll.postmortem.recommendations([f])["because"].to_list()
    printed = [text for text in texts if said in text]
    assert len(printed) >= 3, texts
    assert all(f"{said}leaks ÷ the app's run time" in text for text in printed), printed


def _idle_tx_metrics(counts: list[int]) -> pl.DataFrame:
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1, 10, 58, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [t0 + timedelta(seconds=15 * i) for i in range(len(counts))],
            "metric": "pg_stat_activity_count",
            "value": [float(c) for c in counts],
            "series": 'pg_stat_activity_count{datname="shop", state="idle in transaction"}',
        }
    )


def test_idle_in_transaction_gauge_counts_persistent_rises_by_utc_hour():
    # a request caught between statements (the lone 1), two leaks before 11:00, a restart, one after
    counts = [0, 1, 0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 0, 1, 1, 1, 1, 1]
    rates = ll.leak_rates(metrics=_idle_tx_metrics(counts), every="1h", method="idle_in_transaction_gauge")
    assert rates["method"].unique().to_list() == ["idle_in_transaction_gauge"]
    assert dict(zip(rates["ts"].dt.hour(), rates["leaked"], strict=True)) == {10: 2.0, 11: 1.0}


def _captured_activity() -> pl.DataFrame:
    """Eight 5 s samples of two backends: 7 goes idle in a transaction at sample 2 and stays."""
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
    rows = []
    for i in range(8):
        rows.append((t0 + timedelta(seconds=5 * i), 7, "idle in transaction" if i >= 2 else "active"))
        rows.append((t0 + timedelta(seconds=5 * i), 8, "idle"))
    act = pl.DataFrame(
        rows, schema={"ts": pl.Datetime("us", "UTC"), "pid": pl.Int64, "state": pl.String}, orient="row"
    )
    return act.with_columns(database=pl.lit("shop"))


def test_idle_in_transaction_gauge_from_captured_activity():
    rates = ll.leak_rates(pg_activity=_captured_activity(), every="1h", method="idle_in_transaction_gauge")
    assert rates["leaked"].sum() == 1


def test_idle_in_transaction_gauge_from_a_capture_folder(tmp_path):
    """The same samples as ``loglib capture pg-activity`` writes them (one Parquet file per sample
    under ``activity/``), read back by ``read_pg_activity`` and named in an incident.toml: one leak."""
    from loglib.capture import SAMPLE_SCHEMA

    folder = tmp_path / "capture" / "activity"
    folder.mkdir(parents=True)
    samples = _captured_activity().select(
        pl.col(name).cast(dtype)
        if name in ("ts", "pid", "state", "database")
        else pl.lit(None, dtype).alias(name)
        for name, dtype in SAMPLE_SCHEMA.items()
    )
    for (ts,), sample in samples.group_by("ts"):
        sample.write_parquet(folder / f"{ts:%Y%m%dT%H%M%S.%fZ}.parquet")
    act = ll.read_pg_activity(tmp_path / "capture", strict=True)
    assert act.height == 16 and act["file"].n_unique() == 8
    rates = ll.leak_rates(pg_activity=act, every="1h", method="idle_in_transaction_gauge")
    assert rates["leaked"].sum() == 1
    (tmp_path / "incident.toml").write_text(
        'title = "capture"\n[[sources]]\nkind = "pg_activity"\npaths = ["capture"]\n'
    )
    got = ll.leak_rates(ll.Incident.load(tmp_path), every="1h", method="idle_in_transaction_gauge")
    assert got["leaked"].sum() == 1


def test_an_unknown_method_is_refused():
    import pytest

    with pytest.raises(ValueError, match="idle_in_transaction_gauge"):
        ll.leak_rates(metrics=_idle_tx_metrics([0, 1]), method="gauge")
