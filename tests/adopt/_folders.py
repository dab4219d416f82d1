"""Real-shaped model folders of other tools, for the adopt and import tests: A1111 / Forge and ComfyUI layouts
filled with sparse safetensors (tests/fixtures/sparse.py: real headers, gigabytes on paper, nothing on disk),
duplicates, a LoRA no registry knows, a pickle, symlink loops and (for a user who is not root) an unreadable file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["sparse_copy", "a1111_folder", "comfyui_folder", "sha256", "run_without_file_override", "PICKLE"]

PICKLE = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s."  # {'a': 1}, never loaded


def sparse_copy(src: Path, dst: Path) -> Path:
    """A copy of ``src`` with its zero blocks left as holes (a separate inode: a real duplicate)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f, open(dst, "wb") as g:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            if block.count(0) == len(block):
                g.seek(len(block), os.SEEK_CUR)
            else:
                g.write(block)
        g.truncate(f.tell())
    return dst


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def a1111_folder(root: Path, sparse: Any, *, checkpoint: str = "sd1-ldm", demo: Any = None) -> dict[str, Path]:
    """An A1111 webui folder: a checkpoint twice (a duplicate), a LoRA no registry knows (and its duplicate in
    LyCORIS), an embedding, a pickled VAE, a symlink loop and a folder link back to its parent; with ``demo``, the
    demo hub's LoRA and single-file base too (files the demo registry knows)."""
    files = {
        "ckpt": sparse_copy(sparse.get(checkpoint), root / "models/Stable-diffusion/dreamlike.safetensors"),
        "ckpt_dup": sparse_copy(sparse.get(checkpoint), root / "models/Stable-diffusion/sub/dreamlike-copy.safetensors"),
        "lora": sparse_copy(sparse.get("sd1-lora-kohya"), root / "models/Lora/mystery-style.safetensors"),
        "lora_dup": sparse_copy(sparse.get("sd1-lora-kohya"), root / "models/LyCORIS/mystery-style-again.safetensors"),
        "emb": sparse_copy(sparse.get("sd1-emb-a1111"), root / "embeddings/bad-hands.safetensors"),
    }
    (root / "models/VAE").mkdir(parents=True, exist_ok=True)
    files["pickle"] = root / "models/VAE/old-vae.ckpt"
    files["pickle"].write_bytes(PICKLE)
    (root / "models/ControlNet").mkdir(parents=True, exist_ok=True)
    os.symlink("loop.safetensors", root / "models/Lora/loop.safetensors")
    os.symlink("..", root / "models/ControlNet/back-up")
    (root / "webui.py").write_text("# not run\n")
    if demo is not None:
        files["demo_lora"] = shutil.copy(demo.file("demo-style", "1.0", "fp32"), root / "models/Lora/demo-style.safetensors")
        files["demo_base"] = shutil.copy(demo.file("demo-sd", "1.4", "single-file"), root / "models/Stable-diffusion/demo-sd-1.4.safetensors")
        for p in (files["demo_lora"], files["demo_base"]):
            Path(p).chmod(0o644)
    return {k: Path(v) for k, v in files.items()}


def comfyui_folder(root: Path, sparse: Any, *, extra: Path | None = None, demo: Any = None) -> dict[str, Path]:
    """A ComfyUI folder: checkpoints, loras, vae, embeddings; with ``extra``, an extra_model_paths.yaml naming
    that (A1111) folder's models the way ComfyUI's example file does."""
    files = {
        "vae": sparse_copy(sparse.get("sd1-vae"), root / "models/vae/sd-vae.safetensors"),
        "lora": sparse_copy(sparse.get("sd1-lora-kohya"), root / "models/loras/mystery.safetensors"),
        "emb": sparse_copy(sparse.get("sd1-emb-a1111"), root / "models/embeddings/neg.safetensors"),
    }
    (root / "models/checkpoints").mkdir(parents=True, exist_ok=True)
    if demo is not None:
        files["demo_base"] = Path(shutil.copy(demo.file("demo-sd", "1.4", "single-file"), root / "models/checkpoints/demo-sd-1.4.safetensors"))
        files["demo_lora"] = Path(shutil.copy(demo.file("demo-style", "1.0", "fp32"), root / "models/loras/demo-style.safetensors"))
        for p in (files["demo_base"], files["demo_lora"]):
            p.chmod(0o644)
    if extra is not None:
        (root / "extra_model_paths.yaml").write_text(
            "a111:\n"
            f"    base_path: {extra}\n\n"
            "    checkpoints: models/Stable-diffusion\n"
            "    configs: models/Stable-diffusion\n"
            "    vae: models/VAE\n"
            "    loras: |\n"
            "         models/Lora\n"
            "         models/LyCORIS\n"
            "    upscale_models: |\n"
            "                  models/ESRGAN\n"
            "    embeddings: embeddings\n"
            "    controlnet: models/ControlNet\n")
    return files


def run_without_file_override(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m hubctl ARGS`` as root without the capabilities that bypass file permissions (setpriv drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so a mode-000 file is unreadable as it is for any user."""
    caps = "-dac_override,-dac_read_search"
    return subprocess.run(["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", sys.executable, "-m", "hubctl", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
