"""`hubctl runs export DIR`: the gallery as static files (index.html, the PNGs with their chunks, runs.json),
written whole or not at all; a folder that is not an earlier export is refused. In-process CLI on the shared
server's home (its runs are real)."""

from __future__ import annotations

import hashlib
import json

import pytest

pytestmark = pytest.mark.slow


def test_export_writes_every_run_with_its_pngs_and_provenance(served, cli, tmp_path, monkeypatch):
    res = served.post("/v1/generate", {"prompt": "export me", "seed": 8, "steps": 1, "images": 2}).json()
    monkeypatch.setenv("HUBCTL_HOME", str(served.home))
    dest = tmp_path / "out" / "gallery"
    r = cli("runs", "export", str(dest))
    assert r.exit_code == 0, r.output
    assert "runs" in r.stdout and (dest / "index.html").is_file()
    runs = json.loads((dest / "runs.json").read_text())
    mine = next(x for x in runs if x["id"] == res["run_id"])
    assert [im["url"] for im in mine["images"]] == [f"images/{res['run_id']}-0.png", f"images/{res['run_id']}-1.png"]
    for k, im in enumerate(mine["images"]):
        data = (dest / im["url"]).read_bytes()
        assert data == served.get(res["images"][k]["url"]).content
        assert im["image_sha256"] == res["images"][k]["image_sha256"]
    assert {p["name"] for p in mine["packages"]} == {"demo-sd", "demo-style", "demo-token"}
    again = cli("runs", "export", str(dest), "--json")  # an earlier export is replaced
    assert again.exit_code == 0 and again.json()["runs"] >= 1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["gallery"], "nothing left beside it"


def test_export_refuses_a_folder_that_is_not_an_earlier_export(cli, tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "thesis.txt").write_text("keep me")
    r = cli("runs", "export", str(dest))
    assert r.exit_code == 2 and "not a hubctl gallery export" in r.stderr
    assert (dest / "thesis.txt").read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_export_skips_an_image_changed_since_it_was_recorded(served, cli, tmp_path, monkeypatch):
    res = served.post("/v1/generate", {"prompt": "to be changed", "seed": 9, "steps": 1}).json()
    png = served.out_dir / f"{res['run_id']}-0.png"
    original = png.read_bytes()
    try:
        png.write_bytes(original + b"tampered")
        monkeypatch.setenv("HUBCTL_HOME", str(served.home))
        r = cli("runs", "export", str(tmp_path / "g"), "--json")
        assert r.exit_code == 0
        assert any(res["run_id"] in s and "changed" in s for s in r.json()["skipped"])
        assert not (tmp_path / "g" / "images" / f"{res['run_id']}-0.png").exists()
        assert served.get(res["images"][0]["url"]).status_code == 410, "the server will not serve it either"
    finally:
        png.write_bytes(original)
    assert hashlib.sha256(served.get(res["images"][0]["url"]).content).hexdigest() == hashlib.sha256(original).hexdigest()
