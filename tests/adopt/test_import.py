"""`hubctl import SOURCE` on what people share: PNGs written by hubctl, by A1111/Forge and by ComfyUI, a ComfyUI
workflow JSON and a list of AIRs. Each yields a hubctl.toml and lock that `sync` and `generate` accept; the hubctl
PNG's lock replays the image bit for bit on CPU; what cannot be resolved is listed and nothing is written."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import pytest

from tests.adopt._civitai import civitai  # noqa: F401 (fixture)
from tests.adopt._folders import a1111_folder, comfyui_folder, sha256

pytestmark = pytest.mark.slow


def _png(path: Path, texts: dict[str, str]) -> Path:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format="PNG", pnginfo=info)
    path.write_bytes(buf.getvalue())
    return path


def _data_sha(path: Path) -> str:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return hashlib.sha256(data[8 + n:]).hexdigest()


def _generate(cli, folder: Path, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    r = cli("generate", "--lock", folder / "hubctl.lock", "--out", folder / "out.png", "--json", *extra)
    assert r.exit_code == 0, r.output
    return r.json()


def _import(cli, source: Path, folder: Path, *extra: str):  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    r = cli("import", source, "--dir", folder, "--json", *extra)
    assert r.exit_code == 0, r.output
    return r.json()


def _sync(cli, folder: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(folder)
    r = cli("sync")
    assert r.exit_code == 0, r.output


def test_a_png_hubctl_wrote_imports_to_the_same_files_and_replays_bit_for_bit(cli, demo_registry, tmp_path, monkeypatch):
    first = tmp_path / "first"
    first.mkdir()
    monkeypatch.chdir(first)
    assert cli("add", "demo-sd==1.4", "demo-style", "demo-token").exit_code == 0
    assert cli("sync").exit_code == 0
    rec = _generate(cli, first, "--prompt", "a <demo-token> in demo style", "--seed", "11", "--steps", "2", "--lora", "demo-style=0.6")
    res = _import(cli, first / "out.png", tmp_path / "second")
    assert res["kind"] == "hubctl" and res["unresolved"] == []
    from hubctl.lock.lockfile import read_lock

    a, b = read_lock(first / "hubctl.lock"), read_lock(tmp_path / "second" / "hubctl.lock")
    assert sorted((p.name, p.version, p.variant, tuple(f.sha256 for f in p.files)) for p in a.packages) == \
        sorted((p.name, p.version, p.variant, tuple(f.sha256 for f in p.files)) for p in b.packages)
    g = res["generate"]
    assert (g["seed"], g["steps"], g["prompt"], g["loras"]) == (11, 2, "a <demo-token> in demo style", {"demo-style": 0.6})
    _sync(cli, tmp_path / "second", monkeypatch)
    args = ["--prompt", g["prompt"], "--seed", str(g["seed"]), "--steps", str(g["steps"]), "--guidance", str(g["guidance"]),
            "--width", str(g["width"]), "--height", str(g["height"])]
    args += [a for name, w in g["loras"].items() for a in ("--lora", f"{name}={w}")]
    again = _generate(cli, tmp_path / "second", *args)
    assert again["image_sha256"] == rec["image_sha256"]


def test_an_a1111_png_resolves_its_model_lora_and_ti_hashes_and_the_lock_generates(cli, sparse, demo_registry, tmp_path, monkeypatch):
    files = a1111_folder(tmp_path / "webui", sparse, checkpoint="sd1-vae", demo=demo_registry)
    assert cli("adopt", tmp_path / "webui").exit_code == 0  # A1111's LoRA hash is of the tensor data: adopt knows it
    base = files["demo_base"]
    token = demo_registry.file("demo-token", "1.0", "fp32")
    text = (
        "a cat, demo style <lora:demo-style:0.8>\nNegative prompt: blurry\n"
        f"Steps: 2, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x64, Model hash: {sha256(base)[:10]}, "
        f"Model: demo-sd-1.4, Lora hashes: \"demo-style: {_data_sha(files['demo_lora'])[:12]}\", "
        f"TI hashes: \"demo-token: {sha256(token)[:12]}\", Version: v1.10.1"
    )
    png = _png(tmp_path / "a1111.png", {"parameters": text})
    res = _import(cli, png, tmp_path / "p")
    got = {r["name"]: (r["version"], r["variant"]) for r in res["resolved"]}
    assert got == {"demo-sd": ("1.4", "single-file"), "demo-style": ("1.0", "fp32"), "demo-token": ("1.0", "fp32")}
    assert res["generate"]["sampler"] == "euler_a" and res["generate"]["loras"] == {"demo-style": 0.8}
    _sync(cli, tmp_path / "p", monkeypatch)
    _generate(cli, tmp_path / "p", "--prompt", "a cat", "--seed", "5", "--steps", "2")


def _comfy_prompt() -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo-sd-1.4.safetensors"}},
        "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "demo-style.safetensors", "strength_model": 0.7,
                                                      "strength_clip": 0.7, "model": ["4", 0], "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 9, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["10", 0]}},
    }


def test_a_comfyui_png_resolves_loader_files_through_the_adopted_comfyui_folder(cli, sparse, demo_registry, tmp_path, monkeypatch):
    comfyui_folder(tmp_path / "ComfyUI", sparse, demo=demo_registry)
    assert cli("adopt", tmp_path / "ComfyUI").exit_code == 0
    png = _png(tmp_path / "comfy.png", {"prompt": json.dumps(_comfy_prompt())})
    res = _import(cli, png, tmp_path / "p")
    assert res["kind"] == "comfyui"
    assert {r["name"]: r["variant"] for r in res["resolved"]} == {"demo-sd": "single-file", "demo-style": "fp32"}
    _sync(cli, tmp_path / "p", monkeypatch)
    _generate(cli, tmp_path / "p", "--prompt", "x", "--seed", "9", "--steps", "2")


def test_a_comfyui_workflow_json_resolves_by_the_hashes_of_its_models_list(cli, demo_registry, tmp_path, monkeypatch):
    base = demo_registry.file("demo-sd", "1.4", "single-file")
    lora = demo_registry.file("demo-style", "1.0", "fp32")
    workflow = {
        "last_node_id": 10, "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sd/demo.safetensors"]},
            {"id": 10, "type": "LoraLoader", "widgets_values": ["styles/demo-style.safetensors", 0.5, 0.5]},
        ],
        "links": [],
        "models": [
            {"name": "sd/demo.safetensors", "directory": "checkpoints", "hash": sha256(base), "hash_type": "SHA256",
             "url": "https://example.invalid/demo.safetensors"},
            {"name": "styles/demo-style.safetensors", "directory": "loras", "hash": sha256(lora), "hash_type": "SHA256"},
        ],
    }
    src = tmp_path / "workflow.json"
    src.write_text(json.dumps(workflow))
    res = _import(cli, src, tmp_path / "p")
    assert {r["name"] for r in res["resolved"]} == {"demo-sd", "demo-style"}
    _sync(cli, tmp_path / "p", monkeypatch)
    _generate(cli, tmp_path / "p", "--prompt", "x", "--seed", "1", "--steps", "2")


def test_an_air_list_resolves_through_civitai_and_sync_downloads_with_the_token(cli, civitai, sparse, tmp_path, monkeypatch):  # noqa: F811
    lora = sparse.get("sd1-lora-kohya").read_bytes()
    emb = sparse.get("sd1-emb-a1111").read_bytes()
    civitai.add_version(555, model_id=77, model_name="Mystery Style", model_type="LORA", base_model="SD 1.5",
                        files=[(9001, "mysteryStyle_v1.safetensors", lora)], gated=True, trained_words=["mystery style"])
    civitai.add_version(556, model_id=78, model_name="Bad Hands", model_type="TextualInversion", base_model="SD 1.5",
                        files=[(9002, "badhands.safetensors", emb)])
    src = tmp_path / "airs.txt"
    src.write_text("# shared by a friend\nurn:air:sd1:lora:civitai:77@555\nurn:air:sd1:embedding:civitai:78@556\n")
    monkeypatch.setenv("CIVITAI_TOKEN", civitai.token)
    res = _import(cli, src, tmp_path / "p")
    got = {r["name"]: (r["version"], r["kind"], r["family"]) for r in res["resolved"]}
    assert got == {"mystery-style-77": ("555", "lora", "sd1"), "bad-hands-78": ("556", "embedding", "sd1")}
    lock = (tmp_path / "p" / "hubctl.lock").read_text()
    assert 'url = "civitai:555/9001"' in lock and hashlib.sha256(lora).hexdigest() in lock
    assert f"size = {len(lora)}" in lock  # asked at lock time (Civitai gives only sizeKB)
    _sync(cli, tmp_path / "p", monkeypatch)
    from hubctl.store.blobs import Store

    assert Store().has_blob(hashlib.sha256(lora).hexdigest()) and Store().has_blob(hashlib.sha256(emb).hexdigest())
    # the token went to the API's host only, never to the CDN the download redirected to
    assert all(r.headers.get("authorization") == f"Bearer {civitai.token}" for r in civitai.stats.requests)
    assert civitai.cdn.stats.requests and not any("authorization" in r.headers for r in civitai.cdn.stats.requests)


def test_a_hash_nobody_knows_is_listed_and_nothing_is_written(cli, civitai, demo_registry, tmp_path):  # noqa: F811
    png = _png(tmp_path / "x.png", {"parameters": "cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, "
                                                  "Model hash: 0123456789, Lora hashes: \"gone: abcdefabcdef\""})
    (tmp_path / "p").mkdir()
    r = cli("import", png, "--dir", tmp_path / "p")
    assert r.exit_code == 1
    assert "unresolved: checkpoint: hash 0123456789: not known here, and Civitai has no hash 0123456789" in r.stderr
    assert "unresolved: lora: gone hash abcdefabcdef" in r.stderr
    assert not (tmp_path / "p" / "hubctl.toml").exists() and not (tmp_path / "p" / "hubctl.lock").exists()
    r = cli("import", png, "--dir", tmp_path / "p", "--no-civitai")
    assert r.exit_code == 1 and "Civitai not asked" in r.stderr


def test_import_will_not_overwrite_a_project_file_without_force(cli, demo_registry, tmp_path):
    base = demo_registry.file("demo-style", "1.0", "fp32")
    src = tmp_path / "p.txt"
    src.write_text(f"cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Lora hashes: \"s: {sha256(base)[:10]}\"\n")
    (tmp_path / "hubctl.toml").write_text('requires = ["x"]\n')
    r = cli("import", src, "--dir", tmp_path)
    assert r.exit_code == 2 and "--force" in r.stderr
    assert (tmp_path / "hubctl.toml").read_text() == 'requires = ["x"]\n'
    r = cli("import", src, "--dir", tmp_path, "--force")
    assert r.exit_code == 0, r.output
    assert '"demo-style==1.0"' in (tmp_path / "hubctl.toml").read_text()


def test_a_workflow_model_known_only_by_its_civitai_url_resolves_through_the_api(cli, civitai, sparse, tmp_path):  # noqa: F811
    lora = sparse.get("sd1-lora-kohya").read_bytes()
    civitai.add_version(4242, model_id=99, model_name="Ink Lines", model_type="LORA", base_model="SD 1.5",
                        files=[(7, "inkLines.safetensors", lora)])
    workflow = {"nodes": [{"id": 1, "type": "LoraLoader", "widgets_values": ["inkLines.safetensors", 0.8, 0.8]}],
                "models": [{"name": "inkLines.safetensors", "directory": "loras",
                            "url": "https://civitai.com/api/download/models/4242?type=Model&format=SafeTensor"}]}
    src = tmp_path / "wf.json"
    src.write_text(json.dumps(workflow))
    res = _import(cli, src, tmp_path / "p")
    assert [(r["name"], r["version"], r["from"]) for r in res["resolved"]] == [("ink-lines-99", "4242", "civitai 4242")]
    assert res["generate"]["loras"] == {"ink-lines-99": 0.8}
