"""`hubctl sync` and `hubctl run` in-process: the store holds exactly the lock, every hash checked; a lock
edited by hand fails without touching the store; a script and its lock that disagree stop before anything
runs. Real files, file:// sources, the real store and index."""

from __future__ import annotations

import json
from pathlib import Path


from hubctl.tomlcompat import tomllib
from tests._hubs import project_dir  # noqa: F401 (fixture)


def _store_blobs(home: Path) -> set[str]:
    root = home / "store" / "sha256"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _lock_shas(path: Path) -> set[str]:
    data = tomllib.loads(path.read_text())
    return {f["hashes"]["sha256"] for p in data["packages"] for f in p["files"]}


def test_sync_puts_exactly_the_locked_files_in_the_store(cli, project_dir, hubctl_home):
    assert cli("add", "demo-sd<2", "demo-style").exit_code == 0
    assert _store_blobs(hubctl_home) == set()  # add only locks
    r = cli("sync", "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["packages"] == 2
    assert _store_blobs(hubctl_home) == _lock_shas(project_dir / "hubctl.lock")
    r = cli("sync")
    assert r.exit_code == 0 and "every hash checked" in r.stderr


def test_sync_relocks_a_stale_lock_unless_locked(cli, project_dir, hubctl_home):
    assert cli("add", "demo-sd<2").exit_code == 0
    (project_dir / "hubctl.toml").write_text('requires = ["demo-sd>=2"]\n')
    r = cli("sync", "--locked")
    assert r.exit_code == 1 and "demo-sd: 1.4 (demo-sd1) in hubctl.lock, 2.0 (demo-sd2) for hubctl.toml" in r.stderr
    assert _store_blobs(hubctl_home) == set()
    r = cli("sync")
    assert r.exit_code == 0, r.output
    assert "~ demo-sd 1.4 (demo-sd1) -> 2.0 (demo-sd2)" in r.stderr
    assert _store_blobs(hubctl_home) == _lock_shas(project_dir / "hubctl.lock")


def _tamper(lock: Path, package: str) -> str:
    """Change one sha256 of ``package`` in the lock text, keeping it well-formed; return the new hash."""
    text = lock.read_text()
    start = text.index(f'name = "{package}"')
    i = text.index("sha256 = \"", start) + len('sha256 = "')
    old = text[i : i + 64]
    new = ("0" if old[0] != "0" else "1") + old[1:]
    lock.write_text(text[:i] + new + text[i + 64 :])
    return new


def test_a_hand_edited_hash_fails_sync_and_leaves_the_store_untouched(cli, project_dir, hubctl_home):
    assert cli("add", "demo-sd<2").exit_code == 0
    assert cli("sync").exit_code == 0
    before = _store_blobs(hubctl_home)
    assert cli("add", "demo-token").exit_code == 0
    new = _tamper(project_dir / "hubctl.lock", "demo-token")
    r = cli("sync", "--locked")
    assert r.exit_code == 1
    assert "demo-token 1.0 learned_embeds.safetensors: the registry says sha256" in r.stderr
    assert f"(hubctl.lock has {new[:12]}…)" in r.stderr
    assert _store_blobs(hubctl_home) == before


def test_a_wrong_hash_the_registry_cannot_vouch_for_is_caught_by_the_bytes(cli, project_dir, hubctl_home, tmp_path):
    import tomli_w

    f = tmp_path / "hub" / "registry" / "manifests" / "embedding" / "demo-token.toml"
    data = tomllib.loads(f.read_text())
    for v in data["versions"]:
        for var in v["variants"]:
            for ref in var["files"]:
                del ref["sha256"]  # the registry states no hash: only the bytes can tell
    f.write_text(tomli_w.dumps(data))
    assert cli("add", "demo-token").exit_code == 0  # pinning learns the sha256 from the bytes
    before = _store_blobs(hubctl_home)
    _tamper(project_dir / "hubctl.lock", "demo-token")
    assert cli("lock", "--check").exit_code == 0  # nothing to compare the lock's hash with
    r = cli("sync", "--locked")
    assert r.exit_code == 3, r.output  # the bytes arrived, their sha256 is not the locked one: rejected
    assert "sha256" in r.stderr
    assert _store_blobs(hubctl_home) == before


# ------------------------------------------------------------------ run


def _script(path: Path, requires: list[str]) -> Path:
    reqs = ", ".join(f'"{r}"' for r in requires)
    path.write_text(
        f"# /// hubctl\n# requires = [{reqs}]\n# ///\n"
        "import json, os, sys\nimport hubctl\n"
        "files = {p: {k: str(v) for k, v in fs.items()} for p, fs in hubctl.paths().items()}\n"
        "open(sys.argv[1], 'w').write(json.dumps({'files': files, 'args': sys.argv[2:], 'lock': os.environ['HUBCTL_LOCK']}))\n"
        "sys.exit(int(os.environ.get('EXIT', '0')))\n"
    )
    return path


def test_run_locks_syncs_and_gives_the_script_its_verified_files(cli, project_dir, hubctl_home):
    s = _script(project_dir / "s.py", ["demo-sd<2", "demo-style"])
    out = project_dir / "out.json"
    r = cli("run", "s.py", str(out), "--flag", "x")
    assert r.exit_code == 0, r.output
    assert (project_dir / "s.py.lock").exists()
    got = json.loads(out.read_text())
    assert got["args"] == ["--flag", "x"] and got["lock"] == str(project_dir / "s.py.lock")
    assert set(got["files"]) == {"demo-sd", "demo-style"}
    f = Path(got["files"]["demo-style"]["demo-style.safetensors"])
    assert f.is_file() and f.is_relative_to(hubctl_home / "store")
    src = next((project_dir.parent / "hub" / "files" / "demo-style" / "1.0").glob("*.safetensors"))
    assert f.read_bytes() == src.read_bytes()


def test_run_passes_the_script_exit_code_through(cli, project_dir):
    _script(project_dir / "s.py", ["demo-token"])
    r = cli("run", "s.py", str(project_dir / "o.json"), env={"EXIT": "7"})
    assert r.exit_code == 7


def test_run_refuses_before_anything_runs_when_script_and_lock_disagree(cli, project_dir, hubctl_home):
    s = _script(project_dir / "s.py", ["demo-sd==1.4", "demo-style"])
    assert cli("lock", "--script", "s.py").exit_code == 0
    _script(s, ["demo-sd==2.0", "demo-style"])  # the other copy of the script
    out = project_dir / "out.json"
    r = cli("run", "s.py", str(out))
    assert r.exit_code == 1
    assert "demo-sd: 1.4 (demo-sd1) in s.py.lock, 2.0 (demo-sd2) for s.py" in r.stderr
    assert "demo-style: 1.0 (demo-sd1) in s.py.lock, 2.0 (demo-sd2) for s.py" in r.stderr
    assert not out.exists() and _store_blobs(hubctl_home) == set()


def test_run_with_a_malformed_inline_block_is_exit_2(cli, project_dir):
    (project_dir / "s.py").write_text("# /// hubctl\n# requires = [\n# ///\n")
    r = cli("run", "s.py")
    assert r.exit_code == 2 and "s.py: the '# /// hubctl' block at line 1 is not valid TOML" in r.stderr
