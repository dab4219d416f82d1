"""Prove a locked set before anything loads: every file is the pinned one and the set fits together.

Owns :func:`verify_locked_set` (lock -> :class:`VerifiedSet`) and the value types the assembly takes.
Per file: the store's blob for the lock's sha256 must exist and verify (the store's stat cache; a changed
stat means a full rehash), and no file of any layout may be a pickle (by name or first bytes). Then the
whole set passes the declared family check and the structural check of hubctl.compat. The first failure
raises :class:`~hubctl.errors.Refused` naming the file and the reason.

Must not import torch or diffusers (``hubctl runs`` and the checks stay fast); loads no tensor. The verified
files are laid out under ``$HUBCTL_HOME/views/run/`` as symlinks into the store, keeping each file's
name in its package, so diffusers sees the folder layout (or the single file's suffix) it expects; every link
of that view is checked on each run (hubctl.store.views.build_view).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from hubctl.errors import BadInput, Refused

if TYPE_CHECKING:
    from hubctl.lock.lockfile import Lock, LockedPackage

__all__ = [
    "VerifiedArtefact",
    "VerifiedSet",
    "verify_locked_set",
    "artefact_from_path",
    "lock_digest",
    "WEIGHT_SUFFIXES",
]

WEIGHT_SUFFIXES = (".safetensors",)


@dataclass(frozen=True)
class VerifiedArtefact:
    """One artefact whose files were proven: where it sits on disk and what it is.

    ``root`` is the folder holding the files under their package paths (a diffusers layout when
    ``layout == "diffusers"``); ``weights`` is the main weight file (the single file for single-file
    bases and adapters; None for a diffusers folder)."""

    name: str
    version: str
    kind: str
    family: str
    root: Path
    layout: str  # "diffusers" | "single_file"
    weights: Path | None
    sha256: dict[str, str] = field(default_factory=dict)  # package path -> sha256
    prediction: str | None = None
    tokens: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name

    @property
    def model_hash(self) -> str:
        """The AutoV2 short hash users see (first 10 hex of the main weight file's sha256; for a
        diffusers base, of the UNet weights)."""
        key = self.main_file_key
        return self.sha256.get(key, "")[:10] if key else ""

    @property
    def main_file_key(self) -> str | None:
        if self.weights is not None:
            return self.weights.relative_to(self.root).as_posix()
        for k in sorted(self.sha256):
            if k.startswith("unet/") and k.endswith(WEIGHT_SUFFIXES):
                return k
        return None


@dataclass(frozen=True)
class VerifiedSet:
    """A base and its adapters, every file verified; what :func:`hubctl.run.pipeline.assemble` takes."""

    base: VerifiedArtefact
    adapters: tuple[VerifiedArtefact, ...] = ()
    lock_digest: str = ""
    packages_json: list[dict] = field(default_factory=list)  # the locked packages, for the run record
    warnings: tuple[str, ...] = ()  # from the compatibility check (partial application, unknown prediction, ...)

    def of_kind(self, kind: str) -> list[VerifiedArtefact]:
        return [a for a in self.adapters if a.kind == kind]

    def find(self, name: str, kind: str | None = None) -> VerifiedArtefact:
        for a in self.adapters:
            if a.name == name and (kind is None or a.kind == kind):
                return a
        have = ", ".join(a.name for a in self.adapters if kind is None or a.kind == kind) or "none"
        raise BadInput(f"{name!r} is not a {kind or 'package'} in the lock (locked: {have})")

    def file_hashes(self) -> dict[str, dict[str, str]]:
        out = {self.base.label: dict(self.base.sha256)}
        for a in self.adapters:
            out[a.label] = dict(a.sha256)
        return out


# ---------------------------------------------------------------------------------------------------------
# lock -> value helpers (pure)


def package_to_dict(p: "LockedPackage") -> dict:
    return {
        "name": p.name,
        "version": p.version,
        "kind": p.kind,
        "family": p.family,
        "variant": p.variant,
        "prediction": p.prediction,
        "layout": p.layout,
        "dtype": p.dtype,
        "tokens": list(p.tokens),
        "trigger": list(p.trigger),
        "requires": list(p.requires),
        "files": [
            {"path": f.path, "url": f.url, "size": f.size, "sha256": f.sha256, "requested_revision": f.requested_revision}
            for f in p.files
        ],
    }


def packages_from_dicts(items: Iterable[dict]) -> "list[LockedPackage]":
    from hubctl.lock.lockfile import LockedFile, LockedPackage

    out = []
    for d in items:
        files = tuple(
            LockedFile(path=f["path"], url=f["url"], size=int(f["size"]), sha256=f["sha256"], requested_revision=f.get("requested_revision"))
            for f in d["files"]
        )
        out.append(
            LockedPackage(
                name=d["name"], version=d["version"], kind=d["kind"], family=d["family"], variant=d["variant"], files=files,
                prediction=d.get("prediction"), layout=d.get("layout"), dtype=d.get("dtype"), tokens=tuple(d.get("tokens", ())),
                trigger=tuple(d.get("trigger", ())), requires=tuple(d.get("requires", ())),
            )
        )
    return out


def lock_digest(packages: Iterable["LockedPackage"]) -> str:
    """sha256 of the canonical JSON of the locked packages (name order): the same set gives the same digest
    whatever the lock file's formatting."""
    items = sorted((package_to_dict(p) for p in packages), key=lambda d: (d["kind"], d["name"]))
    return hashlib.sha256(json.dumps(items, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _layout_of(paths: list[str]) -> tuple[str, str | None]:
    """(layout, main weight path) from a package's file paths."""
    if any(p == "model_index.json" or p.endswith("/model_index.json") for p in paths) or "config.json" in paths:
        return "diffusers", None
    weights = [p for p in paths if p.endswith(WEIGHT_SUFFIXES)]
    if not weights:
        from hubctl.probe.pickled import PICKLE_SUFFIXES

        pickled = [p for p in paths if p.endswith(PICKLE_SUFFIXES)]
        if pickled:
            raise Refused(f"{pickled[0]}: a pickled file; hubctl never unpickles at load time (hubctl convert writes a safetensors copy)")
        raise Refused(f"no .safetensors weight file among {', '.join(paths) or 'no files'}")
    return "single_file", weights[0]


# ---------------------------------------------------------------------------------------------------------
# store edge


def _store() -> Any:
    from hubctl.store.blobs import open_store

    return open_store()


def _verify_blobs(packages: "list[LockedPackage]") -> dict[str, Path]:
    """sha256 -> verified blob path for every file of ``packages`` (the store's stat cache: an unchanged
    stat costs a stat, a changed one a rehash). Refused naming the first bad file."""
    store = _store()
    where: dict[str, str] = {}
    for p in packages:
        for f in p.files:
            where.setdefault(f.sha256, f"{p.name} {p.version}: {f.path}")
    checks = {c.sha256: c for c in store.verify(list(where))}
    for p in packages:
        for f in p.files:
            c = checks[f.sha256]
            if c.ok:
                continue
            if c.problem and "missing" in c.problem:
                raise Refused(f"{where[f.sha256]}: not in the store (sha256 {f.sha256[:12]}...); run `hubctl sync`")
            raise Refused(f"{where[f.sha256]}: does not match the lock's sha256 {f.sha256[:12]}... ({c.problem or 'corrupt'})")
    out = {}
    for p in packages:
        for f in p.files:
            blob = store.blob_path(f.sha256)
            size = blob.stat().st_size
            if size != f.size:
                raise Refused(f"{where[f.sha256]}: {size} bytes in the store, the lock says {f.size}")
            out[f.sha256] = blob
    return out


def _refuse_pickles(packages: "list[LockedPackage]", blob_of: dict[str, Path]) -> None:
    """Refused naming the first file of any layout that is pickled, by its name (.bin, .ckpt, .pt, .pth, .pkl)
    or by its first bytes: diffusers and transformers would hand it to torch.load, and hubctl never unpickles
    at load time."""
    from hubctl.probe.pickled import PICKLE_SUFFIXES, pickle_kind

    for p in packages:
        for f in p.files:
            if f.path.lower().endswith((*PICKLE_SUFFIXES, ".pkl", ".pickle")) or (
                    not f.path.endswith((".safetensors", ".json", ".txt")) and pickle_kind(blob_of[f.sha256])):
                raise Refused(f"{p.name} {p.version}: {f.path}: a pickled file; hubctl never unpickles at load time "
                              "(hubctl convert writes a safetensors copy)")


def _materialise(label: str, files: dict[str, Path]) -> Path:
    """A folder of symlinks (package path -> verified blob), keyed by the content; checked link by link on
    every run and made afresh when anything in it differs (hubctl.store.views.build_view), so a re-pointed
    link or a planted file is never what diffusers loads."""
    from hubctl.config import hubctl_home
    from hubctl.store.views import build_view

    key = hashlib.sha256(json.dumps({k: str(v) for k, v in sorted(files.items())}).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    return build_view(hubctl_home() / "views" / "run" / f"{safe}-{key}", files)


# ---------------------------------------------------------------------------------------------------------
# the checks


def _declared_check(base: "LockedPackage", adapters: list["LockedPackage"]) -> None:
    for a in adapters:
        if a.family != base.family:
            raise Refused(
                f"{a.name} {a.version} is a {a.family} {a.kind}; {base.name} {base.version} is {base.family}: "
                "it does not fit this base"
            )


def _family_table(family_ids: Iterable[str]) -> Any:
    """The families the probe classifies with: the bundled ones and the configured registries' (the index),
    plus the demo's tiny families when a lock names them and no registry declares them."""
    from hubctl.registry.families import Family, FamilyTable
    from hubctl.probe import default_family_table

    table = default_family_table()
    missing = [f for f in dict.fromkeys(family_ids) if f and f not in table]
    if missing:
        from hubctl.demo import families as demo_families
        # all of them, not only the ones the lock names: a lock that lies about an adapter's family must still
        # see the header classified as what it really is (shapes win over declarations)
        extra = [Family.model_validate(demo_families.family_entry(f)) for f in demo_families.FAMILIES if f not in table]
        extra = extra if any(f in demo_families.FAMILIES for f in missing) else []
        if extra:
            table = table.merged(FamilyTable(extra))
    return table


def _structural_check(pkgs: "list[LockedPackage]", arts: list[VerifiedArtefact]) -> list[str]:
    """hubctl.compat.check's declared + structural check of the verified files (headers only); Refused naming the
    artefact and the reason when the set does not fit. Returns the verdict's warnings."""
    from hubctl.compat.check import Declared, check_set
    from hubctl.probe import probe

    fams = _family_table(p.family for p in pkgs)
    probes = []
    for a in arts:
        try:
            probes.append(probe(a.weights or a.root, families=fams))
        except Refused:
            raise
        except Exception as e:  # noqa: BLE001 - a header that does not read is a refusal naming the file
            msg = getattr(e, "message", None) or str(e)
            raise Refused(f"{a.label}: {msg}") from None
    declared = [Declared(name=p.name, version=p.version, kind=p.kind, family=p.family, requires=tuple(p.requires),
                         tokens=tuple(p.tokens), prediction=p.prediction) for p in pkgs]
    verdict = check_set(probes[0], probes[1:], families=fams, labels=[a.label for a in arts], declared=declared)
    if not verdict.compatible:
        p = verdict.problems[0]
        reason = p.reason if p.reason.startswith(p.artefact) else f"{p.artefact}: {p.reason}"
        more = f" (and {len(verdict.problems) - 1} more problem(s))" if len(verdict.problems) > 1 else ""
        raise Refused(reason + more)
    return list(verdict.warnings)


def _lay_out(p: "LockedPackage", blob_of: dict[str, Path]) -> VerifiedArtefact:
    """Lay out one package's verified files under their package paths."""
    paths = [f.path for f in p.files]
    layout, main = _layout_of(paths) if p.layout not in ("diffusers",) else ("diffusers", None)
    blobs = {f.path: blob_of[f.sha256] for f in p.files}
    root = _materialise(f"{p.name}-{p.version}", blobs)
    return VerifiedArtefact(
        name=p.name, version=p.version, kind=p.kind, family=p.family, root=root, layout=layout,
        weights=(root / main) if main else None, sha256={f.path: f.sha256 for f in p.files},
        prediction=p.prediction, tokens=tuple(p.tokens),
    )


def verify_locked_set(lock: "Lock") -> VerifiedSet:
    """Check every file of ``lock`` against its pin and the whole set for compatibility; load nothing.

    Exactly one base (kind ``checkpoint``) must be locked. Raises Refused (exit 1) naming the file and the
    reason on the first failure."""
    bases = [p for p in lock.packages if p.kind == "checkpoint"]
    if len(bases) != 1:
        names = ", ".join(f"{p.name} {p.version}" for p in bases) or "none"
        raise Refused(f"the lock must hold exactly one base checkpoint to generate (found: {names})")
    base_pkg = bases[0]
    adapter_pkgs = sorted((p for p in lock.packages if p.kind != "checkpoint"), key=lambda p: (p.kind, p.name))
    blob_of = _verify_blobs([base_pkg, *adapter_pkgs])
    _refuse_pickles([base_pkg, *adapter_pkgs], blob_of)
    base = _lay_out(base_pkg, blob_of)
    adapters = [_lay_out(p, blob_of) for p in adapter_pkgs]
    warnings = _structural_check([base_pkg, *adapter_pkgs], [base, *adapters])
    _declared_check(base_pkg, adapter_pkgs)  # a safety net: the lock's own families must agree too
    return VerifiedSet(
        base=base, adapters=tuple(adapters), lock_digest=lock_digest(lock.packages),
        packages_json=[package_to_dict(p) for p in sorted(lock.packages, key=lambda p: (p.kind, p.name))],
        warnings=tuple(warnings),
    )


def artefact_from_path(path: str | Path, *, kind: str = "checkpoint", name: str | None = None, family: str = "",
                       prediction: str | None = None, tokens: Iterable[str] = ()) -> VerifiedArtefact:
    """An artefact from plain paths (for scripts and benchmarks that have files but no lock): the files'
    sha256 are computed here, nothing else is checked."""
    path = Path(path).resolve()
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        rels = [p.relative_to(path).as_posix() for p in files]
        layout, main = ("diffusers", None) if kind in ("checkpoint", "controlnet", "vae") else _layout_of(rels)
        root = path
    else:
        files, rels, layout, main, root = [path], [path.name], "single_file", path.name, path.parent
    from hubctl.store.hashes import sha256_file

    hashes = {rel: sha256_file(p)[0] for rel, p in zip(rels, files)}
    return VerifiedArtefact(
        name=name or path.stem, version="", kind=kind, family=family, root=root, layout=layout,
        weights=(root / main) if main else None, sha256=hashes, prediction=prediction, tokens=tuple(tokens),
    )
