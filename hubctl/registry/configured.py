"""Configured registries: the bundled default (always first, never removable) plus the ones a user added,
kept in ``$HUBCTL_HOME/registries.toml`` (written atomically). A registry is one of:

- ``bundled``: the default registry shipped with hubctl (``registry/`` in a checkout, inside the wheel);
- ``folder``: a folder laid out like ``registry/`` (``families.toml`` optional, ``manifests/<kind>/<name>.toml``);
- ``file``: a single index file written by ``hubctl registry build`` (JSON);
- ``url``: the same index file served over HTTP(S); a copy is cached under ``$HUBCTL_HOME/registries/``
  and refreshed by ``hubctl registry update``.

This module owns the configuration file, where the cached copies of URL indexes lie, and fetching them. It
does not parse manifests and does not compile: adding, removing or updating a registry is
:mod:`hubctl.registry.manage`, which compiles first and writes the configuration only when that succeeds.

``registries.toml``::

    [[registries]]
    name = "demo"
    location = "/home/me/hubctl-demo/registry"
    kind = "folder"
    override_families = true     # optional: it may redefine families of earlier registries
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hubctl.errors import PARSE_ERRORS, BadInput, parse_failure, redact

from hubctl.tomlcompat import tomllib

__all__ = [
    "DEFAULT_NAME",
    "RegistryEntry",
    "registries_file",
    "list_registries",
    "get_registry",
    "read_configured",
    "write_configured",
    "bundled_entry",
    "cache_path",
    "classify_location",
    "default_name",
    "fetch_url_index",
]

DEFAULT_NAME = "default"
RegistryKind = Literal["bundled", "folder", "file", "url"]
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
_FETCH_LIMIT = 512 * 1024 * 1024  # an index file larger than this is refused


@dataclass(frozen=True)
class RegistryEntry:
    """One configured registry. ``location`` is an absolute folder or file path, or an http(s) URL."""

    name: str
    location: str
    kind: RegistryKind
    override_families: bool = False

    @property
    def path(self) -> Path:
        """Where its content lies on disk: the folder, the index file, or the cached copy of a URL index."""
        if self.kind == "url":
            return cache_path(self.name)
        return Path(self.location)

    def to_json(self) -> dict[str, "str | bool"]:
        out: dict[str, "str | bool"] = {"name": self.name, "location": self.location, "kind": self.kind}
        if self.override_families:
            out["override_families"] = True
        return out


def registries_file() -> Path:
    from hubctl.config import hubctl_home

    return hubctl_home() / "registries.toml"


def cache_path(name: str) -> Path:
    from hubctl.config import hubctl_home

    return hubctl_home() / "registries" / f"{name}.json"


def bundled_entry() -> RegistryEntry:
    from hubctl.config import bundled_registry_path

    return RegistryEntry(DEFAULT_NAME, str(bundled_registry_path()), "bundled")


def read_configured() -> list[RegistryEntry]:
    path = registries_file()
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise BadInput(f"cannot read ({e.strerror or e})", context=str(path)) from None
    try:
        data = tomllib.loads(text)
    except PARSE_ERRORS as e:
        raise BadInput(f"invalid TOML: {parse_failure(e)}", context=str(path)) from None
    items = data.get("registries", [])
    if not isinstance(items, list):
        raise BadInput("registries: must be an array of tables ([[registries]])", context=str(path))
    out: list[RegistryEntry] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadInput(f"registries[{i}]: must be a table", context=str(path))
        name, location, kind = item.get("name"), item.get("location"), item.get("kind")
        if not isinstance(name, str) or not NAME_RE.match(name) or name == DEFAULT_NAME:
            raise BadInput(f"registries[{i}].name: {name!r} is not a valid registry name", context=str(path))
        if not isinstance(location, str) or not location:
            raise BadInput(f"registries[{i}].location: required field is missing", context=str(path))
        if kind not in ("folder", "file", "url"):
            raise BadInput(f"registries[{i}].kind: {kind!r} is not one of folder, file, url", context=str(path))
        override = item.get("override_families", False)
        if not isinstance(override, bool):
            raise BadInput(f"registries[{i}].override_families: must be true or false", context=str(path))
        out.append(RegistryEntry(name, location, kind, override))
    return out


def write_configured(entries: list[RegistryEntry]) -> None:
    import tomli_w

    from hubctl.fsutil import atomic_write_text

    body = tomli_w.dumps({"registries": [e.to_json() for e in entries if e.kind != "bundled"]})
    atomic_write_text(registries_file(), "# Registries added with `hubctl registry add` (the bundled default is implicit).\n" + body)


def list_registries() -> list[RegistryEntry]:
    """Every registry the index is compiled from: the bundled ``default`` first, then the added ones in order."""
    return [bundled_entry(), *read_configured()]


def get_registry(name: str) -> RegistryEntry:
    for e in list_registries():
        if e.name == name:
            return e
    known = ", ".join(e.name for e in list_registries())
    raise BadInput(f"no registry named '{name}' (configured: {known})")


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def default_name(location: str) -> str:
    if _is_url(location):
        from urllib.parse import urlsplit

        parts = urlsplit(location)
        stem = Path(parts.path).stem if parts.path not in ("", "/") else ""
        base = parts.hostname or "remote"
        raw = f"{base}-{stem}" if stem and stem not in ("index",) else base
    else:
        p = Path(location)
        raw = p.stem if p.suffix else p.name
        if raw in ("registry", "index", "") and p.parent.name:
            raw = p.parent.name
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._") or "registry"
    return name


def classify_location(location: str) -> tuple[str, RegistryKind]:
    """Normalise a user-given location and tell its kind; raise BadInput when it is not a registry."""
    if _is_url(location):
        if redact(location) != location:
            raise BadInput(
                f"'{redact(location)}': a registry URL must not carry credentials (they would be stored in "
                "registries.toml and the index); serve the index without them"
            )
        return location, "url"
    if location.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        location = unquote(urlsplit(location).path)
    elif "://" in location:
        scheme = location.split("://", 1)[0]
        raise BadInput(f"'{redact(location)}': unknown scheme '{scheme}' (expected a folder, a file, http:// or https://)")
    p = Path(location).expanduser().resolve()
    if p.is_dir():
        if not (p / "manifests").is_dir() and not (p / "families.toml").is_file():
            raise BadInput(f"'{p}' is not a registry folder (expected manifests/<kind>/<name>.toml and optionally families.toml)")
        return str(p), "folder"
    if p.is_file():
        return str(p), "file"
    raise BadInput(f"'{p}' does not exist")


def fetch_url_index(url: str, dest: Path) -> None:
    """Download a static index file to ``dest`` (atomically), through hubctl's one HTTP engine (redirects,
    credentials per host and never to another scheme, host or port, retries, the low-speed rule). Raise
    SourceError (exit 3) on any network failure or an index larger than the limit."""
    from hubctl.fsutil import atomic_write_bytes
    from hubctl.sources.http import fetch_bytes

    data = fetch_bytes(url, limit=_FETCH_LIMIT, display=redact(url))
    atomic_write_bytes(dest, data)
