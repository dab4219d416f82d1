"""``hubctl convert``: write a safetensors copy of a pickled checkpoint (.ckpt .pt .bin .pth). The only
place besides the inference path that unpickles, and only because the user asked: through
``torch.load(weights_only=True)`` (no arbitrary objects), torch imported inside the function. The copy is
written to a temporary file and renamed into place; an existing file is never overwritten."""

from __future__ import annotations

import os
from pathlib import Path

from hubctl.errors import BadInput

__all__ = ["convert_to_safetensors"]


def convert_to_safetensors(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None) -> Path:
    """Convert ``src`` to ``dst`` (default: same name, ``.safetensors``). Returns the written path."""
    from hubctl.probe.header import open_regular
    from hubctl.probe.pickled import flatten_state_dict, pickle_kind

    s = Path(src)
    open_regular(s).close()  # missing, a folder, a FIFO or a device: one line naming it
    kind = pickle_kind(s)
    if kind is None:
        raise BadInput("not a pickled PyTorch checkpoint (nothing to convert)", context=str(s))
    d = Path(dst) if dst is not None else s.with_suffix(".safetensors")
    if d.exists():
        raise BadInput("already exists; choose another --out or remove it", context=str(d))
    import torch
    from safetensors.torch import save_file

    try:
        obj = torch.load(s, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BadInput(f"cannot read this pickle safely (torch.load weights_only=True refused it: {str(e).splitlines()[0][:160]})", context=str(s)) from None
    tensors = flatten_state_dict(obj)
    if not tensors:
        raise BadInput("the pickle holds no tensors", context=str(s))
    meta = {"format": "pt", "hubctl.converted_from": s.name}
    if isinstance(obj, dict) and isinstance(obj.get("string_to_param"), dict):  # A1111 embedding -> emb_params
        params = [v for k, v in tensors.items() if k.startswith("string_to_param.")]
        tensors = {"emb_params": params[0]}
        if isinstance(obj.get("name"), str):
            meta["name"] = obj["name"]
    seen: set[int] = set()
    out = {}
    for k, t in tensors.items():
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:  # safetensors refuses shared storage: give each its own copy
            t = t.clone()
        seen.add(ptr)
        out[k] = t
    tmp = d.with_name(f".{d.name}.{os.getpid()}.tmp")
    try:
        save_file(out, str(tmp), metadata=meta)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if d.exists():
            raise BadInput("already exists; choose another --out or remove it", context=str(d))
        os.replace(tmp, d)
    finally:
        if tmp.exists():
            tmp.unlink()
    return d
