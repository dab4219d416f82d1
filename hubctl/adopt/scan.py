"""Walking model folders for adopt: every weight file (``.safetensors``, ``.sft`` and the pickled formats) under
the layout's folders, each once (by path; a file reached twice through linked folders is listed once), with the
kind its folder hints at. Folder links are followed, but never round a loop: a folder met again (same device
and inode) or a link that points at itself is one problem line, and the walk goes on. An unreadable folder or
file is one line too. Files inside hubctl's store (a user's link already pointing there) are listed with the
blob they are. Reads listings and stats only; never opens a file's bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from hubctl.adopt.layouts import ModelFolder

__all__ = ["Found", "Problem", "scan", "WEIGHT_SUFFIXES", "TMP_SUFFIX", "diffusers_root"]

WEIGHT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")
TMP_SUFFIX = ".hubctl-adopt"  # adopt's own temporary links beside a file it replaces
_MAX_DEPTH = 32
_MAX_FILES = 1_000_000


@dataclass(frozen=True)
class Found:
    """A weight file: its absolute path as found (links not resolved), the kind its folder hints at, whether the
    path is a symlink, and the folder that led here."""

    path: Path
    hint: str
    symlink: bool
    folder: str


@dataclass(frozen=True)
class Problem:
    """Something the walk could not read, in one line."""

    path: str
    what: str

    def line(self) -> str:
        return f"{self.path}: {self.what}"


def diffusers_root(path: Path, stop: Path) -> Optional[Path]:
    """The diffusers folder (holding ``model_index.json``) ``path`` lies in, below ``stop``; None when none."""
    p = path.parent
    for _ in range(4):
        if (p / "model_index.json").is_file():
            return p
        if p == stop or p.parent == p:
            break
        p = p.parent
    return None


def scan(folders: Iterable[ModelFolder]) -> tuple[list[Found], list[Problem]]:
    """Every weight file under ``folders`` and the problems met on the way (one each)."""
    found: dict[str, Found] = {}
    problems: list[Problem] = []
    seen_dirs: set[tuple[int, int]] = set()

    def note(path: str, what: str) -> None:
        if not any(p.path == path for p in problems[-8:]):
            problems.append(Problem(path, what))

    def walk(d: Path, hint: str, why: str, depth: int) -> None:
        try:
            st = os.stat(d)
        except OSError as e:
            note(str(d), "symlink loop" if e.errno == errno.ELOOP else f"cannot be read ({e.strerror})")
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            if os.path.islink(d):
                note(str(d), "symlink loop (a folder link leads back to a folder already walked); skipped")
            return
        seen_dirs.add(key)
        if depth > _MAX_DEPTH:
            note(str(d), f"nested deeper than {_MAX_DEPTH} folders; not walked")
            return
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            note(str(d), f"cannot be read ({e.strerror})")
            return
        for e in entries:
            if len(found) >= _MAX_FILES:
                note(str(d), f"more than {_MAX_FILES} files; the rest not walked")
                return
            p = Path(d) / e.name
            if e.name.endswith(TMP_SUFFIX):
                continue
            try:
                is_link = e.is_symlink()
                est = os.stat(p)  # follows links
            except OSError as err:
                if err.errno == errno.ELOOP:
                    note(str(p), "symlink loop")
                elif err.errno == errno.ENOENT and os.path.islink(p):
                    if e.name.lower().endswith(WEIGHT_SUFFIXES):
                        note(str(p), "a broken symlink")
                else:
                    note(str(p), f"cannot be read ({err.strerror})")
                continue
            if stat.S_ISDIR(est.st_mode):
                if is_link:
                    target, here = os.path.realpath(p), os.path.realpath(d)
                    if here == target or here.startswith(target.rstrip("/") + "/"):
                        note(str(p), "symlink loop (a folder link to a folder above it); skipped")
                        continue
                if not e.name.startswith("."):
                    walk(p, hint, why, depth + 1)
                continue
            if not stat.S_ISREG(est.st_mode) or not e.name.lower().endswith(WEIGHT_SUFFIXES):
                continue
            if not os.access(p, os.R_OK):
                note(str(p), "cannot be read (permission denied)")
                continue
            found.setdefault(str(p), Found(p, hint, is_link, why))

    for f in folders:
        walk(Path(os.path.abspath(f.path)), f.hint, f.why, 0)
    return list(found.values()), problems
