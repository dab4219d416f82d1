"""Hostile hands and faults in the store: a world-open umask, blobs swapped for symlinks or folders, sidecars a
kill left behind, installs racing to record one blob. Each case ends in one line and the README's exit code,
never a traceback, with nothing of the user's lost. Real files, real SQLite, real processes, the CLI in-process
on the file hub (file:// sources)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubctl.store.blobs import Store
from hubctl.store.partial import PartialFile
from tests._hubs import project_dir  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]


def _only_blob() -> tuple[str, Path]:
    (entry,) = list(Store().iter_blobs())
    return entry


def _one_line_error(r) -> str:  # type: ignore[no-untyped-def]
    assert "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


# ------------------------------------------------------------------ 17.7: folders are never world-writable


def test_store_state_and_views_folders_are_not_group_or_world_writable_under_umask_000(cli, demo_registry, tmp_path, monkeypatch, hubctl_home):
    from hubctl.lock.lockfile import read_lock
    from hubctl.run.verify import verify_locked_set

    old = os.umask(0)
    try:
        monkeypatch.chdir(tmp_path)
        assert cli("add", "demo-sd==1.4", "demo-style").exit_code == 0
        assert cli("sync").exit_code == 0
        verify_locked_set(read_lock(tmp_path / "hubctl.lock"))  # lays out views/run/...
    finally:
        os.umask(old)
    checked = 0
    for d in [hubctl_home / "store", hubctl_home / "views"]:
        for p in [d, *d.rglob("*")]:
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                checked += 1
                assert st.st_mode & 0o022 == 0, f"{p} is {oct(st.st_mode & 0o777)}"
    assert checked > 5
    assert os.stat(hubctl_home).st_mode & 0o022 == 0
    assert os.stat(hubctl_home / "state.db").st_mode & 0o022 == 0


# ------------------------------------------------------------------ 17.12: a blob must be a regular file the store owns


def _outside_copy(tmp_path: Path, blob: Path) -> Path:
    copy = tmp_path / "outside" / "copy.safetensors"
    copy.parent.mkdir()
    shutil.copyfile(blob, copy)
    return copy


def _swap(kind: str, tmp_path: Path, blob: Path) -> None:
    target = {
        "symlink-to-identical-copy": lambda: _outside_copy(tmp_path, blob),
        "dangling-symlink": lambda: tmp_path / "nothing-here",
        "symlink-to-folder": lambda: tmp_path,
    }[kind]()
    os.unlink(blob)
    os.symlink(target, blob)


@pytest.mark.parametrize("full", [False, True], ids=["verify", "verify-full"])
@pytest.mark.parametrize("kind", ["symlink-to-identical-copy", "dangling-symlink", "symlink-to-folder"])
def test_verify_refuses_a_blob_swapped_for_a_symlink_in_one_line(kind, full, cli, project_dir, tmp_path):
    assert cli("install", "demo-token").exit_code == 0
    sha, blob = _only_blob()
    _swap(kind, tmp_path, blob)
    r = cli("verify", *(["--full"] if full else []))
    assert r.exit_code == 1, r.output
    _one_line_error(r)
    bad = [line for line in r.stderr.splitlines() if line.startswith("bad:")]
    assert len(bad) == 1 and "demo-token 1.0: learned_embeds.safetensors: not a regular file" in bad[0]
    assert not os.path.lexists(blob)  # set aside, never followed
    assert kind != "symlink-to-identical-copy" or (tmp_path / "outside" / "copy.safetensors").is_file()
    assert cli("verify").exit_code == 1  # still no blob: "missing from the store" until it is fetched again
    r = cli("install", "demo-token", "--json")  # and it is fetched again
    assert r.exit_code == 0, r.output
    assert stat.S_ISREG(os.lstat(Store().blob_path(sha)).st_mode)
    assert cli("verify", "--full").exit_code == 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a file to another user needs root")
def test_verify_refuses_a_blob_swapped_for_another_users_identical_file(cli, project_dir, tmp_path):
    assert cli("install", "demo-token").exit_code == 0
    sha, blob = _only_blob()
    planted = blob.with_name("planted")
    shutil.copyfile(blob, planted)
    os.chown(planted, 4242, 4242)
    os.replace(planted, blob)
    r = cli("verify")
    assert r.exit_code == 1, r.output
    _one_line_error(r)
    assert "learned_embeds.safetensors: not a file of the store (owned by user 4242)" in r.stderr
    assert cli("install", "demo-token").exit_code == 0 and os.lstat(Store().blob_path(sha)).st_uid == os.geteuid()


@pytest.mark.parametrize("kind", ["symlink-to-identical-copy", "dangling-symlink", "symlink-to-folder"])
def test_gc_reports_a_pinned_blob_swapped_for_a_symlink_in_one_line(kind, cli, project_dir, tmp_path):
    assert cli("install", "demo-token").exit_code == 0
    sha, blob = _only_blob()
    _swap(kind, tmp_path, blob)
    r = cli("gc")
    assert r.exit_code == 1, r.output
    line = _one_line_error(r)
    assert sha[:12] in line and "not a regular file" in line and "hubctl install" in line
    assert not os.path.lexists(blob)  # set aside: the store holds no symlink
    assert tmp_path.is_dir() and (kind != "symlink-to-identical-copy" or (tmp_path / "outside" / "copy.safetensors").is_file())
    r = cli("gc")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("kind", ["dangling-symlink", "symlink-to-folder"])
def test_gc_removes_an_unpinned_symlink_blob_without_following_it(kind, cli, project_dir, tmp_path):
    assert cli("install", "demo-token").exit_code == 0
    sha, blob = _only_blob()
    _swap(kind, tmp_path, blob)
    assert cli("uninstall", "demo-token").exit_code == 0
    r = cli("gc")
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output and not os.path.lexists(blob) and tmp_path.is_dir()


# ------------------------------------------------------------------ 17.11: orphaned sidecars


def _orphan(st: Store, key: str) -> list[Path]:
    pf = PartialFile(st.partial_dir, key)
    (part,) = pf.plan(100, '"e"', 1)
    pf.write(part, b"x" * 40)
    pf.close()
    pf.path.unlink()  # killed after the blob's rename, before the sidecars were cleaned up
    return [pf.meta_path, pf.prog_path]


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_gc_cleans_orphaned_sidecars_but_never_those_a_live_process_holds(tmp_path):
    st = Store()
    orphans = _orphan(st, "a" * 64) + _orphan(st, "url-0123")
    held = _orphan(st, "b" * 64)
    st.locks_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(st.locks_dir / f"{'b' * 64}.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        dry = st.gc(set(), dry_run=True)
        assert all(p.exists() for p in orphans + held) and dry.partials_removed == 2
        rep = st.gc(set())
        assert rep.partials_removed == 2
        assert not any(p.exists() for p in orphans)
        assert all(p.exists() for p in held)
    finally:
        holder.stdin.close()
        holder.wait(10)
    st.gc(set())
    assert list(st.partial_dir.iterdir()) == []


# ------------------------------------------------------------------ 17.13: recording a blob is idempotent

RECORD = """
import sys
from hubctl.store.blobs import Store
st = Store()
print("ready", flush=True)
st.record(sys.argv[1])
print("recorded", flush=True)
"""


def test_installs_racing_to_record_one_blob_never_fail(tmp_path):
    """The blob is in the store but not yet recorded; another process holds the state database's write lock
    until three recorders wait on it, then lets go: all three succeed and one row remains."""
    data = b"raced" * 1000
    sha = hashlib.sha256(data).hexdigest()
    st = Store()

    def put(pf: PartialFile) -> None:
        (part,) = pf.plan(len(data), None, 1)
        pf.write(part, data)

    st.fetch(sha256=sha, size=len(data), download=put)
    db = Path(os.environ["HUBCTL_HOME"]) / "state.db"
    con = sqlite3.connect(str(db))
    con.execute("DELETE FROM store_blobs")
    con.commit()
    con.execute("BEGIN IMMEDIATE")  # hold the write lock
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", RECORD, sha], env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        time.sleep(1.5)  # each now waits for the write lock
    finally:
        con.rollback()
        con.close()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-400:] for o in outs]
    assert all("IntegrityError" not in o[1] for o in outs)
    assert list(Store().records()) == [sha]


FIRST_USE = """
import sys, time
t = float(sys.argv[1])
from hubctl.store.blobs import Store
from hubctl.store.installed import installed_packages, record_installed
from hubctl.run.records import list_runs
while time.time() < t:
    pass
[lambda: Store().record(sys.argv[2]), lambda: record_installed([]), list_runs][int(sys.argv[3]) % 3]()
installed_packages()
"""


def test_processes_creating_the_state_tables_at_once_all_succeed(tmp_path):
    """A fresh state database: six processes use it for the first time at the same instant (each creates the
    tables it needs); none fails. Guards the removed `Store().records([])` workaround in sync_lock."""
    data = b"first use"
    st = Store()
    blob = st.blob_path(hashlib.sha256(data).hexdigest())
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_USE, str(start), blob.name, str(i)], env=env, cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [e[-400:] for e in errs]
