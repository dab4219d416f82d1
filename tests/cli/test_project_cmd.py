"""`hubctl add / remove / lock [--check] [--upgrade...] [--script]` through the CLI, on a registry of real
files compiled into the real index."""

from __future__ import annotations

from pathlib import Path


from hubctl.tomlcompat import tomllib
from tests._hubs import project_dir  # noqa: F401 (fixture)


def _locked(d: Path, name: str = "hubctl.lock") -> dict[str, tuple[str, str]]:
    data = tomllib.loads((d / name).read_text())
    return {p["name"]: (p["version"], p["family"]) for p in data["packages"]}


def _add_version(hub_root: Path, name: str, kind: str, version: str, family: str, like: str) -> None:
    """Publish a new version in the registry folder (same files as ``like``)."""
    import tomli_w

    f = hub_root / "registry" / "manifests" / kind / f"{name}.toml"
    data = tomllib.loads(f.read_text())
    src = next(v for v in data["versions"] if v["version"] == like)
    data["versions"].append({**src, "version": version, "family": family})
    f.write_text(tomli_w.dumps(data))


def test_demo_walk_add_resolves_style_to_the_base_family(cli, project_dir):
    r = cli("add", "demo-sd<2", "demo-style")
    assert r.exit_code == 0, r.output
    assert _locked(project_dir) == {"demo-sd": ("1.4", "demo-sd1"), "demo-style": ("1.0", "demo-sd1")}
    assert tomllib.loads((project_dir / "hubctl.toml").read_text())["requires"] == ["demo-sd<2", "demo-style"]
    r = cli("add", "demo-sd>=2")  # replaces the base requirement; the style follows it to 2.0
    assert r.exit_code == 0, r.output
    assert _locked(project_dir) == {"demo-sd": ("2.0", "demo-sd2"), "demo-style": ("2.0", "demo-sd2")}
    assert "~ demo-sd 1.4 (demo-sd1) -> 2.0 (demo-sd2)" in r.stderr


def test_an_add_with_no_compatible_set_says_why_and_writes_nothing(cli, project_dir):
    assert cli("add", "demo-sd<2").exit_code == 0
    before = ((project_dir / "hubctl.toml").read_bytes(), (project_dir / "hubctl.lock").read_bytes())
    r = cli("add", "demo-style>=2")
    assert r.exit_code == 1
    assert "demo-style>=2 needs family demo-sd2; you asked for demo-sd<2 (demo-sd1)" in r.stderr
    assert ((project_dir / "hubctl.toml").read_bytes(), (project_dir / "hubctl.lock").read_bytes()) == before


def test_demo_sd_alone_never_locks_the_pre_release_without_pre(cli, project_dir):
    assert cli("add", "demo-sd").exit_code == 0
    assert _locked(project_dir) == {"demo-sd": ("2.0", "demo-sd2")}
    assert cli("lock", "--pre").exit_code == 0
    assert _locked(project_dir) == {"demo-sd": ("2.0", "demo-sd2")}  # pins are kept unless upgraded
    assert cli("lock", "--pre", "--upgrade-package", "demo-sd").exit_code == 0
    assert _locked(project_dir) == {"demo-sd": ("2.1b1", "demo-sd2")}
    assert 'pre = true' in (project_dir / "hubctl.lock").read_text()


def test_lock_is_byte_stable_and_check_passes_on_a_fresh_lock(cli, project_dir):
    assert cli("add", "demo-sd<2", "demo-token").exit_code == 0
    first = (project_dir / "hubctl.lock").read_bytes()
    (project_dir / "hubctl.lock").unlink()
    assert cli("lock").exit_code == 0
    assert (project_dir / "hubctl.lock").read_bytes() == first
    r = cli("lock", "--check")
    assert r.exit_code == 0 and "up to date" in r.stderr
    assert cli("lock", "--check", "--json").json()["fresh"] is True


def test_lock_check_exits_1_naming_each_artefact_when_the_project_file_changed(cli, project_dir):
    assert cli("add", "demo-sd<2", "demo-style").exit_code == 0
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd>=2", "demo-style"]\n')
    lock_before = (project_dir / "hubctl.lock").read_bytes()
    r = cli("lock", "--check")
    assert r.exit_code == 1
    assert "demo-sd: 1.4 (demo-sd1) in hubctl.lock, 2.0 (demo-sd2) for hubctl.toml" in r.stderr
    assert "demo-style: 1.0 (demo-sd1) in hubctl.lock, 2.0 (demo-sd2) for hubctl.toml" in r.stderr
    assert (project_dir / "hubctl.lock").read_bytes() == lock_before  # --check writes nothing
    j = cli("lock", "--check", "--json")
    assert j.exit_code == 1
    assert {c["package"]: (c["old"]["version"], c["new"]["version"]) for c in j.json()["changes"]} == {"demo-sd": ("1.4", "2.0"), "demo-style": ("1.0", "2.0")}


def test_lock_check_without_a_lock_exits_1(cli, project_dir):
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd"]\n')
    r = cli("lock", "--check")
    assert r.exit_code == 1 and "hubctl.lock does not exist" in r.stderr


def test_lock_keeps_existing_pins_unless_upgrade(cli, project_dir, tmp_path):
    assert cli("add", "demo-sd<2", "demo-token").exit_code == 0
    _add_version(tmp_path / "hub", "demo-sd", "checkpoint", "1.5", "demo-sd1", like="1.4")
    _add_version(tmp_path / "hub", "demo-token", "embedding", "1.1", "demo-sd1", like="1.0")
    r = cli("lock")
    assert r.exit_code == 0, r.output
    assert _locked(project_dir) == {"demo-sd": ("1.4", "demo-sd1"), "demo-token": ("1.0", "demo-sd1")}
    assert cli("lock", "--upgrade-package", "demo-token").exit_code == 0
    assert _locked(project_dir) == {"demo-sd": ("1.4", "demo-sd1"), "demo-token": ("1.1", "demo-sd1")}
    assert cli("lock", "--upgrade").exit_code == 0
    assert _locked(project_dir) == {"demo-sd": ("1.5", "demo-sd1"), "demo-token": ("1.1", "demo-sd1")}


def test_remove_edits_the_project_file_and_relocks(cli, project_dir):
    assert cli("add", "demo-sd<2", "demo-style", "demo-token").exit_code == 0
    r = cli("remove", "demo-style", "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["requires"] == ["demo-sd<2", "demo-token"]
    assert _locked(project_dir) == {"demo-sd": ("1.4", "demo-sd1"), "demo-token": ("1.0", "demo-sd1")}
    r = cli("remove", "demo-canny")
    assert r.exit_code == 2 and "'demo-canny' is not in requires" in r.stderr


def test_a_bad_requirement_is_exit_2_and_an_unknown_package_exit_1(cli, project_dir):
    r = cli("add", "demo-sd>>2")
    assert r.exit_code == 2 and "'demo-sd>>2' is not a requirement" in r.stderr
    r = cli("add", "no-such-model")
    assert r.exit_code == 1 and "no package named 'no-such-model' in the index" in r.stderr
    assert not (project_dir / "hubctl.toml").exists()


def test_a_malformed_project_file_or_lock_is_exit_2_with_one_line(cli, project_dir):
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd"\n')
    r = cli("lock")
    assert r.exit_code == 2 and "hubctl.toml: invalid TOML" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd"]\n')
    (project_dir / "hubctl.lock").write_text('lock-version = "1.0"\npackages = 3\n')
    r = cli("lock", "--check")
    assert r.exit_code == 2 and "hubctl.lock: inputs-digest: required field is missing" in r.stderr
    assert "Traceback" not in r.output


def test_without_a_project_lock_says_how_to_start_one(cli, project_dir):
    r = cli("lock")
    assert r.exit_code == 2 and "start one with `hubctl add REQ`" in r.stderr


# ------------------------------------------------------------------ scripts


def _script(path: Path, requires: list[str]) -> Path:
    reqs = ", ".join(f'"{r}"' for r in requires)
    path.write_text(f"# /// hubctl\n# requires = [{reqs}]\n# ///\nimport hubctl\nprint(hubctl.paths())\n")
    return path


def test_lock_script_writes_its_lock_beside_it_and_check_names_the_drift(cli, project_dir):
    s = _script(project_dir / "s.py", ["demo-sd==1.4", "demo-style"])
    r = cli("lock", "--script", "s.py")
    assert r.exit_code == 0, r.output
    assert _locked(project_dir, "s.py.lock") == {"demo-sd": ("1.4", "demo-sd1"), "demo-style": ("1.0", "demo-sd1")}
    assert cli("lock", "--check", "--script", "s.py").exit_code == 0
    # another copy of the script moved to 2.0; its lock came along unchanged
    _script(s, ["demo-sd==2.0", "demo-style"])
    r = cli("lock", "--check", "--script", "s.py")
    assert r.exit_code == 1
    assert "demo-sd: 1.4 (demo-sd1) in s.py.lock, 2.0 (demo-sd2) for s.py" in r.stderr
    assert "demo-style: 1.0 (demo-sd1) in s.py.lock, 2.0 (demo-sd2) for s.py" in r.stderr
    assert "hubctl lock --script s.py" in r.stderr


def test_a_script_without_a_block_is_exit_2_naming_it(cli, project_dir):
    (project_dir / "plain.py").write_text("print(1)\n")
    r = cli("lock", "--script", "plain.py")
    assert r.exit_code == 2 and "plain.py: has no '# /// hubctl' block" in r.stderr


def test_upgrade_package_naming_nothing_locked_is_bad_input(cli, project_dir):
    assert cli("add", "demo-sd<2").exit_code == 0
    r = cli("lock", "--upgrade-package", "demo-nothing")
    assert r.exit_code == 2 and "--upgrade-package demo-nothing: not in the lock or the requirements" in r.stderr


def test_removing_the_last_requirement_leaves_an_empty_lock(cli, project_dir):
    assert cli("add", "demo-token").exit_code == 0
    assert cli("remove", "demo-token").exit_code == 0
    assert _locked(project_dir) == {}
    assert cli("lock", "--check").exit_code == 0


def test_settings_change_makes_the_lock_stale_and_names_the_variant(cli, project_dir):
    assert cli("add", "demo-sd<2").exit_code == 0
    text = (project_dir / "hubctl.toml").read_text()
    (project_dir / "hubctl.toml").write_text(text + '\n[settings]\nvram = "100B"\n')
    r = cli("lock", "--check")
    assert r.exit_code == 1
    assert "no compatible set exists for it now: the smallest variants need about" in r.stderr
