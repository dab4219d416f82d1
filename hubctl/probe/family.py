"""Family decisions: match a :class:`Signature` read from shapes against the family table, read what
metadata (ModelSpec, kohya ``ss_*``) and configs claim, and decide the prediction type. Pure; takes a
FamilyTable value, knows no family by name."""

from __future__ import annotations

from typing import Any, Mapping

from hubctl.registry.families import Family, FamilyTable
from hubctl.probe.types import Evidence, Signature

__all__ = ["match_families", "metadata_family", "metadata_prediction", "describe_signature", "family_width_phrase"]


def _fits(f: Family, s: Signature) -> tuple[bool, int]:
    score = 0
    widths, layers = f.text_encoder_widths, f.text_encoder_layers
    if s.cross_attention_dim is not None:
        if f.cross_attention_dim != s.cross_attention_dim:
            return False, 0
        score += 4
    for idx, w in s.te_widths.items():
        if idx >= len(widths) or widths[idx] != w:
            return False, 0
        score += 2
    if s.te_count is not None and len(widths) != s.te_count:
        return False, 0
    if len(widths) < s.te_count_min:
        return False, 0
    for idx, mx in s.te_max_layer.items():
        if idx < len(layers) and mx > layers[idx]:  # one extra layer allowed: OpenCLIP files keep the last block
            return False, 0
    for idx, n in s.te_layers_exact.items():
        if idx >= len(layers) or n not in (layers[idx], layers[idx] + 1):
            return False, 0
        score += 1
    if s.linear_projection is not None:
        if f.use_linear_projection != s.linear_projection:
            return False, 0
        score += 1
    if s.addition_embed is not None:
        if (f.addition_embed_type is not None) != s.addition_embed:
            return False, 0
        score += 1
    if s.embedding_widths is not None:
        if list(widths) != list(s.embedding_widths):
            return False, 0
        score += 2
    if s.block_out_channels and f.unet_block_out_channels:
        if list(f.unet_block_out_channels) != list(s.block_out_channels):
            return False, 0
        score += 1
    return True, score


def match_families(sig: Signature, families: FamilyTable) -> tuple[str | None, list[str]]:
    """(family id or None, every family the shapes allow). None when nothing or more than one fits best."""
    if not sig.known() or sig.foreign_denoiser:  # a denoiser no family has: its text encoder part decides nothing
        return None, []
    scored = [(f.id, sc) for f in families for ok, sc in [_fits(f, sig)] if ok]
    if not scored:
        return None, []
    best = max(sc for _, sc in scored)
    top = [fid for fid, sc in scored if sc == best]
    cands = [fid for fid, _ in sorted(scored, key=lambda x: -x[1])]
    return (top[0] if len(top) == 1 else None), cands


def _arch(md: Mapping[str, str]) -> str | None:
    a = md.get("modelspec.architecture")
    return a.split("/", 1)[0].strip() if a else None


def metadata_family(md: Mapping[str, str], families: FamilyTable) -> tuple[str | None, Evidence | None]:
    """The family the file's metadata claims (ModelSpec architecture, kohya base version), if any."""
    arch = _arch(md)
    if arch:
        f = families.by_alias(arch)
        if f:
            return f.id, Evidence("__metadata__.modelspec.architecture", None, f"metadata says {arch} ({f.id})")
    v = md.get("ss_base_model_version")
    if v:
        f = families.by_alias(v)
        if f:
            return f.id, Evidence("__metadata__.ss_base_model_version", None, f"metadata says {v} ({f.id})")
    if md.get("ss_v2", "").strip().lower() == "true":
        f = families.by_alias("sd_v2")
        if f:
            return f.id, Evidence("__metadata__.ss_v2", None, f"metadata says ss_v2=True ({f.id})")
    return None, None


def metadata_prediction(md: Mapping[str, str]) -> tuple[str | None, Evidence | None]:
    p = md.get("modelspec.prediction_type", "").strip().lower()
    if p in ("v", "v_prediction", "v-prediction"):
        return "v_prediction", Evidence("__metadata__.modelspec.prediction_type", None, f"metadata says {p}")
    if p in ("epsilon", "eps"):
        return "epsilon", Evidence("__metadata__.modelspec.prediction_type", None, f"metadata says {p}")
    arch = _arch(md)
    if arch and arch.endswith("-v"):
        return "v_prediction", Evidence("__metadata__.modelspec.architecture", None, f"metadata architecture {arch} is v-prediction")
    if md.get("ss_v_parameterization", "").strip().lower() == "true":
        return "v_prediction", Evidence("__metadata__.ss_v_parameterization", None, "trained with v-parameterization")
    if md.get("ss_base_model_version", "").endswith("_v"):
        return "v_prediction", Evidence("__metadata__.ss_base_model_version", None, f"base {md['ss_base_model_version']} is v-prediction")
    return None, None


def config_prediction(configs: Mapping[str, Any]) -> tuple[str | None, Evidence | None]:
    sched = configs.get("scheduler") or {}
    p = sched.get("prediction_type") if isinstance(sched, dict) else None
    if p in ("epsilon", "v_prediction", "sample"):
        return p, Evidence("scheduler/scheduler_config.json:prediction_type", None, f"scheduler config says {p}")
    return None, None


def family_width_phrase(f: Family | None, fid: str | None) -> str:
    """'cross-attention 768' style phrase naming the width that identifies a family."""
    if f is None:
        return fid or "unknown family"
    return f"cross-attention {f.cross_attention_dim}"


def describe_signature(sig: Signature) -> str:
    bits = []
    if sig.cross_attention_dim:
        bits.append(f"cross-attention {sig.cross_attention_dim}")
    if sig.te_widths:
        bits.append("text encoder " + " + ".join(str(sig.te_widths[i]) for i in sorted(sig.te_widths)))
    if sig.embedding_widths:
        bits.append("embedding width " + " + ".join(map(str, sig.embedding_widths)))
    if sig.linear_projection is not None:
        bits.append("linear proj_in" if sig.linear_projection else "conv proj_in")
    return ", ".join(bits) or "no deciding shapes"
