"""Verify before load covers the path that loads: the run views (folders of links into the store under
$HUBCTL_HOME/views/) are checked on every run, so a link re-pointed at other bytes, a file planted beside the
links, or an edited config in a config view never reaches diffusers. Real tiny demo models, the real store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hubctl.lock.lockfile import read_lock
from hubctl.run.verify import verify_locked_set
from hubctl.store.blobs import Store


@pytest.fixture
def synced(cli, demo_registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("add", "demo-sd==1.4", "demo-style").exit_code == 0
    assert cli("sync").exit_code == 0
    return read_lock(tmp_path / "hubctl.lock")


def _assert_view_is_the_lock(root: Path, files: dict[str, str]) -> None:
    st = Store()
    seen = {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}
    assert seen == set(files), f"the view holds {sorted(seen ^ set(files))} beyond the lock"
    for rel, sha in files.items():
        assert os.readlink(root / rel) == str(st.blob_path(sha)), f"{rel} points elsewhere"


def test_a_repointed_link_in_a_run_view_is_never_loaded(synced, tmp_path):
    vset = verify_locked_set(synced)
    root = vset.base.root
    unet = root / "unet" / "diffusion_pytorch_model.safetensors"
    other = vset.adapters[0].weights.resolve()  # other bytes, still a blob of the store
    os.unlink(unet)
    os.symlink(other, unet)
    again = verify_locked_set(synced)
    _assert_view_is_the_lock(again.base.root, again.base.sha256)


def test_a_file_planted_beside_the_links_of_a_run_view_is_never_loaded(synced, tmp_path):
    vset = verify_locked_set(synced)
    planted = vset.base.root / "unet" / "diffusion_pytorch_model.bin"  # diffusers would consider it
    planted.write_bytes(b"not from the lock")
    again = verify_locked_set(synced)
    _assert_view_is_the_lock(again.base.root, again.base.sha256)


def test_an_edited_config_in_a_config_view_is_rewritten(demo_hub, hubctl_home):
    from hubctl.run.configs import family_config_dir
    from hubctl.run.verify import artefact_from_path

    base = artefact_from_path(demo_hub.file("demo-sd", "1.4", "single-file"), family="demo-sd1", prediction="epsilon")
    folder = family_config_dir(base)
    cfg = folder / "unet" / "config.json"
    want = cfg.read_bytes()
    os.chmod(cfg, 0o644)
    cfg.write_text(json.dumps({**json.loads(want), "cross_attention_dim": 64}))
    again = family_config_dir(base)
    assert (again / "unet" / "config.json").read_bytes() == want
