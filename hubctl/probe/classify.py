"""Classification: from tensor names and shapes (plus metadata and, for a diffusers folder, its configs)
to a :class:`Probe`: kind, family, layout, variant, prediction, rank, alpha, vectors, tokens, dtypes,
parameters and the evidence that decided. Pure: takes values (a FamilyTable included), does no I/O,
never imports torch. When metadata and shapes disagree, shapes win and the disagreement is a note."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import PurePath
from typing import Any, Mapping

from hubctl.registry.families import FamilyTable
from hubctl.probe.family import (
    config_prediction,
    describe_signature,
    match_families,
    metadata_family,
    metadata_prediction,
)
from hubctl.probe.header import TensorInfo
from hubctl.probe.keys import ModuleMap, module_shapes
from hubctl.probe.lora import is_lora, parse_lora
from hubctl.probe.types import Evidence, Probe, Signature

__all__ = ["classify", "unet_signature", "te_signature"]

_ATTN2_K = re.compile(r"^down_blocks\.\d+\.attentions\.\d+\.transformer_blocks\.\d+\.attn2\.to_k$")
_PROJ_IN = re.compile(r"^down_blocks\.\d+\.attentions\.\d+\.proj_in$")
_LAYER = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.")
_EMB_KEYS = ("emb_params", "clip_l", "clip_g")


def _raw(raw: Mapping[str, tuple[int, ...]] | None, prefix: str, suffix: str) -> tuple[str, tuple[int, ...]] | None:
    if not raw:
        return None
    for n, shp in raw.items():
        if n.startswith(prefix) and n.endswith(suffix) and (suffix != "attn2.to_k.weight" or ".down_blocks." in "." + n or "input_blocks." in n):
            return n, shp
    return None


def unet_signature(unet: Mapping[str, tuple[int, ...]], sig: Signature, raw: Mapping[str, tuple[int, ...]] | None = None,
                   prefix: str = "") -> None:
    """Fill ``sig`` from a UNet (or ControlNet) module map in diffusers naming; evidence names the raw keys
    (those under ``prefix`` in ``raw``)."""
    k = next((m for m in unet if _ATTN2_K.match(m)), None)
    if k:
        sig.cross_attention_dim = unet[k][0]
        r = _raw(raw, prefix, "attn2.to_k.weight") or (f"{k}.weight", (unet[k][1], unet[k][0]))
        sig.evidence.append(Evidence(r[0], tuple(r[1]), f"cross-attention width {unet[k][0]}"))
    p = next((m for m in unet if _PROJ_IN.match(m)), None)
    if p:
        sig.linear_projection = len(unet[p]) == 2
        r = _raw(raw, prefix, "proj_in.weight") or (f"{p}.weight", (unet[p][1], unet[p][0]) + tuple(unet[p][2:]))
        sig.evidence.append(Evidence(r[0], tuple(r[1]), "proj_in is " + ("a Linear" if len(unet[p]) == 2 else "a 1x1 conv")))
    sig.addition_embed = "add_embedding.linear_1" in unet
    if sig.addition_embed:
        r = _raw(raw, prefix, "linear_1.weight") if raw and any("add_embedding" in n for n in raw) else _raw(raw, prefix, "label_emb.0.0.weight")
        sig.evidence.append(Evidence(r[0] if r else "add_embedding.linear_1.weight", tuple(r[1]) if r else None, "has SDXL-style added conditioning"))
    if "conv_in" in unet:
        sig.unet_in_channels = unet["conv_in"][0]
    chans = []
    i = 0
    while f"down_blocks.{i}.resnets.0.conv1" in unet:
        chans.append(unet[f"down_blocks.{i}.resnets.0.conv1"][1])
        i += 1
    sig.block_out_channels = chans or None


_TE_PREFIXES = {"text_encoder": ("cond_stage_model.", "conditioner.embedders.0.", "text_encoder.", "text_model.", "embeddings."),
                "text_encoder_2": ("conditioner.embedders.1.", "text_encoder_2.")}


def _raw_te(raw: Mapping[str, tuple[int, ...]] | None, comp: str, width: int) -> tuple[str, tuple[int, ...]] | None:
    """The raw token-embedding key of a text encoder (what a user can find in the file)."""
    for n, shp in (raw or {}).items():
        if n.endswith("token_embedding.weight") and n.startswith(_TE_PREFIXES[comp]) and len(shp) == 2 and shp[1] == width:
            return n, shp
    return None


def te_signature(mods: ModuleMap, sig: Signature, exact_count: bool, raw: Mapping[str, tuple[int, ...]] | None = None) -> None:
    """Fill ``sig`` from text encoder module maps (text_encoder, text_encoder_2)."""
    n = 0
    for idx, comp in enumerate(("text_encoder", "text_encoder_2")):
        te = mods.get(comp)
        if not te:
            continue
        n += 1
        q = "text_model.encoder.layers.0.self_attn.q_proj"
        if q in te:
            width = te[q][0]
            sig.te_widths[idx] = width
            r = _raw_te(raw, comp, width)
            key, shp = r if r else (f"{comp}: {q}.weight", (te[q][1], width))
            sig.evidence.append(Evidence(key, tuple(shp), f"text encoder {idx + 1} width {width}"))
        layers = {int(m.group(1)) for name in te for m in [_LAYER.match(name)] if m}
        if layers:
            sig.te_layers_exact[idx] = max(layers) + 1
            sig.evidence.append(Evidence(f"{comp}: {max(layers) + 1} encoder layers", None, f"text encoder {idx + 1} has {max(layers) + 1} layers"))
    if exact_count and n:
        sig.te_count = n


def _shapes(tensors: Mapping[str, TensorInfo]) -> dict[str, tuple[int, ...]]:
    return {k: t.shape for k, t in tensors.items()}


def _is_embedding(shapes: Mapping[str, tuple[int, ...]], widths: set[int]) -> bool:
    names = list(shapes)
    known = [n for n in names if n in _EMB_KEYS or n.startswith("string_to_param")]
    if known:
        return len(names) <= 32 and all(len(shapes[n]) in (1, 2) and shapes[n][-1] > 0 for n in known)
    if not names or len(names) > 16:
        return False
    total = 0
    for s in shapes.values():
        if len(s) not in (1, 2) or s[-1] not in widths:
            return False
        n = 1
        for d in s:
            n *= d
        total += n
    return total <= 2_000_000


def _embedding(shapes: Mapping[str, tuple[int, ...]], stem: str, sig: Signature) -> dict[str, Any]:
    if "clip_l" in shapes or "clip_g" in shapes:
        widths = [shapes[k][-1] for k in ("clip_l", "clip_g") if k in shapes]
        vec = shapes.get("clip_l", shapes.get("clip_g"))
        layout, tokens = "kohya-sdxl", [stem]
        for k in ("clip_l", "clip_g"):
            if k in shapes:
                sig.evidence.append(Evidence(k, shapes[k], f"embedding width {shapes[k][-1]}"))
    elif "emb_params" in shapes:
        widths, vec, layout, tokens = [shapes["emb_params"][-1]], shapes["emb_params"], "kohya", [stem]
        sig.evidence.append(Evidence("emb_params", vec, f"embedding width {vec[-1]}"))
    elif any(n.startswith("string_to_param") for n in shapes):
        k = next(n for n in shapes if n.startswith("string_to_param"))
        widths, vec, layout, tokens = [shapes[k][-1]], shapes[k], "a1111", [stem]
        sig.evidence.append(Evidence(k, vec, f"embedding width {vec[-1]}"))
    else:
        k = next(iter(shapes))
        widths, vec, layout, tokens = [shapes[k][-1]], shapes[k], "diffusers", list(shapes)
        for name, s in shapes.items():
            sig.evidence.append(Evidence(name, s, f"token '{name}': {s[0] if len(s) == 2 else 1} vector(s) of width {s[-1]}"))
    sig.embedding_widths = widths
    return {"layout": layout, "tokens": tokens, "vectors": vec[0] if len(vec) == 2 else 1, "width": widths[0]}


def _variant(in_ch: int | None, latent: int, has_depth: bool) -> str | None:
    if in_ch is None:
        return None
    if has_depth or in_ch == latent + 1:
        return "depth"
    if in_ch == latent:
        return "normal"
    if in_ch == 2 * latent + 1:
        return "inpaint"
    if in_ch == 2 * latent:
        return "instruct-pix2pix"
    return f"in_channels={in_ch}"


def classify(
    tensors: Mapping[str, TensorInfo],
    metadata: Mapping[str, str],
    *,
    families: FamilyTable,
    path: str,
    fmt: str = "safetensors",
    size: int | None = None,
    configs: Mapping[str, Any] | None = None,
    scalars: Mapping[str, float] | None = None,
    hashes: Mapping[str, str] | None = None,
) -> Probe:
    """Classify one artefact from its tensors (a diffusers folder: names prefixed ``component.``)."""
    configs = dict(configs or {})
    shapes = _shapes(tensors)
    names = list(shapes)
    stem = PurePath(path.rstrip("/")).stem if "://" not in path else PurePath(path.split("?")[0]).stem
    sig = Signature()
    notes: list[str] = []
    out: dict[str, Any] = {}
    modules: ModuleMap = {}
    lora_modules: tuple = ()
    components: list[str] = []
    variant: str | None = None
    te_widths_known = {w for f in families for w in f.text_encoder_widths}

    if fmt == "diffusers-folder":
        kind, layout = "checkpoint", "diffusers"
        modules = module_shapes(shapes)
        components = sorted({n.split(".", 1)[0] for n in names})
        if "controlnet" in modules and "unet" not in modules:
            kind = "controlnet"
        elif set(components) == {"vae"}:
            kind = "vae"
        if "unet" in modules or "controlnet" in modules:
            unet_signature(modules.get("unet") or modules["controlnet"], sig, shapes, "unet." if "unet" in modules else "controlnet.")
        te_signature(modules, sig, exact_count=True, raw=shapes)
    elif is_lora(names):
        kind = "lora"
        info = parse_lora(shapes, metadata, scalars)
        layout, sig, lora_modules = info.layout, info.signature, tuple(info.modules)
        out.update(rank=info.rank, alpha=info.alpha)
        notes += info.notes
        components = sorted({m.component for m in info.modules})
        if not info.modules:
            notes.append("LoRA markers found but no complete module (down+up) could be read")
    elif any("controlnet_cond_embedding." in n or "input_hint_block." in n for n in names):
        kind = "controlnet"
        layout = "ldm" if any(n.startswith(("control_model.", "input_blocks.")) for n in names) else "diffusers"
        modules = module_shapes(shapes, component="controlnet")
        unet_signature(modules.get("controlnet", {}), sig, shapes)
        components = ["controlnet"]
    elif _is_embedding(shapes, te_widths_known):
        kind = "embedding"
        emb = _embedding(shapes, stem, sig)
        layout = emb.pop("layout")
        out.update(emb)
    elif any(n.startswith("model.diffusion_model.") for n in names):
        kind, layout = "checkpoint", "ldm"
        modules = module_shapes(shapes)
        unet_signature(modules.get("unet", {}), sig, shapes, "model.diffusion_model.")
        te_signature(modules, sig, exact_count=True, raw=shapes)
        components = sorted(modules) + (["vae"] if any(n.startswith("first_stage_model.") for n in names) else [])
        if any(n.startswith("depth_model.") for n in names):
            notes.append("has a depth estimator (depth_model.*)")
    elif "conv_in.weight" in shapes and any(n.startswith("time_embedding.") for n in names):
        kind, layout, components = "checkpoint", "diffusers", ["unet"]
        modules = module_shapes(shapes, component="unet")
        unet_signature(modules["unet"], sig, shapes)
    elif "encoder.conv_in.weight" in shapes and "decoder.conv_in.weight" in shapes or (
        names and all(n.startswith("first_stage_model.") for n in names)
    ):
        kind = "vae"
        pre = "first_stage_model." if names[0].startswith("first_stage_model.") else ""
        layout = "ldm" if (pre or any(".down." in n or ".mid.block_" in n for n in names)) else "diffusers"
        dec = shapes.get(pre + "decoder.conv_in.weight")
        lat = dec[1] if dec and len(dec) == 4 else None
        cands = [f.id for f in families if lat is None or f.vae_latent_channels == lat]
        components = ["vae"]
        if dec:
            sig.evidence.append(Evidence(pre + "decoder.conv_in.weight", dec, f"{lat} latent channels"))
        out["family_candidates"] = cands
    elif any(n.startswith("text_model.") for n in names):
        kind, layout, components = "checkpoint", "diffusers", ["text_encoder"]
        modules = module_shapes(shapes, component="text_encoder")
        te_signature(modules, sig, exact_count=False, raw=shapes)
        notes.append("a text encoder on its own")
    else:
        kind, layout = "unknown", None
        notes.append("no known key pattern (not a checkpoint, LoRA, embedding, ControlNet or VAE)")

    # family: shapes first, then what metadata and configs claim
    family, cands = match_families(sig, families)
    cands = out.pop("family_candidates", cands)
    if kind == "vae" and len(cands) == 1:
        family = cands[0]
    md_fam, md_ev = metadata_family(metadata, families)
    evidence = list(sig.evidence)
    if md_ev:
        evidence.append(md_ev)
    if family is None and sig.known() and not cands and not sig.foreign_denoiser:
        notes.append(f"no known family has {describe_signature(sig)}")
    if md_fam and family and md_fam != family:
        notes.append(f"metadata says {md_fam} but the shapes say {family} ({describe_signature(sig)}); shapes win")
    elif md_fam and family is None:
        if not sig.known() or md_fam in cands:
            family = md_fam
            notes.append(f"family {md_fam} taken from metadata: the shapes alone do not decide it")
        elif sig.known():
            notes.append(f"metadata says {md_fam} but the shapes ({describe_signature(sig)}) fit no such family; shapes win")
    if family is None and len(cands) > 1:
        notes.append("shapes fit several families: " + ", ".join(cands))
    unet_cfg = configs.get("unet") or configs.get("controlnet")
    if isinstance(unet_cfg, dict) and sig.cross_attention_dim and unet_cfg.get("cross_attention_dim") not in (None, sig.cross_attention_dim):
        notes.append(f"config.json says cross_attention_dim {unet_cfg.get('cross_attention_dim')} but the weights have {sig.cross_attention_dim}; shapes win")

    fam = families.get(family) if family else None
    if kind == "checkpoint" and sig.unet_in_channels is not None:
        lat = fam.vae_latent_channels if fam else 4
        variant = _variant(sig.unet_in_channels, lat, any(n.startswith("depth_model.") for n in names))
        if variant and variant != "normal":
            evidence.append(Evidence("conv_in.weight", None, f"{sig.unet_in_channels} input channels: {variant}"))
    elif kind in ("checkpoint", "controlnet"):
        variant = None

    prediction, pev = metadata_prediction(metadata)
    if prediction is None:
        prediction, pev = config_prediction(configs)
    if prediction is None and fam and len(fam.prediction_types) == 1 and kind in ("checkpoint", "lora", "embedding", "controlnet"):
        prediction = fam.prediction_types[0]
        pev = Evidence(f"family {fam.id}", None, f"family {fam.id} only uses {prediction}")
    if prediction is None:
        prediction = "unknown"
    if pev:
        evidence.append(pev)

    dtypes = Counter(t.dtype for t in tensors.values())
    params = sum(t.numel for t in tensors.values())
    return Probe(
        path=path,
        format=fmt,
        kind=kind,
        family=family,
        prediction=prediction,
        variant=variant,
        layout=layout,
        rank=out.get("rank"),
        alpha=out.get("alpha"),
        vectors=out.get("vectors"),
        width=out.get("width"),
        tokens=tuple(out.get("tokens") or ()),
        dtypes=dict(sorted(dtypes.items())),
        parameters=params,
        size=size,
        metadata=dict(metadata),
        evidence=tuple(evidence),
        family_candidates=tuple(cands),
        components=tuple(components),
        notes=tuple(notes),
        hashes=dict(hashes) if hashes is not None else None,
        signature=sig.summary(),
        modules=modules,
        lora_modules=lora_modules,
        configs=configs,
    )
