"""The store's roots: the install set (`hubctl install` / `uninstall`) and every lock that was synced (`hubctl sync`,
`hubctl run`), each keeping what it pins; `hubctl gc` keeps what any live root pins and says which roots it
honoured and which it dropped; `hubctl list` shows each package version with the roots that use it. Real files
(the file hub: file:// sources), the real index, store and state database, driven through the CLI in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubctl.store.blobs import Store
from hubctl.tomlcompat import tomllib
from tests._hubs import register_file_hub


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    return register_file_hub(tmp_path / "hub")


def _project(d: Path, requires: list[str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "hubctl.toml").write_text("requires = [" + ", ".join(f'"{r}"' for r in requires) + "]\n")
    return d


def _lock_shas(d: Path, name: str = "hubctl.lock") -> set[str]:
    data = tomllib.loads((d / name).read_text())
    return {f["hashes"]["sha256"] for p in data["packages"] for f in p["files"]}


def _synced(cli, monkeypatch, d: Path) -> set[str]:
    monkeypatch.chdir(d)
    r = cli("sync")
    assert r.exit_code == 0, r.output
    return _lock_shas(d)


def test_gc_keeps_blobs_another_projects_lock_pins(cli, hub, tmp_path, monkeypatch):
    a = _project(tmp_path / "a", ["demo-sd==1.4"])
    b = _project(tmp_path / "b", ["demo-sd==2.0"])
    pinned_a = _synced(cli, monkeypatch, a)
    pinned_b = _synced(cli, monkeypatch, b)
    assert pinned_a != pinned_b
    r = cli("gc")
    assert r.exit_code == 0, r.output
    assert "removed 0 blobs" in r.stderr
    assert str(a / "hubctl.lock") in r.stderr and str(b / "hubctl.lock") in r.stderr  # the roots it honoured
    assert all(Store().has_blob(s) for s in pinned_a | pinned_b)
    monkeypatch.chdir(a)
    assert cli("lock", "--check").exit_code == 0
    r = cli("verify")
    assert r.exit_code == 0, r.output


def test_a_synced_script_lock_is_a_root_too(cli, hub, tmp_path, monkeypatch):
    d = tmp_path / "s"
    d.mkdir()
    (d / "s.py").write_text('# /// hubctl\n# requires = ["demo-token"]\n# ///\nprint("ok")\n')
    monkeypatch.chdir(d)
    assert cli("run", "s.py").exit_code == 0
    pinned = _lock_shas(d, "s.py.lock")
    r = cli("gc")
    assert r.exit_code == 0 and str(d / "s.py.lock") in r.stderr
    assert all(Store().has_blob(s) for s in pinned)


def test_gc_drops_a_lock_root_whose_file_is_gone_or_changed_and_says_so(cli, hub, tmp_path, monkeypatch):
    a = _project(tmp_path / "a", ["demo-token"])
    b = _project(tmp_path / "b", ["demo-style==1.0"])
    pinned_a = _synced(cli, monkeypatch, a)
    pinned_b = _synced(cli, monkeypatch, b)
    (a / "hubctl.lock").unlink()
    monkeypatch.chdir(b)
    (b / "hubctl.toml").write_text('requires = ["demo-sd==1.4"]\n')
    assert cli("lock").exit_code == 0  # b's lock now has other bytes: its old root is no longer honoured

    dry = cli("gc", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    j = dry.json()
    assert set(j["removed"]) == pinned_a | pinned_b
    dropped = {d["root"]: d["why"] for d in j["roots"]["dropped"]}
    assert set(dropped) == {str(a / "hubctl.lock"), str(b / "hubctl.lock")}
    assert "gone" in dropped[str(a / "hubctl.lock")] and "changed" in dropped[str(b / "hubctl.lock")]
    assert all(Store().has_blob(s) for s in pinned_a | pinned_b)  # a dry run removes nothing
    listed = [line for line in cli("gc", "--dry-run").stderr.splitlines() if line.startswith("would remove ") and "…" in line]
    assert sorted(line.split()[2][:12] for line in listed) == sorted(s[:12] for s in pinned_a | pinned_b)
    assert any("demo-token 1.0: learned_embeds.safetensors (in " in line for line in listed)

    r = cli("gc")
    assert r.exit_code == 0, r.output
    assert f"dropped root {b / 'hubctl.lock'}: changed since it was synced" in r.stderr
    assert "`hubctl sync`" in r.stderr
    assert not any(Store().has_blob(s) for s in pinned_a | pinned_b)
    assert cli("gc", "--json").json()["roots"]["dropped"] == []  # dropped once, forgotten


def test_list_shows_each_version_with_the_roots_that_use_it(cli, hub, tmp_path, monkeypatch):
    a = _project(tmp_path / "a", ["demo-sd==1.4"])
    _synced(cli, monkeypatch, a)
    assert cli("install", "demo-sd==2.0").exit_code == 0
    listed = cli("list", "--json").json()
    got = {(p["name"], p["version"]): p["roots"] for p in listed}
    assert got == {("demo-sd", "1.4"): [str(a / "hubctl.lock")], ("demo-sd", "2.0"): ["installed"]}
    r = cli("list")
    assert r.exit_code == 0
    lines = [line for line in r.stdout.splitlines() if line.startswith("demo-sd")]
    assert len(lines) == 2
    assert "1.4" in lines[0] and "hubctl.lock" in lines[0] and "2.0" in lines[1] and "installed" in lines[1]


def test_sync_does_not_change_what_install_resolves_against(cli, hub, tmp_path, monkeypatch):
    assert cli("install", "demo-sd==1.4").exit_code == 0
    b = _project(tmp_path / "b", ["demo-sd==2.0"])
    _synced(cli, monkeypatch, b)
    r = cli("install", "demo-token", "--json")  # a demo-sd1 embedding still fits the installed 1.4
    assert r.exit_code == 0, r.output
    listed = {(p["name"], p["version"]): p["roots"] for p in cli("list", "--json").json()}
    assert listed[("demo-sd", "1.4")] == ["installed"] and listed[("demo-sd", "2.0")] == [str(b / "hubctl.lock")]


def test_uninstall_then_gc_keeps_what_a_lock_still_pins(cli, hub, tmp_path, monkeypatch):
    a = _project(tmp_path / "a", ["demo-token"])
    pinned = _synced(cli, monkeypatch, a)
    assert cli("install", "demo-token").exit_code == 0
    assert cli("uninstall", "demo-token").exit_code == 0
    r = cli("gc")
    assert r.exit_code == 0 and "removed 0 blobs" in r.stderr
    assert all(Store().has_blob(s) for s in pinned)


def test_sync_help_and_readme_say_sync_adds_and_gc_removes(cli):
    r = cli("sync", "--help")
    assert "exactly" not in r.stdout and "gc" in r.stdout
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "holds exactly what the lock pins" not in readme
