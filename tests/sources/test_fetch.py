"""install_packages / pin_file / uninstall / gc on real files (file:// sources), the real store and the real
state database. The Hub and HTTP paths are covered in test_install_hf.py and test_sources_http.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hubctl.errors import SourceError
from hubctl.sources.fetch import install_packages, pin_file
from hubctl.store.installed import gc, installed_package, installed_packages, installed_paths, referenced_blobs, uninstall, verify_installed
from hubctl.lock.lockfile import LockedFile, LockedPackage
from hubctl.registry.manifest import FileRef
from hubctl.store.blobs import Store


def _write(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str]:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


def _pkg(name: str, version: str, files: list[tuple[str, Path, str]], kind: str = "lora", family: str = "sd1") -> LockedPackage:
    return LockedPackage(
        name=name,
        version=version,
        kind=kind,
        family=family,
        variant="fp16",
        files=tuple(LockedFile(path=rel, url=src.as_uri(), size=src.stat().st_size, sha256=sha) for rel, src, sha in files),
    )


def test_two_packages_sharing_a_file_store_it_once_and_both_are_recorded(tmp_path):
    shared, s_sha = _write(tmp_path, "vae.safetensors", b"V" * 5000)
    a, a_sha = _write(tmp_path, "a.safetensors", b"A" * 3000)
    p1 = _pkg("one", "1.0", [("vae/vae.safetensors", shared, s_sha), ("a.safetensors", a, a_sha)], kind="checkpoint")
    p2 = _pkg("two", "2.0", [("vae.safetensors", shared, s_sha)], kind="vae")
    rep = install_packages([p1, p2], progress=False)
    assert {b.sha256: b.how for b in rep.blobs} == {s_sha: "downloaded", a_sha: "downloaded"}
    assert rep.downloaded_bytes == 8000
    assert [p.name for p in installed_packages()] == ["one", "two"]
    paths = installed_paths("one")
    assert paths["vae/vae.safetensors"] == paths["vae/vae.safetensors"].parent / s_sha
    assert paths["vae/vae.safetensors"].read_bytes() == b"V" * 5000
    assert installed_paths("two")["vae.safetensors"] == paths["vae/vae.safetensors"]
    assert installed_paths("nothing") == {}
    blobs = [p for p in Store().blobs_dir.rglob("*") if p.is_file()]
    assert len(blobs) == 2

    again = install_packages([p1, p2], progress=False)
    assert {b.how for b in again.blobs} == {"store"} and again.downloaded_bytes == 0
    assert again.status(p1) == "unchanged"


def test_a_file_whose_bytes_differ_from_the_lock_is_refused_and_the_package_is_not_recorded(tmp_path):
    good, g_sha = _write(tmp_path, "good.bin", b"g" * 100)
    bad, _ = _write(tmp_path, "bad.bin", b"b" * 100)
    p = _pkg("x", "1.0", [("good.bin", good, g_sha), ("bad.bin", bad, "f" * 64)])
    with pytest.raises(SourceError) as ei:
        install_packages([p], progress=False)
    assert ei.value.exit_code == 3
    assert "x 1.0: bad.bin" in str(ei.value) and "sha256 mismatch" in str(ei.value)
    assert installed_packages() == []
    assert not Store().has_blob("f" * 64)
    # the good file did arrive and stays in the store: a fixed rerun fetches only the rest
    assert Store().has_blob(g_sha)


def test_installing_another_version_replaces_the_record_and_gc_frees_the_old_blob(tmp_path):
    v1, sha1 = _write(tmp_path, "v1/a.bin", b"1" * 1000)
    v2, sha2 = _write(tmp_path, "v2/a.bin", b"2" * 2000)
    install_packages([_pkg("style", "1.0", [("a.bin", v1, sha1)])], progress=False)
    rep = install_packages([_pkg("style", "2.0", [("a.bin", v2, sha2)])], progress=False)
    assert rep.to_json()["packages"][0]["status"] == "replaced"
    assert rep.to_json()["packages"][0]["previous"] == "1.0 fp16"
    assert installed_package("style").version == "2.0"
    assert referenced_blobs() == {sha2}
    dry = gc(dry_run=True)
    assert dry.removed == [sha1] and Store().has_blob(sha1)
    done = gc()
    assert done.removed == [sha1] and done.freed == 1000
    assert not Store().has_blob(sha1) and Store().has_blob(sha2)


def test_uninstall_forgets_the_package_and_names_what_was_not_installed(tmp_path):
    f, sha = _write(tmp_path, "a.bin", b"a" * 10)
    install_packages([_pkg("Arcane_Style", "1.0", [("a.bin", f, sha)])], progress=False)
    rep = uninstall(["arcane-style", "nope"])
    assert rep.removed == ["arcane-style"] and rep.missing == ["nope"]
    assert installed_packages() == []
    assert Store().has_blob(sha)  # until gc
    assert gc().removed == [sha]


def test_verify_reports_one_line_per_drifted_file(tmp_path):
    f, sha = _write(tmp_path, "a.bin", b"a" * 4096)
    g, sha_g = _write(tmp_path, "b.bin", b"b" * 4096)
    install_packages([_pkg("p", "1.0", [("a.bin", f, sha), ("b.bin", g, sha_g)])], progress=False)
    ok = verify_installed()
    assert ok.ok and ok.checked == 2 and ok.hashed == 0
    full = verify_installed(full=True)
    assert full.ok and full.hashed == 2
    blob = Store().blob_path(sha)
    blob.chmod(0o644)
    blob.write_bytes(b"x" * 4096)
    bad = verify_installed()
    assert not bad.ok
    assert bad.problems == [f"p 1.0: a.bin: content changed: sha256 is now {hashlib.sha256(b'x' * 4096).hexdigest()}"]


def test_a_damaged_store_blob_is_fetched_again_on_install(tmp_path):
    f, sha = _write(tmp_path, "a.bin", b"a" * 4096)
    pkg = _pkg("p", "1.0", [("a.bin", f, sha)])
    install_packages([pkg], progress=False)
    blob = Store().blob_path(sha)
    blob.chmod(0o644)
    blob.write_bytes(b"z" * 4096)
    rep = install_packages([pkg], progress=False)
    assert [b.how for b in rep.blobs] == ["downloaded"]
    assert blob.read_bytes() == b"a" * 4096


def test_pin_file_of_a_local_file_fills_size_and_sha256_and_stores_the_bytes(tmp_path):
    f, sha = _write(tmp_path, "emb.safetensors", b"e" * 777)
    lf = pin_file(FileRef(path="emb.safetensors", source=str(f)))
    assert (lf.size, lf.sha256, lf.url) == (777, sha, f.resolve().as_uri())
    assert Store().has_blob(sha)


def test_pin_file_with_everything_known_touches_nothing(tmp_path):
    ref = FileRef(path="x.bin", size=5, sha256="a" * 64, source="https://127.0.0.1:9/never")
    lf = pin_file(ref)
    assert (lf.url, lf.size, lf.sha256) == ("https://127.0.0.1:9/never", 5, "a" * 64)


def test_a_missing_local_source_is_a_one_line_source_error(tmp_path):
    p = _pkg("p", "1.0", [])
    p = LockedPackage(**{**p.__dict__, "files": (LockedFile("a.bin", (tmp_path / "gone.bin").as_uri(), 3, "c" * 64),)})
    with pytest.raises(SourceError, match=r"gone\.bin: no such file"):
        install_packages([p], progress=False)
