"""The test servers behave like the real things they stand in for (tests/servers/, tests/fixtures/servers.py).

Plain ranged GETs with every fault knob go through http.client (raw, so that a cut or a lying Content-Length is
visible as such); the Hub server is driven by huggingface_hub's real download and API code.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.servers.range_server import RangeServer, parse_range


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    incomplete: bool  # the connection closed before Content-Length bytes arrived


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Reply:
    """One request on a fresh connection, reading the body to the end or to the cut."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), headers=headers or {})
        resp = conn.getresponse()
        incomplete = False
        try:
            body = resp.read()
        except http.client.IncompleteRead as e:
            body, incomplete = e.partial, True
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, incomplete)
    finally:
        conn.close()


DATA = bytes(range(256)) * 4096  # 1 MiB, every offset identifiable


@pytest.fixture
def served(http_server: RangeServer) -> str:
    return http_server.add_file("/f.bin", DATA)


# ------------------------------------------------------------------------------------ plain Range server
def test_full_get_serves_bytes_with_validators(served: str) -> None:
    r = fetch(served)
    assert r.status == 200 and r.body == DATA and not r.incomplete
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    assert "GMT" in r.headers["last-modified"]


def test_head_has_headers_and_no_body(served: str, http_server: RangeServer) -> None:
    r = fetch(served, "HEAD")
    assert r.status == 200 and r.body == b"" and r.headers["content-length"] == str(len(DATA))
    assert http_server.stats.bytes_sent.get("/f.bin", 0) == 0


@pytest.mark.parametrize(
    ("rng", "first", "last"),
    [("bytes=10-19", 10, 19), ("bytes=1048500-", 1048500, len(DATA) - 1), ("bytes=-100", len(DATA) - 100,
                                                                            len(DATA) - 1),
     ("bytes=0-99999999", 0, len(DATA) - 1)],
)
def test_ranges_answer_206_with_content_range(served: str, rng: str, first: int, last: int) -> None:
    r = fetch(served, headers={"Range": rng})
    assert r.status == 206
    assert r.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert r.body == DATA[first:last + 1]


@pytest.mark.parametrize("rng", ["bytes=1048576-", "bytes=2000000-2000010", "bytes=-0"])
def test_out_of_bounds_range_is_416(served: str, rng: str) -> None:
    r = fetch(served, headers={"Range": rng})
    assert r.status == 416 and r.headers["content-range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("rng", ["bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=x-"])
def test_multi_or_malformed_range_is_ignored_with_full_body(served: str, rng: str) -> None:
    r = fetch(served, headers={"Range": rng})
    assert r.status == 200 and r.body == DATA


def test_parse_range_edges() -> None:
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=0-", 0) == "unsatisfiable"
    assert parse_range("bytes=-5", 3) == (0, 2)


def test_if_range_with_current_etag_honours_range_and_stale_etag_gets_full_body(
    served: str, http_server: RangeServer
) -> None:
    etag = fetch(served, "HEAD").headers["etag"]
    r = fetch(served, headers={"Range": "bytes=100-", "If-Range": etag})
    assert r.status == 206 and r.body == DATA[100:]
    http_server.add_file("/f.bin", DATA[::-1])  # the file changes on the server
    r = fetch(served, headers={"Range": "bytes=100-", "If-Range": etag})
    assert r.status == 200 and r.body == DATA[::-1]
    assert fetch(served, "HEAD").headers["etag"] != etag


def test_if_range_with_last_modified_date(served: str) -> None:
    lm = fetch(served, "HEAD").headers["last-modified"]
    assert fetch(served, headers={"Range": "bytes=5-9", "If-Range": lm}).status == 206
    assert fetch(served, headers={"Range": "bytes=5-9", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}).status == 200


def test_files_on_disk_and_in_root_folder_are_served(http_server: RangeServer, tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(DATA * 3)
    url = http_server.add_file("/disk/big.bin", f)
    r = fetch(url, headers={"Range": "bytes=2097152-2097160"})
    assert r.status == 206 and r.body == (DATA * 3)[2097152:2097161]
    (http_server.root / "sub").mkdir()
    (http_server.root / "sub" / "x.txt").write_bytes(b"hello")
    assert fetch(http_server.url_for("/sub/x.txt")).body == b"hello"
    assert fetch(http_server.url_for("/sub/../../etc/passwd")).status == 404
    assert fetch(http_server.url_for("/missing")).status == 404


def test_redirects(http_server: RangeServer, served: str) -> None:
    r = fetch(http_server.url_for("/redirect/f.bin"))
    assert r.status == 302 and r.headers["location"] == served
    r = fetch(http_server.url_for("/redirect/redirect/f.bin"))
    assert r.headers["location"] == http_server.url_for("/redirect/f.bin")
    dl = http_server.add_redirect("/download/42", "/f.bin")
    assert fetch(dl).headers["location"] == served


def test_bearer_auth_route_and_protected_file(http_server: RangeServer, served: str) -> None:
    url = http_server.url_for("/auth/f.bin")
    r = fetch(url)
    assert r.status == 401 and "Bearer" in r.headers["www-authenticate"]
    assert fetch(url, headers={"Authorization": "Bearer nope"}).status == 403
    assert fetch(url, headers={"Authorization": f"Bearer {http_server.token}"}).body == DATA
    secret = http_server.add_file("/secret.bin", b"s3", token="tok-123")
    assert fetch(secret).status == 401
    assert fetch(secret, headers={"Authorization": "Bearer tok-123"}).body == b"s3"


def test_stats_count_requests_ranges_and_bytes(http_server: RangeServer, served: str) -> None:
    fetch(served, "HEAD")
    fetch(served, headers={"Range": "bytes=0-999"})
    fetch(served)
    assert http_server.stats.calls == [("HEAD", "/f.bin", None), ("GET", "/f.bin", "bytes=0-999"),
                                       ("GET", "/f.bin", None)]
    assert http_server.stats.bytes_sent["/f.bin"] == 1000 + len(DATA)
    assert http_server.stats.count("GET", "/f.bin") == 2
    assert [r.status for r in http_server.stats.requests] == [200, 206, 200]


# ------------------------------------------------------------------------------------------ fault knobs
@pytest.mark.parametrize("offset", [1, 4096, 500_000, len(DATA) - 1])
def test_cut_at_closes_mid_body_once_and_resume_completes(http_server: RangeServer, served: str,
                                                          offset: int) -> None:
    http_server.faults.cut_at = offset
    first = fetch(served)
    assert first.incomplete and first.body == DATA[:offset]
    rest = fetch(served, headers={"Range": f"bytes={offset}-"})
    assert rest.status == 206 and not rest.incomplete
    assert first.body + rest.body == DATA


def test_cut_every_time_cuts_each_response_crossing_the_offset(http_server: RangeServer, served: str) -> None:
    http_server.faults.set(cut_at=1000, cut_times=None)
    assert fetch(served).incomplete and fetch(served).incomplete
    assert fetch(served, headers={"Range": "bytes=500-"}).body == DATA[500:1000]
    assert not fetch(served, headers={"Range": "bytes=1000-"}).incomplete


def test_ignore_range_sends_full_body_without_accept_ranges(http_server: RangeServer, served: str) -> None:
    http_server.faults.ignore_range = True
    r = fetch(served, headers={"Range": "bytes=0-99"})
    assert r.status == 200 and r.body == DATA and "accept-ranges" not in r.headers


def test_fail_times_then_success(http_server: RangeServer, served: str) -> None:
    http_server.faults.set(fail_times=2, fail_status=503)
    assert [fetch(served).status for _ in range(3)] == [503, 503, 200]
    assert fetch(served, "HEAD").status == 200  # HEAD not in fail_methods by default
    http_server.faults.set(fail_times=1, fail_status=500, fail_methods=("HEAD",))
    assert fetch(served, "HEAD").status == 500


@pytest.mark.parametrize("delta", [1000, True, -10])
def test_wrong_length_lies_and_the_lie_is_visible(http_server: RangeServer, served: str, delta: int) -> None:
    http_server.faults.wrong_length = delta
    r = fetch(served)
    assert r.headers["content-length"] == str(len(DATA) + int(delta))
    if delta > 0:
        assert r.incomplete and r.body == DATA
    else:
        assert not r.incomplete and r.body == DATA[: len(DATA) + delta]


def test_flip_byte_corrupts_exactly_one_byte(http_server: RangeServer, served: str, tmp_path: Path) -> None:
    http_server.faults.flip_byte = 777
    r = fetch(served)
    assert len(r.body) == len(DATA) and r.body[777] == DATA[777] ^ 0xFF
    assert r.body[:777] == DATA[:777] and r.body[778:] == DATA[778:]
    f = tmp_path / "d.bin"
    f.write_bytes(DATA)
    url = http_server.add_file("/d.bin", f)
    assert fetch(url, headers={"Range": "bytes=700-800"}).body[77] == DATA[777] ^ 0xFF
    assert fetch(url, headers={"Range": "bytes=800-900"}).body == DATA[800:901]


def test_delay_and_rate_slow_the_answer(http_server: RangeServer, served: str) -> None:
    http_server.faults.delay = 0.2
    t = time.monotonic()
    fetch(served, "HEAD")
    assert time.monotonic() - t >= 0.2
    http_server.faults.set(delay=0.0, rate=2_000_000)
    t = time.monotonic()
    assert fetch(served, headers={"Range": "bytes=0-599999"}).body == DATA[:600000]
    assert time.monotonic() - t >= 0.25


def test_faults_limited_to_a_path_prefix(http_server: RangeServer, served: str) -> None:
    other = http_server.add_file("/ok/g.bin", DATA)
    http_server.faults.set(path="/f.bin", flip_byte=0)
    assert fetch(other).body == DATA
    assert fetch(served).body[0] != DATA[0]


def test_parallel_ranged_parts_reassemble(http_server: RangeServer, tmp_path: Path) -> None:
    f = tmp_path / "p.bin"
    blob = os.urandom(4 << 20)
    f.write_bytes(blob)
    url = http_server.add_file("/p.bin", f)
    parts: dict[int, bytes] = {}

    def get(i: int) -> None:
        parts[i] = fetch(url, headers={"Range": f"bytes={i << 20}-{((i + 1) << 20) - 1}"}).body

    threads = [threading.Thread(target=get, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hashlib.sha256(b"".join(parts[i] for i in range(4))).digest() == hashlib.sha256(blob).digest()


def test_server_binds_loopback_and_stops_cleanly(tmp_path: Path) -> None:
    srv = RangeServer(tmp_path).start()
    assert srv.url.startswith("http://127.0.0.1:")
    (tmp_path / "a").write_bytes(b"a")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/a")
    assert conn.getresponse().read() == b"a"  # keep-alive connection left open
    t = time.monotonic()
    srv.stop()
    assert time.monotonic() - t < 2
    with pytest.raises(OSError):
        fetch(srv.url + "/a")
    conn.close()


# ---------------------------------------------------------------------------------- Hub-compatible server
# Everything below runs huggingface_hub's real client code against tests.servers.hub_server.HubServer.
import json  # noqa: E402

import numpy as np  # noqa: E402

from tests.servers.hub_server import HubServer  # noqa: E402


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


def test_ignore_range_with_an_early_close_shows_a_small_transfer(http_server: RangeServer, tmp_path: Path) -> None:
    f = tmp_path / "huge.bin"
    f.write_bytes(os.urandom(16 << 20))
    http_server.add_file("/huge.bin", f)
    http_server.faults.ignore_range = True
    conn = http.client.HTTPConnection("127.0.0.1", http_server.port, timeout=5)
    conn.request("GET", "/huge.bin", headers={"Range": "bytes=0-99"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read(100) == f.read_bytes()[:100]
    conn.close()
    time.sleep(0.3)  # let the server thread notice the closed connection
    assert 100 <= http_server.stats.bytes_sent["/huge.bin"] < 1_000_000  # not the 16 MiB


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
