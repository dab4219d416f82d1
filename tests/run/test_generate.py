"""The verified inference run on the demo hub's tiny real pipelines (CPU, 64x64, 2 steps).

Locks here are made from the demo hub's real manifests (pinned offline by hubctl.lock.pin_file_offline) and
installed into the test's store by hubctl.sources.fetch.install_packages, so verification, assembly and generation
all run for real. Image comparisons are on decoded pixels.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hubctl.errors import BadInput, Refused

pytestmark = pytest.mark.slow


def locked(hub, name: str, version: str, variant: str = "fp32", *, install: bool = True):
    """A LockedPackage for one demo package version/variant, from its real manifest; its files put into the
    store hash-checked (Store.import_file, as installing a file:// source does; `hubctl sync` itself runs in
    the CLI tests below)."""
    from hubctl.lock.lockfile import LockedPackage
    from hubctl.lock.pin import pin_file_offline
    from hubctl.store.blobs import open_store
    from hubctl.registry.manifest import load_manifest

    m = load_manifest(hub.manifests[name])
    v = next(x for x in m.versions if x.version == version)
    var = next(x for x in v.variants if x.name == variant)
    files = tuple(pin_file_offline(f) for f in var.files)
    assert all(files), "demo manifests carry size, sha256 and a file:// source"
    pkg = LockedPackage(
        name=m.name, version=v.version, kind=m.kind, family=v.family, variant=var.name, files=files,  # type: ignore[arg-type]
        prediction=v.prediction, layout=var.layout, dtype=var.dtype, tokens=tuple(v.tokens), trigger=tuple(v.trigger),
        requires=tuple(v.requires),
    )
    if install:
        store = open_store()
        for f, ref in zip(files, var.files):
            src = Path(url2pathname(urlparse(ref.source).path))
            store.import_file(src, sha256=f.sha256, size=f.size)
    return pkg


def make_lock(*packages):
    from hubctl.lock.lockfile import Lock, inputs_digest

    reqs = [f"{p.name}=={p.version}" for p in packages]
    return Lock(packages=list(packages), requires=reqs, inputs_digest=inputs_digest(reqs))


def gen(lock, tmp_path: Path, name: str, **kw):
    from hubctl.run.generate import GenerateRequest, run_generate

    kw.setdefault("prompt", "a photo of a cat")
    kw.setdefault("seed", 7)
    kw.setdefault("steps", 2)
    return run_generate(GenerateRequest(out=str(tmp_path / f"{name}.png"), **kw), lock=lock)


def pixels(rec) -> np.ndarray:
    return np.asarray(Image.open(rec["out_path"]).convert("RGB")).astype(np.float64)


def mean_abs(a, b) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


@pytest.fixture
def sd14(demo_hub):
    return locked(demo_hub, "demo-sd", "1.4")


def test_generate_writes_a_png_whose_a1111_and_hubctl_chunks_parse(demo_hub, sd14, tmp_path):
    from hubctl.run.pngmeta import parse_a1111_parameters, read_png_chunks

    style = locked(demo_hub, "demo-style", "1.0")
    rec = gen(make_lock(sd14, style), tmp_path, "a", negative="blurry, dark", guidance=6.5, loras={"demo-style": 0.8})
    chunks = read_png_chunks(Path(rec["out_path"]))
    p = parse_a1111_parameters(chunks["parameters"])
    unet_sha = next(f.sha256 for f in sd14.files if f.path == "unet/diffusion_pytorch_model.safetensors")
    assert p["Prompt"] == "a photo of a cat"
    assert p["Negative prompt"] == "blurry, dark"
    assert (p["Steps"], p["Seed"], p["Size"], p["CFG scale"]) == ("2", "7", "64x64", "6.5")
    assert p["Sampler"] == "PLMS"  # the demo-sd 1.4 scheduler is PNDM (A1111 calls it PLMS)
    assert p["Model hash"] == unet_sha[:10]
    assert p["Lora hashes"] == f"demo-style: {style.files[0].sha256[:10]}"
    h = chunks["hubctl"]
    assert h["lock_digest"] == rec["lock_digest"] and len(h["lock_digest"]) == 64
    assert h["files"]["demo-sd 1.4"]["unet/diffusion_pytorch_model.safetensors"] == unet_sha
    assert h["files"]["demo-style 1.0"] == {style.files[0].path: style.files[0].sha256}
    assert h["device"] == "cpu" and h["dtype"] == "fp32" and h["attention"] == "sdpa"
    assert {"torch", "diffusers", "transformers", "python"} <= set(h["versions"])
    assert h["loras"] == {"demo-style": 0.8}
    assert chunks["pixel_sha256"] == rec["image_sha256"]


def test_lora_changes_the_image_and_its_weight_scales_the_change(demo_hub, sd14, tmp_path):
    lock = make_lock(sd14, locked(demo_hub, "demo-style", "1.0"))  # kohya key format
    none = gen(lock, tmp_path, "none", loras={})
    half = gen(lock, tmp_path, "half", loras={"demo-style": 0.5})
    full = gen(lock, tmp_path, "full", loras={"demo-style": 1.0})
    default = gen(lock, tmp_path, "default")  # every locked LoRA at 1.0
    d_half, d_full = mean_abs(none, half), mean_abs(none, full)
    assert d_half > 1.0, "the LoRA at 0.5 must visibly change the image"
    assert d_full > d_half * 1.2, f"weight 1.0 must change it more than 0.5 ({d_full:.2f} vs {d_half:.2f})"
    assert default["image_sha256"] == full["image_sha256"]
    base_only = gen(make_lock(sd14), tmp_path, "base")
    assert base_only["image_sha256"] == none["image_sha256"], "a locked LoRA left out must not touch the image"


def test_peft_lora_on_the_v_prediction_base_changes_the_image(demo_hub, tmp_path):
    sd20 = locked(demo_hub, "demo-sd", "2.0")
    lock = make_lock(sd20, locked(demo_hub, "demo-style", "2.0"))  # diffusers/peft key format
    a = gen(lock, tmp_path, "a", loras={})
    b = gen(lock, tmp_path, "b", loras={"demo-style": 1.0})
    assert mean_abs(a, b) > 1.0


def test_embedding_token_changes_the_image_and_only_when_used(demo_hub, sd14, tmp_path):
    token = locked(demo_hub, "demo-token", "1.0")
    assert token.tokens == ("<demo-token>",)
    with_emb = make_lock(sd14, token)
    plain = make_lock(sd14)
    used = gen(with_emb, tmp_path, "used", prompt="a photo of <demo-token>")
    unknown = gen(plain, tmp_path, "unknown", prompt="a photo of <demo-token>")
    assert mean_abs(used, unknown) > 1.0, "the learned token must change the image"
    assert used["params"] and json.loads(json.dumps(used))  # serialisable record
    a = gen(with_emb, tmp_path, "a", prompt="a photo of a cat")
    b = gen(plain, tmp_path, "b", prompt="a photo of a cat")
    assert a["image_sha256"] == b["image_sha256"], "an embedding whose token is absent must not change the image"


def _edges(path: Path, box: tuple[int, int, int, int]) -> Path:
    im = Image.new("RGB", (64, 64))
    ImageDraw.Draw(im).rectangle(box, outline="white", width=3)
    im.save(path)
    return path


def test_controlnet_changes_the_image_and_follows_the_control_image(demo_hub, sd14, tmp_path):
    lock = make_lock(sd14, locked(demo_hub, "demo-canny", "1.0"))
    plain = gen(lock, tmp_path, "plain")
    square = gen(lock, tmp_path, "square", controlnet="demo-canny", control_image=str(_edges(tmp_path / "c1.png", (8, 8, 40, 40))))
    other = gen(lock, tmp_path, "other", controlnet="demo-canny", control_image=str(_edges(tmp_path / "c2.png", (30, 20, 60, 60))))
    assert mean_abs(plain, square) > 1.0
    assert mean_abs(square, other) > 0.5, "a different control image must steer generation differently"
    assert square["params"]["controlnet"] == "demo-canny"
    assert len(square["params"]["control_image_sha256"]) == 64


def test_controlnet_without_a_control_image_is_bad_input(demo_hub, sd14, tmp_path):
    lock = make_lock(sd14, locked(demo_hub, "demo-canny", "1.0"))
    with pytest.raises(BadInput, match="--control-image"):
        gen(lock, tmp_path, "x", controlnet="demo-canny")


def test_v_prediction_base_generates_with_a_v_prediction_scheduler(demo_hub, tmp_path):
    from hubctl.run.pipeline import AssemblyOptions, assemble
    from hubctl.run.verify import verify_locked_set

    sd20 = locked(demo_hub, "demo-sd", "2.0")
    assert sd20.prediction == "v_prediction"
    rec = gen(make_lock(sd20), tmp_path, "v")
    assert rec["sampler"] == "DDIM"
    px = pixels(rec)
    assert px.shape == (64, 64, 3) and px.std() > 5, "a real, non-flat image"
    asm = assemble(verify_locked_set(make_lock(sd20)), AssemblyOptions())
    assert asm.pipe.scheduler.config.prediction_type == "v_prediction"
    assert asm.prediction == "v_prediction"


def test_single_file_base_makes_the_same_image_as_its_diffusers_layout(demo_hub, sd14, tmp_path):
    single = locked(demo_hub, "demo-sd", "1.4", "single-file")
    a = gen(make_lock(sd14), tmp_path, "diffusers")
    b = gen(make_lock(single), tmp_path, "single")
    assert a["image_sha256"] == b["image_sha256"]
    assert b["model_hash"] == single.files[0].sha256[:10]


def test_cross_family_lora_is_refused_before_anything_loads(demo_hub, sd14, tmp_path, monkeypatch):
    import hubctl.run.generate as g

    def must_not_load(*a, **k):
        raise AssertionError("assembly ran for a refused set")

    monkeypatch.setattr(g, "assemble", must_not_load)  # a spy: refusal must come first
    lock = make_lock(sd14, locked(demo_hub, "demo-style", "2.0"))
    with pytest.raises(Refused) as e:
        gen(lock, tmp_path, "x")
    assert "demo-style 2.0" in str(e.value) and "demo-sd2" in str(e.value) and "demo-sd1" in str(e.value)
    assert not (tmp_path / "x.png").exists()


def _blob(pkg, path: str) -> Path:
    from hubctl.store.blobs import open_store

    sha = next(f.sha256 for f in pkg.files if f.path == path)
    return open_store().blob_path(sha)


def test_corrupted_store_file_is_refused_naming_it(demo_hub, sd14, tmp_path, monkeypatch):
    import hubctl.run.generate as g

    monkeypatch.setattr(g, "assemble", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    blob = _blob(sd14, "unet/diffusion_pytorch_model.safetensors")
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte, same size
    blob.write_bytes(bytes(data))
    with pytest.raises(Refused) as e:
        gen(make_lock(sd14), tmp_path, "x")
    msg = str(e.value)
    assert "demo-sd 1.4" in msg and "unet/diffusion_pytorch_model.safetensors" in msg and "sha256" in msg
    assert not (tmp_path / "x.png").exists()


def test_missing_store_file_is_refused_with_a_hint_to_sync(demo_hub, sd14, tmp_path):
    blob = _blob(sd14, "vae/diffusion_pytorch_model.safetensors")
    os.chmod(blob.parent, 0o755)
    blob.unlink()
    with pytest.raises(Refused, match=r"demo-sd 1.4: vae/diffusion_pytorch_model.safetensors: not in the store.*hubctl sync"):
        gen(make_lock(sd14), tmp_path, "x")


def test_replay_matches_bit_for_bit_on_cpu(demo_hub, sd14, tmp_path):
    from hubctl.run.generate import replay

    lock = make_lock(sd14, locked(demo_hub, "demo-style", "1.0"), locked(demo_hub, "demo-token", "1.0"))
    first = gen(lock, tmp_path, "first", prompt="a photo of <demo-token>", loras={"demo-style": 0.7}, seed=11)
    res = replay(first["id"], out=str(tmp_path / "again.png"))
    assert res["match"] is True
    assert res["replay_image_sha256"] == first["image_sha256"]
    assert Image.open(tmp_path / "again.png").tobytes() == Image.open(first["out_path"]).tobytes()
    from hubctl.run.records import get_run

    assert get_run(res["replay"]).replay_of == first["id"]


def test_unknown_lora_name_is_bad_input_listing_the_locked_ones(demo_hub, sd14, tmp_path):
    lock = make_lock(sd14, locked(demo_hub, "demo-style", "1.0"))
    with pytest.raises(BadInput, match=r"'nope' is not a lora in the lock \(locked: demo-style\)"):
        gen(lock, tmp_path, "x", loras={"nope": 1.0})


def test_load_pipeline_returns_a_ready_pipeline_with_adapters_kept_separate(demo_hub, sd14, tmp_path, monkeypatch):
    import hubctl
    from hubctl.lock.lockfile import write_lock

    lock = make_lock(sd14, locked(demo_hub, "demo-style", "1.0"))
    write_lock(tmp_path / "hubctl.lock", lock)
    monkeypatch.chdir(tmp_path)
    pipe = hubctl.load_pipeline()
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.hubctl["device"] == "cpu" and pipe.hubctl["loras"] == {"demo-style": 1.0}
    assert pipe.get_active_adapters() == ["demo_style"]
    pipe.set_adapters(["demo_style"], adapter_weights=[0.0])  # separate adapters can still be re-weighted
    import torch

    out = pipe("a photo of a cat", num_inference_steps=2, generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    assert out.shape == (64, 64, 3)


def test_load_pipeline_refuses_a_corrupted_lock_set(demo_hub, sd14, tmp_path):
    import hubctl

    blob = _blob(sd14, "text_encoder/model.safetensors")
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(Refused, match="text_encoder/model.safetensors"):
        hubctl.load_pipeline(make_lock(sd14))


def test_generate_cli_end_to_end_from_the_project_lock(demo_registry, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    assert cli("add", "demo-sd<2", "demo-style").exit_code == 0
    assert cli("sync").exit_code == 0
    r = cli("generate", "--prompt", "a photo of a cat", "--seed", "5", "--steps", "2", "--lora", "demo-style=0.6",
            "--out", "img.png", "--json")
    assert r.exit_code == 0, r.output
    rec = r.json()
    assert Path("img.png").is_file() and rec["out_path"] == str((tmp_path / "img.png").resolve())
    assert rec["params"]["loras"] == {"demo-style": 0.6} and rec["lock_path"].endswith("hubctl.lock")

    listed = cli("runs", "list", "--json").json()
    assert [x["id"] for x in listed] == [rec["id"]]
    shown = cli("runs", "show", rec["id"][:-2], "--json").json()  # a unique prefix works
    assert shown["image_sha256"] == rec["image_sha256"]
    assert {p["name"] for p in shown["packages"]} == {"demo-sd", "demo-style"}

    again = cli("generate", "--replay", rec["id"], "--out", "again.png", "--json")
    assert again.exit_code == 0, again.output
    assert again.json()["match"] is True

    text = cli("runs", "show", rec["id"])
    assert rec["id"] in text.stdout and "demo-style" in text.stdout


def test_generate_cli_refuses_a_cross_family_lock_with_exit_1(demo_registry, demo_hub, tmp_path, monkeypatch, cli):
    from hubctl.lock.lockfile import write_lock

    monkeypatch.chdir(tmp_path)
    write_lock(tmp_path / "hubctl.lock", make_lock(locked(demo_hub, "demo-sd", "1.4"), locked(demo_hub, "demo-style", "2.0")))
    r = cli("generate", "--prompt", "x", "--steps", "2")
    assert r.exit_code == 1
    assert "demo-style 2.0" in r.stderr and "Traceback" not in r.output
    assert not Path("hubctl-out").exists()
    assert cli("runs", "list", "--json").json() == []


def test_generate_cli_without_a_lock_is_bad_input(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    r = cli("generate", "--prompt", "x")
    assert r.exit_code == 2 and "hubctl.lock" in r.stderr


def test_generate_cli_rejects_bad_options_with_exit_2(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    assert cli("generate", "--prompt", "x", "--dtype", "fp8").exit_code == 2
    assert cli("generate", "--prompt", "x", "--device", "tpu").exit_code == 2
    assert cli("generate", "--prompt", "x", "--lora", "a=heavy", "--lock", "missing.lock").exit_code == 2
    r = cli("generate", "--prompt", "x", "--width", "60")
    assert r.exit_code == 2 and "multiple of 8" in r.stderr
    r = cli("generate", "--replay", "nope")
    assert r.exit_code == 2 and "no run 'nope'" in r.stderr


def test_replay_refuses_when_the_control_image_changed(demo_hub, sd14, tmp_path):
    from hubctl.run.generate import replay

    lock = make_lock(sd14, locked(demo_hub, "demo-canny", "1.0"))
    ctl = _edges(tmp_path / "c.png", (8, 8, 40, 40))
    first = gen(lock, tmp_path, "first", controlnet="demo-canny", control_image=str(ctl))
    _edges(ctl, (20, 20, 60, 60))
    with pytest.raises(Refused, match="control image"):
        replay(first["id"])
    shutil.rmtree(tmp_path / "hubctl-out", ignore_errors=True)


def local_package(name: str, kind: str, family: str, files: dict[str, Path], **kw):
    """A LockedPackage for files made in the test (imported into the store like `hubctl install` would)."""
    from hubctl.lock.lockfile import LockedFile, LockedPackage
    from hubctl.store.blobs import open_store
    from hubctl.store.hashes import sha256_file

    store = open_store()
    locked_files = []
    for rel, p in sorted(files.items()):
        sha, size = sha256_file(p)
        store.import_file(p, sha256=sha, size=size)
        locked_files.append(LockedFile(path=rel, url=p.resolve().as_uri(), size=size, sha256=sha))
    return LockedPackage(name=name, version="1.0", kind=kind, family=family, variant="fp32", files=tuple(locked_files), **kw)


def test_kohya_format_embedding_with_locked_token_equals_the_diffusers_format(demo_hub, sd14, tmp_path):
    from safetensors.torch import load_file, save_file

    diffusers_fmt = locked(demo_hub, "demo-token", "1.0")
    vectors = load_file(str(demo_hub.file("demo-token", "1.0")))["<demo-token>"]
    kohya = tmp_path / "demo-token-kohya.safetensors"
    save_file({"emb_params": vectors.clone()}, str(kohya))
    kohya_pkg = local_package("kohya-token", "embedding", "demo-sd1", {"kohya.safetensors": kohya}, tokens=("<demo-token>",))
    a = gen(make_lock(sd14, diffusers_fmt), tmp_path, "diffusers", prompt="a photo of <demo-token>")
    b = gen(make_lock(sd14, kohya_pkg), tmp_path, "kohya", prompt="a photo of <demo-token>")
    assert a["image_sha256"] == b["image_sha256"], "the same vectors under the same token give the same image"


def test_separate_vae_replaces_the_base_vae(demo_hub, sd14, tmp_path):
    own = demo_hub.folder("demo-sd", "1.4")
    other = demo_hub.folder("demo-sd", "2.0")  # same tiny VAE architecture, other weights
    files = lambda root: {p.relative_to(root / "vae").as_posix(): p for p in (root / "vae").iterdir()}  # noqa: E731
    same_vae = local_package("own-vae", "vae", "demo-sd1", files(own))
    other_vae = local_package("other-vae", "vae", "demo-sd1", files(other))
    base = gen(make_lock(sd14), tmp_path, "base")
    same = gen(make_lock(sd14, same_vae), tmp_path, "same")
    swapped = gen(make_lock(sd14, other_vae), tmp_path, "swapped")
    assert same["image_sha256"] == base["image_sha256"]
    assert mean_abs(base, swapped) > 1.0
    assert json.loads(Image.open(swapped["out_path"]).text["hubctl"])["vae"] == "other-vae 1.0"


def test_sampler_choice_is_applied_and_written_in_a1111_words(demo_hub, sd14, tmp_path):
    from hubctl.run.pngmeta import parse_a1111_parameters, read_png_chunks

    lock = make_lock(sd14)
    default = gen(lock, tmp_path, "default")
    euler = gen(lock, tmp_path, "euler", sampler="euler_a")
    assert parse_a1111_parameters(read_png_chunks(Path(euler["out_path"]))["parameters"])["Sampler"] == "Euler a"
    assert euler["image_sha256"] != default["image_sha256"]
    with pytest.raises(BadInput, match="--sampler warp"):
        gen(lock, tmp_path, "x", sampler="warp")


def test_replay_uses_the_recorded_cpu_thread_count(demo_hub, sd14, tmp_path):
    import torch

    from hubctl.run.generate import replay

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        first = gen(make_lock(sd14), tmp_path, "one-thread")
        assert first["params"]["cpu_threads"] == 1
        torch.set_num_threads(2)
        res = replay(first["id"], out=str(tmp_path / "again.png"))
        assert res["match"] is True
        assert torch.get_num_threads() == 2, "the caller's thread count is restored"
    finally:
        torch.set_num_threads(before)


def test_lock_is_found_from_hubctl_lock_env_inside_hubctl_run(tmp_path, monkeypatch):
    from hubctl.run.generate import find_lock

    lock = tmp_path / "script.py.lock"
    lock.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUBCTL_LOCK", str(lock))
    assert find_lock(None) == lock
    assert find_lock(str(tmp_path / "script.py.lock")) == lock
    monkeypatch.delenv("HUBCTL_LOCK")
    with pytest.raises(BadInput, match="hubctl.lock: no lock file"):
        find_lock(None)


@pytest.mark.parametrize("argv, fires", [
    (["/usr/bin/hubctl", "generate", "--prompt", "x"], True),
    (["/usr/bin/hubctl", "--version"], False),
    (["/usr/bin/hubctl", "demo", "--out", "d"], False),  # demo runs generate inside its own process
    (["/srv/host.py", "generate"], False),  # a host program that calls the app
])
def test_fast_exit_only_ends_a_process_started_as_hubctl_generate(argv, fires, monkeypatch):
    import sys

    import hubctl.cli.generate_cmd as g

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.delenv("HUBCTL_NO_FAST_EXIT", raising=False)
    if fires:
        with pytest.raises(Exited):
            g._fast_exit()
        monkeypatch.setenv("HUBCTL_NO_FAST_EXIT", "1")
    g._fast_exit()  # returns: not this process's own generate command, or turned off


def test_replay_that_differs_reports_the_difference_and_exits_1_on_cpu(demo_hub, sd14, tmp_path, cli):
    from sqlmodel import Session

    from hubctl.db import state_engine
    from hubctl.run.records import RunRecord

    first = gen(make_lock(sd14), tmp_path, "first")
    # Stand-in for a run made elsewhere (another GPU, another library build): its recorded image differs.
    other = Image.open(first["out_path"]).convert("RGB")
    other.putpixel((0, 0), (0, 0, 0))
    other.putpixel((5, 5), (255, 255, 255))
    other.save(first["out_path"])
    with Session(state_engine()) as s:
        rec = s.get(RunRecord, first["id"])
        rec.image_sha256 = "0" * 64
        s.add(rec)
        s.commit()
    r = cli("generate", "--replay", first["id"], "--out", str(tmp_path / "again.png"), "--json")
    assert r.exit_code == 1
    assert "gave a different image" in r.stderr
    res = json.loads(r.stdout)
    assert res["match"] is False and res["original_image_sha256"] == "0" * 64
    assert res["difference"]["differing_pixels"] >= 1 and res["difference"]["pixels"] == 64 * 64
    assert res["difference"]["max_abs"] > 0


def test_a_lock_that_lies_about_a_family_is_caught_by_the_structural_check(demo_hub, sd14, tmp_path, monkeypatch):
    import dataclasses

    import hubctl.run.generate as g

    monkeypatch.setattr(g, "assemble", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    sd2_lora = locked(demo_hub, "demo-style", "2.0")
    liar = dataclasses.replace(sd2_lora, family="demo-sd1", requires=())  # hand-edited lock: claims SD1
    with pytest.raises(Refused) as e:
        gen(make_lock(sd14, liar), tmp_path, "x")
    msg = str(e.value)
    assert "demo-style 2.0" in msg and "64" in msg and "32" in msg, msg  # the two cross-attention widths
    assert "is a demo-sd2 LoRA" in msg, msg  # named for what its header shows, not what the lock claims
