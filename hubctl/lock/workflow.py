"""The lock workflow shared by ``hubctl lock``, ``add``, ``remove``, ``sync``, ``run`` and ``install``: write a
project's (or a script's) lock; make sure a lock is fresh before it is used (relocked or refused); make the
store hold a lock; run a script against its lock; and ``hubctl install NAME...`` (resolve against what is
installed, pin, fetch). Orchestration only: what a lock should be and whether it still is lives in
:mod:`hubctl.lock.freshness`, parsing in :mod:`hubctl.lock.project`, fetching and the store in
:mod:`hubctl.sources.fetch` (``pin_file``, ``install_packages``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from hubctl.errors import BadInput, Refused
from hubctl.lock.diff import Change, diff_packages
from hubctl.lock.freshness import freshness, plan_lock, read_project_lock, stale_message
from hubctl.lock.lockfile import Lock, LockedPackage, write_lock
from hubctl.lock.pin import pin
from hubctl.lock.project import Project

if TYPE_CHECKING:
    from hubctl.progress import ProgressSink
    from hubctl.sources.fetch import InstallReport

__all__ = [
    "LockResult",
    "lock_project",
    "ensure_lock",
    "sync_lock",
    "install",
    "run_script",
]


@dataclass
class LockResult:
    """What ``lock_project`` did: the lock, what changed against the previous one, and whether it wrote."""

    lock: Lock
    path: Path
    previous: Lock | None
    changes: list[Change] = field(default_factory=list)
    written: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": str(self.path),
            "written": self.written,
            "inputs_digest": self.lock.inputs_digest,
            "packages": [{"name": p.name, "version": p.version, "kind": p.kind, "family": p.family, "variant": p.variant} for p in sorted(self.lock.packages, key=lambda p: p.name)],
            "changes": [c.to_json() for c in self.changes],
        }


def lock_project(
    project: Project,
    index: Any,
    *,
    upgrade: bool = False,
    upgrade_packages: Iterable[str] = (),
    pre: bool | None = None,
    write: bool = True,
    previous: Lock | None = None,
    pin_file: Callable[..., Any] | None = None,
) -> LockResult:
    """Resolve ``project`` and pin it into its lock file (:func:`hubctl.lock.freshness.plan_lock`: existing
    pins are kept unless ``upgrade`` (all) or named in ``upgrade_packages``, and while the registry agrees
    with them). Writes only when the lock changes."""
    if previous is None:
        previous = read_project_lock(project, index)
    lock = plan_lock(project, index, previous=previous, upgrade=upgrade, upgrade_packages=upgrade_packages, pre=pre, pin_file=pin_file)
    changes = diff_packages(previous.packages if previous else [], lock.packages)
    written = write_lock(project.lock_path, lock) if write else False
    return LockResult(lock, project.lock_path, previous, changes, written)


def ensure_lock(project: Project, index: Any, *, pre: bool | None = None, relock_stale: bool = False) -> tuple[Lock, LockResult | None]:
    """The project's lock, fresh (:func:`hubctl.lock.freshness.freshness`): made when missing; when stale,
    relocked (``relock_stale``) or refused naming each artefact that differs."""
    f = freshness(project, index, pre=pre)
    if f.fresh:
        assert f.lock is not None
        return f.lock, None
    if f.lock is None or relock_stale:
        res = lock_project(project, index, pre=pre, previous=f.lock)
        return res.lock, res
    raise Refused(stale_message(project, f))


def sync_lock(lock: Lock, *, progress: bool = True, lock_path: Path | None = None) -> Any:
    """Make the store hold every file of ``lock`` (a fresh one: :func:`ensure_lock`): fetch what is missing,
    every hash checked, nothing else touched (``hubctl.sources.fetch.install_packages``), and register the
    lock file at ``lock_path`` as a root (gc keeps what it pins while the file keeps its bytes)."""
    from hubctl.sources.fetch import install_packages

    return install_packages(list(lock.packages), progress=progress, lock_path=lock_path)


# --------------------------------------------------------------------------------------------- install by name


def install(
    requirements: list[str],
    *,
    pre: bool = False,
    dtype: Optional[str] = None,
    vram: Optional[str] = None,
    family: Optional[str] = None,
    progress: "bool | ProgressSink" = True,
    index: Any = None,
) -> "InstallReport":
    """``hubctl install NAME[SPEC]...``: the newest versions and variants that fit what is installed
    (installed packages not named are kept at their versions) and ``family`` when given; pinned; fetched;
    recorded. A package named again may change version (its dependants must still fit)."""
    from packaging.utils import canonicalize_name

    from hubctl.resolve import parse_requirement, resolve
    from hubctl.sources.fetch import install_packages, pin_file
    from hubctl.store.installed import installed_packages

    if not requirements:
        raise BadInput("nothing to install: name at least one package")
    if index is None:
        from hubctl.registry.manage import open_index

        index = open_index()
    current = installed_packages()
    named = {parse_requirement(r).name for r in requirements}
    reqs = list(requirements)
    keep = [p for p in current if canonicalize_name(p.name) not in named and index.get(p.name) is not None]
    reqs += [f"{p.name}=={p.version}" for p in keep]
    try:
        res = resolve(
            reqs,
            index,
            pre=pre,
            dtype=dtype,
            vram=vram,
            installed={p.name: p.version for p in current},
            locked_variants={p.name: p.variant for p in current},
            family=family,
        )
    except Refused as e:
        if not keep:
            raise
        kept = ", ".join(f"{p.name} {p.version}" for p in keep)
        raise Refused(f"{e.render()} (installed packages are kept as they are: {kept}; "
                      "name one to change it, or `hubctl uninstall` it)") from None
    picks = [pk for pk in res.picks if pk.name in named or not any(canonicalize_name(k.name) == pk.name for k in keep)]
    res = replace(res, picks=picks)
    packages = pin(res, previous=Lock(packages=list(current)), pin_file=lambda ref: pin_file(ref, progress=progress))
    return install_packages(packages, progress=progress)


def run_script(script: Path, args: list[str], lock_path: Path) -> int:
    """Run ``script`` with the same Python, ``HUBCTL_LOCK`` pointing at its verified lock; its exit code."""
    env = dict(os.environ)
    env["HUBCTL_LOCK"] = str(Path(lock_path).resolve())
    proc = subprocess.run([sys.executable, str(script), *args], env=env)
    return proc.returncode


def lock_packages_summary(packages: Iterable[LockedPackage]) -> list[str]:
    return [p.label() for p in packages]
