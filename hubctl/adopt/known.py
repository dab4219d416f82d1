"""What a hash is: every file hubctl knows, by its sha256 and by the short forms users see, with the package it
belongs to. Three sources, in this order of preference:

- the registries (the index): each manifest file that states a sha256, with its package, version and variant
  (``whole``: the file is its variant's only weight file, so the file alone is that package);
- the store's roots (installed packages, synced locks, adopted files): their locked packages;
- adopted files (:mod:`hubctl.adopt.state`): every hash form adopt computed (the data-only sha256 behind
  A1111's LoRA hash and Civitai's AutoV3, AutoV1, BLAKE3 when the project computes it).

A reference matches by a full hash or by a prefix of at least 8 hex digits of any full form (AutoV2 is the first
10 of the sha256, AutoV3 the first 12 of the data-only sha256), or by AutoV1 exactly. An answer is a set of
sha256s: one is a match, several are ambiguous (the caller says so and never picks one). Pure lookups over
values read once; writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

__all__ = ["Match", "KnownHashes", "HEX_RE"]

HEX_RE = re.compile(r"^[0-9a-f]{8,64}$")
_WEIGHTS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class Match:
    """One place a sha256 is known: a package (name, version, variant, kind, family), the file's path in it,
    where the knowledge comes from ("registry NAME", "root KEY", "adopted PATH") and whether the file alone is
    the whole variant."""

    sha256: str
    name: str
    version: str
    variant: str
    kind: str
    family: str
    path: str
    where: str
    whole: bool = True
    size: Optional[int] = None


@dataclass
class KnownHashes:
    """Every known file, by sha256; the other hash forms point at the sha256 they belong to."""

    registry: dict[str, list[Match]] = field(default_factory=dict)
    roots: dict[str, list[Match]] = field(default_factory=dict)
    forms: dict[str, set[str]] = field(default_factory=dict)  # full hash of another form -> sha256s
    autov1: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, index: Any, *, adopted: Optional[dict[str, Any]] = None, roots: bool = True) -> "KnownHashes":
        """From the index's manifests, the store's roots and the adopted files."""
        k = cls()
        if index is not None:
            for name in index.names():
                m = index.get(name)
                if m is None:
                    continue
                reg = _registry_of(index, name)
                for v in m.versions:
                    for var in v.variants:
                        weights = [f for f in var.files if f.path.lower().endswith(_WEIGHTS)]
                        for f in var.files:
                            if f.sha256:
                                k.registry.setdefault(f.sha256, []).append(Match(
                                    f.sha256, m.canonical_name, v.version, var.name, m.kind, v.family, f.path,
                                    f"registry {reg}", whole=len(var.files) == 1 or weights == [f], size=f.size))
        if roots:
            from hubctl.store.roots import packages_by_root

            for key, pkgs in packages_by_root().items():
                for p in pkgs:
                    for f in p.files:
                        k.roots.setdefault(f.sha256, []).append(Match(
                            f.sha256, p.name, p.version, p.variant, p.kind, p.family, f.path, f"root {key}",
                            whole=len(p.files) == 1, size=f.size))
        if adopted is None:
            from hubctl.adopt.state import read_adopted

            adopted = read_adopted()
        for a in adopted.values():
            k.add_forms(a.sha256, a.hashes)
        return k

    def add_forms(self, sha256: str, hashes: dict[str, str]) -> None:
        """Remember the other hash forms of a file (data-only sha256, BLAKE3, AutoV1...)."""
        for key, value in hashes.items():
            v = str(value).lower()
            if key == "autov1" and re.match(r"^[0-9a-f]{8}$", v):
                self.autov1.setdefault(v, set()).add(sha256)
            elif len(v) == 64 and HEX_RE.match(v) and key not in ("sha256",):
                self.forms.setdefault(v, set()).add(sha256)
        self.forms.setdefault(sha256, set()).add(sha256)

    def matches(self, sha256: str) -> list[Match]:
        """The packages a sha256 belongs to: registries first, then roots (whole-file matches first)."""
        out = list(self.registry.get(sha256, [])) + list(self.roots.get(sha256, []))
        return sorted(out, key=lambda m: (not m.whole, not m.where.startswith("registry")))

    def lookup(self, value: str) -> set[str]:
        """The sha256s a hash (full, or a prefix of 8+ hex digits of any form, or an AutoV1) can be."""
        v = value.strip().lower()
        if not HEX_RE.match(v):
            return set()
        out: set[str] = set()
        if len(v) == 64:
            if v in self.registry or v in self.roots:
                out.add(v)
            out |= self.forms.get(v, set())
            return out
        for full in _all_keys(self):
            if full.startswith(v):
                out |= self.forms.get(full, set()) if full in self.forms else {full}
        if len(v) == 8:
            out |= self.autov1.get(v, set())
        return out


def _all_keys(k: KnownHashes) -> Iterable[str]:
    yield from k.registry
    yield from k.roots
    yield from k.forms


def _registry_of(index: Any, name: str) -> str:
    try:
        return str(index.registry_of(name))
    except (KeyError, AttributeError):
        return "?"
