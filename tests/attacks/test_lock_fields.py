"""A hand-edited hubctl.lock is input like any other: a package name, family, variant, file path, url, kind,
layout or requirement a manifest would refuse is refused in a lock too, by the same rules (issue 17 items 1
and 12): one line naming the lock file and the field, exit 2, before anything is fetched, written or run.
Each case: a real lock made by `hubctl add` on a registry of real files, one field edited, then `sync`,
`lock --check` and `generate` (the readers a user meets first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hubctl.tomlcompat import tomllib
from tests._hubs import project_dir  # noqa: F401 (fixture)

# (id, where in packages[0], hostile value, the field path the message must name)
ATTACKS: list[tuple[str, tuple[Any, ...], Any, str]] = [
    ("name-empty", ("name",), "", "packages[0].name"),
    ("name-absolute", ("name",), "/x/y", "packages[0].name"),
    ("name-dotdot", ("name",), "../../.ssh", "packages[0].name"),
    ("name-newline", ("name",), "demo-token\nx", "packages[0].name"),
    ("name-not-normalised", ("name",), "Demo_Token", "packages[0].name"),
    ("family-empty", ("family",), "", "packages[0].family"),
    ("family-path", ("family",), "../../etc", "packages[0].family"),
    ("family-unknown", ("family",), "no-such-family", "packages[0].family"),
    ("variant-slash", ("variant",), "a/b", "packages[0].variant"),
    ("variant-dotdot", ("variant",), "..", "packages[0].variant"),
    ("kind-unknown", ("kind",), "script", "packages[0].kind"),
    ("layout-path", ("layout",), "../x", "packages[0].layout"),
    ("prediction-unknown", ("prediction",), "x-prediction", "packages[0].prediction"),
    ("path-dotdot", ("files", 0, "path"), "../../authorized_keys", "packages[0].files[0].path"),
    ("path-absolute", ("files", 0, "path"), "/home/u/.ssh/authorized_keys", "packages[0].files[0].path"),
    ("path-drive", ("files", 0, "path"), "C:/Windows/x", "packages[0].files[0].path"),
    ("path-backslash", ("files", 0, "path"), "a\\..\\b", "packages[0].files[0].path"),
    ("path-nul", ("files", 0, "path"), "a\x00b", "packages[0].files[0].path"),
    ("path-newline", ("files", 0, "path"), "a\nb.safetensors", "packages[0].files[0].path"),
    ("path-dot-segment", ("files", 0, "path"), "./a", "packages[0].files[0].path"),
    ("path-empty-segment", ("files", 0, "path"), "a//b", "packages[0].files[0].path"),
    ("path-too-long", ("files", 0, "path"), "x" * 300, "packages[0].files[0].path"),
    ("url-newline", ("files", 0, "url"), "https://example.org/a\r\nHost: evil", "packages[0].files[0].url"),
    ("url-relative-path", ("files", 0, "url"), "files/learned_embeds.safetensors", "packages[0].files[0].url"),
    ("requires-marker", ("requires",), ["demo-sd; python_version > '3'"], "packages[0].requires[0]"),
    ("requires-extra", ("requires",), ["demo-sd[x]"], "packages[0].requires[0]"),
]


def _edit(lock: Path, where: tuple[Any, ...], value: Any) -> None:
    data = tomllib.loads(lock.read_text())
    node: Any = data["packages"][0]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    lock.write_text(tomli_w.dumps(data))


def _store_is_empty(home: Path) -> bool:
    root = home / "store" / "sha256"
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


@pytest.mark.parametrize("case", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_a_hostile_lock_field_is_refused_with_one_line_naming_the_lock_and_field(cli, project_dir, hubctl_home, case):
    _, where, value, field = case
    assert cli("add", "demo-token").exit_code == 0
    lock = project_dir / "hubctl.lock"
    _edit(lock, where, value)
    hostile = lock.read_bytes()
    for args in (("sync",), ("lock", "--check"), ("generate", "--prompt", "x", "--device", "cpu")):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (args, r.stderr)
        assert "hubctl.lock" in lines[0] and f"{field}:" in lines[0], (args, lines[0])
        assert "Traceback" not in r.output
    assert lock.read_bytes() == hostile  # nothing rewrote the lock
    assert _store_is_empty(hubctl_home)  # nothing was fetched
