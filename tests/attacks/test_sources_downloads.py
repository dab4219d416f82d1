"""Downloads that must never become a wrong pin: a file replaced on the server mid-download, a body shorter than
announced, a locally edited copy in the user's HF cache, a local file edited while a copy of it was half done.

Against real servers on 127.0.0.1 (tests/servers: the Range server's `replace_after`, `hide_length`, `cut_at`,
`wrong_length` knobs, and the Hub-compatible server over real git repositories) and huggingface_hub's own cache
code. One test (or one parametrised case) per attack."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hubctl.errors import SourceError
from hubctl.registry.manifest import FileRef
from hubctl.sources.fetch import pin_file
from hubctl.store.blobs import Store
from tests._hubs import seeded_bytes


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "3")


_data = seeded_bytes


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _no_stray_blobs(*allowed: str) -> None:
    assert sorted(sha for sha, _ in Store().iter_blobs()) == sorted(allowed)


# --------------------------------------------------------------------------------- issue 10, defect 2
@pytest.mark.parametrize("after", [1, 2, 3])
def test_a_file_replaced_during_a_parallel_download_is_pinned_whole_never_a_mix(http_server, monkeypatch, after):
    """The first `after` part requests see the old file, the rest the new one: the pin is the new file, whole."""
    monkeypatch.setenv("HUBCTL_HTTP_PARALLEL_MIN", str(1 << 20))
    old, new = _data(3_000_000, 1), _data(3_000_000, 2)
    url = http_server.add_file("/moving.safetensors", old)
    etag = '"' + _sha(old)[:40] + '"'
    http_server.replace_after("/moving.safetensors", new, after=after)
    lf = pin_file(FileRef(path="m.safetensors", source=url))
    assert (lf.sha256, lf.size) == (_sha(new), len(new))
    assert Store().blob_path(lf.sha256).read_bytes() == new
    _no_stray_blobs(_sha(new))
    ranged = [r for r in http_server.stats.matching(method="GET") if r.range and r.status == 206]
    assert ranged and all(r.headers.get("if-range") == etag for r in ranged[:after])


def test_a_file_replaced_by_one_of_another_size_mid_download_is_fetched_again_whole(http_server, monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_PARALLEL_MIN", str(1 << 20))
    old, new = _data(3_000_000, 1), _data(3_500_000, 3)
    url = http_server.add_file("/grows.safetensors", old)
    http_server.replace_after("/grows.safetensors", new, after=2)
    lf = pin_file(FileRef(path="m.safetensors", source=url))
    assert (lf.sha256, lf.size) == (_sha(new), len(new))
    _no_stray_blobs(_sha(new))


def test_every_ranged_part_request_carries_the_first_responses_etag(http_server, monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_PARALLEL_MIN", str(1 << 20))
    data = _data(2_000_000, 4)
    url = http_server.add_file("/steady.safetensors", data)
    pin_file(FileRef(path="s.safetensors", source=url))
    head = http_server.stats.matching(method="HEAD")[0]
    assert head.status == 200
    etag = '"' + _sha(data)[:40] + '"'
    gets = http_server.stats.matching(method="GET")
    assert len(gets) == 4 and all(g.headers.get("if-range") == etag for g in gets)
    assert http_server.stats.total_bytes == len(data)  # nothing fetched twice when nothing changed


def test_a_server_whose_every_answer_has_another_etag_still_downloads_as_one_stream(http_server, monkeypatch):
    """Not an attack but the price of checking: a CDN whose GET ETag never matches its HEAD's makes every check
    fail; after a few restarts the file comes as one plain stream (which cannot be a mix)."""
    monkeypatch.setenv("HUBCTL_HTTP_PARALLEL_MIN", str(1 << 20))
    data = _data(2_000_000, 13)
    url = http_server.add_file("/vary.safetensors", data)
    http_server.faults.set(vary_etag=True)
    lf = pin_file(FileRef(path="v.safetensors", source=url))
    assert lf.sha256 == _sha(data)
    assert http_server.stats.count(method="HEAD") == 4  # the first plan, then three restarts


# --------------------------------------------------------------------------------- issue 10, defect 3
def test_a_body_cut_short_when_the_head_gave_no_length_is_resumed_not_pinned_short(http_server):
    data = _data(4000, 5)
    url = http_server.add_file("/cfg/config.json", data)
    http_server.faults.set(hide_length=("HEAD",), cut_at=1500)
    lf = pin_file(FileRef(path="config.json", source=url))
    assert (lf.size, lf.sha256) == (4000, _sha(data))
    gets = http_server.stats.matching(method="GET")
    assert [g.range for g in gets] == [None, "bytes=1500-"]
    assert http_server.stats.total_bytes == 4000


def test_a_body_cut_short_on_every_try_fails_with_exit_3_and_pins_nothing(http_server):
    """A server without Range support that drops every body at byte 1500 (the HEAD had no length)."""
    data = _data(4000, 6)
    url = http_server.add_file("/cfg/cut.json", data)
    http_server.faults.set(hide_length=("HEAD",), ignore_range=True, cut_at=1500, cut_times=None)
    with pytest.raises(SourceError) as ei:
        pin_file(FileRef(path="cut.json", source=url))
    assert ei.value.exit_code == 3 and "gave up after 3 tries" in str(ei.value) and "\n" not in str(ei.value)
    _no_stray_blobs()


def test_a_content_length_longer_than_the_body_is_never_a_complete_file(http_server):
    data = _data(4000, 7)
    url = http_server.add_file("/cfg/liar.json", data)
    http_server.faults.set(hide_length=("HEAD",), wrong_length=2500)
    with pytest.raises(SourceError) as ei:
        pin_file(FileRef(path="liar.json", source=url))
    assert ei.value.exit_code == 3
    _no_stray_blobs()


# -------------------------------------------------------------------------------- issue 10, defect 13
CONFIG = b'{"_class_name": "UNet2DConditionModel", "sample_size": 64}\n'


def _cached_config(hub_server) -> Path:
    from huggingface_hub import hf_hub_download

    hub_server.create_repo("org/model", {"unet/config.json": CONFIG, "unet/w.safetensors": _data(1_200_000, 8)})
    path = Path(hf_hub_download("org/model", "unet/config.json", endpoint=hub_server.endpoint))
    assert path.read_bytes() == CONFIG
    return path


def _edit_in_place(path: Path, data: bytes) -> None:
    """What an editor does to a file in the HF cache: the snapshot link is followed and the blob changes."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_pinning_a_config_never_trusts_a_locally_edited_copy_in_the_hf_cache(hub_server):
    path = _cached_config(hub_server)
    _edit_in_place(path, CONFIG.replace(b"64", b"96"))
    lf = pin_file(FileRef(path="unet/config.json", source="hf://org/model/unet/config.json"))
    assert (lf.sha256, lf.size) == (_sha(CONFIG), len(CONFIG))
    assert Store().blob_path(lf.sha256).read_bytes() == CONFIG
    _no_stray_blobs(_sha(CONFIG))


def test_pinning_a_config_reuses_an_unedited_copy_in_the_hf_cache_without_downloading(hub_server):
    _cached_config(hub_server)
    hub_server.stats.reset()
    lf = pin_file(FileRef(path="unet/config.json", source="hf://org/model/unet/config.json"))
    assert lf.sha256 == _sha(CONFIG)
    assert hub_server.stats.count(method="GET") == 0  # one HEAD for the commit and ETag; no body


def test_offline_pinning_refuses_a_locally_edited_config_in_the_hf_cache(hub_server, monkeypatch):
    path = _cached_config(hub_server)
    _edit_in_place(path, CONFIG.replace(b"64", b"96"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError) as ei:
        pin_file(FileRef(path="unet/config.json", source="hf://org/model/unet/config.json"))
    assert ei.value.exit_code == 3 and "changed" in str(ei.value) and "\n" not in str(ei.value)
    _no_stray_blobs()


def test_offline_pinning_of_an_edited_lfs_blob_pins_the_hubs_sha256_and_installing_it_refuses(hub_server, monkeypatch):
    from huggingface_hub import hf_hub_download

    from hubctl.lock.lockfile import LockedPackage
    from hubctl.sources.fetch import install_packages

    weights = _data(1_200_000, 9)
    hub_server.create_repo("org/w", {"w.safetensors": weights})
    path = Path(hf_hub_download("org/w", "w.safetensors", endpoint=hub_server.endpoint))
    _edit_in_place(path, weights[:-1] + b"\x00")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lf = pin_file(FileRef(path="w.safetensors", source="hf://org/w/w.safetensors"))
    assert (lf.sha256, lf.size) == (_sha(weights), len(weights))  # the name the HF cache gave it, not the edit
    with pytest.raises(SourceError) as ei:
        install_packages([LockedPackage("w", "1.0", "checkpoint", "sd1", "fp16", (lf,))], progress=False)
    assert ei.value.exit_code == 3 and "sha256 mismatch" in str(ei.value)
    _no_stray_blobs()


# ----------------------------------------------------------------------- issue 10, cause 3 (local resume)
def test_resuming_a_local_copy_notices_an_edit_that_kept_size_and_mtime(tmp_path, monkeypatch):
    """A copy of a local file is interrupted; the file is then edited in place and its mtime put back (`cp -p`,
    `rsync -t`, `os.utime`). The next pin must copy the new bytes from the start, not finish the old copy."""
    import hubctl.store.partial as partial

    src = tmp_path / "model.safetensors"
    old = _data(9 << 20, 10)  # more than one 8 MiB read: the first read lands in the partial before the failure
    src.write_bytes(old)
    real = partial._pwrite
    writes = {"n": 0}

    def failing_second_write(fd, data, off):
        writes["n"] += 1
        if writes["n"] == 2:
            raise OSError(5, "Input/output error")
        return real(fd, data, off)

    monkeypatch.setattr(partial, "_pwrite", failing_second_write)
    with pytest.raises(OSError):
        pin_file(FileRef(path="model.safetensors", source=str(src)))
    monkeypatch.setattr(partial, "_pwrite", real)
    st = src.stat()
    new = _data(8 << 20, 12) + old[8 << 20:]  # same size; the part already copied changes
    _edit_in_place(src, new)
    assert src.stat().st_mtime_ns == st.st_mtime_ns and src.stat().st_size == st.st_size
    lf = pin_file(FileRef(path="model.safetensors", source=str(src)))
    assert lf.sha256 == _sha(new)
    assert Store().blob_path(lf.sha256).read_bytes() == new
