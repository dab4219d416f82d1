"""Compatibility of a set of artefacts: a base and its adapters. Two levels, both reported:

* declared: families and ``requires`` from manifests (``Declared`` values), and what file metadata claims;
* structural: every adapter key maps to a module of this base and its shapes fit (LoRA in/out features and
  conv kernels, embedding width against the text encoder(s), ControlNet against the UNet), compared with
  the base's own header or, when the base is not on disk, the family's shape table (:mod:`hubctl.compat.shapes`).

``check_set`` is pure: Probe values in, a :class:`Verdict` with plain-language reasons out. The I/O edge
(probing paths, URLs and package names) is :mod:`hubctl.compat.gather`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hubctl.probe.keys import ModuleMap, kohya_lookup, sgm_to_diffusers_underscore
from hubctl.probe.types import LoraModule, Probe

if TYPE_CHECKING:
    from hubctl.registry.families import FamilyTable

__all__ = ["Problem", "Verdict", "Declared", "check_set", "base_modules_for", "default_label"]

_ADAPTER_KINDS = ("lora", "embedding", "controlnet", "vae")


@dataclass(frozen=True)
class Problem:
    artefact: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"artefact": self.artefact, "reason": self.reason}


@dataclass(frozen=True)
class Declared:
    """What a manifest declares about one artefact."""

    name: str
    version: str
    kind: str
    family: str
    requires: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    prediction: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Verdict:
    compatible: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[dict[str, Any]] = field(default_factory=list)  # per adapter: levels and counts

    def to_json(self) -> dict[str, Any]:
        return {"compatible": self.compatible, "problems": [p.to_json() for p in self.problems],
                "warnings": list(self.warnings), "checked": list(self.checked)}

    def summary_lines(self) -> list[str]:
        out = []
        for c in self.checked:
            lv = ", ".join(f"{k}: {v}" for k, v in c.get("levels", {}).items())
            out.append(f"{c['artefact']} ({c.get('kind')}, {c.get('family') or 'unknown family'}): {lv}")
        return out


# --------------------------------------------------------------------------------------------- wording


def fam_name(fid: str | None) -> str:
    if not fid:
        return "an unknown family"
    return fid.upper() if re.fullmatch(r"[a-z]{2,4}\d*", fid) else fid


def _article(word: str) -> str:
    """'a' or 'an' for the word that follows (initialisms by their letter: an SD1, a LoRA, an embedding)."""
    w = word.strip()
    if len(w) > 1 and w[0].isupper() and (w[1].isupper() or w[1].isdigit()):
        return "an" if w[0] in "AEFHILMNORSX" else "a"
    return "an" if w[:1].lower() in ("a", "e", "i", "o", "u") else "a"


_KIND_WORD = {"lora": "LoRA", "embedding": "embedding", "controlnet": "ControlNet", "vae": "VAE", "checkpoint": "checkpoint"}


def _widths(p: Probe, families: "FamilyTable") -> dict[str, Any]:
    sig = dict(p.signature)
    fam = families.get(p.family) if p.family else None
    if fam:
        sig.setdefault("cross_attention_dim", fam.cross_attention_dim)
        sig.setdefault("text_encoder_widths", list(fam.text_encoder_widths))
    return sig


def _width_phrase(p: Probe, families: "FamilyTable", what: str) -> str:
    w = _widths(p, families)
    if what == "te":
        vals = w.get("embedding_widths") or w.get("text_encoder_widths")
        return f"text encoder {' + '.join(map(str, vals))}" if vals else "unknown width"
    v = w.get("cross_attention_dim")
    return f"cross-attention {v}" if v else "unknown width"


def _short_width(p: Probe, families: "FamilyTable", what: str) -> str:
    w = _widths(p, families)
    if what == "te":
        vals = w.get("text_encoder_widths")
        return " + ".join(map(str, vals)) if vals else "?"
    return str(w.get("cross_attention_dim") or "?")


# --------------------------------------------------------------------------------------------- structural


def base_modules_for(base: Probe, tables: Mapping[str, ModuleMap] | None = None) -> tuple[ModuleMap, str]:
    """The module shape map to check adapters against: the base's own header, else its family's shape table."""
    if base.modules:
        return {k: dict(v) for k, v in base.modules.items()}, "header"
    if base.family:
        if tables is not None and base.family in tables:
            return tables[base.family], "shape table"
        from hubctl.compat.shapes import shape_table

        t = shape_table(base.family)
        if t is not None:
            return t, "shape table"
    return {}, "none"


def _lookup(m: LoraModule, comp: Mapping[str, tuple[int, ...]], under: dict[str, str]) -> str | None:
    if not m.underscore:
        return m.name if m.name in comp else None
    if m.name in under:
        return under[m.name]
    if m.component == "unet":
        alt = sgm_to_diffusers_underscore(m.name)
        if alt and alt in under:
            return under[alt]
    return None


def _fits(m: LoraModule, base: tuple[int, ...]) -> str | None:
    """None when the adapted module fits the base module, else what differs."""
    b_in, b_out = base[0], base[1]
    b_kernel = tuple(base[2:4]) if len(base) == 4 else None
    if m.algo in ("loha", "lokr") and m.kernel is None and b_kernel is not None:
        ok_in = m.in_features in (b_in, b_in * b_kernel[0] * b_kernel[1])  # flattened conv weights
        if ok_in and m.out_features == b_out:
            return None
    if (m.kernel is None) != (b_kernel is None):
        what = "a Linear" if m.kernel is None else f"a {m.kernel[0]}x{m.kernel[1]} conv"
        have = "a Linear" if b_kernel is None else f"a {b_kernel[0]}x{b_kernel[1]} conv"
        return f"expects {what}, the base has {have}"
    if m.in_features != b_in or m.out_features != b_out:
        return f"expects {m.in_features} -> {m.out_features}, the base has {b_in} -> {b_out}"
    if m.kernel and b_kernel and tuple(m.kernel) != b_kernel:
        return f"expects a {m.kernel[0]}x{m.kernel[1]} conv, the base has a {b_kernel[0]}x{b_kernel[1]} conv"
    return None


@dataclass
class _LoraResult:
    total: int = 0
    mismatch: int = 0
    absent: int = 0
    unchecked: int = 0
    first_mismatch: str = ""
    first_absent: str = ""
    unchecked_components: set[str] = field(default_factory=set)
    denoiser: int = 0  # the LoRA's denoiser (UNet/transformer) modules checked against the base's denoiser
    denoiser_found: int = 0
    first_denoiser_absent: str = ""


def _check_lora(adapter: Probe, mods: ModuleMap) -> _LoraResult:
    r = _LoraResult()
    unders = {c: kohya_lookup(v) for c, v in mods.items()}
    for m in adapter.lora_modules:
        r.total += 1
        comp = mods.get(m.component)
        if comp is None:
            r.unchecked += 1
            r.unchecked_components.add(m.component)
            continue
        hit = _lookup(m, comp, unders[m.component])
        if m.component == "unet":
            r.denoiser += 1
            r.denoiser_found += hit is not None
        if hit is None:
            r.absent += 1
            r.first_absent = r.first_absent or f"{m.component}: {m.name}"
            if m.component == "unet":
                r.first_denoiser_absent = r.first_denoiser_absent or m.name
            continue
        why = _fits(m, comp[hit])
        if why:
            r.mismatch += 1
            # the cross-attention projections show the family difference best: prefer them as the example
            if not r.first_mismatch or (hit.endswith(("attn2.to_k", "attn2.to_v")) and "attn2" not in r.first_mismatch):
                r.first_mismatch = f"{m.component}: {hit} {why}"
    return r


def _te_widths(mods: ModuleMap) -> list[int]:
    out = []
    for comp in ("text_encoder", "text_encoder_2"):
        q = mods.get(comp, {}).get("text_model.encoder.layers.0.self_attn.q_proj")
        if q:
            out.append(q[0])
    return out


_GENERIC = ("pytorch_lora_weights.safetensors", "diffusion_pytorch_model.safetensors", "model.safetensors",
            "learned_embeds.safetensors", "adapter_model.safetensors")


def default_label(path: str) -> str:
    """How an artefact is named in messages: its file name, with the folder for generic diffusers names."""
    p = Path(path.split("?", 1)[0])
    if p.name in _GENERIC and p.parent.name:
        return f"{p.parent.name}/{p.name}"
    return p.name or path


@dataclass
class _Ctx:
    """What every adapter is checked against: the base, its family, its module shapes; and the findings."""

    families: "FamilyTable"
    b_label: str
    b_decl: Declared | None
    b_fam: str | None
    b_words: Probe
    mods: ModuleMap
    mods_source: str
    b_pred: str | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def refuse(self, who: str, reason: str) -> None:
        self.problems.append(Problem(who, reason))

    def is_a(self, fam: str | None, kw: str) -> str:
        """'an SD1 LoRA' / 'a LoRA' (family unknown)."""
        words = f"{fam_name(fam)} {kw}" if fam else kw
        return f"{_article(words)} {words}"


def _declared_level(c: _Ctx, a_label: str, a_decl: Declared | None) -> str | None:
    """Families and ``requires`` from manifests; None when neither side is a package."""
    if not (a_decl or c.b_decl):
        return None
    if not a_decl:
        return "not declared (not a package)"
    ok = True
    b_decl_fam = c.b_decl.family if c.b_decl else c.b_fam
    if b_decl_fam and a_decl.family != b_decl_fam:
        ok = False
        c.refuse(a_label, f"{a_label} is declared for {fam_name(a_decl.family)}; {c.b_label} is {fam_name(b_decl_fam)}")
    if c.b_decl:
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.utils import canonicalize_name
        from packaging.version import InvalidVersion, Version

        for req in a_decl.requires:
            try:
                r = Requirement(req)
            except InvalidRequirement:
                continue
            if canonicalize_name(r.name) != canonicalize_name(c.b_decl.name):
                continue
            try:
                fits = r.specifier.contains(Version(c.b_decl.version), prereleases=True)
            except InvalidVersion:
                fits = False
            if not fits:
                ok = False
                c.refuse(a_label, f"{a_label} requires {req}; the base is {c.b_label}")
    return "ok" if ok else "refused"


def _lora_level(c: _Ctx, ad: Probe, a_label: str, a_fam: str | None) -> str:
    kw = "LoRA"
    if not ad.lora_modules:
        if a_fam and c.b_fam and a_fam != c.b_fam:
            c.refuse(a_label, f"{a_label} is {c.is_a(a_fam, kw)}; {c.b_label} is {fam_name(c.b_fam)}")
        return "not checked (adapter header not available)"
    if not c.mods:
        c.warnings.append(f"{a_label}: structural check skipped: no header or shape table for {c.b_label}")
        return "not checked (no header or shape table for the base)"
    r = _check_lora(ad, c.mods)
    what = "te" if all(m.component != "unet" for m in ad.lora_modules) else "unet"
    if r.denoiser and not r.denoiser_found:
        # the denoiser decides: a LoRA none of whose UNet/transformer modules the base has does not fit it,
        # whatever its text encoder part matches (a Flux or SD3 LoRA that also trained CLIP)
        c.refuse(a_label, f"{a_label} is {c.is_a(a_fam, kw)} for another denoiser: none of its {r.denoiser} UNet/transformer "
                          f"modules exist in {c.b_label} ({fam_name(c.b_fam)}), e.g. {r.first_denoiser_absent}")
    elif r.mismatch or (r.absent and r.absent + r.unchecked == r.total):
        n_bad = r.mismatch or r.absent
        reason = (f"{a_label} is {c.is_a(a_fam, kw)} ({_width_phrase(ad, c.families, what)}); "
                  f"{c.b_label} is {fam_name(c.b_fam)} ({_short_width(c.b_words, c.families, what)}): "
                  f"{n_bad} of {r.total} {kw} modules cannot apply")
        if r.mismatch and r.absent:
            reason += f", {r.absent} more are not in the base"
        detail = r.first_mismatch or (f"e.g. {r.first_absent} is not in the base" if r.first_absent else "")
        c.refuse(a_label, reason + (f" ({detail})" if detail else ""))
    elif r.absent:
        c.warnings.append(f"{a_label}: partial application: {r.absent} of {r.total} {kw} modules are not in {c.b_label} "
                          f"(e.g. {r.first_absent}); the rest apply")
    if r.unchecked:
        c.warnings.append(f"{a_label}: {r.unchecked} {kw} modules for {', '.join(sorted(r.unchecked_components))} not checked: "
                          f"{c.b_label} has no such component in this file")
    return f"{r.total - r.mismatch - r.absent - r.unchecked} of {r.total} modules fit ({c.mods_source})"


def _embedding_level(c: _Ctx, ad: Probe, a_label: str, a_fam: str | None, a_decl: Declared | None) -> str:
    emb_w = list(ad.signature.get("embedding_widths") or ([ad.width] if ad.width else []))
    te_w = _te_widths(c.mods) if c.mods else []
    fam = c.families.get(c.b_fam) if c.b_fam else None
    if not te_w and fam:
        te_w = list(fam.text_encoder_widths)
    for t in (ad.tokens or (a_decl.tokens if a_decl else ())):
        if t in c.tokens:
            c.warnings.append(f"token clash: '{t}' is defined by both {c.tokens[t]} and {a_label}; only one can be loaded under that token")
        else:
            c.tokens[t] = a_label
    if emb_w and te_w:
        if emb_w != te_w:
            c.refuse(a_label, f"{a_label} is {c.is_a(a_fam, 'embedding')} (width {' + '.join(map(str, emb_w))}); "
                              f"{c.b_label} is {fam_name(c.b_fam)} (text encoder {' + '.join(map(str, te_w))}): its vectors cannot be loaded")
            return "width differs"
        return "width fits"
    if a_fam and c.b_fam and a_fam != c.b_fam:
        c.refuse(a_label, f"{a_label} is {c.is_a(a_fam, 'embedding')}; {c.b_label} is {fam_name(c.b_fam)}")
    return "not checked (widths unknown)"


def _mod_desc(shape: tuple[int, ...]) -> str:
    """'Linear 768 -> 320' / '1x1 conv 320 -> 320' for a module shape (in, out[, kh, kw])."""
    if len(shape) == 4:
        return f"{shape[2]}x{shape[3]} conv {shape[0]} -> {shape[1]}"
    return f"Linear {shape[0]} -> {shape[1]}"


def _controlnet_level(c: _Ctx, ad: Probe, a_label: str, a_fam: str | None) -> str:
    kw = "ControlNet"
    cn = ad.modules.get("controlnet", {}) if ad.modules else {}
    unet = c.mods.get("unet", {})
    if not (cn and unet):
        if a_fam and c.b_fam and a_fam != c.b_fam:
            c.refuse(a_label, f"{a_label} is {c.is_a(a_fam, kw)}; {c.b_label} is {fam_name(c.b_fam)}")
        return "not checked (no UNet shapes)"
    # a ControlNet copies the UNet's encoder: those modules must have the base's shapes
    shared = [k for k in cn if k in unet or k.startswith(("down_blocks.", "mid_block.", "conv_in", "time_embedding"))]
    bad = [k for k in shared if k in unet and unet[k] != cn[k]]
    absent = [k for k in shared if k not in unet]
    if bad or (absent and len(absent) == len(shared)):
        ex = next((k for k in bad if k.endswith("attn2.to_k")), bad[0] if bad else None)
        example = f" (e.g. {ex}: {_mod_desc(cn[ex])} in the ControlNet, {_mod_desc(unet[ex])} in the base)" if ex else ""
        c.refuse(a_label, f"{a_label} is {c.is_a(a_fam, kw)} ({_width_phrase(ad, c.families, 'unet')}); "
                          f"{c.b_label} is {fam_name(c.b_fam)} ({_short_width(c.b_words, c.families, 'unet')}): "
                          f"{len(bad) or len(absent)} of {len(shared)} UNet modules differ{example}")
    elif absent:
        c.warnings.append(f"{a_label}: {len(absent)} of {len(shared)} ControlNet modules have no counterpart in {c.b_label}")
    return f"{len(shared) - len(bad) - len(absent)} of {len(shared)} UNet modules fit ({c.mods_source})"


def _vae_level(c: _Ctx, ad: Probe, a_label: str) -> str:
    cands = ad.family_candidates
    if c.b_fam and cands and c.b_fam not in cands:
        c.refuse(a_label, f"{a_label} is a VAE for {', '.join(map(fam_name, cands))}; {c.b_label} is {fam_name(c.b_fam)}")
        return "latent channels differ"
    return "latent channels fit"


def _base_context(base: Probe, b_label: str, b_decl: Declared | None, families: "FamilyTable",
                  tables: Mapping[str, ModuleMap] | None) -> _Ctx:
    # a package that is not on disk has no header: its declared family stands for it
    b_fam = (b_decl.family if b_decl and not base.modules else None) or base.family
    words = base if base.family == b_fam else replace(base, family=b_fam)
    mods, source = base_modules_for(words, tables)
    b_pred = base.prediction
    if b_decl and b_decl.prediction and b_pred in (None, "unknown"):
        b_pred = b_decl.prediction
    c = _Ctx(families, b_label, b_decl, b_fam, words, mods, source, b_pred)
    if base.format == "pickle" and not base.modules:
        c.refuse(b_label, f"{b_label} is a pickled file and was not read; convert it first (hubctl convert) or inspect it with --allow-pickle")
    elif base.kind not in ("checkpoint", "unknown") or (base.kind == "unknown" and not base.family):
        kw = _KIND_WORD.get(base.kind, base.kind)
        c.refuse(b_label, f"{b_label} is {_article(kw)} {kw}, not a base checkpoint")
    if b_decl and base.family and b_decl.family != base.family and base.modules:
        c.warnings.append(f"{b_label} is declared {fam_name(b_decl.family)} but its shapes say {fam_name(base.family)}; the shapes are used")
    if b_pred in (None, "unknown") and base.kind == "checkpoint":
        c.warnings.append(f"{b_label}: prediction type unknown (epsilon or v-prediction cannot be told from shapes); "
                          "set the scheduler's prediction_type yourself or use a package that declares it")
    return c


def check_set(
    base: Probe,
    adapters: Sequence[Probe],
    *,
    families: "FamilyTable",
    labels: Sequence[str] | None = None,
    declared: Sequence[Declared | None] | None = None,
    tables: Mapping[str, ModuleMap] | None = None,
) -> Verdict:
    """Is ``adapters`` + ``base`` a compatible set? ``labels`` / ``declared`` run parallel to [base, *adapters];
    ``tables`` overrides the shipped shape tables (family id -> module map) for a base without a header."""
    labels = list(labels) if labels else [default_label(p.path) for p in [base, *adapters]]
    decl = list(declared) if declared else [None] * (1 + len(adapters))
    c = _base_context(base, labels[0], decl[0], families, tables)
    checked: list[dict[str, Any]] = []
    for ad, a_label, a_decl in zip(adapters, labels[1:], decl[1:]):
        kind = ad.kind if ad.kind != "unknown" or not a_decl else a_decl.kind
        a_fam = ad.family or (a_decl.family if a_decl else None)
        before = len(c.problems)
        levels: dict[str, str] = {}
        dl = _declared_level(c, a_label, a_decl)
        if dl:
            levels["declared"] = dl
        if ad.format == "pickle" and ad.kind == "unknown":
            c.refuse(a_label, f"{a_label} is a pickled file and was not read; convert it first (hubctl convert) to check it")
            levels["structural"] = "not checked"
        elif kind == "checkpoint":
            c.refuse(a_label, f"{a_label} is a base checkpoint, not an adapter")
        elif kind == "lora":
            levels["structural"] = _lora_level(c, ad, a_label, a_fam)
        elif kind == "embedding":
            levels["structural"] = _embedding_level(c, ad, a_label, a_fam, a_decl)
        elif kind == "controlnet":
            levels["structural"] = _controlnet_level(c, ad, a_label, a_fam)
        elif kind == "vae":
            levels["structural"] = _vae_level(c, ad, a_label)
        else:
            c.refuse(a_label, f"{a_label}: cannot tell what this file is, so it cannot be checked")
        if ad.prediction == "v_prediction" and c.b_pred == "epsilon" and kind in _ADAPTER_KINDS:
            c.warnings.append(f"{a_label} was trained for v-prediction; {c.b_label} predicts epsilon")
        if len(c.problems) == before and a_fam and c.b_fam and a_fam != c.b_fam and kind in ("lora", "embedding", "controlnet"):
            c.warnings.append(f"{a_label} looks like {fam_name(a_fam)} but its shapes fit {c.b_label} ({fam_name(c.b_fam)})")
        checked.append({"artefact": a_label, "kind": kind, "family": a_fam, "levels": levels})
    return Verdict(compatible=not c.problems, problems=c.problems, warnings=c.warnings, checked=checked)
