"""LyCORIS files in a verified run, on the demo hub's tiny SD1 pipeline (CPU).

The oracle is diffusers itself: a plain LoCon (``lora_down``/``lora_up``, which diffusers + peft apply) and
Tucker LoCon, LoHa and LoKr files built to have exactly the same weight delta per module (the LoHa's second
Hadamard factor is all ones, the LoKr's first Kronecker factor is [[1]]). hubctl merges the LyCORIS ones
itself (diffusers cannot load them); each must give the image diffusers gives for the plain LoCon."""

from __future__ import annotations

import pytest

from hubctl.errors import Refused
from tests.fixtures.lycoris import locon_targets
from tests.run.test_generate import gen, local_package, locked, make_lock, mean_abs

pytestmark = pytest.mark.slow

RANK, ALPHA = 4, 2.0


def _equivalent_files(demo_hub, tmp_path):
    """{algo: file} of LoCon (plain and Tucker), LoHa (Tucker) and LoKr (Tucker) with one and the same delta."""
    import torch
    from safetensors.torch import save_file

    from hubctl.probe import probe

    modules = probe(demo_hub.folder("demo-sd", "1.4")).modules
    g = torch.Generator().manual_seed(3)
    files: dict[str, dict[str, torch.Tensor]] = {k: {} for k in ("locon", "locon_tucker", "loha", "lokr")}
    r = RANK

    def rnd(*shape):
        return torch.randn(*shape, generator=g) * 0.3

    for comp, prefix in (("unet", "lora_unet_"), ("text_encoder", "lora_te_")):
        for m in locon_targets(modules[comp], comp):
            shape = modules[comp][m]
            inp, out = shape[0], shape[1]
            key = prefix + m.replace(".", "_")
            for f in files.values():
                f[key + ".alpha"] = torch.tensor(ALPHA)
            if len(shape) == 4 and tuple(shape[2:]) != (1, 1):
                t, wa, wb = rnd(r, r, *shape[2:]), rnd(r, out), rnd(r, inp)
                ones_t = torch.zeros(r, r, *shape[2:])
                ones_t[0, 0] = 1.0
                ones_a, ones_b = torch.zeros(r, out), torch.zeros(r, inp)
                ones_a[0], ones_b[0] = 1.0, 1.0
                files["locon"].update({key + ".lora_down.weight": torch.einsum("i j k l, j r -> i r k l", t, wb),
                                       key + ".lora_up.weight": wa.T.reshape(out, r, 1, 1).contiguous()})
                files["locon_tucker"].update({key + ".lora_down.weight": wb.reshape(r, inp, 1, 1).clone(), key + ".lora_mid.weight": t,
                                              key + ".lora_up.weight": wa.T.reshape(out, r, 1, 1).contiguous()})
                files["loha"].update({key + ".hada_t1": t, key + ".hada_w1_a": wa, key + ".hada_w1_b": wb,
                                      key + ".hada_t2": ones_t, key + ".hada_w2_a": ones_a, key + ".hada_w2_b": ones_b})
                files["lokr"].update({key + ".lokr_w1": torch.ones(1, 1), key + ".lokr_t2": t, key + ".lokr_w2_a": wa,
                                      key + ".lokr_w2_b": wb})
            else:
                conv = len(shape) == 4
                a, b = rnd(out, r), rnd(r, inp)
                down, up = (b.reshape(r, inp, 1, 1), a.reshape(out, r, 1, 1)) if conv else (b, a)
                ones_a, ones_b = torch.zeros(out, r), torch.zeros(r, inp)
                ones_a[:, 0], ones_b[0] = 1.0, 1.0
                for name in ("locon", "locon_tucker"):
                    files[name].update({key + ".lora_down.weight": down.clone(), key + ".lora_up.weight": up.clone()})
                files["loha"].update({key + ".hada_w1_a": a, key + ".hada_w1_b": b, key + ".hada_w2_a": ones_a, key + ".hada_w2_b": ones_b})
                files["lokr"].update({key + ".lokr_w1": torch.ones(1, 1), key + ".lokr_w2_a": a,
                                      key + ".lokr_w2_b": b.reshape(r, inp, 1, 1) if conv else b})
    out = {}
    for name, tensors in files.items():
        p = tmp_path / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(p), {"ss_network_module": "lycoris.kohya"})
        out[name] = p
    return out


def test_tucker_locon_loha_and_lokr_apply_exactly_like_their_plain_locon(demo_hub, tmp_path):
    sd14 = locked(demo_hub, "demo-sd", "1.4")
    files = _equivalent_files(demo_hub, tmp_path)
    pkgs = {name: local_package(f"lyco-{name.replace('_', '-')}", "lora", "demo-sd1", {f"{name}.safetensors": p})
            for name, p in files.items()}
    none = gen(make_lock(sd14), tmp_path, "none")
    ref = gen(make_lock(sd14, pkgs["locon"]), tmp_path, "locon")  # applied by diffusers + peft
    assert mean_abs(none, ref) > 1.0, "the LoCon visibly changes the image"
    for name in ("locon_tucker", "loha", "lokr"):
        rec = gen(make_lock(sd14, pkgs[name]), tmp_path, name)
        assert mean_abs(rec, ref) < 0.05, f"{name} applies a different delta than the plain LoCon ({mean_abs(rec, ref):.3f})"
        assert rec["params"]["loras"] == {pkgs[name].name: 1.0}


def test_a_lycoris_weight_scales_its_delta(demo_hub, tmp_path):
    sd14 = locked(demo_hub, "demo-sd", "1.4")
    files = _equivalent_files(demo_hub, tmp_path)
    loha = local_package("lyco-loha", "lora", "demo-sd1", {"loha.safetensors": files["loha"]})
    locon = local_package("lyco-locon", "lora", "demo-sd1", {"locon.safetensors": files["locon"]})
    a = gen(make_lock(sd14, loha), tmp_path, "loha-half", loras={"lyco-loha": 0.5})
    b = gen(make_lock(sd14, locon), tmp_path, "locon-half", loras={"lyco-locon": 0.5})
    full = gen(make_lock(sd14, locon), tmp_path, "locon-full")
    assert mean_abs(a, b) < 0.25 and mean_abs(a, full) > 1.0


def test_load_pipeline_refuses_to_keep_a_lycoris_file_as_a_separate_adapter(demo_hub, tmp_path):
    import hubctl

    files = _equivalent_files(demo_hub, tmp_path)
    loha = local_package("lyco-loha", "lora", "demo-sd1", {"loha.safetensors": files["loha"]})
    lock = make_lock(locked(demo_hub, "demo-sd", "1.4"), loha)
    with pytest.raises(Refused, match=r"lyco-loha 1.0: a LyCORIS file .*\(fuse_loras=True\)"):
        hubctl.load_pipeline(lock)
    pipe = hubctl.load_pipeline(lock, fuse_loras=True)
    assert pipe.hubctl["loras"] == {"lyco-loha": 1.0}


@pytest.mark.parametrize("extra, words", [
    (".dora_scale", "DoRA"),        # weight-decomposed modules: not applied approximately
    (".oft_blocks", "no LoRA/LyCORIS algorithm"),  # parts of an algorithm hubctl does not apply
])
def test_lycoris_parts_hubctl_cannot_apply_exactly_are_refused_naming_the_file(demo_hub, tmp_path, extra, words):
    import torch
    from safetensors.torch import load_file, save_file

    files = _equivalent_files(demo_hub, tmp_path)
    state = load_file(str(files["loha"]))
    key = next(k for k in state if k.endswith(".hada_w1_a")).rsplit(".", 1)[0]
    state[key + extra] = torch.ones(4, 1)
    bad = tmp_path / "bad-loha.safetensors"
    save_file(state, str(bad))
    pkg = local_package("bad-loha", "lora", "demo-sd1", {"bad-loha.safetensors": bad})
    with pytest.raises(Refused, match=rf"bad-loha 1.0: bad-loha.safetensors.*{words}"):
        gen(make_lock(locked(demo_hub, "demo-sd", "1.4"), pkg), tmp_path, "x")
    assert not (tmp_path / "x.png").exists()
