"""LoRA-like files (kohya, diffusers/peft, legacy diffusers attention processors, LyCORIS LoHa/LoKr/full):
parse tensor names into adapted modules with the in/out features and kernels they expect of the base,
and read the family signature, rank and alpha. Pure; takes tensor shapes, never tensor data."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Iterable, Mapping, Sequence

from hubctl.probe.keys import is_unet_module, te_canonical
from hubctl.probe.types import Evidence, LoraModule, Signature

__all__ = ["is_lora", "parse_lora", "LoraInfo", "group_lora_keys", "route_module"]

_SUFFIXES = [
    (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_mid.weight", "mid"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
    ("_lora.down.weight", "down"), ("_lora.up.weight", "up"),
    (".hada_w1_a", "hada_w1_a"), (".hada_w1_b", "hada_w1_b"), (".hada_w2_a", "hada_w2_a"), (".hada_w2_b", "hada_w2_b"),
    (".hada_t1", "hada_t1"), (".hada_t2", "hada_t2"),
    (".lokr_w1_a", "lokr_w1_a"), (".lokr_w1_b", "lokr_w1_b"), (".lokr_w2_a", "lokr_w2_a"), (".lokr_w2_b", "lokr_w2_b"),
    (".lokr_w1", "lokr_w1"), (".lokr_w2", "lokr_w2"), (".lokr_t2", "lokr_t2"),
    (".diff_b", "diff_b"), (".diff", "diff"), (".dora_scale", "dora"), (".alpha", "alpha"),
]
_MARKERS = ("lora_down", "lora_up", "lora_A.", "lora_B.", ".hada_w1_a", ".lokr_w1", "_lora.down.", ".lora.down.",
            "lora_linear_layer.")
_KOHYA = (("lora_unet_", "unet", None), ("lora_te1_", "text_encoder", 2), ("lora_te2_", "text_encoder_2", 2),
          ("lora_te_", "text_encoder", 1))
_DECIDING = ("down", "hada_w1_b", "lokr_w1", "lokr_w1_b", "diff")
_LAYER_RE = re.compile(r"layers[._](\d+)[._]")


def is_lora(names: Sequence[str]) -> bool:
    return any(m in n for n in names for m in _MARKERS) or any(n.startswith(("lora_unet_", "lora_te")) for n in names[:50])


class LoraInfo:
    """Everything a LoRA header tells: layout, modules, rank, alpha, signature."""

    def __init__(self) -> None:
        self.layout = "unknown"
        self.modules: list[LoraModule] = []
        self.rank: int | None = None
        self.ranks: list[int] = []
        self.alpha: float | None = None
        self.signature = Signature()
        self.notes: list[str] = []


def _split(name: str) -> tuple[str, str] | None:
    for suf, part in _SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)], part
    return None


def group_lora_keys(names: "Iterable[str]") -> dict[str, dict[str, str]]:
    """Tensor names by adapted module: ``{module key: {part: tensor name}}`` (parts: down, up, mid, hada_w1_a, ...,
    lokr_t2, diff, diff_b, dora, alpha); names of no known part are left out."""
    out: dict[str, dict[str, str]] = {}
    for name in names:
        sp = _split(name)
        if sp is not None:
            out.setdefault(sp[0], {})[sp[1]] = name
    return out


def route_module(mod: str) -> tuple[str, str, bool]:
    """(component, module name, kohya underscore form?) of a module key: ``lora_unet_down_blocks_0_...`` ->
    ("unet", "down_blocks_0_...", True); ``text_encoder.text_model...`` -> ("text_encoder", "text_model...", False)."""
    comp, name, underscore, _, _ = _route(mod)
    if comp.startswith("text_encoder"):
        name = te_canonical(name, underscore)
    return comp, name, underscore


def _route(mod: str) -> tuple[str, str, bool, int | None, int]:
    """(component, module name, underscore?, exact te count, min te count)"""
    for prefix, comp, te_count in _KOHYA:
        if mod.startswith(prefix):
            return comp, mod[len(prefix):], True, (1 if te_count == 1 else None), (2 if te_count == 2 else 0)
    if mod.startswith("base_model.model."):
        mod = mod[len("base_model.model."):]
    if ".processor." in mod:  # legacy attention processors: ...attn2.processor.to_out_lora.down.weight
        mod = mod.replace(".processor.", ".")
        if mod.endswith(".to_out"):
            mod += ".0"
    head, _, tail = mod.partition(".")
    if head in ("unet", "text_encoder", "text_encoder_2", "transformer") and tail:
        comp = "unet" if head == "transformer" else head
        return comp, tail, False, None, (2 if head == "text_encoder_2" else 0)
    if mod.startswith(("text_model.", "encoder.layers.")):
        return "text_encoder", mod, False, None, 0
    return "unet", mod, False, None, 0


def _dims(shape: Sequence[int] | None, *ok: int) -> bool:
    return shape is not None and len(shape) in ok


def _module(comp: str, name: str, underscore: bool, parts: Mapping[str, Sequence[int]]) -> LoraModule | None:
    """The adapted module and what it expects of the base; None when the parts do not make a module
    (missing halves, or shapes of a rank no real file has)."""
    g = parts.get
    if comp.startswith("text_encoder"):
        name = te_canonical(name, underscore)
    if "down" in parts and "up" in parts:
        d, u = g("down"), g("up")
        if not (_dims(d, 2, 4) and _dims(u, 2, 4)):
            return None
        kernel = None
        if len(d) == 4:
            mid = g("mid")
            kernel = (mid[2], mid[3]) if _dims(mid, 4) else (d[2], d[3])
        return LoraModule(comp, name, underscore, d[1], u[0], kernel, d[0], "lora")
    if "hada_w1_a" in parts and "hada_w1_b" in parts:
        a, b = g("hada_w1_a"), g("hada_w1_b")
        if not (_dims(a, 2) and _dims(b, 2)):
            return None
        t1 = g("hada_t1")
        if t1 is not None:
            # Tucker (a conv whose kernel is not 1x1): hada_w1_a (rank, out), hada_w1_b (rank, in), hada_t1 (rank, rank, kh, kw)
            if not (_dims(t1, 4) and a[0] == b[0] == t1[0] == t1[1]):
                return None
            return LoraModule(comp, name, underscore, b[1], a[1], (t1[2], t1[3]), b[0], "loha")
        # hada_w1_a (out, rank), hada_w1_b (rank, in), in * kh * kw for a conv (flattened)
        return LoraModule(comp, name, underscore, b[1], a[0], None, b[0], "loha")
    if ("lokr_w1" in parts or "lokr_w1_a" in parts) and ("lokr_w2" in parts or "lokr_w2_a" in parts):
        w1, w1a, w1b = g("lokr_w1"), g("lokr_w1_a"), g("lokr_w1_b")
        if _dims(w1, 2):
            a_out, b_in = w1[0], w1[1]
        elif _dims(w1a, 2) and _dims(w1b, 2):
            a_out, b_in = w1a[0], w1b[1]
        else:
            return None
        w2, w2a, w2b, t2 = g("lokr_w2"), g("lokr_w2_a"), g("lokr_w2_b"), g("lokr_t2")
        kernel = None
        if _dims(w2, 2, 4):
            c_out, d_in = w2[0], w2[1]
            if len(w2) == 4:
                kernel = (w2[2], w2[3])
        elif t2 is not None:
            # Tucker: lokr_w2_a (rank, out/a), lokr_w2_b (rank, in/c), lokr_t2 (rank, rank, kh, kw)
            if not (_dims(t2, 4) and _dims(w2a, 2) and _dims(w2b, 2) and w2a[0] == w2b[0] == t2[0] == t2[1]):
                return None
            c_out, d_in, kernel = w2a[1], w2b[1], (t2[2], t2[3])
        elif _dims(w2a, 2) and _dims(w2b, 2, 4):
            # lokr_w2_a (out/a, rank), lokr_w2_b (rank, in/c) or, for a conv, (rank, in/c, kh, kw) or flattened
            c_out, d_in = w2a[0], w2b[1]
            if len(w2b) == 4:
                kernel = (w2b[2], w2b[3])
        else:
            return None
        rank = w1b[0] if _dims(w1b, 2) else (w2b[0] if _dims(w2b, 2, 4) else None)
        return LoraModule(comp, name, underscore, b_in * d_in, a_out * c_out, kernel, rank, "lokr")
    d = g("diff")
    if _dims(d, 2):
        return LoraModule(comp, name, underscore, d[1], d[0], None, None, "full")
    if _dims(d, 4):
        return LoraModule(comp, name, underscore, d[1], d[0], (d[2], d[3]), None, "full")
    return None


def parse_lora(shapes: Mapping[str, Sequence[int]], metadata: Mapping[str, str], scalars: Mapping[str, float] | None = None) -> LoraInfo:
    info = LoraInfo()
    grouped: dict[str, dict[str, Sequence[int]]] = {}
    for name, shape in shapes.items():
        sp = _split(name)
        if sp is None:
            continue
        grouped.setdefault(sp[0], {})[sp[1]] = shape
    algos: Counter[str] = Counter()
    kohya = peft_prefixed = legacy = 0
    sig = info.signature
    alphas: list[float] = []
    denoiser, unet_like, foreign = 0, 0, ""
    for mod, parts in grouped.items():
        comp, name, underscore, te_exact, te_min = _route(mod)
        if underscore:
            kohya += 1
        elif mod.startswith(("unet.", "text_encoder")):
            peft_prefixed += 1
        if ".processor." in mod or (mod + ".lora.down.weight") in shapes or (mod + ".lora_linear_layer.down.weight") in shapes:
            legacy += 1
        if "alpha" in parts and scalars and (mod + ".alpha") in scalars:
            alphas.append(scalars[mod + ".alpha"])
        m = _module(comp, name, underscore, parts)
        if m is None:
            continue
        info.modules.append(m)
        algos[m.algo] += 1
        if m.rank:
            info.ranks.append(m.rank)
        if te_exact is not None:
            sig.te_count = te_exact
        sig.te_count_min = max(sig.te_count_min, te_min)
        sep = "_" if underscore else "."
        key = next((mod + s for s, p in _SUFFIXES if p in _DECIDING and (mod + s) in shapes), mod)
        if comp == "unet":
            denoiser += 1
            if is_unet_module(name, underscore):
                unet_like += 1
            else:
                foreign = foreign or name
            if (name.endswith(f"attn2{sep}to_k") or name.endswith(f"attn2{sep}to_v")) and m.in_features and sig.cross_attention_dim is None:
                sig.cross_attention_dim = m.in_features
                sig.evidence.append(Evidence(key, tuple(shapes.get(key, ())) or None, f"cross-attention input width {m.in_features}"))
            if name.endswith(f"{sep}proj_in") and sig.linear_projection is None and m.algo == "lora":
                sig.linear_projection = m.kernel is None
                sig.evidence.append(Evidence(key, tuple(shapes.get(key, ())) or None, "proj_in is " + ("a Linear" if m.kernel is None else "a 1x1 conv")))
        else:
            idx = 1 if comp == "text_encoder_2" else 0
            if any(name.endswith(f"{sep}{p}") for p in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1")) and m.in_features:
                if idx not in sig.te_widths:
                    sig.te_widths[idx] = m.in_features
                    sig.evidence.append(Evidence(key, tuple(shapes.get(key, ())) or None, f"text encoder {idx + 1} width {m.in_features}"))
            lm = _LAYER_RE.search(name + sep)
            if lm:
                li = int(lm.group(1))
                if li > sig.te_max_layer.get(idx, -1):
                    sig.te_max_layer[idx] = li
    if denoiser and not unet_like:
        # the family is the denoiser's: a Flux or SD3 LoRA that also trained CLIP is not the family its CLIP fits
        sig.foreign_denoiser = True
        info.notes.append(f"its {denoiser} denoiser modules (e.g. {foreign}) are not UNet modules of any known family; "
                          "the text encoder part does not decide the family")
    # SDXL kohya files name text encoder 1 `lora_te1_`: two encoders, and `lora_te_` exactly one
    if sig.te_max_layer:
        for idx, li in sig.te_max_layer.items():
            sig.evidence.append(Evidence(f"text encoder {idx + 1} layers", None, f"adapts layers up to index {li}"))
    top = algos.most_common(1)[0][0] if algos else "lora"
    if top == "loha":
        info.layout = "lycoris-loha"
    elif top == "lokr":
        info.layout = "lycoris-lokr"
    elif top == "full":
        info.layout = "lycoris-full"
    elif kohya:
        info.layout = "kohya"
    elif legacy:
        info.layout = "diffusers-legacy"
    elif peft_prefixed:
        info.layout = "diffusers"
    else:
        info.layout = "peft"
    if info.ranks:
        c = Counter(info.ranks)
        info.rank = c.most_common(1)[0][0]
        if len(c) > 1:
            info.notes.append(f"ranks vary: {min(c)} to {max(c)} (most modules: {info.rank})")
    # alpha: scalar tensors, then kohya metadata, then the diffusers adapter metadata
    if alphas:
        info.alpha = Counter(alphas).most_common(1)[0][0]
    elif metadata.get("ss_network_alpha"):
        try:
            info.alpha = float(metadata["ss_network_alpha"])
        except ValueError:
            pass
    elif metadata.get("lora_adapter_metadata"):
        try:
            meta = json.loads(metadata["lora_adapter_metadata"])
            a = meta.get("lora_alpha") if isinstance(meta, dict) else None
            if isinstance(a, (int, float)):
                info.alpha = float(a)
        except (ValueError, RecursionError):
            pass
    md_dim = metadata.get("ss_network_dim")
    if md_dim and info.rank is not None and md_dim.isdigit() and int(md_dim) != info.rank:
        info.notes.append(f"metadata says rank {md_dim} (ss_network_dim) but the shapes say {info.rank}; shapes win")
    return info
