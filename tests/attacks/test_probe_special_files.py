"""Files that are not regular files, met where a weight or config file is expected: a FIFO named
`*.safetensors` (opening it for reading waits for a writer forever), one inside a diffusers folder, a FIFO
named like a pickle, a character device behind a symlink. `inspect` and `check` must refuse each at once with
one line naming the file (exit 2), never block. Each command runs in a thread; when it is still running after
the deadline the test opens the FIFO for writing (releasing the reader) and fails."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

DEADLINE_S = 20


def _run_unblocked(cli, args: list[str], fifos: list[Path]):
    box: dict = {}

    def target() -> None:
        box["r"] = cli(*args)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(DEADLINE_S)
    if t.is_alive():
        for f in fifos:  # release the blocked reader so the suite goes on
            try:
                fd = os.open(f, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
        t.join(10)
        pytest.fail(f"hubctl {' '.join(args)} blocked on a FIFO for {DEADLINE_S} s")
    return box["r"]


def _assert_refused(r, name: str) -> None:
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and name in lines[0] and "regular file" in lines[0], r.stderr
    assert "Traceback" not in r.output


def _diffusers_folder(sparse, tmp_path: Path) -> Path:
    """A small diffusers folder (model_index.json, a UNet and a text encoder with a few real-shaped tensors)."""
    from tests.fixtures.sparse import write_safetensors

    dst = tmp_path / "model"
    (dst / "unet").mkdir(parents=True)
    (dst / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
                                                      "text_encoder": ["transformers", "CLIPTextModel"]}))
    (dst / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768}))
    write_safetensors(dst / "unet" / "diffusion_pytorch_model.safetensors",
                      {"conv_in.weight": ("F16", [320, 4, 3, 3]),
                       "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768])})
    write_safetensors(dst / "text_encoder" / "model.safetensors",
                      {"text_model.encoder.layers.0.self_attn.q_proj.weight": ("F16", [768, 768])})
    (dst / "text_encoder" / "config.json").write_text(json.dumps({"architectures": ["CLIPTextModel"], "hidden_size": 768}))
    return dst


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    return path


def case_fifo_file(sparse, tmp_path):
    f = _fifo(tmp_path / "model.safetensors")
    return ["inspect", str(f)], [f], "model.safetensors"


def case_fifo_pickle_name(sparse, tmp_path):
    f = _fifo(tmp_path / "model.bin")
    return ["inspect", str(f)], [f], "model.bin"


def case_fifo_in_diffusers_folder(sparse, tmp_path):
    folder = _diffusers_folder(sparse, tmp_path)
    f = _fifo(folder / "unet" / "diffusion_pytorch_model.safetensors")
    return ["inspect", str(folder)], [f], "unet/diffusion_pytorch_model.safetensors"


def case_fifo_config_in_diffusers_folder(sparse, tmp_path):
    folder = _diffusers_folder(sparse, tmp_path)
    f = _fifo(folder / "unet" / "config.json")
    return ["inspect", str(folder)], [f], "unet/config.json"


def case_fifo_model_index(sparse, tmp_path):
    folder = _diffusers_folder(sparse, tmp_path)
    f = _fifo(folder / "model_index.json")
    return ["inspect", str(folder)], [f], "model_index.json"


def case_check_fifo_adapter(sparse, tmp_path):
    f = _fifo(tmp_path / "lora.safetensors")
    return ["check", str(sparse.get("sd1-ldm")), str(f)], [f], "lora.safetensors"


def case_check_fifo_base(sparse, tmp_path):
    f = _fifo(tmp_path / "base.safetensors")
    return ["check", str(f), str(sparse.get("sd1-lora-kohya"))], [f], "base.safetensors"


def case_check_fifo_in_adapter_folder(sparse, tmp_path):
    folder = tmp_path / "lora"
    f = _fifo(folder / "pytorch_lora_weights.safetensors")
    return ["check", str(sparse.get("sd1-ldm")), str(folder)], [f], "pytorch_lora_weights.safetensors"


def case_char_device_symlink(sparse, tmp_path):
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")
    return ["inspect", str(link)], [], "zero.safetensors"


def case_fifo_hash(sparse, tmp_path):
    f = _fifo(tmp_path / "h.safetensors")
    return ["inspect", "--hash", "--json", str(f)], [f], "h.safetensors"


def case_convert_fifo(sparse, tmp_path):
    f = _fifo(tmp_path / "model.ckpt")
    return ["convert", str(f)], [f], "model.ckpt"


CASES = {name[len("case_"):]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_non_regular_file_is_refused_at_once_with_one_line(case, sparse, tmp_path, cli):
    args, fifos, name = CASES[case](sparse, tmp_path)
    r = _run_unblocked(cli, args, fifos)
    _assert_refused(r, name)


def test_inspect_of_several_files_reports_the_fifo_and_reads_the_rest(sparse, tmp_path, cli):
    f = _fifo(tmp_path / "pipe.safetensors")
    r = _run_unblocked(cli, ["inspect", "--json", str(f), str(sparse.get("sd1-lora-kohya"))], [f])
    assert r.exit_code == 2
    out = json.loads(r.stdout)
    assert "regular file" in out[0]["error"] and out[1]["family"] == "sd1"
