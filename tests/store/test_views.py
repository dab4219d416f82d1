"""Export views: the layouts tools expect, as links into the store; idempotent; a file hubctl did not make is
never overwritten or deleted. Real files and the real store (packages installed from file:// sources)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from hubctl.errors import BadInput
from hubctl.sources.fetch import install_packages
from hubctl.lock.lockfile import LockedFile, LockedPackage
from hubctl.store.blobs import Store
from hubctl.store.views import MANIFEST_NAME, export, plan_view


def _file(tmp_path: Path, rel: str, data: bytes) -> LockedFile:
    p = tmp_path / "src" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return LockedFile(path=rel, url=p.as_uri(), size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _pkg(name: str, kind: str, family: str, files: list[LockedFile], layout: str | None = None, version: str = "1.0") -> LockedPackage:
    return LockedPackage(name, version, kind, family, "fp16", tuple(files), layout=layout)


@pytest.fixture
def installed(tmp_path):
    base = _pkg("sd15", "checkpoint", "sd1", [_file(tmp_path, "sd15.safetensors", b"ckpt" * 100)], layout="single-file")
    pipe = _pkg("sd2-pipe", "checkpoint", "sd2", [
        _file(tmp_path, "model_index.json", b"{}"),
        _file(tmp_path, "unet/diffusion_pytorch_model.safetensors", b"unet" * 50),
        _file(tmp_path, "unet/config.json", b'{"a": 1}'),
    ], layout="diffusers")
    lora = _pkg("arcane-style", "lora", "sd1", [_file(tmp_path, "arcane.safetensors", b"lora" * 30)])
    emb = _pkg("cat-toy", "embedding", "sd1", [_file(tmp_path, "learned_embeds.safetensors", b"emb" * 10)])
    cn = _pkg("canny", "controlnet", "sd1", [_file(tmp_path, "cn/config.json", b'{"cn": 1}'),
                                             _file(tmp_path, "cn/diffusion_pytorch_model.safetensors", b"cn" * 40)])
    pkgs = [base, pipe, lora, emb, cn]
    install_packages(pkgs, progress=False)
    return pkgs


def _same_inode(a: Path, b: Path) -> bool:
    return os.stat(a).st_ino == os.stat(b).st_ino


def test_a1111_layout_puts_each_kind_where_the_webui_looks(installed, tmp_path):
    root = tmp_path / "webui"
    rep = export("a1111", root)
    st = Store()
    assert sorted(rep.created) == [
        "embeddings/cat-toy.safetensors",
        "models/ControlNet/canny.safetensors",
        "models/Lora/arcane-style.safetensors",
        "models/Stable-diffusion/sd15.safetensors",
    ]
    assert _same_inode(root / "models/Lora/arcane-style.safetensors", st.blob_path(installed[2].files[0].sha256))
    assert rep.link == "hardlink"
    assert any("sd2-pipe 1.0 is a diffusers folder" in n for n in rep.notes)


def test_comfyui_and_invokeai_and_diffusers_layouts(installed, tmp_path):
    comfy = export("comfyui", tmp_path / "comfy")
    assert "models/diffusers/sd2-pipe/unet/diffusion_pytorch_model.safetensors" in comfy.created
    assert "models/checkpoints/sd15.safetensors" in comfy.created
    assert "models/loras/arcane-style.safetensors" in comfy.created
    assert "models/embeddings/cat-toy.safetensors" in comfy.created
    assert "models/controlnet/canny.safetensors" in comfy.created
    invoke = export("invokeai", tmp_path / "invoke")
    assert "models/sd-2/main/sd2-pipe/model_index.json" in invoke.created
    assert "models/sd-1/main/sd15.safetensors" in invoke.created
    assert "models/sd-1/lora/arcane-style.safetensors" in invoke.created
    assert "models/sd-1/controlnet/canny/cn/config.json" in invoke.created
    diff = export("diffusers", tmp_path / "diff")
    assert "sd2-pipe/unet/config.json" in diff.created
    assert (tmp_path / "diff/sd2-pipe/unet/config.json").read_bytes() == b'{"a": 1}'


def test_export_twice_changes_nothing(installed, tmp_path):
    first = export("comfyui", tmp_path / "c")
    manifest = (tmp_path / "c" / MANIFEST_NAME).read_text()
    second = export("comfyui", tmp_path / "c")
    assert second.created == [] and second.replaced == [] and second.removed == []
    assert sorted(second.kept) == sorted(first.created)
    assert (tmp_path / "c" / MANIFEST_NAME).read_text() == manifest


def test_a_users_file_is_never_overwritten_or_deleted(installed, tmp_path):
    root = tmp_path / "webui"
    mine = root / "models" / "Lora" / "arcane-style.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own lora")
    rep = export("a1111", root)
    assert mine.read_bytes() == b"my own lora"
    assert any(s.startswith("models/Lora/arcane-style.safetensors: exists and was not made by hubctl") for s in rep.skipped)
    assert "models/Lora/arcane-style.safetensors" not in json.loads((root / MANIFEST_NAME).read_text())["files"]
    # a link of ours that the user replaced with their own file is not ours any more: kept when the package goes
    emb = root / "embeddings" / "cat-toy.safetensors"
    emb.unlink()
    emb.write_bytes(b"user replaced it")
    from hubctl.store.installed import uninstall

    uninstall(["cat-toy", "arcane-style"])
    rep2 = export("a1111", root)
    assert emb.read_bytes() == b"user replaced it" and rep2.removed == []
    assert mine.read_bytes() == b"my own lora"


def test_uninstalled_and_upgraded_packages_update_only_hubctls_links(installed, tmp_path):
    root = tmp_path / "comfy"
    export("comfyui", root)
    newer = _pkg("arcane-style", "lora", "sd1", [_file(tmp_path, "v2/arcane.safetensors", b"lora v2")], version="2.0")
    install_packages([newer], progress=False)
    from hubctl.store.installed import uninstall

    uninstall(["cat-toy"])
    rep = export("comfyui", root)
    assert rep.replaced == ["models/loras/arcane-style.safetensors"]
    assert (root / "models/loras/arcane-style.safetensors").read_bytes() == b"lora v2"
    assert rep.removed == ["models/embeddings/cat-toy.safetensors"]
    assert not (root / "models/embeddings").exists()  # a folder hubctl made, now empty


def test_symlinks_when_hardlinks_are_impossible(installed, tmp_path, monkeypatch):
    import errno

    def no_hardlinks(*a, **k):  # another filesystem: simulated, a second mount needs root
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_hardlinks)
    rep = export("comfyui", tmp_path / "c")
    p = tmp_path / "c" / "models/loras/arcane-style.safetensors"
    assert p.is_symlink() and p.read_bytes() == b"lora" * 30
    assert export("comfyui", tmp_path / "c").created == []
    assert rep.created


def test_an_unknown_layout_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="unknown layout 'foo'"):
        plan_view("foo", [])


def test_export_cli_prints_a_summary_and_json(installed, tmp_path, cli):
    r = cli("export", "--layout", "a1111", str(tmp_path / "w"))
    assert r.exit_code == 0 and "a1111 view in" in r.stderr and "4 created" in r.stderr
    r = cli("export", "--layout", "a1111", str(tmp_path / "w"), "--json")
    assert r.exit_code == 0 and len(r.json()["kept"]) == 4
    r = cli("export", "--layout", "nope", str(tmp_path / "w"))
    assert r.exit_code == 2
