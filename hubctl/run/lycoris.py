"""LyCORIS files diffusers cannot load (LoHa ``hada_*``, LoKr ``lokr_*``, Tucker LoCon ``lora_mid``, full
``diff``): each module's weight delta, merged into the pipeline's module weights as the file is applied (fused,
as A1111 and ComfyUI apply them). Plain LoRAs (``lora_down``/``lora_up``, peft) are not handled here: diffusers
loads them as separate adapters (hubctl.run.pipeline).

Delta of one module, scaled by ``alpha / rank`` (1 when the file has no alpha, or when a LoKr has no
low-rank factor) and by the LoRA's weight:

    LoCon   up @ down; with ``lora_mid`` (Tucker): einsum(mid, up, down)
    LoHa    (w1_a @ w1_b) * (w2_a @ w2_b); with ``hada_t1``/``hada_t2`` (Tucker): each factor rebuilt from t, a, b
    LoKr    kron(w1 or w1_a @ w1_b, w2 or w2_a @ w2_b or, with ``lokr_t2``, its Tucker rebuild)
    full    diff (and diff_b for the bias)

Refuses (one line naming the file) what it cannot apply exactly: DoRA scales, parts of no known algorithm,
a module the base does not have or whose shape differs. Imports torch inside its functions; reads the
file with safetensors (never a pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from hubctl.errors import Refused

__all__ = ["needs_merge", "merge_lycoris"]

# parts diffusers' LoRA loaders do not understand: a file with any of them is merged here
_MERGE_PARTS = {"mid", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "lokr_w1", "lokr_w1_a",
                "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", "diff", "diff_b"}
_COMPONENTS = {"unet": ("unet", "transformer"), "text_encoder": ("text_encoder",), "text_encoder_2": ("text_encoder_2",)}


def needs_merge(names: Iterable[str]) -> bool:
    """True when a LoRA-like file has modules only this module can apply (LoHa, LoKr, Tucker LoCon, full)."""
    from hubctl.probe.lora import group_lora_keys

    return any(_MERGE_PARTS & set(parts) for parts in group_lora_keys(names).values())


def _tucker(t: Any, wa: Any, wb: Any) -> Any:
    """(out, in, kh, kw) from a core t (rank, rank, kh, kw), wa (rank, out) and wb (rank, in)."""
    import torch

    return torch.einsum("i j k l, j r, i p -> p r k l", t, wb, wa)


def _delta(parts: dict[str, Any], shape: tuple[int, ...]) -> tuple[Any, float | None]:
    """(delta of the weight, reshaped to ``shape``; the rank that divides alpha, or None for no scaling)."""
    import torch

    g = parts.get
    numel = 1
    for d in shape:
        numel *= d
    if "down" in parts and "up" in parts:
        down, up = g("down"), g("up")
        rank = down.shape[0]
        if "mid" in parts:
            d = torch.einsum("a b k l, o a, b i -> o i k l", g("mid"), up.flatten(1), down.flatten(1))
        else:
            d = up.flatten(1) @ down.flatten(1)
        return d.reshape(shape), rank
    if "hada_w1_a" in parts:
        if "hada_t1" in parts:
            m1 = _tucker(g("hada_t1"), g("hada_w1_a"), g("hada_w1_b"))
            m2 = _tucker(g("hada_t2"), g("hada_w2_a"), g("hada_w2_b"))
        else:
            m1 = g("hada_w1_a") @ g("hada_w1_b")
            m2 = g("hada_w2_a") @ g("hada_w2_b")
        return (m1 * m2).reshape(shape), g("hada_w1_b").shape[0]
    if "lokr_w1" in parts or "lokr_w1_a" in parts:
        rank = None
        if "lokr_w1" in parts:
            w1 = g("lokr_w1")
        else:
            w1, rank = g("lokr_w1_a") @ g("lokr_w1_b"), g("lokr_w1_b").shape[0]
        if "lokr_w2" in parts:
            w2 = g("lokr_w2")
        elif "lokr_t2" in parts:
            w2, rank = _tucker(g("lokr_t2"), g("lokr_w2_a"), g("lokr_w2_b")), g("lokr_w2_b").shape[0]
        else:
            w2b = g("lokr_w2_b")
            w2 = (g("lokr_w2_a") @ w2b.flatten(1)).reshape(-1, *w2b.shape[1:])
            rank = w2b.shape[0]
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        d = torch.kron(w1, w2)
        if d.numel() != numel:
            raise ValueError(f"LoKr factors give {tuple(d.shape)}")
        return d.reshape(shape), rank
    if "diff" in parts:
        return g("diff").reshape(shape), None
    raise ValueError("no weight parts")


def _lookup(tables: dict[int, tuple[dict[str, Any], dict[str, Any]]], component: Any, name: str, underscore: bool,
            is_unet: bool) -> Any:
    """The module of ``component`` (a torch module) a LoRA module name adapts, or None."""
    if id(component) not in tables:
        mods = dict(component.named_modules())
        tables[id(component)] = (mods, {k.replace(".", "_"): v for k, v in mods.items() if k})
    mods, under = tables[id(component)]
    table, sep = (under, "_") if underscore else (mods, ".")
    hit = table.get(name)
    if hit is None and name.startswith(f"text_model{sep}"):  # transformers 5's CLIPTextModel has no text_model level
        hit = table.get(name[len("text_model") + 1:])
    if hit is None and is_unet and underscore:
        from hubctl.probe.keys import sgm_to_diffusers_underscore

        alt = sgm_to_diffusers_underscore(name)
        hit = under.get(alt) if alt else None
    return hit


def merge_lycoris(pipe: Any, path: Path, weight: float, label: str) -> int:
    """Merge every module of the LyCORIS file ``path`` into ``pipe`` at ``weight``; return how many modules.
    Nothing is changed when a module cannot be applied (every delta is computed before the first is added)."""
    import torch
    from safetensors.torch import load_file

    from hubctl.probe.lora import group_lora_keys, route_module

    state = load_file(str(path))
    groups = group_lora_keys(state)
    used = {n for parts in groups.values() for n in parts.values()}
    stray = [n for n in state if n not in used]
    if stray:
        raise Refused(f"{label}: {path.name} holds tensors of no LoRA/LyCORIS algorithm hubctl can apply ({len(stray)}, e.g. {stray[0]})")
    updates: list[tuple[Any, Any, Any]] = []  # (module, weight delta, bias delta)
    tables: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for key, names in groups.items():
        parts = {p: state[n].to(torch.float32) for p, n in names.items()}
        if "dora" in parts:
            raise Refused(f"{label}: {path.name} has DoRA modules (dora_scale, e.g. {names['dora']}); hubctl cannot apply them exactly")
        comp_name, mod_name, underscore = route_module(key)
        comp = next((getattr(pipe, c, None) for c in _COMPONENTS.get(comp_name, ()) if getattr(pipe, c, None) is not None), None)
        module = _lookup(tables, comp, mod_name, underscore, comp_name == "unet") if comp is not None else None
        target = getattr(module, "base_layer", module)
        w = getattr(target, "weight", None)
        if not isinstance(w, torch.Tensor):
            raise Refused(f"{label}: {path.name}: module {key} is not in the base ({comp_name}: {mod_name})")
        try:
            delta, rank = _delta(parts, tuple(w.shape))
        except (RuntimeError, ValueError, TypeError) as e:
            raise Refused(f"{label}: {path.name}: module {key} does not fit {comp_name}: {mod_name} {tuple(w.shape)} "
                          f"({str(e).splitlines()[0][:120]})") from None
        alpha = parts.get("alpha")
        scale = float(alpha.reshape(-1)[0]) / rank if alpha is not None and rank else 1.0
        bias = parts.get("diff_b")
        if bias is not None and (getattr(target, "bias", None) is None or bias.numel() != target.bias.numel()):
            raise Refused(f"{label}: {path.name}: module {key} changes a bias {comp_name}: {mod_name} does not have")
        updates.append((target, delta * (scale * weight), bias * weight if bias is not None else None))
    with torch.no_grad():
        for target, delta, bias in updates:
            target.weight.add_(delta.to(device=target.weight.device, dtype=target.weight.dtype))
            if bias is not None:
                target.bias.add_(bias.reshape(target.bias.shape).to(device=target.bias.device, dtype=target.bias.dtype))
    return len(updates)
