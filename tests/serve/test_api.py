"""`hubctl serve` as a client sees it: a real server process on 127.0.0.1 (the `served` fixture: the demo's
tiny models, no token) driven over HTTP with httpx. PNG chunks, run records, replays and the queue's answers."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from hubctl.run.pngmeta import parse_a1111_parameters, read_png_chunks

pytestmark = pytest.mark.slow


def _gen(served, **body):
    body.setdefault("steps", 2)
    r = served.post("/v1/generate", body)
    assert r.status_code == 200, r.text
    return r.json()


def _png(served, url: str) -> bytes:
    r = served.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return r.content


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _wait_until(pred, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _occupy(served, steps: int = 50) -> threading.Thread:
    """Keep the device busy with one slow job (returns once it runs)."""
    before = served.health()["queue"]["batches"]
    t = threading.Thread(target=lambda: served.post("/v1/generate", {"prompt": "slow job", "steps": steps, "seed": 1}))
    t.start()
    _wait_until(lambda: served.health()["queue"]["running"] > 0 or served.health()["queue"]["batches"] > before)
    return t


def test_health_is_ready_once_verified_and_loaded_and_names_the_lock(served, serve_home):
    from hubctl.run.verify import lock_digest

    h = served.get("/v1/health")
    assert h.status_code == 200
    assert h.json()["status"] == "ready" and h.json()["device"] == "cpu"
    assert h.json()["lock_digest"] == lock_digest(serve_home.lock.packages)
    assert "ready: demo-sd 1.4 on cpu fp32" in served.logs()


def test_generated_pngs_carry_a1111_parameters_and_hubctl_provenance(served, serve_home):
    res = _gen(served, prompt="a photo of <demo-token>", negative="blurry", seed=5, images=2, guidance=6.5)
    assert [im["seed"] for im in res["images"]] == [5, 6] and res["batch_size"] == 2
    unet_sha = next(f.sha256 for f in serve_home.lock.packages[0].files if f.path == "unet/diffusion_pytorch_model.safetensors")
    style = next(p for p in serve_home.lock.packages if p.name == "demo-style").files[0].sha256
    token = next(p for p in serve_home.lock.packages if p.name == "demo-token").files[0].sha256
    for k, im in enumerate(res["images"]):
        data = _png(served, im["url"])
        p = tmp = Path(served.log_dir) / f"check-{k}.png"
        tmp.write_bytes(data)
        chunks = read_png_chunks(p)
        a = parse_a1111_parameters(chunks["parameters"])
        assert (a["Prompt"], a["Negative prompt"], a["Seed"], a["Steps"], a["CFG scale"], a["Size"]) == (
            "a photo of <demo-token>", "blurry", str(5 + k), "2", "6.5", "64x64")
        assert a["Model hash"] == unet_sha[:10] == res["model_hash"]
        assert a["Lora hashes"] == f"demo-style: {style[:10]}" and a["TI hashes"] == f"demo-token: {token[:10]}"
        h = chunks["hubctl"]
        assert h["run_id"] == res["run_id"] and h["lock_digest"] == res["lock_digest"] and h["batch"] == {"size": 2, "index": k}
        assert h["files"]["demo-sd 1.4"]["unet/diffusion_pytorch_model.safetensors"] == unet_sha
        assert h["device"] == "cpu" and h["attention"] == "sdpa" and h["loras"] == {"demo-style": 1.0}
        assert chunks["pixel_sha256"] == im["image_sha256"]
        assert chunks["parameters"] == im["parameters"]


def test_the_run_record_holds_what_the_clis_records_hold(served, serve_home):
    res = _gen(served, prompt="a cat", seed=3, loras={"demo-style": 0.5})
    d = served.get(res["run_url"]).json()
    assert d["id"] == res["run_id"] and d["base"] == "demo-sd 1.4" and d["lock_digest"] == res["lock_digest"]
    assert d["params"]["loras"] == {"demo-style": 0.5} and d["params"]["steps"] == 2 and d["params"]["seed"] == 3
    assert d["params"]["fuse_loras"] is False and d["params"]["cpu_threads"] == 1
    locked = {(p.name, f.path): f.sha256 for p in serve_home.lock.packages for f in p.files}
    shown = {(p["name"], f["path"]): f["sha256"] for p in d["packages"] for f in p["files"]}
    assert shown == locked
    assert {"torch", "diffusers", "python", "hubctl"} <= set(d["versions"])
    assert "out_path" not in json.dumps(d) and str(served.out_dir) not in json.dumps(d), "no local paths over the API"
    listed = served.get("/v1/runs").json()["runs"]
    assert listed[0]["id"] == res["run_id"]


def test_a_lone_image_is_the_image_cli_generate_makes_for_that_seed(served, serve_home, tmp_path, monkeypatch):
    from hubctl.run.generate import GenerateRequest, run_generate

    res = _gen(served, prompt="a lighthouse", seed=9, loras={"demo-style": 1.0})
    monkeypatch.setenv("HUBCTL_HOME", str(serve_home.home))
    cli_rec = run_generate(GenerateRequest(prompt="a lighthouse", seed=9, steps=2, loras={"demo-style": 1.0}, fuse_loras=False,
                                           device="cpu", out=str(tmp_path / "cli.png")), lock=serve_home.lock)
    assert cli_rec["image_sha256"] == res["images"][0]["image_sha256"]
    assert cli_rec["model_hash"] == res["model_hash"] and cli_rec["lock_digest"] == res["lock_digest"]


def test_replay_of_any_image_of_a_batch_gives_the_same_pixels_over_the_api_and_the_cli(served, serve_home, cli, tmp_path, monkeypatch):
    res = _gen(served, prompt="three boats", seed=40, images=3)
    r = served.post(f"/v1/runs/{res['run_id']}/replay", {"image": 2})
    assert r.status_code == 200, r.text
    rp = r.json()
    assert rp["match"] is True and rp["run"] == res["run_id"] and rp["batch_size"] == 3
    assert rp["replay_image_sha256"] == res["images"][2]["image_sha256"]
    assert _pixels(_png(served, rp["url"])).tobytes() == _pixels(_png(served, res["images"][2]["url"])).tobytes()
    assert served.get(f"/v1/runs/{rp['replay']}").json()["replay_of"] == res["run_id"]

    monkeypatch.setenv("HUBCTL_HOME", str(serve_home.home))
    out = cli("generate", "--replay", res["run_id"], "--image", "1", "--out", str(tmp_path), "--json")
    assert out.exit_code == 0, out.output
    j = out.json()
    assert j["match"] is True and j["image"] == 1 and j["replay_image_sha256"] == res["images"][1]["image_sha256"]
    assert Image.open(j["out_path"]).tobytes() == Image.open(io.BytesIO(_png(served, res["images"][1]["url"]))).tobytes()
    bad = cli("generate", "--replay", res["run_id"], "--image", "3")
    assert bad.exit_code == 2 and "has 3 images" in bad.stderr
    to_file = cli("generate", "--replay", res["run_id"], "--out", str(tmp_path / "x.png"))
    assert to_file.exit_code == 2 and "writes into a folder" in to_file.stderr and not (tmp_path / "x.png").exists()


def test_concurrent_compatible_requests_share_one_batch_and_each_image_keeps_its_seed(served):
    slow = _occupy(served)
    results: dict[int, dict] = {}

    def one(i: int) -> None:
        results[i] = _gen(served, prompt=f"batched {i}", seed=100 + i, steps=3)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads + [slow]:
        t.join()
    runs = {r["run_id"] for r in results.values()}
    assert len(runs) == 1, "three compatible requests waiting together run as one batch"
    assert sorted(r["images"][0]["index"] for r in results.values()) == [0, 1, 2]
    # each image is its seed's image: within rounding of a lone image of that seed, far from the others'
    lone = {i: _gen(served, prompt=f"batched {i}", seed=100 + i, steps=3) for i in (0, 1)}
    a0 = _pixels(_png(served, results[0]["images"][0]["url"]))
    l0, l1 = (_pixels(_png(served, lone[i]["images"][0]["url"])) for i in (0, 1))
    assert np.abs(a0 - l0).max() <= 2, "a batched image differs from the lone one by rounding only"
    assert np.abs(a0 - l1).mean() > 10


def test_incompatible_requests_run_in_separate_batches(served):
    slow = _occupy(served)
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(_gen(served, prompt="x", seed=1, steps=s))) for s in (2, 3)]
    for t in threads:
        t.start()
    for t in threads + [slow]:
        t.join()
    assert len({r["run_id"] for r in results}) == 2


@pytest.mark.parametrize("body,field", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x", "steps": 61}, "steps"),
    ({"prompt": "x", "steps": 0}, "steps"),
    ({"prompt": "x", "width": 60}, "width"),
    ({"prompt": "x", "height": 256}, "height"),
    ({"prompt": "x", "images": 5}, "images"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "guidance": 1000}, "guidance"),
    ({"prompt": "x", "sampler": "magic"}, "sampler"),
    ({"prompt": "x", "loras": {"not-locked": 1.0}}, "loras"),
    ({"prompt": "x", "loras": {"demo-style": 99}}, "loras"),
    ({"prompt": "x", "model": "/etc/passwd"}, "model"),
    ({"prompt": "x" * 2001}, "prompt"),
])
def test_bad_input_is_a_422_naming_the_field(served, body, field):
    r = served.post("/v1/generate", body)
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["detail"]] == [["body", field]]


def test_a_full_queue_answers_429_with_retry_after_and_the_waiting_work_still_completes(served):
    slow = _occupy(served, steps=60)
    done: list[int] = []
    waiting = [threading.Thread(target=lambda i=i: done.append(served.post("/v1/generate", {"prompt": f"q{i}", "steps": 1 + i % 2, "seed": i, "width": 32, "height": 32}).status_code))
               for i in range(16)]
    for t in waiting:
        t.start()
    _wait_until(lambda: served.health()["queue"]["queued"] == 16)
    r = served.post("/v1/generate", {"prompt": "one too many", "steps": 1})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    for t in waiting + [slow]:
        t.join()
    assert done == [200] * 16


def test_a_client_that_leaves_before_its_work_starts_leaves_nothing_behind(served):
    slow = _occupy(served, steps=50)
    cancelled = served.health()["queue"]["cancelled"]
    u = urlparse(served.url)
    body = json.dumps({"prompt": "the client left", "steps": 1}).encode()
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (u.netloc.encode(), len(body), body))
    _wait_until(lambda: served.health()["queue"]["queued"] == 1)
    s.close()
    _wait_until(lambda: served.health()["queue"]["cancelled"] == cancelled + 1)
    slow.join()
    runs = served.get("/v1/runs", params={"limit": 500}).json()["runs"]
    assert not [r for r in runs for im in r["images"] if im["prompt"] == "the client left"]
    written = [read_png_chunks(p)["parameters"] or "" for p in served.out_dir.glob("*.png")]
    assert written and not [t for t in written if t.startswith("the client left")], "no PNG of the departed client"


def test_loopback_without_a_token_needs_no_authorization(served):
    assert served.client().get("/v1/lock").status_code == 200


def test_lock_route_lists_the_locked_files_and_the_loras_a_request_may_weight(served, serve_home):
    d = served.get("/v1/lock").json()
    assert d["loras"] == ["demo-style"] and d["embeddings"] == {"demo-token": ["<demo-token>"]}
    assert {p["name"] for p in d["packages"]} == {"demo-sd", "demo-style", "demo-token"}
    assert all(len(f["sha256"]) == 64 for p in d["packages"] for f in p["files"])
    assert d["limits"]["max_steps"] == 60 and d["default_size"] == [64, 64]


def test_openapi_document_lists_every_route_with_the_configured_limits(served):
    doc = served.get("/openapi.json").json()
    assert {"/v1/generate", "/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/images/{k}.png", "/v1/runs/{run_id}/replay",
            "/v1/lock", "/v1/health"} <= set(doc["paths"])
    body = doc["components"]["schemas"]["GenerateBody"]["properties"]
    assert body["steps"]["maximum"] == 60 and body["images"]["maximum"] == 4
