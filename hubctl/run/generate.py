"""The verified inference run end to end: lock -> verify -> assemble -> generate -> PNG + run record,
and replay of a recorded run. The CLI (hubctl.cli.generate_cmd) and ``hubctl.load_pipeline`` call in here.

Owns the order of the steps and the provenance written with each image; verification is hubctl.run.verify,
assembly hubctl.run.pipeline, PNG chunks hubctl.run.pngmeta, the table hubctl.run.records.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.errors import BadInput, Refused
from hubctl.run.pipeline import Assembled, AssemblyOptions, assemble
from hubctl.run.verify import VerifiedSet, packages_from_dicts, verify_locked_set

if TYPE_CHECKING:
    from hubctl.lock.lockfile import Lock
    from hubctl.progress import ProgressSink

__all__ = ["GenerateRequest", "read_lock", "find_lock", "run_generate", "replay", "generate_image", "library_versions",
           "load_pipeline"]

DEFAULT_LOCK = "hubctl.lock"


@dataclass
class GenerateRequest:
    prompt: str
    negative: str = ""
    seed: int | None = None
    steps: int = 20
    guidance: float = 7.5
    width: int | None = None
    height: int | None = None
    loras: dict[str, float] | None = None
    controlnet: str | None = None
    control_image: str | None = None
    sampler: str | None = None
    out: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    fuse_loras: bool = True


# ---------------------------------------------------------------------------------------------------------
# the lock


def find_lock(path: str | Path | None) -> Path:
    """``--lock FILE`` or ``$HUBCTL_LOCK`` or ./hubctl.lock; BadInput when there is none."""
    p = Path(path) if path else Path(os.environ.get("HUBCTL_LOCK") or DEFAULT_LOCK)
    if not p.is_file():
        raise BadInput(f"{p}: no lock file (run `hubctl lock` in the project, or pass --lock FILE)")
    return p


def read_lock(path: str | Path) -> "Lock":
    """Read a lock file for a run; when its project file or script sits beside it, the lock must be fresh
    for it (the same answer as ``hubctl lock --check``; Refused before anything loads)."""
    from hubctl.lock.freshness import read_fresh_lock

    return read_fresh_lock(Path(path))


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("hubctl", "torch", "diffusers", "transformers", "peft", "safetensors", "xformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------------------------------------------------
# one image


def _control_image(path: str | None, width: int, height: int) -> tuple[Any, str]:
    if not path:
        raise BadInput("--controlnet needs --control-image PATH")
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        data = p.read_bytes()
        from io import BytesIO

        im = Image.open(BytesIO(data)).convert("RGB")
    except FileNotFoundError:
        raise BadInput(f"{p}: no such control image") from None
    except (UnidentifiedImageError, OSError) as e:
        raise BadInput(f"{p}: not an image ({e})") from None
    if im.size != (width, height):
        im = im.resize((width, height), Image.BICUBIC)
    return im, hashlib.sha256(data).hexdigest()


def _step_callback(progress: "ProgressSink | None") -> dict[str, Any]:
    """``callback_on_step_end`` for the pipeline call that advances one bar per denoising step (the bar is made
    at the first step, when the pipeline knows how many timesteps it runs); changes nothing it is handed."""
    if progress is None:
        return {}
    state: dict[str, Any] = {}

    def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if "task" not in state:
            state["task"] = progress.task("denoising", int(getattr(pipe, "num_timesteps", 0) or 0) or None)
        state["task"].advance(1)
        return callback_kwargs

    return {"callback_on_step_end": on_step_end}


def generate_image(asm: Assembled, req: GenerateRequest, seed: int, progress: "ProgressSink | None" = None) -> tuple[Any, dict[str, Any]]:
    """Run the pipeline once; return (PIL image, facts used: width, height, control image hash). ``progress``
    shows a bar of the denoising steps (hubctl.progress; the silent sink shows nothing)."""
    import torch

    pipe = asm.pipe
    vae_scale = getattr(pipe, "vae_scale_factor", 8)
    default = int(pipe.unet.config.sample_size) * vae_scale
    width, height = req.width or default, req.height or default
    if width % 8 or height % 8:
        raise BadInput(f"--width/--height must be multiples of 8 (got {width}x{height})")
    kwargs: dict[str, Any] = dict(
        prompt=req.prompt, negative_prompt=req.negative or None, num_inference_steps=req.steps,
        guidance_scale=req.guidance, width=width, height=height,
        generator=torch.Generator("cpu").manual_seed(seed),  # CPU generator: the same noise on every device
    )
    facts: dict[str, Any] = {"width": width, "height": height}
    if asm.controlnet:
        kwargs["image"], facts["control_image_sha256"] = _control_image(req.control_image, width, height)
    kwargs.update(_step_callback(progress))
    with torch.inference_mode():
        image = pipe(**kwargs).images[0]
    return image, facts


def run_generate(req: GenerateRequest, *, lock: "Lock | None" = None, lock_path: str | Path | None = None,
                 replay_of: str | None = None, progress: "ProgressSink | None" = None) -> dict[str, Any]:
    """Verify, assemble, generate, write the PNG and the run record; return the record as a dict. ``progress``
    (hubctl.progress.make_progress(..., unit="steps")) shows what is happening on a terminal."""
    from hubctl.run import records as runs
    from hubctl.run.pngmeta import a1111_parameters, pixel_sha256, write_png

    t0 = time.perf_counter()
    if lock is None:
        lp = find_lock(lock_path)
        lock = read_lock(lp)
        lock_path = lp
    vset = verify_locked_set(lock)  # refuses before anything loads
    t_verified = time.perf_counter()
    if req.controlnet and not req.control_image:
        raise BadInput("--controlnet needs --control-image PATH")
    if req.control_image and not req.controlnet:
        cns = vset.of_kind("controlnet")
        if len(cns) != 1:
            raise BadInput("--control-image needs --controlnet NAME")
        req.controlnet = cns[0].name
    # a bar (on a terminal only: no note lines, so piped output stays as it was) while the pipeline loads
    loading = progress.task(f"loading {vset.base.label}", 1) if progress is not None else None
    asm = assemble(vset, AssemblyOptions(device=req.device, dtype=req.dtype, loras=req.loras, controlnet=req.controlnet,
                                         fuse_loras=req.fuse_loras, sampler=req.sampler, attention=req.attention))
    if loading is not None:
        loading.done()
    t_loaded = time.perf_counter()
    seed = req.seed if req.seed is not None else secrets.randbelow(2**32)
    image, facts = generate_image(asm, req, seed, progress)
    t_generated = time.perf_counter()
    run_id = runs.new_run_id()
    out = Path(req.out) if req.out else Path("hubctl-out") / f"{run_id}.png"
    if out.is_dir() or str(req.out or "").endswith(os.sep):
        out = out / f"{run_id}.png"
    versions = library_versions()
    params = {k: v for k, v in asdict(req).items() if k not in ("out",)}
    import torch

    # ``loras`` in the order they were loaded and fused (the user's): stored as it is, never key-sorted,
    # because fusing in another order gives other bits and a replay follows this order
    params.update(seed=seed, width=facts["width"], height=facts["height"], loras=dict(asm.loras),
                  cpu_threads=torch.get_num_threads() if asm.device == "cpu" else None,
                  controlnet=req.controlnet, control_image_sha256=facts.get("control_image_sha256"))
    if req.control_image:
        params["control_image"] = str(Path(req.control_image).resolve())
    parameters = a1111_parameters(
        prompt=req.prompt, negative=req.negative, steps=req.steps, sampler=asm.sampler, cfg=req.guidance, seed=seed,
        width=facts["width"], height=facts["height"], model_hash=vset.base.model_hash, model=vset.base.label,
        lora_hashes={n: h for n, h in asm.lora_hashes.items()}, ti_hashes=asm.embedding_hashes,
        extra={"ControlNet": asm.controlnet} if asm.controlnet else None, version=f"hubctl {versions.get('hubctl', '')}".strip(),
    )
    provenance = {
        "run_id": run_id, "lock_digest": vset.lock_digest, "files": vset.file_hashes(), "versions": versions,
        "device": asm.device, "dtype": asm.dtype, "attention": asm.attention.backend, "attention_reason": asm.attention.reason,
        "prediction": asm.prediction, "loras": asm.loras, "fused": asm.fused, "embeddings": asm.embeddings,
        "controlnet": asm.controlnet, "vae": asm.vae, "seed": seed, "replay_of": replay_of,
        "warnings": list(vset.warnings), "cpu_threads": params["cpu_threads"],
    }
    pix = pixel_sha256(image)
    png_sha = write_png(out, image, parameters, provenance)
    rec = runs.RunRecord(
        id=run_id, created=runs.now_created(), prompt=req.prompt, negative=req.negative,
        seed=seed, steps=req.steps, guidance=req.guidance, width=facts["width"], height=facts["height"], sampler=asm.sampler,
        base=vset.base.label, model_hash=vset.base.model_hash, lock_digest=vset.lock_digest,
        lock_path=str(Path(lock_path).resolve()) if lock_path else "", device=asm.device, dtype=asm.dtype,
        attention=asm.attention.backend, out_path=str(out.resolve()), image_sha256=pix, png_sha256=png_sha,
        replay_of=replay_of, seconds=round(time.perf_counter() - t0, 3), params_json=json.dumps(dict(sorted(params.items()))),
        packages_json=json.dumps(vset.packages_json, sort_keys=True), versions_json=json.dumps(versions, sort_keys=True),
    )
    runs.add_run(rec)
    d = runs.record_to_dict(rec)
    d["attention_reason"] = asm.attention.reason
    d["warnings"] = list(vset.warnings)
    d["timings"] = {"verify": round(t_verified - t0, 3), "load": round(t_loaded - t_verified, 3),
                    "generate": round(t_generated - t_loaded, 3), "write": round(time.perf_counter() - t_generated, 3)}
    d["parameters"] = parameters
    return d


def _pixel_difference(a_path: str, b_path: str) -> dict[str, Any] | None:
    try:
        from PIL import Image, ImageChops

        with Image.open(a_path) as a, Image.open(b_path) as b:
            a, b = a.convert("RGB"), b.convert("RGB")
            if a.size != b.size:
                return {"size": [list(a.size), list(b.size)]}
            diff = ImageChops.difference(a, b)
            hist = diff.convert("L").histogram()
            differing = sum(hist[1:])
            return {"max_abs": max(hi for _, hi in diff.getextrema()), "differing_pixels": differing,
                    "pixels": a.size[0] * a.size[1]}
    except (OSError, ValueError):
        return None


def replay(run_id: str, *, out: str | None = None, device: str | None = None, dtype: str | None = None,
           progress: "ProgressSink | None" = None) -> dict[str, Any]:
    """Run a recorded run again from its record (no lock file needed) and compare the pixel hashes.
    On CPU (with the recorded thread count, since CPU kernels' results depend on it) a mismatch is a
    refusal (exit 1, in the CLI); on a GPU the difference is reported."""
    from hubctl.run import records as runs
    from hubctl.lock.lockfile import Lock

    rec = runs.get_run(run_id)
    params = json.loads(rec.params_json)
    lock = Lock(packages=packages_from_dicts(json.loads(rec.packages_json)))
    req = GenerateRequest(
        prompt=params["prompt"], negative=params.get("negative", ""), seed=params["seed"], steps=params["steps"],
        guidance=params["guidance"], width=params["width"], height=params["height"], loras=params.get("loras"),
        controlnet=params.get("controlnet"), control_image=params.get("control_image"), sampler=params.get("sampler"),
        out=out, device=device or rec.device, dtype=dtype or rec.dtype, attention=params.get("attention", "auto"),
        fuse_loras=params.get("fuse_loras", True),
    )
    if req.control_image and params.get("control_image_sha256"):
        p = Path(req.control_image)
        if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != params["control_image_sha256"]:
            raise Refused(f"{p}: the control image of run {rec.id} is missing or changed")
    import torch

    threads = params.get("cpu_threads")
    before = torch.get_num_threads()
    if threads and (req.device == "cpu"):
        torch.set_num_threads(int(threads))  # CPU results depend on the thread count: use the recorded one
    try:
        new = run_generate(req, lock=lock, lock_path=rec.lock_path or None, replay_of=rec.id, progress=progress)
    finally:
        torch.set_num_threads(before)
    match = new["image_sha256"] == rec.image_sha256
    result = {"run": rec.id, "replay": new["id"], "match": match, "original_image_sha256": rec.image_sha256,
              "replay_image_sha256": new["image_sha256"], "device": new["device"], "out_path": new["out_path"]}
    if not match:
        result["difference"] = _pixel_difference(rec.out_path, new["out_path"]) if Path(rec.out_path).is_file() else None
    return result


# ---------------------------------------------------------------------------------------------------------
# for scripts


def load_pipeline(lock: "Lock | str | os.PathLike[str] | None" = None, device: str = "auto", dtype: str = "auto", *,
                  loras: dict[str, float] | None = None, controlnet: str | None = None, fuse_loras: bool = False) -> Any:
    """A ready diffusers pipeline from a verified lock (``hubctl.lock`` in the working folder by default, or
    ``$HUBCTL_LOCK`` inside ``hubctl run``). Every file is checked against the lock and the set for
    compatibility before anything loads; a failure raises hubctl.errors.Refused. LoRAs stay separate
    (``pipe.set_adapters`` works) unless ``fuse_loras``. The pipeline carries ``pipe.hubctl`` with the
    device, dtype, attention backend and the lock digest."""
    if lock is None or isinstance(lock, (str, os.PathLike)):
        lock = read_lock(find_lock(lock))
    vset: VerifiedSet = verify_locked_set(lock)
    asm = assemble(vset, AssemblyOptions(device=device, dtype=dtype, loras=loras, controlnet=controlnet, fuse_loras=fuse_loras))
    info = {"device": asm.device, "dtype": asm.dtype, "attention": asm.attention.backend, "attention_reason": asm.attention.reason,
            "lock_digest": vset.lock_digest, "loras": asm.loras, "embeddings": asm.embeddings, "controlnet": asm.controlnet}
    try:
        asm.pipe.hubctl = info
    except AttributeError:  # pragma: no cover - a pipeline that refuses new attributes
        pass
    return asm.pipe

