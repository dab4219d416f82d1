"""Requirements the resolver works with: a user's or a manifest's requirement on a package, and the
virtual family requirement every version carries (modelled the way pip models Requires-Python: one
slot, ``FAMILY``, that the whole set must agree on). Parsing of requirement strings happens here,
once, at the edge; nothing here touches the index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version as PEP440Version

from hubctl.errors import BadInput

__all__ = ["FAMILY", "PackageRequirement", "FamilyRequirement", "parse_requirement", "normalise_requirements"]

FAMILY = "<family>"
"""Identifier of the virtual family slot: every candidate depends on ``family == its family``."""


@dataclass(frozen=True)
class PackageRequirement:
    """``name`` (canonical) with a PEP 440 specifier set; ``text`` is the normalised requirement string."""

    name: str
    specifier: SpecifierSet
    text: str
    _seen: dict[PEP440Version, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def names_prerelease(self) -> bool:
        """True when a specifier other than ``!=`` names a pre-release (``>=2.0b1``, ``==2.0b1``): pip's rule,
        then pre-releases of the package are allowed."""
        for s in self.specifier:
            if s.operator == "!=":
                continue
            try:
                if PEP440Version(s.version[:-2] if s.version.endswith(".*") else s.version).is_prerelease:
                    return True
            except InvalidVersion:
                continue
        return False

    def contains(self, version: PEP440Version) -> bool:
        hit = self._seen.get(version)
        if hit is None:
            hit = self._seen[version] = self.specifier.contains(version, prereleases=True)
        return hit

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class FamilyRequirement:
    """The family a candidate belongs to; the set's one family must equal it."""

    family: str

    @property
    def name(self) -> str:
        return FAMILY

    def __str__(self) -> str:
        return f"family {self.family}"


def parse_requirement(text: str, *, origin: str | None = None) -> PackageRequirement:
    """Parse ``name[specifier]``; raise BadInput (one line) when it does not parse or uses what hubctl
    does not support (extras, URLs, markers). Parses of the same text are shared (cached)."""
    return _parse(text, origin)


@lru_cache(maxsize=65536)
def _parse(text: str, origin: str | None) -> PackageRequirement:
    from hubctl.registry.fields import check_requirement

    try:
        req = check_requirement(text)
    except ValueError as e:
        raise BadInput(f"{e}" + (f" (in {origin})" if origin else "")) from None
    name = canonicalize_name(req.name)
    spec = req.specifier
    spec_text = ",".join(sorted(str(s) for s in spec))
    return PackageRequirement(name, spec, f"{name}{spec_text}")


def normalise_requirements(texts: list[str], *, origin: str | None = None) -> list[str]:
    """Parse each requirement and return the normalised strings, sorted and without duplicates."""
    return sorted({parse_requirement(t, origin=origin).text for t in texts})
