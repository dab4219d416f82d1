"""Partial downloads: the resumable partial file every source writes into, and the hasher that computes
the sha256 in the same pass as the download.

    store/partial/<key>.part     bytes of a download in progress (written at offsets, several parts at once)
    store/partial/<key>.json     its plan: expected size, validator (ETag), part ranges (written once)
    store/partial/<key>.prog     its progress: 8 bytes per part (offset reached), pwrite'd after the data

A killed process leaves the three files; the next fetch of the same key resumes every part where it
stopped. Owns no blob and no database row: :mod:`hubctl.store.blobs` decides what a finished partial becomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from hubctl.errors import SourceError
from hubctl.fsutil import atomic_write_text, make_dirs

__all__ = ["CHUNK", "Part", "PartialFile", "Hasher", "Cancelled", "cancel_all", "copy_into"]

CHUNK = 8 << 20  # read size for hashing and copying
HASH_BATCH = 4 << 20  # the hasher thread wakes when this much is waiting (or at the end)


_cancel = threading.Event()


class Cancelled(Exception):
    """Raised inside a download when the user interrupted (Ctrl-C): the partial file is kept for resuming."""


def cancel_all(on: bool = True) -> None:
    """Make every download in this process stop at its next write (Ctrl-C in the main thread), or re-arm."""
    if on:
        _cancel.set()
    else:
        _cancel.clear()


def _unlink(p: Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


# A hook so tests can inject a full disk (ENOSPC) without a tiny filesystem (which needs root to mount).
_pwrite: Callable[[int, bytes | memoryview, int], int] = os.pwrite


# ------------------------------------------------------------------------------------------- partials


@dataclass
class Part:
    """One byte range of a download: [start, end) with ``done`` the absolute offset reached so far.
    ``end`` is None when the total size is unknown (a single open-ended part)."""

    index: int
    start: int
    end: Optional[int]
    done: int

    @property
    def remaining(self) -> Optional[int]:
        return None if self.end is None else self.end - self.done

    @property
    def complete(self) -> bool:
        return self.end is not None and self.done >= self.end


class PartialFile:
    """A download in progress: the sink every source writes into (thread-safe ``write``).

    ``plan(size, validator, parts)`` either resumes what an earlier process left (same size, and for
    downloads not keyed by sha256 the same validator) or starts fresh. ``frontier`` is the contiguous
    prefix written so far; :class:`Hasher` hashes in byte order while writers continue.
    """

    def __init__(self, directory: Path, key: str, *, keyed_by_hash: bool = False) -> None:
        self.directory = directory
        self.key = key
        self.keyed_by_hash = keyed_by_hash
        self.path = directory / f"{key}.part"
        self.meta_path = directory / f"{key}.json"
        self.prog_path = directory / f"{key}.prog"
        self.size: Optional[int] = None
        self.validator: Optional[str] = None
        self.parts: list[Part] = []
        self.generation = 0  # bumped by reset(): the hasher starts over
        self.resumed_bytes = 0
        self.cond = threading.Condition()
        self._fd: Optional[int] = None
        self._prog_fd: Optional[int] = None
        self._last_saved: dict[int, int] = {}
        self.finished = False
        self.hasher: Optional["Hasher"] = None

    # ---- lifecycle
    def plan(self, size: Optional[int], validator: Optional[str], nparts: int = 1) -> list[Part]:
        """Resume a matching earlier partial or start fresh; returns the parts still to fetch (with their
        progress). A partial keyed by the blob's sha256 resumes whenever the size matches (the final hash
        check catches anything stale); one keyed by URL also needs the same validator (ETag)."""
        make_dirs(self.directory)
        with self.cond:
            old = self._load()
            if old is not None and old[0] == size and size is not None and (
                self.keyed_by_hash or (validator is not None and old[1] == validator)
            ):
                self.size, self.validator, self.parts = old
                self.validator = validator or self.validator
                self._open()
                self.resumed_bytes = sum(p.done - p.start for p in self.parts)
                return [p for p in self.parts if not p.complete]
            self._fresh(size, validator, nparts)
            return list(self.parts)

    def _fresh(self, size: Optional[int], validator: Optional[str], nparts: int) -> None:
        self.close()
        for p in (self.prog_path, self.meta_path):
            _unlink(p)
        self.size, self.validator = size, validator
        if size is None or size == 0 or nparts <= 1:
            self.parts = [Part(0, 0, size, 0)]
        else:
            step = -(-size // nparts)
            self.parts = [Part(i, s, min(size, s + step), s) for i, s in enumerate(range(0, size, step))]
        self.generation += 1
        self.resumed_bytes = 0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.close(fd)
        atomic_write_text(
            self.meta_path,
            json.dumps({"v": 1, "size": size, "validator": validator, "parts": [[p.start, p.end] for p in self.parts]}),
            mode=0o600,  # a store internal: private whatever the umask
        )
        self._open()
        self._last_saved = {}
        for p in self.parts:
            self._save(p, force=True)
        self.cond.notify_all()

    def _load(self) -> Optional[tuple[Optional[int], Optional[str], list[Part]]]:
        try:
            meta = json.loads(self.meta_path.read_text())
            prog = self.prog_path.read_bytes()
            if not self.path.exists() or meta.get("v") != 1:
                return None
            parts = []
            for i, (s, e) in enumerate(meta["parts"]):
                done = struct.unpack_from("<q", prog, 8 * i)[0] if len(prog) >= 8 * (i + 1) else s
                done = max(s, min(done, e if e is not None else done))
                parts.append(Part(i, int(s), None if e is None else int(e), int(done)))
            # bytes beyond the file's length were never written (a crash before the data hit the page cache)
            length = self.path.stat().st_size
            for p in parts:
                if p.done > length:
                    p.done = max(p.start, min(p.done, length))
            return (meta.get("size"), meta.get("validator"), parts)
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            return None

    def _open(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if self._prog_fd is None:
            self._prog_fd = os.open(self.prog_path, os.O_RDWR | os.O_CREAT, 0o644)

    def _save(self, part: Part, *, force: bool = False) -> None:
        """Persist a part's progress: 8 bytes pwrite'd after its data (a killed process loses nothing
        already written; a power cut may, and the final hash check catches that)."""
        if force or self._last_saved.get(part.index) != part.done:
            assert self._prog_fd is not None
            os.pwrite(self._prog_fd, struct.pack("<q", part.done), 8 * part.index)
            self._last_saved[part.index] = part.done

    def reset(self) -> None:
        """Throw away everything written (the server's content changed, or a resumed file hashed wrong)."""
        with self.cond:
            nparts = len(self.parts) or 1
            self._fresh(self.size, self.validator, nparts)

    def restart_single(self, part: Optional[Part] = None) -> Part:
        """Start over as one part from byte 0 (the server ignored Range): returns that part. When ``part``
        is already the only part it is reset in place, so its caller can keep streaming into it."""
        with self.cond:
            if part is not None and len(self.parts) == 1 and self.parts[0] is part:
                assert self._fd is not None
                os.ftruncate(self._fd, 0)
                part.done = part.start = 0
                self._save(part, force=True)
                self.generation += 1
                self.resumed_bytes = 0
                self.cond.notify_all()
                return part
            self._fresh(self.size, self.validator, 1)
            return self.parts[0]

    # ---- writing
    def write(self, part: Part, data: bytes | memoryview) -> None:
        """Write ``data`` at ``part.done`` and advance it (its progress persisted right after)."""
        assert self._fd is not None
        n = len(data)
        if part.end is not None and part.done + n > part.end:
            raise SourceError(f"server sent more bytes than the {part.end - part.start}-byte range asked for")
        if _cancel.is_set():
            raise Cancelled()
        off = 0
        mv = memoryview(data)
        start = part.done
        while off < n:
            off += _pwrite(self._fd, mv[off:], start + off)
        with self.cond:
            part.done += n
            self._save(part)
            gen = self.generation
        hasher = self.hasher
        if hasher is not None and not hasher.offer(start, mv, gen):
            # not hashed here: wake the hasher thread, but only once a batch is waiting (fewer wake-ups)
            if self.frontier() - hasher.pos >= HASH_BATCH or (part.end is not None and part.done >= part.end):
                with self.cond:
                    self.cond.notify_all()

    def frontier(self) -> int:
        """Length of the contiguous prefix written so far (parts are contiguous and in order)."""
        pos = 0
        for p in self.parts:
            if p.start > pos:
                return pos
            pos = p.done
            if p.end is None or p.done < p.end:
                return pos
        return pos

    def total_done(self) -> int:
        return sum(p.done - p.start for p in self.parts)

    def finish_writing(self) -> None:
        with self.cond:
            for p in self.parts:
                self._save(p, force=True)
            self.finished = True
            self.cond.notify_all()

    def fsync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        for name in ("_fd", "_prog_fd"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)

    def discard(self) -> None:
        """Remove the partial and its sidecars."""
        self.close()
        for p in (self.path, self.meta_path, self.prog_path):
            _unlink(p)

    def drop_sidecars(self) -> None:
        for p in (self.meta_path, self.prog_path):
            _unlink(p)


class Hasher(threading.Thread):
    """sha256 of a PartialFile in byte order, in the same pass as the download.

    This thread hashes the file (from the page cache) as its contiguous written prefix grows, so hashing
    runs on another core while the receiving thread only receives and writes (the default: measured
    fastest on 2 cores, see bench/results/install.md). With ``HUBCTL_HASH_INLINE=1`` (for one-core
    machines) a writer whose bytes land exactly at the hashed position hashes them from its own buffer
    (``offer``), saving the re-read; bytes written ahead of it (other parallel parts, or what an earlier
    process left) are always hashed here. A reset of the partial file (generation bump) starts over."""

    def __init__(self, pf: PartialFile) -> None:
        super().__init__(daemon=True, name=f"hash-{pf.key[:8]}")
        self.pf = pf
        self.h = hashlib.sha256()
        self.pos = 0
        self.gen = pf.generation
        self.lock = threading.Lock()
        self.stop_flag = False
        self.error: Optional[BaseException] = None
        self.inline = os.environ.get("HUBCTL_HASH_INLINE", "0") == "1"

    def _sync_gen(self, gen: int) -> None:
        if gen != self.gen:
            self.gen, self.h, self.pos = gen, hashlib.sha256(), 0

    def offer(self, offset: int, data: memoryview, gen: int) -> bool:
        """Hash ``data`` now if it starts exactly at the hashed position; False if it must wait."""
        if not self.inline or (offset != self.pos and not (gen != self.gen and offset == 0)):
            return False
        with self.lock:
            self._sync_gen(self.pf.generation)
            if gen != self.gen or offset != self.pos:
                return False
            self.h.update(data)
            self.pos += len(data)
            return True

    def run(self) -> None:
        pf = self.pf
        buf = bytearray(CHUNK)
        mv = memoryview(buf)
        fd = -1
        opened_gen = -1
        try:
            while True:
                with pf.cond:
                    while True:
                        if self.stop_flag:
                            return
                        front = pf.frontier()
                        if pf.generation != self.gen or front - self.pos >= HASH_BATCH or (pf.finished and front > self.pos):
                            break
                        if pf.finished:
                            return
                        pf.cond.wait(0.5)
                with self.lock:
                    self._sync_gen(pf.generation)
                    front = pf.frontier()
                    if front > self.pos:
                        if fd < 0 or opened_gen != pf.generation:  # opened lazily; reopened if recreated
                            if fd >= 0:
                                os.close(fd)
                            fd = os.open(pf.path, os.O_RDONLY)
                            opened_gen = pf.generation
                        k = os.preadv(fd, [mv[: min(CHUNK, front - self.pos)]], self.pos)
                        if k and pf.generation == self.gen:
                            self.h.update(mv[:k])
                            self.pos += k
        except BaseException as e:  # noqa: BLE001 - reported to the fetching thread
            self.error = e
        finally:
            if fd >= 0:
                os.close(fd)

    def finish(self) -> tuple[str, int]:
        self.pf.finish_writing()
        self.join()
        if self.error is not None:
            raise self.error
        with self.lock:
            return self.h.hexdigest(), self.pos

    def stop(self) -> None:
        with self.pf.cond:
            self.stop_flag = True
            self.pf.cond.notify_all()
        self.join(timeout=5)
        self.pf.hasher = None


def local_validator(st: os.stat_result) -> str:
    """The validator a copy of a local file is planned with (``plan(size, validator)``): a half-done copy is
    resumed only while size, mtime, ctime and inode are unchanged. An edit in place that puts the mtime back
    (``cp -p``, ``rsync -t``, ``os.utime``) still moves the ctime, which userland cannot set."""
    return f"{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}-{st.st_ino}"


def copy_into(src: Path, pf: PartialFile, parts: list[Part], progress: Callable[[int], None] | None = None) -> None:
    """Copy a local file into a PartialFile (resuming where its parts left off)."""
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    fd = os.open(src, os.O_RDONLY)
    try:
        for part in parts:
            while part.end is None or part.done < part.end:
                want = CHUNK if part.end is None else min(CHUNK, part.end - part.done)
                k = os.preadv(fd, [mv[:want]], part.done)
                if not k:
                    if part.end is not None:
                        raise SourceError(f"{src}: file shrank while it was being read")
                    break
                pf.write(part, mv[:k])
                if progress is not None:
                    progress(k)
    finally:
        os.close(fd)
