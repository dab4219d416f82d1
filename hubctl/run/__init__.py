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

Importing this package is cheap; torch/diffusers load when a function that needs them runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_pipeline"]


def load_pipeline(lock: Any = None, device: str = "auto", dtype: str = "auto", **kwargs: Any) -> Any:
    """A ready diffusers pipeline from a verified lock; see :func:`hubctl.run.generate.load_pipeline`."""
    from hubctl.run.generate import load_pipeline as _load

    return _load(lock, device, dtype, **kwargs)
