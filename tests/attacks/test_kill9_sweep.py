"""kill -9 at every moment of a command: `sync`, `lock`, `registry add` and `gc` are started as real processes
and killed with SIGKILL after a delay swept across their whole run (so every write point is hit on some
delay: the index compile and its rename, registries.toml, the lock file, partial downloads, blob commits, the
state database, roots). After each kill, nothing is half-written: every blob in the store hashes to its
name, the state database passes SQLite's integrity check, the lock and registries.toml still parse, and
every read command answers in one line with the README's exit code. Then the same command run again
finishes, and `hubctl verify` of the project is clean.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._hubs import project_dir  # noqa: F401 (fixture)

KILLS = 5  # delays per command, spread over its normal run time


def _hubctl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hubctl", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _killed_at(args: list[str], cwd: Path, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hubctl", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _assert_whole(home: Path, project: Path) -> None:
    blobs = home / "store" / "sha256"
    for p in blobs.rglob("*") if blobs.exists() else []:
        if p.is_file():
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, f"half-written blob {p}"
    db = home / "state.db"
    if db.exists():
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
    for args in (["registry", "list"], ["list"], ["lock", "--check"], ["verify"], ["search", "demo"]):
        r = _hubctl(*args, cwd=project)
        assert "Traceback" not in r.stderr, (args, r.stderr)
        assert r.returncode in (0, 1), (args, r.returncode, r.stderr)
        if r.returncode:
            assert len(r.stderr.strip().splitlines()) >= 1


def _duration(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    r = _hubctl(*args, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sync", "lock", "registry add", "gc"])
def test_kill_9_at_any_moment_leaves_nothing_half_written_and_a_rerun_finishes(command, project_dir, hubctl_home, tmp_path):
    assert _hubctl("add", "demo-sd<2", "demo-style", cwd=project_dir).returncode == 0
    if command == "sync":
        args = ["sync"]

        def undo() -> None:  # forget the root and drop the blobs, so the next run fetches everything again
            lock = (project_dir / "hubctl.lock").read_bytes()
            (project_dir / "hubctl.lock").unlink()
            assert _hubctl("gc", cwd=project_dir).returncode == 0
            (project_dir / "hubctl.lock").write_bytes(lock)
    elif command == "lock":
        args = ["lock", "--upgrade"]

        def undo() -> None:
            (project_dir / "hubctl.lock").unlink(missing_ok=True)
    elif command == "registry add":
        other = tmp_path / "other"
        (other / "manifests" / "lora").mkdir(parents=True)
        (other / "manifests" / "lora" / "x-style.toml").write_text(
            'name = "x-style"\nkind = "lora"\nsummary = "s"\n[[versions]]\nversion = "1.0"\nfamily = "demo-sd1"\n'
            '[[versions.variants]]\nname = "default"\nfiles = [{ path = "x.safetensors", size = 3, '
            f'sha256 = "{hashlib.sha256(b"abc").hexdigest()}", source = "https://example.invalid/x.safetensors" }}]\n')
        args = ["registry", "add", str(other), "--name", "other"]

        def undo() -> None:
            _hubctl("registry", "remove", "other", cwd=project_dir)
    else:  # gc after the lock that pinned the blobs is gone
        assert _hubctl("sync", cwd=project_dir).returncode == 0
        lock = (project_dir / "hubctl.lock").read_bytes()
        args = ["gc"]

        def undo() -> None:
            (project_dir / "hubctl.lock").write_bytes(lock)
            assert _hubctl("sync", cwd=project_dir).returncode == 0
            (project_dir / "hubctl.lock").unlink()

    undo()
    span = _duration(args, project_dir)
    for k in range(KILLS):
        undo()
        _killed_at(args, project_dir, span * (0.35 + 0.65 * (k + 0.5) / KILLS))  # start-up is the first third
        _assert_whole(hubctl_home, project_dir)
        r = _hubctl(*args, cwd=project_dir)
        assert r.returncode == 0, (k, r.stderr)
        _assert_whole(hubctl_home, project_dir)
    if (project_dir / "hubctl.lock").exists():
        assert _hubctl("sync", cwd=project_dir).returncode == 0
        r = _hubctl("verify", cwd=project_dir)
        assert r.returncode == 0, r.stderr
