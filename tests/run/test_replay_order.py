"""A multi-LoRA run is recorded in the user's order and replayed in it: LoRAs fused in another order add the
same deltas in another order, which gives other bits (demo hub, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.run.test_generate import gen, local_package, locked, make_lock

pytestmark = pytest.mark.slow


def _second_lora(demo_hub, tmp_path):
    """Another SD1 LoRA (the demo style's modules, other values), named to sort before demo-style."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(demo_hub.file("demo-style", "1.0")))
    g = torch.Generator().manual_seed(5)
    other = {k: (v if k.endswith(".alpha") else v * 1.7 + torch.randn(v.shape, generator=g) * v.std()) for k, v in state.items()}
    p = tmp_path / "aa-style.safetensors"
    save_file(other, str(p))
    return local_package("aa-style", "lora", "demo-sd1", {"aa-style.safetensors": p})


def test_two_loras_are_recorded_and_replayed_in_the_users_order(demo_hub, tmp_path, cli):
    from hubctl.run.records import get_run

    lock = make_lock(locked(demo_hub, "demo-sd", "1.4"), locked(demo_hub, "demo-style", "1.0"), _second_lora(demo_hub, tmp_path))
    order = {"demo-style": 1.3, "aa-style": 1.1}  # not alphabetical
    rec = gen(lock, tmp_path, "first", loras=dict(order), seed=3, steps=3)
    assert list(rec["params"]["loras"]) == list(order)
    assert list(json.loads(Image.open(rec["out_path"]).text["hubctl"])["loras"]) == list(order)
    shown = cli("runs", "show", rec["id"])
    assert "loras        demo-style=1.3, aa-style=1.1" in shown.stdout, shown.stdout

    r = cli("generate", "--replay", rec["id"], "--out", str(tmp_path / "again.png"), "--json")
    assert r.exit_code == 0, r.output
    res = r.json()
    assert res["match"] is True
    assert list(json.loads(get_run(res["replay"]).params_json)["loras"]) == list(order)
    assert Image.open(Path(res["out_path"])).tobytes() == Image.open(rec["out_path"]).tobytes()


def test_the_order_of_two_loras_changes_the_bits(demo_hub, tmp_path):
    """The premise of the test above: fusing the same two LoRAs in the other order does not give the same image."""
    lock = make_lock(locked(demo_hub, "demo-sd", "1.4"), locked(demo_hub, "demo-style", "1.0"), _second_lora(demo_hub, tmp_path))
    a = gen(lock, tmp_path, "a", loras={"demo-style": 1.3, "aa-style": 1.1}, seed=3, steps=3)
    b = gen(lock, tmp_path, "b", loras={"aa-style": 1.1, "demo-style": 1.3}, seed=3, steps=3)
    assert a["image_sha256"] != b["image_sha256"]
