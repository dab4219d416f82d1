"""Small in-memory hubs shaped like the demo hub and the real registry, for resolver, lock and project
tests (owned by the resolve/lock work). Manifests are real ``Manifest`` values built through
``parse_manifest``; file hashes here are placeholders unless a test writes real files (see
``write_file_hub``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from hubctl.registry.manifest import Manifest, parse_manifest
from hubctl.resolve import MemoryIndex

GiB = 1024**3


def fake_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def variant(name: str, dtype: str | None, size: int, *, path: str = "model.safetensors", source: str | None = None) -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name,
        "files": [{"path": path, "size": size, "sha256": fake_sha(f"{name}/{path}/{size}"), "source": source or f"https://example.org/{name}/{path}"}],
    }
    if dtype:
        v["dtype"] = dtype
    return v


def version(ver: str, family: str, *, requires: list[str] | None = None, yanked: bool = False, variants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"version": ver, "family": family, "variants": variants or [variant("fp16", "fp16", 1000)]}
    if requires:
        d["requires"] = requires
    if yanked:
        d["yanked"] = True
    return d


def manifest(name: str, kind: str, versions: list[dict[str, Any]]) -> Manifest:
    return parse_manifest({"name": name, "kind": kind, "versions": versions}, origin=f"<{name}>")


def demo_manifests() -> list[Manifest]:
    """Shaped like the demo hub (issue 2 item 7)."""
    return [
        manifest("demo-sd", "checkpoint", [version("1.4", "demo-sd1"), version("2.0", "demo-sd2"), version("2.1b1", "demo-sd2")]),
        manifest("demo-style", "lora", [version("1.0", "demo-sd1"), version("2.0", "demo-sd2")]),
        manifest("demo-token", "embedding", [version("1.0", "demo-sd1")]),
        manifest("demo-canny", "controlnet", [version("1.0", "demo-sd1")]),
    ]


def demo_index() -> MemoryIndex:
    return MemoryIndex(demo_manifests())


def real_like_index() -> MemoryIndex:
    """Shaped like the default registry: the stable-diffusion 1.x -> 2.x line and adapters with requires."""
    sd_variants = lambda n: [variant("fp32", "fp32", 2 * n), variant("fp16", "fp16", n)]  # noqa: E731
    return MemoryIndex(
        [
            manifest(
                "stable-diffusion",
                "checkpoint",
                [
                    version("1.4", "sd1", variants=sd_variants(2 * GiB)),
                    version("1.5", "sd1", variants=sd_variants(2 * GiB)),
                    version("2.0", "sd2", variants=sd_variants(3 * GiB)),
                    version("2.1", "sd2", variants=sd_variants(3 * GiB)),
                    version("2.2rc1", "sd2", variants=sd_variants(3 * GiB)),
                ],
            ),
            manifest("arcane-style", "lora", [version("1.0", "sd1", requires=["stable-diffusion>=1.4,<2"])]),
            manifest("old-style", "lora", [version("1.0", "sd1", requires=["stable-diffusion<1.5"])]),
            manifest(
                "moving-style",
                "lora",
                [version("1.0", "sd1"), version("1.1", "sd1"), version("2.0", "sd2"), version("3.0", "sd2")],
            ),
            manifest("canny", "controlnet", [version("1.0", "sd1"), version("1.1", "sd1"), version("1.2", "sd1", yanked=True)]),
            manifest("broken-dep", "lora", [version("1.0", "sd1", requires=["does-not-exist"])]),
            manifest("sd2-vae", "vae", [version("1.0", "sd2")]),
        ]
    )


# ------------------------------------------------------------------ a registry folder with real files


_FAMILIES_TOML = """\
# tiny look-alikes of sd1/sd2 for resolver and lock tests
[[families]]
id = "demo-sd1"
cross_attention_dim = 32
text_encoder_widths = [32]
text_encoder_layers = [2]

[[families]]
id = "demo-sd2"
cross_attention_dim = 64
text_encoder_widths = [64]
text_encoder_layers = [2]
use_linear_projection = true
prediction_types = ["v_prediction"]
"""

# package -> kind, [(version, family, {file path: tensor seed})]
FILE_HUB: dict[str, tuple[str, list[tuple[str, str, dict[str, int]]]]] = {
    "demo-sd": (
        "checkpoint",
        [
            ("1.4", "demo-sd1", {"unet/diffusion_pytorch_model.safetensors": 14, "model_index.json": 0}),
            ("2.0", "demo-sd2", {"unet/diffusion_pytorch_model.safetensors": 20, "model_index.json": 0}),
            ("2.1b1", "demo-sd2", {"unet/diffusion_pytorch_model.safetensors": 21, "model_index.json": 0}),
        ],
    ),
    "demo-style": ("lora", [("1.0", "demo-sd1", {"demo-style.safetensors": 101}), ("2.0", "demo-sd2", {"pytorch_lora_weights.safetensors": 102})]),
    "demo-token": ("embedding", [("1.0", "demo-sd1", {"learned_embeds.safetensors": 201})]),
}


def _write_artefact(path: Path, seed: int) -> None:
    """A real (tiny) safetensors file, or a small JSON config for ``seed == 0``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if seed == 0:
        path.write_text('{"_class_name": "StableDiffusionPipeline"}\n')
        return
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    save_file({"weight": rng.standard_normal((8, 8)).astype("float32")}, str(path))


def write_file_hub(root: Path) -> Path:
    """Write a registry folder (families + manifests) whose every file is real, on disk, with its size and
    sha256, served by ``file://`` sources. Returns the registry folder."""
    import tomli_w

    reg = root / "registry"
    (reg / "manifests").mkdir(parents=True, exist_ok=True)
    (reg / "families.toml").write_text(_FAMILIES_TOML)
    for name, (kind, versions) in FILE_HUB.items():
        vers = []
        for ver, family, files in versions:
            refs = []
            for rel, seed in files.items():
                p = root / "files" / name / ver / rel
                _write_artefact(p, seed)
                data = p.read_bytes()
                refs.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "source": p.as_uri()})
            vers.append({"version": ver, "family": family, "variants": [{"name": "fp32", "dtype": "fp32", "files": refs}]})
        d = reg / "manifests" / kind
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.toml").write_text(tomli_w.dumps({"name": name, "kind": kind, "versions": vers}))
    return reg


def register_file_hub(root: Path) -> Path:
    """Write the file hub and add it as a registry (through the real registries/index code)."""
    from hubctl.registry.manage import add_registry

    reg = write_file_hub(root)
    add_registry(str(reg), name="testhub")
    return reg


def project_with_file_hub(tmp_path: Path) -> Path:
    """Register the file hub (under ``tmp_path/hub``) and return an empty project folder ``tmp_path/proj``."""
    register_file_hub(tmp_path / "hub")
    d = tmp_path / "proj"
    d.mkdir()
    return d


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project tests' working folder: the file hub registered, cwd in an empty project folder."""
    d = project_with_file_hub(tmp_path)
    monkeypatch.chdir(d)
    return d


def one_file_registry(root: Path, url: str, data: bytes, *, name: str = "net-style", registry: str = "net") -> Path:
    """Add (as ``registry``) a registry folder with one lora ``name`` 1.0 (sd1) whose one file comes from ``url``,
    with the size and sha256 of ``data``: for install tests against a server. Returns the folder."""
    import tomli_w

    from hubctl.registry.manage import add_registry

    reg = root / f"{registry}-registry"
    (reg / "manifests" / "lora").mkdir(parents=True)
    m = {"name": name, "kind": "lora", "summary": "s", "versions": [{"version": "1.0", "family": "sd1",
         "variants": [{"name": "fp16", "dtype": "fp16", "files": [{"path": f"{name}.safetensors", "size": len(data),
                       "sha256": hashlib.sha256(data).hexdigest(), "source": url}]}]}]}
    (reg / "manifests" / "lora" / f"{name}.toml").write_text(tomli_w.dumps(m))
    add_registry(str(reg), name=registry)
    return reg


def seeded_bytes(n: int, seed: int = 1) -> bytes:
    """``n`` deterministic bytes that differ at every offset (a sha256 chain), different for each ``seed``."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def write_one_file_registry(folder: Path, name: str, url: str, data: bytes, *, family: str = "sd1") -> Path:
    """A registry folder with one LoRA package ``name`` 1.0 whose only file (``data``, pinned by size and
    sha256) comes from ``url``: the usual set-up for a test of downloads against a loopback server."""
    (folder / "manifests" / "lora").mkdir(parents=True, exist_ok=True)
    (folder / "manifests" / "lora" / f"{name}.toml").write_text(
        f'name = "{name}"\nkind = "lora"\nsummary = "test"\n[[versions]]\nversion = "1.0"\nfamily = "{family}"\n'
        '[[versions.variants]]\nname = "fp32"\n'
        f'files = [{{ path = "{name}.safetensors", size = {len(data)}, sha256 = "{hashlib.sha256(data).hexdigest()}", source = "{url}" }}]\n'
    )
    return folder
