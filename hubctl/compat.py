"""Compatibility of a set of artefacts: a base and its adapters. Two levels, both reported:

* declared: families and ``requires`` from manifests (``Declared`` values), and what file metadata claims;
* structural: every adapter key maps to a module of this base and its shapes fit (LoRA in/out features and
  conv kernels, embedding width against the text encoder(s), ControlNet against the UNet), compared with
  the base's own header or, when the base is not on disk, the family's shape table (hubctl.shapes).

``check_set`` is pure: Probe values in, a :class:`Verdict` with plain-language reasons out. The edges
(``check_paths``, ``gather_and_check`` for CLI arguments that may be package names) do the I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hubctl.probe.keys import ModuleMap, kohya_lookup, sgm_to_diffusers_underscore
from hubctl.probe.types import LoraModule, Probe

if TYPE_CHECKING:
    from hubctl.families import FamilyTable

__all__ = ["Problem", "Verdict", "Declared", "check_set", "check_paths", "gather_and_check", "base_modules_for"]

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
        from hubctl.shapes import shape_table

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
    if m.kernel and b_kernel and m.algo == "full" and tuple(m.kernel) != b_kernel:
        return f"expects a {m.kernel} kernel, the base has {b_kernel}"
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
        if hit is None:
            r.absent += 1
            r.first_absent = r.first_absent or f"{m.component}: {m.name}"
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


def check_set(
    base: Probe,
    adapters: Sequence[Probe],
    *,
    families: "FamilyTable",
    labels: Sequence[str] | None = None,
    declared: Sequence[Declared | None] | None = None,
    tables: Mapping[str, ModuleMap] | None = None,
) -> Verdict:
    """Is ``adapters`` + ``base`` a compatible set? ``labels`` / ``declared`` run parallel to [base, *adapters]."""
    labels = list(labels) if labels else [default_label(p.path) for p in [base, *adapters]]
    decl = list(declared) if declared else [None] * (1 + len(adapters))
    b_label, b_decl = labels[0], decl[0]
    problems: list[Problem] = []
    warnings: list[str] = []
    checked: list[dict[str, Any]] = []

    if base.format == "pickle" and not base.modules:
        problems.append(Problem(b_label, f"{b_label} is a pickled file and was not read; convert it first (hubctl convert) or inspect it with --allow-pickle"))
    elif base.kind not in ("checkpoint", "unknown") or (base.kind == "unknown" and not base.family):
        problems.append(Problem(b_label, f"{b_label} is {_article(_KIND_WORD.get(base.kind, base.kind))} {_KIND_WORD.get(base.kind, base.kind)}, not a base checkpoint"))
    b_fam = (b_decl.family if b_decl and not base.modules else None) or base.family
    if b_decl and base.family and b_decl.family != base.family and base.modules:
        warnings.append(f"{b_label} is declared {fam_name(b_decl.family)} but its shapes say {fam_name(base.family)}; the shapes are used")
    mods, mods_source = base_modules_for(Probe(**{**base.__dict__, "family": b_fam}) if b_fam != base.family else base, tables)
    b_pred = base.prediction
    if b_decl and b_decl.prediction and (not b_pred or b_pred == "unknown"):
        b_pred = b_decl.prediction
    if b_pred in (None, "unknown") and base.kind == "checkpoint":
        warnings.append(f"{b_label}: prediction type unknown (epsilon or v-prediction cannot be told from shapes); "
                        "set the scheduler's prediction_type yourself or use a package that declares it")
    b_probe_for_words = base if base.family == b_fam else Probe(**{**base.__dict__, "family": b_fam})

    tokens: dict[str, str] = {}
    for i, ad in enumerate(adapters, start=1):
        a_label, a_decl = labels[i], decl[i]
        kind = ad.kind if ad.kind != "unknown" or not a_decl else a_decl.kind
        a_fam = ad.family or (a_decl.family if a_decl else None)
        kw = _KIND_WORD.get(kind, kind)
        levels: dict[str, str] = {}
        before = len(problems)
        # -- declared level
        if a_decl or b_decl:
            dec_ok = True
            if a_decl and b_decl and a_decl.family != b_decl.family:
                dec_ok = False
                problems.append(Problem(a_label, f"{a_label} is declared for {fam_name(a_decl.family)}; {b_label} is {fam_name(b_decl.family)}"))
            if a_decl and b_decl:
                from packaging.requirements import InvalidRequirement, Requirement
                from packaging.utils import canonicalize_name
                from packaging.version import InvalidVersion, Version

                for req in a_decl.requires:
                    try:
                        r = Requirement(req)
                    except InvalidRequirement:
                        continue
                    if canonicalize_name(r.name) != canonicalize_name(b_decl.name):
                        continue
                    try:
                        ok = r.specifier.contains(Version(b_decl.version), prereleases=True)
                    except InvalidVersion:
                        ok = False
                    if not ok:
                        dec_ok = False
                        problems.append(Problem(a_label, f"{a_label} requires {req}; the base is {b_label}"))
            if a_decl and not b_decl and b_fam and a_decl.family != b_fam:
                dec_ok = False
                problems.append(Problem(a_label, f"{a_label} is declared for {fam_name(a_decl.family)}; {b_label} is {fam_name(b_fam)}"))
            levels["declared"] = ("ok" if dec_ok else "refused") if a_decl else "not declared (not a package)"
        if ad.format == "pickle" and not ad.lora_modules and ad.kind == "unknown":
            problems.append(Problem(a_label, f"{a_label} is a pickled file and was not read; convert it first (hubctl convert) to check it"))
            levels["structural"] = "not checked"
            checked.append({"artefact": a_label, "kind": "unknown", "family": a_fam, "levels": levels})
            continue
        # -- structural level
        if kind == "checkpoint":
            problems.append(Problem(a_label, f"{a_label} is a base checkpoint, not an adapter"))
        elif kind == "lora":
            if not ad.lora_modules:
                if a_fam and b_fam and a_fam != b_fam:
                    problems.append(Problem(a_label, f"{a_label} is {_article(fam_name(a_fam))} {fam_name(a_fam)} {kw}; {b_label} is {fam_name(b_fam)}"))
                levels["structural"] = "not checked (adapter header not available)"
            elif not mods:
                levels["structural"] = "not checked (no header or shape table for the base)"
                warnings.append(f"{a_label}: structural check skipped: no header or shape table for {b_label}")
            else:
                r = _check_lora(ad, mods)
                bad = r.mismatch
                te_only = all(m.component != "unet" for m in ad.lora_modules)
                what = "te" if te_only else "unet"
                if bad or (r.absent and r.absent + r.unchecked == r.total):
                    n_bad = bad + (r.absent if not bad else 0)
                    fam_words = f"{fam_name(a_fam)} " if a_fam else ""
                    reason = (f"{a_label} is {_article(fam_words or kw)} {fam_words}{kw} ({_width_phrase(ad, families, what)}); "
                              f"{b_label} is {fam_name(b_fam)} ({_short_width(b_probe_for_words, families, what)}): "
                              f"{n_bad} of {r.total} {kw} modules cannot apply")
                    detail = r.first_mismatch or (f"e.g. {r.first_absent} is not in the base" if r.first_absent else "")
                    if bad and r.absent:
                        reason += f", {r.absent} more are not in the base"
                    problems.append(Problem(a_label, reason + (f" ({detail})" if detail else "")))
                elif r.absent:
                    warnings.append(f"{a_label}: partial application: {r.absent} of {r.total} {kw} modules are not in {b_label} "
                                    f"(e.g. {r.first_absent}); the rest apply")
                if r.unchecked:
                    warnings.append(f"{a_label}: {r.unchecked} {kw} modules for {', '.join(sorted(r.unchecked_components))} not checked: "
                                    f"{b_label} has no such component in this file")
                levels["structural"] = (f"{r.total - r.mismatch - r.absent - r.unchecked} of {r.total} modules fit"
                                        f" ({mods_source})")
        elif kind == "embedding":
            emb_w = list(ad.signature.get("embedding_widths") or ([ad.width] if ad.width else []))
            te_w = _te_widths(mods) if mods else []
            if not te_w and b_fam and families.get(b_fam):
                te_w = list(families.get(b_fam).text_encoder_widths)  # type: ignore[union-attr]
            if emb_w and te_w:
                if emb_w != te_w:
                    fam_words = f"{fam_name(a_fam)} " if a_fam else ""
                    problems.append(Problem(a_label, f"{a_label} is {_article(fam_words or 'e')} {fam_words}embedding (width {' + '.join(map(str, emb_w))}); "
                                                     f"{b_label} is {fam_name(b_fam)} (text encoder {' + '.join(map(str, te_w))}): its vectors cannot be loaded"))
                levels["structural"] = "width fits" if emb_w == te_w else "width differs"
            elif a_fam and b_fam and a_fam != b_fam:
                problems.append(Problem(a_label, f"{a_label} is {_article(fam_name(a_fam))} {fam_name(a_fam)} embedding; {b_label} is {fam_name(b_fam)}"))
                levels["structural"] = "not checked (widths unknown)"
            else:
                levels["structural"] = "not checked (widths unknown)"
            for t in (ad.tokens or (a_decl.tokens if a_decl else ())):
                if t in tokens:
                    warnings.append(f"token clash: '{t}' is defined by both {tokens[t]} and {a_label}; only one can be loaded under that token")
                else:
                    tokens[t] = a_label
        elif kind == "controlnet":
            cn = ad.modules.get("controlnet", {}) if ad.modules else {}
            unet = mods.get("unet", {})
            if cn and unet:
                shared = [k for k in cn if k in unet or k.startswith(("down_blocks.", "mid_block.", "conv_in", "time_embedding"))]
                bad = [k for k in shared if k in unet and unet[k] != cn[k]]
                absent = [k for k in shared if k not in unet]
                if bad or (absent and len(absent) == len(shared)):
                    fam_words = f"{fam_name(a_fam)} " if a_fam else ""
                    problems.append(Problem(a_label, f"{a_label} is {_article(fam_words or kw)} {fam_words}{kw} ({_width_phrase(ad, families, 'unet')}); "
                                                     f"{b_label} is {fam_name(b_fam)} ({_short_width(b_probe_for_words, families, 'unet')}): "
                                                     f"{len(bad) + (len(absent) if not bad else 0)} of {len(shared)} UNet modules differ"
                                                     + (f" (e.g. {bad[0]}: {list(cn[bad[0]])} vs {list(unet[bad[0]])})" if bad else "")))
                elif absent:
                    warnings.append(f"{a_label}: {len(absent)} of {len(shared)} ControlNet modules have no counterpart in {b_label}")
                levels["structural"] = f"{len(shared) - len(bad) - len(absent)} of {len(shared)} UNet modules fit ({mods_source})"
            else:
                if a_fam and b_fam and a_fam != b_fam:
                    problems.append(Problem(a_label, f"{a_label} is {_article(fam_name(a_fam))} {fam_name(a_fam)} {kw}; {b_label} is {fam_name(b_fam)}"))
                levels["structural"] = "not checked (no UNet shapes)"
        elif kind == "vae":
            cands = ad.family_candidates
            if b_fam and cands and b_fam not in cands:
                problems.append(Problem(a_label, f"{a_label} is a VAE for {', '.join(map(fam_name, cands))}; {b_label} is {fam_name(b_fam)}"))
            levels["structural"] = "latent channels fit" if not cands or b_fam in cands else "latent channels differ"
        else:
            problems.append(Problem(a_label, f"{a_label}: cannot tell what this file is, so it cannot be checked"))
        # prediction hints
        if ad.prediction == "v_prediction" and b_pred == "epsilon" and kind in _ADAPTER_KINDS:
            warnings.append(f"{a_label} was trained for v-prediction; {b_label} predicts epsilon")
        if len(problems) == before and a_fam and b_fam and a_fam != b_fam and kind in _ADAPTER_KINDS and kind != "vae":
            warnings.append(f"{a_label} looks like {fam_name(a_fam)} but its shapes fit {b_label} ({fam_name(b_fam)})")
        checked.append({"artefact": a_label, "kind": kind, "family": a_fam, "levels": levels})
    return Verdict(compatible=not problems, problems=problems, warnings=warnings, checked=checked)


# --------------------------------------------------------------------------------------------- edges (I/O)


Artefact = "str | Path | Probe | Mapping[str, Path]"


def check_paths(base: Artefact, adapters: Sequence[Artefact], *, families: "FamilyTable | None" = None,
                labels: Sequence[str] | None = None, declared: Sequence[Declared | None] | None = None) -> Verdict:
    """Probe and check a set (what the inference run calls on locked files). Each artefact: a path, folder or
    URL; a ready Probe; or a package's files as {path inside the package: file on disk} (store blobs)."""
    from hubctl.probe import default_family_table, probe, probe_files

    fams = families if families is not None else default_family_table()

    def one(a: Any) -> Probe:
        if isinstance(a, Probe):
            return a
        if isinstance(a, Mapping):
            return probe_files(dict(a), families=fams)
        return probe(a, families=fams)

    return check_set(one(base), [one(a) for a in adapters], families=fams, labels=labels, declared=declared)


def _synthetic(label: str, d: Declared) -> Probe:
    return Probe(path=label, format="manifest", kind=d.kind, family=d.family, prediction=d.prediction or "unknown",
                 variant=None, layout=None, tokens=d.tokens)


def _is_location(arg: str) -> bool:
    return arg.startswith(("https://", "http://", "hf://", "file://")) or Path(arg).expanduser().exists() or "/" in arg or arg.endswith(
        (".safetensors", ".ckpt", ".pt", ".bin", ".pth"))


def _url_label(arg: str) -> str:
    tail = arg.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return tail or arg


def resolve_argument(arg: str, families: "FamilyTable", *, role: str, warnings: list[str],
                     offline: bool = False) -> tuple[Probe, str, Declared | None]:
    """(probe, label, declared) for a CLI argument: a path, a URL, or a package name with optional specifier."""
    from hubctl.errors import BadInput, HubctlError, SourceError
    from hubctl.probe import probe, probe_files

    if _is_location(arg):
        if not arg.startswith(("https://", "http://", "hf://", "file://")) and not Path(arg).expanduser().exists():
            raise BadInput("no such file or folder", context=arg)
        p = probe(arg, families=families)
        return p, _url_label(arg) if "://" in arg else default_label(arg), None
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import Version

    try:
        req = Requirement(arg)
    except InvalidRequirement:
        raise BadInput(f"'{arg}' is not a file, a URL or a package name") from None
    from hubctl.index import open_index

    idx = open_index()
    try:
        man = idx.get(req.name)
    finally:
        idx.close()
    if man is None:
        raise BadInput(f"'{req.name}' is not a file, a URL or a package in the index (try: hubctl search {req.name})")
    installed = None
    try:
        from hubctl.installed import installed_package, installed_paths

        inst = installed_package(man.name)
        if inst is not None and req.specifier.contains(Version(inst.version), prereleases=True):
            installed = (inst.version, installed_paths(man.name))
    except HubctlError:
        raise
    except Exception:  # no state database yet
        installed = None
    explicit_pre = any(Version(s.version).is_prerelease for s in req.specifier if s.version[:1].isdigit() and "*" not in s.version)
    versions = sorted(man.versions, key=lambda v: v.parsed, reverse=True)
    if installed:
        chosen = next(v for v in versions if v.parsed == Version(installed[0]))
    else:
        pool = [v for v in versions if not v.yanked and req.specifier.contains(v.parsed, prereleases=explicit_pre)]
        if not pool:
            raise BadInput(f"no version of {man.name} matches '{arg}' (versions: {', '.join(v.version for v in versions)})")
        chosen = pool[0]
    d = Declared(man.name, chosen.version, man.kind, chosen.family, tuple(chosen.requires), tuple(chosen.tokens), chosen.prediction)
    label = d.label
    if installed and installed[1]:
        p = probe_files(installed[1], families=families, label=label)
        return p, label, d
    # not installed: files with a local source are read where they lie; otherwise a base is checked
    # against its family's shape table and an adapter's header is read from its source (header only)
    variant = next((v for v in chosen.variants if any(f.path.endswith(".safetensors") for f in v.files)), chosen.variants[0])
    if all(f.source.startswith("file://") for f in variant.files):
        from urllib.parse import unquote, urlsplit

        local = {f.path: Path(unquote(urlsplit(f.source).path)) for f in variant.files}
        if all(x.is_file() for x in local.values()):
            return probe_files(local, families=families, label=label), label, d
    if role == "base":
        return _synthetic(label, d), label, d
    files = [f for f in variant.files if f.path.endswith(".safetensors")]
    if len(files) != 1:
        warnings.append(f"{label}: structural check uses the declared family only (not installed; {len(files)} safetensors files)")
        return _synthetic(label, d), label, d
    src = files[0].source
    if offline and not src.startswith("file://"):
        warnings.append(f"{label}: not installed and --offline: structural check uses the declared family only")
        return _synthetic(label, d), label, d
    try:
        p = probe(src, families=families)
    except (SourceError, BadInput) as e:
        warnings.append(f"{label}: header not readable from its source, structural check skipped ({e})")
        return _synthetic(label, d), label, d
    return Probe(**{**p.__dict__, "path": label}), label, d


def gather_and_check(base: str, adapters: Sequence[str], *, offline: bool = False) -> Verdict:
    """CLI edge: each argument a path, a URL or a package name (with an optional version specifier)."""
    from hubctl.probe import default_family_table

    fams = default_family_table()
    warnings: list[str] = []
    probes, labels, decl = [], [], []
    for role, arg in [("base", base), *(("adapter", a) for a in adapters)]:
        p, label, d = resolve_argument(arg, fams, role=role, warnings=warnings, offline=offline)
        probes.append(p)
        labels.append(label)
        decl.append(d)
    v = check_set(probes[0], probes[1:], families=fams, labels=labels, declared=decl)
    return Verdict(v.compatible, v.problems, warnings + v.warnings, v.checked)
