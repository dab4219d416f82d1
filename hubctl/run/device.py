"""Choose the torch device and dtype for a run: "auto" means cuda fp16, else mps fp16, else cpu fp32.

Owns only that choice and its validation; never loads a model.
"""

from __future__ import annotations

from typing import Any

from hubctl.errors import BadInput

__all__ = ["pick_device", "pick_dtype", "DTYPES"]

DTYPES = ("auto", "fp16", "bf16", "fp32")


def pick_device(device: str = "auto") -> str:
    """"auto" -> the best available device; an explicit device must exist (BadInput otherwise)."""
    import torch

    device = (device or "auto").lower()
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device.startswith("cuda") and not cuda:
        raise BadInput(f"--device {device}: no CUDA device is available (torch {torch.__version__})")
    if device == "mps" and not mps:
        raise BadInput("--device mps: the MPS backend is not available")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise BadInput(f"--device {device}: expected auto, cpu, cuda or mps")
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    """"auto" -> fp16 on cuda/mps, fp32 on cpu; explicit names map to torch dtypes."""
    import torch

    dtype = (dtype or "auto").lower()
    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    table = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp32": torch.float32, "float32": torch.float32}
    if dtype not in table:
        raise BadInput(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    return table[dtype]


def dtype_name(dtype: Any) -> str:
    import torch

    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}.get(dtype, str(dtype))
