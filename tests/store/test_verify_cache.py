"""The blob verification cache: a blob whose bytes changed is found even when its size and mtime were put back
(the cache keys on ctime too, which userland cannot set), and a blob that fails a rehash is dropped from the
cache and set aside, so that `sync` and `install` fetch it again instead of reporting success. Real files, the
real store and state database; the CLI in-process on the file hub (file:// sources)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hubctl.store.blobs import Store
from hubctl.store.partial import PartialFile
from hubctl.tomlcompat import tomllib
from tests._hubs import project_dir  # noqa: F401 (fixture)


def _blob(tmp_path: Path, data: bytes = b"weights " * 5000) -> tuple[Store, str, Path]:
    st = Store()

    def put(pf: PartialFile) -> None:
        (part,) = pf.plan(len(data), None, 1)
        pf.write(part, data)

    sha = hashlib.sha256(data).hexdigest()
    return st, sha, st.fetch(sha256=sha, size=len(data), download=put).path


def edit_keeping_size_and_mtime(path: Path, offset: int = 100) -> None:
    """What `cp --preserve`, `rsync -t` or an editor plus `touch -r` leave: other bytes, the same size and mtime."""
    before = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))
    os.chmod(path, before.st_mode & 0o777)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_fast_verify_finds_a_blob_edited_in_place_with_its_mtime_restored(tmp_path):
    st, sha, path = _blob(tmp_path)
    assert [(c.ok, c.how) for c in st.verify([sha])] == [(True, "stat")]
    edit_keeping_size_and_mtime(path)
    (check,) = st.verify([sha])
    assert not check.ok and check.how == "hash" and "content changed" in (check.problem or "")


def test_a_failed_rehash_drops_the_blob_from_the_cache_and_sets_it_aside(tmp_path):
    st, sha, path = _blob(tmp_path)
    edit_keeping_size_and_mtime(path)
    (check,) = st.verify([sha], full=True)
    assert not check.ok
    assert not st.has_blob(sha) and not path.exists()
    assert sha not in st.records()
    (kept,) = [p for p in (st.root / "quarantine").iterdir()]
    assert kept.name.startswith(sha)
    (again,) = st.verify([sha])
    assert not again.ok and again.problem == "missing from the store"
    st.gc(set())
    assert list((st.root / "quarantine").iterdir()) == []  # gc clears what was set aside


def _lock_shas(d: Path) -> dict[str, str]:
    data = tomllib.loads((d / "hubctl.lock").read_text())
    return {f["path"]: f["hashes"]["sha256"] for p in data["packages"] for f in p["files"]}


def test_sync_repairs_a_blob_edited_with_its_mtime_restored(cli, project_dir):
    assert cli("add", "demo-style==1.0").exit_code == 0
    assert cli("sync").exit_code == 0
    sha = _lock_shas(project_dir)["demo-style.safetensors"]
    blob = Store().blob_path(sha)
    edit_keeping_size_and_mtime(blob)
    r = cli("verify")
    assert r.exit_code == 1 and "demo-style 1.0: demo-style.safetensors: content changed" in r.stderr
    r = cli("sync")
    assert r.exit_code == 0, r.output
    assert hashlib.sha256(Store().blob_path(sha).read_bytes()).hexdigest() == sha
    assert cli("verify", "--full").exit_code == 0


def test_install_repairs_a_blob_that_verify_full_found_damaged(cli, project_dir):
    assert cli("install", "demo-token").exit_code == 0
    (sha,) = [s for s, _ in Store().iter_blobs()]
    edit_keeping_size_and_mtime(Store().blob_path(sha))
    r = cli("verify", "--full")
    assert r.exit_code == 1 and "content changed" in r.stderr
    r = cli("install", "demo-token", "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["blobs"][0]["how"] == "downloaded"
    assert hashlib.sha256(Store().blob_path(sha).read_bytes()).hexdigest() == sha
    assert cli("verify", "--full").exit_code == 0
