"""What is installed, read back from the real state database: one consistent snapshot even while another
process replaces a package, and never a file the store does not own changed on the way in."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hubctl.lock.lockfile import LockedFile, LockedPackage
from hubctl.sources.fetch import install_packages
from hubctl.store import installed, state


def _pkg(tmp_path: Path, version: str, payload: bytes) -> LockedPackage:
    p = tmp_path / f"style-{version}.safetensors"
    p.write_bytes(payload)
    f = LockedFile(path=f"style-{version}.safetensors", url=p.as_uri(), size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    return LockedPackage("style", version, "lora", "sd1", "fp16", (f,))


def test_installed_packages_is_one_snapshot_while_a_sync_replaces_a_version(tmp_path, monkeypatch):
    v1, v2 = _pkg(tmp_path, "1.0", b"one" * 100), _pkg(tmp_path, "2.0", b"two" * 100)
    install_packages([v1], progress=False)
    install_packages([v2], progress=False)
    install_packages([v1], progress=False)
    # Another process replaces the package right after this one's first read of the state database: the worst
    # moment (the hook runs that writer in this process, at that point; the writer itself is the real one).
    real = state.read_state
    calls = []

    def read_then_concurrent_install(sql, params=None):
        rows = real(sql, params)
        if not calls:
            calls.append(sql)
            installed.record_installed([v2])
        return rows

    monkeypatch.setattr(state, "read_state", read_then_concurrent_install)
    (got,) = installed.installed_packages()
    assert calls, "the read path did not go through read_state"
    want = {"1.0": v1.files, "2.0": v2.files}[got.version]
    assert got.files == want, f"{got.name} {got.version} came back with another version's files"


def test_reusing_a_foreign_file_never_changes_it(tmp_path):
    """An HF cache file (or any file hubctl does not own) is copied into the store, never linked and chmod'ed."""
    from hubctl.store.blobs import Store

    foreign = tmp_path / "hf" / "blobs" / "abc"
    foreign.parent.mkdir(parents=True)
    data = b"cached weights" * 1000
    foreign.write_bytes(data)
    os.chmod(foreign, 0o644)
    before = os.stat(foreign)
    res = Store().import_file(foreign, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    after = os.stat(foreign)
    assert (after.st_mode, after.st_nlink, after.st_ctime_ns) == (before.st_mode, before.st_nlink, before.st_ctime_ns)
    assert os.stat(res.path).st_ino != before.st_ino and res.path.read_bytes() == data
    assert oct(os.stat(res.path).st_mode & 0o777) == oct(0o444)


def test_a_blob_reused_from_the_hf_cache_leaves_the_hf_cache_as_it_was(hub_server):
    from huggingface_hub import hf_hub_download

    from hubctl.registry.manifest import FileRef
    from hubctl.sources.fetch import pin_file
    from hubctl.store.blobs import Store

    weights = hashlib.sha256(b"hf").digest() * 20_000
    hub_server.create_repo("org/cached", {"w.safetensors": weights})
    cached = Path(hf_hub_download("org/cached", "w.safetensors", endpoint=hub_server.endpoint)).resolve()
    before = os.stat(cached)
    lf = pin_file(FileRef(path="w.safetensors", source="hf://org/cached/w.safetensors"))
    rep = install_packages([LockedPackage("hubby", "1.0", "checkpoint", "sd1", "fp16", (lf,))], progress=False)
    assert [b.how for b in rep.blobs] == ["hf-cache"]
    after = os.stat(cached)
    assert (after.st_mode, after.st_nlink, after.st_ctime_ns) == (before.st_mode, before.st_nlink, before.st_ctime_ns)
    assert os.stat(Store().blob_path(lf.sha256)).st_ino != before.st_ino


def test_an_older_state_database_keeps_its_installs_and_its_cache(tmp_path, hubctl_home):
    """A state.db written before roots and ctime existed: its install set becomes the `installed` root, its
    cache rows gain the ctime column (and are rehashed once), nothing is lost."""
    import sqlite3

    from hubctl.store.blobs import Store

    data = b"old install" * 100
    sha = hashlib.sha256(data).hexdigest()
    blob = Store().blob_path(sha)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    os.chmod(blob, 0o444)
    st = os.stat(blob)
    con = sqlite3.connect(str(hubctl_home / "state.db"))
    con.executescript(
        "CREATE TABLE installed_packages (name VARCHAR NOT NULL PRIMARY KEY, version VARCHAR NOT NULL, kind VARCHAR NOT NULL,"
        " family VARCHAR NOT NULL, variant VARCHAR NOT NULL, prediction VARCHAR, layout VARCHAR, dtype VARCHAR,"
        " tokens VARCHAR NOT NULL, trigger VARCHAR NOT NULL, requires VARCHAR NOT NULL, installed_at FLOAT NOT NULL);"
        "CREATE TABLE installed_files (package VARCHAR NOT NULL, path VARCHAR NOT NULL, url VARCHAR NOT NULL, size INTEGER NOT NULL,"
        " sha256 VARCHAR NOT NULL, requested_revision VARCHAR, PRIMARY KEY (package, path));"
        "CREATE TABLE store_blobs (sha256 VARCHAR NOT NULL PRIMARY KEY, size INTEGER NOT NULL, device INTEGER NOT NULL,"
        " inode INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, verified_at FLOAT NOT NULL);"
    )
    con.execute("INSERT INTO installed_packages VALUES ('old-style', '1.0', 'lora', 'sd1', 'fp16', NULL, NULL, NULL, '[]', '[]', '[]', 0)")
    con.execute("INSERT INTO installed_files VALUES ('old-style', 'a.safetensors', 'file:///x/a.safetensors', ?, ?, NULL)", (len(data), sha))
    con.execute("INSERT INTO store_blobs VALUES (?, ?, ?, ?, ?, 0)", (sha, st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns))
    con.commit()
    con.close()
    (p,) = installed.installed_packages()
    assert (p.name, p.version, [f.sha256 for f in p.files]) == ("old-style", "1.0", [sha])
    assert [(c.ok, c.how) for c in Store().verify([sha])] == [(True, "hash")]  # no ctime known yet: rehashed once
    assert [(c.ok, c.how) for c in Store().verify([sha])] == [(True, "stat")]
    assert installed.gc().removed == [] and Store().has_blob(sha)
