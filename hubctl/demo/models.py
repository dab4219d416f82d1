"""Tiny real diffusers models for the offline demo hub, built with fixed seeds.

Owns the model builders for the families of :mod:`hubctl.demo.families`: a full
StableDiffusionPipeline (UNet, VAE, CLIP text encoder, scheduler), a ControlNet made from its UNet, and the
tiny CLIP tokenizer built from the locally learnt vocabulary (no download). Every weight is redrawn from a
seeded ``torch.Generator`` on CPU, so the same seed gives the same weights on every machine.

Writing those models to files (diffusers layout, LDM single file, kohya/peft LoRA, embedding, the
sorted-metadata safetensors writer) is :mod:`hubctl.demo.writers`.

Must not: download anything, write artefact files itself, or be imported by the CLI at start-up. torch /
diffusers / transformers are imported inside the functions that need them, so ``import hubctl.demo.models``
itself stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hubctl.demo.families import FAMILIES, tokenizer_vocab_and_merges

__all__ = ["build_tokenizer", "build_pipeline", "build_controlnet"]


# --------------------------------------------------------------------------------------------- building


def _seeded_(module: Any, seed: int, std: float = 0.0) -> None:
    """Re-initialise ``module``'s parameters from a seeded CPU generator (platform-independent bytes).

    diffusers/transformers initialise with the global RNG and some layers at zero; the demo wants every
    weight non-trivial and reproducible, so each parameter is drawn again: weights ~ N(0, 1/sqrt(fan_in))
    (or ``std`` when given), norm weights 1, biases small."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if p.ndim >= 2:
                fan_in = int(p[0].numel())
                s = std or (1.0 / max(fan_in, 1) ** 0.5)
                p.copy_(torch.randn(p.shape, generator=g) * s)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def _configs(family: str) -> dict[str, dict[str, Any]]:
    ref = FAMILIES[family]["reference"]
    return {k: {kk: vv for kk, vv in v.items() if kk != "_class_name"} for k, v in ref.items()}


def build_tokenizer(folder: Path) -> Any:
    """Write the tiny CLIP tokenizer files into ``folder`` and return a CLIPTokenizer reading them."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tokenizer_vocab_and_merges()
    vocab_file = folder / "vocab.json"
    merges_file = folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=True) + "\n", "utf-8")
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), "utf-8")
    return CLIPTokenizer(
        str(vocab_file),
        str(merges_file),
        pad_token="<|endoftext|>",
        model_max_length=77,
    )


def build_pipeline(family: str, seed: int, work: Path, prediction: str | None = None) -> Any:
    """A StableDiffusionPipeline of ``family`` with weights drawn from ``seed`` (CPU, fp32, no safety checker).

    ``work`` is a scratch folder for the tokenizer files. ``prediction`` overrides the scheduler's type."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = _configs(family)
    torch.manual_seed(seed)  # the constructors draw from the global RNG; _seeded_ redraws everything anyway
    unet = UNet2DConditionModel(**cfg["unet"])
    _seeded_(unet, seed * 10 + 1)
    vae = AutoencoderKL(**cfg["vae"])
    _seeded_(vae, seed * 10 + 2)
    te_cfg = CLIPTextConfig(**cfg["text_encoder"])
    text_encoder = CLIPTextModel(te_cfg)
    _seeded_(text_encoder, seed * 10 + 3, std=0.0)
    sched_cfg = dict(cfg["scheduler"])
    if prediction:
        sched_cfg["prediction_type"] = prediction
    sched_cls = {"PNDMScheduler": PNDMScheduler, "DDIMScheduler": DDIMScheduler}[FAMILIES[family]["reference"]["scheduler"]["_class_name"]]
    scheduler = sched_cls(**sched_cfg)
    tokenizer = build_tokenizer(work / f"tokenizer-{family}-{seed}")
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_controlnet(pipe: Any, seed: int) -> Any:
    """A ControlNetModel made from the pipeline's UNet (diffusers' from_unet), its zero convs re-drawn so
    the control image visibly steers generation."""
    import torch
    from diffusers import ControlNetModel

    cn = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(16, 32))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(cn.named_parameters()):
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
                # the conditioning embedding is a chain of small convs and SiLUs: draw it with gain so that
                # the control image reaches the UNet at about the latent's scale
                gain = 1.7 if name.startswith("controlnet_cond_embedding") else 0.5
                if p.ndim >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * (gain / int(p[0].numel()) ** 0.5))
                else:
                    p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return cn
