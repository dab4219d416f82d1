"""Value types of the probe: :class:`Probe` (what an artefact is, as ``hubctl inspect`` prints it),
:class:`Signature` (the shape facts that decide the family) and :class:`LoraModule`. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Signature", "LoraModule", "Probe", "Evidence"]


@dataclass(frozen=True)
class Evidence:
    """One key (or metadata entry / config value) and what it told."""

    key: str
    shape: tuple[int, ...] | None
    means: str

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "means": self.means}
        if self.shape is not None:
            d["shape"] = list(self.shape)
        return d


@dataclass
class Signature:
    """Shape facts read from a header; None where the header does not tell."""

    cross_attention_dim: int | None = None
    te_widths: dict[int, int] = field(default_factory=dict)      # text encoder index -> hidden width
    te_count: int | None = None                                  # exact number of text encoders, when known
    te_count_min: int = 0
    te_max_layer: dict[int, int] = field(default_factory=dict)   # encoder index -> highest layer index seen
    te_layers_exact: dict[int, int] = field(default_factory=dict)  # encoder index -> number of layers (full TE)
    linear_projection: bool | None = None
    addition_embed: bool | None = None
    embedding_widths: list[int] | None = None                    # textual inversion: width per encoder
    unet_in_channels: int | None = None
    block_out_channels: list[int] | None = None
    foreign_denoiser: bool = False                               # a LoRA's denoiser modules are none of a UNet's
    evidence: list[Evidence] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.cross_attention_dim:
            d["cross_attention_dim"] = self.cross_attention_dim
        if self.te_widths:
            d["text_encoder_widths"] = [self.te_widths[i] for i in sorted(self.te_widths)]
        if self.embedding_widths:
            d["embedding_widths"] = list(self.embedding_widths)
        if self.linear_projection is not None:
            d["linear_projection"] = self.linear_projection
        if self.unet_in_channels is not None:
            d["unet_in_channels"] = self.unet_in_channels
        return d

    def known(self) -> bool:
        return bool(self.cross_attention_dim or self.te_widths or self.embedding_widths or self.linear_projection is not None)


@dataclass(frozen=True)
class LoraModule:
    """One adapted module of a LoRA-like file, with the shapes it expects of the base module."""

    component: str          # unet | text_encoder | text_encoder_2
    name: str               # dotted diffusers module name, or kohya underscore name when ``underscore``
    underscore: bool
    in_features: int | None
    out_features: int | None
    kernel: tuple[int, int] | None  # conv kernel, None for Linear
    rank: int | None
    algo: str               # lora | loha | lokr | ia3 | full | ...


@dataclass(frozen=True)
class Probe:
    """What an artefact is, from its header(s) alone."""

    path: str
    format: str                  # safetensors | diffusers-folder | pickle | unknown
    kind: str                    # checkpoint | lora | embedding | controlnet | vae | unknown
    family: str | None
    prediction: str | None       # epsilon | v_prediction | unknown
    variant: str | None          # normal | inpaint | depth | instruct-pix2pix | ...
    layout: str | None           # ldm | diffusers | kohya | peft | lycoris-loha | lycoris-lokr | a1111 | ...
    rank: int | None = None
    alpha: float | None = None
    vectors: int | None = None
    width: int | None = None
    tokens: tuple[str, ...] = ()
    dtypes: Mapping[str, int] = field(default_factory=dict)
    parameters: int = 0
    size: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    family_candidates: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()          # disagreements (metadata vs shapes) and other remarks
    hashes: Mapping[str, str] | None = None
    signature: Mapping[str, Any] = field(default_factory=dict)  # the widths read from shapes
    # structure for compat (not printed): module shape maps, LoRA modules, embedding widths
    modules: Mapping[str, Mapping[str, tuple[int, ...]]] = field(default_factory=dict, repr=False, compare=False)
    lora_modules: tuple[LoraModule, ...] = field(default=(), repr=False, compare=False)
    configs: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "kind": self.kind,
            "family": self.family,
            "prediction": self.prediction,
            "variant": self.variant,
            "layout": self.layout,
            "rank": self.rank,
            "alpha": self.alpha,
            "vectors": self.vectors,
            "width": self.width,
            "tokens": list(self.tokens),
            "dtypes": dict(self.dtypes),
            "parameters": self.parameters,
            "size": self.size,
            "metadata": dict(self.metadata),
            "evidence": [e.to_json() for e in self.evidence],
            "family_candidates": list(self.family_candidates),
            "components": list(self.components),
            "notes": list(self.notes),
            "signature": dict(self.signature),
        }
        if self.hashes is not None:
            d["hashes"] = dict(self.hashes)
        return d
