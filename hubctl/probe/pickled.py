"""Pickled formats (.ckpt, .pt, .bin, .pth): recognised by their first bytes, never unpickled unless the
caller opts in; then read only through ``torch.load(weights_only=True)`` (torch imported inside the
function). Turns a loaded state dict into the same ``{name: TensorInfo}`` the safetensors path uses."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from hubctl.errors import BadInput
from hubctl.probe.header import TensorInfo, open_regular

__all__ = ["PICKLE_SUFFIXES", "pickle_kind", "load_pickled", "flatten_state_dict", "TORCH_DTYPES"]

PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin", ".pth")
TORCH_DTYPES = {
    "float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64", "int32": "I32",
    "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}


def pickle_kind(path: str | os.PathLike[str]) -> str | None:
    """'torch-zip' (torch >= 1.6 zip archive with a data.pkl), 'pickle' (a raw pickle stream) or None."""
    try:
        with open_regular(path) as f:  # never blocks on a FIFO
            head = f.read(4)
    except (OSError, BadInput):
        return None
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:  # lists names only: no unpickling
                if any(n.endswith("data.pkl") for n in z.namelist()):
                    return "torch-zip"
        except (zipfile.BadZipFile, OSError):
            return None
        return None
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    return None


def flatten_state_dict(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Tensors of a (nested) loaded checkpoint by dotted name; A1111 embeddings and ``state_dict`` wrappers unwrapped."""
    import torch

    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict) and not prefix:
        obj = obj["state_dict"]
    out: dict[str, Any] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".") or "tensor"] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, torch.Tensor)):
                out.update(flatten_state_dict(v, f"{prefix}{k}."))
    return out


def load_pickled(path: str | os.PathLike[str]) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Read a pickled checkpoint with ``torch.load(weights_only=True)`` and return its tensor table."""
    import torch

    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=pickle_kind(p) == "torch-zip")
    except Exception as e:  # weights_only refuses anything but plain tensors and containers
        raise BadInput(f"cannot read this pickle safely (torch.load weights_only=True refused it: {str(e).splitlines()[0][:160]})", context=str(p)) from None
    tensors = flatten_state_dict(obj)
    table: dict[str, TensorInfo] = {}
    pos = 0
    for name, t in tensors.items():
        dt = TORCH_DTYPES.get(str(t.dtype).replace("torch.", ""), "F32")
        n = t.numel() * t.element_size()
        table[name] = TensorInfo(dt, tuple(t.shape), pos, pos + n)
        pos += n
    meta: dict[str, str] = {}
    if isinstance(obj, dict):
        for k in ("name", "step", "sd_checkpoint", "sd_checkpoint_name"):
            if k in obj and isinstance(obj[k], (str, int)):
                meta[k] = str(obj[k])
    return table, meta
