"""The content-addressed store: blobs by sha256, written once, read-only; resumable partial downloads;
per-blob file locks; the (device, inode, size, mtime_ns, ctime_ns) verification cache; quarantine; garbage
collection.

    $HUBCTL_HOME/store/sha256/ab/<hex>        a blob (mode 0444), named by the sha256 of its bytes
    $HUBCTL_HOME/store/partial/<key>.part     bytes of a download in progress (written at offsets)
    $HUBCTL_HOME/store/partial/<key>.json     its plan: expected size, validator (ETag), part ranges
    $HUBCTL_HOME/store/partial/<key>.prog     its progress: 8 bytes per part (offset reached), pwrite'd
    $HUBCTL_HOME/store/locks/<key>.lock       fcntl lock held while one process fetches that blob
    $HUBCTL_HOME/store/locks/store.lock       shared by installs, exclusive for gc
    $HUBCTL_HOME/store/quarantine/<hex>.<ns>  a blob that failed verification, set aside until the next gc

Every byte that enters is hashed on the way in (in the same pass as the download: see :mod:`hubctl.store.partial`);
size and sha256 are checked; then fsync, chmod 0444 and an atomic rename make the blob visible. A killed
process leaves its partial file, which the next fetch of the same key resumes. A blob is a regular file the
store owns: a symlink, a folder or a file of another user at a blob's path is never taken for the blob. A blob
that fails a rehash is dropped from the cache and moved to quarantine, so the next ``sync``/``install`` fetches it
again. Folders are made 0755 less the umask (never group- or world-writable). A local file is imported by copy
(or a copy-on-write clone), never linked or changed: it may belong to someone else (the HF cache). The one way in
by hard link is :meth:`Store.adopt_file` (``hubctl adopt``: the user hands a file over; it becomes the blob).

This module knows blobs and references only, never manifests or lockfiles, and never talks to the network:
sources write into a :class:`hubctl.store.partial.PartialFile` handed to them. ``HUBCTL_FSYNC=0`` skips the
fsync (see _fsync_enabled). The cache's table and the sqlite3 read path to the state database live in
:mod:`hubctl.store.state`; what references blobs (the roots) in :mod:`hubctl.store.roots`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from hubctl.errors import HubctlError, SourceError
from hubctl.fsutil import fsync_dir, make_dirs
from hubctl.store.hashes import sha256_file
from hubctl.store.partial import Hasher, PartialFile, copy_into
from hubctl.store.state import _blob_table, _engine, read_state

__all__ = [
    "Store",
    "StoreError",
    "DiskFull",
    "FetchResult",
    "BlobCheck",
    "GcReport",
    "HashMismatch",
    "open_store",
]

BLOB_MODE = 0o444


class StoreError(HubctlError):
    """The store could not take a blob (disk full, permissions): exit 1, one line."""

    exit_code = 1


class DiskFull(StoreError):
    """No room for a blob, or the store cannot be written (exit 3, like every failure of the machine: see
    hubctl.errors); nothing half-written stays."""

    exit_code = 3


class HashMismatch(SourceError):
    """Bytes arrived but their size or sha256 is not the expected one; nothing was stored (exit 3)."""


# ----------------------------------------------------------------------------------------------- store


@dataclass
class FetchResult:
    """What one fetch did: the blob, and whether bytes travelled (or were reused)."""

    sha256: str
    size: int
    path: Path
    downloaded: int = 0  # bytes written by this process
    resumed: int = 0  # bytes kept from an earlier, interrupted attempt
    reused: bool = False  # the blob was already in the store


@dataclass
class BlobCheck:
    """Verification of one blob: ``ok``, ``how`` it was checked ("stat" | "hash"), and a problem if any."""

    sha256: str
    ok: bool
    how: str
    problem: Optional[str] = None


@dataclass
class GcReport:
    """What gc removed (or, with ``dry_run``, would remove), with each blob's size; ``bad``: blobs a root pins
    that were not regular files of the store (sha256 -> problem), set aside; ``honoured``/``dropped``: the roots
    it kept or let go, and ``was``: what a removed blob was in a dropped root (filled in by
    :func:`hubctl.store.installed.gc`)."""

    removed: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    freed: int = 0
    partials_removed: int = 0
    dry_run: bool = False
    bad: dict[str, str] = field(default_factory=dict)
    honoured: list[Any] = field(default_factory=list)
    dropped: list[Any] = field(default_factory=list)
    was: dict[str, str] = field(default_factory=dict)


def _fsync_enabled() -> bool:
    """fsync each blob before it becomes visible (default). ``HUBCTL_FSYNC=0`` skips it: a killed process
    still leaves no half blob (the rename is atomic), but a power cut might; for benchmarks and scratch."""
    return os.environ.get("HUBCTL_FSYNC", "1").strip().lower() not in ("0", "no", "false", "off")


def _unlink(p: Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def _is_sha(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def _not_a_blob(st: os.stat_result, path: Path) -> Optional[str]:
    """Why the entry at a blob's path (``st`` from lstat) cannot be the blob, or None: a blob is a regular file
    of this user (never a symlink, a folder, a device, or another user's file)."""
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"not a regular file in the store (a symlink to {target})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file in the store (a folder)" if stat.S_ISDIR(st.st_mode) else "not a regular file in the store"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"not a file of the store (owned by user {st.st_uid})"
    return None


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What the verification cache compares: (size, device, inode, mtime_ns, ctime_ns)."""
    return (st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


_FICLONE = 0x40049409  # Linux ioctl: clone a file's extents (btrfs, xfs, bcachefs; copy-on-write)


def _clone(src: Path, dst: Path) -> bool:
    """Make ``dst`` a copy-on-write clone of ``src`` (a reflink: no bytes copied, no space used, and a separate
    file: a later change to ``src`` never reaches ``dst``). False where the filesystem cannot."""
    try:
        sfd = os.open(src, os.O_RDONLY)
    except OSError:
        return False
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fcntl.ioctl(dfd, _FICLONE, sfd)
            return True
        except OSError:
            return False
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


class Store:
    """The content-addressed store under ``root`` (default ``$HUBCTL_HOME/store``)."""

    def __init__(self, root: Optional[Path] = None) -> None:
        if root is None:
            from hubctl.config import store_root

            root = store_root()
        self.root = Path(root)
        self.blobs_dir = self.root / "sha256"
        self.partial_dir = self.root / "partial"
        self.locks_dir = self.root / "locks"
        self.quarantine_dir = self.root / "quarantine"

    # ---- paths
    def blob_path(self, sha256: str) -> Path:
        if not _is_sha(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.blobs_dir / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        """Is the blob there: a regular file of the store at its path (a symlink or a folder is not)."""
        path = self.blob_path(sha256)
        try:
            return _not_a_blob(os.lstat(path), path) is None
        except OSError:
            return False

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        """Every entry named like a blob under ``sha256/`` (whatever it is: gc and verify look closer). Never
        descends through a symlinked shard folder."""
        if not self.blobs_dir.is_dir():
            return
        for sub in sorted(self.blobs_dir.iterdir()):
            if sub.is_symlink() or not sub.is_dir():
                continue
            for f in sorted(sub.iterdir()):
                if _is_sha(f.name):
                    yield f.name, f

    # ---- locks
    @contextmanager
    def lock(self, key: str, *, shared: bool = False, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """An fcntl lock on ``locks/<key>.lock`` (blocking). ``on_wait`` is called once if we must wait."""
        make_dirs(self.locks_dir)
        fd = os.open(self.locks_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, mode)
            yield
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def using(self):  # type: ignore[no-untyped-def]
        """Held (shared) while an install adds blobs and records references; gc takes it exclusively."""
        return self.lock("store", shared=True)

    # ---- the way in
    def fetch(
        self,
        *,
        sha256: Optional[str],
        size: Optional[int],
        download: Callable[[PartialFile], None],
        key: Optional[str] = None,
        label: str = "",
        progress: Callable[[int], None] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> FetchResult:
        """Fetch one blob through ``download(partial_file)`` unless the store has it already.

        The download writes into a PartialFile (resuming what an interrupted attempt left); a hasher
        follows it; then size and sha256 are checked and the blob is renamed into place. With
        ``sha256`` unknown, ``key`` (e.g. a digest of the URL) names the partial and the lock.
        On a hash or size mismatch nothing is stored and :class:`HashMismatch` is raised.
        """
        if sha256 is not None and self.has_blob(sha256):
            path = self.blob_path(sha256)
            return FetchResult(sha256, path.stat().st_size, path, reused=True)
        lock_key = sha256 or key
        if not lock_key:
            raise ValueError("fetch needs a sha256 or a key")
        with self.lock(lock_key, on_wait=on_wait):
            if sha256 is not None and self.has_blob(sha256):  # another process finished it while we waited
                path = self.blob_path(sha256)
                return FetchResult(sha256, path.stat().st_size, path, reused=True)
            for attempt in (1, 2):
                pf = PartialFile(self.partial_dir, lock_key, keyed_by_hash=sha256 is not None)
                try:
                    return self._fetch_once(pf, sha256, size, download, label, progress)
                except HashMismatch:
                    # A resumed partial may hold stale bytes: start once more from nothing.
                    if attempt == 1 and pf.resumed_bytes > 0:
                        pf.discard()
                        continue
                    raise
            raise AssertionError("unreachable")

    def _fetch_once(
        self,
        pf: PartialFile,
        sha256: Optional[str],
        size: Optional[int],
        download: Callable[[PartialFile], None],
        label: str,
        progress: Callable[[int], None] | None,
    ) -> FetchResult:
        if size is not None:
            self._check_space(size, pf, label)
        hasher = Hasher(pf)
        pf.hasher = hasher
        hasher.start()
        try:
            download(pf)
            digest, n = hasher.finish()
        except OSError as e:
            hasher.stop()
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                pf.discard()
                raise DiskFull(f"disk full while writing {label or 'a download'} into {self.root}; "
                                 "the partial file was removed, nothing was stored") from None
            pf.close()
            raise
        except BaseException:
            hasher.stop()
            if pf.parts and pf.total_done() == 0:
                pf.discard()  # nothing arrived: leave no clutter
            else:
                pf.close()  # keep the partial: the next fetch resumes it
            raise
        want_size = size if size is not None else pf.size
        name = label or "download"
        if want_size is not None and n != want_size:
            pf.discard()
            raise HashMismatch(f"{name}: incomplete download: expected {want_size} bytes, found {n}; nothing stored")
        if sha256 is not None and digest != sha256:
            pf.discard()
            raise HashMismatch(f"{name}: sha256 mismatch: expected {sha256}, got {digest}; the bytes were rejected, nothing stored")
        downloaded = pf.total_done() - pf.resumed_bytes
        resumed = pf.resumed_bytes
        try:
            if _fsync_enabled():
                pf.fsync()
        except OSError as e:
            pf.discard()
            raise DiskFull(f"cannot write {name} into {self.root}: {e.strerror}") from None
        path = self._commit(pf.path, digest)
        pf.close()
        pf.drop_sidecars()
        _unlink(pf.path)
        return FetchResult(digest, n, path, downloaded=downloaded, resumed=resumed)

    def _check_space(self, size: int, pf: PartialFile, label: str) -> None:
        try:
            make_dirs(self.root)
            free = shutil.disk_usage(self.root).free
        except OSError:
            return
        have = pf.path.stat().st_size if pf.path.exists() else 0
        need = size - min(have, size)
        if need > free:
            raise DiskFull(
                f"not enough disk space for {label or 'a download'}: needs {need} more bytes, {free} free under {self.root}"
            )

    def _commit(self, tmp: Path, digest: str) -> Path:
        """Make ``tmp`` (hashed, fsync'd) the blob ``digest``: read-only, atomic rename, dir fsync, stat recorded."""
        dest = self.blob_path(digest)
        make_dirs(dest.parent)
        os.chmod(tmp, BLOB_MODE)
        if self.has_blob(digest):
            _unlink(tmp)
        else:
            if os.path.lexists(dest):  # a symlink or a folder where the blob belongs: set it aside first
                self.quarantine(digest)
            os.rename(tmp, dest)
            if _fsync_enabled():  # (with HUBCTL_FSYNC=0 not even the folder: on ext4 that flushes the data too)
                fsync_dir(dest.parent)
        self.record(digest, dest)
        return dest

    def import_file(
        self,
        src: Path,
        *,
        sha256: Optional[str] = None,
        size: Optional[int] = None,
        label: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> FetchResult:
        """Put a local file into the store, hash-checked, never changing ``src`` (it may be someone else's: a
        file in the HF cache keeps its mode, owner and link count). Where the filesystem can, the blob is a
        copy-on-write clone of ``src`` (a reflink: no bytes copied, no extra space, yet a file of its own), else
        the bytes are copied while hashing. Never a hard link: a link would share ``src``'s inode, so a chmod
        of the blob would change ``src`` and an edit of ``src`` would change the blob."""
        src = Path(src)
        name = label or str(src)
        if sha256 is not None and self.has_blob(sha256):
            p = self.blob_path(sha256)
            return FetchResult(sha256, p.stat().st_size, p, reused=True)
        if sha256 is not None:
            with self.lock(sha256):
                if self.has_blob(sha256):
                    p = self.blob_path(sha256)
                    return FetchResult(sha256, p.stat().st_size, p, reused=True)
                make_dirs(self.partial_dir)
                tmp = self.partial_dir / f"{sha256}.clone"
                _unlink(tmp)
                if _clone(src, tmp):
                    digest, n = sha256_file(tmp, progress=progress)
                    if digest != sha256 or (size is not None and n != size):
                        _unlink(tmp)
                        raise HashMismatch(f"{name}: sha256 mismatch: expected {sha256}, got {digest}; nothing stored")
                    return FetchResult(digest, n, self._commit(tmp, digest))
                _unlink(tmp)

        def copy(pf: PartialFile) -> None:
            from hubctl.store.partial import local_validator

            st = src.stat()
            parts = pf.plan(st.st_size, local_validator(st), 1)
            copy_into(src, pf, parts, progress)

        key = sha256 or "file-" + hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:32]
        return self.fetch(sha256=sha256, size=size, download=copy, key=key, label=name)

    def adopt_file(self, src: Path, *, sha256: str, size: int, unchanged: Callable[[os.stat_result], bool],
                   allow_hardlink: bool = True) -> tuple[FetchResult, str]:
        """Take a user's file, already hashed to ``sha256``, into the store without a second copy where the
        filesystem allows (``hubctl adopt``: the user hands the file over): a copy-on-write clone (a file of its
        own), else a hard link (the same inode: the file becomes the read-only blob; only for a regular file of
        this user), else a copy hash-checked on the way in. Before a clone or link becomes the blob,
        ``unchanged(stat)`` must confirm the file is still what was hashed (size, inode, mtime): a file that
        changed meanwhile is refused with HashMismatch and nothing is stored. Returns the result and how:
        "present" (already a blob), "reflink", "hardlink" or "copy"."""
        if self.has_blob(sha256):
            p = self.blob_path(sha256)
            return FetchResult(sha256, p.stat().st_size, p, reused=True), "present"
        with self.lock(sha256):
            if self.has_blob(sha256):
                p = self.blob_path(sha256)
                return FetchResult(sha256, p.stat().st_size, p, reused=True), "present"
            make_dirs(self.partial_dir)
            for how in ("reflink", "hardlink"):
                tmp = self.partial_dir / f"{sha256}.{'clone' if how == 'reflink' else 'link'}"
                _unlink(tmp)
                if how == "reflink":
                    made = _clone(src, tmp)
                else:
                    st = os.lstat(src)
                    made = allow_hardlink and stat.S_ISREG(st.st_mode) and (not hasattr(os, "geteuid") or st.st_uid == os.geteuid())
                    if made:
                        try:
                            os.link(src, tmp, follow_symlinks=False)
                        except OSError:
                            made = False
                if not made:
                    _unlink(tmp)
                    continue
                tst = os.lstat(tmp)
                if tst.st_size != size or not unchanged(os.stat(src) if how == "reflink" else tst):
                    _unlink(tmp)
                    raise HashMismatch(f"{src}: changed while it was being adopted; nothing stored")
                if _fsync_enabled() and how == "reflink":
                    fd = os.open(tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                return FetchResult(sha256, size, self._commit(tmp, sha256)), how
        res = self.import_file(src, sha256=sha256, size=size, label=str(src))
        return res, "present" if res.reused else "copy"

    # ---- the stat cache
    def record(self, sha256: str, path: Optional[Path] = None, st: Optional[os.stat_result] = None) -> None:
        """Remember the blob's stat (``st``: the stat of the bytes just hashed; else lstat of its path) as
        verified. Idempotent: processes recording the same blob at once all succeed (one upsert)."""
        from hubctl.db import upsert

        if st is None:
            p = path or self.blob_path(sha256)
            st = os.lstat(p)
            problem = _not_a_blob(st, p)
            if problem:
                raise StoreError(f"{p}: {problem}")
        row = {"sha256": sha256, "size": st.st_size, "device": st.st_dev, "inode": st.st_ino,
               "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "verified_at": time.time()}
        with _engine().begin() as c:
            upsert(c, _blob_table(), [row], ["sha256"])

    def records(self, shas: Optional[Iterable[str]] = None) -> dict[str, tuple[int, int, int, int, int]]:
        """sha256 -> (size, device, inode, mtime_ns, ctime_ns) from the cache (one query)."""
        rows = read_state("SELECT sha256, size, device, inode, mtime_ns, ctime_ns FROM store_blobs")
        want = set(shas) if shas is not None else None
        return {r[0]: tuple(r[1:]) for r in rows if want is None or r[0] in want}  # type: ignore[misc]

    def _forget(self, sha256: str) -> None:
        from sqlalchemy import text

        with _engine().begin() as c:
            c.execute(text("DELETE FROM store_blobs WHERE sha256 = :s"), {"s": sha256})

    def quarantine(self, sha256: str) -> Optional[Path]:
        """Set the entry at a blob's path aside (whatever it is: a damaged blob, a symlink, a folder; moved,
        never followed) and drop it from the cache, so the next fetch writes the blob afresh. gc empties the
        quarantine. Returns where it went (None when nothing was there)."""
        path = self.blob_path(sha256)
        make_dirs(self.quarantine_dir)
        dest = self.quarantine_dir / f"{sha256}.{time.time_ns()}"
        try:
            os.rename(path, dest)
        except FileNotFoundError:
            dest = None  # type: ignore[assignment]
        self._forget(sha256)
        return dest

    def _bookkeep(self, action: Callable[[], object]) -> None:
        """A write verify makes on the side (refresh the cache, set a bad blob aside): where it cannot be made
        (a read-only home), the check's answer stands and the write is left for a later run."""
        try:
            action()
        except OSError:
            pass
        except Exception as e:  # noqa: BLE001 - only the database's own errors are let through here
            from sqlalchemy.exc import SQLAlchemyError

            if not isinstance(e, SQLAlchemyError):
                raise

    def verify(
        self, shas: Iterable[str], *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[BlobCheck]:
        """Check blobs: an unchanged stat (size, device, inode, mtime_ns, ctime_ns) costs a stat; a changed one,
        or ``full``, means a rehash of the bytes through a descriptor that does not follow symlinks. A good
        rehash refreshes the cache; a bad one, or an entry that is no regular file of the store, is set aside
        (:meth:`quarantine`), so that ``sync``/``install`` fetch the blob again."""
        shas = list(dict.fromkeys(shas))
        cache = self.records(shas)
        out: list[BlobCheck] = []
        for sha in shas:
            path = self.blob_path(sha)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                out.append(BlobCheck(sha, False, "stat", "missing from the store"))
                continue
            problem = _not_a_blob(st, path)
            if problem:
                self._bookkeep(lambda: self.quarantine(sha))
                out.append(BlobCheck(sha, False, "stat", problem))
                continue
            if not full and cache.get(sha) == _stat_key(st):
                out.append(BlobCheck(sha, True, "stat"))
                continue
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError as e:  # swapped for a symlink since the lstat (ELOOP), or gone
                self._bookkeep(lambda: self.quarantine(sha))
                out.append(BlobCheck(sha, False, "hash", f"cannot be read ({e.strerror})"))
                continue
            try:
                st = os.fstat(fd)
                problem = _not_a_blob(st, path)
                digest = None if problem else sha256_file(fd, progress=progress)[0]
            finally:
                os.close(fd)
            if digest == sha:
                self._bookkeep(lambda: self.record(sha, st=st))
                out.append(BlobCheck(sha, True, "hash"))
            else:
                self._bookkeep(lambda: self.quarantine(sha))
                out.append(BlobCheck(sha, False, "hash", problem or f"content changed: sha256 is now {digest}"))
        return out

    # ---- housekeeping
    def remove_blob(self, sha256: str) -> int:
        """Remove a blob (or whatever sits at its path, never following it) and its cache row; bytes freed."""
        path = self.blob_path(sha256)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._forget(sha256)
            return 0
        if stat.S_ISDIR(st.st_mode):  # a folder planted at a blob's path: set aside (gc empties the quarantine)
            self.quarantine(sha256)
            return 0
        _unlink(path)
        self._forget(sha256)
        return st.st_size if stat.S_ISREG(st.st_mode) else 0

    def gc(self, referenced: "Iterable[str] | Callable[[], Iterable[str]]", *, dry_run: bool = False,
           on_wait: Callable[[], None] | None = None) -> GcReport:
        """Remove blobs nobody references, partial downloads and their sidecars that no process is working on,
        and what quarantine holds. Takes the store lock exclusively (waiting for running installs), so no
        install adds references meanwhile; pass ``referenced`` as a callable so the references are read under
        that lock. An entry at a blob's path that is no regular file of the store is never followed: when
        unreferenced it is removed; when referenced it is set aside and named in ``bad``."""
        rep = GcReport(dry_run=dry_run)
        with self.lock("store", on_wait=on_wait):
            keep = set(referenced() if callable(referenced) else referenced)
            for sha, path in list(self.iter_blobs()):
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                problem = _not_a_blob(st, path)
                if sha in keep:
                    if problem:
                        rep.bad[sha] = problem
                        if not dry_run:
                            self.quarantine(sha)
                    continue
                rep.removed.append(sha)
                rep.sizes[sha] = st.st_size if not problem else 0
                rep.freed += rep.sizes[sha]
                if not dry_run:
                    self.remove_blob(sha)
            self._gc_partials(rep, dry_run)
            if not dry_run:
                self._empty_quarantine()
                self._gc_locks()
        return rep

    def _busy(self, key: str) -> bool:
        """Does a live process hold ``locks/<key>.lock`` (it is fetching that key)?"""
        lf = self.locks_dir / f"{key}.lock"
        try:
            fd = os.open(lf, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def _gc_partials(self, rep: GcReport, dry_run: bool) -> None:
        """Every partial download no live process holds: its ``.part`` and its sidecars (``.json``, ``.prog``,
        and their temporary files), including sidecars orphaned by a kill after the blob's rename; clones and
        links an import left behind."""
        if not self.partial_dir.is_dir():
            return
        keys: dict[str, list[Path]] = {}
        for f in sorted(self.partial_dir.iterdir()):
            name = f.name
            if name.startswith(".") and name.endswith(".tmp"):  # .<key>.json.<random>.tmp (an atomic write)
                name = name[1:].split(".json.", 1)[0] + ".json"
            key, dot, ext = name.rpartition(".")
            if not dot or ext not in ("part", "json", "prog", "link", "clone"):
                continue
            keys.setdefault(key, []).append(f)
        for key, files in keys.items():
            if self._busy(key):
                continue
            rep.partials_removed += 1
            for f in files:
                try:
                    st = os.lstat(f)
                except FileNotFoundError:
                    continue
                rep.freed += st.st_size if stat.S_ISREG(st.st_mode) else 0
                if not dry_run:
                    _unlink(f)

    def _empty_quarantine(self) -> None:
        if not self.quarantine_dir.is_dir():
            return
        for f in self.quarantine_dir.iterdir():
            if f.is_dir() and not f.is_symlink():
                shutil.rmtree(f, ignore_errors=True)  # (rmtree never follows symlinks)
            else:
                _unlink(f)

    def _gc_locks(self) -> None:
        """Per-blob lock files nobody holds (installs hold the store lock shared, so none runs now)."""
        if not self.locks_dir.is_dir():
            return
        for lf in self.locks_dir.glob("*.lock"):
            if lf.name == "store.lock":
                continue
            try:
                fd = os.open(lf, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _unlink(lf)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)


def open_store() -> Store:
    """The store under ``$HUBCTL_HOME/store``."""
    return Store()
