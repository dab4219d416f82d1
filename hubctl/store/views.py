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

Everything that reaches a path here is untrusted (package names, families and file paths come from locks
and manifests; the record and the folder's contents from whoever can write the folder). So export never
creates, changes or deletes anything outside DIR: planned paths are checked before any write, folders are
walked with ``O_NOFOLLOW`` at each step (never through a symlink it did not make), and the record is
believed only for a link inside DIR that is provably a link to the store's blob it names.
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

from hubctl.errors import PARSE_ERRORS, BadInput
from hubctl.fsutil import atomic_write_text, make_dirs
from hubctl.lock.lockfile import LockedPackage

__all__ = ["LAYOUTS", "MANIFEST_NAME", "plan_view", "export", "ExportReport", "comfyui_models_folder", "build_view",
           "view_differs"]

LAYOUTS = ("diffusers", "a1111", "comfyui", "invokeai")
MANIFEST_NAME = ".hubctl-export.json"
_WEIGHTS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
_RECORD_LIMIT = 64 << 20  # an export record larger than this is not ours
_PATH_LIMIT = 4095  # PATH_MAX less the terminating NUL

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
    """The export record of ``root``, or an empty one. Untrusted (anyone who can write the folder can plant
    one): read without following a symlink, only a regular file of sane size, and every entry is checked
    again before anything is removed (:func:`_is_ours`)."""
    empty: dict[str, Any] = {"version": 1, "files": {}, "dirs": []}
    try:
        fd = os.open(root / MANIFEST_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return empty
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _RECORD_LIMIT:
            return empty
        with os.fdopen(os.dup(fd), "rb") as f:
            data = json.loads(f.read(_RECORD_LIMIT + 1).decode("utf-8"))
    except (OSError, *PARSE_ERRORS):
        return empty
    finally:
        os.close(fd)
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return empty
    files = {rel: e for rel, e in data["files"].items() if isinstance(rel, str) and isinstance(e, dict) and _unsafe(rel) is None}
    dirs = [d for d in (data.get("dirs") or []) if isinstance(d, str) and _unsafe(d) is None]
    return {**data, "files": files, "dirs": dirs}


def _unsafe(rel: str) -> Optional[str]:
    """Why ``rel`` is not a path that stays inside the export folder, or None when it is one: relative, no
    empty, ``.`` or ``..`` part, no control character (NUL, newline, ...), each part at most 255 bytes."""
    if not rel:
        return "an empty path"
    if rel.startswith("/") or rel.startswith("\\"):
        return "an absolute path"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in rel):
        return "a control character (NUL, newline, ...) in the path"
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            return "a path that leaves the folder" if part == ".." else "an empty or '.' path part"
        if len(part.encode("utf-8", "surrogateescape")) > 255:
            return "a file name longer than 255 bytes"
    if len(rel.encode("utf-8", "surrogateescape")) > _PATH_LIMIT:
        return f"a path longer than {_PATH_LIMIT} bytes"
    return None


def _checked_plan(want: dict[str, str], owners: dict[str, str], root: Path) -> None:
    """BadInput for the first planned path that would not stay inside ``root`` (before anything is written)."""
    for rel in want:
        why = _unsafe(rel)
        if why is None and len(os.fsencode(str(root))) + 1 + len(rel.encode("utf-8", "surrogateescape")) >= _PATH_LIMIT:
            why = f"a path longer than {_PATH_LIMIT} bytes under {root}"
        if why is not None:
            shown = rel if len(rel) <= 120 else rel[:60] + "…" + rel[-40:]
            raise BadInput(f"package '{owners.get(rel, '?')}': {shown!r} would be written outside the export folder or is not a safe "
                           f"path in it ({why}); nothing exported")


def _blob_ok(store: Any, sha: Any) -> Optional[Path]:
    """The store's blob for ``sha`` when it is a regular file (not a symlink), else None."""
    if not isinstance(sha, str):
        return None
    try:
        blob = store.blob_path(sha)
        return blob if stat.S_ISREG(os.lstat(blob).st_mode) else None
    except (OSError, ValueError):
        return None


class _Folder:
    """A folder inside the export root, reached part by part without following any symlink (``O_NOFOLLOW``
    at every step), so a symlink planted inside the root is never written through. ``fd`` is None when a
    part is a symlink, a file, or missing (and not created)."""

    def __init__(self, root_fd: int, parts: list[str], *, create: bool = False, made: Optional[list[str]] = None) -> None:
        self.fd: Optional[int] = None
        self.blocked: Optional[str] = None  # the first part that is a symlink or not a folder
        fd = os.dup(root_fd)
        for i, part in enumerate(parts):
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                    if made is not None:
                        made.append("/".join(parts[: i + 1]))
                except FileExistsError:
                    pass
                try:
                    nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError:
                    self.blocked = "/".join(parts[: i + 1])
                    os.close(fd)
                    return
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    os.close(fd)
                    raise
                self.blocked = "/".join(parts[: i + 1])
                os.close(fd)
                return
            os.close(fd)
            fd = nfd
        self.fd = fd

    def __enter__(self) -> "_Folder":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


def _lstat(folder: _Folder, name: str) -> Optional[os.stat_result]:
    try:
        return os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _links_to(folder: _Folder, name: str, st: os.stat_result, blob: Path) -> bool:
    """Is ``name`` a hardlink of ``blob`` or a symlink whose target is exactly ``blob``'s path?"""
    try:
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(name, dir_fd=folder.fd) == str(blob)
        b = os.lstat(blob)
        return stat.S_ISREG(st.st_mode) and (st.st_ino, st.st_dev) == (b.st_ino, b.st_dev)
    except OSError:
        return False


def _is_ours(folder: _Folder, name: str, entry: dict[str, Any], store: Any) -> bool:
    """Is ``name`` still exactly a link this module made: what the record says (inode or symlink target) AND a
    link to the store's blob of the recorded sha256? A record can be planted; a link into the store cannot be
    faked, and removing one loses nothing (the blob stays)."""
    blob = _blob_ok(store, entry.get("sha256"))
    st = _lstat(folder, name) if folder.fd is not None else None
    if blob is None or st is None or not _links_to(folder, name, st, blob):
        return False
    if entry.get("link") == "symlink":
        return stat.S_ISLNK(st.st_mode) and entry.get("target") == str(blob)
    return (st.st_ino, st.st_dev) == (entry.get("inode"), entry.get("device"))


def _make_link(blob: Path, dest: "str | Path", prefer_hard: bool, *, dir_fd: Optional[int] = None) -> dict[str, Any]:
    """Link ``dest`` (a path, or a name in the folder open as ``dir_fd``) to a blob (the one place links into
    the store are made): a hardlink when ``prefer_hard`` and the filesystem allows, else a symlink. Returns
    how, as export's record keeps it."""
    if prefer_hard:
        try:
            os.link(blob, dest, dst_dir_fd=dir_fd, follow_symlinks=False)
            st = os.stat(dest, dir_fd=dir_fd, follow_symlinks=False)
            return {"link": "hardlink", "inode": st.st_ino, "device": st.st_dev}
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
                raise
    os.symlink(str(blob), dest, dir_fd=dir_fd)
    return {"link": "symlink", "target": str(blob)}


def _describe(folder: _Folder, name: str, st: os.stat_result, sha: str) -> dict[str, Any]:
    if stat.S_ISLNK(st.st_mode):
        return {"link": "symlink", "target": os.readlink(name, dir_fd=folder.fd), "sha256": sha}
    return {"link": "hardlink", "inode": st.st_ino, "device": st.st_dev, "sha256": sha}


def comfyui_models_folder(root: Path) -> bool:
    """Is ``root`` ComfyUI's ``models`` folder rather than the ComfyUI root? A root has a ``models`` folder;
    a models folder is named ``models`` or holds ``checkpoints``, ``loras``, ... itself."""
    root = Path(root)
    if (root / "models").is_dir():
        return False
    if root.name == "models":
        return True
    return any((root / d).is_dir() for d in {*(v.split("/", 1)[1] for v in _COMFY.values()), "diffusers"})


def export(layout: str, root: Path, packages: Optional[list[LockedPackage]] = None) -> ExportReport:
    """Make (or bring up to date) a view of ``packages`` (default: everything installed) under ``root``.

    Never creates, changes or deletes anything outside ``root``: every planned path is checked first (a
    package name, family or file path that would leave the folder is BadInput, and nothing is written);
    folders inside are walked without following symlinks (a symlink hubctl did not make is not written
    through: the link is skipped with a note); a link is replaced or removed only when it is provably one
    this module made (:func:`_is_ours`). For ``comfyui``, ``root`` may be the ComfyUI root or its models folder."""
    from hubctl.store.blobs import Store

    if packages is None:
        from hubctl.store.installed import installed_packages

        packages = installed_packages()
    want, notes = plan_view(layout, packages)
    root = Path(root).expanduser().absolute()
    if layout == "comfyui" and comfyui_models_folder(root):
        want = {rel[len("models/"):] if rel.startswith("models/") else rel: sha for rel, sha in want.items()}
    owners = _owners(layout, packages, want)
    _checked_plan(want, owners, root)
    store = Store()
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
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel, sha in sorted(want.items()):
            blob = _blob_ok(store, sha)
            if blob is None:
                rep.skipped.append(f"{rel}: blob {sha[:12]}… is not in the store (run `hubctl install` or `hubctl sync`)")
                continue
            *parents, name = rel.split("/")
            made: list[str] = []
            with _Folder(root_fd, parents, create=True, made=made) as folder:
                dirs.update(made)
                if folder.fd is None:
                    rep.skipped.append(f"{rel}: {folder.blocked} is a symlink or a file hubctl did not make; not written through")
                    continue
                entry = old.get(rel)
                st = _lstat(folder, name)
                if st is not None:
                    if _links_to(folder, name, st, blob):
                        rep.kept.append(rel)
                        new[rel] = dict(entry) if entry and _is_ours(folder, name, entry, store) else _describe(folder, name, st, sha)
                        new[rel]["sha256"] = sha
                        continue
                    if entry is not None and _is_ours(folder, name, entry, store):
                        os.unlink(name, dir_fd=folder.fd)
                        new[rel] = {**_make_link(blob, name, same_fs, dir_fd=folder.fd), "sha256": sha}
                        rep.replaced.append(rel)
                        continue
                    rep.skipped.append(f"{rel}: exists and was not made by hubctl; left alone")
                    continue
                new[rel] = {**_make_link(blob, name, same_fs, dir_fd=folder.fd), "sha256": sha}
                rep.created.append(rel)
        for rel, entry in sorted(old.items()):
            if rel in want:
                continue
            *parents, name = rel.split("/")
            with _Folder(root_fd, parents) as folder:
                if folder.fd is not None and _is_ours(folder, name, entry, store):
                    os.unlink(name, dir_fd=folder.fd)
                    rep.removed.append(rel)
        for d in sorted(dirs, key=lambda s: -s.count("/")):  # deepest first; only folders we made, only empty
            *parents, name = d.split("/")
            with _Folder(root_fd, parents) as folder:
                try:
                    if folder.fd is None:
                        raise OSError(errno.ENOENT, "gone")
                    st = _lstat(folder, name)
                    if st is None or not stat.S_ISDIR(st.st_mode):
                        raise OSError(errno.ENOTDIR, "not a folder")
                    os.rmdir(name, dir_fd=folder.fd)  # only an empty folder goes
                    dirs.discard(d)
                except OSError:
                    if folder.fd is None or _lstat(folder, name) is None:
                        dirs.discard(d)
    finally:
        final = dict(new)
        for rel, entry in old.items():  # after an error: remember the links of ours not looked at yet
            if rel in final or rel in rep.removed:
                continue
            *parents, name = rel.split("/")
            with _Folder(root_fd, parents) as folder:
                if folder.fd is not None and _is_ours(folder, name, entry, store):
                    final[rel] = entry
        os.close(root_fd)
        manifest = {"version": 1, "layout": layout, "files": final, "dirs": sorted(dirs)}
        atomic_write_text(root / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return rep


def _owners(layout: str, packages: Iterable[LockedPackage], want: dict[str, str]) -> dict[str, str]:
    """Which package each planned path comes from (for the one-line message naming it)."""
    owners: dict[str, str] = {}
    for p in packages:
        paths, _ = plan_view(layout, [p])
        for rel in paths:
            for cand in (rel, rel[len("models/"):]):
                if cand in want:
                    owners.setdefault(cand, p.name)
    return owners


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
