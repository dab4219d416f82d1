"""What a registry is allowed to say, by where it comes from. Called by the compile (one place:
:func:`hubctl.registry.compile._collect`, and ``registry build``) for every registry and manifest:

- no source URL carries credentials (``https://user:PASS@host/...``, ``?token=...``, an ``hf_...`` token): they
  would be stored in ``hubctl.lock`` and the index; the user is told to use ``HUBCTL_AUTH_<HOST>`` instead;
- a registry served over HTTP names only remote sources (``hf://``, ``https://``, ``http://``): a ``file://`` URL or
  a relative path in it would make a stranger's index read the user's own files into the store;
- a family id that an earlier registry (the bundled default first) already defines differently is refused,
  unless the registry was added with ``--override-families``.

Pure checks on parsed values: reads no file, fetches nothing, raises BadInput (exit 2) with one line naming the
manifest (or families file) and the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from hubctl.errors import BadInput, redact

if TYPE_CHECKING:
    from hubctl.registry.configured import RegistryEntry
    from hubctl.registry.families import Family
    from hubctl.registry.manifest import Manifest

__all__ = ["check_manifest_sources", "check_families"]

_REMOTE_SCHEMES = ("hf", "https", "http", "civitai")


def _auth_variable(url: str) -> str:
    return "HF_TOKEN" if url.startswith("hf://") else "HUBCTL_AUTH_<HOST> for that host"


def check_manifest_sources(origin: str, manifest: "Manifest", *, registry: str, remote: bool) -> None:
    """Refuse a manifest whose sources carry credentials, or (``remote``: the registry is served over HTTP)
    name a local file. ``origin`` names the manifest; ``registry`` the registry it belongs to."""
    from hubctl.registry.manifest import parse_source

    for i, v in enumerate(manifest.versions):
        for j, var in enumerate(v.variants):
            for k, f in enumerate(var.files):
                field = f"versions[{i}].variants[{j}].files[{k}].source"
                if redact(f.source) != f.source:
                    raise BadInput(
                        f"{field}: '{redact(f.source)}' carries credentials, which would be stored in hubctl.lock "
                        f"and the index; remove them and set {_auth_variable(f.source)} instead",
                        context=origin,
                    )
                if remote and parse_source(f.source).scheme not in _REMOTE_SCHEMES:
                    raise BadInput(
                        f"{field}: '{f.source}' is a local file; registry '{registry}' is served over HTTP and "
                        "may name only remote sources (hf://, https://, http://)",
                        context=origin,
                    )


def check_families(entry: "RegistryEntry", families: Iterable["Family"], defined: dict[str, str],
                   known: dict[str, "Family"], *, origin: str) -> None:
    """Refuse a family of ``entry`` whose id an earlier registry defines differently (``defined``: id -> the
    registry that defined it; ``known``: id -> its definition), unless ``entry`` was added with
    ``--override-families``. The same definition again is no change and passes."""
    if getattr(entry, "override_families", False):
        return
    for f in families:
        other = defined.get(f.id)
        if other is None or other == entry.name or known.get(f.id) == f:
            continue
        raise BadInput(
            f"family '{f.id}' is already defined by registry '{other}'; registry '{entry.name}' may not redefine "
            f"it (add it with `hubctl registry add --override-families` to let it)",
            context=origin,
        )
