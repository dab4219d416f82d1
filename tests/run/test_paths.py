"""``hubctl.paths()``: the verified files of a lock, by package; refusals when a file is missing or changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hubctl
from hubctl.errors import BadInput, Refused
from tests._hubs import register_file_hub


@pytest.fixture
def synced(tmp_path, monkeypatch, cli) -> Path:
    register_file_hub(tmp_path / "hub")
    d = tmp_path / "proj"
    d.mkdir()
    monkeypatch.chdir(d)
    assert cli("add", "demo-sd<2", "demo-token").exit_code == 0
    assert cli("sync").exit_code == 0
    return d / "hubctl.lock"


def test_paths_returns_store_files_by_package_and_path(synced, monkeypatch, hubctl_home):
    monkeypatch.setenv("HUBCTL_LOCK", str(synced))
    got = hubctl.paths()
    assert set(got) == {"demo-sd", "demo-token"}
    assert set(got["demo-sd"]) == {"model_index.json", "unet/diffusion_pytorch_model.safetensors"}
    p = got["demo-sd"]["model_index.json"]
    assert p.is_absolute() and p.is_relative_to(hubctl_home / "store") and b"StableDiffusionPipeline" in p.read_bytes()
    assert hubctl.paths(synced) == got


def test_paths_refuses_a_changed_file(synced, hubctl_home):
    blob = hubctl.paths(synced)["demo-token"]["learned_embeds.safetensors"]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(Refused, match=r"demo-token 1\.0 learned_embeds\.safetensors: content changed.*run `hubctl sync`"):
        hubctl.paths(synced)


def test_paths_refuses_a_missing_file(synced):
    blob = hubctl.paths(synced)["demo-sd"]["model_index.json"]
    os.unlink(blob)
    with pytest.raises(Refused, match="demo-sd 1.4 model_index.json: missing from the store"):
        hubctl.paths(synced)


def test_paths_outside_hubctl_run_says_how_to_run_it(monkeypatch):
    monkeypatch.delenv("HUBCTL_LOCK", raising=False)
    with pytest.raises(BadInput, match="HUBCTL_LOCK is not set: run this script with `hubctl run SCRIPT.py`"):
        hubctl.paths()
