"""`hubctl generate` as a user runs it: a real subprocess in a project folder (imports torch/diffusers for
real), then the PNG read back by Pillow, then a replay in a second process that must match bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def _hubctl(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HUBCTL_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "hubctl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_generate_then_replay_in_fresh_processes(demo_registry, hubctl_home, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("add", "demo-sd<2", "demo-token").exit_code == 0
    assert cli("sync").exit_code == 0
    r = _hubctl(["generate", "--prompt", "a photo of <demo-token>", "--seed", "3", "--steps", "2", "--out", "out.png", "--json"],
                tmp_path, hubctl_home)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (64, 64)
        assert im.text["parameters"].startswith("a photo of <demo-token>\nSteps: 2, Sampler: PLMS, CFG scale: 7.5, Seed: 3, Size: 64x64")
        assert json.loads(im.text["hubctl"])["run_id"] == rec["id"]
    again = _hubctl(["generate", "--replay", rec["id"], "--out", "again.png"], tmp_path, hubctl_home)
    assert again.returncode == 0, again.stderr
    assert "identical" in again.stdout
    assert Image.open(tmp_path / "again.png").tobytes() == Image.open(tmp_path / "out.png").tobytes()
