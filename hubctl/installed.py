"""What is installed: the state tables of installed packages and their locked files, and the queries
other parts ask (``installed_packages()``, ``installed_paths(name)``, the blobs referenced).

One version of a package is installed at a time; installing another replaces its record (the old blobs
stay in the store until ``hubctl gc``). Every write is one transaction. URLs are stored redacted, so no
credential reaches the database. Knows the state database only: never fetches, never touches blobs.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Iterable, Optional

from packaging.utils import canonicalize_name
from sqlmodel import Field, SQLModel

from hubctl.errors import redact
from hubctl.lock import LockedFile, LockedPackage

__all__ = [
    "InstalledPackageRow",
    "InstalledFileRow",
    "record_installed",
    "installed_packages",
    "installed_package",
    "installed_paths",
    "installed_versions",
    "remove_installed",
    "referenced_blobs",
]


class InstalledPackageRow(SQLModel, table=True):
    """One installed package (its exact version and variant)."""

    __tablename__ = "installed_packages"

    name: str = Field(primary_key=True)
    version: str
    kind: str
    family: str
    variant: str
    prediction: Optional[str] = None
    layout: Optional[str] = None
    dtype: Optional[str] = None
    tokens: str = "[]"
    trigger: str = "[]"
    requires: str = "[]"
    installed_at: float = 0.0


class InstalledFileRow(SQLModel, table=True):
    """One file of an installed package: its path in the package and the blob (sha256) holding it."""

    __tablename__ = "installed_files"

    package: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    url: str
    size: int
    sha256: str = Field(index=True)
    requested_revision: Optional[str] = None


_ready: "weakref.WeakSet[Any]" = weakref.WeakSet()
_ready_lock = threading.Lock()


def _engine():  # type: ignore[no-untyped-def]
    """The state engine, with this module's tables created once per engine (threads and processes may race
    to create them: the loser's "already exists" is fine)."""
    from sqlalchemy.exc import OperationalError

    from hubctl.db import ensure_tables, state_engine

    eng = state_engine()
    if eng not in _ready:
        with _ready_lock:
            if eng not in _ready:
                for attempt in range(5):
                    try:
                        ensure_tables(eng, [InstalledPackageRow, InstalledFileRow])
                        break
                    except OperationalError as e:
                        if "already exists" not in str(e) or attempt == 4:
                            raise
                _ready.add(eng)
    return eng


def record_installed(packages: Iterable[LockedPackage]) -> None:
    """Record ``packages`` as installed (replacing any installed version of the same names), atomically."""
    from sqlmodel import Session, delete

    now = time.time()
    with Session(_engine()) as s:
        for p in packages:
            name = canonicalize_name(p.name)
            s.exec(delete(InstalledFileRow).where(InstalledFileRow.package == name))  # type: ignore[call-overload]
            s.exec(delete(InstalledPackageRow).where(InstalledPackageRow.name == name))  # type: ignore[call-overload]
            s.add(
                InstalledPackageRow(
                    name=name,
                    version=p.version,
                    kind=p.kind,
                    family=p.family,
                    variant=p.variant,
                    prediction=p.prediction,
                    layout=p.layout,
                    dtype=p.dtype,
                    tokens=json.dumps(list(p.tokens)),
                    trigger=json.dumps(list(p.trigger)),
                    requires=json.dumps(list(p.requires)),
                    installed_at=now,
                )
            )
            for f in p.files:
                s.add(
                    InstalledFileRow(
                        package=name,
                        path=f.path,
                        url=redact(f.url),
                        size=f.size,
                        sha256=f.sha256,
                        requested_revision=f.requested_revision,
                    )
                )
        s.commit()


def _to_locked(row: InstalledPackageRow, files: list[InstalledFileRow]) -> LockedPackage:
    return LockedPackage(
        name=row.name,
        version=row.version,
        kind=row.kind,
        family=row.family,
        variant=row.variant,
        files=tuple(
            LockedFile(path=f.path, url=f.url, size=f.size, sha256=f.sha256, requested_revision=f.requested_revision)
            for f in sorted(files, key=lambda f: f.path)
        ),
        prediction=row.prediction,
        layout=row.layout,
        dtype=row.dtype,
        tokens=tuple(json.loads(row.tokens or "[]")),
        trigger=tuple(json.loads(row.trigger or "[]")),
        requires=tuple(json.loads(row.requires or "[]")),
    )


def installed_packages() -> list[LockedPackage]:
    """Every installed package, by name, as the lock's value type (files pinned by sha256)."""
    from sqlmodel import Session, select

    with Session(_engine()) as s:
        rows = list(s.exec(select(InstalledPackageRow).order_by(InstalledPackageRow.name)))
        files = list(s.exec(select(InstalledFileRow)))
    by_pkg: dict[str, list[InstalledFileRow]] = {}
    for f in files:
        by_pkg.setdefault(f.package, []).append(f)
    return [_to_locked(r, by_pkg.get(r.name, [])) for r in rows]


def installed_package(name: str) -> Optional[LockedPackage]:
    """The installed package ``name`` (PEP 503 normalised), or None."""
    from sqlmodel import Session, select

    n = canonicalize_name(name)
    with Session(_engine()) as s:
        row = s.get(InstalledPackageRow, n)
        if row is None:
            return None
        files = list(s.exec(select(InstalledFileRow).where(InstalledFileRow.package == n)))
    return _to_locked(row, files)


def installed_versions() -> dict[str, str]:
    """name -> installed version (what the resolver prefers to keep)."""
    return {p.name: p.version for p in installed_packages()}


def installed_paths(name: str) -> dict[str, Path]:
    """The files of an installed package: path inside the package -> the blob in the store holding it.
    Empty when the package is not installed. (Blobs are checked by ``hubctl verify``, not here.)"""
    from hubctl.store import Store

    p = installed_package(name)
    if p is None:
        return {}
    store = Store()
    return {f.path: store.blob_path(f.sha256) for f in p.files}


def remove_installed(names: Iterable[str]) -> list[str]:
    """Forget installed packages (their blobs stay until gc); returns the names that were installed."""
    from sqlmodel import Session, delete

    removed: list[str] = []
    with Session(_engine()) as s:
        for name in names:
            n = canonicalize_name(name)
            if s.get(InstalledPackageRow, n) is None:
                continue
            s.exec(delete(InstalledFileRow).where(InstalledFileRow.package == n))  # type: ignore[call-overload]
            s.exec(delete(InstalledPackageRow).where(InstalledPackageRow.name == n))  # type: ignore[call-overload]
            removed.append(n)
        s.commit()
    return removed


def referenced_blobs() -> set[str]:
    """Every sha256 an installed package references (what gc keeps)."""
    from sqlalchemy import text

    with _engine().connect() as c:
        return {r[0] for r in c.execute(text("SELECT DISTINCT sha256 FROM installed_files"))}
