"""Generate a synthetic index of N packages (default 100,000) for resolver benchmarks, and compile it into
a real hubctl index database (hubctl.registry.compile.write_index_db: the same SQLite tables `hubctl` reads).

The mix follows what public hubs look like: ~2% checkpoints (base lines on sd1, sd2, sdxl, some crossing
families between major versions, like stable-diffusion 1.x -> 2.x), ~58% LoRAs, ~22% embeddings, ~12%
ControlNets, ~6% VAEs. Each package has 1-8 versions (a few pre-releases, a few yanked); some adapters
move to another family in a later major version; ~30% of adapters carry a `requires` on a base line;
variants fp16 (and often fp32) with realistic sizes. A handful of named packages (``bench-*``) give the
benchmark fixed, known shapes to ask for. Deterministic for a given seed.

    python bench/synth_index.py [--packages 100000] [--out bench/out/synth-100000.db]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FAMILIES = ["sd1", "sd2", "sdxl"]
KIND_MIX = [("checkpoint", 0.02), ("lora", 0.58), ("embedding", 0.22), ("controlnet", 0.12), ("vae", 0.06)]
GiB = 1024**3
MiB = 1024**2


def _sha(*parts: Any) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _variants(name: str, ver: str, kind: str, rng: random.Random) -> list[dict[str, Any]]:
    base = {"checkpoint": 2 * GiB, "lora": 144 * MiB, "embedding": 25_000, "controlnet": 700 * MiB, "vae": 160 * MiB}[kind]
    size16 = int(base * rng.uniform(0.5, 1.6))
    out = [{"name": "fp16", "dtype": "fp16", "files": [{"path": f"{name}.safetensors", "size": size16, "sha256": _sha(name, ver, 16), "source": f"https://files.example.org/{name}/{ver}/fp16.safetensors"}]}]
    if kind in ("checkpoint", "controlnet") or rng.random() < 0.3:
        out.append({"name": "fp32", "dtype": "fp32", "files": [{"path": f"{name}.safetensors", "size": size16 * 2, "sha256": _sha(name, ver, 32), "source": f"https://files.example.org/{name}/{ver}/fp32.safetensors"}]})
        if rng.random() < 0.5:
            out.reverse()  # some registries list fp32 first
    return out


def _version_strings(rng: random.Random) -> list[str]:
    n = rng.choice([1, 1, 1, 2, 2, 3, 3, 4, 5, 8])
    major, minor, out = rng.randint(0, 2), 0, []
    for _ in range(n):
        out.append(f"{major}.{minor}")
        if rng.random() < 0.25:
            major, minor = major + 1, 0
        else:
            minor += 1
    if rng.random() < 0.05:
        out.append(f"{major + 1}.0b1")
    return out


def _named() -> list[dict[str, Any]]:
    """Fixed packages the benchmark asks for (known shapes)."""
    rng = random.Random(7)

    def ver(v: str, fam: str, kind: str, name: str, requires: list[str] | None = None, yanked: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"version": v, "family": fam, "variants": _variants(name, v, kind, rng)}
        if requires:
            d["requires"] = requires
        if yanked:
            d["yanked"] = True
        return d

    out = [
        {"name": "bench-sd", "kind": "checkpoint", "versions": [ver(v, f, "checkpoint", "bench-sd") for v, f in [("1.4", "sd1"), ("1.5", "sd1"), ("1.6", "sd1"), ("2.0", "sd2"), ("2.1", "sd2"), ("2.2rc1", "sd2"), ("3.0", "sdxl")]]},
        {"name": "bench-vae", "kind": "vae", "versions": [ver("1.0", "sd1", "vae", "bench-vae"), ver("2.0", "sd2", "vae", "bench-vae")]},
    ]
    for i in range(6):  # adapters: newest versions moved to sd2/sdxl, older ones fit sd1 -> backtracking
        name = f"bench-lora-{i}"
        out.append({"name": name, "kind": "lora", "versions": [
            ver("1.0", "sd1", "lora", name, ["bench-sd>=1.4,<2"]),
            ver("1.1", "sd1", "lora", name, ["bench-sd>=1.4,<2"]),
            ver("1.2", "sd1", "lora", name, ["bench-sd>=1.4,<2"], yanked=(i == 0)),
            ver("2.0", "sd2", "lora", name, ["bench-sd>=2,<3"]),
            ver("3.0", "sdxl", "lora", name, ["bench-sd>=3"]),
        ]})
    # an adapter whose every sd1 version needs an old base: no set with bench-sd>=1.5 exists
    out.append({"name": "bench-old", "kind": "embedding", "versions": [ver(f"1.{k}", "sd1", "embedding", "bench-old", ["bench-sd<1.5"]) for k in range(40)]})
    # two adapters that need opposite helper ranges, 30 versions each: resolvelib has to prove it
    out.append({"name": "bench-helper", "kind": "embedding", "versions": [ver(f"{m}.{k}", "sd1", "embedding", "bench-helper") for m in (1, 2) for k in range(10)]})
    out.append({"name": "bench-left", "kind": "lora", "versions": [ver(f"1.{k}", "sd1", "lora", "bench-left", ["bench-helper<2"]) for k in range(30)]})
    out.append({"name": "bench-right", "kind": "lora", "versions": [ver(f"1.{k}", "sd1", "lora", "bench-right", ["bench-helper>=2"]) for k in range(30)]})
    # a cycle that pruning cannot cut, so the search must prove it: every bench-ping 1.k needs
    # bench-pong==1.k, and every bench-pong 1.k excludes the bench-ping of the same number
    out.append({"name": "bench-ping", "kind": "lora", "versions": [ver(f"1.{k}", "sd1", "lora", "bench-ping", [f"bench-pong==1.{k}"]) for k in range(50)]})
    out.append({"name": "bench-pong", "kind": "embedding", "versions": [ver(f"1.{k}", "sd1", "embedding", "bench-pong", [f"bench-ping!=1.{k}"]) for k in range(50)]})
    return out


def synth_dicts(n: int = 100_000, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Manifest mappings: the named bench packages, then generated ones up to ``n`` in total."""
    rng = random.Random(seed)
    named = _named()
    yield from named
    kinds = [k for k, _ in KIND_MIX]
    weights = [w for _, w in KIND_MIX]
    bases: list[str] = []
    for i in range(n - len(named)):
        kind = rng.choices(kinds, weights)[0]
        name = f"{kind}-{i:06d}"
        fam = rng.choices(FAMILIES, [0.55, 0.15, 0.30])[0]
        versions = []
        for j, v in enumerate(_version_strings(rng)):
            if j and rng.random() < (0.5 if kind == "checkpoint" else 0.08):
                fam = rng.choice(FAMILIES)  # a later version moved to another base
            d: dict[str, Any] = {"version": v, "family": fam, "variants": _variants(name, v, kind, rng)}
            if kind != "checkpoint" and bases and rng.random() < 0.3:
                d["requires"] = [f"{rng.choice(bases)}>={rng.randint(0, 2)}.0"]
            if rng.random() < 0.02:
                d["yanked"] = True
            versions.append(d)
        if kind == "checkpoint" and len(bases) < 500:
            bases.append(name)
        yield {"name": name, "kind": kind, "summary": f"synthetic {kind} {i}", "versions": versions}


def families_table() -> Any:
    from hubctl.registry.families import default_families

    return default_families()


def build(out: Path, n: int = 100_000, seed: int = 1) -> tuple[Path, float]:
    """Validate ``n`` synthetic manifests and write them as a real index database; (path, seconds)."""
    from hubctl.registry.compile import write_index_db
    from hubctl.registry.manifest import Manifest

    t0 = time.perf_counter()
    manifests = (("synthetic", Manifest.model_validate(d)) for d in synth_dicts(n, seed))
    write_index_db(out, families_table(), manifests, fingerprint=f"synthetic-{n}-{seed}")
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    out = a.out or REPO / "bench" / "out" / f"synth-{a.packages}.db"
    path, secs = build(out, a.packages, a.seed)
    print(f"wrote {path} ({a.packages} packages) in {secs:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
