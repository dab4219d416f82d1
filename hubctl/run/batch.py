"""Batches: many images from one pipeline call on a set loaded once; one run record for the batch.

Owns loading a verified set once for many batches (:func:`load_set`: LoRAs kept as separate adapters so each
batch sets its own weights; the scheduler built fresh for each batch from the base's or a named sampler's
config), running one batch (:func:`generate_batch`: per-image prompt, negative prompt and seed, each image's
noise from its own CPU torch generator, shared size, steps, guidance, sampler and LoRA weights), writing every
image as a PNG with its own A1111 parameters and hubctl provenance, the batch's run record (image 0 in the
record's columns, every image in ``params["images"]``), and replaying any image k of a recorded batch
(:func:`replay_image`, :func:`replay_on`).

A replay runs the whole recorded batch again in one call: batched CPU kernels round differently from a lone
image's (a batched image differs from a lone ``generate`` of its seed by at most a unit or two of 255 in a few
pixels), so only the same batch gives the same bytes.

Must not parse user input formats (a prompts file, an HTTP body): callers hand it values. Torch and diffusers
load only inside the functions that run the pipeline.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from hubctl.errors import BadInput, Refused
from hubctl.run.pipeline import Assembled, AssemblyOptions, _adapter_name, assemble, sampler_name, SAMPLERS
from hubctl.run.verify import VerifiedSet, packages_from_dicts, verify_locked_set

if TYPE_CHECKING:
    from hubctl.lock.lockfile import Lock
    from hubctl.progress import ProgressSink
    from hubctl.run.records import RunRecord

__all__ = ["BatchItem", "BatchSettings", "LoadedSet", "load_set", "generate_batch", "is_batch", "replay_image",
           "replay_on", "recorded_batch"]

SEED_SPACE = 2**32


@dataclass(frozen=True)
class BatchItem:
    """One image of a batch: what may differ between the images of one pipeline call."""

    prompt: str
    negative: str = ""
    seed: int = 0


@dataclass(frozen=True)
class BatchSettings:
    """What every image of one pipeline call shares. ``loras`` maps a locked LoRA to its weight (None: every
    loaded LoRA at 1.0; a LoRA left out of the map gets 0). :meth:`LoadedSet.resolve` fills the defaults; two
    requests whose resolved settings are equal can share a batch."""

    steps: int = 20
    guidance: float = 7.5
    width: int | None = None
    height: int | None = None
    sampler: str | None = None  # a SAMPLERS key; None: the base's scheduler
    loras: tuple[tuple[str, float], ...] | None = None


@dataclass
class LoadedSet:
    """A verified set assembled once, ready for many batches (one at a time: :attr:`busy` is held while a
    batch runs)."""

    vset: VerifiedSet
    asm: Assembled
    lock_path: str = ""
    adapters: dict[str, str] = field(default_factory=dict)  # LoRA package -> adapter name, in load order
    scheduler_class: Any = None
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # verify, load (seconds)
    busy: threading.Lock = field(default_factory=threading.Lock)

    @property
    def default_size(self) -> tuple[int, int]:
        pipe = self.asm.pipe
        side = int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
        return side, side

    def resolve(self, s: BatchSettings) -> BatchSettings:
        """The settings with defaults filled in: size from the base, LoRA weights for every loaded adapter
        (in load order). BadInput for a size that is not a multiple of 8, a LoRA that is not loaded or an
        unknown sampler."""
        dw, dh = self.default_size
        width, height = s.width or dw, s.height or dh
        if width % 8 or height % 8:
            raise BadInput(f"width and height must be multiples of 8 (got {width}x{height})")
        if s.sampler is not None and s.sampler not in SAMPLERS:
            raise BadInput(f"sampler {s.sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if s.loras is None:
            loras = tuple((name, 1.0) for name in self.adapters)
        else:
            wanted = dict(s.loras)
            unknown = [n for n in wanted if n not in self.adapters]
            if unknown:
                have = ", ".join(self.adapters) or "none"
                raise BadInput(f"{unknown[0]!r} is not a LoRA in the lock (locked: {have})")
            loras = tuple((name, float(wanted.get(name, 0.0))) for name in self.adapters)
        return BatchSettings(steps=int(s.steps), guidance=float(s.guidance), width=width, height=height, sampler=s.sampler,
                             loras=loras)


def load_set(lock: "Lock | None" = None, *, vset: VerifiedSet | None = None, lock_path: str | Path | None = None,
             device: str = "auto", dtype: str = "auto", attention: str = "auto",
             loras: dict[str, float] | None = None) -> LoadedSet:
    """Verify ``lock`` (or take the already verified ``vset``) and assemble it once for many batches. LoRAs
    stay separate adapters (``loras``: which to load, in order; None: every locked LoRA)."""
    t0 = time.perf_counter()
    if vset is None:
        if lock is None:
            raise BadInput("load_set needs a lock or a verified set")
        vset = verify_locked_set(lock)
    t1 = time.perf_counter()
    asm = assemble(vset, AssemblyOptions(device=device, dtype=dtype, loras=loras, fuse_loras=False, attention=attention))
    adapters = {name: _adapter_name(vset.find(name, "lora")) for name in asm.loras}
    sched = asm.pipe.scheduler
    return LoadedSet(vset=vset, asm=asm, lock_path=str(Path(lock_path).resolve()) if lock_path else "", adapters=adapters,
                     scheduler_class=type(sched), scheduler_config=dict(sched.config),
                     timings={"verify": round(t1 - t0, 3), "load": round(time.perf_counter() - t1, 3)})


def _prepare(loaded: LoadedSet, s: BatchSettings) -> str:
    """Put the batch's scheduler (fresh, so no state carries over from the last batch) and LoRA weights on the
    pipeline; return the A1111 sampler name."""
    import diffusers

    pipe = loaded.asm.pipe
    cls, cfg = loaded.scheduler_class, dict(loaded.scheduler_config)
    if s.sampler:
        cls_name, extra, _ = SAMPLERS[s.sampler]
        cls = getattr(diffusers, cls_name)
        cfg.update(extra)
    pipe.scheduler = cls.from_config(cfg)
    if loaded.adapters:
        weights = dict(s.loras or ())
        pipe.set_adapters(list(loaded.adapters.values()), adapter_weights=[float(weights.get(n, 0.0)) for n in loaded.adapters])
    return sampler_name(pipe.scheduler)


def generate_batch(loaded: LoadedSet, items: Sequence[BatchItem], settings: BatchSettings, *, out_dir: str | Path,
                   replay_of: str | None = None) -> dict[str, Any]:
    """Generate every item in ONE pipeline call; write ``out_dir/RUN_ID-K.png`` for each image k (its own
    A1111 "parameters" and hubctl chunks) and one run record for the batch. Returns the record as a dict
    with ``images`` (one entry per image: prompt, negative, seed, out_path, image_sha256, png_sha256) and
    ``timings``."""
    import torch

    from hubctl.run import records as runs
    from hubctl.run.generate import library_versions
    from hubctl.run.pngmeta import a1111_parameters, pixel_sha256, write_png

    if not items:
        raise BadInput("a batch needs at least one image")
    if loaded.asm.controlnet:
        raise BadInput("batches do not take a ControlNet conditioning image")
    s = loaded.resolve(settings)
    vset, asm = loaded.vset, loaded.asm
    seeds = [int(it.seed) % SEED_SPACE for it in items]
    with loaded.busy:
        t0 = time.perf_counter()
        sampler = _prepare(loaded, s)
        negatives = [it.negative for it in items]
        kwargs: dict[str, Any] = dict(
            prompt=[it.prompt for it in items], negative_prompt=negatives if any(negatives) else None,
            num_inference_steps=s.steps, guidance_scale=s.guidance, width=s.width, height=s.height,
            generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],  # per image, as a lone generate
        )
        with torch.inference_mode():
            images = asm.pipe(**kwargs).images
        cpu_threads = torch.get_num_threads() if asm.device == "cpu" else None
    t_generated = time.perf_counter()

    run_id = runs.new_run_id()
    out_dir = Path(out_dir)
    versions = library_versions()
    loras = dict(s.loras or ())
    active = {n: w for n, w in loras.items() if w != 0.0}
    lora_hashes = {n: asm.lora_hashes[n] for n in active}
    version = f"hubctl {versions.get('hubctl', '')}".strip()
    per_image: list[dict[str, Any]] = []
    parameters: list[str] = []
    for k, (it, seed, image) in enumerate(zip(items, seeds, images)):
        text = a1111_parameters(
            prompt=it.prompt, negative=it.negative, steps=s.steps, sampler=sampler, cfg=s.guidance, seed=seed,
            width=s.width, height=s.height, model_hash=vset.base.model_hash, model=vset.base.label,  # type: ignore[arg-type]
            lora_hashes=lora_hashes, ti_hashes=asm.embedding_hashes, version=version,
        )
        provenance = {
            "run_id": run_id, "lock_digest": vset.lock_digest, "files": vset.file_hashes(), "versions": versions,
            "device": asm.device, "dtype": asm.dtype, "attention": asm.attention.backend,
            "attention_reason": asm.attention.reason, "prediction": asm.prediction, "loras": active, "fused": False,
            "embeddings": asm.embeddings, "controlnet": None, "vae": asm.vae, "seed": seed, "replay_of": replay_of,
            "warnings": list(vset.warnings), "cpu_threads": cpu_threads, "batch": {"size": len(items), "index": k},
        }
        out = out_dir / f"{run_id}-{k}.png"
        png_sha = write_png(out, image, text, provenance)
        per_image.append({"prompt": it.prompt, "negative": it.negative, "seed": seed, "out_path": str(out.resolve()),
                          "image_sha256": pixel_sha256(image), "png_sha256": png_sha})
        parameters.append(text)
    timings = {"generate": round(t_generated - t0, 3), "write": round(time.perf_counter() - t_generated, 3)}
    first = per_image[0]
    params = {  # the keys of a single-image run (see hubctl.run.generate), plus the batch's images
        "prompt": first["prompt"], "negative": first["negative"], "seed": first["seed"], "steps": s.steps,
        "guidance": s.guidance, "width": s.width, "height": s.height, "loras": loras, "controlnet": None,
        "control_image": None, "control_image_sha256": None, "sampler": s.sampler, "device": asm.device,
        "dtype": asm.dtype, "attention": asm.attention.backend, "fuse_loras": False, "cpu_threads": cpu_threads,
        "lora_hashes": lora_hashes, "embedding_hashes": dict(asm.embedding_hashes), "timings": timings,
        "images": [{k: v for k, v in im.items()} for im in per_image],
    }
    rec = runs.RunRecord(
        id=run_id, created=runs.now_created(), prompt=first["prompt"],
        negative=first["negative"], seed=first["seed"], steps=s.steps, guidance=s.guidance, width=s.width,  # type: ignore[arg-type]
        height=s.height, sampler=sampler, base=vset.base.label, model_hash=vset.base.model_hash,  # type: ignore[arg-type]
        lock_digest=vset.lock_digest, lock_path=loaded.lock_path, device=asm.device, dtype=asm.dtype,
        attention=asm.attention.backend, out_path=first["out_path"], image_sha256=first["image_sha256"],
        png_sha256=first["png_sha256"], replay_of=replay_of, seconds=round(time.perf_counter() - t0, 3),
        params_json=json.dumps(params),  # insertion order kept: LoRAs load in this order on replay
        packages_json=json.dumps(vset.packages_json, sort_keys=True), versions_json=json.dumps(versions, sort_keys=True),
    )
    runs.add_run(rec)
    d = runs.record_to_dict(rec)
    d["images"] = per_image
    d["parameters"] = parameters
    d["timings"] = timings
    d["warnings"] = list(vset.warnings)
    return d


# ---------------------------------------------------------------------------------------------------------
# replay


def is_batch(rec: "RunRecord") -> bool:
    """Whether a run record was written by :func:`generate_batch` (its images are in ``params["images"]``)."""
    return "images" in json.loads(rec.params_json or "{}")


def recorded_batch(rec: "RunRecord") -> tuple[list[BatchItem], BatchSettings, dict[str, Any]]:
    """The items and settings a recorded run (a batch or a single ``generate``) was made with, and its params."""
    params = json.loads(rec.params_json or "{}")
    if params.get("controlnet"):
        raise Refused(f"run {rec.id} used a ControlNet: replay it with `hubctl generate --replay {rec.id}`")
    images = params.get("images") or [{"prompt": params.get("prompt", rec.prompt), "negative": params.get("negative", rec.negative),
                                       "seed": params.get("seed", rec.seed)}]
    items = [BatchItem(prompt=im["prompt"], negative=im.get("negative", ""), seed=int(im["seed"])) for im in images]
    loras = params.get("loras") or {}
    settings = BatchSettings(steps=int(params["steps"]), guidance=float(params["guidance"]), width=int(params["width"]),
                             height=int(params["height"]), sampler=params.get("sampler"),
                             loras=tuple((n, float(w)) for n, w in loras.items()))
    return items, settings, params


def _check_index(rec: "RunRecord", image: int, n: int) -> None:
    if not 0 <= image < n:
        raise BadInput(f"run {rec.id} has {n} image{'s' if n != 1 else ''}: --image {image} is not one of 0..{n - 1}")


def _result(rec: "RunRecord", image: int, original: str, new: dict[str, Any], out_path: str) -> dict[str, Any]:
    from hubctl.run.generate import _pixel_difference

    replayed = new["images"][image]
    match = replayed["image_sha256"] == original
    res = {"run": rec.id, "image": image, "replay": new["id"], "match": match, "original_image_sha256": original,
           "replay_image_sha256": replayed["image_sha256"], "device": new["device"], "out_path": replayed["out_path"],
           "batch_size": len(new["images"])}
    if not match:
        res["difference"] = _pixel_difference(out_path, replayed["out_path"]) if Path(out_path).is_file() else None
    return res


def replay_on(loaded: LoadedSet, run_id: str, image: int = 0, *, out_dir: str | Path) -> dict[str, Any]:
    """Replay image ``image`` of a recorded run on an already loaded set (``hubctl serve``): the whole recorded
    batch runs again in one call and image k's pixel hash is compared. Refused when the run used another lock,
    a ControlNet, or LoRAs fused into the weights (those replay with ``hubctl generate --replay``)."""
    from hubctl.run import records as runs

    rec = runs.get_run(run_id)
    items, settings, params = recorded_batch(rec)
    _check_index(rec, image, len(items))
    if rec.lock_digest != loaded.vset.lock_digest:
        raise Refused(f"run {rec.id} was made from another lock ({rec.lock_digest[:12]}): replay it with `hubctl generate --replay {rec.id}`")
    if params.get("fuse_loras") and any(w for _, w in settings.loras or ()):
        raise Refused(f"run {rec.id} fused its LoRAs into the weights: replay it with `hubctl generate --replay {rec.id}`")
    original = (params.get("images") or [{"image_sha256": rec.image_sha256, "out_path": rec.out_path}])[image]
    threads = params.get("cpu_threads")
    import torch

    before = torch.get_num_threads()
    if threads and loaded.asm.device == "cpu":
        torch.set_num_threads(int(threads))  # CPU results depend on the thread count: use the recorded one
    try:
        new = generate_batch(loaded, items, settings, out_dir=out_dir, replay_of=rec.id)
    finally:
        torch.set_num_threads(before)
    return _result(rec, image, original["image_sha256"], new, original["out_path"])


def replay_image(run_id: str, image: int = 0, *, out: str | None = None, device: str | None = None,
                 dtype: str | None = None, progress: "ProgressSink | None" = None) -> dict[str, Any]:
    """Replay image ``image`` of any recorded run from its record alone (no lock file needed). A batch runs
    again whole, as recorded, in one call (``out``: the folder for its PNGs); a single-image run goes through
    :func:`hubctl.run.generate.replay` (with ``progress``'s step bar). On CPU the recorded thread count is used."""
    from hubctl.lock.lockfile import Lock
    from hubctl.run import records as runs
    from hubctl.run.generate import replay

    rec = runs.get_run(run_id)
    if not is_batch(rec):
        _check_index(rec, image, 1)
        res = replay(rec.id, out=out, device=device, dtype=dtype, progress=progress)
        return {**res, "image": 0, "batch_size": 1}
    items, settings, params = recorded_batch(rec)
    _check_index(rec, image, len(items))
    if out and Path(out).suffix.lower() == ".png":
        raise BadInput(f"--out {out}: run {rec.id} is a batch of {len(items)}; its replay writes into a folder (give one)")
    lock = Lock(packages=packages_from_dicts(json.loads(rec.packages_json)))
    import torch

    before = torch.get_num_threads()
    dev = device or rec.device
    if params.get("cpu_threads") and dev == "cpu":
        torch.set_num_threads(int(params["cpu_threads"]))
    try:
        loaded = load_set(lock, lock_path=rec.lock_path or None, device=dev, dtype=dtype or rec.dtype,
                          attention=params.get("attention", "auto"), loras=dict(settings.loras or ()))
        new = generate_batch(loaded, items, settings, out_dir=out or "hubctl-out", replay_of=rec.id)
    finally:
        torch.set_num_threads(before)
    original = params["images"][image]
    return _result(rec, image, original["image_sha256"], new, original["out_path"])
