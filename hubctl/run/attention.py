"""Pick the attention backend for a pipeline: xformers when it is installed AND one tiny call works on this
device and dtype (on many CUDA/torch pairs the wheel imports but its kernels do not load), else PyTorch's
scaled-dot-product attention. The choice and the reason are returned for the run record; never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AttentionChoice", "probe_xformers", "choose_attention"]


@dataclass(frozen=True)
class AttentionChoice:
    backend: str  # "xformers" | "sdpa"
    reason: str


def probe_xformers(device: str, dtype: Any) -> tuple[bool, str]:
    """(works, why): import xformers and run memory_efficient_attention once on tiny tensors."""
    if not str(device).startswith("cuda"):
        return False, f"xformers not used on {device}"
    import sys

    if "xformers" not in sys.modules:
        import importlib.util

        if importlib.util.find_spec("xformers") is None:
            return False, "xformers not installed"
    try:
        import xformers  # noqa: F401
        import xformers.ops as xops
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return False, f"xformers not importable ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
    try:
        import torch

        q = torch.randn(1, 8, 1, 40, device=device, dtype=dtype)
        out = xops.memory_efficient_attention(q, q, q)
        torch.cuda.synchronize()
        if not torch.isfinite(out).all():
            return False, "xformers probe returned non-finite values"
    except Exception as e:  # noqa: BLE001
        msg = str(e).splitlines()[0][:160] if str(e) else ""
        return False, f"xformers imports but its kernel failed ({type(e).__name__}: {msg})"
    version = getattr(__import__("xformers"), "__version__", "?")
    return True, f"xformers {version} probe ok"


def choose_attention(pipe: Any, device: str, dtype: Any, prefer: str = "auto") -> AttentionChoice:
    """Set the pipeline's attention processors; return what was chosen and why."""
    if prefer in ("auto", "xformers"):
        ok, why = probe_xformers(device, dtype)
        if ok:
            try:
                pipe.enable_xformers_memory_efficient_attention()
                return AttentionChoice("xformers", why)
            except Exception as e:  # noqa: BLE001
                why = f"xformers enable failed ({type(e).__name__}: {str(e)[:120]})"
    else:
        why = "sdpa requested"
    # diffusers already defaults to AttnProcessor2_0 (SDPA); leaving it untouched keeps the numerics of
    # plain diffusers.
    return AttentionChoice("sdpa", why)
