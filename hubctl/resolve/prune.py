"""Pruning before the search: cut every candidate that cannot be in any compatible set, and prove "no set
exists" without backtracking when the proof is local.

Arc consistency over the packages a set must contain: the direct requirements, plus every package that
every remaining version of a required package depends on. A version is cut when its family is not one
every required package can still have, when one of its requirements on a required package matches no
remaining version of it, or when it requires a package no registry has. Domains start from what the
specifiers allow, before the pre-release and yanked rules of :mod:`hubctl.resolve.policy`: those depend on
every requirement the set ends up with (a dependency may name a pre-release), so only the search applies
them. Each cut is therefore sound (that version is in no solution the search could pick), so the search
that follows (resolvelib) sees smaller domains and the same answers; when a domain empties, the reason is
stated in plain words with the chain. Deterministic: nothing depends on set order. Pure: reads manifests
only through the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hubctl.resolve.candidates import PackageCandidate
from hubctl.resolve.reporter import explain_family_split, fams
from hubctl.resolve.requirements import PackageRequirement

if TYPE_CHECKING:
    from hubctl.resolve.provider import Provider

__all__ = ["Domains", "prune", "prune_singletons"]

MAX_PASSES = 50


@dataclass
class Domains:
    """Remaining versions of each package the set must contain, and why each package is required."""

    versions: dict[str, list[PackageCandidate]] = field(default_factory=dict)
    origin: dict[str, list[str]] = field(default_factory=dict)  # "you asked for X" / "a 1.0 requires X"
    texts: dict[str, list[PackageRequirement]] = field(default_factory=dict)


def _pkg_deps(c: PackageCandidate) -> list[PackageRequirement]:
    return [d for d in c.dependencies() if isinstance(d, PackageRequirement)]


def _span(cands: list[PackageCandidate]) -> str:
    """``bench-old 1.0`` or ``every version of bench-old you allow (40)``."""
    if len(cands) == 1:
        return str(cands[0])
    return f"every allowed version of {cands[0].name} ({len(cands)})"


def prune(
    provider: "Provider", direct: dict[str, list[PackageRequirement]], start: Domains | None = None, family: str | None = None
) -> tuple[Domains, str | None]:
    """Domains after pruning, and None; or the reason no set exists. ``start``: domains to begin from
    (a previous pruning, possibly narrowed further); they are copied, not changed."""
    d = Domains()
    if start is not None:
        d.versions = {n: list(v) for n, v in start.versions.items()}
        d.origin = {n: list(v) for n, v in start.origin.items()}
        d.texts = {n: list(v) for n, v in start.texts.items()}
    for name, reqs in direct.items():
        if name not in d.versions:
            d.versions[name] = provider.spec_matches(name, reqs)
            d.origin[name] = [f"you asked for {' and '.join(dict.fromkeys(r.text for r in reqs))}"]
            d.texts[name] = list(reqs)
    for _ in range(MAX_PASSES):
        changed = False
        # one family for the whole set
        groups = [(d.texts[n], provider.manifest(n).kind if provider.manifest(n) else "", {c.family for c in d.versions[n]}) for n in d.versions]  # type: ignore[union-attr]
        split = explain_family_split(groups)
        if split:
            return d, split
        common = set.intersection(*(g[2] for g in groups)) if groups else set()
        if family is not None:
            common &= {family}
        for name in list(d.versions):
            cands = d.versions[name]
            keep: list[PackageCandidate] = []
            cut: list[tuple[PackageCandidate, str]] = []
            for c in cands:
                if c.family not in common:
                    cut.append((c, f"is {c.family}"))
                    continue
                reason = None
                for dep in _pkg_deps(c):
                    if provider.manifest(dep.name) is None:
                        reason = f"requires {dep.text}, which no configured registry has"
                        break
                    if dep.name in d.versions and not any(dep.contains(x.version) for x in d.versions[dep.name]):
                        why = "; ".join(d.origin[dep.name])
                        reason = f"requires {dep.text}; {why}"
                        break
                if reason:
                    cut.append((c, reason))
                else:
                    keep.append(c)
            if cut:
                changed = True
                d.versions[name] = keep
            if not keep:
                reasons = list(dict.fromkeys(r for _, r in cut))
                who = _span([c for c, _ in cut])
                if len(reasons) == 1:
                    return d, f"{who} {reasons[0]}"
                parts = "; ".join(f"{c} {r}" for c, r in cut[:4]) + ("; ..." if len(cut) > 4 else "")
                return d, f"no version of {name} fits: {parts}"
        # packages every remaining version of a required package depends on are required too
        for name in list(d.versions):
            cands = d.versions[name]
            if not cands:
                continue
            dep_sets = [{dep.name: dep for dep in _pkg_deps(c)} for c in cands]
            for m in sorted(set.intersection(*(set(s) for s in dep_sets))):  # sorted: the same words whatever the hash seed
                allowed: dict[object, PackageCandidate] = {}
                for s in dep_sets:
                    for x in provider.spec_matches(m, [s[m], *direct.get(m, [])]):
                        allowed[x.version] = x
                texts = sorted({s[m].text for s in dep_sets})
                shown = " or ".join(texts) if len(texts) <= 3 else f"one of {len(texts)} different {m} versions"
                origin = f"{_span(cands)} requires {shown}"
                if m not in d.versions:
                    d.versions[m] = sorted(allowed.values(), key=lambda x: x.version, reverse=True)
                    d.origin[m] = [origin]
                    d.texts[m] = [PackageRequirement(m, s[m].specifier, f"{m} (needed by {name})") for s in dep_sets[:1]]
                    changed = True
                    if not d.versions[m]:
                        return d, f"{origin}, and no version of {m} matches"
                else:
                    narrowed = [x for x in d.versions[m] if x.version in allowed]
                    if len(narrowed) < len(d.versions[m]):
                        d.versions[m] = narrowed
                        if origin not in d.origin[m]:
                            d.origin[m].append(origin)
                        changed = True
                        if not narrowed:
                            return d, f"{'; '.join(d.origin[m])}: no version of {m} is left"
        if not changed:
            break
    return d, None


def prune_singletons(
    provider: "Provider", direct: dict[str, list[PackageRequirement]], domains: Domains, family: str | None = None
) -> tuple[Domains, str | None]:
    """Stronger and dearer (used only when the search runs long): try each remaining version alone and
    cut it when pruning then fails (singleton arc consistency). Proves cycles such as "every a 1.k needs
    b==1.k, and b 1.k excludes a 1.k" that plain pruning lets through."""
    d = domains
    changed = True
    while changed:
        changed = False
        for name in list(d.versions):
            keep: list[PackageCandidate] = []
            cut: list[tuple[PackageCandidate, str]] = []
            for c in d.versions[name]:
                trial = Domains({n: list(v) for n, v in d.versions.items()}, d.origin, d.texts)
                trial.versions[name] = [c]
                _, why = prune(provider, direct, start=trial, family=family)
                if why is None:
                    keep.append(c)
                else:
                    cut.append((c, why))
            if cut:
                changed = True
                d = Domains({**d.versions, name: keep}, d.origin, d.texts)
                d, why = prune(provider, direct, start=d, family=family)
                if not keep or why:
                    first = "; ".join(f"{c} fails: {r}" for c, r in cut[:2])
                    more = f" (and {len(cut) - 2} more version{'s' if len(cut) > 3 else ''} of {name})" if len(cut) > 2 else ""
                    return d, why if (keep and why) else f"no version of {name} fits with the rest: {first}{more}"
    return d, None


def describe_families(domains: Domains) -> str:
    """Debug aid: the families each required package can still have."""
    return "; ".join(f"{n}: {fams({c.family for c in v})}" for n, v in sorted(domains.versions.items()))
