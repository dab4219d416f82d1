"""Pinning: turn a resolution into locked packages, every file with an exact source, size and sha256.

Files a previous lock already pins at the same version and variant keep their pins; files the manifest
fully pins are taken as they are (no network); the rest go through a ``pin_file`` callable (by default
``hubctl.sources.fetch.pin_file``, which asks the source). This module decides which file needs asking and
builds the :class:`hubctl.lock.lockfile.LockedPackage` values; it never fetches by itself, never writes a lock file
(that is :mod:`hubctl.lock.lockfile`) and never touches the store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from hubctl.lock.lockfile import Lock, LockedFile, LockedPackage

if TYPE_CHECKING:
    from hubctl.registry.manifest import FileRef
    from hubctl.resolve import Resolution

__all__ = ["pin", "pin_file_offline"]



def pin_file_offline(ref: "FileRef") -> LockedFile | None:
    """A LockedFile without any network when the manifest already says everything (sha256, size, and a
    source that is pinned: a 40-hex hf commit, https, or file); None when it must be asked."""
    if ref.sha256 is None or ref.size is None:
        return None
    src = ref.source_ref
    if not src.pinned:
        return None
    return LockedFile(path=ref.path, url=ref.source, size=ref.size, sha256=ref.sha256)


def pin(
    resolution: "Resolution",
    *,
    previous: Lock | None = None,
    pin_file: Callable[["FileRef"], LockedFile] | None = None,
) -> list[LockedPackage]:
    """Turn a resolution into locked packages. Files of a package that ``previous`` already locks at the
    same version and variant keep their pins (no network); files the manifest fully pins are taken as
    they are; the rest go through ``pin_file`` (default ``hubctl.sources.fetch.pin_file``: resolves hf revisions
    to 40-hex commits and fills size and sha256)."""
    out: list[LockedPackage] = []
    for p in resolution.picks:
        old = previous.get(p.name) if previous is not None else None
        kept = {f.path: f for f in old.files} if old and (old.version, old.variant) == (p.version, p.variant) else {}
        files = []
        for ref in p.variant_info.files:
            lf = kept.get(ref.path)
            if lf is not None and ref.sha256 not in (None, lf.sha256):
                lf = None  # the registry now says another hash for this file: pin again
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
