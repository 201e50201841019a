"""Static charts drawn later, by another process: figure JSON and a job list in a folder, then one browser.

``loglib report`` runs the postmortem notebook in a kernel that holds the incident's frames;
a browser started there for the bundle's PNG/SVG charts (≈1 GB) would sit on top of them. With
:data:`DEFER_ENV` set in the kernel's environment, :func:`loglib.export_bundle` leaves its
figures (already redacted) in that folder (:func:`queue_figures`), and the report draws them in
one browser after the kernel has exited (:func:`draw_queued`): the peak is the larger of the
two, not their sum. A notebook run by hand draws at once, as before.

Examples
--------
>>> import plotly.graph_objects as go
>>> from loglib.present._deferred import draw_queued, queue_figures
>>> queue_figures([(go.Figure(), "out/charts/x.png", "png")], "out/.pending", scale=2)  # doctest: +SKIP
>>> draw_queued("out/.pending")  # doctest: +SKIP
[PosixPath('out/charts/x.png')]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the environment variable naming the folder where ``export_bundle`` queues its static charts
DEFER_ENV = "LOGLIB_DEFER_CHARTS"
_JOBS = "jobs.json"


def deferred_folder() -> Path | None:
    """The folder :data:`DEFER_ENV` names, or None (draw at once)."""
    value = os.environ.get(DEFER_ENV)
    return Path(value) if value else None


def queue_figures(
    jobs: Sequence[tuple[Any, str | os.PathLike, str]], folder: str | os.PathLike, *, scale: float
) -> None:
    """Write ``(figure, path, format)`` jobs into ``folder``: each figure's JSON once, and the job list
    (appended to: several exports may queue into one folder)."""
    import plotly.io as pio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder / _JOBS
    queued = json.loads(listing.read_text()) if listing.is_file() else []
    names: dict[int, str] = {}
    for fig, path, fmt in jobs:
        if id(fig) not in names:
            names[id(fig)] = f"figure-{len(queued) + len(names)}.json"
            (folder / names[id(fig)]).write_text(pio.to_json(fig), encoding="utf-8")
        queued.append({"figure": names[id(fig)], "path": str(Path(path).resolve()), "format": fmt,
                       "scale": scale})  # fmt: skip
    listing.write_text(json.dumps(queued), encoding="utf-8")


def queued_count(folder: str | os.PathLike) -> int:
    """How many images are queued in ``folder`` (0 when nothing was)."""
    listing = Path(folder) / _JOBS
    return len(json.loads(listing.read_text())) if listing.is_file() else 0


def draw_queued(folder: str | os.PathLike) -> list[Path]:
    """Draw every job queued in ``folder`` in one browser, closed afterwards; return the files written.

    Raises
    ------
    loglib.present.export.ExportError
        When the browser cannot start or draw a figure (as an export in the kernel would have).
    """
    import plotly.io as pio

    from loglib.present._browser import BrowserSession

    listing = Path(folder) / _JOBS
    if not listing.is_file():
        return []
    queued = json.loads(listing.read_text())
    figures: dict[str, Any] = {}
    by_scale: dict[float, list[tuple[Any, str, str]]] = {}
    for job in queued:
        if job["figure"] not in figures:
            figures[job["figure"]] = pio.from_json((Path(folder) / job["figure"]).read_text(encoding="utf-8"))
        by_scale.setdefault(job["scale"], []).append((figures[job["figure"]], job["path"], job["format"]))
    with BrowserSession() as session:
        for scale, jobs in by_scale.items():
            session.write(jobs, scale=scale)
    return [Path(job["path"]) for job in queued]
