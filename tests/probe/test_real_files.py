"""Files written by diffusers, transformers, peft and safetensors themselves (tiny models, two tiny families
declared like the real ones): they classify exactly like the real-shaped ones, and check refuses the
cross-family pair."""

from __future__ import annotations

import pytest

from hubctl.compat.gather import check_paths
from hubctl.probe import probe

pytestmark = pytest.mark.slow


def test_tiny_pipelines_saved_by_diffusers_classify_by_family_table(tiny_real) -> None:
    f = tiny_real.families
    p1 = probe(tiny_real.paths["tiny-sd1"], families=f)
    p2 = probe(tiny_real.paths["tiny-sd2"], families=f)
    assert (p1.kind, p1.family, p1.layout, p1.format) == ("checkpoint", "tiny-sd1", "diffusers", "diffusers-folder")
    assert (p2.kind, p2.family) == ("checkpoint", "tiny-sd2")
    assert p1.prediction == "epsilon"  # from scheduler_config.json
    assert p2.prediction == "v_prediction"
    assert set(p1.components) >= {"unet", "text_encoder", "vae"}
    assert p1.signature["cross_attention_dim"] == 32 and p2.signature["cross_attention_dim"] == 64


def test_unet_file_alone_classifies(tiny_real) -> None:
    p = probe(tiny_real.paths["tiny-sd2-unet"], families=tiny_real.families)
    assert (p.kind, p.family, p.components) == ("checkpoint", "tiny-sd2", ("unet",))


def test_lora_saved_by_diffusers_from_a_peft_adapter(tiny_real) -> None:
    p = probe(tiny_real.paths["tiny-sd1-lora"], families=tiny_real.families)
    assert (p.kind, p.family, p.layout, p.rank) == ("lora", "tiny-sd1", "diffusers", 4)
    assert {m.component for m in p.lora_modules} == {"unet", "text_encoder"}


def test_embeddings_saved_by_safetensors(tiny_real) -> None:
    e1 = probe(tiny_real.paths["tiny-sd1-emb"], families=tiny_real.families)
    e2 = probe(tiny_real.paths["tiny-sd2-emb"], families=tiny_real.families)
    assert (e1.kind, e1.family, e1.tokens, e1.vectors, e1.width) == ("embedding", "tiny-sd1", ("<tiny-token>",), 2, 32)
    assert (e2.kind, e2.family, e2.layout, e2.vectors) == ("embedding", "tiny-sd2", "kohya", 3)


def test_real_lora_fits_its_pipeline_and_not_the_other(tiny_real) -> None:
    f = tiny_real.families
    ok = check_paths(tiny_real.paths["tiny-sd1"], [tiny_real.paths["tiny-sd1-lora"], tiny_real.paths["tiny-sd1-emb"]], families=f)
    assert ok.compatible, ok.problems
    assert ok.checked[0]["levels"]["structural"].endswith("modules fit (header)")
    bad = check_paths(tiny_real.paths["tiny-sd2"], [tiny_real.paths["tiny-sd1-lora"], tiny_real.paths["tiny-sd1-emb"]], families=f)
    reasons = [p.reason for p in bad.problems]
    assert len(reasons) == 2
    assert "is a tiny-sd1 LoRA (cross-attention 32); tiny-sd2 is tiny-sd2 (64)" in reasons[0]
    assert "(width 32)" in reasons[1] and "(text encoder 64)" in reasons[1]


def test_peft_lora_loads_where_check_says_it_fits(tiny_real) -> None:
    """Ground truth: diffusers itself loads the LoRA check accepted, and fails on the base check refused."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet1 = UNet2DConditionModel.from_pretrained(tiny_real.paths["tiny-sd1"] / "unet")
    unet2 = UNet2DConditionModel.from_pretrained(tiny_real.paths["tiny-sd2"] / "unet")
    from safetensors.torch import load_file

    sd = {k[len("unet."):]: v for k, v in load_file(str(tiny_real.paths["tiny-sd1-lora"])).items() if k.startswith("unet.")}
    unet1.load_lora_adapter(sd, adapter_name="x", prefix=None)
    with pytest.raises(Exception, match="size mismatch"):
        unet2.load_lora_adapter(sd, adapter_name="x", prefix=None)
