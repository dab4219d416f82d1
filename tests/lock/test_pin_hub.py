"""Pinning hf:// sources against a Hub-compatible server on 127.0.0.1 (real git repos, real huggingface_hub
code through hubctl.sources.fetch.pin_file): a branch is locked to its 40-hex commit with the file's sha256 and
size; `hubctl lock` keeps that pin after the branch moves; `--upgrade` moves it; sync fetches exactly it."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAMILIES = '[[families]]\nid = "demo-sd1"\ncross_attention_dim = 32\ntext_encoder_widths = [32]\ntext_encoder_layers = [2]\n'


@pytest.fixture
def hf_project(tmp_path, monkeypatch, hub_server):
    from hubctl.registry.manage import add_registry

    first = hub_server.create_repo("org/hf-style", {"style.safetensors": b"first version of the bytes"})
    reg = tmp_path / "registry"
    (reg / "manifests" / "lora").mkdir(parents=True)
    (reg / "families.toml").write_text(FAMILIES)
    manifest = {"name": "hf-style", "kind": "lora", "versions": [{"version": "1.0", "family": "demo-sd1", "variants": [
        {"name": "fp16", "dtype": "fp16", "files": [{"path": "style.safetensors", "source": "hf://org/hf-style@main/style.safetensors"}]}]}]}
    (reg / "manifests" / "lora" / "hf-style.toml").write_text(tomli_w.dumps(manifest))
    add_registry(str(reg), name="hfreg")
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    return proj, first


def _file(proj: Path) -> dict:
    return tomllib.loads((proj / "hubctl.lock").read_text())["packages"][0]["files"][0]


def test_a_branch_is_pinned_to_its_commit_and_kept_until_upgrade(cli, hf_project, hub_server, hubctl_home):
    proj, first = hf_project
    r = cli("add", "hf-style")
    assert r.exit_code == 0, r.output
    f = _file(proj)
    assert f["commit-id"] == first and f["requested-revision"] == "main"
    assert f["url"] == f"hf://org/hf-style@{first}/style.safetensors"
    assert f["hashes"]["sha256"] == hashlib.sha256(b"first version of the bytes").hexdigest()
    assert f["size"] == len(b"first version of the bytes")

    second = hub_server.commit("org/hf-style", {"style.safetensors": b"the second version"}, "v2")
    hub_server.stats.reset()
    assert cli("lock").exit_code == 0
    assert _file(proj)["commit-id"] == first  # existing pin kept
    assert hub_server.stats.count() == 0  # and nobody asked the Hub
    assert cli("lock", "--check").exit_code == 0

    assert cli("lock", "--upgrade").exit_code == 0
    f = _file(proj)
    assert f["commit-id"] == second and f["hashes"]["sha256"] == hashlib.sha256(b"the second version").hexdigest()

    r = cli("sync")
    assert r.exit_code == 0, r.output
    blob = hubctl_home / "store" / "sha256" / f["hashes"]["sha256"][:2] / f["hashes"]["sha256"]
    assert blob.read_bytes() == b"the second version"
