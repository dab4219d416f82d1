"""Small filesystem primitives: atomic file replacement and fsync'd renames for every writer (a crash at
any point leaves either the old file or the new one, never a half-written file), and the one reader of
user-given text files (missing, unreadable or not UTF-8 -> one BadInput line naming the file); folders for
hubctl's own state that are never group- or world-writable (:func:`make_dirs`).

An atomically written file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask:
``hubctl.toml``, locks, PNGs and exports belong to the user), unless the caller passes ``mode`` (0600 for
private internals). A write that fails for a reason of the machine (disk full, file-size limit, read-only
folder) raises the one-line error of :func:`hubctl.errors.from_exception` naming the file, and leaves no
temporary file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hubctl.errors import BadInput

__all__ = ["atomic_write_bytes", "atomic_write_text", "fsync_dir", "read_text_input", "make_dirs", "umask"]


def umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux /proc), else by setting
    and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename. The file
    gets ``mode``, or 0666 less the umask (mkstemp alone would leave it 0600)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_failure(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _write_failure(path, e) from None
        raise
    fsync_dir(path.parent)


def _write_failure(path: Path, e: OSError) -> BaseException:
    """The one-line error for a failed write of ``path`` (naming it), or ``e`` itself when it is not one the
    CLI maps (a bug keeps its traceback)."""
    from hubctl.errors import from_exception

    mapped = from_exception(OSError(e.errno, e.strerror, str(path)) if e.errno is not None else e)
    return mapped if mapped is not None else e


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


def make_dirs(path: Path, mode: int = 0o755) -> Path:
    """``mkdir -p`` for hubctl's own folders (store, state, views): every folder it makes gets ``mode`` less the
    umask, so never group- or world-writable even under umask 000 (``Path.mkdir(parents=True)`` makes the
    parents 0777 less the umask). Folders that exist are left as they are."""
    path = Path(path)
    missing = []
    p = path
    while not os.path.isdir(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
    return path
