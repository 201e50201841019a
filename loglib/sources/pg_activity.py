"""``pg_stat_activity`` samples written by ``loglib capture pg-activity`` into the ``pg_activity`` frame."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from loglib.core.rejects import ReadReport, add_rejects, finish_read
from loglib.core.schema import PG_ACTIVITY, PG_ACTIVITY_GAPS, conform
from loglib.errors import NoDataError
from loglib.sources.files import PathsLike, Source, expand_sources


def capture_paths(paths: PathsLike, part: str = "activity") -> PathsLike:
    """A capture directory stands for its ``activity/`` (or ``gaps/``) folder; other paths stay.

    >>> capture_paths(["no/such/dir", "a.parquet"])
    ['no/such/dir', 'a.parquet']
    """
    if isinstance(paths, bytes | bytearray):
        return paths
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out = []
    for item in items:
        p = Path(item).expanduser()
        out.append(str(p / part) if p.is_dir() and (p / part).is_dir() else item)
    return out


def _read_parquet(source: Source) -> pl.DataFrame:
    if source.data is not None:
        return pl.read_parquet(io.BytesIO(source.data))
    return pl.read_parquet(source.path)


def _read_files(paths: PathsLike, part: str, reader: str) -> tuple[list[pl.DataFrame], ReadReport]:
    report = ReadReport(reader, format="parquet")
    frames = []
    try:
        sources = expand_sources(capture_paths(paths, part))
    except NoDataError:
        if part == "gaps":  # a capture without outages has an empty (or no) gaps folder
            return [], report
        raise
    for source in sources:
        report.files.append(source.name)
        try:
            frame = _read_parquet(source)
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            report.lines_read += 1
            reason = f"not a readable Parquet file ({type(exc).__name__}: {str(exc)[:150]})"
            add_rejects(report, source.name, [1], [reason], [""])
            continue
        report.lines_read += frame.height
        report.lines_parsed += frame.height
        frames.append(frame.with_columns(pl.lit(source.name).alias("file"),
                                         pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("line")))  # fmt: skip
    return frames, report


def read_pg_activity(
    paths: PathsLike,
    *,
    strict: bool = False,
    raise_if_empty: bool = True,
) -> pl.DataFrame:
    """Read the ``pg_stat_activity`` samples of a capture (``loglib capture pg-activity``).

    Parameters
    ----------
    paths
        The capture directory (its ``activity/`` folder is read), or Parquet files and globs.
    strict
        Raise :class:`~loglib.errors.ParseError` on a file that is not readable Parquet instead
        of rejecting it (``loglib.rejects``) with a warning.
    raise_if_empty
        Raise :class:`~loglib.errors.NoDataError` when there is no sample (default).

    Returns
    -------
    polars.DataFrame
        The ``pg_activity`` frame (``loglib.schema.PG_ACTIVITY``): one row per backend per sample,
        ordered by ``ts`` and ``pid``; ``file`` is the sample's Parquet file, ``line`` the row in it.

    See Also
    --------
    read_pg_activity_gaps : when the capture could not sample.
    pg_activity_states, pg_idle_in_transaction, pg_oldest_xact : what to ask of it.

    Examples
    --------
    >>> import loglib as ll
    >>> activity = ll.read_pg_activity("incident/activity")  # doctest: +SKIP
    >>> ll.pg_activity_states(activity, every="1m")  # doctest: +SKIP
    """
    frames, report = _read_files(paths, "activity", "read_pg_activity")
    frame = (
        pl.concat([conform(f, PG_ACTIVITY) for f in frames]).sort("ts", "pid", maintain_order=True)
        if frames
        else PG_ACTIVITY.empty()
    )
    if frame.height == 0 and raise_if_empty:
        msg = (
            f"no pg_stat_activity samples in {', '.join(report.files) or 'the input'}; capture some with "
            "`loglib capture pg-activity`, or pass raise_if_empty=False to get an empty frame"
        )
        raise NoDataError(msg)
    return finish_read(frame, report, strict=strict)


def read_pg_activity_gaps(paths: PathsLike) -> pl.DataFrame:
    """The outages of a capture: when it could not sample the server, and why.

    Parameters
    ----------
    paths
        The capture directory (its ``gaps/`` folder is read), or gap Parquet files.

    Returns
    -------
    polars.DataFrame
        The ``pg_activity_gaps`` frame (``loglib.schema.PG_ACTIVITY_GAPS``), oldest first; empty
        when the capture never lost the server. ``end`` is null for a gap the capture ended in.

    Examples
    --------
    >>> import loglib as ll
    >>> ll.read_pg_activity_gaps("incident/activity")  # doctest: +SKIP
    """
    frames, _ = _read_files(paths, "gaps", "read_pg_activity_gaps")
    if not frames:
        return PG_ACTIVITY_GAPS.empty()
    return pl.concat([conform(f, PG_ACTIVITY_GAPS) for f in frames]).sort("start")
