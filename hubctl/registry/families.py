"""The family table: which architectures exist (sd1, sd2, sdxl, ... and any a registry adds), their
signatures (what a header must show to belong to them) and reference configs. Families are data,
loaded from ``families.toml`` files; nothing here knows a family by name.

A family entry::

    [[families]]
    id = "sd1"
    title = "Stable Diffusion 1.x"
    cross_attention_dim = 768          # UNet attn2 to_k input width
    text_encoder_widths = [768]        # hidden size of each text encoder
    text_encoder_layers = [12]
    use_linear_projection = false      # proj_in Linear (true) or 1x1 conv (false)
    default_resolution = 512
    prediction_types = ["epsilon"]
    aliases = ["SD 1.4", "SD 1.5", "sd_v1", "stable-diffusion-v1"]   # Civitai baseModel, kohya, ModelSpec
    [families.reference.unet]  ...   # diffusers config dicts (unet, text_encoder, vae, scheduler)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hubctl.errors import BadInput, PARSE_ERRORS, parse_failure

from hubctl.tomlcompat import tomllib

__all__ = ["Family", "FamilyTable", "load_families", "default_families"]


class Family(BaseModel):
    """One architecture family and the header signature that identifies it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str = ""
    cross_attention_dim: int = Field(gt=0)
    text_encoder_widths: list[int] = Field(min_length=1)
    text_encoder_layers: list[int] = Field(min_length=1)
    use_linear_projection: bool = False
    unet_block_out_channels: list[int] = Field(default_factory=list)
    unet_in_channels: int = 4
    vae_latent_channels: int = 4
    default_resolution: int = 512
    prediction_types: list[str] = Field(default_factory=lambda: ["epsilon"])
    addition_embed_type: Optional[str] = None
    aliases: list[str] = Field(default_factory=list, description="Civitai baseModel names, kohya ss_base_model_version, ModelSpec architectures.")
    reference: dict[str, dict[str, Any]] = Field(default_factory=dict, description="diffusers configs: unet, text_encoder, vae, scheduler, ...")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        from hubctl.registry.fields import check_family_id

        return check_family_id(v)

    def matches_alias(self, name: str) -> bool:
        n = name.strip().lower()
        return n == self.id or any(n == a.lower() for a in self.aliases)


class FamilyTable:
    """All known families, by id; later sources override earlier ones with the same id."""

    def __init__(self, families: Iterable[Family] = ()) -> None:
        self._by_id: dict[str, Family] = {}
        for f in families:
            self._by_id[f.id] = f

    def __contains__(self, fid: object) -> bool:
        return fid in self._by_id

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, fid: str) -> Family | None:
        return self._by_id.get(fid)

    def ids(self) -> list[str]:
        return list(self._by_id)

    def merged(self, other: "FamilyTable") -> "FamilyTable":
        return FamilyTable([*self, *other])

    def by_alias(self, name: str) -> Family | None:
        """The family a Civitai baseModel, kohya base version or ModelSpec architecture names."""
        return next((f for f in self if f.matches_alias(name)), None)


def load_families(path: Path) -> FamilyTable:
    """Read a ``families.toml``; raise BadInput naming the file and the field on any problem."""
    origin = str(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as e:
        raise BadInput(f"cannot read families file ({e.strerror or e})", context=origin) from None
    except PARSE_ERRORS as e:
        raise BadInput(f"invalid TOML: {parse_failure(e)}", context=origin) from None
    entries = data.get("families", [])
    if not isinstance(entries, list):
        raise BadInput("families: must be an array of tables ([[families]])", context=origin)
    out = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        try:
            fam = Family.model_validate(entry)
        except ValidationError as e:
            from hubctl.registry.manifest import format_validation_error

            raise BadInput(f"families[{i}].{format_validation_error(e)}", context=origin) from None
        if fam.id in seen:
            raise BadInput(f"families[{i}].id: '{fam.id}' appears twice", context=origin)
        seen.add(fam.id)
        out.append(fam)
    return FamilyTable(out)


_DEFAULT: FamilyTable | None = None


def default_families() -> FamilyTable:
    """The families shipped in the bundled registry (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        from hubctl.config import bundled_registry_path

        _DEFAULT = load_families(bundled_registry_path() / "families.toml")
    return _DEFAULT
