"""The lockfile: TOML read/write (byte-stable, PEP 751 vocabulary), the inputs digest, pinning a
resolution, comparing locks, and one-line errors for a lock that does not parse or validate."""

from __future__ import annotations

import sys

import pytest

from hubctl.errors import BadInput
from hubctl.lock.lockfile import (
    Lock,
    LockedFile,
    LockedPackage,
    dumps_lock,
    inputs_digest,
    loads_lock,
    read_lock,
    write_lock,
)
from hubctl.lock.pin import pin
from hubctl.lock.diff import diff_packages, format_change
from hubctl.resolve import MemoryIndex, resolve
from tests._asserts import bad_input_line
from tests._hubs import demo_index, fake_sha, manifest, version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _lock_of(reqs, index=None, **kw) -> Lock:
    idx = index or demo_index()
    res = resolve(reqs, idx, **kw)
    return Lock(packages=pin(res), requires=res.requirements, inputs_digest=inputs_digest(reqs, pre=kw.get("pre", False)))


def test_lock_text_uses_pep751_words_and_round_trips():
    lock = _lock_of(["demo-sd<2", "demo-style"])
    text = dumps_lock(lock)
    data = tomllib.loads(text)
    assert data["lock-version"] == "1.0" and data["created-by"] == "hubctl"
    assert data["inputs-digest"].startswith("sha256:")
    assert [p["name"] for p in data["packages"]] == ["demo-sd", "demo-style"]
    f = data["packages"][0]["files"][0]
    assert set(f) == {"path", "url", "size", "hashes"} and len(f["hashes"]["sha256"]) == 64
    again = loads_lock(text)
    assert again == lock
    assert dumps_lock(again) == text


def test_same_inputs_give_the_same_bytes(tmp_path):
    a = dumps_lock(_lock_of(["demo-style", "demo-sd<2"]))
    b = dumps_lock(_lock_of(["demo-sd <2", "Demo_Style"]))
    assert a == b
    p = tmp_path / "hubctl.lock"
    assert write_lock(p, loads_lock(a)) is True
    mtime = p.stat().st_mtime_ns
    assert write_lock(p, loads_lock(a)) is False  # unchanged bytes: the file is not rewritten
    assert p.stat().st_mtime_ns == mtime and p.read_text() == a


def test_inputs_digest_ignores_spelling_but_not_meaning():
    base = inputs_digest(["demo-sd<2", "demo-style"], dtype="fp16", vram="10GiB")
    assert inputs_digest(["Demo_Style", "demo-sd < 2"], dtype="FP16", vram="10 GiB") == base
    assert inputs_digest(["demo-sd<2", "demo-style", "demo-style"], dtype="fp16", vram=10 * 1024**3) == base
    assert inputs_digest(["demo-sd<=2", "demo-style"], dtype="fp16", vram="10GiB") != base
    assert inputs_digest(["demo-sd<2", "demo-style"], dtype="fp32", vram="10GiB") != base
    assert inputs_digest(["demo-sd<2", "demo-style"], dtype="fp16", vram="12GiB") != base
    assert inputs_digest(["demo-sd<2", "demo-style"], dtype="fp16", vram="10GiB", pre=True) != base


def test_hf_files_are_written_with_commit_and_requested_revision():
    lf = LockedFile("unet/model.safetensors", f"hf://org/repo@{COMMIT}/unet/model.safetensors", 10, fake_sha("x"), "main")
    pkg = LockedPackage("demo-sd", "1.4", "checkpoint", "demo-sd1", "fp16", (lf,), prediction="epsilon")
    text = dumps_lock(Lock(packages=[pkg], requires=["demo-sd"], inputs_digest=inputs_digest(["demo-sd"])))
    assert f'requested-revision = "main"\ncommit-id = "{COMMIT}"' in text
    assert loads_lock(text).packages[0].files[0] == lf


# ------------------------------------------------------------------ pinning


def test_pin_needs_no_network_for_fully_pinned_manifest_files():
    def no_network(ref):  # a seam, not a mock: pin must not ask the source at all here
        raise AssertionError(f"asked the network for {ref.path}")

    pkgs = pin(resolve(["demo-sd<2", "demo-style"], demo_index()), pin_file=no_network)
    assert [(p.name, p.version, p.family) for p in pkgs] == [("demo-sd", "1.4", "demo-sd1"), ("demo-style", "1.0", "demo-sd1")]
    assert all(f.sha256 and f.size for p in pkgs for f in p.files)


def _hf_index(revision="main", sha=True):
    f = {"path": "model.safetensors", "source": f"hf://org/repo@{revision}/model.safetensors"}
    if sha:
        f.update(size=10, sha256=fake_sha("hf"))
    return MemoryIndex([manifest("hf-base", "checkpoint", [version("1.0", "sd1", variants=[{"name": "fp16", "files": [f]}])])])


def test_pin_asks_the_source_for_a_branch_revision_and_keeps_previous_pins():
    calls = []

    def pin_file(ref):  # stands in for hubctl.sources.fetch.pin_file (the Hub is tested there, on loopback)
        calls.append(ref.source)
        return LockedFile(ref.path, f"hf://org/repo@{COMMIT}/model.safetensors", 10, fake_sha("hf"), "main")

    res = resolve(["hf-base"], _hf_index())
    first = pin(res, pin_file=pin_file)
    assert calls == ["hf://org/repo@main/model.safetensors"]
    assert first[0].files[0].commit_id == COMMIT and first[0].files[0].requested_revision == "main"
    again = pin(res, previous=Lock(packages=first), pin_file=pin_file)
    assert again == first and len(calls) == 1  # the existing pin is kept: no second question


def test_pin_of_an_hf_file_already_at_a_commit_needs_no_network():
    pkgs = pin(resolve(["hf-base"], _hf_index(COMMIT)), pin_file=lambda ref: pytest.fail("network"))
    assert pkgs[0].files[0].commit_id == COMMIT


# ------------------------------------------------------------------ comparing


def test_diff_names_each_artefact_with_old_and_new_version_and_family():
    old = pin(resolve(["demo-sd<2", "demo-style"], demo_index()))
    new = pin(resolve(["demo-sd>=2", "demo-style"], demo_index()))
    changes = diff_packages(old, new)
    assert [format_change(c) for c in changes] == [
        "demo-sd: 1.4 (demo-sd1) in the lock, 2.0 (demo-sd2) now",
        "demo-style: 1.0 (demo-sd1) in the lock, 2.0 (demo-sd2) now",
    ]
    assert diff_packages(old, old) == []
    gone = diff_packages(old, old[:1])
    assert [c.to_json() for c in gone] == [{"package": "demo-style", "change": "removed", "old": {"version": "1.0", "family": "demo-sd1", "variant": "fp16"}, "new": None}]


# ------------------------------------------------------------------ bad input: one line naming the file and the field




def _good() -> str:
    return dumps_lock(_lock_of(["demo-sd<2"]))


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda t: t.replace("lock-version", "lock_version"), "lock_version: unknown field"),
        (lambda t: t + "[[packages\n", "invalid TOML"),
        (lambda t: t.replace('lock-version = "1.0"', 'lock-version = "2.0"'), "lock-version: '2.0' is not supported"),
        (lambda t: t.replace('hashes = {sha256 = "', 'hashes = {sha256 = "ab'), "packages[0].files[0].hashes.sha256: is not a sha256 (64 lower-case hex digits, got 66 characters)"),
        (lambda t: t.replace('version = "1.4"', 'version = "one"'), "packages[0].version: 'one' is not a PEP 440 version"),
        (lambda t: t.replace("size = ", "size = -"), "packages[0].files[0].size: "),
        (lambda t: t.replace('url = "https://', 'url = "gopher://'), "packages[0].files[0].url: 'gopher://example.org/fp16/model.safetensors' has an unknown URL scheme 'gopher'"),
        (lambda t: t.replace('url = "https://example.org/fp16/model.safetensors"', 'url = "hf://org/repo@main/model.safetensors"'), "packages[0].files[0].url: 'hf://org/repo@main/model.safetensors' is not pinned to a 40-hex commit"),
        (lambda t: t.replace('path = "model.safetensors"', 'path = "../evil.safetensors"'), "packages[0].files[0].path: '../evil.safetensors' escapes its package"),
        (lambda t: t.replace('kind = "checkpoint"', 'kind = "hypernetwork"'), "packages[0].kind: 'hypernetwork' is not one of"),
        (lambda t: t.replace('inputs-digest = "sha256:', 'inputs-digest = "md5:'), "inputs-digest: "),
        (lambda t: t.replace('requires = ["demo-sd<2"]', 'requires = ["demo-sd<<2"]'), "requires[0]: 'demo-sd<<2' is not a requirement"),
        (lambda t: t.replace('family = "demo-sd1"\n', ""), "packages[0].family: required field is missing"),
    ],
)
def test_a_malformed_lock_is_one_line_naming_the_file_and_field(tmp_path, edit, expected):
    p = tmp_path / "hubctl.lock"
    text = edit(_good())
    assert text != _good()
    p.write_text(text)
    msg = bad_input_line(lambda: read_lock(p), p)
    assert expected in msg, msg


def test_a_missing_lock_says_how_to_make_one(tmp_path):
    with pytest.raises(BadInput, match="no such lock file; run `hubctl lock` first"):
        read_lock(tmp_path / "hubctl.lock")


# ------------------------------------------------------------------ round trip on odd text


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_segment = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='/\\'), min_size=1, max_size=12).filter(lambda s: s not in (".", "..") and s.strip() == s and s)


@settings(max_examples=150, deadline=None)
@given(
    # paths a package may hold: relative, so no Windows drive prefix such as "A:" (the reader refuses those)
    paths=st.lists(st.lists(_segment, min_size=1, max_size=3).map("/".join).filter(lambda p: not (len(p) >= 2 and p[1] == ":" and p[0].isascii() and p[0].isalpha())), min_size=1, max_size=3, unique=True),
    trigger=st.lists(st.text(max_size=20), max_size=3),
    size=st.integers(0, 2**53),
)
def test_any_lock_round_trips_to_the_same_bytes(paths, trigger, size):
    files = tuple(LockedFile(p, f"https://example.org/{i}", size, fake_sha(p)) for i, p in enumerate(paths))
    pkg = LockedPackage("pkg", "1.0", "lora", "sd1", "fp16", files, trigger=tuple(trigger))
    lock = Lock(packages=[pkg], requires=["pkg"], inputs_digest=inputs_digest(["pkg"]))
    text = dumps_lock(lock)
    back = loads_lock(text)
    assert dumps_lock(back) == text
    assert back.packages[0].trigger == tuple(trigger)
    assert {f.path for f in back.packages[0].files} == set(paths)
