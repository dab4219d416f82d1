"""kill -9 at every moment of `hubctl adopt --replace`: started as a real process and killed after a delay swept
across its whole run (hashing, links into the store, roots, the local registry, the swaps of originals for
links). After each kill nothing the user had is lost (every file still holds its bytes), every blob hashes to its
name, the state database is sound; then adopt run again finishes the job: every file is a link to its blob and a
third run changes nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.adopt._folders import sha256, sparse_copy

KILLS = 4


def _folder(root: Path, sparse, base: str, n: int) -> dict[Path, str]:  # type: ignore[no-untyped-def]
    """``n`` distinct files (one byte of tensor data changed each) and a duplicate of each, across A1111's folders."""
    out = {}
    for i in range(n):
        sub = ("models/Lora", "models/LyCORIS", "models/Stable-diffusion")[i % 3]
        p = sparse_copy(sparse.get(base), root / sub / f"m{i}.safetensors")
        with open(p, "r+b") as f:
            f.seek(-1, os.SEEK_END)
            f.write(bytes([i + 1]))
        dup = root / "models/VAE" / f"dup{i}.safetensors"
        dup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dup)
        out[p] = out[dup] = sha256(p)
    (root / "webui.py").write_text("")
    return out


def _hubctl(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hubctl", *args], env=env, capture_output=True, text=True, timeout=300)


def _assert_whole(home: Path, want: dict[Path, str]) -> None:
    for p, sha in want.items():
        assert sha256(p) == sha, f"lost or changed: {p}"
    for b in (home / "store" / "sha256").rglob("*") if (home / "store" / "sha256").exists() else []:
        if b.is_file():
            h = hashlib.sha256()
            with open(b, "rb") as f:
                for chunk in iter(lambda: f.read(8 << 20), b""):
                    h.update(chunk)
            assert h.hexdigest() == b.name, f"half-written blob {b}"
    db = home / "state.db"
    if db.exists():
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["same-filesystem", "store-on-tmpfs"])
def test_kill_9_at_any_moment_of_adopt_loses_nothing_and_a_rerun_finishes(where, sparse, tmp_path):
    if where == "store-on-tmpfs" and (not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev):
        pytest.skip("needs /dev/shm on another filesystem")
    base, n = "sd1-lora-kohya", 12
    homes: list[Path] = []

    def fresh(k: int) -> tuple[Path, dict[Path, str], dict[str, str]]:
        root = tmp_path / f"webui{k}"
        home = (Path("/dev/shm") / f"hubctl-k9-{os.getpid()}-{k}") if where == "store-on-tmpfs" else tmp_path / f"home{k}"
        shutil.rmtree(home, ignore_errors=True)
        homes.append(home)
        env = dict(os.environ, HUBCTL_HOME=str(home), HUBCTL_FSYNC="0")
        return root, _folder(root, sparse, base, n), env

    try:
        root, want, env = fresh(-1)
        t0 = time.perf_counter()
        r = _hubctl(["adopt", str(root), "--replace"], env)
        span = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr
        for k in range(KILLS):
            root, want, env = fresh(k)
            proc = subprocess.Popen([sys.executable, "-m", "hubctl", "adopt", str(root), "--replace"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(span * (0.35 + 0.65 * (k + 0.5) / KILLS))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            home = Path(env["HUBCTL_HOME"])
            _assert_whole(home, want)
            r = _hubctl(["adopt", str(root), "--replace", "--json"], env)
            assert r.returncode == 0, (k, r.stderr)
            _assert_whole(home, want)
            for p, sha in want.items():
                blob = home / "store" / "sha256" / sha[:2] / sha
                assert os.path.samefile(p, blob), (k, p)
            assert not list(root.rglob("*.hubctl-adopt")), k
        again = _hubctl(["adopt", str(root), "--replace", "--json"], env)
        import json

        assert {f["action"] for f in json.loads(again.stdout)["files"]} == {"unchanged"}
        assert _hubctl(["verify"], env).returncode == 0
    finally:
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)
