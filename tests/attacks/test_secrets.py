"""Secrets: an HF token and a Civitai-style token, given only through the environment, reach the servers that
need them (as a header) and nowhere else: not stdout/stderr, not an error message, not a log record, not the
state or index database, not a manifest, not the lock. Real Hub-compatible and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

HF_TOKEN = "hf_SuperSecretHubToken0123456789abcdef"
CIVITAI_TOKEN = "0f3c9a51d2b84e7cb6a1e9d07f4c2b58"  # Civitai API keys are 32 hex digits
WEIGHTS = hashlib.sha256(b"secret-test").digest() * 40_000
LORA = hashlib.sha256(b"lora").digest() * 3000


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "2")


def _grep(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            hits += [f"{p}: {n[:6]}…" for n in needles if n.encode() in data]
    return hits


def test_tokens_never_reach_output_logs_databases_manifests_or_locks(hub_server, http_server, cli, tmp_path, monkeypatch, caplog, hubctl_home):
    caplog.set_level(logging.DEBUG)
    hub_server.create_repo("org/private-base", {"model.safetensors": WEIGHTS}, token=HF_TOKEN)
    lora_url = http_server.add_file("/api/download/models/8339", LORA, token=CIVITAI_TOKEN)
    reg = tmp_path / "reg"
    (reg / "manifests" / "checkpoint").mkdir(parents=True)
    (reg / "manifests" / "lora").mkdir(parents=True)
    (reg / "manifests" / "checkpoint" / "secret-base.toml").write_text(
        'name = "secret-base"\nkind = "checkpoint"\n[[versions]]\nversion = "1.0"\nfamily = "sd1"\n'
        '[[versions.variants]]\nname = "fp16"\nfiles = [{ path = "model.safetensors", source = "hf://org/private-base/model.safetensors" }]\n'
    )
    (reg / "manifests" / "lora" / "secret-style.toml").write_text(
        'name = "secret-style"\nkind = "lora"\n[[versions]]\nversion = "1.0"\nfamily = "sd1"\n'
        f'[[versions.variants]]\nname = "fp16"\nfiles = [{{ path = "style.safetensors", source = "{lora_url}" }}]\n'
    )
    from hubctl.registry.manage import add_registry

    add_registry(str(reg), name="secret")
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("CIVITAI_TOKEN", CIVITAI_TOKEN)
    monkeypatch.setenv("HUBCTL_AUTH_127_0_0_1", CIVITAI_TOKEN)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)

    outputs = []
    for args in (
        ("install", "secret-base", "secret-style"),
        ("install", "secret-base", "secret-style", "--json"),
        ("list", "--json"),
        ("verify", "--full"),
        ("add", "secret-base", "secret-style"),
        ("lock", "--check"),
        ("sync", "--json"),
    ):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.output)
        outputs.append(r.output)
    assert (project / "hubctl.lock").is_file()

    # the servers did get the tokens, as headers
    hub_auth = [v for rec in hub_server.stats.requests for k, v in rec.headers.items() if k.lower() == "authorization"]
    assert f"Bearer {HF_TOKEN}" in hub_auth
    civ_auth = [v for rec in http_server.stats.requests for k, v in rec.headers.items() if k.lower() == "authorization"]
    assert f"Bearer {CIVITAI_TOKEN}" in civ_auth

    # failures with wrong tokens: one line each, no token in them
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN[:-4] + "XXXX")
    monkeypatch.setenv("HUBCTL_AUTH_127_0_0_1", CIVITAI_TOKEN[::-1])
    cli("uninstall", "secret-base", "secret-style")
    cli("gc")
    (project / "hubctl.lock").unlink()
    for args in (("install", "secret-base"), ("install", "secret-style"), ("lock",)):
        r = cli(*args)
        assert r.exit_code == 3, (args, r.output)
        outputs.append(r.output)
    from hubctl.sources.fetch import pin_file
    from hubctl.registry.manifest import FileRef

    for src in ("hf://org/private-base/model.safetensors", lora_url):
        try:
            pin_file(FileRef(path="x", source=src))
        except Exception as e:  # noqa: BLE001
            outputs.append(str(e))
            outputs.append(repr(e))

    needles = [HF_TOKEN, CIVITAI_TOKEN, HF_TOKEN[:-4] + "XXXX", CIVITAI_TOKEN[::-1]]
    for text in outputs:
        for n in needles:
            assert n not in text, f"token in output: {text!r}"
    for rec in caplog.records:
        line = rec.getMessage() + " " + str(rec.args)
        for n in needles:
            assert n not in line, f"token in a log record: {line!r}"
    from hubctl import db

    db.dispose_all()  # flush WAL into the database files before reading their bytes
    assert _grep(hubctl_home, needles) == []
    assert _grep(project, needles) == []
    assert _grep(reg, needles) == []
