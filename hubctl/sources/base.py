"""The one small protocol every source implements, and the values it returns.

A source is where bytes come from (``hf://``, ``https://``, ``file://``). It can ``stat`` (size, ETag,
sha256 when the source knows it, the resolved commit for the Hub), ``open_range`` (a stream of bytes
[start, end), for header reads), ``download`` into a sink (the store's partial file, resuming what is
already there), and point to a local file that already holds the bytes (``cached_blob``: the HF cache).
Sources never decide where bytes land or whether they are right: the store hashes and checks them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Protocol, runtime_checkable

__all__ = ["RemoteStat", "Sink", "Source", "Progress", "url_key"]

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RemoteStat:
    """What a source says about a file before its bytes travel.

    ``url`` is for display (already redacted); ``sha256`` is set when the source vouches for it (the Hub's
    LFS metadata); ``commit`` is the 40-hex commit an ``hf://`` revision resolved to."""

    url: str
    size: Optional[int]
    etag: Optional[str] = None
    sha256: Optional[str] = None
    commit: Optional[str] = None
    accept_ranges: bool = False


class Sink(Protocol):
    """Where a download writes: :class:`hubctl.store.partial.PartialFile` (thread-safe, resumable). ``plan`` returns
    the parts still to fetch (resuming what an earlier attempt left); ``write(part, data)`` appends at
    ``part.done``; ``restart_single`` starts over from byte 0 as one part (a server that ignores Range);
    ``size`` is the total the current plan expects (None: unknown)."""

    parts: list  # type: ignore[type-arg]
    size: Optional[int]

    def plan(self, size: Optional[int], validator: Optional[str], nparts: int = 1) -> list: ...

    def write(self, part, data) -> None: ...  # type: ignore[no-untyped-def]

    def restart_single(self, part=None): ...  # type: ignore[no-untyped-def]


@runtime_checkable
class Source(Protocol):
    """A place bytes come from. Implementations: HfSource, HttpSource, LocalSource."""

    url: str

    def stat(self) -> RemoteStat:
        """Size, validators and what else the source knows, without transferring the body."""
        ...

    def open_range(self, start: int = 0, end: Optional[int] = None) -> BinaryIO:
        """A readable stream of bytes [start, end) (end None: to the end of the file). Close it after use."""
        ...

    def download(self, sink: Sink, *, expected_size: Optional[int] = None, progress: Optional[Progress] = None) -> None:
        """Write the whole file into ``sink``, resuming the parts it already holds."""
        ...

    def cached_blob(self, sha256: Optional[str], etag: Optional[str] = None) -> Optional[Path]:
        """A local file that should already hold these bytes, or None. With a sha256 the caller checks the
        bytes; without one the source returns only a file it vouches for (its bytes match ``etag``, the ETag
        the source gave in ``stat``)."""
        ...


def url_key(url: str) -> str:
    """A stable name for a download whose sha256 is not known yet (partial file and lock)."""
    return "url-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:40]
