"""The registries hubctl writes itself, in ``$HUBCTL_HOME/local-registries/<name>/`` (a folder registry like any
other: ``manifests/<kind>/<name>.toml``), registered under that name the first time a manifest is written, so
their packages can be searched, required, locked, synced and exported like any other:

- ``adopted``: a package for each file ``hubctl adopt`` found that no registry knows (name from the file, kind and
  family from its header, its sha256 and size, the file itself as the source);
- ``civitai``: a package for each Civitai model, a version for each model version ``hubctl import`` resolved
  (``civitai:VERSION/FILE`` sources, sha256 from the API).

Every manifest is validated (:func:`hubctl.registry.manifest.parse_manifest`) before it is written atomically; a
name is never taken from another package: a name the index already has for another file gets the file's short
hash appended. Owns these folders and nothing else; registering goes through :mod:`hubctl.registry.manage`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from hubctl.errors import BadInput

__all__ = ["ADOPTED", "CIVITAI", "registry_dir", "manifest_path", "read_manifest", "write_manifest",
           "ensure_registered", "package_name"]

ADOPTED = "adopted"
CIVITAI = "civitai"


def registry_dir(name: str) -> Path:
    from hubctl.config import hubctl_home

    return hubctl_home() / "local-registries" / name


def manifest_path(registry: str, kind: str, name: str) -> Path:
    return registry_dir(registry) / "manifests" / kind / f"{name}.toml"


def read_manifest(registry: str, kind: str, name: str) -> Optional[dict[str, Any]]:
    """The manifest (as a TOML mapping) hubctl wrote for ``name``, or None."""
    from hubctl.tomlcompat import tomllib

    p = manifest_path(registry, kind, name)
    try:
        return tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # damaged: it is written afresh


def write_manifest(registry: str, data: dict[str, Any], known_families: Optional[list[str]] = None) -> Path:
    """Validate and write one manifest (atomically); returns its path."""
    import tomli_w

    from hubctl.fsutil import atomic_write_text
    from hubctl.registry.manifest import parse_manifest

    m = parse_manifest(data, origin=f"{registry} registry: {data.get('name')}", known_families=known_families)
    path = manifest_path(registry, m.kind, m.name)
    atomic_write_text(path, f"# Written by hubctl ({registry}); hubctl rewrites it.\n" + tomli_w.dumps(data))
    return path


def ensure_registered(registry: str) -> bool:
    """Register the folder as registry ``registry`` when it holds manifests and is not registered yet (compiling
    the index); True when it is registered now. Another registry already called so is BadInput."""
    from hubctl.registry.configured import read_configured
    from hubctl.registry.manage import add_registry

    folder = registry_dir(registry)
    if not (folder / "manifests").is_dir():
        return False
    location = str(folder.resolve())
    for e in read_configured():
        if e.location == location:
            return True
        if e.name == registry:
            raise BadInput(f"a registry named '{registry}' already exists ({e.location}); remove it with "
                           f"`hubctl registry remove {registry}` so hubctl can register its own")
    add_registry(location, name=registry)
    return True


def package_name(stem: str, sha256: str, taken: Any) -> str:
    """A package name from a file's stem (lower-case; other characters as '-'); with ``-<sha256[:8]>`` when
    ``taken(name)`` says another package has it."""
    base = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:80].strip("-._") or "model"
    if not re.match(r"^[a-z0-9]", base):
        base = "m-" + base
    return f"{base}-{sha256[:8]}" if taken(base) else base
