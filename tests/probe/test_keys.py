"""LDM/SGM <-> diffusers module names: our mapping must agree with diffusers' own single-file converter."""

from __future__ import annotations

import pytest

from hubctl.probe.keys import ldm_unet_module, module_shapes, sgm_to_diffusers_underscore
from tests.fixtures.sparse import to_ldm_unet


@pytest.mark.parametrize("fid", ["sd1", "sdxl"])
def test_ldm_unet_names_map_like_diffusers_converter(sparse, fid) -> None:
    import torch
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    unet = sparse.ref(fid)["unet"]
    ldm = to_ldm_unet(unet)
    with torch.device("meta"):
        sd = {k: torch.empty(s) for k, s in ldm.items()}
    cfg = {k: v for k, v in sparse.family(fid).reference["unet"].items() if not k.startswith("_")}
    converted = convert_ldm_unet_checkpoint(sd, cfg)
    assert set(converted) == set(unet)  # our inverse mapping writes exactly what diffusers reads back
    for k in ldm:
        ours = ldm_unet_module(k[len("model.diffusion_model."):])
        assert ours in unet, k


def test_module_shapes_from_ldm_and_diffusers_layouts_agree(sparse) -> None:
    from hubctl.probe.header import read_header

    ldm = read_header(sparse.get("sd1-ldm"))
    diff = read_header(sparse.get("sd1-unet"))
    a = module_shapes({k: t.shape for k, t in ldm.tensors.items()})["unet"]
    b = module_shapes({k: t.shape for k, t in diff.tensors.items()}, component="unet")["unet"]
    assert a == b
    assert a == dict(sparse.modules("sd1")["unet"])  # and both equal the shipped shape table


def test_sgm_kohya_names_map_to_diffusers() -> None:
    assert sgm_to_diffusers_underscore("input_blocks_4_1_transformer_blocks_0_attn2_to_k") == \
        "down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    assert sgm_to_diffusers_underscore("output_blocks_2_1_conv") == "up_blocks_0_upsamplers_0_conv"
    assert sgm_to_diffusers_underscore("middle_block_0_in_layers_2") == "mid_block_resnets_0_conv1"
    assert sgm_to_diffusers_underscore("input_blocks_3_0_op") == "down_blocks_0_downsamplers_0_conv"
