"""The project file, inline script metadata, and the lockfile: read, write, check.

This module owns the lock's value types (below); the resolver produces them, install/sync consume them.
(Fleshed out by the lockfile work: project file, ``# /// hubctl`` blocks, TOML read/write, digests.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LockedFile", "LockedPackage", "Lock"]


@dataclass(frozen=True)
class LockedFile:
    """One pinned file: where it sits in the package, where it comes from (hf:// pinned to a 40-hex
    commit), its size and sha256. ``requested_revision`` is the branch/tag the manifest asked for."""

    path: str
    url: str
    size: int
    sha256: str
    requested_revision: str | None = None


@dataclass(frozen=True)
class LockedPackage:
    """One resolved package: exact version and variant, with everything needed to fetch and check it."""

    name: str
    version: str
    kind: str
    family: str
    variant: str
    files: tuple[LockedFile, ...]
    prediction: str | None = None
    layout: str | None = None
    dtype: str | None = None
    tokens: tuple[str, ...] = ()
    trigger: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


@dataclass
class Lock:
    """The resolved, exact set. ``inputs_digest`` is the sha256 of the normalised requirements and
    settings it was made from (so ``lock --check`` can tell when it is stale)."""

    packages: list[LockedPackage] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    inputs_digest: str = ""
    lock_version: str = "1.0"
    created_by: str = "hubctl"
