"""``hubctl.paths()``: inside a script run by ``hubctl run``, the files of its lock, verified, by package.

Reads the lock named by ``HUBCTL_LOCK`` (or the path given), checks every file against the store (stat
cache; a changed stat means a rehash) and returns ``{package: {file path: absolute Path}}``. Refuses
(exit 1) when a file is missing or its bytes changed. Never fetches, never writes the lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from hubctl.errors import BadInput, Refused

__all__ = ["paths"]


def paths(lock: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Path]]:
    """The verified files of ``lock`` (default: ``$HUBCTL_LOCK``), by package name then file path."""
    from hubctl.lock.lockfile import read_lock
    from hubctl.store.blobs import Store

    where = lock if lock is not None else os.environ.get("HUBCTL_LOCK")
    if not where:
        raise BadInput("HUBCTL_LOCK is not set: run this script with `hubctl run SCRIPT.py`, or pass a lock path to hubctl.paths()")
    lk = read_lock(Path(where))
    store = Store()
    by_sha = {f.sha256: (p, f) for p in lk.packages for f in p.files}
    for check in store.verify(list(by_sha)):
        if not check.ok:
            p, f = by_sha[check.sha256]
            raise Refused(f"{where}: {p.name} {p.version} {f.path}: {check.problem}; run `hubctl sync`")
    return {p.name: {f.path: store.blob_path(f.sha256).resolve() for f in p.files} for p in sorted(lk.packages, key=lambda p: p.name)}
