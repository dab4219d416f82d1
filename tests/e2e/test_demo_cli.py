"""End to end: a real ``hubctl demo`` process on a fresh HUBCTL_HOME, offline, builds the hub, registers it
and walks the whole main job, ending with an image in its --out folder. The one subprocess run of the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_hubctl_demo_builds_registers_and_walks_to_an_image(tmp_path: Path, hubctl_home: Path) -> None:
    out = tmp_path / "demo"
    # one torch thread: the suite runs two workers on two cores (oversubscribed threads spin for minutes)
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_COLOR="1", COLUMNS="120", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "hubctl", "demo", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    text = proc.stdout
    for heading in (
        "hubctl demo: build the offline demo hub",
        "Register it as a registry",
        "Step 1: Search the index",
        "Step 2: Look at a package",
        "Summary",
    ):
        assert heading in text, heading
    assert "0 failed" in text
    assert "Traceback" not in proc.stderr
    # the registry is registered in the demo's own HUBCTL_HOME (under --out) and points at the hub just built;
    # the user's HUBCTL_HOME is untouched
    reg = (out / "home" / "registries.toml").read_text()
    assert str(out / "registry") in reg and 'name = "demo"' in reg
    assert not (hubctl_home / "registries.toml").exists() and not (hubctl_home / "state.db").exists()
    assert (out / "registry" / "manifests" / "checkpoint" / "demo-sd.toml").is_file()
    # whatever later capabilities exist were walked: with generate in this build, the image is there
    if "Step 10: Generate an image" in text and "skipped: `hubctl generate`" not in text:
        png = out / "demo.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if "`hubctl check` is not part" not in text:
        assert "refused, as it should be" in text
