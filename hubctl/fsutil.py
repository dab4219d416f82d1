"""Small filesystem primitives: atomic file replacement and fsync'd renames for every writer (a crash at
any point leaves either the old file or the new one, never a half-written file), and the one reader of
user-given text files (missing, unreadable or not UTF-8 -> one BadInput line naming the file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hubctl.errors import BadInput

__all__ = ["atomic_write_bytes", "atomic_write_text", "fsync_dir", "read_text_input"]


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def read_text_input(path: Path, *, missing: str = "no such file", cannot: str = "cannot read") -> str:
    """The text of a file the user named (UTF-8, universal newlines), or BadInput naming the file:
    ``missing`` when it does not exist, "is not UTF-8 text", or ``cannot`` with the OS reason."""
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise BadInput(missing, context=str(path)) from None
    except UnicodeDecodeError:
        raise BadInput("is not UTF-8 text", context=str(path)) from None
    except OSError as e:
        raise BadInput(f"{cannot} ({e.strerror or e})", context=str(path)) from None
