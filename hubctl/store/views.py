"""Views: folders laid out the way other tools expect, made of links into the store.

    diffusers   DIR/<name>/<package paths>                        (from_pretrained(DIR/<name>))
    a1111       models/Stable-diffusion, models/Lora, embeddings, models/ControlNet, models/VAE
    comfyui     models/checkpoints, models/diffusers/<name>/, models/loras, models/embeddings,
                models/controlnet, models/vae
    invokeai    models/<base>/<type>/ with base sd-1 | sd-2 | sdxl (else the family id) and type
                main | lora | embedding | controlnet | vae (diffusers folders as models/<base>/main/<name>/)

Links are hardlinks when DIR is on the store's filesystem, else symlinks. A manifest in the view folder
(``.hubctl-export.json``) lists every link this module made (path, blob, and the inode or link target),
so an export is idempotent, replaces only its own links when a package changes, removes only its own
links when a package is gone, and never overwrites or deletes a file it did not create. Pure layout
decisions (:func:`plan_view`) are separate from the filesystem work (:func:`export`).
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Optional

from hubctl.errors import BadInput
from hubctl.fsutil import atomic_write_text
from hubctl.lock.lockfile import LockedPackage

__all__ = ["LAYOUTS", "MANIFEST_NAME", "plan_view", "export", "ExportReport"]

LAYOUTS = ("diffusers", "a1111", "comfyui", "invokeai")
MANIFEST_NAME = ".hubctl-export.json"
_WEIGHTS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")

_A1111 = {"checkpoint": "models/Stable-diffusion", "lora": "models/Lora", "embedding": "embeddings",
          "controlnet": "models/ControlNet", "vae": "models/VAE"}
_COMFY = {"checkpoint": "models/checkpoints", "lora": "models/loras", "embedding": "models/embeddings",
          "controlnet": "models/controlnet", "vae": "models/vae"}
_INVOKE_TYPE = {"checkpoint": "main", "lora": "lora", "embedding": "embedding", "controlnet": "controlnet", "vae": "vae"}
_INVOKE_BASE = {"sd1": "sd-1", "sd2": "sd-2", "sdxl": "sdxl"}


def _is_folder_package(p: LockedPackage) -> bool:
    paths = [f.path for f in p.files]
    return p.layout == "diffusers" or "model_index.json" in paths or "config.json" in paths or any("/" in x for x in paths)


def _single_files(p: LockedPackage, base: str) -> list[tuple[str, str]]:
    """(view path, sha256) for a package put into a folder of single files, named after the package."""
    weights = [f for f in p.files if PurePosixPath(f.path).suffix.lower() in _WEIGHTS]
    if len(weights) == 1:
        w = weights[0]
        out = [(f"{base}/{p.name}{PurePosixPath(w.path).suffix}", w.sha256)]
        for f in p.files:  # an SD2 v-model's .yaml config must sit beside the checkpoint with the same stem
            if f is not w and PurePosixPath(f.path).suffix.lower() in (".yaml", ".yml"):
                out.append((f"{base}/{p.name}.yaml", f.sha256))
        return out
    return [(f"{base}/{p.name}-{PurePosixPath(f.path).name}", f.sha256) for f in weights]


def plan_view(layout: str, packages: Iterable[LockedPackage]) -> tuple[dict[str, str], list[str]]:
    """The links a layout wants: {relative path: sha256}, plus notes for packages it cannot place."""
    if layout not in LAYOUTS:
        raise BadInput(f"unknown layout '{layout}' (expected one of: {', '.join(LAYOUTS)})")
    want: dict[str, str] = {}
    notes: list[str] = []
    for p in sorted(packages, key=lambda p: p.name):
        folder = _is_folder_package(p)
        if layout == "diffusers":
            entries = [(f"{p.name}/{f.path}", f.sha256) for f in p.files]
        elif layout in ("a1111", "comfyui"):
            table = _A1111 if layout == "a1111" else _COMFY
            base = table.get(p.kind)
            if base is None:
                notes.append(f"{p.name}: kind '{p.kind}' has no place in the {layout} layout; skipped")
                continue
            if folder and p.kind == "checkpoint":
                if layout == "a1111":
                    notes.append(f"{p.name} {p.version} is a diffusers folder; A1111 loads single-file checkpoints "
                                 "(install a single-file variant); skipped")
                    continue
                entries = [(f"models/diffusers/{p.name}/{f.path}", f.sha256) for f in p.files]
            else:
                entries = _single_files(p, base)
        else:  # invokeai
            base = f"models/{_INVOKE_BASE.get(p.family, p.family)}/{_INVOKE_TYPE.get(p.kind, p.kind)}"
            if folder and p.kind in ("checkpoint", "controlnet", "vae"):
                entries = [(f"{base}/{p.name}/{f.path}", f.sha256) for f in p.files]
            else:
                entries = _single_files(p, base)
        if not entries:
            notes.append(f"{p.name}: no weight file to place in the {layout} layout; skipped")
        for rel, sha in entries:
            other = want.get(rel)
            if other is not None and other != sha:
                notes.append(f"{rel}: wanted by two packages; kept the first")
                continue
            want[rel] = sha
    return want, notes


@dataclass
class ExportReport:
    layout: str
    root: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why"
    notes: list[str] = field(default_factory=list)
    link: str = "hardlink"

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "dir": str(self.root),
            "link": self.link,
            "created": self.created,
            "kept": self.kept,
            "replaced": self.replaced,
            "removed": self.removed,
            "skipped": self.skipped,
            "notes": self.notes,
        }


def _load_manifest(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / MANIFEST_NAME).read_text("utf-8"))
        if isinstance(data, dict) and isinstance(data.get("files"), dict):
            return data
    except (OSError, ValueError):
        pass
    return {"version": 1, "files": {}, "dirs": []}


def _is_ours(dest: Path, entry: dict[str, Any]) -> bool:
    """Is ``dest`` still exactly the link we made (not replaced or edited by someone)?"""
    try:
        if entry.get("link") == "symlink":
            return dest.is_symlink() and os.readlink(dest) == entry.get("target")
        st = os.lstat(dest)
        return (st.st_ino, st.st_dev) == (entry.get("inode"), entry.get("device"))
    except OSError:
        return False


def _points_to(dest: Path, blob: Path) -> bool:
    try:
        if dest.is_symlink():
            return os.readlink(dest) == str(blob)
        a, b = os.lstat(dest), os.stat(blob)
        return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)
    except OSError:
        return False


def _make_link(blob: Path, dest: Path, prefer_hard: bool) -> dict[str, Any]:
    if prefer_hard:
        try:
            os.link(blob, dest)
            st = os.lstat(dest)
            return {"link": "hardlink", "inode": st.st_ino, "device": st.st_dev}
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
                raise
    os.symlink(blob, dest)
    return {"link": "symlink", "target": str(blob)}


def export(layout: str, root: Path, packages: Optional[list[LockedPackage]] = None) -> ExportReport:
    """Make (or bring up to date) a view of ``packages`` (default: everything installed) under ``root``."""
    from hubctl.store.blobs import Store

    if packages is None:
        from hubctl.store.installed import installed_packages

        packages = installed_packages()
    want, notes = plan_view(layout, packages)
    store = Store()
    root = Path(root).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise BadInput(f"{root}: is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    rep = ExportReport(layout=layout, root=root, notes=notes)
    try:
        same_fs = os.stat(root).st_dev == os.stat(store.blobs_dir).st_dev
    except OSError:
        same_fs = False
    rep.link = "hardlink" if same_fs else "symlink"
    manifest = _load_manifest(root)
    old: dict[str, Any] = manifest["files"]
    new: dict[str, Any] = {}
    dirs: set[str] = set(manifest.get("dirs") or [])
    try:
        for rel, sha in sorted(want.items()):
            blob = store.blob_path(sha)
            if not blob.is_file():
                rep.skipped.append(f"{rel}: blob {sha[:12]}… is not in the store (run `hubctl install` or `hubctl sync`)")
                continue
            dest = root / rel
            entry = old.get(rel)
            if os.path.lexists(dest):
                if _points_to(dest, blob):
                    rep.kept.append(rel)
                    new[rel] = entry if entry and _is_ours(dest, entry) else _describe_existing(dest, sha)
                    new[rel]["sha256"] = sha
                    continue
                if entry is not None and _is_ours(dest, entry):
                    os.unlink(dest)
                    new[rel] = {**_make_link(blob, dest, same_fs), "sha256": sha}
                    rep.replaced.append(rel)
                    continue
                rep.skipped.append(f"{rel}: exists and was not made by hubctl; left alone")
                continue
            parent = dest.parent
            missing = []
            while not parent.exists() and parent != root:
                missing.append(parent)
                parent = parent.parent
            dest.parent.mkdir(parents=True, exist_ok=True)
            dirs.update(str(m.relative_to(root)) for m in missing)
            new[rel] = {**_make_link(blob, dest, same_fs), "sha256": sha}
            rep.created.append(rel)
        for rel, entry in sorted(old.items()):
            if rel in want:
                continue
            dest = root / rel
            if _is_ours(dest, entry):
                os.unlink(dest)
                rep.removed.append(rel)
        for d in sorted(dirs, key=lambda s: -s.count("/")):  # deepest first; only folders we made, only empty
            try:
                (root / d).rmdir()
                dirs.discard(d)
            except OSError:
                pass
    finally:
        final = dict(new)
        for rel, entry in old.items():  # after an error: remember the links of ours not looked at yet
            if rel not in final and rel not in rep.removed and _is_ours(root / rel, entry):
                final[rel] = entry
        manifest = {"version": 1, "layout": layout, "files": final, "dirs": sorted(dirs)}
        atomic_write_text(root / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return rep


def _describe_existing(dest: Path, sha: str) -> dict[str, Any]:
    if dest.is_symlink():
        return {"link": "symlink", "target": os.readlink(dest), "sha256": sha}
    st = os.lstat(dest)
    return {"link": "hardlink", "inode": st.st_ino, "device": st.st_dev, "sha256": sha}
