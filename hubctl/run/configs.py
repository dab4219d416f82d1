"""diffusers config folders for single-file bases, made from the family's reference configs.

A single-file (LDM layout) checkpoint carries weights only; diffusers needs the component configs and a
tokenizer to build the pipeline. This module writes ``model_index.json`` and each component's config from
the family table (``[families.reference.*]``: the index's families, else the bundled ones, else the demo's),
and takes the tokenizer from files locked in the base package (``tokenizer/...``, linked to their verified
blobs), or, for the demo's tiny families, from hubctl.demo.models (whose tokenizer is defined by code). It
never downloads and never loads weights. The folder lives under ``$HUBCTL_HOME/views/config/`` keyed by its
content, and is checked on every use (hubctl.store.views.build_view, the one view builder).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.errors import Refused

if TYPE_CHECKING:
    from hubctl.run.verify import VerifiedArtefact

__all__ = ["family_reference", "family_config_dir", "config_files"]

_LIBS = {
    "UNet2DConditionModel": "diffusers",
    "AutoencoderKL": "diffusers",
    "CLIPTextModel": "transformers",
    "CLIPTextModelWithProjection": "transformers",
}


def family_reference(family: str) -> dict[str, dict[str, Any]] | None:
    """The reference configs of ``family`` from the index, the bundled table, or the demo's families."""
    try:
        from hubctl.registry.manage import open_index

        with open_index(refresh=False) as idx:
            fam = idx.families.get(family)
            if fam is not None and fam.reference:
                return json.loads(json.dumps(fam.reference))
    except Exception:  # noqa: BLE001 - no index yet, or an unreadable one: fall through to the bundled data
        pass
    try:
        from hubctl.registry.families import default_families

        fam = default_families().get(family)
        if fam is not None and fam.reference:
            return json.loads(json.dumps(fam.reference))
    except Exception:  # noqa: BLE001
        pass
    from hubctl.demo import families as demo_families

    if family in demo_families.FAMILIES:
        return demo_families.family_entry(family)["reference"]
    return None


def config_files(reference: dict[str, dict[str, Any]], prediction: str | None = None) -> dict[str, bytes]:
    """The config files (no weights, no tokenizer) of a diffusers StableDiffusionPipeline folder made from a
    family's reference configs: relative path -> bytes."""
    index: dict[str, Any] = {"_class_name": "StableDiffusionPipeline", "requires_safety_checker": False,
                             "safety_checker": [None, None], "feature_extractor": [None, None],
                             "tokenizer": ["transformers", "CLIPTokenizer"]}
    out: dict[str, bytes] = {}
    for comp in ("unet", "vae", "text_encoder", "scheduler"):
        cfg = dict(reference[comp])
        cls = cfg.get("_class_name", "")
        index[comp] = [_LIBS.get(cls, "diffusers"), cls]
        name = "config.json"
        if comp == "scheduler":
            if prediction:
                cfg["prediction_type"] = prediction
            name = "scheduler_config.json"
        elif comp == "text_encoder":
            cfg.pop("_class_name", None)
            cfg.setdefault("architectures", [cls])
            cfg.setdefault("model_type", "clip_text_model")
        out[f"{comp}/{name}"] = json.dumps(cfg, indent=2, sort_keys=True).encode()
    out["model_index.json"] = json.dumps(index, indent=2, sort_keys=True).encode()
    return out


def _tokenizer_entries(tokenizer_dir: Path) -> dict[str, "Path | bytes"]:
    """The tokenizer files of a config folder: links to the verified blobs where ``tokenizer_dir`` is a run
    view (links into the store), else the files' bytes."""
    out: dict[str, Path | bytes] = {}
    for f in sorted(Path(tokenizer_dir).iterdir()):
        if f.is_symlink():
            out[f"tokenizer/{f.name}"] = Path(os.readlink(f))
        elif f.is_file():
            out[f"tokenizer/{f.name}"] = f.read_bytes()
    return out


@functools.lru_cache(maxsize=None)
def _demo_tokenizer(family: str) -> dict[str, bytes] | None:
    """The demo families' tokenizer is defined by code (hubctl.demo.models, deterministic): its files, made
    afresh once per process (so no folder of them can be edited in between)."""
    import tempfile

    from hubctl.demo import families as demo_families, models as demo_models

    if family not in demo_families.FAMILIES:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        demo_models.build_tokenizer(Path(tmp) / "t").save_pretrained(str(Path(tmp) / "t"))
        return {f"tokenizer/{f.name}": f.read_bytes() for f in sorted((Path(tmp) / "t").iterdir()) if f.is_file()}


def family_config_dir(base: "VerifiedArtefact") -> Path:
    """The config folder for a single-file base (one per content under ``views/config/``), checked file by
    file on every use and made afresh when anything in it differs (hubctl.store.views.build_view)."""
    from hubctl.config import hubctl_home
    from hubctl.store.views import build_view

    reference = family_reference(base.family)
    if not reference or not all(k in reference for k in ("unet", "vae", "text_encoder", "scheduler")):
        raise Refused(f"{base.label}: single file of family {base.family!r}, whose reference configs are unknown; "
                      "lock its diffusers variant instead")
    tok_src = base.root / "tokenizer"
    tokenizer = _tokenizer_entries(tok_src) if tok_src.is_dir() else _demo_tokenizer(base.family)
    if tokenizer is None:
        raise Refused(f"{base.label}: a single-file base needs its tokenizer files locked beside it (tokenizer/...); "
                      "none are, and hubctl does not download at load time")
    material = json.dumps({"ref": reference, "tok": sorted(base.sha256.get(k, "") for k in base.sha256 if k.startswith("tokenizer/")),
                           "pred": base.prediction}, sort_keys=True)
    key = hashlib.sha256(material.encode()).hexdigest()[:16]
    pred = base.prediction if base.prediction in ("epsilon", "v_prediction") else None
    entries: dict[str, Path | bytes] = {**config_files(reference, pred), **tokenizer}
    return build_view(hubctl_home() / "views" / "config" / f"{base.family}-{key}", entries)
