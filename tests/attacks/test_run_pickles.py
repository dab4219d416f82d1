"""Code-running pickles inside locked packages never reach torch.load at `generate`, whatever the layout: a
diffusers folder whose UNet, text encoder, VAE or ControlNet weights are a pickled `.bin`, or a pickle under
another name. One line naming the file; nothing unpickled, nothing written. torch.load is wrapped by a spy
(it records the call, then runs): the point is that it is never called."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from hubctl.errors import Refused
from tests.run.test_generate import gen, local_package, locked, make_lock

pytestmark = pytest.mark.slow


class _Payload:
    """Unpickling this creates the marker file (what a hostile checkpoint would do with os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=4))
    return path


def _folder(demo_hub, tmp_path: Path, package: str, version: str) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(demo_hub.folder(package, version), dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def torch_load_spy(monkeypatch):
    import torch

    calls = []
    real = torch.load

    def spy(*a, **k):
        calls.append(a[0] if a else k.get("f"))
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    return calls


# (package whose folder is copied, the safetensors file replaced, the pickle that takes its place)
CASES = {
    "base-unet-bin": ("demo-sd", "1.4", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
    "base-text-encoder-bin": ("demo-sd", "1.4", "text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"),
    "base-vae-bin": ("demo-sd", "1.4", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin"),
    "base-extra-bin-beside-safetensors": ("demo-sd", "1.4", None, "unet/diffusion_pytorch_model.bin"),
    "base-pickle-under-another-name": ("demo-sd", "1.4", None, "unet/diffusion_pytorch_model.fp16.weights"),
    "controlnet-bin": ("demo-canny", "1.0", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_pickle_in_a_diffusers_package_is_refused_before_torch_load(case, demo_hub, tmp_path, torch_load_spy, monkeypatch):
    package, version, drop, planted = CASES[case]
    marker = tmp_path / "PWNED"
    root = _folder(demo_hub, tmp_path, package, version)
    if drop:
        (root / drop).unlink()
    _pickle_file(root / planted, marker)
    if package == "demo-sd":
        lock = make_lock(local_package("evil-sd", "checkpoint", "demo-sd1", _files(root)))
        kw = {}
    else:
        lock = make_lock(locked(demo_hub, "demo-sd", "1.4"), local_package("evil-canny", "controlnet", "demo-sd1", _files(root)))
        from PIL import Image

        Image.new("RGB", (64, 64)).save(tmp_path / "c.png")
        kw = {"controlnet": "evil-canny", "control_image": str(tmp_path / "c.png")}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Refused) as e:
        gen(lock, tmp_path, "x", **kw)
    msg = str(e.value)
    assert planted in msg and "pickle" in msg and "\n" not in msg, msg
    assert torch_load_spy == [], "torch.load was called"
    assert not marker.exists()
    assert not (tmp_path / "x.png").exists()
