"""The content-addressed store: blobs by sha256, written once, read-only; resumable partial downloads;
per-blob file locks; the (device, inode, size, mtime_ns) verification cache; garbage collection.

    $HUBCTL_HOME/store/sha256/ab/<hex>        a blob (mode 0444), named by the sha256 of its bytes
    $HUBCTL_HOME/store/partial/<key>.part     bytes of a download in progress (written at offsets)
    $HUBCTL_HOME/store/partial/<key>.json     its plan: expected size, validator (ETag), part ranges
    $HUBCTL_HOME/store/partial/<key>.prog     its progress: 8 bytes per part (offset reached), pwrite'd
    $HUBCTL_HOME/store/locks/<key>.lock       fcntl lock held while one process fetches that blob
    $HUBCTL_HOME/store/locks/store.lock       shared by installs, exclusive for gc

Every byte that enters is hashed on the way in (in the same pass as the download: see :mod:`hubctl.store.partial`);
size and sha256 are checked; then fsync, chmod 0444 and an atomic rename make the blob visible. A killed
process leaves its partial file, which the next fetch of the same key resumes. This module knows blobs
and references only, never manifests or lockfiles, and never talks to the network: sources write into a
:class:`hubctl.store.partial.PartialFile` handed to them. ``HUBCTL_FSYNC=0`` skips the fsync (see _fsync_enabled).
The cache's table and the sqlite3 read path to the state database live in :mod:`hubctl.store.state`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from hubctl.errors import HubctlError, SourceError
from hubctl.fsutil import fsync_dir
from hubctl.store.partial import Hasher, PartialFile, copy_into, sha256_file
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
    removed: list[str] = field(default_factory=list)
    freed: int = 0
    partials_removed: int = 0
    dry_run: bool = False


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

    # ---- paths
    def blob_path(self, sha256: str) -> Path:
        if not _is_sha(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.blobs_dir / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        if not self.blobs_dir.is_dir():
            return
        for sub in sorted(self.blobs_dir.iterdir()):
            if not sub.is_dir():
                continue
            for f in sorted(sub.iterdir()):
                if _is_sha(f.name):
                    yield f.name, f

    # ---- locks
    @contextmanager
    def lock(self, key: str, *, shared: bool = False, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """An fcntl lock on ``locks/<key>.lock`` (blocking). ``on_wait`` is called once if we must wait."""
        self.locks_dir.mkdir(parents=True, exist_ok=True)
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
            self.root.mkdir(parents=True, exist_ok=True)
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
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, BLOB_MODE)
        if dest.exists():
            _unlink(tmp)
        else:
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
        link: bool = False,
        label: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> FetchResult:
        """Put a local file into the store, hash-checked. ``link=True`` tries a hardlink first (for
        files nobody edits, e.g. an HF cache blob), else the bytes are copied while hashing."""
        src = Path(src)
        name = label or str(src)
        if sha256 is not None and self.has_blob(sha256):
            p = self.blob_path(sha256)
            return FetchResult(sha256, p.stat().st_size, p, reused=True)
        if link and sha256 is not None:
            with self.lock(sha256):
                if self.has_blob(sha256):
                    p = self.blob_path(sha256)
                    return FetchResult(sha256, p.stat().st_size, p, reused=True)
                tmp = self.partial_dir / f"{sha256}.link"
                self.partial_dir.mkdir(parents=True, exist_ok=True)
                _unlink(tmp)
                try:
                    os.link(src, tmp)
                except OSError:
                    pass
                else:
                    digest, n = sha256_file(tmp, progress=progress)
                    if digest != sha256 or (size is not None and n != size):
                        _unlink(tmp)
                        raise HashMismatch(f"{name}: sha256 mismatch: expected {sha256}, got {digest}; nothing stored")
                    return FetchResult(digest, n, self._commit(tmp, digest))

        def copy(pf: PartialFile) -> None:
            st = src.stat()
            parts = pf.plan(st.st_size, f"{st.st_size}-{st.st_mtime_ns}", 1)
            copy_into(src, pf, parts, progress)

        key = sha256 or "file-" + hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:32]
        return self.fetch(sha256=sha256, size=size, download=copy, key=key, label=name)

    # ---- the stat cache
    def record(self, sha256: str, path: Optional[Path] = None) -> None:
        """Remember the blob's current stat as verified (not in a read-only HUBCTL_HOME: the cache is an aid)."""
        from sqlmodel import Session

        from hubctl.db import state_read_only

        if state_read_only():
            return

        st = os.stat(path or self.blob_path(sha256))
        rec = _blob_table()(sha256=sha256, size=st.st_size, device=st.st_dev, inode=st.st_ino, mtime_ns=st.st_mtime_ns, verified_at=time.time())
        with Session(_engine()) as s:
            s.merge(rec)
            s.commit()

    def records(self, shas: Optional[Iterable[str]] = None) -> dict[str, tuple[int, int, int, int]]:
        """sha256 -> (size, device, inode, mtime_ns) from the cache (one query)."""
        rows = read_state("SELECT sha256, size, device, inode, mtime_ns FROM store_blobs")
        want = set(shas) if shas is not None else None
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows if want is None or r[0] in want}

    def verify(
        self, shas: Iterable[str], *, full: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[BlobCheck]:
        """Check blobs: an unchanged stat (device, inode, size, mtime_ns) costs a stat; a changed one, or
        ``full``, means a rehash. A good rehash refreshes the cache."""
        shas = list(dict.fromkeys(shas))
        cache = self.records(shas)
        out: list[BlobCheck] = []
        for sha in shas:
            path = self.blob_path(sha)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                out.append(BlobCheck(sha, False, "stat", "missing from the store"))
                continue
            if not full and cache.get(sha) == (st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns):
                out.append(BlobCheck(sha, True, "stat"))
                continue
            digest, _ = sha256_file(path, progress=progress)
            if digest == sha:
                self.record(sha, path)
                out.append(BlobCheck(sha, True, "hash"))
            else:
                out.append(BlobCheck(sha, False, "hash", f"content changed: sha256 is now {digest}"))
        return out

    # ---- housekeeping
    def remove_blob(self, sha256: str) -> int:
        from sqlalchemy import text

        path = self.blob_path(sha256)
        try:
            size = path.stat().st_size
            os.unlink(path)
        except FileNotFoundError:
            size = 0
        with _engine().begin() as c:
            c.execute(text("DELETE FROM store_blobs WHERE sha256 = :s"), {"s": sha256})
        return size

    def gc(self, referenced: "Iterable[str] | Callable[[], Iterable[str]]", *, dry_run: bool = False,
           on_wait: Callable[[], None] | None = None) -> GcReport:
        """Remove blobs nobody references, and partial downloads no process is working on. Takes the store
        lock exclusively (waiting for running installs), so no install adds references meanwhile; pass
        ``referenced`` as a callable so the references are read under that lock."""
        rep = GcReport(dry_run=dry_run)
        with self.lock("store", on_wait=on_wait):
            keep = set(referenced() if callable(referenced) else referenced)
            for sha, path in list(self.iter_blobs()):
                if sha in keep:
                    continue
                rep.removed.append(sha)
                rep.freed += path.stat().st_size
                if not dry_run:
                    self.remove_blob(sha)
            if self.partial_dir.is_dir():
                for f in sorted(self.partial_dir.glob("*.part")):
                    key = f.name[: -len(".part")]
                    lf = self.locks_dir / f"{key}.lock"
                    busy = False
                    if lf.exists():
                        fd = os.open(lf, os.O_RDWR)
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                            fcntl.flock(fd, fcntl.LOCK_UN)
                        except BlockingIOError:
                            busy = True
                        finally:
                            os.close(fd)
                    if busy:
                        continue
                    rep.partials_removed += 1
                    rep.freed += f.stat().st_size
                    if not dry_run:
                        PartialFile(self.partial_dir, key).discard()
                for f in sorted(self.partial_dir.glob("*.link")):
                    if not dry_run:
                        _unlink(f)
            if not dry_run and self.locks_dir.is_dir():
                # per-blob lock files nobody holds (installs hold the store lock shared, so none runs now)
                for lf in self.locks_dir.glob("*.lock"):
                    if lf.name == "store.lock":
                        continue
                    fd = os.open(lf, os.O_RDWR)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        _unlink(lf)
                    except BlockingIOError:
                        pass
                    finally:
                        os.close(fd)
        return rep


def open_store() -> Store:
    """The store under ``$HUBCTL_HOME/store``."""
    return Store()
