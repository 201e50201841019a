"""Evidence: an incident's typed frames and facts, with each derived frame computed once.

Analysis takes an :class:`Evidence` (or plain frames), never an ``Incident``. An Incident
builds its Evidence once (``inc.evidence``); a notebook with frames and no ``incident.toml``
uses :meth:`Evidence.from_frames`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import polars as pl

from loglib._compat import to_polars
from loglib.core.progress import step
from loglib.core.schema import CHANGE_KINDS, INCIDENT_EVENTS, conform
from loglib.errors import LoglibError

T = TypeVar("T")

#: the frames an Evidence can hold, in the order they are documented
FRAME_NAMES: tuple[str, ...] = ("app", "pg", "metrics", "pool_events", "pg_activity", "pgbouncer")
#: a detected event this close to a declared restart/deploy is the same event
DUPLICATE_GAP = timedelta(seconds=5)


class NoEvidenceError(LoglibError, ValueError):
    """The evidence holds no timestamps at all, so there is no window to work in."""


@dataclass(frozen=True)
class AppSettings:
    """What is known about the application's pool (``[app]``); unknown values stay None."""

    pool_size: int | None = None
    max_overflow: int | None = None
    pool_timeout: float | None = None
    pool_recycle: float | None = None
    pool_pre_ping: bool | None = None
    workers: int | None = None
    instances: int | None = None
    name: str | None = None

    @property
    def capacity(self) -> int | None:
        """Connections one pool can hold: ``pool_size + max_overflow`` (SQLAlchemy's QueuePool)."""
        if self.pool_size is None:
            return None
        return self.pool_size + max(0, self.max_overflow or 0)


@dataclass(frozen=True)
class PostgresSettings:
    """What is known about the database server (``[postgres]``)."""

    max_connections: int | None = None
    superuser_reserved_connections: int | None = None
    idle_session_timeout: float | None = None
    tcp_keepalives_idle: float | None = None

    @property
    def app_slots(self) -> int | None:
        """Connections open to ordinary roles: ``max_connections - superuser_reserved_connections``."""
        if self.max_connections is None:
            return None
        return self.max_connections - (self.superuser_reserved_connections or 0)


@dataclass(frozen=True)
class Window:
    """A named period of the incident (``[[windows]]``), e.g. ``outage`` or ``after fix``."""

    name: str
    start: datetime
    end: datetime
    text: str = ""


@dataclass(frozen=True, eq=False)
class Evidence:
    """An incident's frames and facts; derived frames are computed once and cached.

    Frames (each None when the incident has no such source): ``app`` (``read_app_log``),
    ``pg`` (``read_pg_log``), ``metrics`` (``read_prometheus``/Grafana), ``pool_events``,
    ``pg_activity`` and ``pgbouncer``. Facts: ``app_settings``, ``postgres_settings``,
    ``declared_events`` (incident.toml ``[[events]]``), ``windows``, ``start``/``end`` as
    declared, ``title`` and ``root`` (the folder evidence paths are relative to).

    Derived and cached: :attr:`sessions`, :attr:`events`, :meth:`window` and anything cached
    through :meth:`cached` (leak rates, findings, chart data).

    Examples
    --------
    >>> import polars as pl, loglib as ll
    >>> ev = ll.Evidence.from_frames(pg=ll.read_pg_log(b"2024-03-01 10:00:00.000 UTC [7] LOG:  "
    ...     b"connection received: host=10.0.0.5 port=5000\\n"))
    >>> ev.pg.height, ev.app is None
    (1, True)
    """

    app: pl.DataFrame | None = None
    pg: pl.DataFrame | None = None
    metrics: pl.DataFrame | None = None
    pool_events: pl.DataFrame | None = None
    pg_activity: pl.DataFrame | None = None
    pgbouncer: pl.DataFrame | None = None
    app_settings: AppSettings = field(default_factory=AppSettings)
    postgres_settings: PostgresSettings = field(default_factory=PostgresSettings)
    declared_events: pl.DataFrame = field(default_factory=INCIDENT_EVENTS.empty)
    windows: tuple[Window, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    title: str = ""
    root: Path | None = None
    _cache: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def from_frames(
        cls,
        *,
        app: Any = None,
        pg: Any = None,
        metrics: Any = None,
        pool_events: Any = None,
        pg_activity: Any = None,
        pgbouncer: Any = None,
        events: Any = None,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout: float | None = None,
        workers: int | None = None,
        max_connections: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        title: str = "",
        root: str | Path | None = None,
        app_settings: AppSettings | None = None,
        postgres_settings: PostgresSettings | None = None,
        windows: tuple[Window, ...] = (),
    ) -> Evidence:
        """Evidence from frames a notebook already has (polars or pandas), no incident.toml.

        ``events`` are declared events (columns ``ts``, ``kind``, ``text``, as
        ``INCIDENT_EVENTS``); pool and server facts can be given one by one or as settings.

        Examples
        --------
        >>> import loglib as ll
        >>> ev = ll.Evidence.from_frames(pool_size=5, max_overflow=3)
        >>> ev.app_settings.capacity
        8
        """
        if app_settings is None:
            app_settings = AppSettings(
                pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout, workers=workers
            )
        if postgres_settings is None:
            postgres_settings = PostgresSettings(max_connections=max_connections)
        declared = INCIDENT_EVENTS.empty()
        if events is not None:
            declared = to_polars(events)
            if "origin" not in declared.columns:
                declared = declared.with_columns(origin=pl.lit("declared"))
            declared = conform(declared, INCIDENT_EVENTS).sort("ts")  # type: ignore[assignment]
        frames = {
            "app": app,
            "pg": pg,
            "metrics": metrics,
            "pool_events": pool_events,
            "pg_activity": pg_activity,
            "pgbouncer": pgbouncer,
        }
        return cls(
            **{k: None if v is None else to_polars(v) for k, v in frames.items()},
            app_settings=app_settings,
            postgres_settings=postgres_settings,
            declared_events=declared,
            windows=tuple(windows),
            start=start,
            end=end,
            title=title,
            root=None if root is None else Path(root),
        )

    # --- caching ---------------------------------------------------------------------------
    def cached(self, key: Hashable, compute: Callable[[], T], *, progress: bool = True) -> T:
        """``compute()`` once per Evidence and ``key``; later calls return the same object.

        Analyses cache what they derive here (``ev.cached(("leak_rates", "1h"), ...)``), so
        charts, tables and the postmortem share one computation. ``progress=False``: no
        "computing …" line (the caller reports its own step).
        """
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        if not progress:
            value = compute()
            with self._lock:
                return self._cache.setdefault(key, value)
        what = (
            key if isinstance(key, str) else " ".join(map(str, key)) if isinstance(key, tuple) else repr(key)
        )
        with step(f"computing {what}"):  # progress on long ones (sessions, events, leak rates, …)
            value = compute()
        with self._lock:
            return self._cache.setdefault(key, value)

    def frames(self) -> dict[str, pl.DataFrame]:
        """The source frames that exist, by name."""
        return {name: getattr(self, name) for name in FRAME_NAMES if getattr(self, name) is not None}

    def replace(self, **changes: Any) -> Evidence:
        """A new Evidence with some frames or facts changed (and an empty cache)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        values.update(changes)
        return Evidence(**values)

    # --- derived ----------------------------------------------------------------------------
    @property
    def sessions(self) -> pl.DataFrame | None:
        """``pg_sessions(pg)``, computed once, or None without PostgreSQL logs."""
        if self.pg is None:
            return None
        from loglib.analysis.sessions import pg_sessions

        return self.cached("sessions", lambda: pg_sessions(self.pg))

    @property
    def events(self) -> pl.DataFrame:
        """Declared events plus those detected in the logs (``detect_events``), sorted by time.

        A detected "sessions ended at once" within ``DUPLICATE_GAP`` of a declared restart or
        deploy is that same event and is left out.
        """
        return self.cached("events", self._events)

    @property
    def marks(self) -> pl.DataFrame:
        """What the charts mark: :attr:`events` plus pgBouncer's restarts, each compared deploy
        saying what followed it (``loglib.analysis.deploys.deploy_marks``)."""
        from loglib.analysis.deploys import deploy_marks

        return deploy_marks(self)

    def _events(self) -> pl.DataFrame:
        from loglib.analysis.events import detect_events

        declared = conform(self.declared_events, INCIDENT_EVENTS)
        detected = detect_events(app=self.app, pg=self.pg, pgbouncer=self.pgbouncer, sessions=self.sessions)
        human = declared.filter(pl.col("kind").is_in(CHANGE_KINDS))["ts"]
        if human.len() and detected.height:
            near = pl.lit(False)
            for at in human:
                near = near | pl.col("ts").is_between(at - DUPLICATE_GAP, at + DUPLICATE_GAP)
            detected = detected.filter(~((pl.col("origin") == "connections") & near))
        return pl.concat([declared, detected]).sort("ts")

    def window(self) -> tuple[datetime, datetime]:
        """``(start, end)``: as declared, else from the earliest to the latest timestamp of the evidence.

        Raises
        ------
        NoEvidenceError
            When nothing has a timestamp and no start/end is declared.
        """
        return self.cached("window", self._window)

    def _window(self) -> tuple[datetime, datetime]:
        start, end = self.start, self.end
        if start is None or end is None:
            span = self.data_span()
            if span is None:
                msg = f"incident {self.title!r}: no timestamps in any source and no start/end declared"
                raise NoEvidenceError(msg)
            start = start or span[0]
            end = end or span[1]
        return start, end

    def data_span(self, *names: str) -> tuple[datetime, datetime] | None:
        """The earliest and latest ``ts`` of the named frames (default app, pg, metrics), or None."""
        lows, highs = [], []
        for name in names or ("app", "pg", "metrics"):
            frame = getattr(self, name)
            if frame is not None and frame.height and "ts" in frame.columns:
                ts = frame["ts"].drop_nulls()
                if ts.len():
                    lows.append(ts.min())
                    highs.append(ts.max())
        if not lows:
            return None
        return min(lows), max(highs)

    def __repr__(self) -> str:
        have = ", ".join(f"{k}: {v.height:,} rows" for k, v in self.frames().items()) or "no frames"
        return f"Evidence({self.title!r}, {have})"


class HasEvidence(Protocol):
    """Anything that hands out its :class:`Evidence` (an :class:`~loglib.Incident`), so analysis can
    name it in a signature without importing ``loglib.incident``."""

    @property
    def evidence(self) -> Evidence: ...


def as_evidence(data: Any) -> Evidence:
    """``data`` as an Evidence: an Evidence itself, or anything with ``.evidence`` (an Incident).

    Analysis functions call this on their first argument, so ``ll.findings(inc)`` and
    ``ll.findings(inc.evidence)`` are the same call, and ``loglib.analysis`` never imports
    ``loglib.incident``.
    """
    if isinstance(data, Evidence):
        return data
    ev = getattr(data, "evidence", None)
    if isinstance(ev, Evidence):
        return ev
    msg = f"expected an Evidence or an Incident, got {type(data).__name__}"
    raise TypeError(msg)
