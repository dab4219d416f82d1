"""`hubctl inspect` and `hubctl convert` as a user runs them: exit codes, the JSON fields, one clear line for
bad files, pickles recognised but never unpickled unless asked."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.fixtures.sparse import write_safetensors

FIELDS = {"path", "format", "kind", "family", "prediction", "variant", "layout", "rank", "vectors", "tokens", "dtypes",
          "parameters", "size", "metadata", "evidence"}


def test_inspect_json_has_every_field_for_a_sparse_sd1_unet(cli, sparse) -> None:
    path = sparse.get("sd1-unet")
    r = cli("inspect", path, "--json")
    assert r.exit_code == 0, r.output
    d = r.json()
    assert FIELDS <= set(d)
    assert (d["kind"], d["family"], d["layout"], d["prediction"], d["variant"]) == ("checkpoint", "sd1", "diffusers", "epsilon", "normal")
    assert d["size"] == path.stat().st_size and d["size"] > 1_700_000_000
    assert d["dtypes"] == {"F16": 686} and d["parameters"] == 859520964
    assert any(e["shape"] == [320, 768] and "attn2.to_k" in e["key"] for e in d["evidence"])


def test_inspect_many_arguments_prints_one_object_each(cli, sparse) -> None:
    r = cli("inspect", sparse.get("sd2-lora-kohya"), sparse.get("sd1-emb-diffusers"), sparse.get("sdxl-controlnet-diffusers"), "--json")
    assert r.exit_code == 0, r.output
    kinds = [(d["kind"], d["family"]) for d in r.json()]
    assert kinds == [("lora", "sd2"), ("embedding", "sd1"), ("controlnet", "sdxl")]
    lora = r.json()[0]
    assert lora["rank"] == 8 and lora["layout"] == "kohya" and lora["metadata"]["ss_base_model_version"] == "sd_v2"


def test_inspect_human_output_names_kind_family_and_evidence(cli, sparse) -> None:
    r = cli("inspect", sparse.get("sd1-emb-kohya"))
    assert r.exit_code == 0
    assert "embedding" in r.stdout and "sd1" in r.stdout and "emb_params [4, 768]" in r.stdout


def test_inspect_truncated_download_is_one_line_exit_2(cli, tmp_path) -> None:
    f = write_safetensors(tmp_path / "cut.safetensors", {"w": ("F16", [1024, 1024])})
    full = f.stat().st_size
    with open(f, "r+b") as h:
        h.truncate(full // 2)
    r = cli("inspect", f)
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: {f}: incomplete download: expected {full} bytes, found {full // 2}"
    assert "Traceback" not in r.output


def test_inspect_garbage_file_is_bad_input(cli, tmp_path) -> None:
    f = tmp_path / "x.safetensors"
    f.write_bytes(b"<html>404 not found</html>")
    r = cli("inspect", f)
    assert r.exit_code == 2 and "not a valid safetensors file" in r.stderr and "Traceback" not in r.output


def test_inspect_one_bad_of_several_still_prints_the_good_ones(cli, sparse, tmp_path) -> None:
    r = cli("inspect", sparse.get("sd1-emb-kohya"), tmp_path / "missing.safetensors", "--json")
    assert r.exit_code == 2
    good, bad = r.json()
    assert good["kind"] == "embedding" and "no such file" in bad["error"]


def test_inspect_hash_matches_sha256(cli, tmp_path) -> None:
    import hashlib

    f = write_safetensors(tmp_path / "e.safetensors", {"emb_params": ("F32", [1, 768])})
    d = cli("inspect", f, "--hash", "--json").json()
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert d["hashes"]["sha256"] == sha and d["hashes"]["autov2"] == sha[:10]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # runs on unpickling: would create the marker file
        return (Path.touch, (self.marker,))


def test_pickle_is_recognised_and_never_unpickled(cli, tmp_path) -> None:
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.ckpt"
    f.write_bytes(pickle.dumps({"state_dict": _Evil(marker)}, protocol=4))
    r = cli("inspect", f, "--json")
    assert r.exit_code == 0
    d = r.json()
    assert d["format"] == "pickle" and d["kind"] == "unknown"
    assert "--allow-pickle" in d["notes"][0] and "hubctl convert" in d["notes"][0]
    assert "--allow-pickle" in r.stderr
    assert not marker.exists()
    # even with --allow-pickle, torch.load(weights_only=True) refuses the callable: still nothing runs
    r2 = cli("inspect", f, "--allow-pickle")
    assert r2.exit_code == 2 and "weights_only" in r2.stderr
    assert not marker.exists()


@pytest.fixture
def a1111_pt(tmp_path) -> Path:
    import torch

    f = tmp_path / "my-style.pt"
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.ones(3, 768)}, "name": "my-style", "step": 500}, f)
    return f


def test_allow_pickle_reads_an_a1111_embedding_with_weights_only(cli, a1111_pt) -> None:
    d = cli("inspect", a1111_pt, "--allow-pickle", "--json").json()
    assert (d["format"], d["kind"], d["family"], d["layout"], d["vectors"], d["width"]) == ("pickle", "embedding", "sd1", "a1111", 3, 768)


def test_convert_writes_a_safetensors_copy_and_never_overwrites(cli, a1111_pt) -> None:
    r = cli("convert", a1111_pt, "--json")
    assert r.exit_code == 0, r.output
    out = Path(r.json()["written"])
    assert out == a1111_pt.with_suffix(".safetensors")
    d = cli("inspect", out, "--json").json()
    assert (d["format"], d["kind"], d["family"], d["vectors"]) == ("safetensors", "embedding", "sd1", 3)
    from safetensors.torch import load_file

    assert float(load_file(str(out))["emb_params"].sum()) == 3 * 768
    again = cli("convert", a1111_pt)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_convert_refuses_a_non_pickle(cli, tmp_path) -> None:
    f = write_safetensors(tmp_path / "x.safetensors", {"a": ("F16", [2])})
    r = cli("convert", f)
    assert r.exit_code == 2 and "not a pickled" in r.stderr


def test_inspect_diffusers_folder_reads_configs(cli, sparse) -> None:
    d = cli("inspect", sparse.get("sd2-diffusers"), "--json").json()
    assert (d["format"], d["family"], d["prediction"]) == ("diffusers-folder", "sd2", "v_prediction")
    assert any("scheduler_config.json" in e["key"] for e in d["evidence"])
