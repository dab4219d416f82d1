"""hf:// sources against a Hub-compatible server on 127.0.0.1 serving real git repositories (LFS files
redirect to a CDN on another port), with huggingface_hub's own metadata code: pinning branches to commits,
sha256 from LFS metadata, the HF cache reused by sha256, HF_HUB_OFFLINE, private repos and tokens."""

from __future__ import annotations

import hashlib

import pytest

from hubctl.errors import Refused, SourceError
from hubctl.sources.fetch import install_packages, pin_file
from hubctl.lock.lockfile import LockedPackage
from hubctl.registry.manifest import FileRef
from hubctl.store.blobs import Store


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "3")


WEIGHTS = hashlib.sha256(b"w").digest() * 40_000  # 1.28 MB: an LFS file, served by the CDN
CONFIG = b'{"_class_name": "UNet2DConditionModel"}\n'  # a small git file, served by the Hub itself


def _pkg(*files) -> LockedPackage:
    return LockedPackage("hubby", "1.0", "checkpoint", "sd1", "fp16", tuple(files))


def _auth(rec) -> str | None:
    return next((v for k, v in rec.headers.items() if k.lower() == "authorization"), None)


def test_pin_resolves_the_branch_to_a_commit_and_takes_sha256_from_lfs_metadata(hub_server):
    commit = hub_server.create_repo("org/model", {"unet/w.safetensors": WEIGHTS, "unet/config.json": CONFIG})
    lf = pin_file(FileRef(path="unet/w.safetensors", source="hf://org/model/unet/w.safetensors"))
    assert lf.url == f"hf://org/model@{commit}/unet/w.safetensors"
    assert lf.requested_revision == "main"
    assert (lf.size, lf.sha256) == (len(WEIGHTS), hashlib.sha256(WEIGHTS).hexdigest())
    assert hub_server.stats.count(method="GET", server="cdn") == 0  # known from metadata: no bytes moved
    # a small git file has no LFS sha256: the bytes are fetched (into the store) to learn it
    cf = pin_file(FileRef(path="unet/config.json", source="hf://org/model@main/unet/config.json"))
    assert cf.sha256 == hashlib.sha256(CONFIG).hexdigest() and Store().has_blob(cf.sha256)


def test_a_tag_and_a_moved_branch_pin_to_their_own_commits(hub_server):
    first = hub_server.create_repo("org/m", {"a.safetensors": WEIGHTS})
    hub_server.tag("org/m", "v1")
    second = hub_server.commit("org/m", {"a.safetensors": WEIGHTS[::-1]})
    old = pin_file(FileRef(path="a.safetensors", source="hf://org/m@v1/a.safetensors"))
    new = pin_file(FileRef(path="a.safetensors", source="hf://org/m/a.safetensors"))
    assert old.url.endswith(f"@{first}/a.safetensors") and old.requested_revision == "v1"
    assert new.url.endswith(f"@{second}/a.safetensors") and new.sha256 != old.sha256
    rep = install_packages([_pkg(old)], progress=False)
    assert Store().blob_path(old.sha256).read_bytes() == WEIGHTS
    assert rep.blobs[0].how == "downloaded"


def test_a_manifest_sha256_that_the_hub_contradicts_is_refused(hub_server):
    hub_server.create_repo("org/m", {"a.safetensors": WEIGHTS})
    with pytest.raises(Refused, match=r"the Hub says sha256 .* the manifest says 0000"):
        pin_file(FileRef(path="a.safetensors", sha256="0" * 64, source="hf://org/m/a.safetensors"))


def test_install_fetches_lfs_bytes_from_the_cdn_and_checks_them(hub_server):
    hub_server.create_repo("org/model", {"w.safetensors": WEIGHTS, "config.json": CONFIG})
    files = [pin_file(FileRef(path=p, source=f"hf://org/model/{p}")) for p in ("w.safetensors", "config.json")]
    rep = install_packages([_pkg(*files)], progress=False)
    store = Store()
    assert store.blob_path(hashlib.sha256(WEIGHTS).hexdigest()).read_bytes() == WEIGHTS
    assert {b.how for b in rep.blobs} <= {"downloaded", "store"}
    assert hub_server.stats.count(method="GET", server="cdn") >= 1


def test_a_blob_already_in_the_hf_cache_is_reused_without_any_request(hub_server):
    from huggingface_hub import hf_hub_download

    commit = hub_server.create_repo("org/cached", {"w.safetensors": WEIGHTS})
    hf_hub_download("org/cached", "w.safetensors", endpoint=hub_server.endpoint)  # the user's HF cache, by HF's own code
    lf = pin_file(FileRef(path="w.safetensors", source="hf://org/cached/w.safetensors"))
    assert lf.url.endswith(f"@{commit}/w.safetensors")
    hub_server.stats.reset()
    rep = install_packages([_pkg(lf)], progress=False)
    assert [b.how for b in rep.blobs] == ["hf-cache"]
    assert hub_server.stats.requests == []
    assert Store().blob_path(lf.sha256).read_bytes() == WEIGHTS


def test_the_same_lfs_blob_cached_for_another_repo_is_reused_by_sha256(hub_server, monkeypatch):
    from huggingface_hub import hf_hub_download

    hub_server.create_repo("org/one", {"w.safetensors": WEIGHTS})
    commit = hub_server.create_repo("org/two", {"copy.safetensors": WEIGHTS})
    hf_hub_download("org/one", "w.safetensors", endpoint=hub_server.endpoint)
    hub_server.stats.reset()
    lf = pin_file(FileRef(path="copy.safetensors", size=len(WEIGHTS), sha256=hashlib.sha256(WEIGHTS).hexdigest(),
                          source=f"hf://org/two@{commit}/copy.safetensors"))
    rep = install_packages([_pkg(lf)], progress=False)
    assert [b.how for b in rep.blobs] == ["hf-cache"] and hub_server.stats.requests == []


def test_offline_mode_uses_the_hf_cache_and_names_what_is_missing(hub_server, monkeypatch):
    from huggingface_hub import hf_hub_download

    commit = hub_server.create_repo("org/off", {"w.safetensors": WEIGHTS, "other.safetensors": WEIGHTS[:1000] + b"x"})
    hf_hub_download("org/off", "w.safetensors", endpoint=hub_server.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_server.stats.reset()
    lf = pin_file(FileRef(path="w.safetensors", source="hf://org/off/w.safetensors"))  # refs/main from the cache
    assert lf.url.endswith(f"@{commit}/w.safetensors") and lf.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    with pytest.raises(SourceError, match=r"hf://org/off/other\.safetensors: HF_HUB_OFFLINE is set and this file is not in the HF cache"):
        pin_file(FileRef(path="other.safetensors", source="hf://org/off/other.safetensors"))
    assert hub_server.stats.requests == []


def test_a_private_repo_needs_hf_token_which_goes_to_the_hub_only(hub_server, monkeypatch):
    token = "hf_PrivateTokenForTests0123456789"
    hub_server.create_repo("org/private", {"w.safetensors": WEIGHTS}, token=token)
    ref = FileRef(path="w.safetensors", source="hf://org/private/w.safetensors")
    monkeypatch.setenv("HUBCTL_HF_NO_LOGIN_LOOKUP", "1")
    with pytest.raises(SourceError) as ei:
        pin_file(ref)
    assert "repository 'org/private' not found (set HF_TOKEN or run `hf auth login` if it is private)" in str(ei.value)
    monkeypatch.setenv("HF_TOKEN", token)
    lf = pin_file(ref)
    install_packages([_pkg(lf)], progress=False)
    assert Store().has_blob(lf.sha256)
    hub_sent = [_auth(r) for r in hub_server.stats.matching(server="hub")]
    cdn_sent = [_auth(r) for r in hub_server.stats.matching(server="cdn")]
    assert f"Bearer {token}" in hub_sent
    assert cdn_sent and all(a is None for a in cdn_sent)  # never to the CDN


def test_a_missing_revision_or_file_is_one_plain_line(hub_server):
    hub_server.create_repo("org/m", {"a.safetensors": WEIGHTS})
    with pytest.raises(SourceError, match=r"revision 'nope' not found in 'org/m'"):
        pin_file(FileRef(path="a.safetensors", source="hf://org/m@nope/a.safetensors"))
    with pytest.raises(SourceError, match=r"no file 'b.safetensors' in 'org/m' at revision 'main'"):
        pin_file(FileRef(path="b.safetensors", source="hf://org/m/b.safetensors"))


def test_hub_5xx_on_metadata_is_retried(hub_server):
    hub_server.create_repo("org/m", {"a.safetensors": WEIGHTS})
    hub_server.faults.set(fail_times=2, fail_status=502, fail_methods=("HEAD",))
    lf = pin_file(FileRef(path="a.safetensors", source="hf://org/m/a.safetensors"))
    assert lf.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert [r.status for r in hub_server.stats.matching(method="HEAD", server="hub")][:3] == [502, 502, 302]


def test_a_cut_on_the_cdn_resumes_with_range(hub_server):
    hub_server.create_repo("org/m", {"a.safetensors": WEIGHTS})
    lf = pin_file(FileRef(path="a.safetensors", source="hf://org/m/a.safetensors"))
    hub_server.stats.reset()
    hub_server.faults.set(cut_at=700_000, path="/repos/")
    install_packages([_pkg(lf)], progress=False)
    gets = hub_server.stats.matching(method="GET", server="cdn")
    assert [g.range for g in gets] == [f"bytes=0-{len(WEIGHTS) - 1}", f"bytes=700000-{len(WEIGHTS) - 1}"]
    assert Store().blob_path(lf.sha256).read_bytes() == WEIGHTS
