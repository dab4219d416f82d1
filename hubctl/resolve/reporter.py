"""Explanations of why no compatible set exists, in plain words with the chain that led there
("demo-style>=2 needs family demo-sd2; you asked for demo-sd<2 (demo-sd1)"). Pure: takes the
requirements, the candidates each allows, or resolvelib's conflict causes, and returns one line.
"""

from __future__ import annotations

from typing import Any, Sequence

from hubctl.resolve.candidates import PackageCandidate
from hubctl.resolve.requirements import FamilyRequirement, PackageRequirement

__all__ = ["fams", "explain_no_match", "explain_family_split", "explain_conflict"]


def fams(families: set[str] | list[str]) -> str:
    """``demo-sd1`` or ``demo-sd1 or demo-sd2``."""
    return " or ".join(sorted(set(families)))


def _text(reqs: Sequence[PackageRequirement]) -> str:
    return " and ".join(dict.fromkeys(r.text for r in reqs))


def explain_no_match(name: str, reqs: Sequence[PackageRequirement], releases: Sequence[PackageCandidate], pre: bool) -> str:
    """No version of ``name`` is admitted by ``reqs`` under :mod:`hubctl.resolve.policy` (specifiers,
    pre-releases, yanked versions): say which rule left each candidate out and how to allow it."""
    from hubctl.resolve.policy import admit

    a = admit(releases, reqs, pre=pre, version=lambda c: c.version, yanked=lambda c: c.release.yanked)
    shown = ", ".join(c.release.version for c in releases[:8]) + (", ..." if len(releases) > 8 else "")
    hint = ""
    if a.prerelease:
        vs = ", ".join(c.release.version for c in a.prerelease)
        hint = f"; {vs} {'is a pre-release' if len(a.prerelease) == 1 else 'are pre-releases'} (allow with --pre or by naming one)"
    elif a.yanked:
        vs = ", ".join(c.release.version for c in a.yanked)
        pin = f"{name}=={a.yanked[0].release.version}"
        hint = f"; {vs} {'is' if len(a.yanked) == 1 else 'are'} yanked (pin it with {pin} to use it anyway)"
    spec = " and ".join(dict.fromkeys(r.text[len(r.name):] or "any version" for r in reqs))
    return f"no version of {name} matches {spec} (versions: {shown}){hint}"


def explain_family_split(groups: Sequence[tuple[Sequence[PackageRequirement], str, set[str]]]) -> str | None:
    """``groups``: (the requirements on one package, its kind, the families its allowed versions have).
    Return the plain-words reason when no family is common to all, else None."""
    if not groups:
        return None
    common = set.intersection(*(g[2] for g in groups))
    if common:
        return None
    # the first pair that cannot meet, bases stated as "you asked for", adapters as "needs family"
    for i, (ra, ka, fa) in enumerate(groups):
        for rb, kb, fb in groups[i + 1 :]:
            if fa & fb:
                continue
            if ka == "checkpoint" and kb != "checkpoint":
                (ra, ka, fa), (rb, kb, fb) = (rb, kb, fb), (ra, ka, fa)
            if kb == "checkpoint" and ka != "checkpoint":
                return f"{_text(ra)} needs family {fams(fa)}; you asked for {_text(rb)} ({fams(fb)})"
            return f"{_text(ra)} needs family {fams(fa)}; {_text(rb)} needs family {fams(fb)}"
    listed = "; ".join(f"{_text(r)} ({fams(f)})" for r, _, f in groups)
    return f"no family fits all of: {listed}"


def _who(parent: Any) -> str:
    return "you asked for" if parent is None else f"{parent} requires"


def explain_conflict(causes: Sequence[Any], known: Any = None) -> str:
    """resolvelib's ``ResolutionImpossible.causes`` (requirement, parent) -> one line."""
    parts: list[str] = []
    by_family: dict[str, list[Any]] = {}
    for c in causes:
        if isinstance(c.requirement, FamilyRequirement):
            by_family.setdefault(c.requirement.family, []).append(c.parent)
    if len(by_family) > 1:
        for family, parents in sorted(by_family.items()):
            uniq = list(dict.fromkeys(str(p) for p in parents))
            names = uniq[0] if len(uniq) == 1 else f"{uniq[0]} (and {len(uniq) - 1} more)"
            parts.append(f"{names} {'needs' if len(parents) == 1 else 'need'} family {family}")
    by_req: dict[str, list[Any]] = {}
    for c in causes:
        if isinstance(c.requirement, PackageRequirement):
            by_req.setdefault(c.requirement.text, []).append(c)
    for text, cs in by_req.items():
        missing = known is not None and not known(cs[0].requirement.name)
        parents = list(dict.fromkeys(str(c.parent) if c.parent is not None else None for c in cs))
        if None in parents:
            who = "you asked for"
        elif len(parents) == 1:
            who = f"{parents[0]} requires"
        else:
            who = f"{parents[0]} (and {len(parents) - 1} more) require"
        parts.append(f"{who} {text}" + (", which no configured registry has" if missing else ""))
    if len(by_family) == 1 and not parts:
        (family, parents), = by_family.items()
        parts.append(f"{', '.join(dict.fromkeys(str(p) for p in parents))} need family {family}, which nothing else allows")
    return "no compatible set: " + "; ".join(dict.fromkeys(parts))
