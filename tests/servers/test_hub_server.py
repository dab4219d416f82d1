"""The Hub-compatible test server serves real git repos so that huggingface_hub's real client code works.

Everything here runs huggingface_hub 2.4's own download and API code against tests.servers.hub_server.HubServer
(fixture `hub_server`), plus a few raw requests (tests/servers/rawclient.py) for headers the client hides.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.servers.hub_server import HubServer
from tests.servers.rawclient import fetch


def small_safetensors(path: Path, n: int = 4) -> Path:
    """A real safetensors file written by the safetensors library."""
    from safetensors.numpy import save_file

    tensors = {f"layer{i}.weight": np.full((8, 4), i, dtype=np.float16) for i in range(n)}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_hf_hub_download_small_file_is_served_from_git_with_its_commit(hub_server: HubServer) -> None:
    from huggingface_hub import hf_hub_download

    config = b'{"_class_name": "UNet2DConditionModel"}'
    sha = hub_server.create_repo("org/tiny", {"unet/config.json": config, "README.md": b"# tiny"})
    assert sha is not None and len(sha) == 40 and hub_server.repo("org/tiny").rev_parse("main") == sha
    path = hf_hub_download("org/tiny", "unet/config.json")
    assert Path(path).read_bytes() == config
    assert f"snapshots/{sha}/unet/config.json" in path
    head = hub_server.stats.matching("HEAD", "/org/tiny/resolve/main/unet/config.json")
    assert head and head[0].status == 200
    # a pinned commit that is cached costs no request at all
    n = len(hub_server.stats.requests)
    assert hf_hub_download("org/tiny", "unet/config.json", revision=sha) == path
    assert len(hub_server.stats.requests) == n


def test_large_file_redirects_to_cdn_with_linked_etag_and_size(hub_server: HubServer) -> None:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    blob = os.urandom(3 << 20)
    commit = hub_server.create_repo("org/big", {"weights.bin": blob})
    r = fetch(hub_server.resolve_url("org/big", "weights.bin"), "HEAD")
    assert r.status == 302 and r.headers["x-repo-commit"] == commit
    assert r.headers["x-linked-etag"] == f'"{sha256(blob)}"' and r.headers["x-linked-size"] == str(len(blob))
    assert r.headers["location"].startswith(hub_server.cdn.url) and "x-xet-hash" not in r.headers
    path = hf_hub_download("org/big", "weights.bin")
    assert Path(path).read_bytes() == blob
    assert Path(path).resolve().name == sha256(blob)  # the cache names the blob by its sha256
    cdn_gets = hub_server.stats.matching("GET", hub_server.cdn_path(sha256(blob)), server="cdn")
    assert len(cdn_gets) == 1 and hub_server.stats.bytes_sent[hub_server.cdn_path(sha256(blob))] == len(blob)
    assert try_to_load_from_cache("org/big", "weights.bin") == path


def test_hf_hub_download_resumes_after_a_cut_mid_file(hub_server: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    src = tmp_path / "unet.safetensors"
    src.write_bytes(os.urandom(24 << 20))  # > 2 of the client's 10 MiB chunks
    hub_server.create_repo("org/resume", {"unet.safetensors": src})
    cut = (15 << 20) + 12345
    hub_server.faults.set(cut_at=cut, path="/repos/")  # the CDN path only
    path = hf_hub_download("org/resume", "unet.safetensors")
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()
    gets = [r for r in hub_server.stats.requests if r.server == "cdn" and r.method == "GET"]
    assert len(gets) == 2 and gets[0].range is None
    resumed_at = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= cut and gets[1].status == 206
    assert hub_server.stats.total_bytes < src.stat().st_size + cut  # not downloaded twice


def test_snapshot_download_of_a_tag_fetches_every_file_of_that_commit(hub_server: HubServer) -> None:
    from huggingface_hub import snapshot_download

    v1 = hub_server.create_repo("org/pipe", {"model_index.json": b"{}", "unet/config.json": b'{"a": 1}',
                                             "unet/diffusion_pytorch_model.safetensors": b"x" * 2048})
    hub_server.tag("org/pipe", "v1.0", v1)
    hub_server.commit("org/pipe", {"unet/config.json": b'{"a": 2}'}, "bump", delete=["model_index.json"])
    folder = Path(snapshot_download("org/pipe", revision="v1.0"))
    assert folder.name == v1
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]
    assert (folder / "unet/config.json").read_bytes() == b'{"a": 1}'
    main = Path(snapshot_download("org/pipe"))
    assert (main / "unet/config.json").read_bytes() == b'{"a": 2}' and not (main / "model_index.json").exists()


def test_model_info_with_files_metadata_reports_lfs_sha256_and_dates(hub_server: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    st = small_safetensors(tmp_path / "m.safetensors")
    commit = hub_server.create_repo("org/info", {"m.safetensors": st, "config.json": b"{}"})
    info = HfApi().model_info("org/info", files_metadata=True)
    assert info.id == "org/info" and info.sha == commit and info.last_modified is not None
    sib = {s.rfilename: s for s in info.siblings}
    assert sib["m.safetensors"].lfs.sha256 == sha256(st.read_bytes())
    assert sib["m.safetensors"].size == st.stat().st_size and sib["m.safetensors"].lfs.pointer_size > 100
    assert sib["config.json"].lfs is None and sib["config.json"].size == 2
    assert sib["config.json"].blob_id == hub_server.repo("org/info").ls_tree(commit)[0].blob
    info_at = HfApi().model_info("org/info", revision=commit)
    assert info_at.sha == commit and info_at.siblings[0].size is None  # without files_metadata: names only


def test_parse_safetensors_file_metadata_reads_only_the_header(hub_server: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    st = small_safetensors(tmp_path / "h.safetensors")
    padded = tmp_path / "big.safetensors"  # same header, 8 MiB of data: a header read must not fetch it
    header_len = int.from_bytes(st.read_bytes()[:8], "little")
    with open(padded, "wb") as out:
        out.write(st.read_bytes()[: 8 + header_len])
        out.write(b"\0" * (8 << 20))
    hub_server.create_repo("org/st", {"h.safetensors": st})
    meta = HfApi().parse_safetensors_file_metadata("org/st", "h.safetensors")
    assert set(meta.tensors) == {f"layer{i}.weight" for i in range(4)}
    assert meta.tensors["layer0.weight"].shape == [8, 4] and meta.metadata == {"format": "pt"}
    # header-only read against a larger file: bounded transfer (validation of the tensor offsets is the reader's job)
    hub_server.commit("org/st", {"big.safetensors": padded})
    hub_server.stats.reset()
    try:
        HfApi().parse_safetensors_file_metadata("org/st", "big.safetensors")
    except Exception:  # noqa: BLE001 - offsets do not cover the padded data; only the transfer size matters here
        pass
    assert 0 < hub_server.stats.total_bytes < 200_000
    assert all(r.range for r in hub_server.stats.requests if r.method == "GET" and r.server == "cdn"), [r[:5] for r in hub_server.stats.requests]


def test_hub_errors_map_to_huggingface_hub_exceptions(hub_server: HubServer) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    hub_server.create_repo("org/err", {"a.txt": b"a"})
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/missing", "a.txt")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/err", "a.txt", revision="no-such-branch")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/err", "b.txt")
    r = fetch(hub_server.resolve_url("org/err", "b.txt"), "HEAD")
    assert r.headers["x-error-code"] == "EntryNotFound" and len(r.headers["x-repo-commit"]) == 40
    assert fetch(hub_server.endpoint + "/api/agent-harnesses").status == 404


def test_private_repo_needs_its_token(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    hub_server.create_repo("org/private", {"w.bin": b"secret" * 100}, token="hf_test_secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/private", "w.bin")
    with pytest.raises(HfHubHTTPError):
        hf_hub_download("org/private", "w.bin", token="hf_wrong")
    assert Path(hf_hub_download("org/private", "w.bin", token="hf_test_secret")).read_bytes() == b"secret" * 100
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret")
    assert HfApi().whoami()["name"] == "test-user"
    assert HfApi().model_info("org/private").private is True


def test_refs_tree_paging_and_datasets(hub_server: HubServer) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    hub_server.tree_page_size = 2
    c1 = hub_server.create_repo("org/tree", {f"d/f{i}.txt": str(i).encode() for i in range(5)} | {"top.txt": b"t"})
    hub_server.branch("org/tree", "dev", c1)
    hub_server.tag("org/tree", "v1", c1)
    api = HfApi()
    refs = api.list_repo_refs("org/tree")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": c1, "dev": c1}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", c1)]
    items = list(api.list_repo_tree("org/tree", recursive=True))
    assert sorted(i.path for i in items) == ["d"] + [f"d/f{i}.txt" for i in range(5)] + ["top.txt"]
    assert len(hub_server.stats.matching("GET", "/api/models/org/tree/tree/main")) == 4  # 7 entries, 2 per page
    assert sorted(i.path for i in api.list_repo_tree("org/tree", path_in_repo="d")) == [f"d/f{i}.txt" for i in range(5)]
    assert {i.path for i in api.get_paths_info("org/tree", ["top.txt", "d", "nope"])} == {"top.txt", "d"}
    ds = hub_server.create_repo("org/data", {"data.csv": b"a,b\n1,2\n"}, repo_type="dataset")
    p = hf_hub_download("org/data", "data.csv", repo_type="dataset")
    assert Path(p).read_bytes() == b"a,b\n1,2\n" and ds in p
    assert api.dataset_info("org/data").sha == ds
    assert api.file_exists("org/data", "data.csv", repo_type="dataset")


def test_no_response_ever_carries_x_xet_hash(hub_server: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    hub_server.create_repo("org/xet", {"a.safetensors": small_safetensors(tmp_path / "a.safetensors"), "b": b"b"})
    hf_hub_download("org/xet", "a.safetensors")
    for path in ("a.safetensors", "b"):
        for method in ("HEAD", "GET"):
            assert not any(k.lower().startswith("x-xet") for k in fetch(hub_server.resolve_url("org/xet", path),
                                                                         method).headers)
    assert json.loads(fetch(hub_server.endpoint + "/api/models/org/xet").body)["id"] == "org/xet"


def test_cdn_faults_reach_huggingface_hub_flipped_byte_and_5xx(hub_server: HubServer) -> None:
    """The fault knobs act on the CDN path too. Facts about the client that hubctl must cover itself:
    huggingface_hub 2.4 stores a flipped byte without noticing, and does not retry a 5xx on the CDN GET."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    blob = os.urandom(2 << 20)
    hub_server.create_repo("org/faulty", {"w.bin": blob, "x.bin": blob[::-1]})
    hub_server.faults.set(flip_byte=12345, path="/repos/")
    got = Path(hf_hub_download("org/faulty", "w.bin")).read_bytes()
    assert len(got) == len(blob) and [i for i in range(len(blob)) if got[i] != blob[i]] == [12345]
    hub_server.faults.reset()
    hub_server.faults.set(fail_times=1, fail_status=503, path="/repos/")
    with pytest.raises(HfHubHTTPError, match="503"):
        hf_hub_download("org/faulty", "x.bin")
    assert Path(hf_hub_download("org/faulty", "x.bin")).read_bytes() == blob[::-1]
    assert [r.status for r in hub_server.stats.matching("GET", "/repos/", server="cdn")][-2:] == [503, 200]


def test_gated_repo_refuses_with_gated_repo_error_and_cdn_never_sees_the_token(hub_server: HubServer) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError

    blob = os.urandom(1 << 20)
    hub_server.create_repo("org/gated", {"w.safetensors": blob}, token="hf_gate", gated=True)
    for token in (None, "hf_other"):
        with pytest.raises(GatedRepoError):
            hf_hub_download("org/gated", "w.safetensors", token=token)
    assert fetch(hub_server.resolve_url("org/gated", "w.safetensors"),
                 headers={"Authorization": "Bearer hf_other"}).status == 403
    assert Path(hf_hub_download("org/gated", "w.safetensors", token="hf_gate")).read_bytes() == blob
    hub_reqs = hub_server.stats.matching(server="hub")
    assert hub_reqs[-1].headers["authorization"] == "Bearer hf_gate"
    cdn = hub_server.stats.matching("GET", server="cdn")
    assert len(cdn) == 1 and "authorization" not in cdn[0].headers  # not forwarded off the Hub's origin


def test_branch_with_a_slash_tree_expand_and_missing_folder(hub_server: HubServer) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    first = hub_server.create_repo("org/br", {"a/x.txt": b"1", "b.txt": b"b"}, message="add x")
    second = hub_server.commit("org/br", {"a/x.txt": b"2"}, "change x", branch="feature/two")
    assert Path(hf_hub_download("org/br", "a/x.txt", revision="feature/two")).read_bytes() == b"2"
    assert Path(hf_hub_download("org/br", "a/x.txt")).read_bytes() == b"1"
    items = {i.path: i for i in HfApi().list_repo_tree("org/br", revision="feature/two", recursive=True,
                                                        expand=True)}
    assert items["a/x.txt"].last_commit.oid == second and items["a/x.txt"].last_commit.title == "change x"
    assert items["b.txt"].last_commit.oid == first
    with pytest.raises(RemoteEntryNotFoundError):
        list(HfApi().list_repo_tree("org/br", path_in_repo="nope"))
