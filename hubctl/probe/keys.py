"""Key and module names: turn the tensor names of any layout into diffusers module names, and a header
into a module shape map ``{component: {module: (in, out) or (in, out, kh, kw)}}`` (the same form as the
shipped shape tables in registry/shapes/). Pure string work; knows nothing about families.

Layouts handled: diffusers (``down_blocks.0.attentions.0...``), original LDM/SGM single files
(``model.diffusion_model.input_blocks.1.1...``), OpenCLIP text encoders (``cond_stage_model.model.transformer
.resblocks.N...``, fused ``attn.in_proj_weight``) and the underscore module names of kohya LoRAs.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

__all__ = [
    "ModuleShape",
    "ModuleMap",
    "ldm_unet_module",
    "module_shapes",
    "kohya_lookup",
    "sgm_to_diffusers_underscore",
    "te_canonical",
    "is_unet_module",
]

def te_canonical(name: str, underscore: bool = False) -> str:
    """Text encoder names with the ``text_model.`` prefix real checkpoints carry (transformers 5 writes
    CLIPTextModel without it); ``underscore`` for kohya module names."""
    if underscore:
        return "text_model_" + name if name.startswith(("encoder_", "embeddings_", "final_layer_norm")) else name
    return "text_model." + name if name.startswith(("encoder.", "embeddings.", "final_layer_norm")) else name

ModuleShape = tuple[int, ...]  # (in, out) for Linear, (in, out, kh, kw) for Conv2d
ModuleMap = dict[str, dict[str, ModuleShape]]

_RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
           "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
_TOP = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
        "label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2",
        "out.0": "conv_norm_out", "out.2": "conv_out", "input_blocks.0.0": "conv_in"}


def _resnet_rest(rest: str) -> str:
    for old, new in _RESNET.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def ldm_unet_module(name: str, layers_per_block: int = 2) -> str | None:
    """The diffusers name of an LDM UNet module/tensor path (without ``model.diffusion_model.``); None if unknown."""
    for old, new in _TOP.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    parts = name.split(".")
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    group, i, j, rest = parts[0], int(parts[1]), parts[2], ".".join(parts[3:])
    per = layers_per_block + 1
    if group == "input_blocks" and i > 0:
        b, l = divmod(i - 1, per)
        if l == layers_per_block:
            return f"down_blocks.{b}.downsamplers.0.conv" + rest[2:] if rest.startswith("op") else None
        if j == "0":
            return f"down_blocks.{b}.resnets.{l}." + _resnet_rest(rest)
        if j == "1":
            return f"down_blocks.{b}.attentions.{l}." + rest
        return None
    if group == "middle_block":
        k = int(parts[1])
        tail = ".".join(parts[2:])
        if k == 0:
            return "mid_block.resnets.0." + _resnet_rest(tail)
        if k == 1:
            return "mid_block.attentions.0." + tail
        if k == 2:
            return "mid_block.resnets.1." + _resnet_rest(tail)
        return None
    if group == "output_blocks":
        b, l = divmod(i, per)
        if j == "0":
            return f"up_blocks.{b}.resnets.{l}." + _resnet_rest(rest)
        if rest == "conv" or rest.startswith("conv."):
            return f"up_blocks.{b}.upsamplers.0." + rest
        if j == "1":
            return f"up_blocks.{b}.attentions.{l}." + rest
        return None
    return None


_SGM_RE = re.compile(r"^(input_blocks|output_blocks)_(\d+)_(\d+)_(.*)$|^middle_block_(\d+)_(.*)$")
_RESNET_U = {k.replace(".", "_"): v for k, v in _RESNET.items()}


def sgm_to_diffusers_underscore(name: str, layers_per_block: int = 2) -> str | None:
    """A kohya SGM-style module name (``input_blocks_4_1_transformer_blocks_0_attn2_to_k``) in diffusers
    underscore form (``down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k``)."""
    m = _SGM_RE.match(name)
    if not m:
        for old, new in _TOP.items():
            u = old.replace(".", "_")
            if name == u:
                return new.replace(".", "_")
        return None
    if m.group(1):
        group, i, j, rest = m.group(1), m.group(2), m.group(3), m.group(4)
        # the rest of a resnet module names its layer with underscores: in_layers_2, out_layers_3, ...
        dotted = f"{group}.{i}.{j}.{_resnet_u_to_dot(rest)}"
    else:
        dotted = f"middle_block.{m.group(5)}.{_resnet_u_to_dot(m.group(6))}"
    conv = ldm_unet_module(dotted, layers_per_block)
    return conv.replace(".", "_") if conv else None


def _resnet_u_to_dot(rest: str) -> str:
    for u in _RESNET_U:
        if rest == u:
            return u.rsplit("_", 1)[0] + "." + u.rsplit("_", 1)[1] if u[-1].isdigit() else u
    if rest == "op":
        return "op"
    return rest


def _openclip(rest: str, shape: Sequence[int], out: dict[str, ModuleShape]) -> None:
    m = re.match(r"^transformer\.resblocks\.(\d+)\.(.*)$", rest)
    if not m:
        return
    n, tail = m.group(1), m.group(2)
    base = f"text_model.encoder.layers.{n}."
    if tail == "attn.in_proj_weight" and len(shape) == 2 and shape[0] % 3 == 0:
        d = shape[0] // 3
        for p in ("q_proj", "k_proj", "v_proj"):
            out[base + "self_attn." + p] = (shape[1], d)
    elif tail == "attn.out_proj.weight" and len(shape) == 2:
        out[base + "self_attn.out_proj"] = (shape[1], shape[0])
    elif tail == "mlp.c_fc.weight" and len(shape) == 2:
        out[base + "mlp.fc1"] = (shape[1], shape[0])
    elif tail == "mlp.c_proj.weight" and len(shape) == 2:
        out[base + "mlp.fc2"] = (shape[1], shape[0])


def _weight_shape(shape: Sequence[int]) -> ModuleShape | None:
    if len(shape) == 2:
        return (shape[1], shape[0])
    if len(shape) == 4:
        return (shape[1], shape[0], shape[2], shape[3])
    return None


# LDM single-file prefixes -> (component, kind of naming)
_LDM_PREFIXES: list[tuple[str, str, str]] = [
    ("model.diffusion_model.", "unet", "ldm"),
    ("cond_stage_model.transformer.text_model.", "text_encoder", "hf"),
    ("cond_stage_model.transformer.", "text_encoder", "hf-old"),
    ("cond_stage_model.model.", "text_encoder", "openclip"),
    ("conditioner.embedders.0.transformer.text_model.", "text_encoder", "hf"),
    ("conditioner.embedders.1.model.", "text_encoder_2", "openclip"),
    ("control_model.", "controlnet", "ldm"),
]


def module_shapes(shapes: Mapping[str, Sequence[int]], *, component: str | None = None) -> ModuleMap:
    """Module shape map in diffusers naming from tensor shapes of any checkpoint layout.

    ``component`` names the diffusers component when ``shapes`` is one component file (``unet``,
    ``text_encoder``, ``controlnet``); otherwise keys are routed by their LDM prefix or a
    ``component.`` prefix (a diffusers folder flattened as ``unet.conv_in.weight``)."""
    out: ModuleMap = {}
    for name, shape in shapes.items():
        comp, rest, naming = component, name, "diffusers"
        if comp is None:
            for prefix, c, nm in _LDM_PREFIXES:
                if name.startswith(prefix):
                    comp, rest, naming = c, name[len(prefix):], nm
                    break
            else:
                head, _, tail = name.partition(".")
                if head in ("unet", "text_encoder", "text_encoder_2", "controlnet", "vae") and tail:
                    comp, rest = head, tail
                else:
                    continue
        elif comp == "controlnet" and name.startswith("control_model."):
            rest, naming = name[len("control_model."):], "ldm"
        elif comp == "controlnet" and (name.startswith("input_blocks.") or name.startswith("middle_block.")):
            naming = "ldm"
        target = out.setdefault(comp, {})
        if naming == "openclip":
            _openclip(rest, shape, target)
            continue
        if not rest.endswith(".weight"):
            continue
        mod = rest[: -len(".weight")]
        if naming == "ldm":
            conv = ldm_unet_module(mod)
            if conv is None:
                m = re.match(r"^zero_convs\.(\d+)\.0$", mod)
                conv = f"controlnet_down_blocks.{m.group(1)}" if m else ("controlnet_mid_block" if mod == "middle_block_out.0" else None)
            if conv is None:
                continue
            mod = conv
        elif naming == "hf":
            mod = "text_model." + mod
        elif comp.startswith("text_encoder"):
            mod = te_canonical(mod)
        elif naming == "hf-old":
            mod = mod if mod.startswith("text_model.") else "text_model." + mod
        ws = _weight_shape(shape)
        if ws is not None:
            target[mod] = ws
    return {k: v for k, v in out.items() if v}


_UNET_HEADS = ("down_blocks", "mid_block", "up_blocks", "conv_in", "conv_out", "conv_norm_out", "time_embedding",
               "add_embedding")
_LDM_UNET_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def is_unet_module(name: str, underscore: bool = False) -> bool:
    """Whether a LoRA's denoiser module name is a UNet2DConditionModel module: diffusers naming
    (``down_blocks.0.attentions.0...``), LDM (``input_blocks.1.1...``) or their kohya underscore forms (SGM
    included). Flux's ``double_blocks_0_img_attn_qkv`` or SD3's ``transformer_blocks.0.attn.to_q`` are not."""
    if underscore:
        return name.startswith(tuple(h + "_" for h in _UNET_HEADS)) or name in _UNET_HEADS or sgm_to_diffusers_underscore(name) is not None
    for prefix in _LDM_UNET_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name.split(".", 1)[0] in _UNET_HEADS or ldm_unet_module(name) is not None


def kohya_lookup(modules: Mapping[str, ModuleShape]) -> dict[str, str]:
    """underscore name -> dotted diffusers module name, for matching kohya LoRA modules."""
    return {m.replace(".", "_"): m for m in modules}
