"""Incident folders for the matrix test: a bundled incident cut to a subset of its sources, its
Prometheus answers rewritten into another shape, written as a person would write incident.toml."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable, Iterable
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INCIDENTS = ROOT / "data" / "incidents"
KINDS = ("app", "postgres", "prometheus")
#: every non-empty subset of an incident's sources: app only, pg only, metrics only, pairs, all
SUBSETS = [c for n in (1, 2, 3) for c in combinations(KINDS, n)]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def dump_toml(doc: dict[str, Any]) -> str:
    """incident.toml's shapes only: scalars, tables of scalars, arrays of tables of scalars."""
    head = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict | list) or _plain(v)]
    body = []
    for key, value in doc.items():
        if isinstance(value, dict):
            body += ["", f"[{key}]"] + [f"{k} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and not _plain(value):
            for item in value:
                body += ["", f"[[{key}]]"] + [f"{k} = {toml_value(v)}" for k, v in item.items()]
    return "\n".join(head + body) + "\n"


def _plain(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict) for v in value)


# --- Prometheus answer shapes ---------------------------------------------------------------


def _series(doc: dict) -> list[dict]:
    return doc["data"]["result"]


def _unnamed(doc: dict) -> dict:
    """Aggregations and expressions (``sum by (state) (...)``): no ``__name__``."""
    for el in _series(doc):
        el["metric"].pop("__name__", None)
    return doc


def _empty(doc: dict) -> dict:
    doc["data"]["result"] = []
    return doc


def _nan_inf(doc: dict) -> dict:
    """Every third sample NaN, +Inf or -Inf (a division by zero, a stale rate)."""
    odd = ["NaN", "+Inf", "-Inf"]
    for el in _series(doc):
        for i, pair in enumerate(el["values"]):
            if i % 3 == 1:
                pair[1] = odd[(i // 3) % 3]
    return doc


def _single(doc: dict) -> dict:
    for el in _series(doc):
        el["values"] = el["values"][:1]
    return doc


def _vector(doc: dict) -> dict:
    """An instant query: ``resultType: vector`` with one ``value`` per series."""
    doc["data"]["resultType"] = "vector"
    for el in _series(doc):
        el["value"] = el.pop("values")[-1]
    return doc


def _extra_histogram(docs: dict[str, dict]) -> dict[str, dict]:
    """A classic histogram (``_bucket`` series with ``le``, ``_sum``, ``_count``) beside the rest."""
    stamps = [t for t, _ in _series(docs["up.json"])[0]["values"]]
    result = []
    for le, share in (("0.05", 0.5), ("0.25", 0.8), ("1", 0.95), ("+Inf", 1.0)):
        metric = {"__name__": "http_request_duration_seconds_bucket", "job": "checkout-api", "le": le}
        result.append(
            {"metric": metric, "values": [[t, str(math.floor(i * 4 * share))] for i, t in enumerate(stamps)]}
        )
    for suffix, per in (("_sum", 0.4), ("_count", 4)):
        metric = {"__name__": "http_request_duration_seconds" + suffix, "job": "checkout-api"}
        result.append({"metric": metric, "values": [[t, str(i * per)] for i, t in enumerate(stamps)]})
    docs["http_request_duration_seconds.json"] = _answer(result)
    return docs


def _extra_native_histogram(docs: dict[str, dict]) -> dict[str, dict]:
    """A native histogram answer (``histograms`` instead of ``values``) beside the rest."""
    stamps = [t for t, _ in _series(docs["up.json"])[0]["values"]]
    hist = [
        [
            t,
            {
                "count": str(4 * i),
                "sum": str(0.4 * i),
                "buckets": [[0, "0.01", "0.1", str(3 * i)], [0, "0.1", "1", str(i)]],
            },
        ]
        for i, t in enumerate(stamps)
    ]
    metric = {"__name__": "http_request_duration_seconds", "job": "checkout-api"}
    docs["http_request_duration_native.json"] = _answer([{"metric": metric, "histograms": hist}])
    return docs


def _answer(result: list[dict], rtype: str = "matrix") -> dict:
    return {"status": "success", "data": {"resultType": rtype, "result": result}}


_PER_FILE: dict[str, Callable[[dict], dict]] = {
    "unnamed": _unnamed,
    "empty": _empty,
    "nan_inf": _nan_inf,
    "single": _single,
    "vector": _vector,
}
_WHOLE: dict[str, Callable[[dict[str, dict]], dict[str, dict]]] = {
    "histogram": _extra_histogram,
    "native_histogram": _extra_native_histogram,
}
#: the answer shapes of issue 13; "recorded" is the incident's own (with recording rules and ALERTS)
SHAPES = ("recorded", *_PER_FILE, *_WHOLE)


def write_prometheus(src: Path, dst: Path, shape: str) -> None:
    """The incident's Prometheus answers in ``shape``, written to ``dst``."""
    docs = {p.name: json.loads(p.read_text()) for p in sorted(src.glob("*.json"))}
    if shape in _PER_FILE:
        docs = {name: _PER_FILE[shape](doc) for name, doc in docs.items()}
    elif shape in _WHOLE:
        docs = _WHOLE[shape](docs)
    dst.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        (dst / name).write_text(json.dumps(doc))


def write_cell(incident: str, subset: Iterable[str], shape: str, folder: Path) -> Path:
    """``folder`` holding an incident.toml for ``incident`` with only the sources in ``subset``;
    logs are read where they are (absolute paths), the metrics are rewritten into ``shape``."""
    src = INCIDENTS / incident
    doc = tomllib.loads((src / "incident.toml").read_text())
    keep = set(subset)
    sources = []
    for spec in doc["sources"]:
        if spec["kind"] not in keep:
            continue
        spec = dict(spec)
        if spec["kind"] == "prometheus":
            write_prometheus(src / "prometheus", folder / "prometheus", shape)
        else:
            spec["paths"] = [str(src / p) for p in spec["paths"]]
        sources.append(spec)
    doc["sources"] = sources
    doc["title"] = f"{incident}: {' + '.join(subset)} ({shape} metrics)"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "incident.toml").write_text(dump_toml(doc))
    return folder
