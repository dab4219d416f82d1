"""Faults at the CLI's edge (issue 17 item 8): every failure is one line on stderr with the README's exit code,
never a traceback, and nothing half-written. 2 = the input cannot be used as it is (corrupt database, TOML or
JSON nested too deeply, a number too long, a size that is not finite); 3 = the machine failed (disk full, a
file-size limit, a read-only folder, a database held locked past HUBCTL_DB_TIMEOUT). A read-only HUBCTL_HOME
still answers every command that only reads.

Real parts: real SQLite files damaged on disk, a real second connection holding the write lock, real
`ulimit -f` (RLIMIT_FSIZE) on a real `python -m hubctl` process, and real full or read-only filesystems: a
small tmpfs, or a read-only bind mount, in a private mount namespace (`unshare -m`, which needs root; as
another user the read-only case uses a folder without write permission, and the tmpfs cases are skipped).
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEEP = 1000


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200", HUBCTL_NO_FAST_EXIT="1")
    env.update(extra)
    return env


def _hubctl(*args: str, cwd: Path | None = None, preexec=None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hubctl", *args], capture_output=True, text=True, cwd=cwd,
                          env=_env(**env), preexec_fn=preexec, timeout=120)


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def _in_namespace(setup: str, args: list[str], *, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``setup`` (mounts) then ``python -m hubctl ARGS`` in a private mount namespace."""
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "hubctl", *args])
    script = f"set -e; {setup}; cd {shlex.quote(str(cwd or os.getcwd()))}; exec {cmd}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=_env(**env), timeout=120)


needs_mounts = pytest.mark.skipif(not _can_unshare(), reason="a real full filesystem needs a tmpfs mount (root and unshare -m)")


@pytest.fixture
def installed(cli, demo_registry, hubctl_home: Path) -> Path:
    """A HUBCTL_HOME with the demo registry and demo-token installed (a real state.db)."""
    r = cli("install", "demo-token")
    assert r.exit_code == 0, r.output
    from hubctl import db

    db.dispose_all()
    return hubctl_home


def _project(folder: Path, body: str = 'requires = ["demo-token"]\n') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hubctl.toml").write_text(body)
    return folder


# ------------------------------------------------------------------------------------------ damaged databases


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("command", ["list", "verify", "install"])
def test_a_corrupt_state_database_is_one_line_naming_it_with_exit_2(cli, installed: Path, damage: str, command: str) -> None:
    state = installed / "state.db"
    if damage == "garbage":
        state.write_bytes(b"this is not a database, just text " * 200)
    else:
        with open(state, "r+b") as f:
            f.truncate(state.stat().st_size // 3)
    args = ["install", "demo-style==1.0"] if command == "install" else [command]
    r = cli(*args)
    assert r.exit_code == 2, r.output
    line = _one_line(r.stderr)
    assert str(state) in line and "not a valid SQLite database" in line and "move it aside" in line


def test_a_state_database_locked_past_the_timeout_is_one_line_with_exit_3(cli, installed: Path, monkeypatch) -> None:
    monkeypatch.setenv("HUBCTL_DB_TIMEOUT", "0.5")
    other = sqlite3.connect(installed / "state.db", isolation_level=None)  # another process's writer, in effect
    other.execute("BEGIN EXCLUSIVE")
    try:
        r = cli("uninstall", "demo-token")
    finally:
        other.rollback()
        other.close()
    assert r.exit_code == 3, r.output
    line = _one_line(r.stderr)
    assert "locked by another process" in line and "HUBCTL_DB_TIMEOUT" in line
    assert cli("list").exit_code == 0 and "demo-token" in cli("list").stdout  # nothing changed


# ------------------------------------------------------------------------------------------ read-only home


READ_COMMANDS = [["list"], ["verify"], ["search", "demo"], ["info", "demo-sd"], ["inspect", "FILE"]]


def _read_only(home: Path, args: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    if _can_unshare():
        q = shlex.quote(str(home))
        return _in_namespace(f"mount --bind {q} {q}; mount -o remount,ro,bind {q}", args, cwd=cwd)
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions and cannot unshare a mount namespace here")
    modes = {}
    for d in [home, *[p for p in home.rglob("*") if p.is_dir()]]:
        modes[d] = d.stat().st_mode
        d.chmod(0o555)
    try:
        return _hubctl(*args, cwd=cwd)
    finally:
        for d, m in modes.items():
            d.chmod(m)


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: a[0])
def test_a_read_only_home_still_answers_commands_that_only_read(installed: Path, demo_registry, tmp_path: Path, args: list[str]) -> None:
    args = [str(demo_registry.file("demo-style", "1.0")) if a == "FILE" else a for a in args]
    # the registry changed since the index was compiled: a read-only home compiles it for this process only
    os.utime(demo_registry.manifests["demo-token"], None)
    r = _read_only(installed, args, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["install", "demo-style==1.0"], ["uninstall", "demo-token"]], ids=lambda a: a[0])
def test_a_read_only_home_refuses_writes_in_one_line_with_exit_3(installed: Path, tmp_path: Path, args: list[str]) -> None:
    before = (installed / "state.db").read_bytes()
    r = _read_only(installed, args, cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_line(r.stderr)
    assert "read-only" in line or "not writable" in line or "permission denied" in line
    assert (installed / "state.db").read_bytes() == before


# ------------------------------------------------------------------------------------------ disk full (ENOSPC)


def _full_tmpfs(mount: Path, *, copy_from: Path | None = None, size: str = "1m") -> str:
    """Shell lines: a tmpfs of ``size`` at ``mount`` (optionally filled with a copy of ``copy_from``), then the
    rest of it filled up, so the next write meets ENOSPC."""
    q = shlex.quote(str(mount))
    lines = [f"mkdir -p {q}"]
    lines.append(f"mount -t tmpfs -o size={size} tmpfs {q}")
    if copy_from is not None:
        lines.append(f"cp -a {shlex.quote(str(copy_from))}/. {q}/")
    lines.append(f"dd if=/dev/zero of={q}/.filler bs=4k 2>/dev/null || true")
    return "; ".join(lines)


@needs_mounts
def test_disk_full_while_writing_the_state_database_is_one_line_with_exit_3(installed: Path, tmp_path: Path) -> None:
    home = tmp_path / "full-home"
    r = _in_namespace(_full_tmpfs(home, copy_from=installed, size="4m"), ["uninstall", "demo-token"],
                      cwd=tmp_path, HUBCTL_HOME=str(home))
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_line(r.stderr)
    assert "no space left" in line or "disk I/O error" in line


@needs_mounts
def test_disk_full_while_compiling_the_index_is_one_line_with_exit_3(installed: Path, tmp_path: Path) -> None:
    home = tmp_path / "full-home"
    (installed / "index.db").unlink()  # the next command compiles the index: its write meets a full disk
    r = _in_namespace(_full_tmpfs(home, copy_from=installed, size="4m"), ["search", "demo"], cwd=tmp_path, HUBCTL_HOME=str(home))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "no space left" in _one_line(r.stderr)


@needs_mounts
def test_disk_full_while_writing_the_lock_is_one_line_naming_it_with_exit_3(installed: Path, tmp_path: Path) -> None:
    src = _project(tmp_path / "src")
    proj = tmp_path / "proj"
    r = _in_namespace(_full_tmpfs(proj, copy_from=src, size="64k"), ["lock"], cwd=proj)
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_line(r.stderr)
    assert str(proj / "hubctl.lock") in line and "no space left" in line


# ------------------------------------------------------------------------------------------ file-size limit


def _limit_file_size(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_a_file_size_limit_while_compiling_the_index_is_one_line_with_exit_3(installed: Path, tmp_path: Path) -> None:
    (installed / "index.db").unlink()
    r = _hubctl("search", "demo", cwd=tmp_path, preexec=_limit_file_size(20_000))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "file-size limit" in _one_line(r.stderr)


def test_a_file_size_limit_while_writing_the_lock_is_one_line_with_exit_3(installed: Path, tmp_path: Path) -> None:
    proj = _project(tmp_path / "proj")
    assert _hubctl("lock", cwd=proj).returncode == 0
    old = (proj / "hubctl.lock").read_bytes()
    _project(proj, 'requires = ["demo-token", "demo-sd==1.4"]\n')
    # the index and state databases exist already and only read here: a 1-byte limit stops the new lock's write
    r = _hubctl("lock", cwd=proj, preexec=_limit_file_size(1))
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_line(r.stderr)
    assert str(proj / "hubctl.lock") in line and "file-size limit" in line
    assert (proj / "hubctl.lock").read_bytes() == old
    assert sorted(p.name for p in proj.iterdir()) == ["hubctl.lock", "hubctl.toml"]  # no temporary file left


# ------------------------------------------------------------------------------------------ parsers


def _deep_toml() -> str:
    return "x = " + "[" * DEEP + "]" * DEEP + "\n"


def _big_number_toml() -> str:
    return "x = " + "9" * 5000 + "\n"


@pytest.mark.parametrize("body,words", [(_deep_toml(), "nested too deeply"), (_big_number_toml(), "more than 4300 digits")],
                         ids=["nested-1000", "5000-digits"])
def test_a_hostile_lock_is_one_line_naming_it_with_exit_2(cli, demo_registry, tmp_path: Path, monkeypatch, body: str, words: str) -> None:
    proj = _project(tmp_path / "proj")
    (proj / "hubctl.lock").write_text(body)
    monkeypatch.chdir(proj)
    for args in (["lock", "--check"], ["sync", "--locked"]):
        r = cli(*args)
        assert r.exit_code == 2, r.output
        line = _one_line(r.stderr)
        assert str(proj / "hubctl.lock") in line and words in line


@pytest.mark.parametrize("body,words", [(_deep_toml(), "nested too deeply"), (_big_number_toml(), "more than 4300 digits")],
                         ids=["nested-1000", "5000-digits"])
def test_a_hostile_project_file_is_one_line_naming_it_with_exit_2(cli, demo_registry, tmp_path: Path, monkeypatch, body: str, words: str) -> None:
    proj = _project(tmp_path / "proj", 'requires = ["demo-token"]\n' + body)
    monkeypatch.chdir(proj)
    r = cli("lock")
    assert r.exit_code == 2, r.output
    line = _one_line(r.stderr)
    assert str(proj / "hubctl.toml") in line and words in line
    assert not (proj / "hubctl.lock").exists()


def _index_file(tmp_path: Path, tail: str) -> Path:
    p = tmp_path / "index.json"
    p.write_text('{"hubctl-index": 1, "families": [], "manifests": [], "x": ' + tail + "}")
    return p


@pytest.mark.parametrize("tail,words", [("[" * DEEP + "]" * DEEP, "nested too deeply"), ("9" * 5000, "more than 4300 digits")],
                         ids=["nested-1000", "5000-digits"])
def test_a_hostile_registry_index_file_is_one_line_naming_it_with_exit_2(cli, tmp_path: Path, hubctl_home: Path, tail: str, words: str) -> None:
    path = _index_file(tmp_path, tail)
    r = cli("registry", "add", str(path))
    assert r.exit_code == 2, r.output
    line = _one_line(r.stderr)
    assert str(path) in line and words in line
    assert not (hubctl_home / "registries.toml").exists()  # nothing was added


@pytest.mark.parametrize("tail,words", [("[" * DEEP + "]" * DEEP, "nested too deeply"), ("9" * 5000, "more than 4300 digits")],
                         ids=["nested-1000", "5000-digits"])
def test_a_hostile_registry_index_served_over_http_is_one_line_with_exit_2(cli, http_server, hubctl_home: Path, tail: str, words: str) -> None:
    url = http_server.add_file("/index.json", ('{"hubctl-index": 1, "families": [], "manifests": [], "x": ' + tail + "}").encode())
    r = cli("registry", "add", url)
    assert r.exit_code == 2, r.output
    assert words in _one_line(r.stderr)


@pytest.mark.parametrize("body,words", [(_deep_toml(), "nested too deeply"), (_big_number_toml(), "more than 4300 digits")],
                         ids=["nested-1000", "5000-digits"])
def test_a_hostile_manifest_in_a_registry_folder_is_one_line_naming_it_with_exit_2(cli, tmp_path: Path, body: str, words: str) -> None:
    reg = tmp_path / "reg"
    (reg / "manifests" / "lora").mkdir(parents=True)
    bad = reg / "manifests" / "lora" / "bad.toml"
    bad.write_text('name = "bad"\nkind = "lora"\n' + body)
    r = cli("registry", "add", str(reg))
    assert r.exit_code == 2, r.output
    line = _one_line(r.stderr)
    assert str(bad) in line and words in line


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", '"' + "9" * 400 + 'GiB"'], ids=["inf", "nan", "-inf", "400-digit-GiB"])
def test_a_vram_that_is_not_a_finite_size_is_one_line_with_exit_2(cli, demo_registry, tmp_path: Path, monkeypatch, value: str) -> None:
    proj = _project(tmp_path / "proj", f'requires = ["demo-token"]\n[settings]\nvram = {value}\n')
    monkeypatch.chdir(proj)
    r = cli("lock")
    assert r.exit_code == 2, r.output
    line = _one_line(r.stderr)
    assert str(proj / "hubctl.toml") in line and "settings.vram" in line
    assert not (proj / "hubctl.lock").exists()
