"""The lock workflow shared by ``hubctl lock``, ``add``, ``remove``, ``sync``, ``run`` and ``install``: a project (or a
script) -> resolution -> pins -> lock file; is a lock still fresh; make the store hold a lock; run a
script against its lock; and ``hubctl install NAME...`` (resolve against what is installed, pin, fetch).
Orchestration only: deciding lives in resolve and :mod:`hubctl.lock.lockfile`, parsing in
:mod:`hubctl.lock.project`, fetching and the store in :mod:`hubctl.sources.fetch` (``pin_file``,
``install_packages``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from hubctl.errors import BadInput, Refused
from hubctl.lock.lockfile import Lock, LockedPackage, inputs_digest, read_lock, write_lock
from hubctl.lock.pin import pin
from hubctl.lock.diff import Change, diff_packages, format_change
from hubctl.lock.project import Project

if TYPE_CHECKING:
    from hubctl.progress import ProgressSink
    from hubctl.sources.fetch import InstallReport

__all__ = [
    "LockResult",
    "Freshness",
    "lock_project",
    "check_lock",
    "ensure_lock",
    "check_hashes_against_index",
    "sync_lock",
    "install",
    "run_script",
    "stale_message",
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


@dataclass
class Freshness:
    """Whether a lock still matches its project: ``fresh``, why not, and which artefacts would change."""

    fresh: bool
    path: Path
    reason: str = ""
    changes: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"fresh": self.fresh, "lock": str(self.path), "reason": self.reason, "changes": [c.to_json() for c in self.changes]}


def _effective_pre(project: Project, pre: bool | None, previous: Lock | None) -> bool:
    """``--pre`` on the command line, the project's setting, or a lock made with ``--pre`` (remembered)."""
    return bool(pre or project.settings.pre or (previous is not None and previous.pre))


def _digest(project: Project, pre: bool) -> str:
    s = project.settings
    return inputs_digest(project.requires, pre=pre, dtype=s.dtype, vram=s.vram)


def _read_previous(project: Project) -> Lock | None:
    return read_lock(project.lock_path) if project.lock_path.exists() else None


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
    """Resolve ``project`` and pin it into its lock file. Existing pins are kept unless ``upgrade`` (all)
    or named in ``upgrade_packages``. Writes only when the bytes change."""
    from packaging.utils import canonicalize_name

    from hubctl.resolve import normalise_requirements, resolve

    if previous is None:
        previous = _read_previous(project)
    eff_pre = _effective_pre(project, pre, None if upgrade else previous)
    ups = {canonicalize_name(n) for n in upgrade_packages}
    if previous is not None and ups:
        unknown = sorted(ups - set(previous.pins()) - set(project.names()))
        if unknown:
            raise BadInput(f"--upgrade-package {unknown[0]}: not in the lock or the requirements")
    kept = None if upgrade or previous is None else Lock(packages=[p for p in previous.packages if p.name not in ups])
    s = project.settings
    res = resolve(
        list(project.requires),
        index,
        pre=eff_pre,
        dtype=s.dtype,
        vram=s.vram,
        locked=kept.pins() if kept else None,
        locked_variants=kept.variant_pins() if kept else None,
    )
    packages = pin(res, previous=kept, pin_file=pin_file)
    lock = Lock(
        packages=sorted(packages, key=lambda p: p.name),
        requires=normalise_requirements(list(project.requires)),
        inputs_digest=_digest(project, eff_pre),
        pre=eff_pre,
        dtype=s.dtype,
        vram=s.vram,
    )
    changes = diff_packages(previous.packages if previous else [], lock.packages)
    written = write_lock(project.lock_path, lock) if write else False
    return LockResult(lock, project.lock_path, previous, changes, written)


def _unsatisfied(project: Project, lock: Lock) -> str | None:
    """A reason when the lock's packages do not satisfy the project's requirements, else None."""
    from packaging.version import Version

    from hubctl.resolve import parse_requirement

    for text in project.requires:
        r = parse_requirement(text)
        p = lock.get(r.name)
        if p is None:
            return f"{r.text} is not in the lock"
        if not r.contains(Version(p.version)):
            return f"the lock has {p.name} {p.version}, which {r.text} does not allow"
    families = {p.family for p in lock.packages}
    if len(families) > 1:
        return f"the lock mixes families {', '.join(sorted(families))}"
    return None


def check_lock(project: Project, index: Any | None, *, pre: bool | None = None, lock: Lock | None = None) -> Freshness:
    """Is the lock fresh for the project? When not, and an index is given, resolve afresh (keeping the lock's
    pins where they still fit) to name each artefact that would change."""
    path = project.lock_path
    if lock is None:
        if not path.exists():
            return Freshness(False, path, f"{path.name} does not exist")
        lock = read_lock(path)
    reason = ""
    if lock.inputs_digest != _digest(project, _effective_pre(project, pre, lock)):
        reason = f"{project.path.name} asks for other requirements or settings than {path.name} was made from"
    else:
        bad = _unsatisfied(project, lock)
        if bad:
            reason = f"{path.name} does not match its inputs: {bad}"
    if not reason:
        return Freshness(True, path)
    changes: list[Change] = []
    if index is not None:
        try:
            fresh = lock_project(project, index, pre=pre, write=False, previous=lock)
            changes = fresh.changes
        except Refused as e:
            reason += f" (and no compatible set exists for it now: {e})"
    return Freshness(False, path, reason, changes)


def stale_message(project: Project, f: Freshness) -> str:
    """One line naming each artefact that differs, and what to do."""
    lock_name, src_name = f.path.name, project.path.name
    parts = [format_change(c, f"in {lock_name}", f"for {src_name}") for c in f.changes]
    detail = ("; ".join(parts)) if parts else f.reason
    fix = f"hubctl lock --script {src_name}" if project.kind == "script" else "hubctl lock"
    return f"{src_name} and {lock_name} disagree: {detail}; run `{fix}` to accept the new set"


def ensure_lock(project: Project, index: Any, *, pre: bool | None = None, relock_stale: bool = False) -> tuple[Lock, LockResult | None]:
    """The project's lock: made when missing; when stale, relocked (``relock_stale``) or refused naming
    each artefact that differs."""
    if not project.lock_path.exists():
        res = lock_project(project, index, pre=pre)
        return res.lock, res
    lock = read_lock(project.lock_path)
    f = check_lock(project, index, pre=pre, lock=lock)
    if f.fresh:
        return lock, None
    if relock_stale:
        res = lock_project(project, index, pre=pre, previous=lock)
        return res.lock, res
    raise Refused(stale_message(project, f))


def check_hashes_against_index(lock: Lock, index: Any, *, origin: str = "hubctl.lock") -> None:
    """Refuse (before anything is fetched or stored) a lock whose sha256 or size for a file differs from what
    the registry states for the same package, version, variant and path (a hand-edited or tampered lock)."""
    for p in lock.packages:
        m = index.get(p.name) if index is not None else None
        v = m.get_version(p.version) if m is not None else None
        var = next((x for x in v.variants if x.name == p.variant), None) if v is not None else None
        if var is None:
            continue
        known = {f.path: f for f in var.files}
        for f in p.files:
            ref = known.get(f.path)
            if ref is None:
                continue
            if ref.sha256 and ref.sha256 != f.sha256:
                raise Refused(
                    f"{origin}: {p.name} {p.version} {f.path}: sha256 {f.sha256[:12]}… differs from the registry's "
                    f"{ref.sha256[:12]}…; the lock was edited or the registry changed (run `hubctl lock --upgrade-package {p.name}`)"
                )
            if ref.size is not None and ref.size != f.size:
                raise Refused(f"{origin}: {p.name} {p.version} {f.path}: size {f.size} differs from the registry's {ref.size}")


def sync_lock(lock: Lock, index: Any | None = None, *, origin: str = "hubctl.lock", progress: bool = True) -> Any:
    """Make the store hold exactly ``lock``: install what is missing, every hash checked, nothing else
    touched (``hubctl.sources.fetch.install_packages``). Hashes are compared with the registry first."""
    from hubctl.sources.fetch import install_packages
    from hubctl.store.blobs import Store

    check_hashes_against_index(lock, index, origin=origin)
    # Create the store's tables once, here, before install_packages fetches in threads (a first-use
    # table creation from several threads at once can race; reported to the store's owner).
    Store().records([])
    return install_packages(list(lock.packages), progress=progress)


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
