"""A safe output folder: checked before any work, locked for one run, cleared only of what loglib wrote.

``loglib report --out OUT`` claims ``OUT`` with :func:`claim_out`: the folder must be writable,
no other run may hold it (an ``fcntl`` lock on ``OUT/.loglib.lock``), and the files the previous
run listed in ``OUT/.loglib-manifest`` are removed first, so the listing is exactly this run's
files. Nothing loglib did not write is ever removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loglib.errors import LoglibError

LOCK = ".loglib.lock"
MANIFEST = ".loglib-manifest"


class OutDirError(LoglibError, OSError):
    """The output folder cannot be written, or another loglib run is writing into it."""


def check_writable(folder: Path, *, flag: str = "--out") -> None:
    """Create ``folder`` (and parents) and prove a file can be written there, or raise OutDirError."""
    try:
        if folder.exists() and not folder.is_dir():
            msg = f"{flag} {str(folder)[:120]!r} is a file, not a folder"
            raise OutDirError(msg)
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".loglib-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if isinstance(exc, OutDirError):
            raise
        msg = f"{flag} {str(folder)[:120]!r} cannot be written: {exc.strerror or exc}"
        raise OutDirError(msg) from None


@dataclass
class Claim:
    """One run's hold on an output folder: what was cleared, and what this run wrote."""

    folder: Path
    cleared: list[str] = field(default_factory=list)

    def record(self, files: Iterable[str | os.PathLike]) -> None:
        """Remember this run's files, so that the next run clears exactly these."""
        rel = sorted({os.path.relpath(Path(f).resolve(), self.folder.resolve()) for f in files})
        inside = [r for r in rel if not r.startswith("..")]
        (self.folder / MANIFEST).write_text(json.dumps({"files": inside}, indent=0))


def _previous(folder: Path) -> list[Path]:
    try:
        listed = json.loads((folder / MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    root = folder.resolve()
    out = []
    for rel in listed:
        p = (folder / str(rel)).resolve()
        if p.is_relative_to(root) and p != root and p.is_file():  # never outside, never a folder
            out.append(p)
    return out


@contextlib.contextmanager
def claim_out(folder: str | os.PathLike, *, flag: str = "--out") -> Iterator[Claim]:
    """Check, lock and clear ``folder`` for one run (see the module docstring).

    Examples
    --------
    >>> with claim_out("out/demo") as claim:        # doctest: +SKIP
    ...     claim.record(["out/demo/report.html"])
    """
    path = Path(folder)
    check_writable(path, flag=flag)
    lock = open(path / LOCK, "a+")  # noqa: SIM115 - held for the whole run, closed below
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            msg = f"{flag} {str(path)[:120]!r} is in use by another loglib run (pid {holder}); wait for it or pick another folder"
            raise OutDirError(msg) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        claim = Claim(path)
        for old in _previous(path):
            old.unlink()
            claim.cleared.append(str(old))
        for d in sorted({p.parent for p in map(Path, claim.cleared)}, key=lambda q: -len(q.parts)):
            with contextlib.suppress(OSError):  # a folder loglib made, now empty; kept if not empty
                if d != path.resolve():
                    d.rmdir()
        yield claim
    finally:
        lock.close()
