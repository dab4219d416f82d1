"""Variant choice: which file set of each picked version to use, by dtype preference and a VRAM
budget estimated from the files. Pure: takes the picked versions and settings, returns variant names.

The estimate of a variant is the bytes of its weight files (safetensors/ckpt/bin/... sizes, which
are the tensors at that dtype) times ``OVERHEAD`` for activations and the CUDA context. A set fits
when the sum over its packages fits the budget. Files without a size count as 0 (nothing to go on).
"""

from __future__ import annotations

import re
from typing import Sequence

from hubctl.errors import BadInput, Refused
from hubctl.registry.manifest import Variant, Version

__all__ = ["OVERHEAD", "parse_vram", "format_bytes", "estimate_vram", "is_pickled", "variant_order", "choose_variants"]

OVERHEAD = 1.2
"""Multiplier on the weights' bytes for activations and runtime overhead."""

_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth", ".onnx", ".gguf", ".sft")

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}
_VRAM_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_vram(value: str | int | float | None, *, origin: str = "vram") -> int | None:
    """``"10GiB"``, ``"10 GB"``, ``"10G"`` (= GiB, as GPU tools print), ``"8000MiB"`` or a byte count
    -> bytes. None stays None. Raise BadInput naming ``origin`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadInput(f"{origin}: {value!r} is not a size like '10GiB'")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):  # nan or inf from TOML
            raise BadInput(f"{origin}: {value!r} is not a size like '10GiB'")
        if value <= 0:
            raise BadInput(f"{origin}: {value!r} must be positive")
        return int(value)
    m = _VRAM_RE.match(str(value))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise BadInput(f"{origin}: {value!r} is not a size like '10GiB', '12GB' or '8000MiB'")
    amount = float(m.group(1)) * _UNITS[unit]
    if amount != amount or amount == float("inf"):
        raise BadInput(f"{origin}: {value!r} is not a size like '10GiB', '12GB' or '8000MiB'")
    n = int(amount)
    if n <= 0:
        raise BadInput(f"{origin}: {value!r} must be positive")
    return n


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def estimate_vram(variant: Variant) -> int:
    """Bytes of VRAM the variant's weights need, with ``OVERHEAD``."""
    weights = sum(f.size or 0 for f in variant.files if f.path.lower().endswith(_WEIGHT_SUFFIXES))
    return int(weights * OVERHEAD)


_PICKLED_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def is_pickled(variant: Variant) -> bool:
    """True when a file of the variant is a pickle format (loaded only on explicit opt-in)."""
    return any(f.path.lower().endswith(_PICKLED_SUFFIXES) for f in variant.files)


def variant_order(release: Version, dtype: str | None, keep: str | None = None) -> list[Variant]:
    """Variants in order of preference: those of the preferred dtype (the setting decides), among them the
    kept (locked) one, then safetensors before pickled formats, then manifest order (the registry lists its
    default first). So a lock keeps its variant until the dtype setting asks for another."""
    d = dtype.lower() if dtype else None

    def key(v: Variant) -> tuple[int, int, int]:
        return (
            0 if d is None or (v.dtype or "").lower() == d or v.name == d else 1,
            0 if keep and v.name == keep else 1,
            1 if is_pickled(v) else 0,
        )

    return sorted(release.variants, key=key)  # stable: manifest order breaks ties


def choose_variants(
    picks: Sequence[tuple[str, Version]],
    *,
    dtype: str | None = None,
    vram: int | None = None,
    keep: dict[str, str] | None = None,
) -> dict[str, Variant]:
    """Choose one variant per ``(name, release)``. Start from each package's preferred variant; while the
    set's estimate exceeds ``vram``, make the move that saves the most bytes (a package switches to its
    most preferred variant that is smaller). Refuse when even the smallest set does not fit."""
    keep = keep or {}
    orders = {name: variant_order(rel, dtype, keep.get(name)) for name, rel in picks}
    chosen = {name: order[0] for name, order in orders.items()}
    if vram is None:
        return chosen
    while True:
        total = sum(estimate_vram(v) for v in chosen.values())
        if total <= vram:
            return chosen
        best: tuple[int, str, Variant] | None = None
        for name, order in orders.items():
            cur = estimate_vram(chosen[name])
            smaller = next((v for v in order if estimate_vram(v) < cur), None)
            if smaller is not None:
                saving = cur - estimate_vram(smaller)
                if best is None or saving > best[0]:
                    best = (saving, name, smaller)
        if best is None:
            parts = ", ".join(f"{n} {chosen[n].name} {format_bytes(estimate_vram(chosen[n]))}" for n in chosen)
            raise Refused(
                f"the smallest variants need about {format_bytes(total)} of VRAM ({parts}); "
                f"the budget is {format_bytes(vram)}"
            )
        chosen[best[1]] = best[2]
