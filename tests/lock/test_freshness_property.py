"""The property behind `hubctl lock --check` (issue 10, "Done when"): a lock is called fresh exactly when a fresh
`hubctl lock` would write the same bytes, over random edits of the registry (versions yanked, added, dropped;
a file's sha256, size or source corrected; variants added or reordered; tokens and requires changed), of the
project file (requirements) and of its settings (pre, dtype, vram), with and without --pre.

Two levels: the library (freshness / lock_project on real project and lock files, registry in memory: many
cases), and the CLI in-process on a registry folder of real files compiled into the real index (fewer)."""

from __future__ import annotations

import copy
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hubctl.errors import BadInput, Refused
from hubctl.resolve import MemoryIndex
from hubctl.registry.manifest import parse_manifest


def _file(name: str, size: int) -> dict[str, Any]:
    return {"path": "model.safetensors", "size": size, "sha256": hashlib.sha256(name.encode()).hexdigest(),
            "source": f"https://example.org/{name}/model.safetensors"}


def _version(ver: str, family: str, *, requires: list[str] | None = None, fp16: bool = False, yanked: bool = False) -> dict[str, Any]:
    variants = [{"name": "fp32", "dtype": "fp32", "files": [_file(f"{ver}-fp32", 2000)]}]
    if fp16:
        variants.append({"name": "fp16", "dtype": "fp16", "files": [_file(f"{ver}-fp16", 1000)]})
    d: dict[str, Any] = {"version": ver, "family": family, "variants": variants}
    if requires:
        d["requires"] = requires
    if yanked:
        d["yanked"] = True
    return d


def _registry() -> dict[str, dict[str, Any]]:
    return {
        "base": {"name": "base", "kind": "checkpoint", "versions": [
            _version("1.0", "sd1"), _version("1.5", "sd1", fp16=True), _version("2.0", "sd2", fp16=True), _version("2.1b1", "sd2")]},
        "style": {"name": "style", "kind": "lora", "versions": [
            _version("1.0", "sd1", requires=["base<2"]), _version("2.0", "sd2", requires=["base>=2"])]},
        "token": {"name": "token", "kind": "embedding", "versions": [_version("1.0", "sd1")]},
    }


# ------------------------------------------------------------------ random edits


def _pick_version(data, draw) -> dict[str, Any]:
    return draw(st.sampled_from(data["versions"]))


@st.composite
def registry_edit(draw):
    kind = draw(st.sampled_from(["yank", "unyank", "add", "drop", "sha", "size", "source", "fp16", "reorder", "tokens", "requires"]))
    name = draw(st.sampled_from(["base", "style", "token"]))
    salt = draw(st.integers(0, 3))
    return kind, name, salt


def apply_registry_edit(reg: dict[str, dict[str, Any]], edit) -> None:
    kind, name, salt = edit
    data = reg[name]
    vs = data["versions"]
    v = vs[salt % len(vs)]
    f = v["variants"][0]["files"][0]
    if kind == "yank":
        v["yanked"] = True
    elif kind == "unyank":
        v.pop("yanked", None)
    elif kind == "add":
        new = copy.deepcopy(v)
        new["version"] = f"{v['version'].split('b')[0]}.{salt + 1}"
        new.pop("yanked", None)
        if all(x["version"] != new["version"] for x in vs):
            vs.append(new)
    elif kind == "drop" and len(vs) > 1:
        vs.remove(v)
    elif kind == "sha":
        f["sha256"] = hashlib.sha256(f"{f['sha256']}{salt}".encode()).hexdigest()
    elif kind == "size":
        f["size"] += salt + 1
    elif kind == "source":
        f["source"] = f["source"].replace("example.org", f"mirror{salt}.example.org")
    elif kind == "fp16" and all(x["name"] != "fp16" for x in v["variants"]):
        v["variants"].append({"name": "fp16", "dtype": "fp16", "files": [_file(f"{name}{salt}-fp16", 900)]})
    elif kind == "reorder":
        v["variants"].reverse()
    elif kind == "tokens":
        v["tokens"] = [f"<tok{salt}>"]
    elif kind == "requires" and name == "style":
        v["requires"] = [["base<1.5"], ["base"], [], ["base>=2", "token"]][salt]


REQUIRES = ["base", "base<2", "base>=2", "base==2.1b1", "base>=1.5", "style", "style>=2", "token"]


@st.composite
def project(draw):
    reqs = draw(st.lists(st.sampled_from(REQUIRES), min_size=1, max_size=3))
    names = {r.split("<")[0].split(">")[0].split("=")[0] for r in reqs}
    reqs = [next(r for r in reqs if r.split("<")[0].split(">")[0].split("=")[0] == n) for n in sorted(names)]
    s = {}
    if draw(st.booleans()):
        s["pre"] = draw(st.booleans())
    dtype = draw(st.sampled_from([None, "fp16", "fp32"]))
    if dtype:
        s["dtype"] = dtype
    vram = draw(st.sampled_from([None, None, "100GiB", "3KB"]))
    if vram:
        s["vram"] = vram
    return reqs, s


def _write_project(d: Path, proj) -> None:
    reqs, s = proj
    doc: dict[str, Any] = {"requires": reqs}
    if s:
        doc["settings"] = s
    (d / "hubctl.toml").write_text(tomli_w.dumps(doc))


def _index(reg) -> MemoryIndex:
    return MemoryIndex([parse_manifest(copy.deepcopy(m), origin=f"<{n}>") for n, m in reg.items()])


# ------------------------------------------------------------------ library level


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    first=project(),
    pre_first=st.booleans(),
    edits=st.lists(registry_edit(), max_size=3),
    second=st.one_of(st.none(), project()),
    pre_now=st.booleans(),
)
def test_check_says_fresh_exactly_when_lock_would_write_the_same_bytes(tmp_path_factory, first, pre_first, edits, second, pre_now):
    from hubctl.lock.freshness import freshness
    from hubctl.lock.project import read_project_file
    from hubctl.lock.workflow import lock_project

    d = tmp_path_factory.mktemp("proj")
    reg = _registry()
    _write_project(d, first)
    try:
        lock_project(read_project_file(d / "hubctl.toml"), _index(reg), pre=pre_first or None)
    except (Refused, BadInput):
        assume(False)
    for e in edits:
        apply_registry_edit(reg, e)
    try:
        idx = _index(reg)
    except BadInput:
        assume(False)  # an edit that made a manifest invalid
    if second is not None:
        _write_project(d, second)
    proj = read_project_file(d / "hubctl.toml")
    lock = d / "hubctl.lock"
    before = lock.read_bytes()

    f = freshness(proj, idx, pre=pre_now or None)
    try:
        res = lock_project(proj, idx, pre=pre_now or None)
    except (Refused, BadInput):
        assert not f.fresh, "check says fresh but lock refuses"
        assert lock.read_bytes() == before
        return
    same = lock.read_bytes() == before
    assert f.fresh == same, (f.to_json(), res.written)
    assert res.written == (not same)
    if not f.fresh:
        assert f.reasons or f.changes  # a stale verdict always says why
    assert freshness(proj, idx, pre=pre_now or None).fresh  # and a relock is fresh at once


# ------------------------------------------------------------------ CLI level, real index


def _file_hub(root: Path, reg: dict[str, dict[str, Any]]) -> None:
    """The registry as a folder of manifests whose files are real, served by file:// sources."""
    (root / "manifests").mkdir(parents=True, exist_ok=True)  # families sd1 and sd2: the bundled ones
    for name, m in reg.items():
        m = copy.deepcopy(m)
        for v in m["versions"]:
            for var in v["variants"]:
                for f in var["files"]:
                    p = root / "files" / f["sha256"][:16]
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(b"x" * f["size"])
                    f["source"] = p.as_uri() if "mirror" not in f["source"] else (root / "files" / ("m" + f["sha256"][:15])).as_uri()
        d = root / "manifests" / m["kind"]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.toml").write_text(tomli_w.dumps(m))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(first=project(), edits=st.lists(registry_edit(), min_size=1, max_size=3), second=st.one_of(st.none(), project()))
def test_cli_lock_check_agrees_with_what_lock_writes(cli, monkeypatch, first, edits, second):
    from hubctl import db

    with tempfile.TemporaryDirectory(prefix="hubctl-prop-") as tmp:
        t = Path(tmp)
        monkeypatch.setenv("HUBCTL_HOME", str(t / "home"))
        db.dispose_all()
        reg = _registry()
        _file_hub(t / "hub", reg)
        assert cli("registry", "add", str(t / "hub"), "--name", "prop").exit_code == 0
        proj = t / "proj"
        proj.mkdir()
        monkeypatch.chdir(proj)
        _write_project(proj, first)
        assume(cli("lock").exit_code == 0)
        for e in edits:
            apply_registry_edit(reg, e)
        _file_hub(t / "hub", reg)
        if second is not None:
            _write_project(proj, second)
        before = (proj / "hubctl.lock").read_bytes()
        check = cli("lock", "--check")
        locked = cli("lock")
        if locked.exit_code == 2:
            assert check.exit_code == 2  # the same bad input for both
            return
        same = (proj / "hubctl.lock").read_bytes() == before
        assert (check.exit_code == 0) == (locked.exit_code == 0 and same), (check.stderr, locked.stderr)
        if locked.exit_code == 0:
            assert cli("lock", "--check").exit_code == 0
        monkeypatch.chdir(t)
        db.dispose_all()
