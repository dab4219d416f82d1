"""Keeping the index in step with the configured registries: :func:`open_index` (compile first when a
registry changed since the last compile), and the changes to the registry list (:func:`add_registry`,
:func:`remove_registry`, :func:`update_registries`), each compiled before anything is written, so a bad
registry changes nothing.

The freshness rule: a cheap fingerprint (the registry list plus the content of every small registry file
and the size, mtime and ctime of larger ones, :func:`hubctl.registry.compile.registry_fingerprint`) is
stored in the index and compared on open. A
registry that fails to validate leaves the previous index answering, with a warning (the failure is
remembered beside the index, so it is not re-parsed on every call until the registry changes again).

Orchestration only: the configuration file is :mod:`hubctl.registry.configured`, compiling is
:mod:`hubctl.registry.compile`, reading is :class:`hubctl.registry.index.Index`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from hubctl.errors import BadInput, redact
from hubctl.fsutil import atomic_write_text
from hubctl.registry.compile import failed_marker, rebuild_index, registry_fingerprint
from hubctl.registry.configured import (
    DEFAULT_NAME,
    NAME_RE,
    RegistryEntry,
    bundled_entry,
    cache_path,
    classify_location,
    default_name,
    fetch_url_index,
    get_registry,
    list_registries,
    read_configured,
    write_configured,
)
from hubctl.registry.index import INDEX_FORMAT, Index

__all__ = ["open_index", "add_registry", "remove_registry", "update_registries"]


def _stored_fingerprint(db: Path) -> str | None:
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT value FROM index_meta WHERE key = 'fingerprint'").fetchone()
        fmt = con.execute("SELECT value FROM index_meta WHERE key = 'format'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    if not row or not fmt or fmt[0] != str(INDEX_FORMAT):
        return None
    return row[0]


def open_index(*, refresh: bool = True, strict: bool = False, db_path: Path | None = None) -> Index:
    """The index, compiled first when a registry changed since the last compile.

    When a changed registry fails to validate: with ``strict`` raise BadInput; otherwise, if a previous
    index exists, keep answering from it and put the one-line reason in ``Index.warnings`` (the failure
    is remembered, so it is not re-parsed on every call until the registry changes again)."""
    from hubctl.config import index_db_path

    db = Path(db_path) if db_path is not None else index_db_path()
    if not refresh and db.exists():
        return Index(db)
    entries = list_registries()
    fp = registry_fingerprint(entries)
    if db.exists() and _stored_fingerprint(db) == fp:
        return Index(db)
    marker = failed_marker(db)
    if not strict and db.exists():
        try:
            failed = json.loads(marker.read_text("utf-8"))
        except (OSError, ValueError):
            failed = None
        if isinstance(failed, dict) and failed.get("fingerprint") == fp:
            idx = Index(db)
            idx.warnings.append(f"{failed.get('message')} (using the previous index; fix the registry or remove it)")
            return idx
    from hubctl.db import read_only_folder

    if read_only_folder(db):  # a read-only HUBCTL_HOME: compile for this process only, into a temporary file
        db = _scratch_index()
    try:
        return rebuild_index(entries, db_path=db)
    except BadInput as e:
        if strict or not db.exists():
            raise
        atomic_write_text(marker, json.dumps({"fingerprint": fp, "message": str(e)}))
        idx = Index(db)
        idx.warnings.append(f"{e} (using the previous index; fix the registry or remove it)")
        return idx


def _scratch_index() -> Path:
    """A private index file removed when the process ends (for a HUBCTL_HOME that cannot be written)."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="hubctl-index-")
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder) / "index.db"


# --------------------------------------------------------------------------------------------- changing the list


def add_registry(location: str, name: str | None = None, *, override_families: bool = False) -> RegistryEntry:
    """Add a registry (folder, index file or URL) after checking that it compiles into the index.

    Adding the same location under the same name again is a no-op; the same name with a new location
    points the name at the new location. Raises BadInput (exit 2) when the registry does not validate
    (including a family it redefines without ``override_families``, see :mod:`hubctl.registry.trust`),
    SourceError (exit 3) when a URL cannot be fetched; in both cases nothing is changed.
    """
    location, kind = classify_location(location.strip())
    if name is None:
        name = default_name(location)
    name = name.strip().lower()
    if not NAME_RE.match(name):
        raise BadInput(f"'{name}' is not a valid registry name (lower-case letters, digits, '.', '_', '-')")
    if name == DEFAULT_NAME:
        raise BadInput(f"'{DEFAULT_NAME}' is the bundled registry's name; choose another with --name")
    configured = read_configured()
    for e in configured:
        if e.location == location and e.name != name:
            raise BadInput(f"'{redact(location)}' is already registered as '{e.name}'")
    entry = RegistryEntry(name, location, kind, override_families)
    if any(e.name == name for e in configured):
        new_list = [bundled_entry(), *[entry if e.name == name else e for e in configured]]
    else:
        new_list = [bundled_entry(), *configured, entry]
    staged: dict[str, Path] = {}
    if kind == "url":
        cache = cache_path(name)
        staged[name] = cache.with_name(f".{cache.name}.new")
        fetch_url_index(location, staged[name])
    try:
        rebuild_index(new_list, overrides=staged)
        for n, tmp in staged.items():
            os.replace(tmp, cache_path(n))  # same content (and inode): the fingerprint still holds for small files
        write_configured(new_list)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    return entry


def remove_registry(name: str) -> RegistryEntry:
    """Remove an added registry (the bundled default cannot be removed); the index drops it on next open."""
    if name == DEFAULT_NAME:
        raise BadInput("the bundled 'default' registry cannot be removed")
    configured = read_configured()
    found = next((e for e in configured if e.name == name), None)
    if found is None:
        known = ", ".join(e.name for e in configured) or "none added"
        raise BadInput(f"no registry named '{name}' (added registries: {known})")
    write_configured([e for e in configured if e.name != name])
    if found.kind == "url":
        cache_path(name).unlink(missing_ok=True)
    return found


def update_registries(name: str | None = None) -> list[RegistryEntry]:
    """Re-fetch URL registries (all, or the one named) and recompile the index strictly.

    A registry that no longer validates raises BadInput and leaves the previous index (and the previous
    cached copy of a URL index) in place."""
    entries = list_registries()
    targets = entries if name is None else [get_registry(name)]
    staged: dict[str, Path] = {}
    try:
        for e in targets:
            if e.kind == "url":
                cache = cache_path(e.name)
                staged[e.name] = cache.with_name(f".{cache.name}.new")
                fetch_url_index(e.location, staged[e.name])
        rebuild_index(entries, overrides=staged)
        for n, tmp in staged.items():
            os.replace(tmp, cache_path(n))
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    return targets
