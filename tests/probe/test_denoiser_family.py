"""A LoRA's family is decided by its denoiser (UNet/transformer) modules: a Flux or SD3 LoRA that also trained
CLIP is not an SD1 or SDXL LoRA because its text-encoder part has their widths, and ``check`` refuses it on
any base none of whose modules it adapts. Key sets and shapes as kohya's Flux scripts and diffusers' SD3/Flux
LoRA savers write them (sparse files: real headers, no data)."""

from __future__ import annotations

import pytest

from tests.fixtures.sparse import write_safetensors

R = 16


def _lora(t: dict, key: str, inp: int, out: int, kohya: bool) -> None:
    if kohya:
        t[key + ".lora_down.weight"] = ("BF16", [R, inp])
        t[key + ".lora_up.weight"] = ("BF16", [out, R])
        t[key + ".alpha"] = ("BF16", [])
    else:
        t[key + ".lora_A.weight"] = ("BF16", [R, inp])
        t[key + ".lora_B.weight"] = ("BF16", [out, R])


def _clip(t: dict, prefix: str, width: int, layers: int, kohya: bool) -> None:
    sep = "_" if kohya else "."
    for i in range(layers):
        for p in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"):
            _lora(t, f"{prefix}text_model{sep}encoder{sep}layers{sep}{i}{sep}{p.replace('.', sep)}", width, width, kohya)
        _lora(t, f"{prefix}text_model{sep}encoder{sep}layers{sep}{i}{sep}mlp{sep}fc1", width, 4 * width, kohya)
        _lora(t, f"{prefix}text_model{sep}encoder{sep}layers{sep}{i}{sep}mlp{sep}fc2", 4 * width, width, kohya)


def flux_kohya_with_clip(path):
    """kohya sd-scripts flux_train_network with --network_train_text_encoder: lora_unet_double_blocks_*,
    lora_unet_single_blocks_* and CLIP-L as lora_te1_*."""
    t: dict = {}
    h = 3072
    for b in range(19):
        for s in ("img", "txt"):
            _lora(t, f"lora_unet_double_blocks_{b}_{s}_attn_qkv", h, 3 * h, True)
            _lora(t, f"lora_unet_double_blocks_{b}_{s}_attn_proj", h, h, True)
            _lora(t, f"lora_unet_double_blocks_{b}_{s}_mlp_0", h, 4 * h, True)
            _lora(t, f"lora_unet_double_blocks_{b}_{s}_mlp_2", 4 * h, h, True)
    for b in range(38):
        _lora(t, f"lora_unet_single_blocks_{b}_linear1", h, 7 * h, True)
        _lora(t, f"lora_unet_single_blocks_{b}_linear2", 5 * h, h, True)
    _clip(t, "lora_te1_", 768, 12, True)
    return write_safetensors(path, t, {"ss_network_module": "networks.lora_flux", "ss_base_model_version": "flux1",
                                       "ss_network_dim": str(R)})


def sd3_diffusers_with_clips(path):
    """diffusers' train_dreambooth_lora_sd3 with --train_text_encoder: transformer.* plus both CLIPs
    (text_encoder 768 wide, text_encoder_2 1280 wide): the text encoders of SDXL."""
    t: dict = {}
    h = 1536
    for b in range(24):
        for p in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
                  "attn.add_v_proj", "attn.to_add_out"):
            _lora(t, f"transformer.transformer_blocks.{b}.{p}", h, h, False)
    _clip(t, "text_encoder.", 768, 12, False)
    _clip(t, "text_encoder_2.", 1280, 32, False)
    return write_safetensors(path, t, {"format": "pt"})


def flux_diffusers_with_clip(path):
    t: dict = {}
    h = 3072
    for b in range(19):
        for p in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.to_add_out"):
            _lora(t, f"transformer.transformer_blocks.{b}.{p}", h, h, False)
    for b in range(38):
        _lora(t, f"transformer.single_transformer_blocks.{b}.proj_mlp", h, 4 * h, False)
    _clip(t, "text_encoder.", 768, 12, False)
    return write_safetensors(path, t, {"format": "pt"})


FOREIGN = {"flux-kohya": flux_kohya_with_clip, "sd3-diffusers": sd3_diffusers_with_clips, "flux-diffusers": flux_diffusers_with_clip}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_transformer_lora_that_trained_clip_is_no_unet_family(kind, tmp_path):
    from hubctl.probe import probe

    p = probe(FOREIGN[kind](tmp_path / f"{kind}.safetensors"))
    assert p.kind == "lora"
    assert p.family is None and not p.family_candidates, (p.family, p.family_candidates)
    assert any("denoiser" in n for n in p.notes), p.notes


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("base", ["sd1-ldm", "sdxl-ldm"])
def test_check_refuses_a_lora_none_of_whose_denoiser_modules_are_in_the_base(kind, base, sparse, tmp_path):
    from hubctl.compat.gather import check_paths

    v = check_paths(sparse.get(base), [FOREIGN[kind](tmp_path / f"{kind}.safetensors")])
    assert not v.compatible, v.warnings
    reason = v.problems[0].reason
    assert "another denoiser" in reason and "none of its" in reason, reason


def test_check_cli_exits_1_for_an_sd3_lora_with_sdxl_text_encoders_on_sdxl(sparse, tmp_path, cli):
    lora = sd3_diffusers_with_clips(tmp_path / "sd3" / "pytorch_lora_weights.safetensors")
    r = cli("check", str(sparse.get("sdxl-ldm")), str(lora))
    assert r.exit_code == 1, r.output
    assert "partial application" not in r.output


def test_a_text_encoder_only_lora_is_still_decided_by_its_text_encoder(sparse, tmp_path):
    from hubctl.compat.gather import check_paths
    from hubctl.probe import probe

    t: dict = {}
    _clip(t, "lora_te_", 768, 12, True)
    te_only = write_safetensors(tmp_path / "te-only.safetensors", t)
    assert probe(te_only).family == "sd1"
    assert check_paths(sparse.get("sd1-ldm"), [te_only]).compatible


def test_an_sd1_unet_lora_that_adapts_no_cross_attention_is_still_compatible_with_sd1(sparse, tmp_path):
    """Denoiser modules that are UNet modules (here attn1 and the feed-forward only) still let the text encoder
    part decide, and they fit an SD1 base."""
    from hubctl.compat.gather import check_paths
    from hubctl.probe import probe

    t: dict = {}
    unet = sparse.modules("sd1")["unet"]
    for m, shp in unet.items():
        if m.endswith(("attn1.to_q", "ff.net.2")):
            _lora(t, "lora_unet_" + m.replace(".", "_"), shp[0], shp[1], True)
    _clip(t, "lora_te_", 768, 12, True)
    f = write_safetensors(tmp_path / "attn1.safetensors", t)
    assert probe(f).family == "sd1"
    v = check_paths(sparse.get("sd1-ldm"), [f])
    assert v.compatible and not v.warnings, (v.problems, v.warnings)
