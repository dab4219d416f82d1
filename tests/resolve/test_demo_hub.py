"""The demo walk of issue 5 (item 6) on the real demo hub (tiny real diffusers models, built once per
session by tests/fixtures/demo.py), through the CLI and the real index."""

from __future__ import annotations

import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.slow


@pytest.fixture
def proj(tmp_path, monkeypatch, demo_registry):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _locked(d) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads((d / "hubctl.lock").read_text())["packages"]}


def test_demo_walk_on_the_demo_hub(cli, proj, hubctl_home):
    r = cli("add", "demo-sd<2", "demo-style")
    assert r.exit_code == 0, r.output
    assert _locked(proj) == {"demo-sd": "1.4", "demo-style": "1.0"}

    r = cli("add", "demo-style>=2")
    assert r.exit_code == 1
    assert "demo-style>=2 needs family demo-sd2; you asked for demo-sd<2 (demo-sd1)" in r.stderr
    assert _locked(proj) == {"demo-sd": "1.4", "demo-style": "1.0"}  # nothing written

    r = cli("add", "demo-sd>=2", "demo-style")
    assert r.exit_code == 0, r.output
    assert _locked(proj) == {"demo-sd": "2.0", "demo-style": "2.0"}

    r = cli("remove", "demo-style")
    assert r.exit_code == 0 and cli("add", "demo-sd").exit_code == 0
    assert _locked(proj) == {"demo-sd": "2.0"}  # never the pre-release 2.1b1 without --pre
    r = cli("lock", "--upgrade", "--pre")
    assert r.exit_code == 0 and _locked(proj) == {"demo-sd": "2.1b1"}


def test_sync_then_lock_check_on_the_demo_hub(cli, proj, hubctl_home, demo_hub):
    assert cli("add", "demo-sd<2", "demo-style", "demo-token").exit_code == 0
    r = cli("sync", "--json")
    assert r.exit_code == 0, r.output
    lock = tomllib.loads((proj / "hubctl.lock").read_text())
    shas = {f["hashes"]["sha256"] for p in lock["packages"] for f in p["files"]}
    stored = {p.name for p in (hubctl_home / "store" / "sha256").rglob("*") if p.is_file()}
    assert stored == shas  # exactly the lock, nothing else
    assert cli("lock", "--check").exit_code == 0
