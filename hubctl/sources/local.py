"""``file://`` URLs and plain paths: a local file read into the store (copied while hashing).

User files are copied, never hardlinked: a store blob is read-only and shared, and a hardlink would
let an edit of the user's file change a verified blob behind the store's back. A half-done copy is resumed
only while the file's size, mtime, ctime and inode are unchanged (:func:`hubctl.store.partial.local_validator`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, Optional

from hubctl.errors import BadInput, SourceError
from hubctl.sources.base import Progress, RemoteStat, Sink

__all__ = ["LocalSource"]


class _RangeReader(io.RawIOBase):
    """A read-only window [start, end) of a local file."""

    def __init__(self, path: Path, start: int, end: Optional[int]) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(start)
        self._left = None if end is None else max(0, end - start)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        mv = memoryview(b)
        if self._left is not None:
            mv = mv[: self._left]
        n = self._f.readinto(mv)
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


class LocalSource:
    """A file on this machine, named by ``file://`` URL or plain path."""

    def __init__(self, url: str, path: str | os.PathLike[str]) -> None:
        self.url = url
        self.path = Path(path).expanduser()

    def _stat(self) -> os.stat_result:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise SourceError(f"{self.path}: no such file") from None
        except OSError as e:
            raise SourceError(f"{self.path}: cannot read ({e.strerror})") from None
        if not self.path.is_file():
            raise BadInput(f"{self.path}: is not a regular file")
        return st

    def stat(self) -> RemoteStat:
        from hubctl.store.partial import local_validator

        st = self._stat()
        return RemoteStat(str(self.path), st.st_size, etag=local_validator(st), accept_ranges=True)

    def open_range(self, start: int = 0, end: Optional[int] = None) -> BinaryIO:
        self._stat()
        return io.BufferedReader(_RangeReader(self.path, start, end))  # type: ignore[return-value]

    def download(self, sink: Sink, *, expected_size: Optional[int] = None, progress: Optional[Progress] = None) -> None:
        from hubctl.store.partial import copy_into, local_validator

        st = self._stat()
        if expected_size is not None and st.st_size != expected_size:
            raise SourceError(f"{self.path}: is {st.st_size} bytes, expected {expected_size}")
        parts = sink.plan(st.st_size, local_validator(st), 1)
        try:
            copy_into(self.path, sink, parts, progress)  # type: ignore[arg-type]
        except OSError as e:
            if e.filename is None or Path(e.filename) != self.path:
                raise
            raise SourceError(f"{self.path}: cannot read ({e.strerror})") from None

    def cached_blob(self, sha256: Optional[str], etag: Optional[str] = None) -> Optional[Path]:
        return None
