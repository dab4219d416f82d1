"""What is installed: the install set (the root ``hubctl install`` / ``uninstall`` edit, one version per name)
and the queries other parts ask (``installed_packages()``, ``installed_paths(name)``, the blobs referenced),
and the housekeeping commands over every root (``uninstall``, ``verify``, ``gc``, and what ``hubctl list``
shows: each package version with the roots that use it).

Installing another version of a name replaces it in the install set (the old blobs stay in the store until
``hubctl gc``, and stay beyond it while a synced lock pins them). The tables, lock roots and their liveness are
:mod:`hubctl.store.roots`. Never fetches; blobs are checked and removed through :class:`hubctl.store.blobs.Store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

from hubctl.lock.lockfile import LockedFile, LockedPackage
from hubctl.store import roots as _roots

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
    "package_roots",
    "PackageUse",
    "uninstall",
    "UninstallReport",
    "verify_installed",
    "VerifyReport",
    "gc",
]


def record_installed(packages: Iterable[LockedPackage]) -> None:
    """Record ``packages`` in the install set (replacing any installed version of the same names), atomically."""
    _roots.set_packages(packages)


def installed_packages() -> list[LockedPackage]:
    """Every package of the install set, by name, as the lock's value type (files pinned by sha256); one
    snapshot of the state database."""
    return _roots.root_packages()


def installed_package(name: str) -> Optional[LockedPackage]:
    """The installed package ``name`` (PEP 503 normalised), or None."""
    from packaging.utils import canonicalize_name

    n = canonicalize_name(name)
    return next((p for p in installed_packages() if p.name == n), None)


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
    return _roots.remove_packages(names)


def referenced_blobs() -> set[str]:
    """Every sha256 a live root pins (what gc keeps)."""
    return _roots.pinned_blobs(r.key for r in _roots.live_roots() if r.live)


@dataclass
class PackageUse:
    """One package version (name, version, variant) and the roots that use it (``installed`` and lock paths);
    ``stale``: those of its roots that gc will no longer honour (gone or changed)."""

    package: LockedPackage
    roots: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def package_roots() -> list[PackageUse]:
    """Each package version in any root, with the roots that use it (by name, then version)."""
    from packaging.version import InvalidVersion, Version

    state = {r.key: r for r in _roots.live_roots()}
    uses: dict[tuple[str, str, str], PackageUse] = {}
    for key, pkgs in _roots.packages_by_root().items():
        for p in pkgs:
            u = uses.setdefault((p.name, p.version, p.variant), PackageUse(p))
            u.roots.append(key)
            if key in state and not state[key].live:
                u.stale.append(key)

    def order(k: tuple[str, str, str]) -> tuple[Any, ...]:
        try:
            return (k[0], 0, Version(k[1]), k[2])
        except InvalidVersion:
            return (k[0], 1, k[1], k[2])

    out = [uses[k] for k in sorted(uses, key=order)]
    for u in out:
        u.roots.sort(key=lambda r: (r != _roots.INSTALL_ROOT, r))
    return out


# --------------------------------------------------------------------------------------------- housekeeping


@dataclass
class UninstallReport:
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"removed": self.removed, "not_installed": self.missing}


def uninstall(names: Iterable[str]) -> UninstallReport:
    """Forget installed packages (``hubctl uninstall``; ``hubctl remove`` without a project file). Their
    blobs stay in the store until ``hubctl gc`` (and beyond while a synced lock pins them)."""
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
    """Remove blobs no live root pins (and abandoned partial downloads). Waits for running installs and syncs
    (``on_wait`` is called once if it must), then, under the store lock, checks every root: the install set and
    each synced lock whose file still has the same bytes are honoured; a lock gone or changed is dropped (and,
    unless ``dry_run``, forgotten). The report names both."""
    from hubctl.store.blobs import Store

    seen: dict[str, list[_roots.Root]] = {}
    was: dict[str, str] = {}

    def keep() -> set[str]:
        roots = _roots.live_roots()
        seen["honoured"] = [r for r in roots if r.live]
        seen["dropped"] = [r for r in roots if not r.live]
        if seen["dropped"]:
            by_root = _roots.packages_by_root()
            for r in seen["dropped"]:
                for p in by_root.get(r.key, []):
                    for f in p.files:
                        was.setdefault(f.sha256, f"{p.name} {p.version}: {f.path} (in {r.key})")
        if not dry_run:
            _roots.drop_roots(r.key for r in seen["dropped"])
        return _roots.pinned_blobs(r.key for r in seen["honoured"])

    rep = Store().gc(keep, dry_run=dry_run, on_wait=on_wait)
    rep.honoured, rep.dropped = seen.get("honoured", []), seen.get("dropped", [])
    rep.was = {sha: was[sha] for sha in rep.removed if sha in was}
    return rep
