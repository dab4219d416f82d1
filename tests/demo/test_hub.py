"""The offline demo hub: deterministic build, valid manifests, and tiny real models that load and generate."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from hubctl.demo.hub import DemoHub

PROMPT = "a photo of a cat"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread per test process: under `pytest -n 2` on two cores, two threads per worker
    oversubscribe the CPU and a 2-step tiny generation goes from ~0.3 s to ~10 s of spinning."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _header(path: Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def _gen(pipe, prompt: str = PROMPT, steps: int = 2, **kw):
    import torch

    out = pipe(prompt, num_inference_steps=steps, height=64, width=64, generator=torch.Generator().manual_seed(0), output_type="np", **kw)
    return out.images[0]


def _load(folder: Path):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_two_builds_give_the_same_bytes_and_a_rebuild_replaces_the_hub_in_place(demo_hub: DemoHub, tmp_path: Path) -> None:
    import shutil

    from hubctl.demo.hub import build_demo_hub

    # the second build goes over a copy of the first hub, so it also exercises the rebuild-and-swap path
    again_root = tmp_path / "again"
    shutil.copytree(demo_hub.root, again_root)
    inodes = {p: p.stat().st_ino for p in (again_root / "files").rglob("*") if p.is_file()}
    again = build_demo_hub(again_root)
    first = {str(p.relative_to(demo_hub.files_dir)): h for p, h in demo_hub.sha256.items()}
    second = {str(p.relative_to(again.files_dir)): h for p, h in again.sha256.items()}
    assert len(first) >= 30
    assert first == second
    for p, h in again.sha256.items():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == h
        assert p.stat().st_ino != inodes[p]  # written anew, not left over from the copy
    # the manifests now point at the new folder, and no scratch folder is left behind
    text = again.manifests["demo-sd"].read_text()
    assert again_root.as_uri() in text and demo_hub.root.as_uri() + "/" not in text
    assert not [p for p in again_root.iterdir() if p.name.startswith((".build-", ".old-"))]


def test_a_build_that_fails_halfway_leaves_the_previous_hub_as_it_was(
    demo_hub: DemoHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from hubctl.demo import writers as demo_writers
    from hubctl.demo.hub import build_demo_hub, open_demo_hub

    root = tmp_path / "hub"
    shutil.copytree(demo_hub.root, root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def disk_full(*a, **k):  # injected failure after the three pipelines are written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(demo_writers, "write_kohya_lora", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build_demo_hub(root)
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in root.iterdir() if p.name.startswith((".build-", ".old-"))]
    assert open_demo_hub(root).files.keys() == demo_hub.files.keys()


def test_every_manifest_validates_and_names_each_file_with_its_size_hash_and_a_file_source(demo_hub: DemoHub) -> None:
    from hubctl.registry.families import load_families
    from hubctl.registry.manifest import load_manifest

    families = load_families(demo_hub.registry / "families.toml")
    assert sorted(families.ids()) == ["demo-sd1", "demo-sd2"]
    seen = 0
    for name, path in demo_hub.manifests.items():
        m = load_manifest(path, known_families=families.ids())
        assert m.name == name
        for ver in m.versions:
            for var in ver.variants:
                for f in var.files:
                    src = urlsplit(f.source)
                    assert src.scheme == "file"
                    on_disk = Path(unquote(src.path))
                    assert on_disk.is_absolute() and on_disk.is_file()
                    assert on_disk == demo_hub.folder(name, ver.version, var.name) / f.path
                    assert f.size == on_disk.stat().st_size
                    assert f.sha256 == hashlib.sha256(on_disk.read_bytes()).hexdigest()
                    seen += 1
    assert seen == sum(len(v) for v in demo_hub.files.values())


def test_manifests_declare_versions_families_and_requirements_as_the_issue_asks(demo_hub: DemoHub) -> None:
    from hubctl.registry.manifest import load_manifest

    sd = load_manifest(demo_hub.manifests["demo-sd"])
    assert sd.kind == "checkpoint"
    got = {v.version: (v.family, v.prediction, sorted(x.name for x in v.variants)) for v in sd.versions}
    assert got == {
        "1.4": ("demo-sd1", "epsilon", ["fp32", "single-file"]),
        "2.0": ("demo-sd2", "v_prediction", ["fp32"]),
        "2.1b1": ("demo-sd2", "v_prediction", ["fp32"]),
    }
    assert sd.get_version("2.1b1").parsed.is_prerelease
    style = load_manifest(demo_hub.manifests["demo-style"])
    assert style.kind == "lora"
    assert {v.version: (v.family, v.requires) for v in style.versions} == {
        "1.0": ("demo-sd1", ["demo-sd>=1.4,<2"]),
        "2.0": ("demo-sd2", ["demo-sd>=2"]),
    }
    token = load_manifest(demo_hub.manifests["demo-token"])
    assert (token.kind, token.versions[0].family, token.versions[0].tokens) == ("embedding", "demo-sd1", ["<demo-token>"])
    canny = load_manifest(demo_hub.manifests["demo-canny"])
    assert (canny.kind, canny.versions[0].family) == ("controlnet", "demo-sd1")


def test_headers_show_the_family_widths_sd1_32_and_sd2_64(demo_hub: DemoHub) -> None:
    unet1 = _header(demo_hub.file("demo-sd", "1.4", "fp32", "unet/diffusion_pytorch_model.safetensors"))
    unet2 = _header(demo_hub.file("demo-sd", "2.0", "fp32", "unet/diffusion_pytorch_model.safetensors"))
    k = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    assert unet1[k]["shape"] == [32, 32] and unet2[k]["shape"] == [32, 64]
    assert len(unet1["down_blocks.0.attentions.0.proj_in.weight"]["shape"]) == 4  # 1x1 conv (sd1-like)
    assert len(unet2["down_blocks.0.attentions.0.proj_in.weight"]["shape"]) == 2  # linear (sd2-like)
    te = _header(demo_hub.file("demo-sd", "2.0", "fp32", "text_encoder/model.safetensors"))
    assert te["text_model.embeddings.token_embedding.weight"]["shape"][1] == 64

    single = _header(demo_hub.file("demo-sd", "1.4", "single-file"))
    assert single["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"]["shape"] == [32, 32]
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in single
    assert any(k.startswith("first_stage_model.encoder.down.0.block.0.") for k in single)

    kohya = _header(demo_hub.file("demo-style", "1.0"))
    keys = [k for k in kohya if k != "__metadata__"]
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in keys)
    down = kohya["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"]["shape"]
    assert down == [4, 32]
    assert kohya["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]["shape"] == [4, 32, 1, 1]
    assert kohya["lora_te_text_model_encoder_layers_1_self_attn_q_proj.alpha"]["shape"] == []
    peft = _header(demo_hub.file("demo-style", "2.0"))
    assert peft["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"]["shape"] == [4, 64]
    assert "text_encoder.text_model.encoder.layers.2.self_attn.q_proj.lora_A.weight" in peft
    emb = _header(demo_hub.file("demo-token", "1.0"))
    assert emb["<demo-token>"]["shape"] == [2, 32]


def test_files_are_read_only_so_tests_cannot_damage_the_shared_hub(demo_hub: DemoHub) -> None:
    # mode bits, not open(): root (as in CI containers) may write through them
    for paths in demo_hub.files.values():
        for path in paths:
            assert path.stat().st_mode & 0o222 == 0, path


def test_sd1_pipeline_loads_from_its_diffusers_folder_and_generates_on_cpu(demo_hub: DemoHub) -> None:
    import numpy as np

    pipe = _load(demo_hub.folder("demo-sd", "1.4", "fp32"))
    assert pipe.scheduler.config.prediction_type == "epsilon"
    img = _gen(pipe)
    assert img.shape == (64, 64, 3)
    assert float(np.std(img)) > 0.05
    again = _gen(pipe)
    assert np.array_equal(img, again)  # CPU, same seed: bit for bit


def test_sd2_pipeline_is_v_prediction_and_generates(demo_hub: DemoHub) -> None:
    import numpy as np

    pipe = _load(demo_hub.folder("demo-sd", "2.0", "fp32"))
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.unet.config.use_linear_projection is True
    assert pipe.unet.config.cross_attention_dim == 64
    img = _gen(pipe)
    assert img.shape == (64, 64, 3) and float(np.std(img)) > 0.05


def test_single_file_loads_with_from_single_file_and_equals_the_diffusers_folder(demo_hub: DemoHub) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    folder = demo_hub.folder("demo-sd", "1.4", "fp32")
    single = StableDiffusionPipeline.from_single_file(
        str(demo_hub.file("demo-sd", "1.4", "single-file")), config=str(folder), safety_checker=None, local_files_only=True
    )
    ref = _load(folder)
    for comp in ("unet", "vae", "text_encoder"):
        a, b = getattr(ref, comp).state_dict(), getattr(single, comp).state_dict()
        assert set(a) == set(b), comp
        assert all(torch.equal(a[k], b[k]) for k in a), comp


def test_kohya_lora_visibly_changes_the_sd1_image_and_its_weight_scales_the_change(demo_hub: DemoHub) -> None:
    import numpy as np

    pipe = _load(demo_hub.folder("demo-sd", "1.4", "fp32"))
    base = _gen(pipe)
    pipe.load_lora_weights(str(demo_hub.file("demo-style", "1.0")), adapter_name="style")
    full = _gen(pipe)
    pipe.set_adapters(["style"], [0.3])
    weak = _gen(pipe)
    d_full, d_weak = float(np.abs(full - base).mean()), float(np.abs(weak - base).mean())
    assert d_full > 0.05, d_full  # > ~13/255 per channel on average
    assert 0.0 < d_weak < d_full


def test_peft_lora_visibly_changes_the_sd2_image(demo_hub: DemoHub) -> None:
    import numpy as np

    pipe = _load(demo_hub.folder("demo-sd", "2.0", "fp32"))
    base = _gen(pipe)
    pipe.load_lora_weights(str(demo_hub.file("demo-style", "2.0")), adapter_name="style")
    assert float(np.abs(_gen(pipe) - base).mean()) > 0.05


def test_embedding_loads_with_its_token_and_changes_the_image(demo_hub: DemoHub) -> None:
    import numpy as np

    pipe = _load(demo_hub.folder("demo-sd", "1.4", "fp32"))
    plain = _gen(pipe, "a photo of a cat")
    pipe.load_textual_inversion(str(demo_hub.file("demo-token", "1.0")))
    assert "<demo-token>" in pipe.tokenizer.get_vocab()
    assert float(np.abs(_gen(pipe, "a photo of a cat <demo-token>") - plain).mean()) > 0.01


def test_controlnet_loads_and_its_control_image_steers_generation(demo_hub: DemoHub) -> None:
    import numpy as np
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from PIL import Image

    base = _load(demo_hub.folder("demo-sd", "1.4", "fp32"))
    cn = ControlNetModel.from_pretrained(str(demo_hub.folder("demo-canny", "1.0")))
    pipe = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet, scheduler=base.scheduler,
        controlnet=cn, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = 255
    a = _gen(pipe, image=Image.fromarray(square))
    b = _gen(pipe, image=Image.fromarray(255 - square))
    assert float(np.abs(a - b).mean()) > 0.02


def test_build_refuses_an_out_folder_it_did_not_make(tmp_path: Path) -> None:
    from hubctl.demo.hub import build_demo_hub
    from hubctl.errors import BadInput

    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="not made by hubctl demo"):
        build_demo_hub(tmp_path)
    assert (tmp_path / "registry" / "keep.txt").read_text() == "mine"


def test_registered_demo_hub_is_searchable_and_info_lists_its_versions(demo_registry: DemoHub, cli) -> None:
    r = cli("search", "demo", "--json")
    assert r.exit_code == 0, r.output
    names = json.dumps(r.json())
    for pkg in ("demo-sd", "demo-style", "demo-token", "demo-canny"):
        assert pkg in names
    r = cli("info", "demo-sd")
    assert r.exit_code == 0, r.output
    for text in ("1.4", "2.0", "2.1b1", "demo-sd1", "demo-sd2"):
        assert text in r.stdout
