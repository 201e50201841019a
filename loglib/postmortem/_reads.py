"""What was read, for a person: one row per source with lines read, parsed and rejected, and the
first rejected lines as ``file:line`` (the postmortem's "What was read" section and summary.md's)."""

from __future__ import annotations

import warnings
from typing import Any

import polars as pl

from loglib.analysis.reads import read_summary
from loglib.errors import RejectedLinesWarning
from loglib.postmortem._summary import Markdown
from loglib.present.export import to_markdown
from loglib.present.markup import md_text
from loglib.present.redact import Redactor


def read_table(incident: Any) -> pl.DataFrame:
    """One row per source of an :class:`~loglib.Incident`: ``source``, ``kind``, ``files``,
    ``lines read``, ``parsed``, ``rejected`` and ``first rejected lines`` (``file:line: reason``,
    known noise such as blank lines is counted but not named), plus ``notes``.

    The sources are read once (an Incident caches them); nothing is read again.

    >>> import loglib as ll
    >>> read_table(ll.Incident.load("data/incidents/idle-drops"))["lines read"].to_list()  # doctest: +SKIP
    [12157, 1575, 14]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedLinesWarning)  # shown in the table instead
        reports = incident.read_reports()
    kinds = {s.name or s.kind: s.kind for s in incident.sources}
    df = read_summary(reports, kinds=kinds)
    return df.select(
        "source",
        "kind",
        "files",
        pl.col("lines_read").alias("lines read"),
        pl.col("lines_parsed").alias("parsed"),
        pl.col("lines_rejected").alias("rejected"),
        pl.col("first_rejects").list.join("; ").alias("first rejected lines"),
        pl.col("notes").list.eval(pl.element().str.slice(0, 200)).list.join("; ").alias("notes"),
    )


def what_was_read(incident: Any, *, redactor: Redactor | None = None) -> Markdown:
    """The "What was read" section as Markdown: :func:`read_table`, and one sentence that says
    how many lines no reader understood (or that every line was read).

    Rejected lines come from logs anyone can write into: with a ``redactor`` their text is
    redacted (the report's and the bundle's default), and Markdown escapes it either way.

    >>> import loglib as ll
    >>> print(what_was_read(ll.Incident.load("data/incidents/idle-drops")))  # doctest: +SKIP
    """
    table = read_table(incident)
    if redactor is not None:
        table = redactor.frame(table)
    rejected = int(table["rejected"].sum()) if table.height else 0
    unnamed = table.filter(pl.col("first rejected lines") != "").height
    if not table.height:
        words = "No source was read."
    elif unnamed:
        words = (
            f"{rejected:,} line(s) were not understood and are left out of every number below; "
            "the first of each source are named as file:line (all of them: `ll.rejects(frame)`)."
        )
    elif rejected:
        words = f"{rejected:,} line(s) were known noise (blank lines, server chatter), counted and left out."
    else:
        words = "Every line was read."
    return Markdown(f"{md_text(words)}\n\n{to_markdown(table)}\n")
