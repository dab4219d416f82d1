"""Assemble a diffusers pipeline from a :class:`~hubctl.run.verify.VerifiedSet` (files already proven).

Owns the one assembly path that ``hubctl generate``, ``hubctl.load_pipeline()`` and the GPU benchmark share:
base (diffusers folder or single file; scheduler set to the base's prediction type), optional separate VAE,
textual-inversion embeddings with their tokens, LoRAs (kohya or diffusers/peft) with per-adapter weights,
fused when asked, in the user's order (LyCORIS files diffusers cannot load: merged by hubctl.run.lycoris), ControlNet, device/dtype and the attention backend. It never verifies files (that is
hubctl.run.verify) and never writes outputs (hubctl.run.generate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubctl.errors import BadInput, Refused
from hubctl.run.attention import AttentionChoice, choose_attention
from hubctl.run.device import dtype_name, pick_device, pick_dtype
from hubctl.run.verify import VerifiedArtefact, VerifiedSet

__all__ = ["AssemblyOptions", "Assembled", "assemble", "SAMPLERS", "sampler_name"]

# CLI name -> (diffusers scheduler class, extra config, A1111 sampler name)
SAMPLERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}, "DPM++ 2M"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun"),
}
_A1111_BY_CLASS = {cls: a1111 for cls, _, a1111 in SAMPLERS.values()}


def sampler_name(scheduler: Any) -> str:
    """The A1111 name of a diffusers scheduler instance (its class name when unknown)."""
    return _A1111_BY_CLASS.get(type(scheduler).__name__, type(scheduler).__name__)


@dataclass
class AssemblyOptions:
    device: str = "auto"
    dtype: str = "auto"
    loras: dict[str, float] | None = None  # None: every locked LoRA at weight 1.0; {} none
    controlnet: str | None = None  # name of a locked ControlNet to attach
    fuse_loras: bool = False  # fuse into the weights (faster; adapters can no longer be re-weighted)
    sampler: str | None = None  # a SAMPLERS key; None keeps the base's scheduler
    attention: str = "auto"  # auto | sdpa | xformers


@dataclass
class Assembled:
    pipe: Any
    device: str
    dtype: str
    attention: AttentionChoice
    prediction: str
    sampler: str
    loras: dict[str, float] = field(default_factory=dict)  # package name -> weight
    lora_hashes: dict[str, str] = field(default_factory=dict)
    embeddings: dict[str, list[str]] = field(default_factory=dict)  # package -> tokens
    embedding_hashes: dict[str, str] = field(default_factory=dict)
    controlnet: str | None = None
    vae: str | None = None
    fused: bool = False


def _adapter_name(a: VerifiedArtefact) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", a.name) or "adapter"


def _dtype_kw(torch_dtype: Any) -> dict[str, Any]:
    """``dtype=`` on diffusers that renamed ``torch_dtype`` (0.36+), ``torch_dtype=`` before."""
    try:
        from diffusers.utils import deprecation_utils

        if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE"):
            return {"dtype": torch_dtype}
    except ImportError:  # pragma: no cover
        pass
    return {"torch_dtype": torch_dtype}


def _prediction_of(base: VerifiedArtefact) -> str | None:
    if base.prediction in ("epsilon", "v_prediction"):
        return base.prediction
    if base.prediction in ("v", "v-prediction"):
        return "v_prediction"
    return None


def _load_base(base: VerifiedArtefact, torch_dtype: Any) -> Any:
    from diffusers import StableDiffusionPipeline

    common = dict(**_dtype_kw(torch_dtype), safety_checker=None, requires_safety_checker=False)
    try:
        if base.layout == "diffusers":
            if not (base.root / "model_index.json").exists():
                raise Refused(f"{base.label}: no model_index.json in its diffusers folder")
            return StableDiffusionPipeline.from_pretrained(str(base.root), local_files_only=True, use_safetensors=True, **common)
        config = _single_file_config(base)
        return StableDiffusionPipeline.from_single_file(str(base.weights), config=str(config), local_files_only=True, **common)
    except Refused:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise Refused(f"{base.label}: diffusers could not load it ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def _single_file_config(base: VerifiedArtefact) -> Path:
    """The diffusers config folder for a single-file base: config files locked beside the weights (a
    ``config/`` folder or a model_index.json in the package), else the family's reference configs with a
    tokenizer locked beside it."""
    for cand in (base.root / "config", base.root):
        if (cand / "model_index.json").exists():
            return cand
    from hubctl.run.configs import family_config_dir

    return family_config_dir(base)


def _apply_scheduler(pipe: Any, prediction: str | None, sampler: str | None) -> None:
    import diffusers

    cfg = dict(pipe.scheduler.config)
    cls = type(pipe.scheduler)
    if sampler:
        if sampler not in SAMPLERS:
            raise BadInput(f"--sampler {sampler}: expected one of {', '.join(SAMPLERS)}")
        cls_name, extra, _ = SAMPLERS[sampler]
        cls = getattr(diffusers, cls_name)
        cfg.update(extra)
    changed = cls is not type(pipe.scheduler)
    if prediction and cfg.get("prediction_type") != prediction:
        cfg["prediction_type"] = prediction
        changed = True
    if changed:
        pipe.scheduler = cls.from_config(cfg)


def _load_embeddings(pipe: Any, embeddings: list[VerifiedArtefact], asm: Assembled) -> None:
    from safetensors.torch import load_file

    for e in embeddings:
        if e.weights is None:
            raise Refused(f"{e.label}: an embedding must be one .safetensors file")
        state = load_file(str(e.weights))
        tokens = list(e.tokens)
        # the diffusers format names each token's vectors by the token; the others hold one token's vectors
        named = [k for k in state if k not in ("emb_params", "clip_l", "clip_g") and not k.startswith("string_to_param")]
        try:
            if not tokens:
                tokens = named if named and len(named) == len(state) else [f"<{e.name}>"]
            if len(tokens) == 1:
                pipe.load_textual_inversion(state, token=tokens[0])
            elif set(tokens) == set(named) and len(named) == len(state):  # bound by name, never by position
                for tok in tokens:
                    pipe.load_textual_inversion({tok: state[tok]}, token=tok)
            else:
                raise Refused(f"{e.label}: {e.weights.name} holds {', '.join(state)}; the lock names the tokens "
                              f"{', '.join(tokens)}, which the file does not name")
        except ValueError as err:
            raise Refused(f"{e.label}: {str(err).splitlines()[0][:200]}") from None
        asm.embeddings[e.label] = tokens
        asm.embedding_hashes[e.name] = e.model_hash


def _load_loras(pipe: Any, loras: list[tuple[VerifiedArtefact, float]], fuse: bool, asm: Assembled) -> None:
    """Load (and, when ``fuse``, fuse) the LoRAs in the given order, which is the user's: float additions in
    another order give other bits. LyCORIS files diffusers cannot load are merged by hubctl.run.lycoris."""
    if not loras:
        return
    from hubctl.probe.header import read_header
    from hubctl.run.lycoris import merge_lycoris, needs_merge

    names, weights = [], []
    for a, w in loras:
        if a.weights is None:
            raise Refused(f"{a.label}: a LoRA must be one .safetensors file")
        if needs_merge(read_header(a.weights).tensors):
            if not fuse:
                raise Refused(f"{a.label}: a LyCORIS file (LoHa, LoKr, Tucker LoCon or full) cannot stay a separate diffusers "
                              "adapter; load it fused (fuse_loras=True)")
            merge_lycoris(pipe, a.weights, float(w), a.label)
            asm.loras[a.name] = float(w)
            asm.lora_hashes[a.name] = a.model_hash
            asm.fused = True
            continue
        name = _adapter_name(a)
        try:
            pipe.load_lora_weights(str(a.weights), adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as e:
            raise Refused(f"{a.label}: diffusers could not apply the LoRA ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        names.append(name)
        weights.append(float(w))
        asm.loras[a.name] = float(w)
        asm.lora_hashes[a.name] = a.model_hash
    if not names:
        return
    pipe.set_adapters(names, adapter_weights=weights)
    if fuse:
        components = [c for c in ("unet", "text_encoder") if getattr(pipe, c, None) is not None]
        pipe.fuse_lora(components=components, adapter_names=names, lora_scale=1.0)
        asm.fused = True


def _select_loras(vset: VerifiedSet, wanted: dict[str, float] | None) -> list[tuple[VerifiedArtefact, float]]:
    all_loras = vset.of_kind("lora")
    if wanted is None:
        return [(a, 1.0) for a in all_loras]
    out = []
    for name, w in wanted.items():
        out.append((vset.find(name, "lora"), w))
    return out


def _quiet_libraries() -> None:
    """No progress bars or advice from diffusers/transformers on hubctl's output (errors still show)."""
    try:
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def assemble(vset: VerifiedSet, opts: AssemblyOptions | None = None) -> Assembled:
    """Build the ready pipeline for a verified set. Raises Refused/BadInput with one clear line."""
    _quiet_libraries()

    opts = opts or AssemblyOptions()
    device = pick_device(opts.device)
    torch_dtype = pick_dtype(opts.dtype, device)
    loras = _select_loras(vset, opts.loras)
    cn_art = vset.find(opts.controlnet, "controlnet") if opts.controlnet else None

    pipe = _load_base(vset.base, torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    prediction = _prediction_of(vset.base) or pipe.scheduler.config.get("prediction_type", "epsilon")
    _apply_scheduler(pipe, prediction, opts.sampler)

    asm = Assembled(pipe=pipe, device=device, dtype=dtype_name(torch_dtype), attention=AttentionChoice("sdpa", ""),
                    prediction=prediction, sampler=sampler_name(pipe.scheduler))
    vaes = vset.of_kind("vae")
    if vaes:
        from diffusers import AutoencoderKL

        v = vaes[0]
        try:
            vae = (AutoencoderKL.from_pretrained(str(v.root), **_dtype_kw(torch_dtype), local_files_only=True, use_safetensors=True)
                   if v.layout == "diffusers" else
                   AutoencoderKL.from_single_file(str(v.weights), config=str(vset.base.root / "vae") if (vset.base.root / "vae").is_dir() else None,
                                                  **_dtype_kw(torch_dtype), local_files_only=True))
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise Refused(f"{v.label}: diffusers could not load the VAE ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        pipe.vae = vae
        asm.vae = v.label

    pipe.to(device)
    _load_embeddings(pipe, vset.of_kind("embedding"), asm)
    _load_loras(pipe, loras, opts.fuse_loras, asm)

    if cn_art is not None:
        from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

        try:
            if cn_art.layout == "diffusers":
                cn = ControlNetModel.from_pretrained(str(cn_art.root), **_dtype_kw(torch_dtype), local_files_only=True,
                                                     use_safetensors=True)
            else:
                cn = ControlNetModel.from_single_file(str(cn_art.weights), **_dtype_kw(torch_dtype), local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise Refused(f"{cn_art.label}: diffusers could not load the ControlNet ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        cn.to(device)
        pipe = StableDiffusionControlNetPipeline.from_pipe(pipe, controlnet=cn)
        pipe.set_progress_bar_config(disable=True)
        asm.pipe = pipe
        asm.controlnet = cn_art.label

    asm.attention = choose_attention(pipe, device, torch_dtype, opts.attention)
    return asm

