"""`hubctl install | list | verify | uninstall | gc` on the demo hub (real tiny diffusers files, file://
sources, the real index and resolver), driven through the CLI in-process."""

from __future__ import annotations

import os

from hubctl.store.blobs import Store


def test_install_by_name_resolves_newest_that_fits_and_reports_it(demo_registry, cli):
    r = cli("install", "demo-sd<2", "demo-style")
    assert r.exit_code == 0, r.output
    assert "installed demo-sd 1.4 (fp32, demo-sd1 checkpoint)" in r.stderr
    assert "installed demo-style 1.0" in r.stderr
    listed = {p["name"]: p for p in cli("list", "--json").json()}
    assert listed["demo-sd"]["version"] == "1.4" and listed["demo-style"]["version"] == "1.0"
    assert listed["demo-sd"]["files"] > 5
    again = cli("install", "demo-sd<2", "demo-style", "--json")
    assert again.exit_code == 0
    data = again.json()
    assert {p["status"] for p in data["packages"]} == {"unchanged"} and data["downloaded_bytes"] == 0


def test_a_new_adapter_fits_what_is_installed(demo_registry, cli):
    assert cli("install", "demo-sd==2.0").exit_code == 0
    r = cli("install", "demo-style", "--json")
    assert r.exit_code == 0, r.output
    (pkg,) = r.json()["packages"]
    assert (pkg["name"], pkg["version"], pkg["family"]) == ("demo-style", "2.0", "demo-sd2")


def test_an_adapter_that_cannot_fit_the_installed_base_is_refused_with_the_reason(demo_registry, cli):
    assert cli("install", "demo-sd==2.0").exit_code == 0
    r = cli("install", "demo-token")
    assert r.exit_code == 1
    assert "demo-sd 2.0" in r.stderr and "installed packages are kept" in r.stderr
    assert [p["name"] for p in cli("list", "--json").json()] == ["demo-sd"]


def test_family_option_picks_the_newest_version_of_that_family(demo_registry, cli):
    r = cli("install", "demo-sd", "--family", "demo-sd1", "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["packages"][0]["version"] == "1.4"
    r = cli("install", "demo-token", "--family", "demo-sd2")
    assert r.exit_code == 1 and "demo-token has no version of family demo-sd2" in r.stderr


def test_an_unknown_package_exits_1_with_a_suggestion_as_info_does(demo_registry, cli):
    r = cli("install", "no-such-thing")
    assert r.exit_code == 1 and "no package named 'no-such-thing' in the index" in r.stderr
    r = cli("install", "demo_styl")
    assert r.exit_code == 1 and "did you mean: demo-style" in r.stderr


def test_verify_is_quiet_when_good_and_names_each_bad_file_with_exit_1(demo_registry, cli):
    assert cli("install", "demo-style==1.0", "demo-sd==1.4").exit_code == 0
    r = cli("verify")
    assert r.exit_code == 0 and r.stderr.startswith("ok: ")
    j = cli("verify", "--full", "--json").json()
    assert j["ok"] and j["rehashed"] > 0
    from hubctl.store.installed import installed_paths

    blob = installed_paths("demo-style")["demo-style-1.0.safetensors"]
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    r = cli("verify")
    assert r.exit_code == 1
    bad = [line for line in r.stderr.splitlines() if line.startswith("bad:")]
    assert len(bad) == 1 and "demo-style 1.0: demo-style-1.0.safetensors: content changed" in bad[0]
    assert "1 file differ" in r.stderr
    j = cli("verify", "--json")
    assert j.exit_code == 1 and j.json()["problems"][0]["package"] == "demo-style"
    # installing again repairs it
    assert cli("install", "demo-style==1.0").exit_code == 0
    assert cli("verify").exit_code == 0


def test_uninstall_then_gc_frees_the_blobs(demo_registry, cli):
    assert cli("install", "demo-token").exit_code == 0
    blobs = list(Store().iter_blobs())
    assert len(blobs) == 1
    r = cli("uninstall", "demo-token", "ghost")
    assert r.exit_code == 0 and "ghost is not installed" in r.stderr and "uninstalled demo-token" in r.stderr
    dry = cli("gc", "--dry-run", "--json").json()
    assert dry["removed"] == [blobs[0][0]] and Store().has_blob(blobs[0][0])
    r = cli("gc")
    assert r.exit_code == 0 and "removed 1 blob" in r.stderr
    assert list(Store().iter_blobs()) == []
    assert cli("list").stderr.startswith("nothing installed")


def test_verify_also_checks_the_project_lock_and_names_files_not_synced(demo_registry, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("add", "demo-token").exit_code == 0  # writes hubctl.toml and hubctl.lock, installs nothing
    r = cli("verify")
    assert r.exit_code == 1
    assert "demo-token 1.0: learned_embeds.safetensors: missing from the store" in r.stderr
    assert cli("sync").exit_code == 0
    r = cli("verify")
    assert r.exit_code == 0 and "including hubctl.lock" in r.stderr
