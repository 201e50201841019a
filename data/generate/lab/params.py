"""Scenario parameters drawn from a seed (``draw``) and the lab's catalogue of recorded scenarios.

A scenario is one incident shape (``leak``, ``deploy``, ``idle``, ``mixed`` or ``control``) and
a seed; everything else follows from ``random.Random(seed)``: the pool, the number of app
processes, the request rate, the leak paths and probabilities, restarts, deploys, the
middlebox idle timeout, how PostgreSQL logs, how the app logs and which metrics exist.

>>> s = draw("leak", 11)
>>> s.name, s.shape, 1 <= s.processes <= 3
('leak-11', 'leak', True)
>>> draw("leak", 11) == s
True
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

SHAPES = ("leak", "deploy", "idle", "mixed", "control", "pgbouncer")
#: stderr ``log_line_prefix`` settings the lab draws from (one with ``%t``: whole seconds)
PG_PREFIXES = (
    "%m [%p] %q%u@%d ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p] %q%u@%d/%a ",
    "%m %h(%c) [%p] %u@%d ",
    "%t [%p] %q%u@%d ",
)
PG_FORMATS = ("stderr", "stderr", "stderr", "csvlog", "jsonlog")
APP_LOGGERS = ("logging", "loguru", "structlog")
#: how a process says it started (the wording of home-grown, uvicorn and gunicorn apps)
START_LINES = ("starting", "uvicorn", "gunicorn")
#: logging patterns the app uses in ``logging`` mode
LOGGING_PATTERNS = (
    "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    "%(asctime)s [%(levelname)s] %(name)s: %(message)s",
)

#: the recorded catalogue: (shape, seed). Development set: even seeds; held-out: odd seeds.
CATALOGUE: tuple[tuple[str, int], ...] = (
    ("leak", 10), ("leak", 11), ("leak", 12), ("leak", 13), ("leak", 14), ("leak", 15),
    ("deploy", 20), ("deploy", 21), ("deploy", 22), ("deploy", 23), ("deploy", 24), ("deploy", 25),
    ("idle", 30), ("idle", 31), ("idle", 32), ("idle", 33), ("idle", 34), ("idle", 35),
    ("mixed", 40), ("mixed", 41), ("mixed", 42),
    ("control", 50), ("control", 51),
    ("pgbouncer", 60), ("pgbouncer", 61), ("pgbouncer", 63), ("pgbouncer", 64), ("pgbouncer", 68),
    ("pgbouncer", 130), ("pgbouncer", 2846), ("pgbouncer", 12906),
)  # fmt: skip


def split_of(seed: int) -> str:
    """``dev`` for even seeds, ``heldout`` for odd ones (the rule in ``data/lab/README.md``)."""
    return "dev" if seed % 2 == 0 else "heldout"


@dataclass(frozen=True)
class Action:
    """One orchestrator step, ``at`` seconds after the load started.

    ``kind``: ``restart`` (operator: SIGTERM each process, start it again), ``crash`` (SIGKILL
    one process; its supervisor starts it again), ``deploy`` (optionally restart PostgreSQL or
    pgBouncer first, then roll every process with ``signal``; ``fix`` deploys the version
    without the leak), ``pooler_restart`` (an operator restarts pgBouncer alone: ``signal``
    ``SIGTERM``, its immediate shutdown, or ``SIGKILL``). pgBouncer is down ``pooler_down_s``;
    a deploy stops it with ``pooler_signal``.
    """

    at: float
    kind: str
    signal: str = "SIGTERM"
    process: int | None = None
    db_restart: bool = False
    db_down_s: float = 0.0
    fix: bool = False
    version: str = ""
    pooler_restart: bool = False
    pooler_signal: str = ""
    pooler_down_s: float = 0.0


@dataclass(frozen=True)
class Scenario:
    """Everything a recording needs; ``draw`` makes one from a seed."""

    name: str
    shape: str
    seed: int
    duration_s: float
    processes: int
    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_pre_ping: bool
    rate: float  # requests per second over all processes while traffic flows
    leak_paths: dict[str, float]  # path -> probability that one request on it leaks
    actions: tuple[Action, ...]
    idle_timeout: float | None  # the middlebox's; None: no middlebox
    bursts: tuple[tuple[float, float], ...]  # (start, end) of traffic; empty: traffic all along
    pg_format: str
    pg_prefix: str | None
    pg_timezone: str
    log_statement: bool
    pg_shutdown_logged: bool  # the copied log ends with PostgreSQL's own shutdown
    app_logger: str
    logging_pattern: str | None
    start_line: str
    pool_gauge: bool
    exporter: bool
    pool_event_log: bool
    declare: str  # events declared in incident.toml: all, deploys, none
    query_s: float
    version: str = "1.0.0"
    notes: list[str] = field(default_factory=list)
    #: pgBouncer in front of PostgreSQL (the app connects to it): ``pool_mode``,
    #: ``default_pool_size``, ``max_client_conn``, ``stats_period``; None: the app connects directly
    pgbouncer: dict | None = None

    @property
    def capacity(self) -> int:
        return self.pool_size + self.max_overflow

    def to_dict(self) -> dict:
        return asdict(self)


def _leak_paths(rng: random.Random, rate: float, capacity_total: int) -> dict[str, float]:
    """One or two leaking paths, with probabilities that fill the pools in 60-150 s."""
    to_fill = rng.uniform(60, 150)
    paths = ["/checkout"] if rng.random() < 0.5 else ["/checkout", "/report"]
    share = {"/checkout": 0.6, "/report": 0.15}  # of all requests (see labapp.pick_path)
    per_s = capacity_total / to_fill  # leaks per second wanted
    out = {}
    for p in paths:
        prob = per_s / len(paths) / (rate * share[p])
        out[p] = round(min(0.3, max(0.01, prob)), 3)
    return out


def _deploy(
    rng: random.Random, at: float, version: str, *, db: bool | None = None, fix: bool = False
) -> Action:
    db_restart = rng.random() < 0.7 if db is None else db
    return Action(
        at=round(at, 1), kind="deploy", signal=rng.choice(("SIGTERM", "SIGTERM", "SIGKILL")),
        db_restart=db_restart, db_down_s=round(rng.uniform(5, 14), 1) if db_restart else 0.0,
        fix=fix, version=version,
    )  # fmt: skip


def _bursts(rng: random.Random, duration: float, timeout: float) -> tuple[tuple[float, float], ...]:
    """Traffic bursts with quiet gaps, most of them longer than the idle timeout."""
    out, t = [], 0.0
    while t < duration - timeout - 25:
        active = rng.uniform(20, 40)
        out.append((round(t, 1), round(min(duration - timeout - 5, t + active), 1)))
        quiet = timeout * rng.uniform(1.15, 1.5) if rng.random() < 0.75 else timeout * rng.uniform(0.3, 0.7)
        t += active + quiet
    return tuple(out)


def draw(shape: str, seed: int, *, smoke: bool = False) -> Scenario:
    """The scenario of ``shape`` drawn from ``seed`` (``smoke``: one tiny 70-second leak run)."""
    if shape not in SHAPES:
        msg = f"shape must be one of {SHAPES}; got {shape!r}"
        raise ValueError(msg)
    rng = random.Random(f"{shape}:{seed}")
    processes = rng.choice((1, 1, 2, 2, 3))
    pool_size = rng.randint(2, 6)
    max_overflow = rng.choice((0, 0, 1, 2, 3))
    pool_timeout = rng.choice((1.0, 1.5, 2.0, 3.0))
    rate = round(rng.uniform(2.0, 6.0), 1)
    duration = round(rng.uniform(300, 420))
    idle_timeout = None
    bursts: tuple = ()
    leak: dict[str, float] = {}
    actions: list[Action] = []
    pre_ping = False
    cap_total = (pool_size + max_overflow) * processes
    if shape == "leak" or (shape == "mixed" and seed % 3 != 2):
        leak = _leak_paths(rng, rate, cap_total)
        fill = cap_total / sum(rate * {"/checkout": 0.6, "/report": 0.15}[p] * q for p, q in leak.items())
        how = rng.choice(("operator", "crash", "none"))
        if how == "operator":
            actions.append(
                Action(at=round(min(duration * 0.6, fill + rng.uniform(30, 70)), 1), kind="restart")
            )
        elif how == "crash":
            actions.append(Action(at=round(rng.uniform(0.3, 0.6) * duration, 1), kind="crash", signal="SIGKILL",
                                  process=rng.randrange(processes)))  # fmt: skip
        if shape == "leak" and rng.random() < 0.5:
            actions.append(_deploy(rng, duration * 0.85, "1.0.1", db=False, fix=True))
    if shape == "deploy" or (shape == "mixed" and seed % 3 != 0):
        n = rng.choice((2, 3)) if shape == "deploy" else 1
        slots = [duration * (i + 1) / (n + 1) + rng.uniform(-15, 15) for i in range(n)]
        if shape == "mixed":
            slots = [duration * rng.uniform(0.65, 0.8)]
        actions += [
            _deploy(rng, at, f"1.{i + 1}.0", db=True if i == 0 else None) for i, at in enumerate(slots)
        ]
    if shape == "idle" or (shape == "mixed" and seed % 3 != 1):
        idle_timeout = round(rng.uniform(15, 120) if shape == "idle" else rng.uniform(15, 40), 1)
        duration = max(duration, round(min(480, idle_timeout * 3.3 + 60)))
        bursts = _bursts(rng, duration, idle_timeout)
    pooler = None
    if shape == "pgbouncer":
        pooler = {"pool_mode": rng.choice(("session", "transaction")),
                  "default_pool_size": cap_total + rng.randint(2, 5), "max_client_conn": 100,
                  "stats_period": rng.choice((15, 30, 60))}  # fmt: skip
        at = duration * rng.uniform(0.3, 0.5)
        if rng.random() < 0.5:  # a leak too; pgBouncer restarts before it fills the pools
            leak = _leak_paths(rng, rate, cap_total)
            fill = cap_total / sum(rate * {"/checkout": 0.6, "/report": 0.15}[p] * q for p, q in leak.items())
            at = max(40.0, fill * rng.uniform(0.3, 0.6))
        actions.append(Action(at=round(at, 1), kind="pooler_restart", signal=rng.choice(("SIGTERM", "SIGKILL")),
                              pooler_down_s=round(rng.uniform(1, 6), 1)))  # fmt: skip
        deploy = _deploy(rng, duration * rng.uniform(0.65, 0.8), "1.1.0", db=False, fix=bool(leak))
        if rng.random() < 0.4:  # the deploy restarts pgBouncer first
            deploy = Action(**{**asdict(deploy), "pooler_restart": True, "pooler_signal": "SIGTERM",
                               "pooler_down_s": round(rng.uniform(1, 4), 1)})  # fmt: skip
        actions.append(deploy)
    if shape == "control":
        pre_ping = True
        if seed % 2:
            actions.append(
                Action(at=round(duration * 0.5, 1), kind="deploy", signal="SIGTERM", version="1.0.1")
            )
    pg_format = rng.choice(PG_FORMATS)
    app_logger = rng.choice(APP_LOGGERS)
    exporter = rng.random() < 0.6
    pool_gauge = rng.random() < 0.6
    if smoke:
        processes, pool_size, max_overflow, pool_timeout, rate, duration = 1, 2, 0, 1.0, 3.0, 70
        leak = {"/checkout": 0.05}
        actions = [Action(at=40.0, kind="restart")]
        if pooler:  # the pgBouncer smoke run: a deploy that restarts pgBouncer first
            pooler["pool_mode"], pooler["default_pool_size"] = "transaction", 4
            actions = [Action(at=25.0, kind="pooler_restart", signal="SIGKILL", pooler_down_s=1.0),
                       Action(at=45.0, kind="deploy", version="1.0.1", pooler_restart=True,
                              pooler_signal="SIGTERM", pooler_down_s=1.0)]  # fmt: skip
        idle_timeout, bursts, exporter, pool_gauge = None, (), False, False
    actions.sort(key=lambda a: a.at)
    return Scenario(
        name=f"{'smoke' if smoke else shape}-{seed}",
        shape=shape,
        seed=seed,
        duration_s=float(duration),
        processes=processes,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=pre_ping,
        rate=rate,
        leak_paths=leak,
        actions=tuple(actions),
        idle_timeout=idle_timeout,
        bursts=bursts,
        pg_format=pg_format,
        pg_prefix=rng.choice(PG_PREFIXES) if pg_format == "stderr" else None,
        pg_timezone=rng.choice(("UTC", "UTC", "Europe/Berlin")),
        log_statement=rng.random() < 0.5,
        pg_shutdown_logged=rng.random() < 0.5,
        app_logger=app_logger,
        logging_pattern=rng.choice(LOGGING_PATTERNS) if app_logger == "logging" else None,
        start_line=rng.choice(START_LINES),
        pool_gauge=pool_gauge,
        exporter=exporter,
        pool_event_log=rng.random() < 0.35 and not smoke,
        declare=rng.choice(("all", "all", "deploys", "none")),
        query_s=round(rng.uniform(0.01, 0.06), 3),
        pgbouncer=pooler,
    )
