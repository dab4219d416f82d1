"""Faults on purpose, through `hubctl install` against a real HTTP server on 127.0.0.1: cuts at twenty offsets,
a server that ignores Range, 5xx, a lying Content-Length, a flipped byte, kill -9 and a rerun, four
concurrent installs, a full disk. Each ends with the store consistent (every blob hashes to its name, is
read-only, nothing half-written visible) and a clear message. Only the full disk is simulated (see there)."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubctl.lock.lockfile import LockedFile, LockedPackage
from hubctl.store.blobs import Store
from tests._hubs import seeded_bytes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "4")


def _data(n: int, seed: int = 3) -> bytes:
    return seeded_bytes(n, seed)


def assert_store_consistent(*, partials_allowed: bool = False) -> None:
    st = Store()
    for sha, path in st.iter_blobs():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, f"blob {sha} holds other bytes"
        assert not (path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)), f"blob {sha} is writable"
    stray = [p for p in st.blobs_dir.rglob("*") if p.is_file() and len(p.name) != 64] if st.blobs_dir.exists() else []
    assert stray == []
    if not partials_allowed and st.partial_dir.exists():
        assert list(st.partial_dir.iterdir()) == []


def _registry(tmp_path: Path, url: str, data: bytes, name: str = "net-style") -> Path:
    reg = tmp_path / "reg"
    (reg / "manifests" / "lora").mkdir(parents=True)
    (reg / "manifests" / "lora" / f"{name}.toml").write_text(
        f'name = "{name}"\nkind = "lora"\nsummary = "test"\n[[versions]]\nversion = "1.0"\nfamily = "sd1"\n'
        f'[[versions.variants]]\nname = "fp16"\ndtype = "fp16"\n'
        f'files = [{{ path = "{name}.safetensors", size = {len(data)}, sha256 = "{hashlib.sha256(data).hexdigest()}", source = "{url}" }}]\n'
    )
    from hubctl.registry.manage import add_registry

    add_registry(str(reg), name="net")
    return reg


def _pkg(url: str, data: bytes) -> LockedPackage:
    return LockedPackage("net-style", "1.0", "lora", "sd1", "fp16",
                         (LockedFile("net-style.safetensors", url, len(data), hashlib.sha256(data).hexdigest()),))


SIZE = 65_536
OFFSETS = [0, 1, 2, 100, 1000, 4095, 4096, 4097, 8191, 10_000, 16_384, 20_000, 30_000, 32_767, 32_768,
           40_000, 50_000, 60_000, 65_534, 65_535]


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_connection_cut_at_any_offset_resumes_from_there(http_server, offset):
    from hubctl.sources.fetch import install_packages

    data = _data(SIZE)
    url = http_server.add_file("/cut.safetensors", data)
    http_server.faults.set(cut_at=offset)
    rep = install_packages([_pkg(url, data)], progress=False)
    assert Store().blob_path(rep.blobs[0].sha256).read_bytes() == data
    gets = http_server.stats.matching(method="GET")
    assert len(gets) == 2
    assert gets[1].range == f"bytes={offset}-{SIZE - 1}"  # resumed at the cut, nothing fetched twice
    assert http_server.stats.total_bytes == SIZE
    assert_store_consistent()


def test_a_server_that_ignores_range_is_read_again_from_the_start(http_server):
    from hubctl.sources.fetch import install_packages

    data = _data(SIZE)
    url = http_server.add_file("/norange.safetensors", data)
    http_server.faults.set(ignore_range=True, cut_at=30_000)
    install_packages([_pkg(url, data)], progress=False)
    assert Store().has_blob(hashlib.sha256(data).hexdigest())
    assert [r.status for r in http_server.stats.matching(method="GET")] == [200, 200]
    assert http_server.stats.total_bytes == 30_000 + SIZE
    assert_store_consistent()


def test_5xx_then_success_installs(http_server, cli, tmp_path):
    data = _data(SIZE)
    url = http_server.add_file("/flaky.safetensors", data)
    _registry(tmp_path, url, data)
    http_server.faults.set(fail_times=3, fail_status=503)
    r = cli("install", "net-style")
    assert r.exit_code == 0, r.output
    assert "installed net-style 1.0" in r.stderr
    assert_store_consistent()


def test_5xx_forever_fails_with_one_line_and_exit_3(http_server, cli, tmp_path):
    data = _data(SIZE)
    url = http_server.add_file("/down.safetensors", data)
    _registry(tmp_path, url, data)
    http_server.faults.set(fail_times=1000, fail_status=503)
    r = cli("install", "net-style")
    assert r.exit_code == 3
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    retries = [x for x in lines if ": retrying in " in x]  # one line per retry (issue 17, item 18)
    lines = [x for x in lines if x not in retries]
    assert len(retries) == 3 and all("/4): server error 503" in x for x in retries)
    assert len(lines) == 1 and url in lines[0] and "503" in lines[0] and "gave up after 4 tries" in lines[0]
    assert cli("list", "--json").json() == []
    assert_store_consistent()


def test_a_content_length_that_claims_more_still_installs_the_right_bytes(http_server):
    from hubctl.sources.fetch import install_packages

    data = _data(SIZE)
    url = http_server.add_file("/long.safetensors", data)
    http_server.faults.set(wrong_length=100)
    install_packages([_pkg(url, data)], progress=False)  # the lock says the size; the sha256 proves the bytes
    assert Store().blob_path(hashlib.sha256(data).hexdigest()).read_bytes() == data
    assert_store_consistent()


def test_a_content_length_that_claims_less_fails_clearly_and_a_rerun_resumes(http_server, cli, tmp_path):
    data = _data(SIZE)
    url = http_server.add_file("/short.safetensors", data)
    _registry(tmp_path, url, data)
    http_server.faults.set(wrong_length=-5000)
    r = cli("install", "net-style")
    assert r.exit_code == 3
    error = [x for x in r.stderr.splitlines() if x.strip() and ": retrying in " not in x]
    assert len(error) == 1 and url in error[0] and "gave up after 4 tries" in error[0]
    assert not Store().has_blob(hashlib.sha256(data).hexdigest())
    assert_store_consistent(partials_allowed=True)
    http_server.faults.reset()
    http_server.stats.reset()
    r = cli("install", "net-style")
    assert r.exit_code == 0, r.output
    assert http_server.stats.total_bytes < SIZE  # only what was missing
    assert_store_consistent()


def test_one_flipped_byte_is_rejected_and_nothing_is_stored(http_server, cli, tmp_path):
    data = _data(SIZE)
    url = http_server.add_file("/flip.safetensors", data)
    _registry(tmp_path, url, data)
    http_server.faults.set(flip_byte=12_345)
    r = cli("install", "net-style")
    assert r.exit_code == 3
    line = r.stderr.strip()
    assert "net-style 1.0: net-style.safetensors: sha256 mismatch" in line and "nothing stored" in line
    assert list(Store().iter_blobs()) == []
    assert cli("list", "--json").json() == []
    assert_store_consistent()


def test_a_full_disk_leaves_no_partial_blob(http_server, cli, tmp_path, monkeypatch):
    # Simulated: a real tiny filesystem (tmpfs/loop mount) needs root, so the store's write hook raises ENOSPC
    # after 20,000 bytes, exactly where a full disk would fail the write.
    import errno

    from hubctl.store import partial as partial_mod
    data = _data(SIZE)
    url = http_server.add_file("/big.safetensors", data)
    _registry(tmp_path, url, data)
    left = {"n": 20_000}
    real = os.pwrite

    def enospc(fd, buf, off):
        if left["n"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, bytes(buf[: left["n"]]), off)
        left["n"] -= n
        return n

    monkeypatch.setattr(partial_mod, "_pwrite", enospc)
    r = cli("install", "net-style")
    assert r.exit_code == 3  # the machine failed (README): not 1, which is the answer "no"
    assert "disk full while writing net-style 1.0: net-style.safetensors" in r.stderr
    assert list(Store().iter_blobs()) == []
    assert_store_consistent()  # no partial either: the space is given back


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _saved_progress(key: str) -> int:
    prog = Store().partial_dir / f"{key}.prog"
    try:
        raw = prog.read_bytes()
    except FileNotFoundError:
        return 0
    meta = Store().partial_dir / f"{key}.json"
    import json

    parts = json.loads(meta.read_text())["parts"]
    return sum(struct.unpack_from("<q", raw, 8 * i)[0] - s for i, (s, _e) in enumerate(parts) if len(raw) >= 8 * (i + 1))


def test_kill_9_during_install_then_rerun_resumes_every_part(http_server, cli, tmp_path):
    size = 8 << 20
    data = _data(size)
    sha = hashlib.sha256(data).hexdigest()
    url = http_server.add_file("/slow.safetensors", data)
    _registry(tmp_path, url, data)
    http_server.faults.set(rate=1_000_000)  # ~1 MB/s per connection: slow enough to kill mid-way
    env = _env(HUBCTL_HTTP_PARALLEL_MIN=str(1 << 20), HUBCTL_HTTP_PARTS="4")
    proc = subprocess.Popen([sys.executable, "-m", "hubctl", "install", "net-style"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _saved_progress(sha) < (2 << 20):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "download never started"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not Store().has_blob(sha)
    # the server's sending threads notice the dead connections a moment later: let their counts settle
    last = -1
    while http_server.stats.total_bytes != last:
        last = http_server.stats.total_bytes
        time.sleep(0.3)
    first_sent = http_server.stats.total_bytes
    saved = _saved_progress(sha)
    assert 0 < saved < size
    http_server.faults.reset()
    http_server.stats.reset()
    os.environ.update(HUBCTL_HTTP_PARALLEL_MIN=str(1 << 20))
    try:
        r = cli("install", "net-style")
    finally:
        os.environ.pop("HUBCTL_HTTP_PARALLEL_MIN", None)
    assert r.exit_code == 0, r.output
    assert "1 resumed" in r.stderr
    rerun = http_server.stats.total_bytes
    assert rerun == size - saved  # exactly the missing bytes, per part
    assert len(http_server.stats.matching(method="GET")) == 4
    refetched = first_sent + rerun - size  # bytes that crossed the wire twice
    assert refetched <= size // 4, f"{refetched} bytes fetched again: more than one part"
    assert Store().blob_path(sha).read_bytes() == data
    assert_store_consistent()


def test_four_concurrent_installs_of_one_artefact_download_it_once(http_server, cli, tmp_path):
    size = 2 << 20
    data = _data(size)
    url = http_server.add_file("/shared.safetensors", data)
    _registry(tmp_path, url, data)
    cli("list")  # create the state database before four processes race to
    http_server.faults.set(rate=4_000_000)
    procs = [subprocess.Popen([sys.executable, "-m", "hubctl", "install", "net-style", "--json"], env=_env(), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1].decode() for o in outs]
    assert http_server.stats.total_bytes == size
    assert http_server.stats.count(method="GET") == 1
    import json

    hows = sorted(json.loads(o[0])["blobs"][0]["how"] for o in outs)
    assert hows == ["downloaded", "store", "store", "store"]
    assert Store().blob_path(hashlib.sha256(data).hexdigest()).read_bytes() == data
    assert [p["name"] for p in cli("list", "--json").json()] == ["net-style"]
    assert_store_consistent()


def test_ctrl_c_stops_at_once_keeps_the_partial_and_a_rerun_resumes(http_server, cli, tmp_path):
    size = 8 << 20
    data = _data(size, seed=9)
    sha = hashlib.sha256(data).hexdigest()
    url = http_server.add_file("/int.safetensors", data)
    _registry(tmp_path, url, data)
    http_server.faults.set(rate=1_000_000)
    env = _env(HUBCTL_HTTP_PARALLEL_MIN=str(1 << 20), HUBCTL_HTTP_PARTS="4")
    proc = subprocess.Popen([sys.executable, "-m", "hubctl", "install", "net-style"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _saved_progress(sha) < (1 << 20):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 15, "Ctrl-C took too long"
    assert proc.returncode == 130 and b"interrupted" in err
    saved = _saved_progress(sha)
    assert 0 < saved < size and not Store().has_blob(sha)
    http_server.faults.reset()
    http_server.stats.reset()
    r = cli("install", "net-style")
    assert r.exit_code == 0 and "1 resumed" in r.stderr
    assert Store().blob_path(sha).read_bytes() == data
    assert_store_consistent()
