"""The family table: the shipped sd1/sd2/sdxl signatures and reference configs, aliases the outside world
uses, and families.toml files that registries add (with located one-line errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubctl.registry.families import Family, FamilyTable, default_families, load_families
from tests._asserts import bad_input_line


def test_shipped_families_carry_their_signatures() -> None:
    t = default_families()
    assert t.ids() == ["sd1", "sd2", "sdxl"]
    sd1, sd2, sdxl = t.get("sd1"), t.get("sd2"), t.get("sdxl")
    assert (sd1.cross_attention_dim, sd1.text_encoder_widths, sd1.use_linear_projection) == (768, [768], False)
    assert (sd2.cross_attention_dim, sd2.text_encoder_widths, sd2.use_linear_projection) == (1024, [1024], True)
    assert (sdxl.cross_attention_dim, sdxl.text_encoder_widths) == (2048, [768, 1280])
    assert sd2.prediction_types[0] == "v_prediction" and sd1.prediction_types == ["epsilon"]
    for f in t:
        unet = f.reference["unet"]
        assert unet["cross_attention_dim"] == f.cross_attention_dim
        assert f.reference["text_encoder"]["hidden_size"] == f.text_encoder_widths[0]
        assert f.reference["text_encoder"]["num_hidden_layers"] == f.text_encoder_layers[0]
        assert unet.get("use_linear_projection", False) == f.use_linear_projection
        assert unet["block_out_channels"] == f.unet_block_out_channels
        assert f.reference["scheduler"]["prediction_type"] in f.prediction_types


def test_aliases_from_civitai_kohya_and_modelspec_find_the_family() -> None:
    t = default_families()
    assert t.by_alias("SD 1.5").id == "sd1"
    assert t.by_alias("sd 2.1 768").id == "sd2"
    assert t.by_alias("stable-diffusion-xl-v1-base").id == "sdxl"
    assert t.by_alias("Flux.1 D") is None


def test_a_registry_family_merges_and_overrides_by_id(tmp_path: Path) -> None:
    f = tmp_path / "families.toml"
    f.write_text(
        '[[families]]\nid = "tiny1"\ncross_attention_dim = 32\ntext_encoder_widths = [32]\ntext_encoder_layers = [2]\n'
        '[[families]]\nid = "sd1"\ntitle = "patched"\ncross_attention_dim = 768\ntext_encoder_widths = [768]\ntext_encoder_layers = [12]\n'
    )
    merged = default_families().merged(load_families(f))
    assert "tiny1" in merged and merged.get("sd1").title == "patched" and len(merged) == 4


@pytest.mark.parametrize(
    "text, words",
    [
        ("[[families]]\nid = \n", "invalid TOML"),
        ("families = 3\n", "families: must be an array of tables"),
        ('[[families]]\nid = "x"\ncross_attention_dim = 0\ntext_encoder_widths = [1]\ntext_encoder_layers = [1]\n', "families[0].cross_attention_dim"),
        ('[[families]]\nid = "x"\ncross_attention_dim = 8\ntext_encoder_layers = [1]\n', "families[0].text_encoder_widths: required field is missing"),
        ('[[families]]\nid = "x"\ncross_attention_dim = 8\ntext_encoder_widths = [1]\ntext_encoder_layers = [1]\nwidth = 3\n', "families[0].width: unknown field"),
        ('[[families]]\nid = "x"\ncross_attention_dim = 8\ntext_encoder_widths = [1]\ntext_encoder_layers = [1]\n' * 2, "families[1].id: 'x' appears twice"),
    ],
)
def test_bad_families_files_give_one_located_line(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "families.toml"
    f.write_text(text)
    msg = bad_input_line(lambda: load_families(f), f)
    assert words in msg, msg


def test_family_table_is_a_small_mapping() -> None:
    a = Family(id="a", cross_attention_dim=8, text_encoder_widths=[8], text_encoder_layers=[1])
    t = FamilyTable([a])
    assert "a" in t and "b" not in t and t.get("b") is None and list(t) == [a] and t.ids() == ["a"]
