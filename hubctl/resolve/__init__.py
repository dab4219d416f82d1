"""Resolution: turn requirements into one compatible set over an index, with resolvelib.

Split by role like pip's resolvelib integration: ``requirements.py`` (parsing, the virtual family
requirement), ``candidates.py``, ``policy.py`` (which versions requirements admit: specifiers, pre-releases,
yanked; the one policy every caller uses), ``provider.py`` (what resolvelib calls), ``search.py`` (running
resolvelib; a result builder that ends on dependency cycles), ``prune.py`` (proving "no set" before the
search), ``reporter.py`` (why no set exists, in plain words), ``variants.py`` (dtype and VRAM). This module
holds the entry point and the result types. Pure: it reads manifests only through ``index.get(name)``; it
never fetches, pins or writes anything (pinning is :func:`hubctl.lock.pin.pin`).

Rules: PEP 440 specifiers; pre-releases excluded unless ``pre`` or a requirement on that package anywhere in
the graph names one (as pip); every version depends on the virtual requirement ``family == its family`` so
an adapter joins only a base of its family (the family is one slot for the whole set, like pip's Python
version; ``family=`` fills that slot); a version's ``requires`` are dependencies; resolvelib backtracks when
the newest adapter does not fit; a yanked version only when an exact pin leaves nothing else (PEP 592, as
pip); ``installed``/``locked`` versions are tried first (kept unless the caller leaves them out to
upgrade); variants by dtype preference (then the locked variant) and VRAM budget. The search is resolvelib
alone, on the whole index; pruning only proves refusals, and a finished set is checked against the rules
once more (resolvelib can keep a pin on the word of a package it later dropped).

``installed`` and ``locked`` are preferences, not requirements: to make a new package fit what is
installed, pass the installed base as a requirement too (e.g. ``demo-sd==1.4``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from packaging.utils import canonicalize_name

from hubctl.errors import Refused
from hubctl.registry.manifest import Manifest, Variant, Version
from hubctl.resolve.candidates import KIND_ORDER, FamilyCandidate, PackageCandidate
from hubctl.resolve.requirements import FAMILY, FamilyRequirement, PackageRequirement, normalise_requirements, parse_requirement
from hubctl.resolve.variants import choose_variants, estimate_vram, parse_vram

__all__ = [
    "Pick",
    "Resolution",
    "resolve",
    "MemoryIndex",
    "parse_requirement",
    "normalise_requirements",
    "parse_vram",
    "estimate_vram",
]

FIRST_ROUNDS = 300  # then stronger pruning and a second search
MAX_ROUNDS = 2000


@dataclass(frozen=True)
class Pick:
    """One package of a resolution: exact version and variant, with the manifest entries behind them."""

    name: str
    version: str
    kind: str
    family: str
    variant: str
    manifest: Manifest = field(repr=False, compare=False)
    version_info: Version = field(repr=False, compare=False)
    variant_info: Variant = field(repr=False, compare=False)
    requested: bool = False
    vram: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "family": self.family,
            "variant": self.variant,
            "dtype": self.variant_info.dtype,
            "requested": self.requested,
            "vram_estimate": self.vram,
        }


@dataclass(frozen=True)
class Resolution:
    """The compatible set: ``picks`` bases first, then adapters, each group by name."""

    picks: list[Pick]
    requirements: list[str]
    family: str | None
    pre: bool = False
    dtype: str | None = None
    vram: int | None = None

    def get(self, name: str) -> Pick | None:
        n = canonicalize_name(name)
        return next((p for p in self.picks if p.name == n), None)

    @property
    def vram_estimate(self) -> int:
        return sum(p.vram for p in self.picks)

    def to_json(self) -> dict[str, Any]:
        return {
            "requirements": self.requirements,
            "family": self.family,
            "packages": [p.to_json() for p in self.picks],
            "vram_estimate": self.vram_estimate,
        }


class MemoryIndex:
    """An index held in memory (tests, benchmarks, scripts): ``.get(name)`` and ``.families``."""

    def __init__(self, manifests: Iterable[Manifest] = (), families: Any = None) -> None:
        self._by_name = {m.canonical_name: m for m in manifests}
        self.families = families

    def get(self, name: str) -> Manifest | None:
        return self._by_name.get(canonicalize_name(name))

    def add(self, manifest: Manifest) -> None:
        self._by_name[manifest.canonical_name] = manifest

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return sorted(self._by_name)


def resolve(
    requirements: list[str],
    index: Any,
    *,
    pre: bool = False,
    dtype: str | None = None,
    vram: int | str | None = None,
    installed: dict[str, str] | None = None,
    locked: dict[str, str] | None = None,
    locked_variants: dict[str, str] | None = None,
    family: str | None = None,
) -> Resolution:
    """Resolve ``requirements`` into one compatible set. Raise BadInput (exit 2) for a requirement
    that does not parse, Refused (exit 1) for a package the index does not have (as `hubctl info`, with
    close names) and when no set exists, with why.
    ``family`` restricts the whole set to one family (``hubctl install --family sd1``)."""
    from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

    from hubctl.resolve.provider import Provider
    from hubctl.resolve.prune import prune, prune_singletons
    from hubctl.resolve.reporter import explain_no_match
    from hubctl.resolve.search import search

    reqs = [parse_requirement(r) for r in requirements]
    budget = parse_vram(vram)
    preferred = {canonicalize_name(k): v for k, v in (installed or {}).items()}
    preferred.update({canonicalize_name(k): v for k, v in (locked or {}).items()})
    provider = Provider(index, pre=pre, preferred=preferred)

    # Direct requirements first: unknown names, specifiers that match nothing, families that cannot meet.
    grouped: dict[str, list[PackageRequirement]] = {}
    for r in reqs:
        grouped.setdefault(r.name, []).append(r)
    for name, rs in grouped.items():
        if provider.manifest(name) is None:
            from hubctl.registry.index import no_such_package

            raise no_such_package(name, index.names() if hasattr(index, "names") else [])
        allowed = provider.spec_matches(name, rs)
        if not allowed:
            raise Refused(explain_no_match(name, rs, provider.releases(name), pre))
        if family is not None and not any(c.family == family for c in allowed):
            have = ", ".join(sorted({c.family for c in allowed}))
            raise Refused(f"{' and '.join(r.text for r in rs)} has no version of family {family} (it has: {have})")
    # Then prove "no set exists" where that is local (families, requires that nothing left satisfies), in
    # plain words and without search. The search itself runs on the whole index, as resolvelib alone would:
    # the pre-release and yanked rules depend on every requirement gathered so far, so a version pruning
    # proved useless can still be the one the search must hold until a dependency names a pre-release.
    domains, why = prune(provider, grouped, family=family)
    if why:
        raise Refused(why)
    roots: list[Any] = [*reqs, FamilyRequirement(family)] if family is not None else list(reqs)

    mapping = None
    attempt, rounds = 0, FIRST_ROUNDS
    while mapping is None:
        try:
            mapping = search(provider, roots, max_rounds=rounds)
            bad = _held_without_leave(mapping, reqs, provider)
            if bad:  # search again without them (each round bans at least one more version: it ends)
                for c in bad:
                    provider.banned.setdefault(c.name, set()).add(c.version)
                mapping = None
        except ResolutionImpossible as e:
            raise Refused(_explain_impossible(e.causes, provider, grouped, pre)) from None
        except ResolutionTooDeep:
            if attempt:
                raise Refused(f"gave up after {MAX_ROUNDS} resolution rounds; pin some versions with '=='") from None
            # a long search: prune harder (each version alone), then search only what is left
            domains, why = prune_singletons(provider, grouped, domains, family=family)
            if why:
                raise Refused(why) from None
            provider.restrict = {n: {c.version for c in v} for n, v in domains.versions.items()}
            attempt, rounds = 1, MAX_ROUNDS

    family_cand = mapping.get(FAMILY)
    family = family_cand.family if isinstance(family_cand, FamilyCandidate) else None
    chosen = sorted(
        (c for c in mapping.values() if isinstance(c, PackageCandidate)),
        key=lambda c: (KIND_ORDER.get(c.kind, 9), c.name),
    )
    keep_variants = {canonicalize_name(k): v for k, v in (locked_variants or {}).items()}
    variants = choose_variants([(c.name, c.release) for c in chosen], dtype=dtype, vram=budget, keep=keep_variants)
    picks = [
        Pick(
            name=c.name,
            version=c.release.version,
            kind=c.kind,
            family=c.family,
            variant=variants[c.name].name,
            manifest=c.manifest,
            version_info=c.release,
            variant_info=variants[c.name],
            requested=c.name in grouped,
            vram=estimate_vram(variants[c.name]),
        )
        for c in chosen
    ]
    return Resolution(
        picks=picks,
        requirements=sorted({r.text for r in reqs}),
        family=family,
        pre=pre,
        dtype=dtype,
        vram=budget,
    )


def _explain_impossible(causes: Any, provider: Any, direct: dict[str, list[PackageRequirement]], pre: bool) -> str:
    """Why the search found no set: when a package you asked for has no version the rules admit for what
    you wrote (a pre-release or a yanked version nothing in the set allowed), say that and how to allow it;
    otherwise resolvelib's conflict, in plain words."""
    from hubctl.resolve.reporter import explain_conflict, explain_no_match

    involved = {c.requirement.name for c in causes}
    for name, rs in direct.items():
        if name in involved and not provider.matches(name, rs):
            return explain_no_match(name, rs, provider.releases(name), pre)
    return explain_conflict(causes, known=lambda n: provider.manifest(n) is not None)


def _held_without_leave(mapping: dict[str, Any], roots: list[PackageRequirement], provider: Any) -> list[PackageCandidate]:
    """Pins of a finished search that :mod:`hubctl.resolve.policy` does not admit under the set's own
    requirements (see :func:`hubctl.resolve.policy.unadmitted_pins`)."""
    from hubctl.resolve.policy import unadmitted_pins

    pins = {n: c for n, c in mapping.items() if isinstance(c, PackageCandidate)}
    return unadmitted_pins(
        pins,
        roots,
        pre=provider.pre,
        releases=provider.releases,
        version=lambda c: c.version,
        yanked=lambda c: c.release.yanked,
        requires=lambda c: [d for d in c.dependencies() if isinstance(d, PackageRequirement)],
    )
