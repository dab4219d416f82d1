"""The resolvelib provider: what resolvelib calls (identify, get_preference, find_matches,
is_satisfied_by, get_dependencies). It reads manifests through ``index.get(name)`` (cached for one
resolution) and applies :mod:`hubctl.resolve.policy` (specifiers, pre-releases, yanked versions) to the
requirements resolvelib gathered on each package, tries preferred pins (installed/locked) first, and keeps
one family for the set.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

from packaging.version import Version as PEP440Version
from resolvelib import AbstractProvider

from hubctl.registry.manifest import Manifest
from hubctl.resolve.candidates import KIND_ORDER, FamilyCandidate, PackageCandidate
from hubctl.resolve.policy import admit
from hubctl.resolve.requirements import FAMILY, FamilyRequirement, PackageRequirement

__all__ = ["Provider", "Requirement", "Candidate"]

Requirement = PackageRequirement | FamilyRequirement
Candidate = PackageCandidate | FamilyCandidate


class Provider(AbstractProvider):  # type: ignore[type-arg]
    """resolvelib provider over an index (anything with ``.get(name) -> Manifest | None``)."""

    def __init__(self, index: Any, *, pre: bool = False, preferred: Mapping[str, str] | None = None) -> None:
        self.index = index
        self.pre = pre
        self.preferred = {k: PEP440Version(v) for k, v in (preferred or {}).items()}
        self._manifests: dict[str, Manifest | None] = {}
        self._releases: dict[str, list[PackageCandidate]] = {}
        self._matches: dict[Any, list[PackageCandidate]] = {}
        self.restrict: dict[str, set[PEP440Version]] = {}  # pruned domains (hubctl.resolve.prune)
        self.banned: dict[str, set[PEP440Version]] = {}  # pins a finished search held without the rules' leave

    # ------------------------------------------------------------------ index access (cached)

    def manifest(self, name: str) -> Manifest | None:
        if name not in self._manifests:
            self._manifests[name] = self.index.get(name)
        return self._manifests[name]

    def releases(self, name: str) -> list[PackageCandidate]:
        """Every version of ``name``, newest first."""
        if name not in self._releases:
            m = self.manifest(name)
            cands = [PackageCandidate(name, rel.parsed, m, rel) for rel in m.versions] if m else []
            cands.sort(key=lambda c: c.version, reverse=True)
            self._releases[name] = cands
        return self._releases[name]

    def matches(
        self, name: str, reqs: Sequence[PackageRequirement], excluded: Iterable[PackageCandidate] = ()
    ) -> list[PackageCandidate]:
        """Versions of ``name`` that every requirement allows, most preferred first (memoised)."""
        bad = frozenset(c.version for c in excluded)
        key = (name, frozenset(r.text for r in reqs), bad)
        hit = self._matches.get(key)
        if hit is None:
            hit = self._matches[key] = self._match(name, reqs, bad)
        return list(hit)

    def _match(self, name: str, reqs: Sequence[PackageRequirement], bad: frozenset[PEP440Version]) -> list[PackageCandidate]:
        cands = [c for c in self.releases(name) if c.version not in bad]
        out = admit(cands, reqs, pre=self.pre, version=lambda c: c.version, yanked=lambda c: c.release.yanked).admitted
        pin = self.preferred.get(name)
        if pin is not None:
            out.sort(key=lambda c: 0 if c.version == pin else 1)  # stable: the rest stay newest first
        return out

    def spec_matches(self, name: str, reqs: Sequence[PackageRequirement]) -> list[PackageCandidate]:
        """Versions every specifier contains, before the pre-release and yanked rules (which depend on what
        else the set holds): what pruning may keep without ever cutting what the search would pick."""
        key = ("spec", name, frozenset(r.text for r in reqs))
        hit = self._matches.get(key)
        if hit is None:
            hit = self._matches[key] = [c for c in self.releases(name) if all(r.contains(c.version) for r in reqs)]
        return list(hit)

    # ------------------------------------------------------------------ resolvelib interface

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.name

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Any:
        if identifier == FAMILY:
            return (0,)
        infos = list(information[identifier])
        pinned = any(
            isinstance(i.requirement, PackageRequirement)
            and any(s.operator in ("==", "===") and "*" not in s.version for s in i.requirement.specifier)
            for i in infos
        )
        cause = any(c.requirement.name == identifier or (c.parent is not None and c.parent.name == identifier) for c in backtrack_causes)
        direct = any(i.parent is None for i in infos)
        m = self.manifest(identifier)
        kind = KIND_ORDER.get(m.kind, 9) if m else 9
        return (1, not cause, not pinned, kind, not direct, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        reqs = list(requirements[identifier])
        if identifier == FAMILY:
            fams = {r.family for r in reqs}  # type: ignore[union-attr]
            bad = {c.family for c in incompatibilities[identifier]}  # type: ignore[union-attr]
            if len(fams) == 1 and not fams & bad:
                return [FamilyCandidate(fams.pop())]
            return []
        found = self.matches(identifier, reqs, incompatibilities[identifier])  # type: ignore[arg-type]
        allowed = self.restrict.get(identifier)
        banned = self.banned.get(identifier, ())
        return [c for c in found if (allowed is None or c.version in allowed) and c.version not in banned]

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        if isinstance(requirement, FamilyRequirement):
            return isinstance(candidate, FamilyCandidate) and candidate.family == requirement.family
        return isinstance(candidate, PackageCandidate) and requirement.contains(candidate.version)

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        if isinstance(candidate, FamilyCandidate):
            return []
        return candidate.dependencies()
