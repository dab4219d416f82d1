"""Hostile requests to `hubctl serve` (the shared `served` process, no token, loopback): each case one attack.
Nothing a request sends may reach a file outside the lock or the server's own images, run work it was not
asked to, or be executed by the gallery page."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path,status", [
    ("/v1/runs/..%2F..%2Fetc%2Fpasswd", 404),
    ("/v1/runs/../../etc/passwd", 404),
    ("/v1/runs/20260101-000000-0123abcd", 404),
    ("/v1/runs/2026", 422),  # a prefix is not an id here (the CLI's prefix matching is not exposed)
    ("/v1/runs/20260101-000000-0123abcd/images/0.png", 404),
    ("/v1/runs/20260101-000000-0123abcd/images/-1.png", 422),
    ("/v1/runs/20260101-000000-0123abcd/images/..%2F..%2Fstate.db", 404),
])
def test_run_and_image_paths_reach_only_recorded_runs(served, path, status):
    assert served.get(path).status_code == status


def test_an_image_index_past_the_run_is_404(served):
    res = served.post("/v1/generate", {"prompt": "one", "steps": 1, "seed": 1}).json()
    assert served.get(f"/v1/runs/{res['run_id']}/images/1.png").status_code == 404


def test_a_run_whose_png_lies_outside_the_servers_folder_is_not_served(served, serve_home, tmp_path, monkeypatch):
    from hubctl.run.generate import GenerateRequest, run_generate

    monkeypatch.setenv("HUBCTL_HOME", str(serve_home.home))
    rec = run_generate(GenerateRequest(prompt="elsewhere", seed=1, steps=1, device="cpu", out=str(tmp_path / "x.png")), lock=serve_home.lock)
    assert served.get(f"/v1/runs/{rec['id']}").status_code == 404
    assert served.get(f"/v1/runs/{rec['id']}/images/0.png").status_code == 404
    assert rec["id"] not in {r["id"] for r in served.get("/v1/runs", params={"limit": 500}).json()["runs"]}


def test_a_lora_named_by_path_is_refused(served):
    r = served.post("/v1/generate", {"prompt": "x", "loras": {"/etc/passwd": 1.0, "../demo-style": 1.0}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "loras"]


def test_a_cross_origin_post_is_refused(served):
    r = served.client(headers={"Origin": "http://evil.example"}).post("/v1/generate", json={"prompt": "csrf", "steps": 1})
    assert r.status_code == 403


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_post_that_is_not_json_is_refused_before_parsing(served, ctype):
    # a browser form or no-cors fetch from another site can send these without a preflight
    body = json.dumps({"prompt": "csrf", "steps": 1}).encode()
    u = urlparse(served.url)
    head = f"POST /v1/generate HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    with socket.create_connection((u.hostname, u.port)) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        reply = s.recv(200).decode()
    assert reply.startswith("HTTP/1.1 415")


def test_a_foreign_host_header_is_refused_on_a_loopback_server(served):
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends Host: evil.example
    r = served.client(headers={"Host": "evil.example"}).get("/v1/runs")
    assert r.status_code == 421


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_body_is_refused_with_413(served, chunked):
    body = json.dumps({"prompt": "x" * 70000}).encode()
    c = served.client()
    if chunked:
        r = c.post("/v1/generate", content=iter([body[i:i + 8192] for i in range(0, len(body), 8192)]),
                   headers={"Content-Type": "application/json"})
    else:
        r = c.post("/v1/generate", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_a_replay_of_a_run_made_from_another_lock_is_refused(served, serve_home, demo_hub, tmp_path, monkeypatch):
    from hubctl.run.generate import GenerateRequest, run_generate
    from tests.run.test_generate import locked, make_lock

    monkeypatch.setenv("HUBCTL_HOME", str(serve_home.home))
    other = make_lock(locked(demo_hub, "demo-sd", "1.4"))
    rec = run_generate(GenerateRequest(prompt="other lock", seed=1, steps=1, device="cpu", out=str(served.out_dir / "other.png")), lock=other)
    r = served.post(f"/v1/runs/{rec['id']}/replay", {"image": 0})
    assert r.status_code == 409 and "another lock" in r.json()["detail"]


def test_markup_in_a_prompt_stays_text_in_the_exported_page(served, cli, tmp_path, monkeypatch):
    evil = '</script><img src=x onerror="document.title=1"><!--'
    assert served.post("/v1/generate", {"prompt": evil, "steps": 1, "seed": 1}).status_code == 200
    monkeypatch.setenv("HUBCTL_HOME", str(served.home))
    assert cli("runs", "export", str(tmp_path / "g")).exit_code == 0
    html = (tmp_path / "g" / "index.html").read_text()
    assert evil not in html and "</script><img" not in html and "<!--" not in html.split("<script>", 1)[1]
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html


def test_serve_refuses_a_lock_whose_files_do_not_verify_before_binding(cli, serve_home, tmp_path):
    from dataclasses import replace

    from hubctl.lock.lockfile import Lock, write_lock

    pkgs = list(serve_home.lock.packages)
    f0 = pkgs[0].files[0]
    pkgs[0] = replace(pkgs[0], files=(replace(f0, sha256="0" * 64),) + tuple(pkgs[0].files[1:]))
    bad = tmp_path / "hubctl.lock"
    write_lock(bad, Lock(packages=pkgs, requires=serve_home.lock.requires, inputs_digest=serve_home.lock.inputs_digest))
    r = cli("serve", "--lock", str(bad), "--port", "0")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "hubctl serve: http" not in r.stdout, "nothing was bound"
