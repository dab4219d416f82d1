"""Classification of real-shaped SD1 / SD2 / SDXL artefacts (sparse files: the real keys and shapes of the
reference models, no weights): kind, family, layout, variant, prediction, rank, tokens, evidence; and
metadata that lies (shapes win, the disagreement is reported)."""

from __future__ import annotations

import pytest

from hubctl.registry.families import default_families
from hubctl.probe import probe
from tests.fixtures.sparse import write_safetensors

FAMS = default_families()

CASES = [
    # name, kind, family, layout, extra expectations
    ("sd1-ldm", "checkpoint", "sd1", "ldm", {"variant": "normal", "prediction": "epsilon"}),
    ("sd2-ldm", "checkpoint", "sd2", "ldm", {"variant": "normal", "prediction": "unknown"}),
    ("sdxl-ldm", "checkpoint", "sdxl", "ldm", {"variant": "normal"}),
    ("sd1-inpaint-ldm", "checkpoint", "sd1", "ldm", {"variant": "inpaint"}),
    ("sd1-unet", "checkpoint", "sd1", "diffusers", {"components": ("unet",)}),
    ("sd2-unet", "checkpoint", "sd2", "diffusers", {}),
    ("sdxl-unet", "checkpoint", "sdxl", "diffusers", {}),
    ("sd1-diffusers", "checkpoint", "sd1", "diffusers", {"prediction": "epsilon", "components": ("text_encoder", "unet", "vae")}),
    ("sd2-diffusers", "checkpoint", "sd2", "diffusers", {"prediction": "v_prediction"}),
    ("sdxl-diffusers", "checkpoint", "sdxl", "diffusers", {"components": ("text_encoder", "text_encoder_2", "unet", "vae")}),
    ("sd1-lora-kohya", "lora", "sd1", "kohya", {"rank": 8, "alpha": 4.0}),
    ("sd2-lora-kohya", "lora", "sd2", "kohya", {"rank": 8}),
    ("sdxl-lora-kohya", "lora", "sdxl", "kohya", {"rank": 8}),
    ("sd1-lora-peft", "lora", "sd1", "diffusers", {"rank": 4}),
    ("sd2-lora-peft", "lora", "sd2", "diffusers", {"rank": 4}),
    ("sdxl-lora-peft", "lora", "sdxl", "diffusers", {"rank": 4}),
    ("sd1-loha", "lora", "sd1", "lycoris-loha", {"rank": 8}),
    ("sd2-loha", "lora", "sd2", "lycoris-loha", {}),
    ("sdxl-loha", "lora", "sdxl", "lycoris-loha", {}),
    ("sd1-lokr", "lora", "sd1", "lycoris-lokr", {}),
    ("sd2-lokr", "lora", "sd2", "lycoris-lokr", {}),
    ("sdxl-lokr", "lora", "sdxl", "lycoris-lokr", {}),
    ("sd1-emb-diffusers", "embedding", "sd1", "diffusers", {"tokens": ("<sd1-token>",), "vectors": 1, "width": 768}),
    ("sd2-emb-diffusers", "embedding", "sd2", "diffusers", {"width": 1024}),
    ("sd1-emb-kohya", "embedding", "sd1", "kohya", {"vectors": 4, "width": 768, "tokens": ("sd1-emb-kohya",)}),
    ("sd2-emb-kohya", "embedding", "sd2", "kohya", {"vectors": 4, "width": 1024}),
    ("sdxl-emb-kohya", "embedding", "sdxl", "kohya-sdxl", {"vectors": 4}),
    ("sd1-emb-a1111", "embedding", "sd1", "a1111", {"vectors": 2}),
    ("sd1-controlnet-diffusers", "controlnet", "sd1", "diffusers", {}),
    ("sd2-controlnet-diffusers", "controlnet", "sd2", "diffusers", {}),
    ("sdxl-controlnet-diffusers", "controlnet", "sdxl", "diffusers", {}),
    ("sd1-controlnet-ldm", "controlnet", "sd1", "ldm", {}),
    ("sd2-controlnet-ldm", "controlnet", "sd2", "ldm", {}),
]


@pytest.mark.parametrize("name, kind, family, layout, extra", CASES, ids=[c[0] for c in CASES])
def test_real_shaped_artefacts_classify(sparse, name, kind, family, layout, extra) -> None:
    p = probe(sparse.get(name), families=FAMS)
    assert (p.kind, p.family, p.layout) == (kind, family, layout)
    for k, v in extra.items():
        assert getattr(p, k) == v, k
    assert p.evidence, "evidence must name the keys that decided"
    assert p.parameters > 0 and p.size and p.dtypes


def test_sd1_checkpoint_evidence_names_the_cross_attention_key_and_shape(sparse) -> None:
    p = probe(sparse.get("sd1-ldm"), families=FAMS)
    ev = next(e for e in p.evidence if "attn2.to_k" in e.key)
    assert ev.key.startswith("model.diffusion_model.input_blocks.") and ev.shape == (320, 768)


def test_vae_family_is_left_open_with_its_candidates(sparse) -> None:
    p = probe(sparse.get("sd1-vae"), families=FAMS)
    assert p.kind == "vae" and p.family is None and set(p.family_candidates) == {"sd1", "sd2", "sdxl"}


def test_lora_metadata_that_lies_loses_to_shapes_and_is_reported(sparse, tmp_path) -> None:
    p = sparse.get("sd1-lora-kohya")
    from hubctl.probe.header import read_header

    h = read_header(p)
    tensors = {k: (t.dtype, t.shape) for k, t in h.tensors.items()}
    liar = write_safetensors(tmp_path / "liar.safetensors", tensors,
                             {"ss_base_model_version": "sd_v2", "ss_v2": "True", "ss_network_dim": "32"})
    r = probe(liar, families=FAMS)
    assert r.family == "sd1"
    assert any("metadata says sd2" in n and "shapes win" in n for n in r.notes)
    assert any("ss_network_dim" in n and "shapes win" in n for n in r.notes)


def test_modelspec_architecture_that_lies_about_a_checkpoint_is_reported(sparse, tmp_path) -> None:
    from hubctl.probe.header import read_header

    h = read_header(sparse.get("sd2-unet"))
    f = write_safetensors(tmp_path / "m.safetensors", {k: (t.dtype, t.shape) for k, t in h.tensors.items()},
                          {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-v1"})
    r = probe(f, families=FAMS)
    assert r.family == "sd2"
    assert any("metadata says sd1" in n for n in r.notes)


def test_v_prediction_comes_from_modelspec_never_from_a_guess(sparse, tmp_path) -> None:
    from hubctl.probe.header import read_header

    h = read_header(sparse.get("sd2-unet"))
    t = {k: (x.dtype, x.shape) for k, x in h.tensors.items()}
    v = write_safetensors(tmp_path / "v.safetensors", t, {"modelspec.architecture": "stable-diffusion-v2-768-v"})
    e = write_safetensors(tmp_path / "e.safetensors", t, {"modelspec.prediction_type": "epsilon"})
    n = write_safetensors(tmp_path / "n.safetensors", t)
    assert probe(v, families=FAMS).prediction == "v_prediction"
    assert probe(e, families=FAMS).prediction == "epsilon"
    assert probe(n, families=FAMS).prediction == "unknown"


def test_kohya_v_parameterization_marks_a_lora_v_prediction(sparse, tmp_path) -> None:
    path = sparse.get("sd2-lora-kohya")
    from hubctl.probe.header import read_header

    h = read_header(path)
    f = write_safetensors(tmp_path / "v.safetensors", {k: (t.dtype, t.shape) for k, t in h.tensors.items()},
                          {"ss_v_parameterization": "True", "ss_base_model_version": "sd_v2_v"})
    assert probe(f, families=FAMS).prediction == "v_prediction"


def test_unknown_tensors_are_kind_unknown_with_a_note(tmp_path) -> None:
    f = write_safetensors(tmp_path / "odd.safetensors", {"foo.bar": ("F32", [3, 3, 3])})
    p = probe(f, families=FAMS)
    assert p.kind == "unknown" and p.family is None and p.notes


def test_a_family_added_as_data_classifies_its_files(sparse) -> None:
    """Families are data: a registry family with the signature of SD2 (here under another id) wins."""
    from hubctl.registry.families import Family, FamilyTable

    sd2 = FAMS.get("sd2")
    table = FamilyTable([FAMS.get("sd1"), sd2.model_copy(update={"id": "my-sd2"})])
    assert probe(sparse.get("sd2-lora-kohya"), families=table).family == "my-sd2"
    assert isinstance(table.get("my-sd2"), Family)


def test_hash_option_gives_sha256_autov2_and_data_only_hash(tmp_path) -> None:
    import hashlib

    f = write_safetensors(tmp_path / "e.safetensors", {"emb_params": ("F32", [2, 768])}, values={"emb_params": b"\x01" * 100})
    raw = f.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    p = probe(f, families=FAMS, hash=True)
    sha = hashlib.sha256(raw).hexdigest()
    assert p.hashes["sha256"] == sha and p.hashes["autov2"] == sha[:10]
    assert p.hashes["data_sha256"] == hashlib.sha256(raw[8 + n:]).hexdigest()
    # editing metadata changes the whole-file hash, not the data-only one
    g = write_safetensors(tmp_path / "g.safetensors", {"emb_params": ("F32", [2, 768])}, {"name": "x"}, values={"emb_params": b"\x01" * 100})
    q = probe(g, families=FAMS, hash=True)
    assert q.hashes["sha256"] != p.hashes["sha256"] and q.hashes["data_sha256"] == p.hashes["data_sha256"]


def test_legacy_diffusers_attention_processor_lora(tmp_path) -> None:
    t = {}
    for blk in ("down_blocks.0.attentions.0", "up_blocks.1.attentions.0"):
        for proj, width in (("to_q", 320), ("to_k", 768), ("to_v", 768), ("to_out", 320)):
            k = f"{blk}.transformer_blocks.0.attn2.processor.{proj}_lora"
            t[k + ".down.weight"] = ("F32", [4, width])
            t[k + ".up.weight"] = ("F32", [320, 4])
    p = probe(write_safetensors(tmp_path / "old.safetensors", t), families=FAMS)
    assert (p.kind, p.family, p.layout, p.rank) == ("lora", "sd1", "diffusers-legacy", 4)
    assert {m.name for m in p.lora_modules} >= {"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0"}


@pytest.mark.parametrize("prefixes, widths, family", [
    (["lora_te_"], [768], "sd1"),
    (["lora_te_"], [1024], "sd2"),
    (["lora_te1_", "lora_te2_"], [768, 1280], "sdxl"),
])
def test_text_encoder_only_loras_classify_by_width_and_prefix(tmp_path, prefixes, widths, family) -> None:
    t = {}
    for pre, w in zip(prefixes, widths):
        for i in range(3):
            k = f"{pre}text_model_encoder_layers_{i}_self_attn_q_proj"
            t[k + ".lora_down.weight"] = ("F16", [8, w])
            t[k + ".lora_up.weight"] = ("F16", [w, 8])
    p = probe(write_safetensors(tmp_path / "te.safetensors", t), families=FAMS)
    assert (p.kind, p.family) == ("lora", family)


def test_sd1_text_encoder_lora_is_not_sdxl_even_at_768(tmp_path) -> None:
    """`lora_te_` means exactly one text encoder: an SD1 LoRA, though SDXL's first encoder is 768 wide too."""
    t = {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": ("F16", [4, 768]),
         "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": ("F16", [768, 4])}
    assert probe(write_safetensors(tmp_path / "a.safetensors", t), families=FAMS).family == "sd1"


def test_sharded_diffusers_component_is_read_from_its_index(sparse, tmp_path) -> None:
    import json
    import shutil

    from hubctl.probe.header import read_header

    src = sparse.get("sd1-diffusers")
    dst = tmp_path / "pipe"
    shutil.copytree(src, dst)
    (dst / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    h = read_header(src / "unet" / "diffusion_pytorch_model.safetensors")
    names = list(h.tensors)
    half = len(names) // 2
    wm = {}
    for i, part in enumerate((names[:half], names[half:])):
        fn = f"diffusion_pytorch_model-0000{i + 1}-of-00002.safetensors"
        write_safetensors(dst / "unet" / fn, {k: (h.tensors[k].dtype, h.tensors[k].shape) for k in part})
        wm.update({k: fn for k in part})
    (dst / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    p = probe(dst, families=FAMS)
    assert (p.kind, p.family, p.format) == ("checkpoint", "sd1", "diffusers-folder")
    assert p.parameters == probe(src, families=FAMS).parameters


def test_truncated_component_in_a_folder_names_the_file(sparse, tmp_path) -> None:
    import shutil

    from hubctl.errors import IncompleteFile

    dst = tmp_path / "pipe"
    shutil.copytree(sparse.get("sd1-diffusers"), dst)
    f = dst / "vae" / "diffusion_pytorch_model.safetensors"
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size - 1000)
    with pytest.raises(IncompleteFile, match=r"vae/diffusion_pytorch_model.safetensors: incomplete download"):
        probe(dst, families=FAMS)


def test_hash_claims_in_metadata_are_checked_against_the_data(tmp_path) -> None:
    import hashlib

    vals = {"emb_params": b"\x02" * 64}
    f = write_safetensors(tmp_path / "a.safetensors", {"emb_params": ("F32", [2, 768])}, values=vals)
    raw = f.read_bytes()
    data = hashlib.sha256(raw[8 + int.from_bytes(raw[:8], "little"):]).hexdigest()
    good = write_safetensors(tmp_path / "g.safetensors", {"emb_params": ("F32", [2, 768])},
                             {"modelspec.hash_sha256": "0x" + data}, values=vals)
    bad = write_safetensors(tmp_path / "b.safetensors", {"emb_params": ("F32", [2, 768])},
                            {"sshs_model_hash": "0" * 64}, values=vals)
    assert "modelspec.hash_sha256 matches the data hash" in probe(good, families=FAMS, hash=True).notes
    assert any("sshs_model_hash says" in n and "does not describe these weights" in n for n in probe(bad, families=FAMS, hash=True).notes)
