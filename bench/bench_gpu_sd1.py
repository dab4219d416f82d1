"""GPU benchmark: the full-size SD1-architecture pipeline through hubctl's generate code path beside plain
diffusers, on the same card, in the same process.

Random weights from the sd1 reference configs of registry/families.toml (no download), a tokenizer built
locally (hubctl.demo.models' byte-level BPE; token ids only need to be < the text encoder's vocab), saved once
as a diffusers folder in fp16. Then, alternating, per image:
  plain:  StableDiffusionPipeline.from_pretrained(folder, dtype=fp16).to(device) -> pipe(...)
  hubctl: hubctl.run.verify.artefact_from_path -> hubctl.run.pipeline.assemble -> hubctl.run.generate.generate_image
          (the functions `hubctl generate` runs after the lock check), with SDPA, and with xformers when it
          is installed and its probe passes.
Prints seconds per image for each and the xformers probe result. Needs torch, diffusers, transformers,
safetensors, numpy, pillow; not pydantic/sqlmodel (the run record is not written here).

    python bench/bench_gpu_sd1.py                      # cuda, fp16, 512x512, 30 steps, 3 timed images each
    python bench/bench_gpu_sd1.py --smoke              # CPU check of the same path: tiny config, 64x64, 1 step
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def reference(family: str = "sd1") -> dict:
    data = tomllib.loads((ROOT / "registry" / "families.toml").read_text())
    fam = next(f for f in data["families"] if f["id"] == family)
    return json.loads(json.dumps(fam["reference"]))


def tiny(ref: dict) -> dict:
    """The smoke test's scaled-down config: same block types, narrow widths."""
    ref = json.loads(json.dumps(ref))
    ref["unet"].update(block_out_channels=[32, 64, 64, 64], attention_head_dim=4, cross_attention_dim=32, layers_per_block=1,
                       norm_num_groups=32)
    ref["text_encoder"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
    ref["vae"].update(block_out_channels=[32, 32, 32, 32], layers_per_block=1)
    return ref


def build_folder(ref: dict, folder: Path, device: str, dtype) -> None:  # type: ignore[no-untyped-def]
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from hubctl.demo.models import build_tokenizer

    def cfg(name: str) -> dict:
        return {k: v for k, v in ref[name].items() if k != "_class_name"}

    tok = build_tokenizer(folder.parent / "tokenizer-src")
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**cfg("unet")).to(dtype)
        vae = AutoencoderKL(**cfg("vae")).to(dtype)
        te_cfg = cfg("text_encoder")
        text_encoder = CLIPTextModel(CLIPTextConfig(**te_cfg, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                                     pad_token_id=tok.pad_token_id)).to(dtype)
    with torch.no_grad():  # random init leaves some layers at zero (or fp16-unsafe); small non-zero values everywhere
        for m in (unet, vae, text_encoder):
            for name, p in m.named_parameters():
                if p.ndim >= 2:
                    p.normal_(0.0, 1.0 / max(int(p[0].numel()), 1) ** 0.5)
                elif "norm" in name and name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()
    sched = PNDMScheduler(**cfg("scheduler"))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    del pipe, unet, vae, text_encoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny config, 64x64, 1 step (checks the path, times nothing real)")
    ap.add_argument("--full-size", action="store_true", help="with --smoke: the real sd1 reference config (slow on CPU)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--images", type=int, default=None, help="timed images per variant")
    ap.add_argument("--no-xformers", action="store_true", help="skip xformers (its probe crashed in a separate process)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    import torch

    device = args.device or ("cpu" if args.smoke else "cuda")
    dtype_name = "fp32" if device == "cpu" else "fp16"
    dtype = torch.float32 if dtype_name == "fp32" else torch.float16
    size = args.size or (64 if args.smoke else 512)
    steps = args.steps or (1 if args.smoke else 30)
    images = args.images or (1 if args.smoke else 3)
    ref = tiny(reference()) if args.smoke and not args.full_size else reference()

    import diffusers
    from diffusers import StableDiffusionPipeline

    from hubctl.run.attention import probe_xformers
    from hubctl.run.generate import GenerateRequest, generate_image
    from hubctl.run.pipeline import AssemblyOptions, assemble
    from hubctl.run.verify import VerifiedSet, artefact_from_path

    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "") + f", {dtype_name}, {size}x{size}, {steps} steps", flush=True)
    xf_ok, xf_why = (False, "skipped: the probe process crashed") if args.no_xformers else probe_xformers(device, dtype)
    print(f"xformers probe: {'ok' if xf_ok else 'not used'}: {xf_why}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="hubctl-gpu-"))
    folder = work / "sd1-random"
    t = time.perf_counter()
    build_folder(ref, folder, device, dtype)
    print(f"built and saved the random SD1 pipeline in {time.perf_counter() - t:.1f} s", flush=True)

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    prompt = "a photo of an astronaut riding a horse on the moon"

    t = time.perf_counter()
    plain = StableDiffusionPipeline.from_pretrained(str(folder), dtype=dtype, safety_checker=None, requires_safety_checker=False,
                                                    local_files_only=True).to(device)
    plain.set_progress_bar_config(disable=True)
    print(f"plain diffusers loaded in {time.perf_counter() - t:.1f} s", flush=True)

    t = time.perf_counter()
    vset = VerifiedSet(base=artefact_from_path(folder, kind="checkpoint", name="sd1-random", family="sd1", prediction="epsilon"))
    variants = {"hubctl sdpa": assemble(vset, AssemblyOptions(device=device, dtype=dtype_name, attention="sdpa"))}
    print(f"hubctl assembled in {time.perf_counter() - t:.1f} s (incl. sha256 of every file); "
          f"attention {variants['hubctl sdpa'].attention.backend}", flush=True)
    if xf_ok:
        asm = assemble(vset, AssemblyOptions(device=device, dtype=dtype_name, attention="auto"))
        variants[f"hubctl {asm.attention.backend}"] = asm

    req = GenerateRequest(prompt=prompt, steps=steps, guidance=7.5, width=size, height=size)

    def run_plain(seed: int):  # type: ignore[no-untyped-def]
        g = torch.Generator("cpu").manual_seed(seed)
        with torch.inference_mode():
            return plain(prompt=prompt, num_inference_steps=steps, guidance_scale=7.5, width=size, height=size, generator=g).images[0]

    runners = {"plain diffusers sdpa": run_plain}
    for name, asm in variants.items():
        runners[name] = (lambda a: (lambda seed: generate_image(a, req, seed)[0]))(asm)

    for fn in runners.values():  # warm-up (kernels, cudnn autotune)
        fn(0)
    sync()
    times: dict[str, list[float]] = {k: [] for k in runners}
    hashes: dict[str, str] = {}
    import hashlib

    for i in range(images):
        for name, fn in runners.items():
            sync()
            t = time.perf_counter()
            im = fn(1 + i)
            sync()
            times[name].append(time.perf_counter() - t)
            if i == 0:
                hashes[name] = hashlib.sha256(im.tobytes()).hexdigest()[:16]
    base = statistics.median(times["plain diffusers sdpa"])
    result = {"device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu", "dtype": dtype_name, "size": size,
              "steps": steps, "xformers_probe": xf_why, "seconds_per_image": {}, "ratio_to_plain": {}, "first_image_sha256": hashes}
    print(f"\n{'variant':24} {'s/image (median)':>17} {'vs plain':>9}  all")
    for name, ts in times.items():
        m = statistics.median(ts)
        result["seconds_per_image"][name] = round(m, 4)
        result["ratio_to_plain"][name] = round(m / base, 4)
        print(f"{name:24} {m:17.3f} {m / base:9.3f}  {' '.join(f'{x:.3f}' for x in ts)}")
    same = hashes.get("hubctl sdpa") == hashes.get("plain diffusers sdpa")
    print(f"hubctl sdpa image identical to plain diffusers: {same}")
    result["hubctl_sdpa_identical_to_plain"] = same
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
