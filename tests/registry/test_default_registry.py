"""The bundled default registry loads whole and keeps its promises: known families, well-formed hashes and
pins, the Stable Diffusion 1.x -> 2.x line, and at least twelve real adapters over three kinds and both sd1
and sd2."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from hubctl.config import bundled_registry_path
from hubctl.registry.families import default_families
from hubctl.registry.manifest import Manifest, load_manifest, parse_source

REG = bundled_registry_path()


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    fams = default_families()
    files = sorted((REG / "manifests").glob("*/*.toml"))
    return [load_manifest(f, known_families=fams.ids()) for f in files]


def test_every_manifest_loads_with_a_known_family(manifests: list[Manifest]) -> None:
    known = set(default_families().ids())
    assert len(manifests) >= 15
    for m in manifests:
        for v in m.versions:
            assert v.family in known, (m.name, v.version)


def test_every_hash_is_64_hex_and_every_pin_is_a_full_commit(manifests: list[Manifest]) -> None:
    for m in manifests:
        for v in m.versions:
            for var in v.variants:
                for f in var.files:
                    if f.sha256 is not None:
                        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), (m.name, f.path)
                    src = parse_source(f.source)
                    assert src.scheme in ("hf", "https"), f.source
                    if src.scheme == "hf" and src.revision is not None:
                        # a short commit is not a pin: a manifest names a full 40-hex commit or a branch
                        assert re.fullmatch(r"[0-9a-f]{40}", src.revision) or src.revision == "main", f.source


def test_a_sha256_names_one_file_only(manifests: list[Manifest]) -> None:
    seen: dict[str, str] = {}
    for m in manifests:
        for v in m.versions:
            for var in v.variants:
                for f in var.files:
                    if f.sha256:
                        where = f"{m.name} {v.version} {f.path}"
                        assert seen.setdefault(f.sha256, where) == where, (seen[f.sha256], where)


def test_stable_diffusion_carries_the_1x_to_2x_line(manifests: list[Manifest]) -> None:
    sd = next(m for m in manifests if m.name == "stable-diffusion")
    by_version = {v.version: v for v in sd.versions}
    assert {"1.4", "1.5", "2.0", "2.1"} <= set(by_version)
    assert by_version["1.4"].family == by_version["1.5"].family == "sd1"
    assert by_version["2.0"].family == by_version["2.1"].family == "sd2"
    assert by_version["1.5"].prediction == "epsilon" and by_version["2.1"].prediction == "v_prediction"
    assert {var.layout for var in by_version["1.5"].variants} == {"single-file", "diffusers"}
    emaonly = next(f for var in by_version["1.5"].variants for f in var.files if f.path == "v1-5-pruned-emaonly.safetensors")
    assert emaonly.sha256.startswith("6ce0161689") and emaonly.size == 4265146304  # A1111 shows [6ce0161689]
    base = next(m for m in manifests if m.name == "stable-diffusion-base")
    assert {(v.version, v.prediction, v.resolution) for v in base.versions} == {("2.0", "epsilon", 512), ("2.1", "epsilon", 512)}


def test_at_least_twelve_adapters_over_three_kinds_for_sd1_and_sd2(manifests: list[Manifest]) -> None:
    adapters = [m for m in manifests if m.kind in ("lora", "embedding", "controlnet")]
    assert len(adapters) >= 12
    kinds = Counter(m.kind for m in adapters)
    assert set(kinds) == {"lora", "embedding", "controlnet"}
    for kind in kinds:
        fams = {v.family for m in adapters if m.kind == kind for v in m.versions}
        assert {"sd1", "sd2"} <= fams, kind


def test_adapter_requires_name_a_base_package_of_the_same_family(manifests: list[Manifest]) -> None:
    by_name = {m.name: m for m in manifests}
    for m in manifests:
        for v in m.versions:
            for req in v.requirements:
                base = by_name.get(req.name)
                assert base is not None and base.kind == "checkpoint", (m.name, str(req))
                fitting = [b for b in base.versions if req.specifier.contains(b.parsed)]
                assert fitting and all(b.family == v.family for b in fitting), (m.name, v.version, str(req))


def test_embeddings_say_how_to_use_them_and_civitai_sources_are_download_urls(manifests: list[Manifest]) -> None:
    for m in manifests:
        if m.kind == "embedding":
            for v in m.versions:
                assert v.tokens or v.trigger or m.name == "concept-art", m.name
    civitai = [f.source for m in manifests for v in m.versions for var in v.variants for f in var.files if "civitai.com" in f.source]
    assert civitai and all(re.fullmatch(r"https://civitai\.com/api/download/models/\d+", s) for s in civitai)


def test_the_default_registry_compiles_into_the_index(cli) -> None:
    rows = cli("search", "--json").json()
    assert len(rows) == len(list((REG / "manifests").glob("*/*.toml")))
    assert {r["registry"] for r in rows} == {"default"}
