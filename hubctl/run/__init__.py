"""The verified inference run, last stage of the flow: the only part of hubctl that imports torch and
diffusers.

    verify.py     lock -> VerifiedSet (every file against its pin, the set's compatibility); no torch
    device.py     device/dtype "auto" (cuda fp16 > mps fp16 > cpu fp32)
    attention.py  xformers when installed and a tiny call works, else SDPA; reported
    pipeline.py   VerifiedSet -> ready diffusers pipeline (base, scheduler, VAE, embeddings, LoRAs, ControlNet)
    lycoris.py    LyCORIS files diffusers cannot load (LoHa, LoKr, Tucker LoCon, full): merged into the weights
    pngmeta.py    A1111 "parameters" + "hubctl" PNG chunks, pixel hashes; no torch
    generate.py   the run end to end (PNG + run record) and replay; load_pipeline for scripts
    batch.py      a set loaded once; many images in one pipeline call, one run record per batch; replay of image k
    configs.py    diffusers config folders for single-file bases, from the family's reference configs
    records.py    run records in the state database (``hubctl runs``); no torch
    paths.py      ``hubctl.paths()`` for scripts run by ``hubctl run``: the lock's verified files; no torch

Importing this package is cheap; torch/diffusers load when a function that needs them runs. Without the
``[run]`` extra, :func:`require_run_extra` says in one line what is missing and the pip command (checked
with importlib before anything is written; nothing is imported).
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_pipeline", "require_run_extra", "RUN_EXTRA"]

# import name -> distribution of the [run] extra that the inference path cannot work without
RUN_EXTRA = {"torch": "torch", "diffusers": "diffusers", "transformers": "transformers", "peft": "peft", "PIL": "pillow"}


def require_run_extra(what: str) -> None:
    """Raise MissingExtra (exit 2, also an ImportError) naming what ``what`` needs and cannot import, and the
    exact ``pip install 'hubctl[run]'``. Finds modules without importing them (fast, nothing loaded)."""
    import importlib.util

    from hubctl.errors import MissingExtra

    missing = []
    for module, dist in RUN_EXTRA.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    if missing:
        raise MissingExtra(f"{what} needs {', '.join(missing)}, from hubctl's [run] extra, which is not installed; "
                           "install it with: pip install 'hubctl[run]' (on a GPU machine, torch for your CUDA first; see README)")


def load_pipeline(lock: Any = None, device: str = "auto", dtype: str = "auto", **kwargs: Any) -> Any:
    """A ready diffusers pipeline from a verified lock; see :func:`hubctl.run.generate.load_pipeline`."""
    require_run_extra("hubctl.load_pipeline()")
    from hubctl.run.generate import load_pipeline as _load

    return _load(lock, device, dtype, **kwargs)
