"""Pinning: turn a resolution into locked packages, every file with an exact source, size and sha256.

Files a previous lock already pins at the same version and variant keep their pins while the registry
states the same sha256, size and source for them (:func:`repin_reason`, also how a stale lock names what a
relock changes); files the manifest fully pins are taken as they are (no network); the rest go through a
``pin_file`` callable (by default ``hubctl.sources.fetch.pin_file``, which asks the source). This module decides which file needs asking and
builds the :class:`hubctl.lock.lockfile.LockedPackage` values; it never fetches by itself, never writes a lock file
(that is :mod:`hubctl.lock.lockfile`) and never touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from hubctl.lock.lockfile import Lock, LockedFile, LockedPackage

if TYPE_CHECKING:
    from hubctl.registry.manifest import FileRef
    from hubctl.resolve import Pick, Resolution

__all__ = ["pin", "pin_file_offline", "locked_url", "Repin", "repin_reason", "repins"]


def locked_url(ref: "FileRef") -> str:
    """The url a lock writes for a manifest file's source: local files as an absolute ``file://`` URL with
    links resolved (as :func:`hubctl.sources.fetch.pin_file` writes them); anything else as the manifest
    says (an hf:// source is pinned to its commit by whoever pins it)."""
    src = ref.source_ref
    if src.scheme == "file":
        from pathlib import Path

        return Path(src.path or "").expanduser().resolve().as_uri()
    return ref.source


def pin_file_offline(ref: "FileRef") -> LockedFile | None:
    """A LockedFile without any network when the manifest already says everything (sha256, size, and a
    source that is pinned: a 40-hex hf commit, https, or file); None when it must be asked."""
    if ref.sha256 is None or ref.size is None:
        return None
    src = ref.source_ref
    if not src.pinned:
        return None
    return LockedFile(path=ref.path, url=locked_url(ref), size=ref.size, sha256=ref.sha256)


@dataclass(frozen=True)
class Repin:
    """A file a previous lock pins that a relock pins again, and why: ``what`` is ``sha256``, ``size``,
    ``source`` or ``revision``; ``registry`` and ``locked`` are the two values, as a user reads them."""

    package: str
    version: str
    path: str
    what: str
    registry: str
    locked: str


def repin_reason(ref: "FileRef", locked: LockedFile) -> tuple[str, str, str] | None:
    """Why the pin ``locked`` (same package, version, variant and path) cannot be kept for the manifest file
    ``ref`` now: ``(what, registry's value, lock's value)``, or None when the pin still stands. A pin stands
    while the registry states the same sha256 and size (or none) and the same source: the same url, or
    for an hf:// branch the same repository, file and requested branch (the lock keeps its commit until
    ``--upgrade``)."""
    from hubctl.errors import redact
    from hubctl.registry.manifest import parse_source

    if ref.sha256 is not None and ref.sha256 != locked.sha256:
        return ("sha256", ref.sha256, locked.sha256)
    if ref.size is not None and ref.size != locked.size:
        return ("size", str(ref.size), str(locked.size))
    src = ref.source_ref
    if src.scheme == "hf":
        try:
            old = parse_source(locked.url)
        except ValueError:
            return ("source", redact(ref.source), redact(locked.url))
        if old.scheme != "hf" or (old.repo_type, old.repo_id, old.path) != (src.repo_type, src.repo_id, src.path):
            return ("source", redact(ref.source), redact(locked.url))
        if src.pinned and old.revision != src.revision:
            return ("source", redact(ref.source), redact(locked.url))
        if not src.pinned and locked.requested_revision != (src.revision or "main"):
            return ("revision", src.revision or "main", locked.requested_revision or str(old.revision))
        return None
    if locked.url != locked_url(ref):
        return ("source", redact(locked_url(ref)), redact(locked.url))
    return None


def _kept_files(previous: Lock | None, p: "Pick") -> dict[str, LockedFile]:
    old = previous.get(p.name) if previous is not None else None
    return {f.path: f for f in old.files} if old and (old.version, old.variant) == (p.version, p.variant) else {}


def repins(resolution: "Resolution", previous: Lock | None) -> list[Repin]:
    """Every file ``previous`` pins at the version and variant ``resolution`` picks again, that a relock
    must pin again (:func:`repin_reason`)."""
    out = []
    for p in resolution.picks:
        kept = _kept_files(previous, p)
        for ref in p.variant_info.files:
            lf = kept.get(ref.path)
            why = repin_reason(ref, lf) if lf is not None else None
            if why is not None:
                out.append(Repin(p.name, p.version, ref.path, *why))
    return out


def pin(
    resolution: "Resolution",
    *,
    previous: Lock | None = None,
    pin_file: Callable[["FileRef"], LockedFile] | None = None,
) -> list[LockedPackage]:
    """Turn a resolution into locked packages. Files of a package that ``previous`` already locks at the
    same version and variant keep their pins while the registry agrees with them (:func:`repin_reason`; no
    network); files the manifest fully pins are taken as they are; the rest go through ``pin_file`` (default ``hubctl.sources.fetch.pin_file``: resolves hf revisions
    to 40-hex commits and fills size and sha256)."""
    out: list[LockedPackage] = []
    for p in resolution.picks:
        kept = _kept_files(previous, p)
        files = []
        for ref in p.variant_info.files:
            lf = kept.get(ref.path)
            if lf is not None and repin_reason(ref, lf) is not None:
                lf = None  # the registry now says another hash, size or source for this file: pin again
            if lf is None:
                lf = pin_file_offline(ref)
            if lf is None:
                if pin_file is None:
                    from hubctl.sources.fetch import pin_file as install_pin_file

                    pin_file = install_pin_file
                lf = pin_file(ref)
            files.append(replace(lf, path=ref.path))
        v = p.version_info
        out.append(
            LockedPackage(
                name=p.name,
                version=p.version,
                kind=p.kind,
                family=p.family,
                variant=p.variant,
                files=tuple(sorted(files, key=lambda f: f.path)),
                prediction=v.prediction,
                layout=p.variant_info.layout,
                dtype=p.variant_info.dtype,
                tokens=tuple(v.tokens),
                trigger=tuple(v.trigger),
                requires=tuple(v.requires),
            )
        )
    return out
