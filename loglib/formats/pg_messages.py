"""What PostgreSQL's messages mean for the connection story: the ``event`` rules table.

Messages are matched as PostgreSQL 12–17 print them in English (``lc_messages='C'`` or
``en_*``); the first matching rule wins. Each rule is (event, severities or None, regex).
"""

from __future__ import annotations

import polars as pl

#: (event, severities the rule applies to (None: any), regex on the message)
PG_EVENT_RULES: tuple[tuple[str, tuple[str, ...] | None, str], ...] = (
    ("connection_received", ("LOG",), r"^connection received: "),
    ("connection_authenticated", ("LOG",), r"^connection authenticated: "),
    ("connection_authorized", ("LOG",), r"^(?:connection authorized: |replication connection authorized: )"),
    ("disconnection", ("LOG",), r"^disconnection: session time: "),
    ("too_many_clients", ("FATAL",), r"^sorry, too many clients already"),
    ("reserved_slots", ("FATAL",), r"^remaining connection slots are reserved"),
    (
        "auth_failed",
        ("FATAL",),
        r"^(?:password authentication failed|no pg_hba\.conf entry|\w+ authentication failed for user"
        r"|pg_hba\.conf rejects connection|role \S+ does not exist|role \S+ is not permitted to log in)",
    ),
    (
        "idle_in_transaction_timeout",
        ("FATAL",),
        r"^terminating connection due to idle-in-transaction timeout",
    ),
    ("idle_session_timeout", ("FATAL",), r"^terminating connection due to idle-session timeout"),
    ("terminated_by_admin", ("FATAL",), r"^terminating connection due to administrator command"),
    (
        "client_reset",
        None,
        r"^(?:could not receive data from client: |could not send data to client: |connection to client lost)",
    ),
    ("unexpected_eof", None, r"^unexpected EOF on client connection"),
    ("incomplete_startup", ("LOG", "FATAL"), r"^incomplete startup packet"),
    ("statement_timeout", ("ERROR",), r"^canceling statement due to statement timeout"),
    ("deadlock", ("ERROR",), r"^deadlock detected"),
    (
        "server_not_ready",
        ("FATAL",),
        r"^the database system is (?:starting up|shutting down|in recovery mode|not yet accepting connections|not accepting connections)",
    ),
    (
        "crash_restart",
        None,
        r"^(?:terminating connection because of crash of another server process|terminating any other active server processes"
        r"|server process \(PID \d+\) was terminated by signal|all server processes terminated; reinitializing"
        r"|database system was interrupted|database system was not properly shut down)",
    ),
    ("server_starting", ("LOG",), r"^(?:starting PostgreSQL |database system was shut down at )"),
    ("server_ready", ("LOG",), r"^database system is ready to accept (?:read[- ]only )?connections"),
    (
        "server_shutdown",
        ("LOG",),
        r"^(?:received (?:fast|smart|immediate) shutdown request|database system is shut down"
        r"|aborting any active transactions|shutting down$)",
    ),
)

#: events that end a backend session (the backend exits right after)
SESSION_ENDING = (
    "disconnection",
    "too_many_clients",
    "reserved_slots",
    "auth_failed",
    "incomplete_startup",
    "server_not_ready",
    "idle_in_transaction_timeout",
    "idle_session_timeout",
    "terminated_by_admin",
    "client_reset",
    "unexpected_eof",
)

#: events that mean "the server refused a connection: no slot left"
REFUSAL_EVENTS = ("too_many_clients", "reserved_slots")

#: events that end every session of the server at once
SERVER_ENDING = ("server_shutdown", "crash_restart", "server_starting")

#: how a timeline names a burst of each event it shows (the events worth a row)
PG_EVENT_LABELS: dict[str, str] = {
    "too_many_clients": "PostgreSQL refused connections (too many clients)",
    "reserved_slots": "PostgreSQL refused connections (slots reserved for superusers)",
    "client_reset": "client connections reset",
    "unexpected_eof": "client connections lost (unexpected EOF)",
    "terminated_by_admin": "sessions terminated by an administrator",
    "idle_session_timeout": "sessions closed by idle_session_timeout",
    "idle_in_transaction_timeout": "sessions closed by idle_in_transaction_session_timeout",
    "auth_failed": "authentication failures",
    "crash_restart": "PostgreSQL crash recovery",
}

#: the events a postmortem counts as impact, with how its impact table names them
PG_IMPACT_LABELS: dict[str, str] = {
    "too_many_clients": "PostgreSQL refused connections (too many clients)",
    "reserved_slots": "PostgreSQL refused connections (reserved slots)",
    "client_reset": "connections reset by the client side",
    "unexpected_eof": "connections lost with an open transaction",
    "terminated_by_admin": "connections terminated by shutdown or admin",
    "idle_in_transaction_timeout": "sessions killed idle in transaction",
}

#: the fields of a ``connection received`` message: host, port
RECEIVED_FIELDS = r"^connection received: host=(\S+?)(?: port=(\d+))?$"
#: the fields of a ``connection authorized`` message: user, database, application_name
AUTHORIZED_FIELDS = (
    r"^(?:replication )?connection authorized: user=(\S*)(?: database=(\S*))?"
    r"(?: application_name=(.*?))?(?: SSL enabled.*| GSS .*)?$"
)
#: the fields of a ``disconnection`` message: hours, minutes, seconds, user, database, host, port
DISCONNECTION_FIELDS = (
    r"^disconnection: session time: (\d+):(\d\d):(\d\d(?:\.\d+)?) user=(\S*) database=(\S*) host=(\S*)"
    r"(?: port=(\d+))?"
)

#: event kinds in the order they are documented
PG_EVENT_KINDS: tuple[str, ...] = (*(r[0] for r in PG_EVENT_RULES), "other")


_COMBINED = "^(?:" + "|".join(f"(?:{regex[1:]})" for _, _, regex in PG_EVENT_RULES) + ")"


#: (severity, the rule text starting the message) -> event, for every pair seen in this process:
#: the rules run once per new pair, not once per chunk (and their regexes stay out of polars'
#: per-thread cache, which holds 32)
_EVENT_OF: dict[tuple[str | None, str], str] = {}
_EVENT_OF_MAX = 100_000


def _rules_expr() -> pl.Expr:
    head, sev = pl.col("_event_head"), pl.col("_sev")
    expr: pl.Expr | None = None
    for event, severities, regex in PG_EVENT_RULES:
        cond = head.str.contains(regex)
        if severities is not None:
            cond = cond & sev.is_in(list(severities))
        expr = pl.when(cond).then(pl.lit(event)) if expr is None else expr.when(cond).then(pl.lit(event))
    assert expr is not None
    return expr.otherwise(pl.lit("other"))


def with_event(frame: pl.DataFrame, severity: str = "severity", message: str = "message") -> pl.DataFrame:
    """``frame`` with an ``event`` column named from each row's severity and message.

    One regex pass finds which rule's text starts the message (all rules are anchored at the
    start); the rules are then checked in order on the distinct (severity, start) pairs only,
    a handful per file, each pair once per process, so the cost hardly grows with the number of
    rules or rows. Rows no rule starts with are ``other`` without any check.
    """
    heads = frame.select(
        pl.col(severity).cast(pl.String).alias("_sev"),
        pl.col(message).str.extract(_COMBINED, 0).alias("_event_head"),
    )
    keys = heads.filter(pl.col("_event_head").is_not_null()).unique()
    # looked up once into a local dict: another thread may clear the shared one meanwhile
    events = {k: _EVENT_OF.get(k) for k in keys.iter_rows()}
    new = [k for k, v in events.items() if v is None]
    if new:
        todo = pl.DataFrame(new, schema={"_sev": pl.String, "_event_head": pl.String}, orient="row")
        found = {
            (sev, head): event for sev, head, event in todo.with_columns(event=_rules_expr()).iter_rows()
        }
        events.update(found)
        if len(_EVENT_OF) > _EVENT_OF_MAX:  # rule texts with pids or role names in them: bounded
            _EVENT_OF.clear()
        _EVENT_OF.update(found)
    keys = keys.with_columns(event=pl.Series([events[k] for k in keys.iter_rows()], dtype=pl.String))
    event = heads.join(keys, on=["_sev", "_event_head"], how="left", nulls_equal=True, maintain_order="left")
    return frame.with_columns(event["event"].fill_null("other"))


def classify_pg_message(severity: str, message: str) -> str:
    """The ``event`` of one entry.

    Examples
    --------
    >>> classify_pg_message("FATAL", "sorry, too many clients already")
    'too_many_clients'
    >>> classify_pg_message("LOG", "checkpoint starting: time")
    'other'
    """
    return with_event(pl.DataFrame({"severity": [severity], "message": [message]}))["event"].item()
