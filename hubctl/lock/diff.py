"""Comparing two locks (or a lock and a fresh resolution): which artefacts differ, by package, with old
and new version and family, in words a user reads ("demo-sd: 1.4 (demo-sd1) in s.py.lock, 2.0 (demo-sd2)
for s.py"). Pure values; never reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from hubctl.lock.lockfile import LockedPackage

__all__ = ["Change", "diff_packages", "format_change"]


@dataclass(frozen=True)
class Change:
    """One artefact that differs between two locks (or a lock and a fresh resolution)."""

    name: str
    old: LockedPackage | None
    new: LockedPackage | None

    @property
    def what(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        if self.old.version != self.new.version:
            return "version"
        if self.old.variant != self.new.variant:
            return "variant"
        return "files"

    def to_json(self) -> dict[str, Any]:
        def side(p: LockedPackage | None) -> dict[str, Any] | None:
            return None if p is None else {"version": p.version, "family": p.family, "variant": p.variant}

        return {"package": self.name, "change": self.what, "old": side(self.old), "new": side(self.new)}


def _fileset(p: LockedPackage) -> set[tuple[str, str, int, str]]:
    return {(f.path, f.url, f.size, f.sha256) for f in p.files}


def diff_packages(old: Iterable[LockedPackage], new: Iterable[LockedPackage]) -> list[Change]:
    """Every package whose version, variant or files differ, sorted by name."""
    a = {p.name: p for p in old}
    b = {p.name: p for p in new}
    out = []
    for name in sorted(set(a) | set(b)):
        pa, pb = a.get(name), b.get(name)
        if pa is None or pb is None or (pa.version, pa.variant, pa.family) != (pb.version, pb.variant, pb.family) or _fileset(pa) != _fileset(pb):
            out.append(Change(name, pa, pb))
    return out


def format_change(c: Change, old_label: str = "in the lock", new_label: str = "now") -> str:
    """``demo-sd: 1.4 (demo-sd1) in the lock, 2.0 (demo-sd2) now``."""
    def side(p: LockedPackage | None) -> str:
        if p is None:
            return "absent"
        return f"{p.version} ({p.family}{', ' + p.variant if c.what == 'variant' else ''})"

    extra = " (same version, different files)" if c.what == "files" else ""
    return f"{c.name}: {side(c.old)} {old_label}, {side(c.new)} {new_label}{extra}"


