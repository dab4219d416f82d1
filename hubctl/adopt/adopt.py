"""``hubctl adopt DIR``: the model folders of A1111/Forge, ComfyUI and InvokeAI taken into the store.

For each weight file the layout's folders hold (:mod:`hubctl.adopt.layouts`, :mod:`hubctl.adopt.scan`):

1. classify it from its header (kind, family: :func:`hubctl.probe.probe`); a pickle is recognised and left
   alone, never unpickled; a diffusers folder's files are left as they are (single files are adopted);
2. hash it in one read, every form the project computes (:func:`hubctl.store.hashes.file_hashes`), stat before
   and after: a file that changed meanwhile is skipped with a warning; a file whose stat is what adopt recorded
   last time is not read again (:mod:`hubctl.adopt.state`: a second run is a no-op);
3. match it by sha256 against the registries and the store's roots (:mod:`hubctl.adopt.known`); a file nobody
   knows becomes a local package in the ``adopted`` registry (:mod:`hubctl.adopt.local_registry`);
4. take it into the store without a second copy where the filesystem allows (reflink, else hard link, else a
   copy hash-checked on the way in: :meth:`hubctl.store.blobs.Store.adopt_file`); duplicates are one blob;
5. make it a root (:func:`hubctl.store.roots.register_adopted`) so gc keeps the blob while the file is there;
6. with ``replace``, and only now (the blob verified, the root written), swap a file that is not the blob yet for
   a link to it (hard link on the store's filesystem, else a symlink), atomically (a link made beside it, then
   renamed over it); the bytes of a duplicate are reclaimed.

Every step for a file is committed before the next file starts, so a run killed at any moment resumes where it
stopped; nothing is deleted that is not already a verified blob with a root. Symlink loops, unreadable files and
files that are not weights are one line each and never stop the run. ``dry_run`` hashes (so that matches and
duplicates are known) and writes nothing.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hubctl.adopt.layouts import Layout, describe, detect_layout
from hubctl.adopt.scan import TMP_SUFFIX, Found, diffusers_root, scan
from hubctl.adopt.state import AdoptedFile, read_adopted, record_adopted, refresh_stats, stat_key
from hubctl.errors import BadInput, HubctlError
from hubctl.store.hashes import file_hashes

if TYPE_CHECKING:
    from hubctl.adopt.known import KnownHashes, Match
    from hubctl.lock.lockfile import LockedPackage
    from hubctl.progress import ProgressSink
    from hubctl.store.blobs import Store

__all__ = ["FileOutcome", "AdoptReport", "adopt_folder"]

_PICKLED = (".ckpt", ".pt", ".pth", ".bin")


@dataclass
class FileOutcome:
    """What adopt did (or, dry, would do) with one file.

    ``action``: "reflink" | "hardlink" | "copy" (taken in), "present" (its blob was there already: a duplicate),
    "unchanged" (adopted before, not read again), "skipped" (see ``note``), "pickle" (left alone), "planned" (dry
    run). ``replaced``: "hardlink" | "symlink" when the file was swapped for a link to its blob."""

    path: str
    kind: str = "unknown"
    family: Optional[str] = None
    size: int = 0
    sha256: Optional[str] = None
    package: Optional[str] = None
    version: Optional[str] = None
    known_as: str = ""  # "registry NAME" | "root KEY" | "local" | ""
    action: str = "skipped"
    replaced: Optional[str] = None
    reclaimed: int = 0
    reclaimable: int = 0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class AdoptReport:
    """The whole run: the layout found, each file's outcome, problems and warnings (one line each), and totals."""

    layout: Layout
    files: list[FileOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    replace: bool = False
    registered: bool = False

    @property
    def unique_blobs(self) -> int:
        return len({f.sha256 for f in self.files if f.sha256 and f.action not in ("skipped", "pickle")})

    @property
    def reclaimed(self) -> int:
        return sum(f.reclaimed for f in self.files)

    @property
    def reclaimable(self) -> int:
        return sum(f.reclaimable for f in self.files)

    @property
    def copied(self) -> int:
        return sum(f.size for f in self.files if f.action == "copy")

    def count(self, action: str) -> int:
        return sum(1 for f in self.files if f.action == action)

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": describe(self.layout), "dry_run": self.dry_run, "replace": self.replace,
            "files": [f.to_json() for f in self.files], "problems": list(self.problems), "warnings": list(self.warnings),
            "unique_blobs": self.unique_blobs, "bytes_reclaimed": self.reclaimed, "bytes_reclaimable": self.reclaimable,
            "bytes_copied": self.copied, "local_registry": self.registered,
        }


# --------------------------------------------------------------------------------------------- helpers


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _content_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What must not move between hashing a file and taking it in (ctime moves when a link is added)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _variant_name(p: Any) -> tuple[str, Optional[str]]:
    dtypes = dict(getattr(p, "dtypes", {}) or {})
    if not dtypes:
        return "default", None
    top = max(dtypes, key=lambda k: dtypes[k]).upper()
    dtype = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}.get(top)
    return (dtype or "default"), dtype


class _Run:
    """One adopt run's state: the store, what is known, the in-run caches."""

    def __init__(self, report: AdoptReport, index: Any, store: "Store", known: "KnownHashes",
                 progress: "ProgressSink") -> None:
        self.report = report
        self.index = index
        self.store = store
        self.known = known
        self.progress = progress
        self.adopted = read_adopted()
        self.by_inode: dict[tuple[int, int, int, int], tuple[str, dict[str, str]]] = {}
        self.local: dict[str, tuple[str, str, str]] = {}  # sha256 -> (name, version, variant) of local packages
        self.verified: dict[str, tuple[int, int, int, int]] = {}  # blobs verified in this run -> content key
        self.touched: dict[str, Path] = {}  # adopted paths whose stat to refresh at the end
        self.seen_sha: set[str] = set()
        self.local_written = False
        self.families = index.families
        from hubctl.registry.manifest import KINDS

        self.kinds = KINDS
        self.store_blobs = os.path.realpath(store.blobs_dir)
        for a in self.adopted.values():
            if a.package and a.known_as == "local":
                self.local.setdefault(a.sha256, (a.package, a.version, a.variant))

    # ---- one file
    def one(self, f: Found) -> FileOutcome:
        rep = self.report
        out = FileOutcome(str(f.path))
        try:
            st = os.stat(f.path)
        except OSError as e:
            out.note = "symlink loop" if e.errno == errno.ELOOP else f"cannot be read ({e.strerror})"
            rep.problems.append(f"{f.path}: {out.note}")
            return out
        out.size = st.st_size
        real = os.path.realpath(f.path)
        if f.symlink and os.path.dirname(os.path.dirname(real)) == self.store_blobs:
            return self._link_into_store(f, out, Path(real).name)
        rec = self.adopted.get(str(f.path))
        if rec is not None and self.store.has_blob(rec.sha256):
            blob_st = os.lstat(self.store.blob_path(rec.sha256))
            if stat_key(st) == rec.stat or _same_inode(st, blob_st):
                return self._unchanged(f, out, rec, st, blob_st)
        if diffusers_root(f.path, f.path.parent.parent) is not None and not f.path.name.endswith(".sft"):
            out.note = "part of a diffusers folder: left as it is (adopt takes single files)"
            return out
        from hubctl.probe.pickled import pickle_kind

        if f.path.suffix.lower() in _PICKLED or pickle_kind(f.path):
            out.action = "pickle"
            out.note = f"pickled: never unpickled, left alone (`hubctl convert {f.path}` makes a safetensors copy)"
            return out
        try:
            from hubctl.probe import probe

            p = probe(f.path, families=self.families)  # the header, checked (so its length below is sound)
            with open(f.path, "rb") as fh:
                data_start = 8 + int.from_bytes(fh.read(8), "little")
        except (BadInput, OSError) as e:
            msg = e.message if isinstance(e, HubctlError) else f"cannot be read ({getattr(e, 'strerror', e)})"
            rep.problems.append(f"{f.path}: {msg}")
            out.note = msg
            return out
        out.kind, out.family = p.kind, p.family
        hashes = self._hash(f, out, st, data_start)
        if hashes is None:
            return out
        sha = hashes["sha256"]
        out.sha256 = sha
        self.known.add_forms(sha, hashes)
        return self._take(f, out, p, sha, hashes)

    def _hash(self, f: Found, out: FileOutcome, st: os.stat_result, data_start: int) -> Optional[dict[str, str]]:
        key = _content_key(st)
        if key in self.by_inode:  # the same inode reached by another path (a hard link): read once
            return dict(self.by_inode[key][1])
        task = self.progress.task(f"hashing {f.path.name}", st.st_size)
        try:
            hashes = file_hashes(f.path, data_start)
        except OSError as e:
            self.report.problems.append(f"{f.path}: cannot be read ({e.strerror})")
            out.note = f"cannot be read ({e.strerror})"
            return None
        finally:
            task.advance(st.st_size)
            task.done()
        try:
            after = os.stat(f.path)
        except OSError:
            after = None
        if after is None or stat_key(after) != stat_key(st):
            out.action, out.note = "skipped", "changed while it was being read; skipped (run adopt again once it is still)"
            self.report.warnings.append(f"{f.path}: {out.note}")
            return None
        self.by_inode[key] = (hashes["sha256"], hashes)
        return hashes

    def _package_for(self, f: Found, out: FileOutcome, p: Any, sha: str) -> Optional["LockedPackage"]:
        """The package the file is: a registry's or a root's (whole-file match), else a local one."""
        from hubctl.lock.lockfile import LockedFile, LockedPackage

        url = Path(os.path.abspath(f.path)).as_uri()
        size = out.size
        whole = [m for m in self.known.matches(sha) if m.whole]
        if whole:
            m: Match = whole[0]
            out.package, out.version, out.known_as = m.name, m.version, m.where
            return LockedPackage(m.name, m.version, m.kind, m.family, m.variant,
                                 (LockedFile(m.path, url, size, sha),))
        if sha in self.local:
            name, version, variant = self.local[sha]
            out.package, out.version, out.known_as = name, version, "local"
            return LockedPackage(name, version, p.kind, p.family or "unknown", variant, (LockedFile(f.path.name, url, size, sha),))
        variant, dtype = _variant_name(p)
        if p.kind not in self.kinds or not p.family or p.family not in self.families:
            out.note = ("kept in the store, not packaged: "
                        + (f"kind '{p.kind}' is not a package kind" if p.kind not in self.kinds else "its family is not known"))
            return LockedPackage(f"adopted-file-{sha[:12]}", "0", p.kind, p.family or "unknown", "default",
                                 (LockedFile(f.path.name, url, size, sha),))
        from hubctl.adopt.local_registry import ADOPTED, package_name, read_manifest

        def taken(name: str) -> bool:
            other = self.index.get(name) if name in self.index else None
            mine = read_manifest(ADOPTED, p.kind, name)
            if mine is not None:
                files = [x for v in mine.get("versions", []) for var in v.get("variants", []) for x in var.get("files", [])]
                return not any(x.get("sha256") == sha for x in files)
            return other is not None
        from hubctl.registry.fields import check_file_path

        name = package_name(f.path.stem, sha, taken)
        try:
            path_in_pkg = check_file_path(f.path.name)
        except ValueError:
            path_in_pkg = f"{name}{f.path.suffix.lower() or '.safetensors'}"
        version: dict[str, Any] = {"version": "1.0", "family": p.family,
                                   "notes": f"adopted from {os.path.abspath(f.path)}",
                                   "variants": [{"name": variant, **({"dtype": dtype} if dtype else {}),
                                                 "layout": "single-file",
                                                 "files": [{"path": path_in_pkg, "size": size, "sha256": sha, "source": url}]}]}
        if p.prediction in ("epsilon", "v_prediction") and p.kind == "checkpoint":
            version["prediction"] = p.prediction
        if p.kind == "embedding" and p.tokens:
            version["tokens"] = [t for t in p.tokens if t and len(t) < 128][:8]
        doc = {"name": name, "kind": p.kind, "summary": f"{f.path.name} (adopted)", "versions": [version]}
        if not self.report.dry_run:
            from hubctl.adopt.local_registry import write_manifest

            write_manifest(ADOPTED, doc, known_families=self.families.ids())
            self.local_written = True
        self.local[sha] = (name, "1.0", variant)
        out.package, out.version, out.known_as = name, "1.0", "local"
        return LockedPackage(name, "1.0", p.kind, p.family, variant, (LockedFile(path_in_pkg, url, size, sha),),
                             prediction=version.get("prediction"), layout="single-file", dtype=dtype,
                             tokens=tuple(version.get("tokens", ())))

    def _take(self, f: Found, out: FileOutcome, p: Any, sha: str, hashes: dict[str, str]) -> FileOutcome:
        from hubctl.store.blobs import HashMismatch
        from hubctl.store.roots import register_adopted

        dup = sha in self.seen_sha or self.store.has_blob(sha)
        self.seen_sha.add(sha)
        pkg = self._package_for(f, out, p, sha)
        if self.report.dry_run:
            out.action = "planned"
            out.note = out.note or ("a duplicate: one blob" if dup else "into the store (reflink, hard link or copy)")
            if dup and not f.symlink:
                st = os.stat(f.path)
                if st.st_nlink == 1:
                    out.reclaimable = out.size
            return out
        hashed = os.stat(f.path)
        want = _content_key(hashed)
        try:
            res, how = self.store.adopt_file(f.path, sha256=sha, size=out.size,
                                             unchanged=lambda s: _content_key(s) == want,
                                             allow_hardlink=not f.symlink)
        except HashMismatch:
            out.action, out.note = "skipped", "changed while it was being adopted; skipped (run adopt again once it is still)"
            self.report.warnings.append(f"{f.path}: {out.note}")
            return out
        out.action = how
        assert pkg is not None
        register_adopted(f.path, pkg)
        self._record(f, out, sha, hashes, pkg)
        if how == "hardlink":
            self.verified[sha] = _content_key(os.lstat(res.path))
        self._maybe_replace(f, out, sha, hashed)
        if not out.replaced and not f.symlink:  # a second copy of the bytes (a duplicate, or a copy into the store)
            now = os.stat(f.path)
            if not _same_inode(now, os.lstat(res.path)) and now.st_nlink == 1:
                out.reclaimable = out.size
        return out

    def _record(self, f: Found, out: FileOutcome, sha: str, hashes: dict[str, str], pkg: "LockedPackage") -> None:
        st = os.stat(f.path)
        record_adopted(AdoptedFile(str(f.path), sha, st.st_size, stat_key(st), out.kind, out.family or "",
                                   pkg.name, pkg.version, hashes, f"{out.known_as}|{pkg.variant}"))
        self.touched[str(f.path)] = f.path

    def _maybe_replace(self, f: Found, out: FileOutcome, sha: str, hashed: os.stat_result) -> None:
        if not self.report.replace or f.symlink:
            return
        blob = self.store.blob_path(sha)
        st = os.lstat(f.path)
        bst = os.lstat(blob)
        if _same_inode(st, bst):
            return
        if _content_key(st) != _content_key(hashed):
            out.note = "changed since it was hashed; not replaced"
            self.report.warnings.append(f"{f.path}: {out.note}")
            return
        if self.verified.get(sha) != _content_key(bst):
            check = self.store.verify([sha])[0]
            if not check.ok:
                out.note = f"its blob failed verification ({check.problem}); not replaced"
                self.report.warnings.append(f"{f.path}: {out.note}")
                return
            self.verified[sha] = _content_key(os.lstat(blob))
        tmp = f.path.with_name(f".{f.path.name}{TMP_SUFFIX}")
        try:
            tst = os.lstat(tmp)
        except FileNotFoundError:
            tst = None
        if tst is not None:  # left by a killed run: ours when it is a link to this blob
            if (stat.S_ISLNK(tst.st_mode) and os.readlink(tmp) == str(blob)) or _same_inode(tst, bst):
                os.unlink(tmp)
            else:
                out.note = f"{tmp.name} is in the way; not replaced"
                self.report.warnings.append(f"{f.path}: {out.note}")
                return
        try:
            os.link(blob, tmp)
            how = "hardlink"
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
                raise
            os.symlink(str(blob), tmp)
            how = "symlink"
        os.replace(tmp, f.path)
        from hubctl.fsutil import fsync_dir

        fsync_dir(f.path.parent)
        out.replaced = how
        out.reclaimed = st.st_size if st.st_nlink == 1 else 0
        self.touched[str(f.path)] = f.path

    def _unchanged(self, f: Found, out: FileOutcome, rec: AdoptedFile, st: os.stat_result,
                   blob_st: os.stat_result) -> FileOutcome:
        out.sha256, out.kind, out.family = rec.sha256, rec.kind or "unknown", rec.family or None
        out.package, out.version, out.known_as = rec.package or None, rec.version or None, rec.known_as
        out.action = "unchanged"
        self.seen_sha.add(rec.sha256)
        self.known.add_forms(rec.sha256, rec.hashes)
        if self.report.replace and not self.report.dry_run and not f.symlink and not _same_inode(st, blob_st):
            self._maybe_replace(f, out, rec.sha256, st)
        elif self.report.dry_run and not f.symlink and not _same_inode(st, blob_st) and st.st_nlink == 1:
            out.reclaimable = out.size
        return out

    def _link_into_store(self, f: Found, out: FileOutcome, sha: str) -> FileOutcome:
        out.sha256, out.action = sha, "unchanged"
        rec = self.adopted.get(str(f.path))
        if rec is not None:
            out.kind, out.family, out.package, out.version = rec.kind, rec.family or None, rec.package or None, rec.version or None
        out.note = "a link into the store"
        self.seen_sha.add(sha)
        return out

    # ---- the end
    def finish(self) -> None:
        """Refresh the recorded stat of files whose links changed, and the store's cache of blobs whose only
        change is a new link (ctime), so the next adopt and `hubctl verify` cost a stat."""
        stats = {}
        for key, path in self.touched.items():
            try:
                stats[key] = stat_key(os.stat(path))
            except OSError:
                continue
        refresh_stats(stats)
        cache = self.store.records(self.seen_sha)
        for sha in self.seen_sha:
            try:
                st = os.lstat(self.store.blob_path(sha))
            except (OSError, ValueError):
                continue
            old = cache.get(sha)
            if old is not None and old[:4] == (st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns) and old[4] != st.st_ctime_ns:
                self.store.record(sha, st=st)


def adopt_folder(root: Path, *, replace: bool = False, dry_run: bool = False,
                 progress: "bool | ProgressSink" = False) -> AdoptReport:
    """Adopt the model folders of the tool at ``root`` (see the module docstring). BadInput when ``root`` is
    not a folder or its ``extra_model_paths.yaml`` is not YAML."""
    from hubctl.adopt.known import KnownHashes
    from hubctl.progress import make_progress
    from hubctl.registry.manage import open_index
    from hubctl.store.blobs import Store

    layout = detect_layout(Path(root))
    report = AdoptReport(layout, dry_run=dry_run, replace=replace)
    found, problems = scan(layout.folders)
    report.problems += [p.line() for p in problems]
    index = open_index()
    store = Store()
    known = KnownHashes.build(index)
    prog = make_progress(progress)
    with prog:
        run = _Run(report, index, store, known, prog)
        if dry_run:
            report.files = [run.one(f) for f in found]
            return report
        with store.using():
            for f in found:
                report.files.append(run.one(f))
            run.finish()
    from hubctl.adopt.local_registry import ADOPTED, ensure_registered

    report.registered = ensure_registered(ADOPTED)
    return report
