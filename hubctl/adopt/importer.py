"""``hubctl import SOURCE``: a hubctl.toml and its lock that reproduce what SOURCE used.

Each reference :mod:`hubctl.adopt.refs` reads is resolved by hash, in this order: the registries (the index),
the store's roots (installed packages, synced locks, adopted files) and the hash forms of adopted files
(:mod:`hubctl.adopt.known`), then Civitai (by hash, by model version id, by AIR: :mod:`hubctl.sources.civitai`,
written into the local ``civitai`` registry by :mod:`hubctl.adopt.civitai_registry`). A reference named only by a
file name (ComfyUI) resolves when exactly one adopted file had that name. A hash two different files share, a
name several adopted files have, a file nobody knows: each is listed with the reason, and nothing is written
(exit 1). Never guesses.

Then the requirements (``name==version`` for each package) are locked the way ``hubctl lock`` locks (the
variant each reference pointed at is kept), and hubctl.toml and hubctl.lock are written (each atomically; an
existing hubctl.toml only with ``force``). The generation settings the source gave (prompt, seed, steps, ...)
come back as the ``hubctl generate`` command that replays it.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hubctl.adopt.refs import PNG_LIMIT, Reference, Shared, read_references
from hubctl.errors import BadInput, HubctlError, Refused

__all__ = ["Resolved", "Unresolved", "ImportResult", "import_source"]


@dataclass
class Resolved:
    """A reference and the package version (and variant) it is."""

    ref: Reference
    name: str
    version: str
    variant: str
    kind: str
    family: str
    where: str
    sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"role": self.ref.role, "reference": self.ref.describe(), "name": self.name, "version": self.version,
                "variant": self.variant, "kind": self.kind, "family": self.family, "from": self.where, "sha256": self.sha256}


@dataclass
class Unresolved:
    ref: Reference
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"role": self.ref.role, "reference": self.ref.describe(), "why": self.why}


@dataclass
class ImportResult:
    source: str
    kind: str
    resolved: list[Resolved] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    written: bool = False
    project: Optional[Path] = None
    lock: Optional[Path] = None
    generate: dict[str, Any] = field(default_factory=dict)

    def generate_command(self) -> str:
        """The ``hubctl generate`` line that replays the source's settings with the imported lock."""
        g = self.generate
        args = ["hubctl", "generate"]
        for key, flag in (("prompt", "--prompt"), ("negative", "--negative"), ("seed", "--seed"), ("steps", "--steps"),
                          ("guidance", "--guidance"), ("width", "--width"), ("height", "--height"), ("sampler", "--sampler")):
            if g.get(key) not in (None, ""):
                args += [flag, str(g[key])]
        for name, w in (g.get("loras") or {}).items():
            args += ["--lora", f"{name}={w:g}"]
        return " ".join(shlex.quote(a) for a in args)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "resolved": [r.to_json() for r in self.resolved],
                "unresolved": [u.to_json() for u in self.unresolved], "written": self.written,
                "project": str(self.project) if self.project else None, "lock": str(self.lock) if self.lock else None,
                "generate": self.generate, "generate_command": self.generate_command() if self.written else None}


def _read_source(source: str) -> tuple[bytes, str]:
    if source == "-":
        data = sys.stdin.buffer.read(PNG_LIMIT + 1)
        where = "<stdin>"
    else:
        p = Path(source).expanduser()
        try:
            with open(p, "rb") as f:
                data = f.read(PNG_LIMIT + 1)
        except FileNotFoundError:
            raise BadInput("no such file", context=source) from None
        except IsADirectoryError:
            raise BadInput("is a folder (hubctl adopt takes folders)", context=source) from None
        except OSError as e:
            raise BadInput(f"cannot read ({e.strerror})", context=source) from None
        where = str(p)
    if len(data) > PNG_LIMIT:
        raise BadInput(f"larger than {PNG_LIMIT} bytes; refused", context=where)
    return data, where


class _Resolver:
    def __init__(self, index: Any, civitai: bool) -> None:
        from hubctl.adopt.known import KnownHashes
        from hubctl.adopt.state import read_adopted

        self.index = index
        self.civitai = civitai
        self.adopted = read_adopted()
        self.known = KnownHashes.build(index, adopted=self.adopted)
        self.civitai_written = False

    # ---- by sha256
    def _by_sha(self, ref: Reference, sha: str, how: str) -> Resolved | Unresolved:
        ms = [m for m in self.known.matches(sha) if m.name in self.index]
        if not ms:
            others = self.known.matches(sha)
            if others:
                return Unresolved(ref, f"{how} is {others[0].name} {others[0].version} in the store ({others[0].where}), "
                                       "which no configured registry offers")
            return Unresolved(ref, f"{how}: no registry, installed or adopted file has sha256 {sha}")
        whole = [m for m in ms if m.whole] or ms
        groups = {(m.name, m.version, m.variant) for m in whole}
        if len(groups) > 1:
            names = ", ".join(sorted(f"{n} {v} ({var})" for n, v, var in groups)[:4])
            return Unresolved(ref, f"{how} is a file of several packages ({names}); not guessed")
        m = whole[0]
        return Resolved(ref, m.name, m.version, m.variant, m.kind, m.family, m.where, sha)

    def _by_hash(self, ref: Reference, h: str) -> Resolved | Unresolved | None:
        shas = self.known.lookup(h)
        if len(shas) > 1:
            return Unresolved(ref, f"hash {h} matches {len(shas)} different files; not guessed")
        if len(shas) == 1:
            return self._by_sha(ref, next(iter(shas)), f"hash {h}")
        return None

    # ---- Civitai
    def _civitai(self, ref: Reference, *, version_id: Optional[int] = None, hash_: Optional[str] = None) -> Resolved | Unresolved:
        from hubctl.adopt.civitai_registry import package_for_version
        from hubctl.sources.civitai import get_version, version_by_hash

        if not self.civitai:
            return Unresolved(ref, "not known here (Civitai not asked: --no-civitai)")
        v = get_version(version_id) if version_id is not None else version_by_hash(hash_ or "")
        if v is None:
            what = f"model version {version_id}" if version_id is not None else f"hash {hash_}"
            return Unresolved(ref, f"not known here, and Civitai has no {what}")
        f = v.file_by_hash(hash_) if hash_ else v.file()
        if f is None:
            f = v.file()
        if f is None:
            return Unresolved(ref, f"Civitai model version {v.id} lists no file")
        if f.sha256:
            known = self._by_sha(ref, f.sha256, f"Civitai's {f.name}")
            if isinstance(known, Resolved):
                return known
        try:
            pkg = package_for_version(v, f, self.index.families)
        except BadInput as e:
            return Unresolved(ref, f"Civitai model version {v.id}: {e.message}")
        self.civitai_written = True
        return Resolved(ref, pkg.name, pkg.version, pkg.variant, pkg.kind, pkg.family, f"civitai {v.id}", f.sha256 or "")

    # ---- a package by its files (hubctl's chunk)
    def _package(self, ref: Reference) -> Resolved | Unresolved:
        want = dict(ref.files)
        name, _, version = ref.label.rpartition(" ")
        m = self.index.get(name) if name else None
        if m is not None:
            v = m.get_version(version) if version else None
            for var in (v.variants if v is not None else []):
                have = {f.path: f.sha256 for f in var.files}
                if have == want:
                    return Resolved(ref, m.canonical_name, v.version, var.name, m.kind, v.family,  # type: ignore[union-attr]
                                    f"registry {self.index.registry_of(m.canonical_name)}", next(iter(want.values()), ""))
        groups: dict[tuple[str, str, str], int] = {}
        for sha in set(want.values()):
            for mt in self.known.matches(sha):
                if mt.name in self.index:
                    groups[(mt.name, mt.version, mt.variant)] = groups.get((mt.name, mt.version, mt.variant), 0) + 1
        full = [g for g, n in groups.items() if n == len(set(want.values()))]
        if len(full) == 1:
            n, ver, var = full[0]
            mm = self.index.get(n)
            vv = mm.get_version(ver)
            return Resolved(ref, n, ver, var, mm.kind, vv.family, "registry", next(iter(want.values()), ""))
        if len(full) > 1:
            return Unresolved(ref, "its files match several packages; not guessed")
        return Unresolved(ref, "no registry package has exactly these files (sha256)")

    # ---- one reference
    def resolve(self, ref: Reference) -> Resolved | Unresolved:
        if ref.files:
            return self._package(ref)
        for h in ref.hashes:
            r = self._by_hash(ref, h)
            if r is not None:
                return r
        if ref.civitai_version is not None:
            return self._civitai(ref, version_id=ref.civitai_version)
        if ref.hashes:
            return self._civitai(ref, hash_=ref.hashes[0])
        if ref.name:
            return self._by_name(ref)
        return Unresolved(ref, "names nothing to resolve")

    def _by_name(self, ref: Reference) -> Resolved | Unresolved:
        """A file name alone (ComfyUI): the one adopted file of that name, if exactly one."""
        want = ref.name.replace("\\", "/")
        shas = {a.sha256 for p, a in self.adopted.items() if p.replace("\\", "/").endswith("/" + want)}
        if len(shas) == 1:
            return self._by_sha(ref, next(iter(shas)), f"adopted file {want}")
        if len(shas) > 1:
            return Unresolved(ref, f"{len(shas)} different adopted files are named {want}; not guessed")
        return Unresolved(ref, "named by file name only, and no adopted file has that name (run `hubctl adopt` on "
                               "the folder it came from)")


def _settings(shared: Shared, resolved: list[Resolved]) -> dict[str, Any]:
    from hubctl.run.pipeline import SAMPLERS

    g = {k: v for k, v in shared.settings.items() if k != "loras"}
    by_a1111 = {a1111: key for key, (_, _, a1111) in SAMPLERS.items()}
    if "sampler" in g:
        key = by_a1111.get(str(g["sampler"]))
        if key is None:
            g.pop("sampler")
        else:
            g["sampler"] = key
    weights = shared.settings.get("loras") or {}
    loras = {}
    for r in resolved:
        if r.kind != "lora":
            continue
        w = weights.get(r.name, weights.get(r.ref.name, r.ref.weight))
        loras[r.name] = float(w) if isinstance(w, (int, float)) else 1.0
    if loras:
        g["loras"] = loras
    return g


def import_source(source: str, *, directory: Path = Path("."), force: bool = False, civitai: bool = True,
                  progress: "bool | Any" = False) -> ImportResult:
    """Resolve what ``source`` used and write ``directory``/hubctl.toml and hubctl.lock (see the module docstring).
    Unresolved references come back in ``unresolved`` with nothing written. ``progress`` shows retries and
    downloads on stderr (hubctl.progress)."""
    from hubctl.progress import make_progress

    with make_progress(progress):
        return _import(source, directory, force, civitai)


def _import(source: str, directory: Path, force: bool, civitai: bool) -> ImportResult:
    from hubctl.adopt.local_registry import CIVITAI, ensure_registered
    from hubctl.lock.lockfile import Lock, LockedPackage, write_lock
    from hubctl.lock.project import PROJECT_FILE, Project
    from hubctl.lock.workflow import lock_project
    from hubctl.registry.manage import open_index

    data, where = _read_source(source)
    shared = read_references(data, where)
    res = ImportResult(where, shared.kind)
    directory = Path(directory).expanduser().resolve()
    project_path = directory / PROJECT_FILE
    if project_path.exists() and not force:
        raise BadInput(f"{project_path} exists; pass --force to replace it (or --dir for another folder)")
    resolver = _Resolver(open_index(), civitai)
    for ref in shared.references:
        try:
            r = resolver.resolve(ref)
        except Refused as e:
            r = Unresolved(ref, e.message)
        (res.resolved if isinstance(r, Resolved) else res.unresolved).append(r)  # type: ignore[arg-type]
    picked: dict[str, Resolved] = {}
    for r in res.resolved:
        other = picked.setdefault(r.name, r)
        if (other.version, other.variant) != (r.version, r.variant):
            res.unresolved.append(Unresolved(r.ref, f"{r.name} {r.version} and {other.version} are both named; a set "
                                                    "holds one version of a package"))
    if res.unresolved:
        return res
    if resolver.civitai_written:
        ensure_registered(CIVITAI)
    index = open_index()
    requires = tuple(f"{r.name}=={r.version}" for r in sorted(picked.values(), key=lambda r: r.name))
    project = Project(project_path, "hubctl.toml", requires=requires)
    previous = Lock(packages=[LockedPackage(r.name, r.version, r.kind, r.family, r.variant, ()) for r in picked.values()])
    try:
        locked = lock_project(project, index, previous=previous, write=False).lock
    except HubctlError as e:
        raise type(e)(f"{where}: the references resolve, but do not lock together: {e}") from None
    for p in locked.packages:
        want = picked.get(p.name)
        if want is not None and p.variant != want.variant:
            raise Refused(f"{where}: {p.name} {p.version} locks as variant {p.variant}, not {want.variant} that the source used")
    from hubctl.fsutil import atomic_write_text

    body = "# Written by `hubctl import " + Path(where).name.replace("\n", " ") + "`\nrequires = [\n"
    body += "".join(f'    "{r}",\n' for r in requires) + "]\n"
    atomic_write_text(project_path, body)
    write_lock(project.lock_path, locked)
    res.written, res.project, res.lock = True, project_path, project.lock_path
    res.generate = _settings(shared, list(picked.values()))
    return res
