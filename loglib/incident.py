"""``Incident``: an ``incident.toml`` (or the same facts in code) -> parsed, cached, aligned frames.

An incident folder names its sources (files and how to read them), the window, what is known
about the application's pool and the database, and the human events (deploys, restarts,
actions). :meth:`Incident.load` validates all of it with messages that name the key, the
allowed values and what was found; the frames are read on first use and cached (also across
``Incident.load`` calls on unchanged files, so a notebook re-run is instant).
"""

from __future__ import annotations

import contextlib
import glob
import inspect
import itertools
import os
import tomllib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from loglib.analysis.align import align
from loglib.analysis.evidence import AppSettings, Evidence, PostgresSettings, Window
from loglib.analysis.skew import SkewEstimate, apply_offset, parse_offset
from loglib.cache import cached_read, cached_read_report
from loglib.core.progress import step
from loglib.core.rejects import ReadReport, attach_report, read_report
from loglib.core.schema import INCIDENT_EVENT_KINDS, INCIDENT_EVENTS, UTC_TS, conform
from loglib.core.timeparse import parse_instant
from loglib.errors import LoglibError
from loglib.sources.app import read_app_log
from loglib.sources.files import expand_sources
from loglib.sources.pg_activity import capture_paths, read_pg_activity
from loglib.sources.pgbouncer import read_pgbouncer_log
from loglib.sources.pool_events import read_pool_events
from loglib.sources.postgres import read_pg_log
from loglib.sources.prometheus import read_prometheus

SOURCE_KINDS: tuple[str, ...] = ("app", "postgres", "prometheus", "pool_events", "pg_activity", "pgbouncer")
#: the reader of each source kind
READERS: dict[str, Callable[..., pl.DataFrame]] = {
    "app": read_app_log,
    "postgres": read_pg_log,
    "prometheus": read_prometheus,
    "pool_events": read_pool_events,
    "pg_activity": read_pg_activity,
    "pgbouncer": read_pgbouncer_log,
}
#: frame attribute -> the key it is cached under (the source kind, or its own name)
_FRAME_KINDS: dict[str, str] = {
    "app": "app",
    "pg": "postgres",
    "sessions": "sessions",
    "metrics": "prometheus",
    "events": "events",
    "pool_events": "pool_events",
    "pg_activity": "pg_activity",
    "pgbouncer": "pgbouncer",
}
#: options of every source, whatever its kind. ``name`` names the source (``Incident.read(name)``,
#: the "What was read" table); for a ``prometheus`` source a ``name`` the file gives is also
#: ``read_prometheus(name=...)``: the metric name of series whose export has no ``__name__``.
SOURCE_KEYS = ("kind", "paths", "name", "host", "clock_offset")
#: source kinds whose reader takes the source's ``name`` as its own ``name=`` option
_NAME_PASSED = ("prometheus",)
#: reader options that make no sense in a file
_NOT_IN_FILE = ("strict", "raise_if_empty", "chunk_bytes", "rules")
TOP_KEYS = ("title", "description", "start", "end", "sources", "app", "postgres", "events", "windows")
APP_KEYS: dict[str, type | tuple[type, ...]] = {
    "pool_size": int,
    "max_overflow": int,
    "pool_timeout": (int, float),
    "pool_recycle": (int, float),
    "pool_pre_ping": bool,
    "workers": int,
    "instances": int,
    "name": str,
}
POSTGRES_KEYS: dict[str, type | tuple[type, ...]] = {
    "max_connections": int,
    "superuser_reserved_connections": int,
    "idle_session_timeout": (int, float),
    "tcp_keepalives_idle": (int, float),
}
EVENT_KEYS = ("at", "kind", "text", "action", "owner")
WINDOW_KEYS = ("name", "start", "end", "text")
_CACHE_SIZE = 16
_CACHE: OrderedDict[tuple, pl.DataFrame] = OrderedDict()


def forget_frames() -> None:
    """Drop the frames this process keeps across ``Incident.load`` calls (the Parquet cache stays)."""
    _CACHE.clear()


class IncidentError(LoglibError, ValueError):
    """An ``incident.toml`` (or an ``Incident`` built in code) is wrong: the message names the key."""


@dataclass(frozen=True)
class SourceSpec:
    """One ``[[sources]]`` entry: which reader, which files, with which options and clock offset."""

    kind: str
    paths: tuple[str, ...]
    name: str = ""
    host: str | None = None
    clock_offset: timedelta = timedelta(0)
    options: Mapping[str, Any] = field(default_factory=dict)


def _fail(where: str, problem: str) -> IncidentError:
    return IncidentError(f"{where}: {problem}")


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        msg = f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        raise _fail(where, msg)


def parse_time(value: Any, where: str) -> datetime:
    """An RFC 3339 time (TOML datetime or text with ``Z``/offset) as an aware UTC datetime."""
    try:
        return parse_instant(value, argument=where)
    except ValueError as exc:  # TimezoneError too
        raise IncidentError(str(exc)) from None


def _typed(table: Mapping[str, Any], types: Mapping[str, type | tuple[type, ...]], where: str) -> dict:
    _check_keys(table, list(types), where)
    out = {}
    for key, value in table.items():
        want = types[key]
        ok = isinstance(value, want) and not (isinstance(value, bool) and want is not bool)
        if not ok:
            names = " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise _fail(f"{where}.{key}", f"expected {names}, got {value!r}")
        never = key == "pool_recycle" and value == -1  # SQLAlchemy's default: never recycle
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0 and not never:
            raise _fail(f"{where}.{key}", f"must not be negative, got {value!r}")
        out[key] = value
    return out


def reader(kind: str) -> Callable[..., pl.DataFrame]:
    """The ``read_*`` function of a source kind."""
    return READERS[kind]


def _reader_options(kind: str) -> list[str]:
    params = inspect.signature(reader(kind)).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in _NOT_IN_FILE]


def _source(entry: Any, n: int, root: Path, seen: set[str]) -> SourceSpec:
    where = f"sources[{n}]"
    if not isinstance(entry, Mapping):
        raise _fail(where, f"expected a table ([[sources]]), got {entry!r}")
    kind = entry.get("kind")
    if kind not in SOURCE_KINDS:
        raise _fail(f"{where}.kind", f"must be one of {', '.join(SOURCE_KINDS)}; got {kind!r}")
    allowed = [*SOURCE_KEYS, *(k for k in _reader_options(kind) if k not in SOURCE_KEYS)]
    _check_keys(entry, allowed, where)
    paths = entry.get("paths")
    if isinstance(paths, str):
        paths = [paths]
    if not paths or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise _fail(f"{where}.paths", f"expected a list of paths relative to {root}, got {paths!r}")
    for pattern in paths:
        full = pattern if os.path.isabs(pattern) else str(root / pattern)
        if not glob.glob(full):
            raise _fail(f"{where}.paths", f"{pattern!r} matches no file in {root}")
    name = entry.get("name") or (kind if kind not in seen else f"{kind}-{n}")
    if not isinstance(name, str) or name in seen:
        raise _fail(f"{where}.name", f"{name!r} is not a unique source name (taken: {sorted(seen)})")
    seen.add(name)
    host = entry.get("host")
    if host is not None and not isinstance(host, str):
        raise _fail(f"{where}.host", f"expected text, got {host!r}")
    try:
        offset = parse_offset(entry.get("clock_offset", 0), argument=f"{where}.clock_offset")
    except (TypeError, ValueError) as exc:
        raise IncidentError(str(exc)) from None
    opts = {k: v for k, v in entry.items() if k not in SOURCE_KEYS}
    if kind in _NAME_PASSED and "name" in entry:
        opts["name"] = name
    return SourceSpec(kind, tuple(paths), name, host, offset, opts)


def _event(entry: Any, n: int) -> dict[str, Any]:
    where = f"events[{n}]"
    if not isinstance(entry, Mapping):
        raise _fail(where, f"expected a table ([[events]]), got {entry!r}")
    _check_keys(entry, EVENT_KEYS, where)
    if "at" not in entry:
        raise _fail(where, "needs 'at' (when it happened)")
    kind = entry.get("kind", "note")
    if kind not in INCIDENT_EVENT_KINDS:
        raise _fail(f"{where}.kind", f"must be one of {', '.join(INCIDENT_EVENT_KINDS)}; got {kind!r}")
    words = {}
    for key in ("text", "action", "owner"):
        value = entry.get(key, "" if key == "text" else None)
        if value is not None and not isinstance(value, str):
            raise _fail(f"{where}.{key}", f"expected text, got {value!r}")
        words[key] = value
    return {"ts": parse_time(entry["at"], f"{where}.at"), "kind": kind, **words}


def _windows(entries: Any, start: datetime | None, end: datetime | None) -> tuple[Window, ...]:
    if not isinstance(entries, list):
        raise _fail("windows", f"expected [[windows]] tables, got {entries!r}")
    out = []
    for n, entry in enumerate(entries):
        where = f"windows[{n}]"
        if not isinstance(entry, Mapping):
            raise _fail(where, f"expected a table, got {entry!r}")
        _check_keys(entry, WINDOW_KEYS, where)
        for key in ("name", "start", "end"):
            if key not in entry:
                raise _fail(where, f"needs {key!r}")
        w = Window(
            str(entry["name"]),
            parse_time(entry["start"], f"{where}.start"),
            parse_time(entry["end"], f"{where}.end"),
            str(entry.get("text", "")),
        )
        if w.start >= w.end:
            raise _fail(where, f"start {w.start.isoformat()} is not before end {w.end.isoformat()}")
        if (start and w.start < start) or (end and w.end > end):
            raise _fail(where, "lies outside the incident's start..end")
        out.append(w)
    ordered = sorted(out, key=lambda w: w.start)
    for first, second in itertools.pairwise(ordered):
        if second.start < first.end:
            raise _fail("windows", f"{first.name!r} and {second.name!r} overlap ({second.start.isoformat()})")
    return tuple(out)


def _signature(spec: SourceSpec, root: Path, paths: Sequence[str]) -> tuple:
    files = []
    for full in paths:
        for path in sorted(glob.glob(full)):
            st = os.stat(path)
            files.append((os.path.realpath(path), st.st_mtime_ns, st.st_size))
    return (spec.kind, tuple(files), tuple(sorted((k, repr(v)) for k, v in spec.options.items())))


@dataclass
class Incident:
    """An incident: its sources, window, pool and database facts and human events.

    Build it with :meth:`load` from a folder holding ``incident.toml``, or in code::

        Incident(title="Checkout 503s", root="data/x",
                 sources=[SourceSpec("postgres", ("pg/postgresql.log*",))])

    Frames (``app``, ``pg``, ``sessions``, ``metrics``, ``events``, ``pool_events``,
    ``pg_activity``) are read on first use, shifted by each source's ``clock_offset`` and
    cached.
    """

    title: str
    sources: Sequence[SourceSpec] = ()
    root: Path | str = "."
    start: datetime | None = None
    end: datetime | None = None
    description: str = ""
    app_settings: AppSettings = field(default_factory=AppSettings)
    postgres_settings: PostgresSettings = field(default_factory=PostgresSettings)
    declared_events: pl.DataFrame | None = None
    windows: tuple[Window, ...] = ()
    _frames: dict[str, pl.DataFrame] = field(default_factory=dict, init=False, repr=False)
    _reports: dict[str, ReadReport] = field(default_factory=dict, init=False, repr=False)
    #: sources :meth:`check_source` has read (a reader without a report has none in ``_reports``)
    _checked: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.sources = tuple(self.sources)
        names = [s.name or s.kind for s in self.sources]
        if len(set(names)) != len(names):
            msg = f"sources: names must be unique, got {names}"
            raise IncidentError(msg)
        if self.start is not None and self.end is not None and self.start >= self.end:
            msg = f"start {self.start.isoformat()} is not before end {self.end.isoformat()}"
            raise IncidentError(msg)
        if self.declared_events is None:
            self.declared_events = INCIDENT_EVENTS.empty()

    # --- loading --------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> Incident:
        """Read ``incident.toml`` (a folder holding one, or the file itself) and check every key.

        Raises
        ------
        IncidentError
            For an unknown key, a missing file, a bad time, an unknown kind, overlapping
            windows, … : the message names the key (``sources[1].paths: 'app/*.log' matches no
            file in …``).

        Examples
        --------
        >>> import loglib as ll
        >>> inc = ll.Incident.load("data/incidents/pool-exhaustion")   # doctest: +SKIP
        >>> inc.aligned(every="1m")                                    # doctest: +SKIP
        """
        p = Path(path)
        file = p / "incident.toml" if p.is_dir() else p
        if not file.exists():
            msg = f"{file} does not exist (an incident folder holds an incident.toml)"
            raise IncidentError(msg)
        try:
            doc = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            msg = f"{file}: not valid TOML ({exc})"
            raise IncidentError(msg) from None
        try:
            return cls.from_dict(doc, root=file.parent)
        except IncidentError as exc:
            raise IncidentError(f"{file}: {exc}") from None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, root: str | os.PathLike = ".") -> Incident:
        """The same as :meth:`load`, from the parsed TOML (a dict); paths are relative to ``root``."""
        root = Path(root)
        _check_keys(doc, TOP_KEYS, "incident")
        title = doc.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _fail("title", f"needs a non-empty title, got {title!r}")
        start = parse_time(doc["start"], "start") if "start" in doc else None
        end = parse_time(doc["end"], "end") if "end" in doc else None
        if start and end and start >= end:
            raise _fail("start", f"{start.isoformat()} is not before end {end.isoformat()}")
        entries = doc.get("sources", [])
        if not isinstance(entries, list) or not entries:
            raise _fail("sources", "needs at least one [[sources]] table")
        seen: set[str] = set()
        sources = [_source(e, n, root, seen) for n, e in enumerate(entries)]
        app = AppSettings(**_typed(doc.get("app", {}), APP_KEYS, "app"))
        pg = PostgresSettings(**_typed(doc.get("postgres", {}), POSTGRES_KEYS, "postgres"))
        events = doc.get("events", [])
        if not isinstance(events, list):
            raise _fail("events", f"expected [[events]] tables, got {events!r}")
        rows = [_event(e, n) for n, e in enumerate(events)]
        declared = _declared_frame(rows)
        windows = _windows(doc.get("windows", []), start, end)
        return cls(
            title=title,
            sources=sources,
            root=root,
            start=start,
            end=end,
            description=str(doc.get("description", "")),
            app_settings=app,
            postgres_settings=pg,
            declared_events=declared,
            windows=windows,
        )

    # --- frames ---------------------------------------------------------------------------
    def sources_of(self, kind: str) -> list[SourceSpec]:
        """The sources of one kind."""
        return [s for s in self.sources if s.kind == kind]

    def read(self, name: str, *, raw: bool = False) -> pl.DataFrame:
        """The frame of one source by name: read (cached), with its ``clock_offset`` applied unless ``raw``."""
        spec = next((s for s in self.sources if (s.name or s.kind) == name), None)
        if spec is None:
            msg = f"no source named {name!r}; sources: {[s.name or s.kind for s in self.sources]}"
            raise KeyError(msg)
        frame = self._read_raw(spec)
        if not raw and spec.clock_offset:
            frame = apply_offset(frame, spec.clock_offset)
        return frame

    def _paths(self, spec: SourceSpec) -> list[str]:
        paths = [p if os.path.isabs(p) else str(self.root / p) for p in spec.paths]
        if spec.kind == "pg_activity":  # a capture directory (``loglib capture pg-activity --out``)
            paths = [str(p) for p in capture_paths(paths)]  # type: ignore[union-attr]
        return paths

    def _unclaimed(self, spec: SourceSpec) -> tuple[list[str], list[str]]:
        """The files of ``spec`` that no earlier source of its kind reads, and a note for each one
        that one does (two ``[[sources]]`` reaching one file through ``../``, a link or a glob)."""
        earlier = self.sources[: list(self.sources).index(spec)]
        claimed: dict[tuple[int, int], tuple[str, str]] = {}
        for other in earlier:
            if other.kind == spec.kind:
                for src in expand_sources(self._paths(other)):
                    st = os.stat(src.path)
                    claimed.setdefault((st.st_dev, st.st_ino), (src.name, other.name or other.kind))
        keep, notes = [], []
        for src in expand_sources(self._paths(spec)):
            st = os.stat(src.path)
            twin = claimed.get((st.st_dev, st.st_ino))
            if twin is None:
                keep.append(str(src.path))
            else:
                notes.append(
                    f"{src.name} is the same file as {twin[0]} of source {twin[1]!r}: read once, there"
                )
        return keep, notes

    def _plan(self, spec: SourceSpec) -> tuple[Callable[..., pl.DataFrame], list[str], list[str], dict]:
        """``(reader, paths, notes, options)`` of one source: the files no earlier source reads."""
        fn = reader(spec.kind)
        paths, notes = self._paths(spec), []
        if any(other.kind == spec.kind for other in self.sources[: list(self.sources).index(spec)]):
            kept, notes = self._unclaimed(spec)
            if notes:
                paths = kept
        options = dict(spec.options)
        if spec.kind == "prometheus":  # empty answers are answers: the faces say so and go on
            options.setdefault("raise_if_empty", False)
        return fn, paths, notes, options

    def check_source(self, name: str) -> ReadReport | None:
        """Read source ``name`` into the Parquet cache and return its read report, keeping no frame.

        What ``loglib report`` does before its kernel runs: a bad source fails here, and the
        frames are neither held in this process nor, when the cache already has them, loaded
        from it (only the read's report and rejected lines are). None for a source whose reader
        has no read report (pool events, ``pg_activity``).

        Examples
        --------
        >>> inc = ll.Incident.load("data/incidents/pool-exhaustion")  # doctest: +SKIP
        >>> inc.check_source("postgres").lines_read  # doctest: +SKIP
        2874
        """
        spec = next((s for s in self.sources if (s.name or s.kind) == name), None)
        if spec is None:
            msg = f"no source named {name!r}; sources: {[s.name or s.kind for s in self.sources]}"
            raise KeyError(msg)
        fn, paths, notes, options = self._plan(spec)
        key = (id(fn), _signature(spec, self.root, paths))
        if key in _CACHE or not paths:
            self._read_raw(spec)
            return self._reports.get(name)
        with step(f"reading source {name!r} ({spec.kind})"):
            report = cached_read_report(fn, paths, options)
        self._checked.add(name)
        if report is not None:
            report.notes.extend(n for n in notes if n not in report.notes)
            self._reports[name] = report
        return report

    def _read_raw(self, spec: SourceSpec) -> pl.DataFrame:
        fn, paths, notes, options = self._plan(spec)
        key = (id(fn), _signature(spec, self.root, paths))
        if key in _CACHE:
            _CACHE.move_to_end(key)
            frame = _CACHE[key]
        elif paths:
            with step(f"reading source {spec.name or spec.kind!r} ({spec.kind})"):
                frame = cached_read(fn, paths, options)  # Parquet when these files were parsed before
            _CACHE[key] = frame
        else:  # every file is another source's: an empty frame that says so
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frame = fn(b"", raise_if_empty=False)
            frame = attach_report(frame, ReadReport(fn.__name__))
            _CACHE[key] = frame
        if notes:
            report = read_report(frame)
            report.notes.extend(n for n in notes if n not in report.notes)
        with contextlib.suppress(KeyError):  # readers without a read report (pool events, pg_activity)
            self._reports[spec.name or spec.kind] = read_report(frame)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        if spec.host and "host" in frame.columns:
            frame = frame.with_columns(pl.col("host").fill_null(spec.host))
        return frame

    def read_reports(self, *, frames: bool = True) -> dict[str, ReadReport]:
        """The :class:`~loglib.ReadReport` of every source, by source name (reads them all; with
        ``frames=False`` through :meth:`check_source`, keeping no frame, for a source not read yet)."""
        for spec in self.sources:
            if frames:
                self.read(spec.name or spec.kind, raw=True)
            elif (spec.name or spec.kind) not in self._checked.union(self._reports):
                self.check_source(spec.name or spec.kind)
        return {
            s.name or s.kind: self._reports[s.name or s.kind]
            for s in self.sources
            if (s.name or s.kind) in self._reports
        }

    def _combined(self, kind: str) -> pl.DataFrame | None:
        if kind in self._frames:
            return self._frames[kind]
        specs = self.sources_of(kind)
        if not specs:
            return None
        frames = [self.read(s.name or s.kind) for s in specs]
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
        if "ts" in frame.columns and not (frame["ts"].null_count() == 0 and frame["ts"].is_sorted()):
            frame = frame.sort("ts", nulls_last=True, maintain_order=True)  # a copy: only when needed
        self._frames[kind] = frame
        return frame

    @property
    def app(self) -> pl.DataFrame | None:
        """Application events of every ``app`` source (``read_app_log``), or None without one."""
        return self._combined("app")

    @property
    def pg(self) -> pl.DataFrame | None:
        """PostgreSQL entries of every ``postgres`` source (``read_pg_log``), or None."""
        return self._combined("postgres")

    @property
    def metrics(self) -> pl.DataFrame | None:
        """Metric samples of every ``prometheus`` source (``read_prometheus``), or None."""
        return self._combined("prometheus")

    @property
    def pool_events(self) -> pl.DataFrame | None:
        """Pool event logs (``read_pool_events``), or None; raises when the reader is missing."""
        return self._combined("pool_events")

    @property
    def pg_activity(self) -> pl.DataFrame | None:
        """``pg_stat_activity`` samples (``read_pg_activity``), or None; raises when the reader is missing."""
        return self._combined("pg_activity")

    @property
    def pgbouncer(self) -> pl.DataFrame | None:
        """pgBouncer log lines of every ``pgbouncer`` source (``read_pgbouncer_log``), or None."""
        return self._combined("pgbouncer")

    @property
    def evidence(self) -> Evidence:
        """The incident's frames and facts as one :class:`~loglib.Evidence`, built once.

        Every analysis takes it (``ll.findings(inc.evidence)``); derived frames (sessions,
        events, leak rates, findings) are computed once per Evidence.
        """
        ev = self._frames.get("__evidence__")
        if ev is None:
            ev = Evidence(
                app=self.app,
                pg=self.pg,
                metrics=self.metrics,
                pool_events=self.pool_events,
                pg_activity=self.pg_activity,
                pgbouncer=self._combined("pgbouncer"),
                app_settings=self.app_settings,
                postgres_settings=self.postgres_settings,
                declared_events=conform(self.declared_events, INCIDENT_EVENTS),
                windows=tuple(self.windows),
                start=self.start,
                end=self.end,
                title=self.title,
                root=Path(self.root),
            )
            for stored in ("sessions", "events"):  # frames read back by from_sql
                if stored in self._frames:
                    ev._cache[stored] = self._frames[stored]
            self._frames["__evidence__"] = ev
        return ev

    @property
    def sessions(self) -> pl.DataFrame | None:
        """``pg_sessions(pg)``, cached, or None without PostgreSQL logs."""
        return self.evidence.sessions

    @property
    def events(self) -> pl.DataFrame:
        """Declared events plus those detected in the logs (see :attr:`Evidence.events`)."""
        return self.evidence.events

    def frames(self, *, findings: bool = True) -> dict[str, pl.DataFrame]:
        """Every frame this incident has, by attribute name (``app``, ``pg``, ``sessions``,
        ``metrics``, ``events``, ``pool_events``, ``pg_activity``, and ``findings`` as a frame)."""
        out = {name: getattr(self, name) for name in _FRAME_KINDS}
        if findings:
            from loglib.analysis.findings import findings as find
            from loglib.analysis.findings import findings_frame

            out["findings"] = self._frames.get("findings")
            if out["findings"] is None:
                out["findings"] = findings_frame(find(self))
        return {name: frame for name, frame in out.items() if frame is not None}

    def to_sql(self, url: Any = "sqlite:///incident.db", *, incident_id: str | None = None) -> dict[str, int]:
        """Write every frame to an SQL database (:func:`loglib.to_sql`); rerun-safe.

        Examples
        --------
        >>> inc.to_sql("sqlite:///incident.db")  # doctest: +SKIP
        """
        from loglib.store import to_sql

        return to_sql(self.frames(), url, incident_id=incident_id or self.title, title=self.title)

    @classmethod
    def from_sql(cls, url: Any = "sqlite:///incident.db", *, incident_id: str | None = None) -> Incident:
        """An incident whose frames come back from a database written by :meth:`to_sql`.

        The frames are exactly those stored (dtypes and time zones included); there are no
        sources to re-read, and pool/database settings are not stored.

        Examples
        --------
        >>> inc = ll.Incident.from_sql("sqlite:///incident.db", incident_id="Checkout 503s")  # doctest: +SKIP
        """
        from loglib.store import read_sql, sql_incidents

        known = sql_incidents(url)
        if incident_id is None:
            if known.height != 1:
                msg = f"{known.height} incidents in the database; pass incident_id= (one of {known['incident_id'].to_list()})"
                raise IncidentError(msg)
            incident_id = known["incident_id"][0]
        row = known.filter(pl.col("incident_id") == incident_id)
        if row.height == 0:
            msg = f"no incident {incident_id!r} in the database; there are {known['incident_id'].to_list()}"
            raise IncidentError(msg)
        inc = cls(title=row["title"][0] or incident_id)
        for name, frame in read_sql(url, incident_id=incident_id).items():
            inc._frames[_FRAME_KINDS.get(name, name)] = frame
        return inc

    def window(self) -> tuple[datetime, datetime]:
        """``(start, end)``: as declared, else from the earliest to the latest timestamp of the evidence."""
        return self.evidence.window()

    def aligned(self, every: str | timedelta = "1m", *, staleness: str | timedelta = "5m") -> pl.DataFrame:
        """Every source on one UTC grid over the window (see :func:`loglib.align` for columns and fill rules)."""
        key = f"aligned:{every}:{staleness}"
        if key not in self._frames:
            start, end = self.window()
            self._frames[key] = align(
                app=self.app,
                pg=self.pg,
                metrics=self.metrics,
                events=self.events,
                every=every,
                start=start,
                end=end,
                staleness=staleness,
                sessions=self.sessions,  # paired once per incident
            )
        return self._frames[key]

    def with_offset(self, name: str, offset: str | float | timedelta | SkewEstimate) -> Incident:
        """A copy in which source ``name`` has ``clock_offset = offset`` (how far its clock runs ahead)."""
        specs = []
        found = False
        for spec in self.sources:
            if (spec.name or spec.kind) == name:
                spec = replace(spec, clock_offset=parse_offset(offset))
                found = True
            specs.append(spec)
        if not found:
            msg = f"no source named {name!r}; sources: {[s.name or s.kind for s in self.sources]}"
            raise KeyError(msg)
        return replace(self, sources=specs)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{s.name or s.kind} ({s.kind})" for s in self.sources)
        return f"Incident({self.title!r}, sources: {kinds})"


def _declared_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    if not rows:
        return INCIDENT_EVENTS.empty()
    frame = pl.DataFrame(
        rows,
        schema={"ts": UTC_TS, "kind": pl.String, "text": pl.String, "action": pl.String, "owner": pl.String},
    )
    return conform(frame.with_columns(origin=pl.lit("declared")), INCIDENT_EVENTS).sort("ts")  # type: ignore[return-value]
