"""Auth of `hubctl serve`: a bearer token from HUBCTL_SERVE_TOKEN, required on every /v1 route but health when
set; a public address is refused without one; the token never reaches a log, a record or a PNG. A real server
process with a token (this module's own), and the CLI in-process for the refusals (nothing is bound)."""

from __future__ import annotations

import secrets

import pytest

from tests.fixtures.serve import start_server

pytestmark = pytest.mark.slow

TOKEN = "tok-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def guarded(serve_home, tmp_path_factory):
    server = start_server(serve_home, tmp_path_factory.mktemp("guarded"), token=TOKEN, args=("--access-log", "--max-steps", "4"))
    yield server
    server.stop()


WRONG = {"none": "", "wrong": "Bearer wrong-token-000000000000", "basic": f"Basic {TOKEN}", "longer": f"Bearer {TOKEN}x",
         "shorter": f"Bearer {TOKEN[:-1]}", "scheme-only": "Bearer"}


@pytest.mark.parametrize("kind", list(WRONG))
@pytest.mark.parametrize("method,path", [("GET", "/v1/runs"), ("GET", "/v1/lock"), ("POST", "/v1/generate"),
                                         ("GET", "/v1/runs/20260101-000000-0123abcd"), ("POST", "/v1/runs/20260101-000000-0123abcd/replay")])
def test_every_v1_route_refuses_a_missing_or_wrong_token(guarded, kind, method, path):
    c = guarded.client(headers={"Authorization": WRONG[kind]})  # "" stands for no header (the client adds none)
    r = c.request(method, path, json={"prompt": "x"} if method == "POST" else None)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_the_right_token_is_let_in_and_health_and_the_page_need_none(guarded):
    anon = guarded.client(headers={"Authorization": ""})
    assert anon.get("/v1/health").status_code == 200
    assert anon.get("/").status_code == 200
    assert anon.get("/openapi.json").status_code == 200
    r = guarded.post("/v1/generate", {"prompt": "with a token", "steps": 1, "seed": 2})
    assert r.status_code == 200, r.text
    assert guarded.get(r.json()["images"][0]["url"]).status_code == 200
    assert anon.get(r.json()["images"][0]["url"]).status_code == 401


def test_the_token_appears_in_no_log_record_or_image(guarded):
    r = guarded.post("/v1/generate", {"prompt": "secret check", "steps": 1, "seed": 3})
    assert r.status_code == 200
    guarded.client(headers={"Authorization": f"Bearer {TOKEN}-wrong"}).get("/v1/runs")
    logs = guarded.logs()
    assert "POST /v1/generate" in logs, "the access log is on"
    assert TOKEN not in logs
    for p in guarded.home.rglob("*"):
        if p.is_file():
            assert TOKEN.encode() not in p.read_bytes(), p
    for p in guarded.out_dir.glob("*.png"):
        assert TOKEN.encode() not in p.read_bytes()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.org"])
def test_a_public_host_without_a_token_is_refused_before_anything_loads(cli, serve_home, host, monkeypatch):
    monkeypatch.delenv("HUBCTL_SERVE_TOKEN", raising=False)
    r = cli("serve", "--host", host, "--lock", str(serve_home.lock_path), "--port", "0")
    assert r.exit_code == 2
    assert "not a loopback address" in r.stderr and "HUBCTL_SERVE_TOKEN" in r.stderr
    assert "Traceback" not in r.output


def test_a_short_token_is_refused_without_printing_it(cli, serve_home, monkeypatch):
    monkeypatch.setenv("HUBCTL_SERVE_TOKEN", "hunter2")
    r = cli("serve", "--lock", str(serve_home.lock_path), "--port", "0")
    assert r.exit_code == 2 and "7 characters long" in r.stderr and "hunter2" not in r.output


def test_token_comparison_accepts_only_the_exact_bearer_token():
    from hubctl.serve.auth import token_matches

    assert token_matches(f"Bearer {TOKEN}", TOKEN) and token_matches(f"bearer {TOKEN}", TOKEN)
    for bad in (None, "", TOKEN, f"Bearer {TOKEN} x", f"Token {TOKEN}", f"Bearer {TOKEN.upper()}", "Bearer \u00e9" + TOKEN):
        assert not token_matches(bad, TOKEN), bad
