"""One answer to "is this lock still valid?": `lock --check`, `lock`, `sync`, `run` and `generate` agree, for
every change a relock would pick up (registry corrections of a file's sha256 or size, a yanked version,
settings). Real registry folder of real files compiled into the real index; the CLI in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import tomli_w

from hubctl.tomlcompat import tomllib
from tests._hubs import project_dir  # noqa: F401 (fixture)


def _edit_manifest(hub_root: Path, kind: str, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    f = hub_root / "registry" / "manifests" / kind / f"{name}.toml"
    data = tomllib.loads(f.read_text())
    edit(data)
    f.write_text(tomli_w.dumps(data))


def _version(data: dict[str, Any], ver: str) -> dict[str, Any]:
    return next(v for v in data["versions"] if v["version"] == ver)


def _lock(d: Path) -> dict[str, Any]:
    return tomllib.loads((d / "hubctl.lock").read_text())


def _package(d: Path, name: str) -> dict[str, Any]:
    return next(p for p in _lock(d)["packages"] if p["name"] == name)


def test_a_registry_sha256_correction_makes_check_stale_and_lock_repins(cli, project_dir):
    hub = project_dir.parent / "hub"
    assert cli("add", "demo-token").exit_code == 0
    new_sha = "ab" * 32

    def fix(data):
        _version(data, "1.0")["variants"][0]["files"][0]["sha256"] = new_sha

    _edit_manifest(hub, "embedding", "demo-token", fix)
    r = cli("lock", "--check")
    assert r.exit_code == 1, r.output
    assert "demo-token 1.0 learned_embeds.safetensors: the registry says sha256 abababababab" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("sync", "--locked")
    assert r.exit_code == 1 and "demo-token 1.0 learned_embeds.safetensors" in r.stderr
    r = cli("lock")
    assert r.exit_code == 0 and "wrote" in r.stderr
    assert _package(project_dir, "demo-token")["files"][0]["hashes"]["sha256"] == new_sha
    assert cli("lock", "--check").exit_code == 0


def test_a_registry_size_correction_makes_check_stale_and_lock_repins(cli, project_dir):
    hub = project_dir.parent / "hub"
    assert cli("add", "demo-token").exit_code == 0
    old = _package(project_dir, "demo-token")["files"][0]["size"]

    def fix(data):
        _version(data, "1.0")["variants"][0]["files"][0]["size"] = old + 1

    _edit_manifest(hub, "embedding", "demo-token", fix)
    r = cli("lock", "--check")
    assert r.exit_code == 1, r.output
    assert f"demo-token 1.0 learned_embeds.safetensors: the registry says {old + 1} bytes (hubctl.lock has {old})" in r.stderr
    r = cli("lock")
    assert r.exit_code == 0 and "wrote" in r.stderr, r.output
    assert _package(project_dir, "demo-token")["files"][0]["size"] == old + 1
    assert cli("lock", "--check").exit_code == 0


def test_a_yanked_locked_version_makes_check_stale_and_lock_moves_off_it(cli, project_dir, hubctl_home):
    hub = project_dir.parent / "hub"
    assert cli("add", "demo-sd").exit_code == 0
    assert _package(project_dir, "demo-sd")["version"] == "2.0"

    def yank(data):
        _version(data, "2.0")["yanked"] = True

    _edit_manifest(hub, "checkpoint", "demo-sd", yank)
    r = cli("lock", "--check")
    assert r.exit_code == 1, r.output
    assert "demo-sd 2.0 is yanked in the registry" in r.stderr
    assert "demo-sd: 2.0 (demo-sd2) in hubctl.lock, 1.4 (demo-sd1) for hubctl.toml" in r.stderr
    assert cli("sync", "--locked").exit_code == 1
    assert not (hubctl_home / "store" / "sha256").exists() or not any((hubctl_home / "store" / "sha256").rglob("*"))
    r = cli("lock")
    assert r.exit_code == 0, r.output
    assert _package(project_dir, "demo-sd")["version"] == "1.4"
    assert cli("lock", "--check").exit_code == 0


def test_turning_pre_off_in_the_settings_makes_a_pre_release_lock_stale(cli, project_dir):
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd"]\n\n[settings]\npre = true\n')
    assert cli("lock").exit_code == 0
    assert _package(project_dir, "demo-sd")["version"] == "2.1b1"
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd"]\n\n[settings]\npre = false\n')
    r = cli("lock", "--check")
    assert r.exit_code == 1, r.output
    assert "demo-sd: 2.1b1 (demo-sd2) in hubctl.lock, 2.0 (demo-sd2) for hubctl.toml" in r.stderr
    assert cli("lock").exit_code == 0
    assert _package(project_dir, "demo-sd")["version"] == "2.0"
    assert "pre = true" not in (project_dir / "hubctl.lock").read_text()
    assert cli("lock", "--check").exit_code == 0


def test_pre_on_the_command_line_is_remembered_until_upgrade(cli, project_dir):
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd"]\n')
    assert cli("lock", "--pre").exit_code == 0
    assert _package(project_dir, "demo-sd")["version"] == "2.1b1"
    assert cli("lock", "--check").exit_code == 0
    assert cli("lock").exit_code == 0 and _package(project_dir, "demo-sd")["version"] == "2.1b1"
    assert cli("add", "demo-style").exit_code == 0 and _package(project_dir, "demo-sd")["version"] == "2.1b1"
    assert cli("lock", "--upgrade").exit_code == 0 and _package(project_dir, "demo-sd")["version"] == "2.0"


def _add_fp16_variant(hub: Path) -> None:
    def add(data):
        v = _version(data, "1.4")
        fp32 = v["variants"][0]
        v["variants"].append({**fp32, "name": "fp16", "dtype": "fp16"})

    _edit_manifest(hub, "checkpoint", "demo-sd", add)


def test_changing_the_dtype_setting_picks_that_variant_and_check_agrees(cli, project_dir):
    _add_fp16_variant(project_dir.parent / "hub")
    assert cli("add", "demo-sd<2").exit_code == 0
    assert _package(project_dir, "demo-sd")["variant"] == "fp32"
    text = (project_dir / "hubctl.toml").read_text()
    (project_dir / "hubctl.toml").write_text(text + '\n[settings]\ndtype = "fp16"\n')
    r = cli("lock", "--check")
    assert r.exit_code == 1, r.output
    assert "demo-sd: 1.4 (demo-sd1, fp32) in hubctl.lock, 1.4 (demo-sd1, fp16) for hubctl.toml" in r.stderr
    assert cli("lock").exit_code == 0
    assert _package(project_dir, "demo-sd")["variant"] == "fp16"
    assert _lock(project_dir)["settings"] == {"dtype": "fp16"}
    assert cli("lock", "--check").exit_code == 0


def test_a_lock_with_windows_line_endings_is_still_fresh(cli, project_dir):
    assert cli("add", "demo-sd<2", "demo-token").exit_code == 0
    lock = project_dir / "hubctl.lock"
    crlf = lock.read_bytes().replace(b"\n", b"\r\n")
    lock.write_bytes(crlf)
    assert cli("lock", "--check").exit_code == 0
    r = cli("lock")
    assert r.exit_code == 0 and "unchanged" in r.stderr
    assert lock.read_bytes() == crlf


def test_generate_refuses_a_stale_lock_before_anything_loads(cli, project_dir):
    assert cli("add", "demo-sd<2").exit_code == 0
    assert cli("sync").exit_code == 0
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd>=2"]\n')
    r = cli("generate", "--prompt", "x", "--device", "cpu")
    assert r.exit_code == 1, r.output
    assert "demo-sd: 1.4 (demo-sd1) in hubctl.lock, 2.0 (demo-sd2) for hubctl.toml" in r.stderr
    assert "Traceback" not in r.output
