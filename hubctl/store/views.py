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

hubctl's own views (``$HUBCTL_HOME/views/``: the run views diffusers loads through, the config folders of
single-file bases) are made by :func:`build_view`, the one builder of folders of links: on every use it checks
each link points at its blob, each written file holds its bytes and nothing else is there, and makes the
folder afresh (swapped in by rename) when anything differs, so a re-pointed link or a planted file is never
loaded. Folders are 0755 less the umask.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Optional

from hubctl.errors import BadInput
from hubctl.fsutil import atomic_write_text, make_dirs
from hubctl.lock.lockfile import LockedPackage

__all__ = ["LAYOUTS", "MANIFEST_NAME", "plan_view", "export", "ExportReport", "build_view", "view_differs"]

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
    """Link ``dest`` to a blob (the one place links into the store are made): a hardlink when ``prefer_hard``
    and the filesystem allows, else a symlink. Returns how, as export's manifest records it."""
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
            if not store.has_blob(sha):  # (a symlink or folder in a blob's place is no blob)
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


# ------------------------------------------------------------------------------------- hubctl's own views


def view_differs(dest: Path, entries: Mapping[str, "Path | bytes"]) -> Optional[str]:
    """The first way the folder ``dest`` differs from ``entries`` (relative path -> a blob its symlink must
    point at, or the bytes a regular file must hold), or None when it holds exactly them and nothing else.
    Never follows a link while looking."""
    try:
        if not stat.S_ISDIR(os.lstat(dest).st_mode):
            return f"{dest} is not a folder"
    except FileNotFoundError:
        return f"{dest} does not exist"
    want_dirs = {PurePosixPath(rel).parent.as_posix() for rel in entries}
    want_dirs |= {p.as_posix() for rel in entries for p in PurePosixPath(rel).parents}
    found: set[str] = set()
    for top, dirs, files in os.walk(dest, followlinks=False):
        base = Path(top).relative_to(dest).as_posix()
        for name in list(dirs):
            rel = name if base == "." else f"{base}/{name}"
            if os.path.islink(os.path.join(top, name)):
                found.add(rel)  # a symlink to a folder: an entry, never walked into
                dirs.remove(name)
            elif rel not in want_dirs:
                return f"{rel}/ is not part of the view"
        found.update(name if base == "." else f"{base}/{name}" for name in files)
    extra = sorted(found - set(entries))
    if extra:
        return f"{extra[0]} is not part of the view"
    for rel, what in entries.items():
        p = dest / rel
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return f"{rel} is missing"
        if isinstance(what, bytes):
            if not stat.S_ISREG(st.st_mode) or st.st_size != len(what):
                return f"{rel} was changed"
            with open(p, "rb") as f:
                if f.read(len(what) + 1) != what:
                    return f"{rel} was changed"
        elif not stat.S_ISLNK(st.st_mode) or os.readlink(p) != str(what):
            return f"{rel} does not point at its blob"
    return None


def build_view(dest: Path, entries: Mapping[str, "Path | bytes"]) -> Path:
    """Make ``dest`` hold exactly ``entries`` (relative path -> a blob to symlink to, or the bytes of a small
    file), reusing it when :func:`view_differs` finds nothing, else building it afresh beside it and renaming
    it into place (the old one is set aside and removed). Concurrent builders of the same view are fine."""
    dest = Path(dest)
    for attempt in range(3):
        if view_differs(dest, entries) is None:
            return dest
        make_dirs(dest.parent)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            make_dirs(tmp)
            for rel, what in sorted(entries.items()):
                p = tmp / rel
                make_dirs(p.parent)
                if isinstance(what, bytes):
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    with os.fdopen(fd, "wb") as f:
                        f.write(what)
                else:
                    _make_link(what, p, prefer_hard=False)  # (the one place links into the store are made)
            if view_differs(dest, entries) is None:  # another process made it meanwhile: never swap a good one out
                return dest
            if os.path.lexists(dest):
                old = dest.with_name(f".{dest.name}.{os.getpid()}.{time.monotonic_ns()}.old")
                try:
                    os.rename(dest, old)
                except FileNotFoundError:
                    old = None  # type: ignore[assignment]
                if old is not None:
                    _remove_tree(old)
            try:
                os.rename(tmp, dest)
            except OSError as e:  # another process put its view there first: check that one
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                    raise
        finally:
            _remove_tree(tmp)
    problem = view_differs(dest, entries)
    if problem is not None:
        raise OSError(errno.EBUSY, f"{dest}: could not be laid out ({problem})")
    return dest


def _remove_tree(p: Path) -> None:
    """Remove a folder hubctl made (or a link or file in its place), never following a link."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
