"""`hubctl adopt DIR` on real-shaped A1111, ComfyUI and InvokeAI folders (sparse safetensors: real headers): what
each file is, one blob per unique file, links back, bytes reclaimed, a second run that does nothing, local
packages that lock, sync and export, and gc keeping what the user's folders hold."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.adopt._folders import PICKLE, a1111_folder, comfyui_folder, sha256, sparse_copy


@pytest.fixture
def tmpfs_home(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """HUBCTL_HOME on /dev/shm (tmpfs), another filesystem than the user's folders: adopt must copy there."""
    import shutil

    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary folder")
    home = Path("/dev/shm") / f"hubctl-adopt-{os.getpid()}-{tmp_path.name}"
    monkeypatch.setenv("HUBCTL_HOME", str(home))
    yield home
    from hubctl import db

    db.dispose_all()
    shutil.rmtree(home, ignore_errors=True)


def _adopt(cli, *args):  # type: ignore[no-untyped-def]
    r = cli("adopt", *[str(a) for a in args], "--json")
    assert r.exit_code == 0, r.output
    return r.json()


def _by_path(rep: dict) -> dict[str, dict]:
    return {Path(f["path"]).name: f for f in rep["files"]}


def _blobs(home: Path) -> list[Path]:
    return [p for p in (home / "store" / "sha256").rglob("*") if p.is_file()]


def test_a1111_files_are_classified_from_their_headers_and_duplicates_become_one_blob(cli, sparse, demo_registry, tmp_path, hubctl_home):
    files = a1111_folder(tmp_path / "webui", sparse, demo=demo_registry)
    before = {k: sha256(p) for k, p in files.items()}
    rep = _adopt(cli, tmp_path / "webui")
    assert rep["layout"]["tool"] == "a1111"
    got = _by_path(rep)
    assert (got["dreamlike.safetensors"]["kind"], got["dreamlike.safetensors"]["family"]) == ("checkpoint", "sd1")
    assert (got["mystery-style.safetensors"]["kind"], got["mystery-style.safetensors"]["family"]) == ("lora", "sd1")
    assert got["bad-hands.safetensors"]["kind"] == "embedding"
    # the demo registry knows its LoRA and base by sha256: matched, not made local
    assert got["demo-style.safetensors"]["package"] == "demo-style" and got["demo-style.safetensors"]["known_as"] == "registry demo"
    assert got["demo-sd-1.4.safetensors"]["package"] == "demo-sd" and got["demo-sd-1.4.safetensors"]["version"] == "1.4"
    # an unknown LoRA becomes a local package of the `adopted` registry; its duplicate is the same package
    assert got["mystery-style.safetensors"]["known_as"] == "local"
    assert got["mystery-style-again.safetensors"]["package"] == got["mystery-style.safetensors"]["package"]
    assert got["old-vae.ckpt"]["action"] == "pickle" and files["pickle"].read_bytes() == PICKLE
    # one blob per unique file; every blob's name is its bytes' sha256
    unique = {before[k] for k in before if k != "pickle"}
    blobs = _blobs(hubctl_home)
    assert sorted(b.name for b in blobs) == sorted(unique)
    assert rep["unique_blobs"] == len(unique)
    # nothing the user had changed, and the duplicates are what --replace would reclaim
    assert {k: sha256(p) for k, p in files.items()} == before
    dup_bytes = files["ckpt_dup"].stat().st_size + files["lora_dup"].stat().st_size
    assert rep["bytes_reclaimable"] == dup_bytes and rep["bytes_reclaimed"] == 0
    # symlink loops: one line each, the run went on
    assert any("loop.safetensors: symlink loop" in p for p in rep["problems"])
    assert any("back-up" in p and "symlink loop" in p for p in rep["problems"])


def test_replace_links_every_file_back_to_its_blob_and_reports_the_bytes_reclaimed(cli, sparse, tmp_path, hubctl_home):
    files = a1111_folder(tmp_path / "webui", sparse, checkpoint="sd1-vae")
    before = {k: sha256(p) for k, p in files.items()}
    dup_bytes = files["ckpt_dup"].stat().st_size + files["lora_dup"].stat().st_size
    rep = _adopt(cli, tmp_path / "webui", "--replace")
    assert rep["bytes_reclaimed"] == dup_bytes
    from hubctl.store.blobs import Store

    store = Store()
    for k, p in files.items():
        if k == "pickle":
            continue
        blob = store.blob_path(before[k])
        assert os.path.samefile(p, blob), k  # the user's path is the blob now (a hard link on this filesystem)
        assert sha256(p) == before[k]
    assert files["pickle"].read_bytes() == PICKLE and os.stat(files["pickle"]).st_nlink == 1
    assert not list((tmp_path / "webui").rglob("*.hubctl-adopt"))
    assert cli("verify").exit_code == 0


def test_a_second_adopt_reads_nothing_and_changes_nothing(cli, sparse, tmp_path, hubctl_home, monkeypatch):
    a1111_folder(tmp_path / "webui", sparse, checkpoint="sd1-vae")
    _adopt(cli, tmp_path / "webui", "--replace")
    db = (hubctl_home / "state.db").read_bytes()
    blobs = {p: os.stat(p).st_mtime_ns for p in _blobs(hubctl_home)}
    import hubctl.adopt.adopt as adopt_mod

    def no_read(*a, **k):  # a file adopt recorded must not be read again
        raise AssertionError(f"hashed again: {a}")

    monkeypatch.setattr(adopt_mod, "file_hashes", no_read)
    rep = _adopt(cli, tmp_path / "webui", "--replace")
    assert {f["action"] for f in rep["files"]} <= {"unchanged", "pickle"}
    assert rep["bytes_reclaimed"] == 0 and rep["bytes_reclaimable"] == 0
    assert {p: os.stat(p).st_mtime_ns for p in _blobs(hubctl_home)} == blobs
    rep2 = _adopt(cli, tmp_path / "webui")
    assert {f["action"] for f in rep2["files"]} <= {"unchanged", "pickle"}
    assert len(db) > 0


def test_dry_run_prints_the_plan_and_writes_nothing(cli, sparse, tmp_path, hubctl_home):
    files = a1111_folder(tmp_path / "webui", sparse, checkpoint="sd1-vae")
    r = cli("adopt", tmp_path / "webui", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "would take in" in r.stdout and "mystery-style" in r.stdout and "left alone" in r.stdout
    assert not (hubctl_home / "store").exists() or not _blobs(hubctl_home)
    assert not (hubctl_home / "local-registries").exists()
    assert all(os.stat(p).st_nlink == 1 for p in files.values())


def test_comfyui_with_extra_model_paths_adopts_the_folders_the_yaml_names(cli, sparse, tmp_path, hubctl_home):
    a1111 = a1111_folder(tmp_path / "webui", sparse, checkpoint="sd1-vae")
    comfy = comfyui_folder(tmp_path / "ComfyUI", sparse, extra=tmp_path / "webui")
    rep = _adopt(cli, tmp_path / "ComfyUI")
    assert rep["layout"]["tool"] == "comfyui"
    whys = {f["why"] for f in rep["layout"]["folders"]}
    assert "extra_model_paths.yaml a111.loras" in whys and "comfyui loras" in whys
    paths = {f["path"] for f in rep["files"]}
    assert str(a1111["lora_dup"]) in paths and str(comfy["vae"]) in paths and str(a1111["emb"]) in paths
    # the LoRA in ComfyUI's folder and both in the A1111 folder are one blob and one package
    pkgs = {f["package"] for f in rep["files"] if f["sha256"] == sha256(comfy["lora"])}
    assert len(pkgs) == 1


def test_invokeai_folders_are_found_by_base_and_type(cli, sparse, tmp_path, hubctl_home):
    root = tmp_path / "invokeai"
    sparse_copy(sparse.get("sd1-lora-kohya"), root / "models/sd-1/lora/style.safetensors")
    sparse_copy(sparse.get("sd1-emb-a1111"), root / "models/sd-1/embedding/neg.safetensors")
    (root / "invokeai.yaml").write_text("InvokeAI: {}\n")
    rep = _adopt(cli, root)
    assert rep["layout"]["tool"] == "invokeai"
    assert {(Path(f["path"]).name, f["kind"]) for f in rep["files"]} == {("style.safetensors", "lora"), ("neg.safetensors", "embedding")}


def test_an_adopted_unknown_lora_can_be_required_locked_synced_and_exported(cli, sparse, demo_registry, tmp_path, hubctl_home, monkeypatch):
    root = tmp_path / "webui"
    files = a1111_folder(root, sparse, checkpoint="sd1-vae")
    rep = _adopt(cli, root)
    name = _by_path(rep)["mystery-style.safetensors"]["package"]
    assert cli("search", name).exit_code == 0 and name in cli("search", name).stdout
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    r = cli("add", name)
    assert r.exit_code == 0, r.output
    lock = (project / "hubctl.lock").read_text()
    assert sha256(files["lora"]) in lock and files["lora"].as_uri() in lock
    assert cli("sync").exit_code == 0
    assert cli("install", name).exit_code == 0
    r = cli("export", "--layout", "comfyui", tmp_path / "export")
    assert r.exit_code == 0, r.output
    exported = next((tmp_path / "export" / "models" / "loras").iterdir())
    assert sha256(exported) == sha256(files["lora"])


def test_gc_keeps_blobs_that_adopted_files_link_to_and_drops_them_once_the_file_is_gone(cli, sparse, tmp_path, tmpfs_home):
    # the store on another filesystem (tmpfs): adopt copies (and checks) the bytes, --replace leaves symlinks
    root = tmp_path / "webui"
    files = a1111_folder(root, sparse, checkpoint="sd1-vae")
    want = sha256(files["lora"])
    rep = _adopt(cli, root, "--replace")
    got = _by_path(rep)
    assert got["mystery-style.safetensors"]["action"] == "copy"
    assert got["mystery-style.safetensors"]["replaced"] == "symlink"
    assert os.path.islink(files["lora"]) and sha256(files["lora"]) == want
    assert rep["bytes_reclaimed"] >= files["lora"].stat().st_size
    r = cli("gc", "--json")
    assert r.exit_code == 0, r.output
    assert sha256(files["lora"]) == want  # the blob the user's symlink points at stayed
    for p in (files["lora"], files["lora_dup"]):
        p.unlink()
    assert cli("gc").exit_code == 0
    from hubctl.store.blobs import Store

    assert not Store().has_blob(want)


def test_a_file_that_changes_while_it_is_hashed_is_skipped_with_a_warning(cli, sparse, tmp_path, hubctl_home, monkeypatch):
    root = tmp_path / "webui"
    files = a1111_folder(root, sparse, checkpoint="sd1-vae")
    import hubctl.adopt.adopt as adopt_mod

    real = adopt_mod.file_hashes

    def hashes_then_a_writer(path, data_start=None):  # a writer appends while the read is under way
        out = real(path, data_start)
        if Path(path).name == "bad-hands.safetensors":
            with open(path, "ab") as f:
                f.write(b"\0" * 8)
        return out

    monkeypatch.setattr(adopt_mod, "file_hashes", hashes_then_a_writer)
    r = cli("adopt", root, "--replace")
    assert r.exit_code == 0, r.output
    assert "bad-hands.safetensors: changed while it was being read; skipped" in r.stderr
    assert os.stat(files["emb"]).st_nlink == 1  # not linked, not replaced: the user's file as it is now
    from hubctl.store.blobs import Store

    assert not any(Store().has_blob(sha) for sha in [sha256(files["emb"])])


def test_replace_refuses_when_the_blob_no_longer_verifies_and_the_original_stays(cli, sparse, tmp_path, tmpfs_home):
    root = tmp_path / "webui"
    files = a1111_folder(root, sparse, checkpoint="sd1-vae")
    want = sha256(files["emb"])
    _adopt(cli, root)  # copies, no replace
    from hubctl.store.blobs import Store

    blob = Store().blob_path(want)
    blob.chmod(0o644)
    with open(blob, "r+b") as f:  # the store's copy is damaged behind hubctl's back
        f.seek(100)
        f.write(b"\xff")
    r = cli("adopt", root, "--replace")
    assert r.exit_code == 0, r.output
    assert "bad-hands.safetensors" in r.stderr and "failed verification" in r.stderr
    assert not os.path.islink(files["emb"]) and sha256(files["emb"]) == want


def test_hubctl_list_names_each_adopted_file_as_a_root(cli, sparse, tmp_path, hubctl_home):
    files = a1111_folder(tmp_path / "webui", sparse, checkpoint="sd1-vae")
    _adopt(cli, tmp_path / "webui")
    r = cli("list", "--json")
    roots = {root for u in r.json() for root in u["roots"]}
    assert f"adopt:{files['lora']}" in roots and f"adopt:{files['lora_dup']}" in roots


def test_adopt_of_a_missing_folder_is_bad_input(cli, tmp_path):
    r = cli("adopt", tmp_path / "nope")
    assert r.exit_code == 2 and "not a folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_adopt_root_kind_is_live_while_its_file_exists(tmp_path):
    from hubctl.lock.lockfile import LockedFile, LockedPackage
    from hubctl.store.roots import live_roots, register_adopted

    p = tmp_path / "x.safetensors"
    p.write_bytes(b"x")
    key = register_adopted(p, LockedPackage("x", "1.0", "lora", "sd1", "default", (LockedFile("x.safetensors", p.as_uri(), 1, "0" * 64),)))
    assert [r.live for r in live_roots() if r.key == key] == [True]
    p.unlink()
    assert [(r.live, r.why) for r in live_roots() if r.key == key] == [(False, "the file is gone")]


def test_adopt_json_reports_layout_files_and_totals(cli, sparse, tmp_path):
    a1111_folder(tmp_path / "webui", sparse, checkpoint="sd1-vae")
    rep = _adopt(cli, tmp_path / "webui")
    assert set(rep) >= {"layout", "files", "problems", "warnings", "unique_blobs", "bytes_reclaimed", "bytes_reclaimable"}
    json.dumps(rep)
    assert all(stat.S_ISREG(os.lstat(f["path"]).st_mode) for f in rep["files"])
