"""Files the user owns honour the umask (issue 17 item 19): `hubctl.toml`, `hubctl.lock`, `S.py.lock`, PNGs and
the export record come out as a plain ``open(path, "w")`` would make them (0644 under umask 022, 0664 under
002, 0600 under 077), not always 0600 as ``mkstemp`` leaves them. Real files; the process umask is set for
the test and restored."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=["umask-022", "umask-002", "umask-077"])
def umask(request: pytest.FixtureRequest) -> int:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_project_file_and_lock_honour_the_umask(cli, demo_registry, tmp_path: Path, monkeypatch, umask: int) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli("add", "demo-token")
    assert r.exit_code == 0, r.output
    assert _mode(tmp_path / "hubctl.toml") == 0o666 & ~umask
    assert _mode(tmp_path / "hubctl.lock") == 0o666 & ~umask


def test_a_script_lock_honours_the_umask(cli, demo_registry, tmp_path: Path, umask: int) -> None:
    script = tmp_path / "s.py"
    script.write_text('# /// hubctl\n# requires = ["demo-token"]\n# ///\nprint("hi")\n')
    r = cli("lock", "--script", str(script))
    assert r.exit_code == 0, r.output
    assert _mode(tmp_path / "s.py.lock") == 0o666 & ~umask


def test_a_png_honours_the_umask(tmp_path: Path, umask: int) -> None:
    from PIL import Image

    from hubctl.run.pngmeta import write_png

    out = tmp_path / "img.png"
    write_png(out, Image.new("RGB", (8, 8)), "a prompt", {"run": "x"})
    assert _mode(out) == 0o666 & ~umask


def test_the_export_record_honours_the_umask(tmp_path: Path, umask: int) -> None:
    from hubctl.store.views import MANIFEST_NAME, export

    export("a1111", tmp_path / "view", [])
    assert _mode(tmp_path / "view" / MANIFEST_NAME) == 0o666 & ~umask

