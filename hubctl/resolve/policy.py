"""The candidate policy, written once: which versions of one package a set of requirements on it admits.

pip's rules, as pip applies them inside resolvelib:

- every specifier must contain the version (PEP 440; ``==1.1`` matches ``1.1+cpu``);
- a pre-release is admitted only when pre-releases are allowed (``--pre`` / ``pre = true``) or a requirement on
  that package names one (``>=2.0b1``, ``==2.0b1``); the requirements are all those on the package in the
  graph being resolved, the user's and every dependency's alike;
- a yanked version (PEP 592) is admitted only when a requirement pins exactly (``==`` without ``*``, or
  ``===``) and every version those requirements admit is yanked (as pip: a yanked release is used only when
  the pin leaves nothing else).

The provider (the search), the explainer (why nothing fits), ``hubctl check`` (which version of a named
package to look at) and ``hubctl install`` all call :func:`admit`, so they cannot disagree. Pure: takes
versions and requirements, never reads the index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

from packaging.version import Version as PEP440Version

from hubctl.resolve.requirements import PackageRequirement

__all__ = ["allows_prereleases", "pins_exactly", "Admission", "admit", "unadmitted_pins"]

T = TypeVar("T")


def allows_prereleases(reqs: Sequence[PackageRequirement], pre: bool) -> bool:
    """``pre``, or a requirement on the package names a pre-release (pip's rule)."""
    return pre or any(r.names_prerelease for r in reqs)


def pins_exactly(reqs: Sequence[PackageRequirement]) -> bool:
    """A requirement pins with ``==`` (no ``*``) or ``===``: then a yanked version may be used (PEP 592)."""
    return any(s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*")) for r in reqs for s in r.specifier)


@dataclass
class Admission(Generic[T]):
    """What the rules make of a package's versions: admitted, and why each other one is not."""

    admitted: list[T] = field(default_factory=list)
    outside: list[T] = field(default_factory=list)  # a specifier excludes it
    prerelease: list[T] = field(default_factory=list)  # a pre-release nothing allows
    yanked: list[T] = field(default_factory=list)  # yanked, and not the only thing an exact pin leaves


def admit(
    items: Sequence[T],
    reqs: Sequence[PackageRequirement],
    *,
    pre: bool,
    version: Callable[[T], PEP440Version],
    yanked: Callable[[T], bool],
) -> Admission[T]:
    """Sort ``items`` (versions of one package, in the caller's order) by the rules; order is kept."""
    out: Admission[T] = Admission()
    allow_pre = allows_prereleases(reqs, pre)
    matching: list[T] = []
    for it in items:
        v = version(it)
        if not all(r.contains(v) for r in reqs):
            out.outside.append(it)
        elif v.is_prerelease and not allow_pre:
            out.prerelease.append(it)
        else:
            matching.append(it)
    keep_yanked = bool(matching) and pins_exactly(reqs) and all(yanked(it) for it in matching)
    for it in matching:
        (out.admitted if keep_yanked or not yanked(it) else out.yanked).append(it)
    return out


def unadmitted_pins(
    pins: dict[str, T],
    roots: Sequence[PackageRequirement],
    *,
    pre: bool,
    releases: Callable[[str], Sequence[T]],
    version: Callable[[T], PEP440Version],
    yanked: Callable[[T], bool],
    requires: Callable[[T], Sequence[PackageRequirement]],
) -> list[T]:
    """The pins of a finished set that the rules do not admit under the requirements the set itself holds
    (``roots`` and every pin's dependencies). resolvelib keeps the requirements of a pin it later replaced
    while it searches, so a pre-release or yanked version admitted on the word of a package no longer in
    the set can survive into its answer; the caller searches again without it."""
    on: dict[str, list[PackageRequirement]] = {}
    for r in [*roots, *(d for p in pins.values() for d in requires(p))]:
        on.setdefault(r.name, []).append(r)
    bad = []
    for name, pin in pins.items():
        if pin not in admit(releases(name), on.get(name, []), pre=pre, version=version, yanked=yanked).admitted:
            bad.append(pin)
    return bad
