"""Candidates the resolver pins: one version of one package (with its manifest entry), or one family
for the virtual family slot. Pure values; a candidate's dependencies are read from its manifest entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from packaging.version import Version as PEP440Version

from hubctl.registry.manifest import Manifest, Version
from hubctl.resolve.requirements import FAMILY, FamilyRequirement, PackageRequirement, parse_requirement

__all__ = ["PackageCandidate", "FamilyCandidate", "KIND_ORDER"]

KIND_ORDER = {"checkpoint": 0, "vae": 1, "lora": 2, "embedding": 3, "controlnet": 4}
"""Order of kinds in a resolution: bases first."""


@dataclass(frozen=True, eq=False)
class PackageCandidate:
    """One version of one package."""

    name: str
    version: PEP440Version
    manifest: Manifest = field(repr=False)
    release: Version = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackageCandidate) and (self.name, self.version) == (other.name, other.version)

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    @property
    def family(self) -> str:
        return self.release.family

    @property
    def kind(self) -> str:
        return self.manifest.kind

    def dependencies(self) -> list[PackageRequirement | FamilyRequirement]:
        return self._deps

    @cached_property
    def _deps(self) -> list[PackageRequirement | FamilyRequirement]:
        origin = f"{self.name} {self.release.version}"
        deps: list[PackageRequirement | FamilyRequirement] = [FamilyRequirement(self.release.family)]
        deps.extend(parse_requirement(r, origin=origin) for r in self.release.requires)
        return deps

    def __str__(self) -> str:
        return f"{self.name} {self.release.version}"


@dataclass(frozen=True)
class FamilyCandidate:
    """The one family of the whole set."""

    family: str

    @property
    def name(self) -> str:
        return FAMILY

    def __str__(self) -> str:
        return f"family {self.family}"
