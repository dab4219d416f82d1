"""The shipped per-family shape tables (registry/shapes/*.json) are what the generator builds from the
reference configs on torch's meta device; a drift between families.toml and the tables fails here."""

from __future__ import annotations

import pytest

from hubctl.registry.families import default_families
from hubctl.compat.shapes import shape_table


@pytest.mark.parametrize("fid", ["sd1", "sd2"])
def test_shipped_shape_table_matches_the_generator(fid) -> None:
    from hubctl.compat.shapes_gen import module_table

    built = module_table(default_families().get(fid))["components"]
    shipped = shape_table(fid)
    assert shipped is not None
    assert {c: {m: list(v) for m, v in mods.items()} for c, mods in shipped.items()} == built


def test_every_bundled_family_has_a_shape_table() -> None:
    for f in default_families():
        t = shape_table(f.id)
        assert t is not None and "unet" in t and "text_encoder" in t, f.id


def test_generator_cli_writes_tables(tmp_path) -> None:
    from hubctl.config import bundled_registry_path
    from hubctl.compat.shapes import load_shape_table
    from hubctl.compat.shapes_gen import main

    assert main(["sd1", "--out", str(tmp_path), "--families-toml", str(bundled_registry_path() / "families.toml")]) == 0
    t = load_shape_table(tmp_path / "sd1.json")
    assert t["unet"]["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"] == (768, 320)
    assert t["text_encoder"]["text_model.encoder.layers.11.mlp.fc1"] == (768, 3072)


def test_a_shape_table_edited_in_place_with_its_mtime_kept_is_read_again(tmp_path) -> None:
    import json
    import os
    import time

    p = tmp_path / "fam-x.json"
    p.write_text(json.dumps({"components": {"unet": {"m": [320, 768]}}}))
    assert shape_table("fam-x", dirs=[tmp_path])["unet"]["m"] == (320, 768)
    st = p.stat()
    time.sleep(0.01)  # a later change time than the first write, whatever the clock's tick
    p.write_text(json.dumps({"components": {"unet": {"m": [320, 769]}}}))  # same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp --preserve` / `rsync -t` leave it
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns
    assert shape_table("fam-x", dirs=[tmp_path])["unet"]["m"] == (320, 769)
