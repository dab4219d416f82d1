"""Hostile folders handed to `hubctl adopt`: a user's folders can hold anything. Loops, unreadable files, FIFOs,
garbage headers, links to files elsewhere and odd names are one line each and never stop the run; a bad
extra_model_paths.yaml is one line and exit 2; nothing the user has is lost in any case."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.adopt._folders import PICKLE, run_without_file_override, sha256, sparse_copy


def _adopt(cli, root, *extra):  # type: ignore[no-untyped-def]
    r = cli("adopt", root, *extra)
    assert "Traceback" not in r.output
    return r


def _lora_folder(root: Path, sparse) -> Path:  # type: ignore[no-untyped-def]
    return sparse_copy(sparse.get("sd1-lora-kohya"), root / "models" / "Lora" / "style.safetensors")


YAML_CASES = {
    "billion-laughs": ("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
                       + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
                       + "sec:\n  base_path: .\n  loras: models/loras\n", 0, ""),
    "python-object-tag": ("sec: !!python/object/apply:os.system ['echo owned']\n", 2, "not valid YAML"),
    "deeply-nested": ("[" * 20000 + "]" * 20000 + "\n", 2, "not valid YAML|expected sections"),
    "not-a-mapping": ("- just\n- a list\n", 2, "expected sections"),
    "not-utf8": (b"\xff\xfe\x00sec: 1\n", 2, "not valid YAML"),
    "too-large": ("# " + "x" * (1 << 20) + "\n", 2, "larger than"),
    "odd-values": ("sec:\n  base_path: 3\n  loras: [1, 2]\n  vae: {a: b}\n  checkpoints: \"models/\\0nul\"\n", 0, ""),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_a_hostile_extra_model_paths_yaml_is_one_line_or_harmless(case, cli, sparse, tmp_path, hubctl_home):
    text, code, words = YAML_CASES[case]
    root = tmp_path / "ComfyUI"
    lora = sparse_copy(sparse.get("sd1-lora-kohya"), root / "models" / "loras" / "style.safetensors")
    (root / "extra_model_paths.yaml").write_bytes(text.encode() if isinstance(text, str) else text)
    r = _adopt(cli, root)
    assert r.exit_code == code, r.output
    if code == 2:
        import re

        assert re.search(words, r.stderr) and "extra_model_paths.yaml" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (hubctl_home / "store").exists() or not any((hubctl_home / "store").rglob("sha256/*/*"))
    assert sha256(lora) == sha256(sparse.get("sd1-lora-kohya"))
    assert not Path("owned").exists()


def test_a_fifo_named_like_a_model_never_blocks_the_run(cli, sparse, tmp_path):
    root = tmp_path / "webui"
    _lora_folder(root, sparse)
    os.mkfifo(root / "models" / "Lora" / "pipe.safetensors")
    r = _adopt(cli, root)
    assert r.exit_code == 0 and "taken in" in r.stdout


def test_garbage_headers_are_one_line_each_and_the_run_goes_on(cli, sparse, tmp_path):
    root = tmp_path / "webui"
    lora = _lora_folder(root, sparse)
    bad = root / "models" / "Lora"
    (bad / "huge-header.safetensors").write_bytes((10**15).to_bytes(8, "little") + b"{}")
    (bad / "not-json.safetensors").write_bytes((16).to_bytes(8, "little") + b"\xff" * 16)
    (bad / "empty.safetensors").write_bytes(b"")
    r = _adopt(cli, root)
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("problem:")]
    assert {Path(ln.split(": ", 2)[1]).name for ln in lines} == {"huge-header.safetensors", "not-json.safetensors", "empty.safetensors"}
    from hubctl.store.blobs import Store

    assert Store().has_blob(sha256(lora))


def test_a_link_to_a_model_elsewhere_is_adopted_by_copy_and_never_replaced(cli, sparse, tmp_path):
    elsewhere = sparse_copy(sparse.get("sd1-lora-kohya"), tmp_path / "elsewhere" / "kept.safetensors")
    root = tmp_path / "webui"
    (root / "models" / "Lora").mkdir(parents=True)
    os.symlink(elsewhere, root / "models" / "Lora" / "linked.safetensors")
    r = _adopt(cli, root, "--replace", "--json")
    assert r.exit_code == 0, r.output
    f = r.json()["files"][0]
    assert f["action"] in ("copy", "reflink") and f["replaced"] is None
    assert os.readlink(root / "models" / "Lora" / "linked.safetensors") == str(elsewhere)
    assert os.stat(elsewhere).st_nlink == 1 and os.stat(elsewhere).st_mode & 0o200  # not made the store's blob


def test_names_with_control_characters_are_escaped(cli, sparse, tmp_path):
    root = tmp_path / "webui"
    sparse_copy(sparse.get("sd1-lora-kohya"), root / "models" / "Lora" / "evil\x1b[2Jname\n.safetensors")
    r = _adopt(cli, root)
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "evil" in r.stdout


def test_a_temporary_name_in_the_way_is_never_deleted(cli, sparse, tmp_path):
    root = tmp_path / "webui"
    a = sparse_copy(sparse.get("sd1-lora-kohya"), root / "models" / "Lora" / "a.safetensors")
    b = sparse_copy(sparse.get("sd1-lora-kohya"), root / "models" / "Lora" / "b.safetensors")
    mine = root / "models" / "Lora" / ".b.safetensors.hubctl-adopt"
    mine.write_text("the user's own file")
    r = _adopt(cli, root, "--replace")
    assert r.exit_code == 0, r.output
    assert mine.read_text() == "the user's own file"
    assert "in the way; not replaced" in r.stderr
    assert sha256(b) == sha256(a)


def test_a_file_swapped_between_hashing_and_linking_is_skipped(cli, sparse, tmp_path, monkeypatch):
    root = tmp_path / "webui"
    f = sparse_copy(sparse.get("sd1-lora-kohya"), root / "models" / "Lora" / "style.safetensors")
    other = sparse_copy(sparse.get("sd1-emb-a1111"), tmp_path / "other.safetensors")
    import hubctl.adopt.adopt as adopt_mod

    real = adopt_mod.file_hashes
    calls = []

    def hash_then_swap(path, data_start=None):  # another program renames a new file over it right after
        out = real(path, data_start)
        if not calls:
            calls.append(path)
            os.replace(other, f)
        return out

    monkeypatch.setattr(adopt_mod, "file_hashes", hash_then_swap)
    r = _adopt(cli, root, "--replace")
    assert r.exit_code == 0, r.output
    assert "changed while it was being read; skipped" in r.stderr
    from hubctl.store.blobs import Store

    assert not Store().has_blob(sha256(sparse.get("sd1-lora-kohya")))
    assert sha256(f) == sha256(sparse.get("sd1-emb-a1111"))  # what the other program put there, untouched


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX users")
def test_an_unreadable_file_is_one_line_and_the_run_goes_on(cli, sparse, tmp_path):
    root = tmp_path / "webui"
    ok = _lora_folder(root, sparse)
    locked = sparse_copy(sparse.get("sd1-emb-a1111"), root / "models" / "Lora" / "locked.safetensors")
    locked.chmod(0)
    (root / "models" / "Lora" / "old.ckpt").write_bytes(PICKLE)
    if os.geteuid() != 0:
        r = _adopt(cli, root)
        out, err, code = r.stdout, r.stderr, r.exit_code
    else:  # root reads every file: run adopt without the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("root reads every file, and setpriv is not here to drop that")
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        p = run_without_file_override(["adopt", str(root)], env=env, cwd=tmp_path)
        out, err, code = p.stdout, p.stderr, p.returncode
    assert code == 0, err
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if "locked.safetensors" in ln] == [f"problem: {locked}: cannot be read (permission denied)"]
    assert "style.safetensors" in out and "left alone" in out
    assert ok.exists() and (root / "models" / "Lora" / "old.ckpt").read_bytes() == PICKLE
