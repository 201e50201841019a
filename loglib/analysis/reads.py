"""What was read: one row per source with lines read, parsed and rejected, and the first rejects."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from loglib.core.rejects import ReadReport

#: how many rejected lines each source names (as file:line)
FIRST_REJECTS = 3


def read_summary(
    reports: Mapping[str, ReadReport], *, kinds: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """One row per source: ``source``, ``kind``, ``files``, ``lines_read``, ``lines_parsed``,
    ``lines_rejected``, ``entries``, ``first_rejects`` (``file:line: reason``) and ``notes``.

    Known noise (blank lines, pg_ctl chatter) counts as rejected but is not named in
    ``first_rejects``.

    Examples
    --------
    >>> import loglib as ll
    >>> df = ll.read_pg_log(b"2024-03-01 10:00:00.000 UTC [7] LOG:  connection received: host=a port=1\\n")
    >>> read_summary({"pg": ll.read_report(df)}).select("source", "lines_read", "lines_rejected").row(0)
    ('pg', 1, 0)
    """
    rows = []
    for name, report in reports.items():
        bad = report.unexplained.head(FIRST_REJECTS)
        rows.append(
            {
                "source": name,
                "kind": (kinds or {}).get(name, report.reader.removeprefix("read_")),
                "files": len(report.files),
                "lines_read": report.lines_read,
                "lines_parsed": report.lines_parsed,
                "lines_rejected": report.lines_rejected,
                "entries": report.entries,
                "first_rejects": [
                    f"{r['file']}:{r['line']}: {r['reason'][:120]}" for r in bad.iter_rows(named=True)
                ],
                "notes": list(report.notes),
            }
        )
    schema = {
        "source": pl.String, "kind": pl.String, "files": pl.Int64, "lines_read": pl.Int64,
        "lines_parsed": pl.Int64, "lines_rejected": pl.Int64, "entries": pl.Int64,
        "first_rejects": pl.List(pl.String), "notes": pl.List(pl.String),
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def read_lines(summary: pl.DataFrame) -> list[str]:
    """The summary as one line per source (plus an indented line per named reject), for a terminal."""
    out = []
    for r in summary.iter_rows(named=True):
        out.append(
            f"{r['source']} ({r['kind']}): {r['lines_read']:,} lines read in {r['files']} file(s), "
            f"{r['lines_parsed']:,} parsed, {r['lines_rejected']:,} rejected"
        )
        out.extend(f"    rejected {x}" for x in r["first_rejects"])
        out.extend(f"    note: {n[:200]}" for n in r["notes"])
    return out
