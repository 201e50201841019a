"""``incident.toml`` for a lab recording, written as a user following the README would.

The sources say only what a user knows: the PostgreSQL log's ``log_line_prefix`` (stderr), the
app log's ``logging`` pattern and time zone, where the exports are. Events are declared as the
scenario's ``declare`` says (``all``: restarts and deploys, ``deploys``: deploys only,
``none``), at whole seconds, as people write them down.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path


def _v(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(v)


def _whole(iso: str) -> str:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return datetime.fromtimestamp(round(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_incident_toml(path: Path, sc, truth: dict, *, max_connections: int) -> None:
    """Write ``path`` for scenario ``sc`` with the declared events taken from ``truth``."""
    folder = path.parent
    ext = {"stderr": "log", "csvlog": "csv", "jsonlog": "json"}[sc.pg_format]
    lines = [f"title = {_v(f'Lab {sc.name}: checkout-api ({sc.shape})')}",
             f"start = {_v(_whole(truth['window'][0]))}", f"end = {_v(_whole(truth['window'][1]))}", "",
             "[[sources]]", 'kind = "postgres"', f'paths = ["pg/postgresql.{ext}*"]']  # fmt: skip
    if sc.pg_prefix:
        lines.append(f"prefix = {_v(sc.pg_prefix)}")
    lines += [
        "",
        "[[sources]]",
        'kind = "app"',
        'paths = ["app/*.log*"]',
        'tz = "UTC"',
        'service = "checkout-api"',
    ]
    if sc.logging_pattern:
        lines.append(f"pattern = {_v(sc.logging_pattern)}")
    if (folder / "prometheus").is_dir():
        lines += ["", "[[sources]]", 'kind = "prometheus"', 'paths = ["prometheus/*.json*"]']
    if (folder / "pgbouncer").is_dir():
        lines += ["", "[[sources]]", 'kind = "pgbouncer"', 'paths = ["pgbouncer/pgbouncer.log*"]']
    if (folder / "pool").is_dir():
        lines += ["", "[[sources]]", 'kind = "pool_events"', 'paths = ["pool/*.jsonl*"]']
    lines += ["", "[app]", f"pool_size = {sc.pool_size}", f"max_overflow = {sc.max_overflow}",
              f"pool_timeout = {_v(sc.pool_timeout)}", f"pool_pre_ping = {_v(sc.pool_pre_ping)}", "workers = 1",
              f"instances = {sc.processes}", "", "[postgres]", f"max_connections = {max_connections}",
              "superuser_reserved_connections = 3"]  # fmt: skip
    for r in truth["restarts"]:
        if sc.declare == "none" or (sc.declare == "deploys" and r["kind"] != "deploy"):
            continue
        text = {"restart": "Operator restarted checkout-api", "crash": "checkout-api crashed; supervisor restarted it",
                "deploy": f"Deployed checkout-api {r['text']}"}[r["kind"]]  # fmt: skip
        kind = "deploy" if r["kind"] == "deploy" else "restart"
        at = r["at"]
        if r["kind"] == "deploy":  # a deploy starts at its first step (a PostgreSQL restart comes first)
            at = next((a["at"] for a in truth["after_actions"] if a["kind"] == "deploy" and a["at"] <= r["at"]
                       and a["version"] == r["text"]), at)  # fmt: skip
        lines += ["", "[[events]]", f"at = {_v(_whole(at))}", f'kind = "{kind}"', f"text = {_v(text)}"]
    path.write_text("\n".join(lines) + "\n")
