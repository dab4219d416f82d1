"""Compiling registries into the index: relative sources mean the registry's folder (issue 10 item 14), an
edit the index must see is seen even when size and mtime are kept (item 16), and requirements every later
resolution would reject are refused at `registry add`, naming the manifest (item 18). Real registry folders,
the real index and the CLI in-process."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import tomli_w

from hubctl.tomlcompat import tomllib

FAMILIES = '[[families]]\nid = "demo-sd1"\ncross_attention_dim = 32\ntext_encoder_widths = [32]\ntext_encoder_layers = [2]\n'
DATA = b"relative source bytes" * 40


def _registry(root: Path, source: str, *, sha: bool = True, requires: list[str] | None = None, summary: str = "a style") -> Path:
    (root / "manifests" / "lora").mkdir(parents=True, exist_ok=True)
    (root / "files").mkdir(exist_ok=True)
    (root / "files" / "style.safetensors").write_bytes(DATA)
    (root / "families.toml").write_text(FAMILIES)
    f = {"path": "style.safetensors", "source": source}
    if sha:
        f.update(size=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())
    v = {"version": "1.0", "family": "demo-sd1", "variants": [{"name": "fp16", "files": [f]}]}
    if requires:
        v["requires"] = requires
    (root / "manifests" / "lora" / "rel-style.toml").write_text(tomli_w.dumps({"name": "rel-style", "kind": "lora", "summary": summary, "versions": [v]}))
    return root


@pytest.mark.parametrize("sha", [True, False], ids=["pinned-in-manifest", "pinned-from-bytes"])
def test_a_relative_source_is_read_from_the_registry_folder_and_locked_absolute(cli, tmp_path, monkeypatch, sha):
    reg = _registry(tmp_path / "reg", "files/style.safetensors", sha=sha)
    assert cli("registry", "add", str(reg), "--name", "rel").exit_code == 0
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    r = cli("add", "rel-style")
    assert r.exit_code == 0, r.output
    url = tomllib.loads((proj / "hubctl.lock").read_text())["packages"][0]["files"][0]["url"]
    assert url == (reg / "files" / "style.safetensors").resolve().as_uri()
    r = cli("sync")
    assert r.exit_code == 0, r.output


def test_a_relative_source_in_a_built_index_file_is_read_beside_that_file(cli, tmp_path, monkeypatch):
    reg = _registry(tmp_path / "reg", "files/style.safetensors")
    out = reg / "index.json"
    assert cli("registry", "build", str(reg), "--out", str(out)).exit_code == 0
    assert cli("registry", "add", str(out), "--name", "built").exit_code == 0
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    assert cli("add", "rel-style").exit_code == 0
    url = tomllib.loads((proj / "hubctl.lock").read_text())["packages"][0]["files"][0]["url"]
    assert url == (reg / "files" / "style.safetensors").resolve().as_uri()
    assert cli("sync").exit_code == 0


def test_a_same_size_manifest_edit_with_its_mtime_kept_is_seen(cli, tmp_path):
    reg = _registry(tmp_path / "reg", "files/style.safetensors", summary="summary AAAA")
    assert cli("registry", "add", str(reg), "--name", "rel").exit_code == 0
    assert cli("info", "rel-style", "--json").json()["summary"] == "summary AAAA"
    m = reg / "manifests" / "lora" / "rel-style.toml"
    st = m.stat()
    m.write_text(m.read_text().replace("summary AAAA", "summary BBBB"))  # same size
    os.utime(m, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp --preserve` / `rsync -t` leave it
    assert m.stat().st_size == st.st_size and m.stat().st_mtime_ns == st.st_mtime_ns
    assert cli("info", "rel-style", "--json").json()["summary"] == "summary BBBB"


@pytest.mark.parametrize(
    "req,words",
    [("demo-base[extra]", "extras are not supported"), ("demo-base; python_version > '3'", "environment markers are not supported"),
     ("demo-base @ https://example.org/x.whl", "direct URLs are not supported")],
    ids=["extras", "markers", "url"],
)
def test_registry_add_refuses_a_requirement_no_resolution_could_use(cli, tmp_path, hubctl_home, req, words):
    reg = _registry(tmp_path / "reg", "files/style.safetensors", requires=[req])
    r = cli("registry", "add", str(reg), "--name", "rel")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output
    assert str(reg / "manifests" / "lora" / "rel-style.toml") in lines[0]
    assert "versions[0].requires[0]" in lines[0] and words in lines[0]
    assert not (hubctl_home / "registries.toml").exists()
