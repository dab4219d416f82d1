"""Hostile input at `hubctl export` (issue 17 items 1, 3, 8 and 17): export never creates, changes or deletes
anything outside its folder, never writes through a symlink it did not make, and trusts its own
``.hubctl-export.json`` only for links inside the folder that it can prove it made (a link to the store's blob).
Package names, families and file paths reach export from installed records, that is from locks and
manifests other people wrote; export must be safe on its own, whatever the lock reader lets through, so
these tests hand it hostile packages directly. Real store, real files, real links; a fake HOME under tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from hubctl.errors import BadInput
from hubctl.lock.lockfile import LockedFile, LockedPackage
from hubctl.sources.fetch import install_packages
from hubctl.store.blobs import Store
from hubctl.store.views import MANIFEST_NAME, export

KEY = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIattacker attacker@evil\n"
LORA = b"lora-bytes" * 40


def _file(tmp_path: Path, rel: str, data: bytes) -> LockedFile:
    p = tmp_path / "src" / hashlib.sha256(data).hexdigest()[:8] / Path(rel).name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return LockedFile(path=rel, url=p.as_uri(), size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _pkg(name: str, files: list[LockedFile], *, kind: str = "lora", family: str = "sd1", layout: str | None = None) -> LockedPackage:
    return LockedPackage(name, "1.0", kind, family, "fp16", tuple(files), layout=layout)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME with an ~/.ssh folder, as on a real machine."""
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(h))
    return h


@pytest.fixture
def blobs(tmp_path: Path) -> dict[str, LockedFile]:
    """The attacker's key and a LoRA in the store (as `sync` of their lock would have put them)."""
    key = _file(tmp_path, "authorized_keys", KEY)
    lora = _file(tmp_path, "style.safetensors", LORA)
    install_packages([_pkg("carrier", [key]), _pkg("style", [lora])], progress=False)
    return {"key": key, "lora": lora}


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _with_path(f: LockedFile, path: str) -> LockedFile:
    return LockedFile(path=path, url=f.url, size=f.size, sha256=f.sha256)


# ------------------------------------------------------------------------------------------ item 1: names


def _hostile_packages(home: Path, key: LockedFile) -> dict[str, tuple[str, LockedPackage]]:
    ssh = home / ".ssh"
    return {
        "absolute-name": ("diffusers", _pkg(str(ssh), [_with_path(key, "authorized_keys")])),
        "empty-name": ("diffusers", _pkg("", [_with_path(key, str(ssh / "authorized_keys").lstrip("/"))])),
        "dotdot-name": ("a1111", _pkg("../../../../.ssh/authorized_keys", [_with_path(key, "k.safetensors")])),
        "dotdot-path": ("diffusers", _pkg("x", [_with_path(key, "../../../.ssh/authorized_keys")])),
        "absolute-path": ("diffusers", _pkg("x", [_with_path(key, "/" + str(ssh / "authorized_keys").lstrip("/"))])),
        "dotdot-family": ("invokeai", _pkg("k", [_with_path(key, "k.safetensors")], family="../../../.ssh")),
    }


@pytest.mark.parametrize("case", ["absolute-name", "empty-name", "dotdot-name", "dotdot-path", "absolute-path", "dotdot-family"])
def test_a_hostile_package_name_family_or_path_cannot_make_export_write_outside_its_folder(
    home: Path, blobs: dict[str, LockedFile], tmp_path: Path, case: str
) -> None:
    layout, pkg = _hostile_packages(home, blobs["key"])[case]
    root = tmp_path / "export"
    if case in ("dotdot-name", "dotdot-path", "dotdot-family"):
        root = home / "a" / "b"  # `..` from here lands in HOME
    before = _files_under(home)
    with pytest.raises(BadInput) as ei:
        export(layout, root, [pkg, _pkg("style", [blobs["lora"]])])
    assert not (home / ".ssh" / "authorized_keys").exists()
    assert "outside" in str(ei.value) or "not a safe" in str(ei.value)
    assert _files_under(home) == before  # nothing created, even inside the export folder: checked before any write


def test_export_of_an_installed_record_with_an_absolute_name_is_one_line_with_exit_2(home: Path, blobs, cli, tmp_path: Path) -> None:
    from hubctl.store.installed import record_installed

    record_installed([_pkg(str(home), [_with_path(blobs["key"], ".ssh/authorized_keys")])])
    r = cli("export", "--layout", "diffusers", str(tmp_path / "view"))
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1
    assert not (home / ".ssh" / "authorized_keys").exists()
    assert not (tmp_path / "view").exists()


@pytest.mark.parametrize("path", ["a\x00b.safetensors", "x" * 5000 + ".safetensors", "d/" * 2100 + "f.safetensors", "a\nb.safetensors"],
                         ids=["nul-byte", "5000-char-name", "4200-char-path", "newline"])
def test_a_nul_byte_newline_or_overlong_path_at_export_is_bad_input_and_nothing_is_written(blobs, cli, tmp_path: Path, path: str) -> None:
    from hubctl.store.installed import record_installed

    record_installed([_pkg("weird", [_with_path(blobs["lora"], path)], kind="checkpoint", layout="diffusers")])
    root = tmp_path / "view"
    r = cli("export", "--layout", "diffusers", str(root))
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1
    assert "weird" in r.stderr
    assert not root.exists()


# ------------------------------------------------------------------------------------------ symlinks inside the folder


def test_export_never_writes_through_a_symlink_it_did_not_make(home: Path, blobs, tmp_path: Path) -> None:
    root = tmp_path / "webui"
    root.mkdir()
    (root / "models").symlink_to(home / ".ssh")  # planted: models/ -> ~/.ssh
    rep = export("a1111", root, [_pkg("style", [blobs["lora"]])])
    assert os.listdir(home / ".ssh") == []
    assert rep.created == []
    assert any("symlink" in s and "models" in s for s in rep.skipped)


def test_export_never_replaces_a_planted_symlink_at_a_link_path(home: Path, blobs, tmp_path: Path) -> None:
    root = tmp_path / "webui"
    (root / "models" / "Lora").mkdir(parents=True)
    target = home / ".ssh" / "authorized_keys"
    target.write_bytes(b"my real keys\n")
    link = root / "models" / "Lora" / "style.safetensors"
    link.symlink_to(target)
    export("a1111", root, [_pkg("style", [blobs["lora"]])])
    assert target.read_bytes() == b"my real keys\n" and link.is_symlink()


# ------------------------------------------------------------------------------------------ item 3: the record


def _plant(root: Path, files: dict[str, dict], dirs: list[str] | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).write_text(json.dumps({"version": 1, "layout": "a1111", "files": files, "dirs": dirs or []}))


def _by_inode(p: Path, sha: str = "0" * 64) -> dict:
    st = os.lstat(p)
    return {"link": "hardlink", "inode": st.st_ino, "device": st.st_dev, "sha256": sha}


def test_a_planted_record_cannot_delete_a_file_outside_the_folder(blobs, tmp_path: Path) -> None:
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("four years of work")
    root = tmp_path / "view"
    _plant(root, {"../thesis.txt": _by_inode(thesis), str(thesis): _by_inode(thesis)})
    rep = export("a1111", root, [_pkg("style", [blobs["lora"]])])
    assert thesis.read_text() == "four years of work"
    assert rep.removed == []


def test_a_planted_record_cannot_delete_the_users_own_file_inside_the_folder(blobs, tmp_path: Path) -> None:
    root = tmp_path / "view"
    mine = root / "models" / "Lora" / "mine.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own lora")
    wanted = root / "models" / "Lora" / "style.safetensors"
    wanted.write_bytes(b"my own file where the view wants its link")
    _plant(root, {"models/Lora/mine.safetensors": _by_inode(mine, blobs["lora"].sha256),
                  "models/Lora/style.safetensors": _by_inode(wanted, blobs["lora"].sha256)})
    rep = export("a1111", root, [_pkg("style", [blobs["lora"]])])
    assert mine.read_bytes() == b"my own lora"
    assert wanted.read_bytes() == b"my own file where the view wants its link"
    assert rep.removed == [] and rep.replaced == []


def test_a_planted_record_cannot_remove_a_symlink_that_is_not_a_link_into_the_store(blobs, tmp_path: Path) -> None:
    root = tmp_path / "view"
    root.mkdir()
    outside = tmp_path / "notes.txt"
    outside.write_text("notes")
    (root / "notes").symlink_to(outside)
    _plant(root, {"notes": {"link": "symlink", "target": str(outside), "sha256": blobs["lora"].sha256}})
    export("a1111", root, [])
    assert (root / "notes").is_symlink() and outside.read_text() == "notes"


def test_a_planted_record_cannot_remove_folders_outside_the_folder(blobs, tmp_path: Path) -> None:
    empty = tmp_path / "keep-me"
    empty.mkdir()
    root = tmp_path / "view"
    _plant(root, {}, dirs=["../keep-me", str(empty)])
    export("a1111", root, [])
    assert empty.is_dir()


def test_export_still_removes_its_own_links_when_a_package_goes(blobs, tmp_path: Path) -> None:
    root = tmp_path / "view"
    style = _pkg("style", [blobs["lora"]])
    assert export("a1111", root, [style]).created == ["models/Lora/style.safetensors"]
    rep = export("a1111", root, [])
    assert rep.removed == ["models/Lora/style.safetensors"]
    assert not (root / "models").exists()
    assert Store().blob_path(blobs["lora"].sha256).read_bytes() == LORA  # the blob stays


# ------------------------------------------------------------------------------------------ item 17: ComfyUI


@pytest.mark.parametrize("given", ["root", "models"])
def test_comfyui_export_accepts_the_comfyui_root_or_its_models_folder(blobs, cli, tmp_path: Path, given: str) -> None:
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "loras").mkdir(parents=True)
    (comfy / "main.py").write_text("# ComfyUI\n")
    target = comfy if given == "root" else comfy / "models"
    from hubctl.store.installed import record_installed

    record_installed([_pkg("style", [blobs["lora"]])])
    r = cli("export", "--layout", "comfyui", str(target))
    assert r.exit_code == 0, r.output
    assert (comfy / "models" / "loras" / "style.safetensors").read_bytes() == LORA
    assert not (comfy / "models" / "models").exists()
    again = cli("export", "--layout", "comfyui", str(target), "--json")
    assert again.json()["created"] == [] and len(again.json()["kept"]) == 1
