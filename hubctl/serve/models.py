"""Request and response models of ``hubctl serve`` (pydantic), built for the configured limits.

Owns what a client may send: :func:`generate_model` makes the ``POST /v1/generate`` body model with the
server's limits (steps, size, images, prompt length) and the LoRA names of the lock, so a bad request is a 422
whose ``loc`` names the field and the OpenAPI document shows the real bounds. Nothing here names a file: a
request chooses LoRAs by locked name only and can never reach a path. No FastAPI import.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from hubctl.serve.config import Limits

__all__ = ["generate_model", "ReplayBody", "ImageOut", "GenerateOut", "ReplayOut", "RUN_ID_PATTERN"]

RUN_ID_PATTERN = r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$"
MAX_LORA_WEIGHT = 4.0


def generate_model(limits: Limits, lora_names: list[str], samplers: list[str]) -> type[BaseModel]:
    """The body model of ``POST /v1/generate`` for these limits and this lock's LoRAs."""
    names = list(lora_names)

    def check_loras(cls: Any, v: Optional[dict[str, float]]) -> Optional[dict[str, float]]:
        if v is None:
            return v
        for name, w in v.items():
            if name not in names:
                raise ValueError(f"{name!r} is not a LoRA in the lock (locked: {', '.join(names) or 'none'})")
            if not math.isfinite(w) or abs(w) > MAX_LORA_WEIGHT:
                raise ValueError(f"{name}: weight {w} is outside -{MAX_LORA_WEIGHT:g}..{MAX_LORA_WEIGHT:g}")
        return v

    sampler_type: Any = Optional[Literal[tuple(samplers)]] if samplers else Optional[str]  # type: ignore[valid-type]
    return create_model(
        "GenerateBody",
        __config__=ConfigDict(extra="forbid"),
        __validators__={"_loras": field_validator("loras")(check_loras)},
        prompt=(str, Field(min_length=1, max_length=limits.max_prompt, description="What to draw.")),
        negative=(str, Field("", max_length=limits.max_prompt, description="Negative prompt.")),
        seed=(Optional[int], Field(None, ge=0, le=2**32 - 1, description="Seed of image 0 (image i gets seed+i); random when left out.")),
        steps=(int, Field(min(20, limits.max_steps), ge=1, le=limits.max_steps, description="Denoising steps.")),
        guidance=(float, Field(7.5, ge=0.0, le=30.0, allow_inf_nan=False, description="Classifier-free guidance scale.")),
        width=(Optional[int], Field(None, ge=8, le=limits.max_size, multiple_of=8, description="Width in pixels (default: the base's).")),
        height=(Optional[int], Field(None, ge=8, le=limits.max_size, multiple_of=8, description="Height in pixels (default: the base's).")),
        sampler=(sampler_type, Field(None, description="Sampler (default: the base's scheduler).")),
        loras=(Optional[dict[str, float]], Field(None, max_length=max(1, len(names)), description=(
            "Weight of each locked LoRA by name; one left out gets 0. Default: every locked LoRA at 1.0; {} for none. "
            f"Locked: {', '.join(names) or 'none'}."))),
        images=(int, Field(1, ge=1, le=limits.max_images, description="Images for this prompt (one batch).")),
    )


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: int = Field(0, ge=0, le=9999, description="Which image of the run to compare.")


class ImageOut(BaseModel):
    index: int
    seed: int
    url: str
    image_sha256: str
    parameters: str = ""


class GenerateOut(BaseModel):
    run_id: str
    run_url: str
    images: list[ImageOut]
    batch_size: int
    model_hash: str
    lock_digest: str
    queue_seconds: float
    seconds: float


class ReplayOut(BaseModel):
    run: str
    image: int
    replay: str
    match: bool
    original_image_sha256: str
    replay_image_sha256: str
    device: str
    batch_size: int
    url: str
