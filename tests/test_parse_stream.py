"""``loglib parse`` streams (issue 17): chunk by chunk into Parquet/CSV, the eager frame exactly,
with the same read report, and a peak memory that does not grow with the file."""

from __future__ import annotations

import gzip
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest

import loglib as ll
from loglib import cli
from loglib.parse_stream import stream_parse
from loglib.present.redact import Redactor
from tests.conftest import CORPUS, ROOT

SAMPLE = ROOT / "data" / "sample-pg" / "postgresql.log"
WILD = ROOT / "tests" / "files" / "wild"
APP = ROOT / "tests" / "files" / "app"
INCIDENTS = ROOT / "data" / "incidents"
EAGER = {"postgres": ll.read_pg_log, "app": ll.read_app_log, "pgbouncer": ll.read_pgbouncer_log}

# (kind, path, options): stderr out of time order, csvlog, jsonlog, noise and rejects, a .gz with
# multi-line entries, bz2, pgBouncer, app logs with tracebacks / without any time / JSON lines
CASES = [
    ("postgres", SAMPLE, {}),
    ("postgres", WILD / "pg15-lc-de.csv", {}),
    ("postgres", WILD / "pg15-lc-de.json", {}),
    ("postgres", WILD / "pg15-lc-fr.log", {}),
    ("postgres", WILD / "pg15-noise.log", {}),
    ("postgres", WILD / "pg15-user-db-app-client.log", {}),
    ("postgres", CORPUS / "pgbadger" / "pg_vacuums.log.gz", {}),
    ("postgres", CORPUS / "pgbadger" / "multiline_param.log", {}),
    ("postgres", CORPUS / "pgbadger" / "rds.log.bz2", {"format": "rds"}),
    ("pgbouncer", CORPUS / "pgbadger" / "pgbouncer.log.gz", {"tz": "UTC"}),
    ("app", INCIDENTS / "idle-drops" / "app" / "app.log",
     {"tz": "UTC", "pattern": "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"}),
    ("app", APP / "spring3.log", {"tz": "UTC"}),
    ("app", APP / "python_howto.log", {"tz": "UTC"}),
    ("app", APP / "uvicorn.log", {}),
    ("app", APP / "pino.json", {}),
]  # fmt: skip


def _decompressed(path: Path) -> bytes:
    import bz2

    data = path.read_bytes()
    return (
        gzip.decompress(data)
        if path.suffix == ".gz"
        else bz2.decompress(data)
        if path.suffix == ".bz2"
        else data
    )


def _head(path: Path, tmp_path: Path, lines: int = 3000) -> Path:
    """A big corpus file's first ``lines`` lines (compressed as it was): the test stays quick."""
    data = _decompressed(path)
    if data.count(b"\n") <= lines:
        return path
    cut = tmp_path / path.name.removesuffix(".bz2").removesuffix(".gz")
    cut = cut.with_name(cut.name + ".gz")
    cut.write_bytes(gzip.compress(b"".join(data.splitlines(keepends=True)[:lines])))
    return cut


def eager(kind: str, paths: list, options: dict) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EAGER[kind](paths, **options)


def written(frame: pl.DataFrame, tmp_path: Path) -> pl.DataFrame:
    """``frame`` as ``loglib parse`` wrote it before streaming: ``write_parquet``, read back."""
    path = tmp_path / "eager.parquet"
    frame.write_parquet(path)
    return pl.read_parquet(path)


def streamed(
    kind: str, paths: list, options: dict, tmp_path: Path, **kw
) -> tuple[pl.DataFrame, ll.ReadReport]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = stream_parse(kind, [str(p) for p in paths], options, tmp_path / "streamed.parquet", **kw)
    return pl.read_parquet(done.out), done.report


def same_report(got: ll.ReadReport, want: ll.ReadReport) -> None:
    assert got.summary() == want.summary()
    assert (got.lines_read, got.lines_parsed, got.entries) == (
        want.lines_read,
        want.lines_parsed,
        want.entries,
    )
    assert got.rejects.equals(want.rejects)  # file, line, reason and text of every rejected line


@pytest.mark.parametrize(("kind", "path", "options"), CASES, ids=lambda c: getattr(c, "name", None))
def test_streamed_equals_eager_with_tiny_chunks(kind: str, path: Path, options: dict, tmp_path: Path) -> None:
    """Chunks of 2 KB and row groups of 5 rows: entries, multi-line records and the merge's runs
    all straddle boundaries, and the Parquet is still the eager frame, with the same report."""
    if not path.exists():
        pytest.skip(f"{path} is not here")
    path = _head(path, tmp_path)
    # about 30 chunks a file (at least 2 KB; the localised csvlog/jsonlog: a record or two a chunk)
    chunk = 512 if "lc-de" in path.name else max(2048, len(_decompressed(path)) // 30)
    want = eager(kind, [path], options)
    got, report = streamed(kind, [path], options, tmp_path, chunk_bytes=chunk, group_rows=5)
    assert got.height > 0 and got.equals(written(want, tmp_path))
    same_report(report, ll.read_report(want))


@pytest.mark.parametrize("fmt", ["csvlog", "jsonlog"])
def test_csvlog_and_jsonlog_in_tiny_chunks(fmt: str, tmp_path: Path) -> None:
    """The sample's entries rendered as csvlog and jsonlog (bench_pg_log's renderings), streamed
    in 4 KB chunks: the eager frame."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_pg_log import build_records

    csv_path, json_path = tmp_path / "pg.csv", tmp_path / "pg.json"
    build_records(SAMPLE, csv_path, json_path, 1)
    path = csv_path if fmt == "csvlog" else json_path
    with path.open("a") as fh:
        fh.write("this is not a record\n")
    want = eager("postgres", [path], {"format": fmt})
    got, report = streamed("postgres", [path], {"format": fmt}, tmp_path, chunk_bytes=4096, group_rows=64)
    assert got.height > 2000 and got.equals(written(want, tmp_path))
    same_report(report, ll.read_report(want))
    assert report.rejects.height == 1


def test_multiline_entries_straddle_chunks(tmp_path: Path) -> None:
    """The chunk size really cuts entries: at 2 KB some entry's lines sit in two chunks."""
    path = CORPUS / "pgbadger" / "pg_vacuums.log.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    path = _head(path, tmp_path, 2000)
    want = eager("postgres", [path], {})
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    ends, at = [], 0
    for line in lines:
        at += len(line) + 1
        ends.append(at)
    starts = want.select("line").to_series().sort().to_list()
    chunk = 2048
    crossing = [
        a
        for a, b in zip(starts, [*starts[1:], len(lines) + 1], strict=True)
        if (ends[a - 1] // chunk) != (ends[b - 2] // chunk)
    ]
    assert crossing, "no entry crosses a 2 KB boundary: the test would not test anything"
    got, _ = streamed("postgres", [path], {}, tmp_path, chunk_bytes=chunk, group_rows=7)
    assert got.equals(written(want, tmp_path))


def test_rotated_and_compressed_set(tmp_path: Path) -> None:
    """A rotated set (``x.log.2.gz``, ``x.log.1``, ``x.log``): oldest first, line numbers per
    file, rejects named by file:line, as the eager read."""
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    third = len(lines) // 3
    folder = tmp_path / "pg"
    folder.mkdir()
    (folder / "postgresql.log.2.gz").write_bytes(gzip.compress(b"".join(lines[:third]) + b"not a log line\n"))
    (folder / "postgresql.log.1").write_bytes(b"".join(lines[third : 2 * third]))
    (folder / "postgresql.log").write_bytes(b"garbage\n" + b"".join(lines[2 * third :]))
    want = eager("postgres", [folder], {})
    got, report = streamed("postgres", [folder], {}, tmp_path, chunk_bytes=1024, group_rows=3)
    assert got.equals(written(want, tmp_path)) and got["file"].n_unique() == 3
    same_report(report, ll.read_report(want))
    assert report.rejects.height == 2 and report.rejects["file"].n_unique() == 2


def test_clock_steps_noted_as_eager(tmp_path: Path) -> None:
    """A clock that steps back (found across chunk boundaries) is noted as the eager read notes it,
    and the rows come out sorted by time, ties and null times in file order."""
    rows = []
    for i in range(400):
        minute = i % 100  # four passes over the same 100 minutes: three steps back of 99 min
        rows.append(
            f"2024-03-01 10:{minute // 60:02d}:{minute % 60:02d}.000 UTC [{i}] LOG:  checkpoint starting: time"
        )
        if i % 50 == 0:
            rows.append("\tcontinued detail line")
    log = tmp_path / "steps.log"
    log.write_text("\n".join(rows) + "\n")
    want = eager("postgres", [log], {})
    assert any("clock steps back" in n for n in ll.read_report(want).notes)
    got, report = streamed("postgres", [log], {}, tmp_path, chunk_bytes=1500, group_rows=4)
    assert got.equals(written(want, tmp_path))
    same_report(report, ll.read_report(want))


def test_redaction_per_chunk_is_the_eager_redaction(tmp_path: Path) -> None:
    """``--redact``: each chunk redacted as the whole frame was; with ``--hosts`` one pseudonym per
    host across chunks."""
    from tests.secrets_corpus import CORPUS as SECRETS

    log = tmp_path / "app.log"
    log.write_text(
        "".join(f"2026-11-22 00:21:{i // 1000:02d},{i % 1000:03d} ERROR api [x] {s.text} from 10.0.{i % 7}.9\n"
                for i, s in enumerate(SECRETS * 3))
    )  # fmt: skip
    options = {"tz": "UTC", "pattern": "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"}
    want = written(Redactor().frame(eager("app", [log], options)), tmp_path)
    got, _ = streamed("app", [log], options, tmp_path, chunk_bytes=1024, redact=Redactor().frame)
    assert got.equals(want) and "[REDACTED]" in "".join(got["message"].to_list())
    got, _ = streamed("app", [log], options, tmp_path, chunk_bytes=1024, redact=Redactor(hosts=True).frame)
    pairs = pl.DataFrame({"raw": eager("app", [log], options)["message"], "red": got["message"]}).unique()
    hosts = pairs.select(
        pl.col("raw").str.extract(r"from (10\.0\.\d\.9)$"), pl.col("red").str.extract(r"from (client-\d+)$")
    ).drop_nulls()
    assert hosts.unique().height == 7 and hosts["red"].n_unique() == 7  # a host, one pseudonym
    assert not any("10.0." in m for m in got["message"].to_list())


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_cli_output_is_the_old_output(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``loglib parse postgres --out x.parquet|csv``: the file the eager command wrote, and the
    same summary lines."""
    log = tmp_path / "pg.log"
    log.write_bytes(SAMPLE.read_bytes() + b"stray line\n")
    out = tmp_path / f"x.{suffix}"
    assert cli.main(["parse", "postgres", str(log), "--out", str(out), "-q", "--redact"]) == 0
    printed = capsys.readouterr().out
    frame = Redactor().frame(eager("postgres", [log], {}))
    want_file = tmp_path / f"want.{suffix}"
    if suffix == "parquet":
        assert pl.read_parquet(out).equals(written(frame, tmp_path))
    else:
        from loglib.present.markup import csv_safe

        csv_safe(frame.select(cli._csv_column(c, t) for c, t in frame.schema.items())).write_csv(want_file)
        assert out.read_bytes() == want_file.read_bytes()
    assert "2,199 lines read in 1 file(s), 2,198 parsed, 1 rejected" in printed
    assert "pg.log:2199" in printed and f"2,198 rows × {frame.width} columns" in printed
    assert not list(tmp_path.glob(".x.*"))  # no temporary file left


def test_pgbouncer_is_a_parse_kind(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = CORPUS / "pgbadger" / "pgbouncer.log.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    out = tmp_path / "b.parquet"
    assert cli.main(["parse", "pgbouncer", str(path), "--out", str(out), "-q", "--tz", "UTC"]) == 0
    assert pl.read_parquet(out).equals(written(eager("pgbouncer", [path], {"tz": "UTC"}), tmp_path))


def test_nothing_to_write_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Lines but no entry: the eager command's one error line, and no file left behind."""
    junk = tmp_path / "junk.log"
    junk.write_text("nothing\nhere\n")
    argv = [
        "parse",
        "postgres",
        str(junk),
        "--out",
        str(tmp_path / "x.parquet"),
        "-q",
        "--prefix",
        "%m [%p] ",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    with pytest.raises(ll.NoDataError) as eager_error:
        eager("postgres", [junk], {"prefix": "%m [%p] "})
    assert err == f"loglib: error: {cli.cli_words(str(eager_error.value))}\n"
    assert "2 line(s) read, 2 rejected" in err
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".x.*"))


def _big_log(path: Path, size_mb: int) -> None:
    """About ``size_mb`` of the sample's lines, repeated with times moved on (bench_pg_log's build)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_pg_log import build

    build(path, size_mb)


def test_peak_memory_does_not_follow_the_file(tmp_path: Path) -> None:
    """``loglib parse`` of a ~300 MB log peaks well below 1 GB (the eager command peaked at 3.7x
    the file, 1.18 GB here, 11x before issue 17's reader work); a fresh process, measured by the kernel."""
    log = tmp_path / "big.log"
    _big_log(log, 300)
    size = log.stat().st_size
    out = tmp_path / "big.parquet"
    code = (
        "import sys; from loglib.cli import main; "  # --no-cache: the eager command parses
        f"rc = main(['parse', 'postgres', {str(log)!r}, '--out', {str(out)!r}, '-q', '--no-cache']); "
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a child of a big pytest
        # process reported the parent's 1.2 GB (full suite) where its own peak was 0.5 GB
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]; "
        "print(int(hwm) * 1024, file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    peak = int(done.stderr.strip().splitlines()[-1])
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    assert rows > 1_000_000
    # 0.45-0.6 GB here: imports, two chunks in flight, one being written, the merge's window
    assert peak < 0.9e9, f"peak RSS {peak / 1e6:,.0f} MB for a {size / 1e6:,.0f} MB log"
    log.unlink()


def test_a_kind_read_whole_refuses_what_cannot_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``loglib parse prometheus`` is not streamed: an input that cannot fit is one error line,
    before any reading; one that fits is read as before."""
    folder = INCIDENTS / "idle-drops" / "prometheus"
    out = tmp_path / "m.parquet"
    monkeypatch.setattr(cli, "EAGER_FACTOR", 10**9)  # as if the input were 10⁹ times bigger
    assert cli.main(["parse", "prometheus", str(folder), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "reads its input whole" in err and "memory available" in err and len(err.splitlines()) == 1
    assert not out.exists()
    monkeypatch.setattr(cli, "EAGER_FACTOR", 12)
    assert cli.main(["parse", "prometheus", str(folder), "--out", str(out), "-q"]) == 0 and out.exists()


def test_a_file_named_twice_is_noted_after_the_scan_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The scan's report keeps what it knew before reading (a file reached twice) once it has run,
    so ``loglib parse`` says it as the eager read does."""
    twice = [str(SAMPLE), str(SAMPLE.parent / ".." / SAMPLE.parent.name / SAMPLE.name)]
    lazy = ll.scan_pg_log(twice)
    lazy.select(pl.len()).collect()
    want = ll.read_report(eager("postgres", twice, {})).notes
    assert want and ll.read_report(lazy).notes == want
    assert cli.main(["parse", "postgres", *twice, "--out", str(tmp_path / "x.parquet"), "-q"]) == 0
    assert "is the same file as" in capsys.readouterr().out


def test_year_reaches_the_syslog_reader(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """BSD syslog stamps carry no year: the reader asks for --year, so parse must take it."""
    path = CORPUS / "pgbadger" / "pg-syslog.2.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    head = tmp_path / "syslog.log"
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as src:
        head.write_text("".join(next(src) for _ in range(400)), encoding="utf-8")
    out = tmp_path / "s.parquet"
    assert cli.main(["parse", "postgres", str(head), "--out", str(out), "-q", "--tz", "UTC"]) == 2
    assert "--year" in capsys.readouterr().err
    assert (
        cli.main(["parse", "postgres", str(head), "--out", str(out), "-q", "--tz", "UTC", "--year", "2024"])
        == 0
    )
    frame = pl.read_parquet(out)
    assert frame.height > 0 and frame["ts"].dt.year().unique().to_list() == [2024]
    assert frame.equals(written(eager("postgres", [head], {"tz": "UTC", "year": 2024}), tmp_path))
