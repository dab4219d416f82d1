"""Civitai as a registry: a model version the API described (:mod:`hubctl.sources.civitai`) turned into a package
of the local ``civitai`` registry (:mod:`hubctl.adopt.local_registry`): one package per Civitai model, named
``<model name>-<model id>``; one version per model version (its id, a PEP 440 number that grows with each
release); the file's name, sha256 (from the API) and ``civitai:VERSION/FILE`` source (its size is asked at lock
time); the kind from the model type and the family from ``baseModel`` through the families' aliases. A version
whose type hubctl cannot package, whose base model maps to no family, or whose file has no SHA256 is refused
with the reason (the caller lists it as unresolved). Writes manifests only through local_registry.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from hubctl.errors import BadInput

__all__ = ["CivitaiPackage", "package_for_version"]


class CivitaiPackage:
    """The package a model version became: name, version (the version id), variant, kind, family."""

    def __init__(self, name: str, version: str, variant: str, kind: str, family: str) -> None:
        self.name, self.version, self.variant, self.kind, self.family = name, version, variant, kind, family


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return s or "model"


def package_for_version(v: Any, file: Any, families: Any) -> CivitaiPackage:
    """Write (or extend) the manifest of model version ``v`` with ``file``; BadInput naming why it cannot be a
    package (the caller reports it as unresolved)."""
    from hubctl.adopt.local_registry import CIVITAI, read_manifest, write_manifest
    from hubctl.registry.fields import check_file_path
    from hubctl.registry.manifest import KINDS
    from hubctl.sources.civitai import KIND_BY_TYPE

    kind = KIND_BY_TYPE.get(v.model_type.lower().replace(" ", ""))
    if kind is None or kind not in KINDS:
        raise BadInput(f"Civitai model type '{v.model_type}' is not a kind hubctl packages")
    fam = families.by_alias(v.base_model) if v.base_model else None
    if fam is None:
        raise BadInput(f"Civitai base model '{v.base_model}' is no family hubctl knows")
    if not file.sha256:
        raise BadInput(f"Civitai gives no SHA256 for {file.name}")
    name = f"{_slug(v.model_name)}-{v.model_id}"
    try:
        path = check_file_path(file.name)
    except ValueError:
        path = f"{name}.safetensors"
    variant = file.fp if re.match(r"^(fp16|fp32|bf16|fp8)$", file.fp or "") else "default"
    entry: dict[str, Any] = {"version": str(v.id), "family": fam.id,
                             "notes": f"Civitai model {v.model_id} version {v.id} ({v.name})"[:500],
                             "variants": [{"name": variant, **({"dtype": variant} if variant != "default" else {}),
                                           "files": [{"path": path, "sha256": file.sha256,
                                                      "source": f"civitai:{v.id}/{file.id}"}]}]}
    if kind == "lora" and v.trained_words:
        entry["trigger"] = [w for w in v.trained_words if w and "\n" not in w][:16]
    old: Optional[dict[str, Any]] = read_manifest(CIVITAI, kind, name)
    versions = [x for x in (old or {}).get("versions", []) if isinstance(x, dict) and x.get("version") != str(v.id)]
    doc = {"name": name, "kind": kind, "summary": f"{v.model_name} (Civitai)"[:200],
           "homepage": f"https://civitai.com/models/{v.model_id}", "versions": versions + [entry]}
    write_manifest(CIVITAI, doc, known_families=families.ids())
    return CivitaiPackage(name, str(v.id), variant, kind, fam.id)
