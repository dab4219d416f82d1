"""Is this lock still valid? One answer, used by ``hubctl lock --check``, ``lock``, ``sync``, ``run`` and
``generate``, so that they can never disagree.

A lock is fresh exactly when ``hubctl lock`` would write the same lock: :func:`plan_lock` is what ``lock``
writes (the project's requirements and settings resolved with the lock's pins as preferences, then pinned,
keeping every pin the registry still agrees with); :func:`freshness` makes the same plan offline and
compares. So every rule a relock applies is a freshness rule: the inputs digest, requirements the pins no
longer satisfy, a version the registry yanked or dropped, a sha256, size or source the registry corrected,
the variant the dtype setting asks for, the pre-release setting, the registry's description of a package.
Locks are compared as values (a lock with other line endings or spacing but the same content is fresh).

This module decides and explains; callers render (:func:`stale_message` is the one line) and write
(:mod:`hubctl.lock.workflow`). It never writes and never fetches: a file that a relock would have to ask its
source about makes the lock stale by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from hubctl.errors import BadInput, Refused
from hubctl.lock.diff import Change, diff_packages, format_change
from hubctl.lock.lockfile import Lock, LockedFile, dumps_lock, inputs_digest, read_lock
from hubctl.lock.project import Project

if TYPE_CHECKING:
    from hubctl.lock.pin import Repin
    from hubctl.registry.manifest import FileRef
    from hubctl.resolve import Resolution

__all__ = [
    "Freshness",
    "known_families",
    "read_project_lock",
    "effective_pre",
    "plan_lock",
    "freshness",
    "stale_message",
    "read_fresh_lock",
]


@dataclass
class Freshness:
    """Whether a lock is what ``hubctl lock`` would write now: ``fresh``; when not, why (``reasons``, in
    words, most specific first) and which artefacts a relock changes (``changes``)."""

    fresh: bool
    path: Path
    reason: str = ""
    reasons: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    inputs_changed: bool = False
    lock: Lock | None = None
    explained: set[str] = field(default_factory=set)  # packages whose changed files a reason already names

    def to_json(self) -> dict[str, Any]:
        return {
            "fresh": self.fresh,
            "lock": str(self.path),
            "reason": self.reason,
            "reasons": list(self.reasons),
            "changes": [c.to_json() for c in self.changes],
        }


# --------------------------------------------------------------------------------------------- reading


def known_families(index: Any) -> list[str] | None:
    """The family ids the configured registries declare (None when the index cannot say)."""
    ids = getattr(index, "family_ids", None)
    if callable(ids):
        return list(ids())
    fams = getattr(index, "families", None)
    return list(fams.ids()) if fams is not None and hasattr(fams, "ids") else None


def read_project_lock(project: Project, index: Any) -> Lock | None:
    """The project's lock, read under the manifest's rules with the index's families; None when missing."""
    if not project.lock_path.exists():
        return None
    return read_lock(project.lock_path, known_families=known_families(index))


# --------------------------------------------------------------------------------------------- the plan


def _pre_from_settings(lock: Lock) -> bool:
    """Whether ``lock`` allowed pre-releases because its project's settings said so (its inputs digest was
    taken with ``pre = true``), rather than because ``--pre`` was given on the command line."""
    return lock.pre and lock.inputs_digest == inputs_digest(lock.requires, pre=True, dtype=lock.dtype, vram=lock.vram)


def effective_pre(project: Project, pre: bool | None, previous: Lock | None) -> bool:
    """Pre-releases for this lock: ``--pre`` now, ``pre = true`` in the project's settings, or ``--pre``
    given when ``previous`` was made (remembered in the lock until ``--upgrade``; a ``pre = true`` that
    the settings no longer say is not remembered)."""
    if pre or project.settings.pre:
        return True
    return previous is not None and previous.pre and not _pre_from_settings(previous)


def plan_lock(
    project: Project,
    index: Any,
    *,
    previous: Lock | None,
    upgrade: bool = False,
    upgrade_packages: Iterable[str] = (),
    pre: bool | None = None,
    pin_file: Callable[["FileRef"], LockedFile] | None = None,
) -> Lock:
    """The lock ``hubctl lock`` writes: the project resolved with ``previous``'s versions and variants as
    preferences (all of them dropped with ``upgrade``, or those named in ``upgrade_packages``), pinned
    keeping every file pin the registry still agrees with. Raises Refused when no set exists, BadInput
    for input that does not parse."""
    return _plan(project, index, previous, upgrade, upgrade_packages, pre, pin_file)[0]


def _plan(
    project: Project,
    index: Any,
    previous: Lock | None,
    upgrade: bool,
    upgrade_packages: Iterable[str],
    pre: bool | None,
    pin_file: Callable[["FileRef"], LockedFile] | None,
) -> tuple[Lock, "Resolution", Lock | None]:
    from packaging.utils import canonicalize_name

    from hubctl.lock.pin import pin
    from hubctl.resolve import normalise_requirements, resolve

    ups = {canonicalize_name(n) for n in upgrade_packages}
    if previous is not None and ups:
        unknown = sorted(ups - set(previous.pins()) - set(project.names()))
        if unknown:
            raise BadInput(f"--upgrade-package {unknown[0]}: not in the lock or the requirements")
    eff_pre = effective_pre(project, pre, None if upgrade else previous)
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
    lock = Lock(
        packages=sorted(pin(res, previous=kept, pin_file=pin_file), key=lambda p: p.name),
        requires=normalise_requirements(list(project.requires)),
        inputs_digest=inputs_digest(project.requires, pre=s.pre, dtype=s.dtype, vram=s.vram),
        pre=eff_pre,
        dtype=s.dtype,
        vram=s.vram,
    )
    return lock, res, kept


# --------------------------------------------------------------------------------------------- the answer


_UNPINNED = "unpinned"  # sha256 of a placeholder file: a relock must ask the source


def _offline_pin(asked: list["FileRef"]) -> Callable[["FileRef"], LockedFile]:
    def pin_file(ref: "FileRef") -> LockedFile:
        asked.append(ref)
        return LockedFile(path=ref.path, url=ref.source, size=ref.size if ref.size is not None else -1, sha256=_UNPINNED)

    return pin_file


def _short(value: str) -> str:
    return f"{value[:12]}…" if len(value) == 64 else value


def _repin_words(r: "Repin", lock_name: str) -> str:
    where = f"{r.package} {r.version} {r.path}"
    if r.what == "sha256":
        return f"{where}: the registry says sha256 {_short(r.registry)} ({lock_name} has {_short(r.locked)})"
    if r.what == "size":
        return f"{where}: the registry says {r.registry} bytes ({lock_name} has {r.locked})"
    if r.what == "revision":
        return f"{where}: the registry asks for revision {r.registry} ({lock_name} pinned {r.locked})"
    return f"{where}: the registry names the source {r.registry} ({lock_name} has {r.locked})"


def _why_version_moved(c: Change, index: Any) -> str | None:
    """A locked version a relock leaves because the registry yanked or dropped it."""
    if c.old is None or (c.new is not None and c.new.version == c.old.version):
        return None
    m = index.get(c.old.name)
    v = m.get_version(c.old.version) if m is not None else None
    if m is None:
        return f"{c.old.name} is no longer in any configured registry"
    if v is None:
        return f"{c.old.name} {c.old.version} is no longer in the registry"
    if v.yanked:
        return f"{c.old.name} {c.old.version} is yanked in the registry"
    return None


_META = ("kind", "prediction", "layout", "dtype", "tokens", "trigger", "requires")


def _metadata_words(old: Lock, new: Lock, lock_name: str) -> list[str]:
    """Packages at the same version, variant and files whose description the registry changed."""
    out = []
    a = {p.name: p for p in old.packages}
    for p in new.packages:
        q = a.get(p.name)
        if q is None or (q.version, q.variant) != (p.version, p.variant):
            continue
        fields = [f for f in _META if getattr(p, f) != getattr(q, f)]
        if fields:
            out.append(f"{p.name} {p.version}: the registry's {', '.join(fields)} differ from {lock_name}'s")
    return out


def _inputs_words(project: Project, lock: Lock, plan: Lock) -> str:
    from hubctl.resolve import normalise_requirements

    src, lock_name = project.path.name, project.lock_path.name
    was, now = set(lock.requires), set(normalise_requirements(list(project.requires)))
    parts = []
    if was != now:
        parts += [f"+ {r}" for r in sorted(now - was)] + [f"- {r}" for r in sorted(was - now)]
    for key in ("pre", "dtype", "vram"):
        if getattr(lock, key) != getattr(plan, key):
            parts.append(f"{key} {getattr(plan, key) or 'unset'} (was {getattr(lock, key) or 'unset'})")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{src} asks for other requirements or settings than {lock_name} was made from{detail}"


def freshness(project: Project, index: Any, *, pre: bool | None = None, lock: Lock | None = None) -> Freshness:
    """Is the project's lock exactly what ``hubctl lock`` (with ``pre`` as on its command line) would write
    now? Offline: nothing is fetched or written. BadInput when the lock, the project or a requirement does
    not parse (as ``hubctl lock`` itself would say)."""
    path = project.lock_path
    lock_name = path.name
    if lock is None:
        lock = read_project_lock(project, index)
        if lock is None:
            return Freshness(False, path, f"{lock_name} does not exist", [f"{lock_name} does not exist"])
    asked: list[FileRef] = []
    try:
        plan, res, kept = _plan(project, index, lock, False, (), pre, _offline_pin(asked))
    except Refused as e:
        s = project.settings
        changed = inputs_digest(project.requires, pre=s.pre, dtype=s.dtype, vram=s.vram) != lock.inputs_digest
        head = (f"{project.path.name} asks for other requirements or settings than {lock_name} was made from" if changed
                else f"{lock_name} no longer resolves")
        reason = f"{head} (and no compatible set exists for it now: {e})"
        return Freshness(False, path, reason, [reason], inputs_changed=changed, lock=lock)
    if not asked and dumps_lock(plan) == dumps_lock(lock):
        return Freshness(True, path, lock=lock)
    from hubctl.lock.pin import repins

    changes = diff_packages(lock.packages, plan.packages)
    moved = repins(res, kept)
    reasons = [_repin_words(r, lock_name) for r in moved]
    reasons += [w for w in (_why_version_moved(c, index) for c in changes) if w]
    reasons += _metadata_words(lock, plan, lock_name)
    inputs_changed = plan.inputs_digest != lock.inputs_digest
    if inputs_changed:
        reasons.append(_inputs_words(project, lock, plan))
    elif plan.pre != lock.pre:
        reasons.append(f"pre-releases are {'allowed' if plan.pre else 'no longer allowed'} for {lock_name}")
    if not reasons and not changes:
        reasons.append(f"{lock_name} is not what `hubctl lock` writes (lock-version {lock.lock_version}, created by {lock.created_by})")
    first = reasons[0] if reasons else format_change(changes[0], f"in {lock_name}", "now")
    return Freshness(False, path, first, reasons, changes, inputs_changed, lock, {r.package for r in moved})


def stale_message(project: Project, f: Freshness) -> str:
    """One line: what disagrees (each artefact a relock changes, and why), and what to run."""
    lock_name, src_name = f.path.name, project.path.name
    parts = [r for r in f.reasons if not r.startswith(f"{src_name} asks for other")]
    parts += [format_change(c, f"in {lock_name}", f"for {src_name}") for c in f.changes if not (c.what == "files" and c.name in f.explained)]
    detail = "; ".join(dict.fromkeys(parts)) if parts else f.reason
    fix = f"hubctl lock --script {src_name}" if project.kind == "script" else "hubctl lock"
    head = f"{src_name} and {lock_name} disagree" if f.inputs_changed or not f.lock else f"{lock_name} is out of date"
    return f"{head}: {detail}; run `{fix}` to accept the new set"


def read_fresh_lock(path: Path) -> Lock:
    """A lock file for a run (``hubctl generate``, ``hubctl.load_pipeline``): when a project file or script
    sits beside it, the lock must be fresh for it (Refused naming what differs, before anything loads);
    a lock on its own is read and validated as it is."""
    from hubctl.lock.project import project_for_lock

    project = project_for_lock(Path(path))
    if project is None:
        return read_lock(Path(path))
    from hubctl.registry.manage import open_index

    index = open_index()
    f = freshness(project, index)
    if not f.fresh:
        raise Refused(stale_message(project, f))
    assert f.lock is not None
    return f.lock
