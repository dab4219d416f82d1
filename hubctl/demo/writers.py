"""Deterministic files from the demo's tiny models: every artefact file the offline demo hub ships.

Owns: saving a pipeline in diffusers layout (JSON configs stripped of build-time paths), a safetensors
writer with sorted keys and metadata (the safetensors library orders ``__metadata__`` differently on each
run), the diffusers -> original LDM key conversion for one-file (A1111-style) checkpoints, kohya- and
diffusers/peft-format LoRAs drawn for a pipeline, and diffusers-format textual-inversion embeddings.
The same inputs give the same bytes on every build (seeded CPU generators, sorted keys, no timestamps
or absolute paths), so the demo manifests' sha256 are stable.

Must not: build models (that is :mod:`hubctl.demo.models`), download anything, or be imported by the CLI at
start-up. torch is imported inside the functions that need it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hubctl.demo.families import EMBEDDING_TOKEN

__all__ = [
    "save_pipeline",
    "normalise_json_files",
    "save_safetensors",
    "text_encoder_state_dict",
    "ldm_state_dict",
    "write_single_file",
    "write_kohya_lora",
    "write_peft_lora",
    "write_embedding",
]


# --------------------------------------------------------------------------------------------- diffusers layout


def save_pipeline(pipe: Any, folder: Path) -> list[Path]:
    """Save ``pipe`` in diffusers layout (safetensors) and return its files, sorted."""
    pipe.save_pretrained(str(folder), safe_serialization=True)
    _rewrite_text_encoder_file(folder, pipe.text_encoder)
    normalise_json_files(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file())


def normalise_json_files(folder: Path) -> None:
    """Drop fields that would make bytes depend on where or when the build ran (e.g. ``_name_or_path``)."""
    for p in sorted(folder.rglob("*.json")):
        if p.name in ("vocab.json",):
            continue
        data = json.loads(p.read_text("utf-8"))
        if isinstance(data, dict):
            changed = False
            for k in ("_name_or_path", "name_or_path"):
                if k in data:
                    data.pop(k)
                    changed = True
            if changed:
                p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")


def save_safetensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file byte-for-byte deterministically.

    The safetensors library keeps ``__metadata__`` in a Rust HashMap, so a file with two or more metadata
    entries comes out in a different byte order on each run (and with a different sha256). This writer
    produces the same container (8-byte little-endian header length, JSON header padded with spaces to a
    multiple of 8, tensors back to back) with keys and metadata sorted."""
    import torch

    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32"}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    blobs: list[bytes] = []
    offset = 0
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)
    return path


def text_encoder_state_dict(text_encoder: Any) -> dict[str, Any]:
    """The CLIP text encoder's weights under the canonical ``text_model.`` names real files use.

    transformers >= 5.6 flattened ``CLIPTextModel`` (no ``text_model`` attribute); the Hub's files, A1111
    checkpoints and LoRA key names all still say ``text_model.``, and transformers loads either form."""
    prefix = "" if hasattr(text_encoder, "text_model") else "text_model."
    return {prefix + k: v for k, v in text_encoder.state_dict().items() if not k.endswith("position_ids")}


def _rewrite_text_encoder_file(folder: Path, text_encoder: Any) -> None:
    """Re-save ``text_encoder/model.safetensors`` with canonical ``text_model.`` keys (see above)."""
    path = folder / "text_encoder" / "model.safetensors"
    if path.is_file():
        save_safetensors(text_encoder_state_dict(text_encoder), path, metadata={"format": "pt"})


# --------------------------------------------------------------------------------------------- LDM layout


def _unet_to_ldm(sd: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """diffusers UNet keys -> original LDM keys (``model.diffusion_model.`` prefix), for any block count.

    The inverse of diffusers' ``convert_ldm_unet_checkpoint``; checked by converting back in the tests."""
    lpb = int(config["layers_per_block"])
    n_blocks = len(config["block_out_channels"])
    up_has_attn = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    top = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    res = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
    prefixes: list[tuple[str, str, bool]] = []  # (diffusers prefix, ldm prefix, is_resnet)
    for i in range(n_blocks):
        for j in range(lpb):
            idx = (lpb + 1) * i + j + 1
            prefixes.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{idx}.0.", True))
            prefixes.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{idx}.1.", False))
        prefixes.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(lpb + 1) * (i + 1)}.0.op.", False))
    prefixes.append(("mid_block.resnets.0.", "middle_block.0.", True))
    prefixes.append(("mid_block.attentions.0.", "middle_block.1.", False))
    prefixes.append(("mid_block.resnets.1.", "middle_block.2.", True))
    for i in range(n_blocks):
        for j in range(lpb + 1):
            idx = (lpb + 1) * i + j
            prefixes.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{idx}.0.", True))
            prefixes.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{idx}.1.", False))
        slot = 2 if up_has_attn[i] else 1
        prefixes.append((f"up_blocks.{i}.upsamplers.0.conv.", f"output_blocks.{(lpb + 1) * i + lpb}.{slot}.conv.", False))
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = None
        for d, l in top.items():
            if key.startswith(d + "."):
                new = l + key[len(d):]
        if new is None:
            for d, l, is_res in prefixes:
                if key.startswith(d):
                    rest = key[len(d):]
                    if is_res:
                        for a, b in res:
                            if rest.startswith(a + "."):
                                rest = b + rest[len(a):]
                                break
                    new = l + rest
                    break
        if new is None:
            raise ValueError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


def _vae_to_ldm(sd: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """diffusers AutoencoderKL keys -> LDM keys (``first_stage_model.`` prefix); attention as 1x1 convs."""
    n = len(config["block_out_channels"])
    prefixes: list[tuple[str, str]] = [
        ("encoder.conv_norm_out.", "encoder.norm_out."),
        ("decoder.conv_norm_out.", "decoder.norm_out."),
    ]
    for i in range(n):
        prefixes.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        prefixes.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    for part in ("encoder", "decoder"):
        prefixes.append((f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."))
        prefixes.append((f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."))
        prefixes.append((f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."))
    attn = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = key
        for d, l in prefixes:
            if key.startswith(d):
                rest = key[len(d):]
                if ".attn_1." in l:
                    for a, b in attn.items():
                        if rest.startswith(a):
                            rest = b + rest[len(a):]
                            break
                    if rest.endswith("weight") and value.ndim == 2 and not rest.startswith("norm."):
                        value = value[:, :, None, None]
                rest = rest.replace("conv_shortcut.", "nin_shortcut.")
                new = l + rest
                break
        out["first_stage_model." + new] = value
    return out


def ldm_state_dict(pipe: Any) -> dict[str, Any]:
    """The pipeline's weights in the original LDM single-file layout (as A1111 checkpoints store them)."""
    sd: dict[str, Any] = {}
    sd.update(_unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config)))
    sd.update(_vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    for k, v in text_encoder_state_dict(pipe.text_encoder).items():
        sd["cond_stage_model.transformer." + k] = v
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


def write_single_file(pipe: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Save the pipeline as one LDM-layout safetensors file (like an A1111 ``.safetensors`` checkpoint)."""
    return save_safetensors(ldm_state_dict(pipe), path, metadata)


# --------------------------------------------------------------------------------------------- adapters


def _lora_targets(pipe: Any, *, include_conv: bool) -> list[tuple[str, str, Any]]:
    """(component, module path, module) for every attention projection a LoRA trains, sorted."""
    import torch

    out: list[tuple[str, str, Any]] = []
    for name, mod in pipe.unet.named_modules():
        if ".transformer_blocks." in name and any(name.endswith(s) for s in (".to_q", ".to_k", ".to_v", ".to_out.0")):
            out.append(("unet", name, mod))
        elif name.endswith(".proj_in") or name.endswith(".proj_out"):
            if isinstance(mod, torch.nn.Linear) or include_conv:
                out.append(("unet", name, mod))
    te_prefix = "" if hasattr(pipe.text_encoder, "text_model") else "text_model."
    for name, mod in pipe.text_encoder.named_modules():
        if name.endswith(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")):
            out.append(("text_encoder", te_prefix + name, mod))
    return sorted(out, key=lambda t: (t[0], t[1]))


def _lora_pair(mod: Any, rank: int, g: Any, strength: float) -> tuple[Any, Any]:
    """Down/up weights for one module; the product has about ``strength`` times the module's own scale."""
    import torch

    w = mod.weight
    out_f, in_f = int(w.shape[0]), int(w.shape[1])
    down = torch.randn((rank, in_f), generator=g) / in_f**0.5
    up = torch.randn((out_f, rank), generator=g) * (strength / rank**0.5)
    if w.ndim == 4:  # 1x1 conv (SD1 proj_in/proj_out): kohya stores conv LoRA as 4-D
        down = down[:, :, None, None]
        up = up[:, :, None, None]
    return down.contiguous(), up.contiguous()


def write_kohya_lora(pipe: Any, path: Path, seed: int, rank: int = 4, alpha: float = 4.0, strength: float = 0.6) -> Path:
    """A LoRA in kohya key format (``lora_unet_..``/``lora_te_..``, ``lora_down``/``lora_up``/``alpha``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Any] = {}
    for comp, name, mod in _lora_targets(pipe, include_conv=True):
        prefix = "lora_unet_" if comp == "unet" else "lora_te_"
        key = prefix + name.replace(".", "_")
        down, up = _lora_pair(mod, rank, g, strength)
        sd[f"{key}.lora_down.weight"] = down
        sd[f"{key}.lora_up.weight"] = up
        sd[f"{key}.alpha"] = torch.tensor(float(alpha))
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_output_name": "demo-style",
    }
    return save_safetensors(sd, path, meta)


def write_peft_lora(pipe: Any, path: Path, seed: int, rank: int = 4, strength: float = 0.6) -> Path:
    """A LoRA in diffusers/peft key format (``unet.<module>.lora_A.weight`` / ``lora_B``), alpha = rank."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Any] = {}
    for comp, name, mod in _lora_targets(pipe, include_conv=False):
        down, up = _lora_pair(mod, rank, g, strength)
        sd[f"{comp}.{name}.lora_A.weight"] = down
        sd[f"{comp}.{name}.lora_B.weight"] = up
    return save_safetensors(sd, path, {"format": "pt"})


def write_embedding(path: Path, width: int, seed: int, vectors: int = 2, token: str = EMBEDDING_TOKEN) -> Path:
    """A textual-inversion embedding in diffusers format: ``{token: T[vectors, width]}``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    emb = torch.randn((vectors, width), generator=g) * 0.5
    return save_safetensors({token: emb}, path)
