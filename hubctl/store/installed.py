"""What is installed: the state tables of installed packages and their locked files, the queries other
parts ask (``installed_packages()``, ``installed_paths(name)``, the blobs referenced), and the housekeeping
commands over them (``uninstall``, ``verify``, ``gc``).

One version of a package is installed at a time; installing another replaces its record (the old blobs
stay in the store until ``hubctl gc``). Every write is one transaction. URLs are stored redacted, so no
credential reaches the database. Never fetches; blobs are checked and removed through :class:`hubctl.store.blobs.Store`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

from packaging.utils import canonicalize_name

from hubctl.errors import redact
from hubctl.lock.lockfile import LockedFile, LockedPackage

if TYPE_CHECKING:
    from hubctl.progress import ProgressSink
    from hubctl.store.blobs import GcReport

__all__ = [
    "record_installed",
    "installed_packages",
    "installed_package",
    "installed_paths",
    "installed_versions",
    "remove_installed",
    "referenced_blobs",
    "uninstall",
    "UninstallReport",
    "verify_installed",
    "VerifyReport",
    "gc",
]


_tables: dict[str, Any] = {}
_tables_lock = threading.Lock()


def _table_classes() -> tuple[Any, Any]:
    """(InstalledPackageRow, InstalledFileRow), defined on first use so that reads need no sqlmodel.

    installed_packages: one row per installed package (its exact version and variant; tokens, trigger and
    requires as JSON arrays). installed_files: one row per file (path in the package -> blob sha256)."""
    with _tables_lock:
        if not _tables:
            from sqlmodel import Field, SQLModel

            class InstalledPackageRow(SQLModel, table=True):
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
                __tablename__ = "installed_files"

                package: str = Field(primary_key=True)
                path: str = Field(primary_key=True)
                url: str
                size: int
                sha256: str = Field(index=True)
                requested_revision: Optional[str] = None

            _tables["pkg"], _tables["file"] = InstalledPackageRow, InstalledFileRow
        return _tables["pkg"], _tables["file"]


def _engine():  # type: ignore[no-untyped-def]
    from hubctl.db import state_engine
    from hubctl.store.state import ensure_state_tables

    eng = state_engine()
    ensure_state_tables(eng, list(_table_classes()))
    return eng


def record_installed(packages: Iterable[LockedPackage]) -> None:
    """Record ``packages`` as installed (replacing any installed version of the same names), atomically."""
    from sqlmodel import Session, delete

    Pkg, File = _table_classes()
    now = time.time()
    with Session(_engine()) as s:
        for p in packages:
            name = canonicalize_name(p.name)
            s.exec(delete(File).where(File.package == name))  # type: ignore[call-overload]
            s.exec(delete(Pkg).where(Pkg.name == name))  # type: ignore[call-overload]
            s.add(
                Pkg(
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
                    File(
                        package=name,
                        path=f.path,
                        url=redact(f.url),
                        size=f.size,
                        sha256=f.sha256,
                        requested_revision=f.requested_revision,
                    )
                )
        s.commit()


_PKG_COLS = "name, version, kind, family, variant, prediction, layout, dtype, tokens, trigger, requires"
_FILE_COLS = "package, path, url, size, sha256, requested_revision"


def _to_locked(row: tuple[Any, ...], files: list[tuple[Any, ...]]) -> LockedPackage:
    name, version, kind, family, variant, prediction, layout, dtype, tokens, trigger, requires = row
    return LockedPackage(
        name=name,
        version=version,
        kind=kind,
        family=family,
        variant=variant,
        files=tuple(
            LockedFile(path=f[1], url=f[2], size=int(f[3]), sha256=f[4], requested_revision=f[5])
            for f in sorted(files, key=lambda f: f[1])
        ),
        prediction=prediction,
        layout=layout,
        dtype=dtype,
        tokens=tuple(json.loads(tokens or "[]")),
        trigger=tuple(json.loads(trigger or "[]")),
        requires=tuple(json.loads(requires or "[]")),
    )


def installed_packages() -> list[LockedPackage]:
    """Every installed package, by name, as the lock's value type (files pinned by sha256)."""
    from hubctl.store.state import read_state

    rows = read_state(f"SELECT {_PKG_COLS} FROM installed_packages ORDER BY name")
    if not rows:
        return []
    by_pkg: dict[str, list[tuple[Any, ...]]] = {}
    for f in read_state(f"SELECT {_FILE_COLS} FROM installed_files"):
        by_pkg.setdefault(f[0], []).append(f)
    return [_to_locked(r, by_pkg.get(r[0], [])) for r in rows]


def installed_package(name: str) -> Optional[LockedPackage]:
    """The installed package ``name`` (PEP 503 normalised), or None."""
    from hubctl.store.state import read_state

    n = canonicalize_name(name)
    rows = read_state(f"SELECT {_PKG_COLS} FROM installed_packages WHERE name = :n", {"n": n})
    if not rows:
        return None
    return _to_locked(rows[0], read_state(f"SELECT {_FILE_COLS} FROM installed_files WHERE package = :n", {"n": n}))


def installed_versions() -> dict[str, str]:
    """name -> installed version (what the resolver prefers to keep)."""
    return {p.name: p.version for p in installed_packages()}


def installed_paths(name: str) -> dict[str, Path]:
    """The files of an installed package: path inside the package -> the blob in the store holding it.
    Empty when the package is not installed. (Blobs are checked by ``hubctl verify``, not here.)"""
    from hubctl.store.blobs import Store

    p = installed_package(name)
    if p is None:
        return {}
    store = Store()
    return {f.path: store.blob_path(f.sha256) for f in p.files}


def remove_installed(names: Iterable[str]) -> list[str]:
    """Forget installed packages (their blobs stay until gc); returns the names that were installed."""
    from sqlmodel import Session, delete

    Pkg, File = _table_classes()
    removed: list[str] = []
    with Session(_engine()) as s:
        for name in names:
            n = canonicalize_name(name)
            if s.get(Pkg, n) is None:
                continue
            s.exec(delete(File).where(File.package == n))  # type: ignore[call-overload]
            s.exec(delete(Pkg).where(Pkg.name == n))  # type: ignore[call-overload]
            removed.append(n)
        s.commit()
    return removed


def referenced_blobs() -> set[str]:
    """Every sha256 an installed package references (what gc keeps)."""
    from hubctl.store.state import read_state

    return {r[0] for r in read_state("SELECT DISTINCT sha256 FROM installed_files")}


# --------------------------------------------------------------------------------------------- housekeeping


@dataclass
class UninstallReport:
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"removed": self.removed, "not_installed": self.missing}


def uninstall(names: Iterable[str]) -> UninstallReport:
    """Forget installed packages (``hubctl uninstall``; ``hubctl remove`` without a project file). Their
    blobs stay in the store until ``hubctl gc``."""
    from packaging.utils import canonicalize_name

    names = [canonicalize_name(n) for n in names]
    removed = remove_installed(names)
    return UninstallReport(removed=removed, missing=[n for n in names if n not in removed])


@dataclass
class VerifyReport:
    """Each checked file, and the problems (one line each) of those that drifted."""

    checked: int = 0
    hashed: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    bad: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "rehashed": self.hashed, "bytes": self.bytes, "problems": self.bad}


def verify_installed(*, full: bool = False, packages: Optional[list[LockedPackage]] = None,
                     progress: "bool | ProgressSink" = False) -> VerifyReport:
    """Re-check installed files (or ``packages``, e.g. a lock's) against their sha256: an unchanged stat
    costs a stat; a changed stat, or ``full``, means a rehash."""
    from hubctl.progress import make_progress
    from hubctl.store.blobs import Store

    pkgs = installed_packages() if packages is None else packages
    store = Store()
    where: dict[str, list[tuple[LockedPackage, LockedFile]]] = {}
    for p in pkgs:
        for f in p.files:
            where.setdefault(f.sha256, []).append((p, f))
    rep = VerifyReport(checked=sum(len(v) for v in where.values()))
    prog = make_progress(progress)
    with prog:
        task = prog.task("verify", sum(v[0][1].size for v in where.values()) if full else None)
        checks = store.verify(list(where), full=full, progress=task.advance)
    for c in checks:
        if c.how == "hash":
            rep.hashed += 1
        for p, f in where[c.sha256]:
            rep.bytes += f.size
            if not c.ok:
                rep.problems.append(f"{p.name} {p.version}: {f.path}: {c.problem}")
                rep.bad.append({"package": p.name, "version": p.version, "path": f.path, "sha256": f.sha256, "problem": c.problem or ""})
    return rep


def gc(*, dry_run: bool = False, on_wait: Optional[Any] = None) -> "GcReport":
    """Remove blobs no installed package references (and abandoned partial downloads). Waits for running
    installs (``on_wait`` is called once if it must), then reads the references under the store lock."""
    from hubctl.store.blobs import Store

    return Store().gc(referenced_blobs, dry_run=dry_run, on_wait=on_wait)
