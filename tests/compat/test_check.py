"""Compatibility of real-shaped sets: every adapter format against every base family, in every direction.
Same family -> compatible; another family -> refused with both widths named; partial application,
token clashes and unknown prediction -> warnings; declared level from manifests."""

from __future__ import annotations

import itertools

import pytest

from hubctl.compat.check import Declared, check_set
from hubctl.registry.families import default_families
from hubctl.probe import probe
from tests.fixtures.sparse import write_safetensors

FAMS = default_families()
BASES = {"sd1": "sd1-ldm", "sd2": "sd2-diffusers", "sdxl": "sdxl-diffusers"}
ADAPTERS = ["lora-kohya", "lora-peft", "loha", "lokr", "emb-kohya", "controlnet-diffusers"]
CROSS = {"sd1": "768", "sd2": "1024", "sdxl": "2048"}


def _p(sparse, name):
    return probe(sparse.get(name), families=FAMS)


@pytest.mark.parametrize("base_f, ad_f, ad", [(b, a, k) for b, a in itertools.product(BASES, BASES) for k in ADAPTERS])
def test_adapter_fits_only_its_own_family(sparse, base_f, ad_f, ad) -> None:
    base = _p(sparse, BASES[base_f])
    adapter = _p(sparse, f"{ad_f}-{ad}")
    v = check_set(base, [adapter], families=FAMS, labels=["base", "adapter"])
    assert v.compatible == (base_f == ad_f), [p.reason for p in v.problems]
    if base_f != ad_f:
        (pr,) = v.problems
        assert pr.artefact == "adapter"
        assert f"adapter is an {ad_f.upper()}" in pr.reason and f"base is {base_f.upper()}" in pr.reason
        if ad.startswith(("lora", "loha", "lokr", "controlnet")):
            assert CROSS[ad_f] in pr.reason and CROSS[base_f] in pr.reason
            assert "cannot apply" in pr.reason or "differ" in pr.reason


def test_sd1_lora_on_sd2_base_is_refused_with_both_widths_and_counts(sparse) -> None:
    v = check_set(_p(sparse, "sd2-unet"), [_p(sparse, "sd1-lora-kohya")], families=FAMS,
                  labels=["stable-diffusion 2.0", "arcane-style 1.0"])
    (pr,) = v.problems
    assert pr.reason.startswith("arcane-style 1.0 is an SD1 LoRA (cross-attention 768); stable-diffusion 2.0 is SD2 (1024): ")
    assert "64 of 264 LoRA modules cannot apply" in pr.reason  # 16 attn2 to_k/to_v x2 + 32 conv proj_in/out
    assert any("72 LoRA modules for text_encoder not checked" in w for w in v.warnings)  # a UNet file has no text encoder


def test_base_without_file_uses_the_family_shape_table(sparse) -> None:
    from hubctl.probe.types import Probe

    base = Probe(path="stable-diffusion 2.0", format="manifest", kind="checkpoint", family="sd2", prediction="v_prediction",
                 variant=None, layout=None)
    ok = check_set(base, [_p(sparse, "sd2-lora-kohya")], families=FAMS)
    bad = check_set(base, [_p(sparse, "sd1-lora-kohya")], families=FAMS)
    assert ok.compatible and "shape table" in ok.checked[0]["levels"]["structural"]
    assert not bad.compatible and "(1024)" in bad.problems[0].reason


def test_lora_with_modules_the_base_lacks_is_a_partial_application_warning(sparse, tmp_path) -> None:
    from hubctl.probe.header import read_header

    h = read_header(sparse.get("sd1-lora-kohya"))
    t = {k: (x.dtype, x.shape) for k, x in h.tensors.items()}
    t["lora_unet_not_a_module_of_sd.lora_down.weight"] = ("F16", [8, 320])
    t["lora_unet_not_a_module_of_sd.lora_up.weight"] = ("F16", [320, 8])
    f = write_safetensors(tmp_path / "extra.safetensors", t, dict(h.metadata))
    v = check_set(_p(sparse, "sd1-ldm"), [probe(f, families=FAMS)], families=FAMS)
    assert v.compatible
    assert any("partial application: 1 of 265 LoRA modules" in w and "not_a_module_of_sd" in w for w in v.warnings)


def test_embeddings_sharing_a_token_are_a_clash_warning(sparse, tmp_path) -> None:
    a = write_safetensors(tmp_path / "a" / "learned_embeds.safetensors", {"<cat>": ("F32", [768])})
    b = write_safetensors(tmp_path / "b" / "learned_embeds.safetensors", {"<cat>": ("F32", [2, 768])})
    v = check_set(_p(sparse, "sd1-ldm"), [probe(a, families=FAMS), probe(b, families=FAMS)], families=FAMS, labels=["base", "A", "B"])
    assert v.compatible
    assert any("token clash: '<cat>' is defined by both A and B" in w for w in v.warnings)


def test_unknown_prediction_is_a_warning_not_a_guess(sparse) -> None:
    v = check_set(_p(sparse, "sd2-ldm"), [_p(sparse, "sd2-emb-kohya")], families=FAMS, labels=["sd2 file", "emb"])
    assert v.compatible
    assert any("sd2 file: prediction type unknown" in w for w in v.warnings)


def test_declared_family_and_requires_are_checked(sparse) -> None:
    base = _p(sparse, "sd2-unet")
    lora = _p(sparse, "sd2-lora-kohya")
    d_base = Declared("stable-diffusion", "2.0", "checkpoint", "sd2")
    d_lora = Declared("arcane-style", "1.0", "lora", "sd1", requires=("stable-diffusion>=1.4,<2",))
    v = check_set(base, [lora], families=FAMS, labels=["stable-diffusion 2.0", "arcane-style 1.0"], declared=[d_base, d_lora])
    reasons = [p.reason for p in v.problems]
    assert "arcane-style 1.0 is declared for SD1; stable-diffusion 2.0 is SD2" in reasons
    assert "arcane-style 1.0 requires stable-diffusion>=1.4,<2; the base is stable-diffusion 2.0" in reasons
    assert v.checked[0]["levels"]["declared"] == "refused" and v.checked[0]["levels"]["structural"].startswith("192 of 330")


def test_an_adapter_given_as_base_is_refused(sparse) -> None:
    v = check_set(_p(sparse, "sd1-lora-kohya"), [_p(sparse, "sd1-emb-kohya")], families=FAMS, labels=["l", "e"])
    assert any("l is a LoRA, not a base checkpoint" == p.reason for p in v.problems)


def test_check_paths_probes_files(sparse) -> None:
    from hubctl.compat.gather import check_paths

    assert check_paths(sparse.get("sd1-unet"), [sparse.get("sd1-controlnet-ldm"), sparse.get("sd1-emb-diffusers")], families=FAMS).compatible
    assert not check_paths(sparse.get("sd1-unet"), [sparse.get("sd2-controlnet-ldm")], families=FAMS).compatible


def test_locon_conv_modules_are_checked_by_kernel(sparse, tmp_path) -> None:
    """kohya LoCon adapts the ResNet convs too (3x3 down, 1x1 up); SDXL files name them the SGM way."""
    mods = sparse.modules("sd1")["unet"]
    t = {}
    for m in ("down_blocks.0.resnets.0.conv1", "up_blocks.3.resnets.2.conv2", "mid_block.resnets.1.conv1"):
        i, o, kh, kw = mods[m]
        k = "lora_unet_" + m.replace(".", "_")
        t[k + ".lora_down.weight"] = ("F16", [4, i, kh, kw])
        t[k + ".lora_up.weight"] = ("F16", [o, 4, 1, 1])
    good = probe(write_safetensors(tmp_path / "locon.safetensors", t), families=FAMS)
    assert check_set(_p(sparse, "sd1-ldm"), [good], families=FAMS).compatible
    t["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"] = ("F16", [4, 320, 1, 1])
    bad = probe(write_safetensors(tmp_path / "bad.safetensors", t), families=FAMS)
    v = check_set(_p(sparse, "sd1-ldm"), [bad], families=FAMS, labels=["base", "locon"])
    assert not v.compatible and "expects a 1x1 conv, the base has a 3x3 conv" in v.problems[0].reason
    # SGM names of an SDXL LoCon map onto the diffusers modules
    x = sparse.modules("sdxl")["unet"]["down_blocks.1.resnets.0.conv1"]
    sgm = {"lora_unet_input_blocks_4_0_in_layers_2.lora_down.weight": ("F16", [4, x[0], 3, 3]),
           "lora_unet_input_blocks_4_0_in_layers_2.lora_up.weight": ("F16", [x[1], 4, 1, 1])}
    p = probe(write_safetensors(tmp_path / "sgm.safetensors", sgm), families=FAMS)
    v = check_set(_p(sparse, "sdxl-diffusers"), [p], families=FAMS)
    assert v.compatible and v.checked[0]["levels"]["structural"].startswith("1 of 1 modules fit")
