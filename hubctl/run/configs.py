"""diffusers config folders for single-file bases, made from the family's reference configs.

A single-file (LDM layout) checkpoint carries weights only; diffusers needs the component configs and a
tokenizer to build the pipeline. This module writes ``model_index.json`` and each component's config from
the family table (``[families.reference.*]``: the index's families, else the bundled ones, else the demo's),
and takes the tokenizer from files locked in the base package (``tokenizer/...``), or, for the demo's tiny
families, from hubctl.demo.models (whose tokenizer is defined by code). It never downloads and never
loads weights. The folder lives under ``$HUBCTL_HOME/views/config/`` keyed by its content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.errors import Refused

if TYPE_CHECKING:
    from hubctl.run.verify import VerifiedArtefact

__all__ = ["family_reference", "family_config_dir", "write_config_dir"]

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


def write_config_dir(reference: dict[str, dict[str, Any]], tokenizer_dir: Path, dest: Path, prediction: str | None = None) -> Path:
    """Write a diffusers StableDiffusionPipeline config folder (no weights) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"_class_name": "StableDiffusionPipeline", "requires_safety_checker": False,
                             "safety_checker": [None, None], "feature_extractor": [None, None],
                             "tokenizer": ["transformers", "CLIPTokenizer"]}
    for comp in ("unet", "vae", "text_encoder", "scheduler"):
        cfg = dict(reference[comp])
        cls = cfg.get("_class_name", "")
        index[comp] = [_LIBS.get(cls, "diffusers"), cls]
        (dest / comp).mkdir(exist_ok=True)
        if comp == "scheduler":
            if prediction:
                cfg["prediction_type"] = prediction
            (dest / comp / "scheduler_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
        elif comp == "text_encoder":
            cfg.pop("_class_name", None)
            cfg.setdefault("architectures", [cls])
            cfg.setdefault("model_type", "clip_text_model")
            (dest / comp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
        else:
            (dest / comp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    (dest / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    tok = dest / "tokenizer"
    tok.mkdir(exist_ok=True)
    for f in sorted(Path(tokenizer_dir).iterdir()):
        if f.is_file():
            shutil.copyfile(f, tok / f.name)
    return dest


def _demo_tokenizer(family: str) -> Path | None:
    """The demo families' tokenizer is defined by code (hubctl.demo.models, deterministic): write it."""
    from hubctl.demo import families as demo_families, models as demo_models
    from hubctl.config import hubctl_home

    if family not in demo_families.FAMILIES:
        return None
    dest = hubctl_home() / "views" / "config" / f"tokenizer-{family}"
    if not (dest / "vocab.json").is_file():
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        demo_models.build_tokenizer(tmp).save_pretrained(str(tmp))
        try:
            os.replace(tmp, dest)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def family_config_dir(base: "VerifiedArtefact") -> Path:
    """The config folder for a single-file base (made once per content, reused)."""
    from hubctl.config import hubctl_home

    reference = family_reference(base.family)
    if not reference or not all(k in reference for k in ("unet", "vae", "text_encoder", "scheduler")):
        raise Refused(f"{base.label}: single file of family {base.family!r}, whose reference configs are unknown; "
                      "lock its diffusers variant instead")
    tok_src = base.root / "tokenizer"
    if not tok_src.is_dir():
        tok_src = _demo_tokenizer(base.family)
    if tok_src is None:
        raise Refused(f"{base.label}: a single-file base needs its tokenizer files locked beside it (tokenizer/...); "
                      "none are, and hubctl does not download at load time")
    material = json.dumps({"ref": reference, "tok": sorted(base.sha256.get(k, "") for k in base.sha256 if k.startswith("tokenizer/")),
                           "pred": base.prediction}, sort_keys=True)
    key = hashlib.sha256(material.encode()).hexdigest()[:16]
    dest = hubctl_home() / "views" / "config" / f"{base.family}-{key}"
    if (dest / "model_index.json").is_file():
        return dest
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_config_dir(reference, tok_src, tmp, base.prediction if base.prediction in ("epsilon", "v_prediction") else None)
    try:
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
