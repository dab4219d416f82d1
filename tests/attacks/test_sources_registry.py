"""Registries that come from elsewhere: what an index served over HTTP (or any registry) may say.

- A registry served over HTTP names only remote sources: a `file://` URL or a relative path in it would copy the
  user's own files into the store on install (issue 17, item 4).
- A family the bundled default (or an earlier registry) defines is not silently redefined (item 4).
- No source URL carries credentials: they would be stored in hubctl.lock and index.db (item 6).

Driven through the CLI against real registry folders and a real HTTP server on 127.0.0.1; each refusal is checked
for what the user sees (exit 2, one line naming the registry and the manifest, no secret echoed) and for nothing
changed (registries.toml, the previous index). One test (or one parametrised case) per attack."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

SHA = "ab" * 32
SECRET = "s3cret-Pa55"


def _manifest(source: str, name: str = "paper-cut", family: str = "sd1") -> dict:
    return {"name": name, "kind": "lora", "summary": "Paper-cut style", "versions": [{
        "version": "1.0", "family": family, "variants": [{"name": "fp16", "dtype": "fp16", "files": [
            {"path": "papercut.safetensors", "size": 1000, "sha256": SHA, "source": source}]}]}]}


def _index(*manifests: dict, families: list | None = None) -> bytes:
    return json.dumps({"hubctl-index": 1, "families": families or [], "manifests": list(manifests)}).encode()


def _folder(root: Path, *manifests: dict, families: str | None = None) -> Path:
    import tomli_w

    for m in manifests:
        p = root / "manifests" / m["kind"] / f"{m['name']}.toml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(tomli_w.dumps(m))
    if families is not None:
        (root / "families.toml").write_text(families)
    return root


def _one_line(r) -> str:
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def _bundled_family(fid: str, **changes) -> dict:
    from hubctl.registry.families import default_families

    fam = next(f for f in default_families() if f.id == fid)
    return {**fam.model_dump(mode="json", exclude_defaults=True), **changes}


# ------------------------------------------------------------------------------ item 4: local sources
LOCAL_SOURCES = ["file:///etc/passwd", "file://localhost/home/user/.ssh/id_ed25519", "../../.ssh/id_ed25519",
                 "/etc/shadow", "models/papercut.safetensors"]


@pytest.mark.parametrize("source", LOCAL_SOURCES)
def test_a_registry_served_over_http_may_not_name_a_local_file(cli, http_server, hubctl_home, source):
    url = http_server.add_file("/reg/index.json", _index(_manifest("https://example.org/a.safetensors"),
                                                         _manifest(source, name="evil-style")))
    r = cli("registry", "add", url, "--name", "web")
    assert r.exit_code == 2
    line = _one_line(r)
    assert url in line and "manifests[1] (evil-style)" in line and "registry 'web'" in line
    assert "versions[0].variants[0].files[0].source" in line and "may name only remote sources" in line
    assert not (hubctl_home / "registries.toml").exists()
    assert cli("info", "evil-style").exit_code == 1


def test_a_url_registry_that_later_names_a_local_file_fails_update_and_keeps_the_old_index(cli, http_server):
    url = http_server.add_file("/reg/index.json", _index(_manifest("https://example.org/a.safetensors")))
    assert cli("registry", "add", url, "--name", "web").exit_code == 0
    http_server.add_file("/reg/index.json", _index(_manifest("file:///etc/passwd")))
    r = cli("registry", "update", "web")
    assert r.exit_code == 2 and "may name only remote sources" in _one_line(r)
    info = cli("info", "paper-cut", "--json").json()
    assert info["versions"][0]["variants"][0]["files"][0]["source"] == "https://example.org/a.safetensors"


def test_a_local_registry_may_still_name_local_files(cli, tmp_path):
    reg = _folder(tmp_path / "mine", _manifest("file:///data/models/papercut.safetensors"))
    assert cli("registry", "add", str(reg), "--name", "mine").exit_code == 0


# ------------------------------------------------------------------------------ item 4: families
def test_a_url_registry_may_not_redefine_a_bundled_family(cli, http_server, hubctl_home):
    evil = _bundled_family("sd1", cross_attention_dim=1024)
    url = http_server.add_file("/reg/index.json", _index(_manifest("https://example.org/a.safetensors"),
                                                         families=[evil]))
    r = cli("registry", "add", url, "--name", "web")
    assert r.exit_code == 2
    line = _one_line(r)
    assert url in line and "family 'sd1' is already defined by registry 'default'" in line
    assert "--override-families" in line
    assert not (hubctl_home / "registries.toml").exists()
    assert cli("info", "stable-diffusion==1.5", "--json").json()["versions"][0]["family"] == "sd1"
    fams = {r["name"]: r["families"] for r in cli("registry", "list", "--json").json()}
    assert fams == {"default": ["sd1", "sd2", "sdxl"]}


def test_a_folder_registry_may_not_redefine_a_family_of_an_earlier_added_registry(cli, tmp_path):
    one = 'id = "tiny"\ncross_attention_dim = 32\ntext_encoder_widths = [32]\ntext_encoder_layers = [2]\n'
    two = 'id = "tiny"\ncross_attention_dim = 64\ntext_encoder_widths = [64]\ntext_encoder_layers = [2]\n'
    a = _folder(tmp_path / "a", _manifest("https://e.org/a", name="a-style", family="tiny"),
                families="[[families]]\n" + one)
    b = _folder(tmp_path / "b", _manifest("https://e.org/b", name="b-style", family="tiny"),
                families="[[families]]\n" + two)
    assert cli("registry", "add", str(a), "--name", "a").exit_code == 0
    r = cli("registry", "add", str(b), "--name", "b")
    assert r.exit_code == 2 and "family 'tiny' is already defined by registry 'a'" in _one_line(r)


def test_override_families_is_explicit_and_registry_list_shows_where_each_family_comes_from(cli, http_server):
    mine = _bundled_family("sd1", title="SD 1 as I see it")
    url = http_server.add_file("/reg/index.json", _index(_manifest("https://example.org/a.safetensors"),
                                                         families=[mine]))
    r = cli("registry", "add", url, "--name", "web", "--override-families")
    assert r.exit_code == 0, r.output
    rows = {r["name"]: r for r in cli("registry", "list", "--json").json()}
    assert rows["default"]["families"] == ["sd2", "sdxl"] and rows["web"]["families"] == ["sd1"]
    assert rows["web"]["override_families"] is True
    table = cli("registry", "list").stdout
    assert "families" in table.splitlines()[0] and "sd2,sdxl" in table
    assert cli("registry", "update", "web").exit_code == 0  # the choice is remembered


def test_the_same_family_definition_again_is_not_a_redefinition(cli, http_server):
    same = _bundled_family("sd1")
    url = http_server.add_file("/reg/index.json", _index(_manifest("https://example.org/a.safetensors"),
                                                         families=[same]))
    assert cli("registry", "add", url, "--name", "web").exit_code == 0


# ------------------------------------------------------------------------------ item 6: credentials
CREDENTIAL_SOURCES = [
    f"https://user:{SECRET}@example.org/models/a.safetensors",
    f"https://civitai.com/api/download/models/1?type=Model&token={SECRET}",
    f"https://example.org/a.safetensors?api_key={SECRET}",
    f"https://example.org/a.safetensors?X=1&access_token={SECRET}",
    "https://example.org/hf_AbCdEfGhIjKlMnOpQrSt/a.safetensors",
]


@pytest.mark.parametrize("source", CREDENTIAL_SOURCES)
def test_credentials_in_a_source_url_are_refused_at_registry_add(cli, tmp_path, hubctl_home, source):
    reg = _folder(tmp_path / "mine", _manifest(source))
    r = cli("registry", "add", str(reg), "--name", "mine")
    assert r.exit_code == 2
    line = _one_line(r)
    assert str(reg / "manifests" / "lora" / "paper-cut.toml") in line
    assert "carries credentials" in line and "HUBCTL_AUTH_<HOST>" in line
    assert SECRET not in r.output and "hf_AbCdEfGhIjKlMnOpQrSt" not in r.output
    assert not (hubctl_home / "registries.toml").exists()
    db = hubctl_home / "index.db"
    if db.exists():
        con = sqlite3.connect(db)
        dump = "\n".join(con.iterdump())
        con.close()
        assert SECRET not in dump and "hf_AbCdEfGhIjKlMnOpQrSt" not in dump


def test_credentials_in_a_source_url_of_a_url_registry_are_refused(cli, http_server, hubctl_home):
    url = http_server.add_file("/reg/index.json", _index(_manifest(CREDENTIAL_SOURCES[0])))
    r = cli("registry", "add", url, "--name", "web")
    assert r.exit_code == 2 and "carries credentials" in _one_line(r) and SECRET not in r.output
    assert not (hubctl_home / "registries.toml").exists()
    assert not list((hubctl_home / "registries").glob("*.json")) if (hubctl_home / "registries").exists() else True


def test_credentials_in_a_hf_source_point_to_hf_token(cli, tmp_path):
    reg = _folder(tmp_path / "mine", _manifest(f"hf://user:{SECRET}@org/repo/a.safetensors"))
    r = cli("registry", "add", str(reg), "--name", "mine")
    assert r.exit_code == 2 and "carries credentials" in _one_line(r) and SECRET not in r.output


def test_registry_build_refuses_credentials_too_and_writes_nothing(cli, tmp_path):
    reg = _folder(tmp_path / "mine", _manifest(CREDENTIAL_SOURCES[1]))
    out = tmp_path / "site" / "index.json"
    r = cli("registry", "build", str(reg), "--out", str(out))
    assert r.exit_code == 2 and "carries credentials" in _one_line(r) and SECRET not in r.output
    assert not out.exists()
