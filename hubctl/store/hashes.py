"""File hashes: the one whole-file sha256 (:func:`sha256_file`, streamed in 8 MiB reads into one reused buffer:
what the store checks every blob with), and the hashes users see: AutoV2 (first 10 hex of the sha256), the
data-only hash (sha256 of the bytes after the safetensors header: survives metadata edits, what kohya's
``sshs_model_hash`` and A1111's LoRA shorthash use) and AutoV1 (sha256 of 0x10000 bytes at 0x100000,
first 8 hex). Reads files; knows nothing else."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

__all__ = ["sha256_file", "autov2", "autov1_file", "file_hashes", "CHUNK"]

CHUNK = 8 << 20  # 1-8 MiB reads are fastest (bench/bench_verify.py)


def _stream(file: str | os.PathLike[str] | int, feed: Callable[[memoryview, int], None], chunk: int = CHUNK) -> int:
    """Read a whole file (a path, or an open descriptor read from its current offset) through ``feed(bytes,
    offset)``; returns the number of bytes read."""
    buf = bytearray(chunk)
    view = memoryview(buf)
    pos = 0
    fd = file if isinstance(file, int) else os.open(file, os.O_RDONLY)
    try:
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        while True:
            n = os.readv(fd, [view])
            if not n:
                break
            feed(view[:n], pos)
            pos += n
    finally:
        if not isinstance(file, int):
            os.close(fd)
    return pos


def sha256_file(file: str | os.PathLike[str] | int, *, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """(lower-case hex sha256, bytes read) of a whole file: a path, or an open descriptor (which stays open; the
    store hashes through one opened without following symlinks). ``progress(n)`` after each read."""
    h = hashlib.sha256()

    def feed(v: memoryview, _pos: int) -> None:
        h.update(v)
        if progress is not None:
            progress(len(v))

    n = _stream(file, feed)
    return h.hexdigest(), n


def autov2(sha256_hex: str) -> str:
    """Civitai/A1111 AutoV2: the first 10 hex digits of the whole-file sha256."""
    return sha256_hex[:10]


def autov1_file(path: str | os.PathLike[str]) -> str:
    """A1111's legacy AutoV1: sha256 of 0x10000 bytes at offset 0x100000, first 8 hex digits."""
    with open(path, "rb") as f:
        f.seek(0x100000)
        return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]


def file_hashes(path: str | os.PathLike[str], data_start: int | None = None) -> dict[str, str]:
    """sha256, AutoV2, AutoV1 and (when ``data_start`` is given: 8 + header length) the data-only sha256,
    in one pass over the file."""
    whole = hashlib.sha256()
    data = hashlib.sha256() if data_start is not None else None

    def feed(v: memoryview, pos: int) -> None:
        whole.update(v)
        if data is not None:
            end = pos + len(v)
            if end > data_start:  # type: ignore[operator]
                data.update(v[max(0, data_start - pos):])  # type: ignore[operator]

    _stream(Path(path), feed)
    sha = whole.hexdigest()
    out = {"sha256": sha, "autov2": autov2(sha), "autov1": autov1_file(path)}
    if data is not None:
        d = data.hexdigest()
        out["data_sha256"] = d
        out["data_short"] = d[:12]
    return out
