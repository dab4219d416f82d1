"""The content-addressed store: blobs by sha256, read-only, atomic; partial files that resume; the stat
cache; locks that make concurrent fetches download once; gc. Real files, real SQLite, no mocks (the one
exception, an injected ENOSPC, is marked where it is used)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from hubctl.store import partial as partial_mod
from hubctl.errors import SourceError
from hubctl.sources.local import LocalSource
from hubctl.store.blobs import HashMismatch, Store, StoreError
from hubctl.store.hashes import sha256_file
from hubctl.store.partial import PartialFile


def _file(tmp_path: Path, name: str, size: int, seed: int = 0) -> tuple[Path, bytes, str]:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = bytes(b ^ (i & 0xFF) for i, b in enumerate(data[:size]))
    p = tmp_path / name
    p.write_bytes(data)
    return p, data, hashlib.sha256(data).hexdigest()


def _local_download(path: Path):
    src = LocalSource(path.as_uri(), path)
    return lambda pf: src.download(pf)


def _blob_files(st: Store) -> list[Path]:
    return [p for p in st.blobs_dir.rglob("*") if p.is_file()] if st.blobs_dir.exists() else []


def _partial_files(st: Store) -> list[Path]:
    return list(st.partial_dir.iterdir()) if st.partial_dir.exists() else []


def test_fetched_blob_is_named_by_its_sha256_read_only_and_leaves_no_partial(tmp_path):
    src, data, sha = _file(tmp_path, "a.bin", 300_000)
    st = Store()
    res = st.fetch(sha256=sha, size=len(data), download=_local_download(src))
    assert res.path == st.root / "sha256" / sha[:2] / sha
    assert res.path.read_bytes() == data
    assert not (res.path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    assert res.downloaded == len(data) and not res.reused
    assert _partial_files(st) == []
    again = st.fetch(sha256=sha, size=len(data), download=lambda pf: pytest.fail("fetched twice"))
    assert again.reused


def test_wrong_sha256_is_rejected_and_nothing_is_stored(tmp_path):
    src, data, _ = _file(tmp_path, "a.bin", 50_000)
    wrong = "0" * 64
    st = Store()
    with pytest.raises(HashMismatch) as ei:
        st.fetch(sha256=wrong, size=len(data), download=_local_download(src), label="pkg 1.0: a.bin")
    msg = str(ei.value)
    assert "pkg 1.0: a.bin" in msg and "sha256 mismatch" in msg and "nothing stored" in msg
    assert ei.value.exit_code == 3
    assert _blob_files(st) == []
    assert _partial_files(st) == []


def test_wrong_size_says_incomplete_download_with_both_numbers(tmp_path):
    src, data, sha = _file(tmp_path, "a.bin", 10_000)
    st = Store()
    with pytest.raises(SourceError, match=r"is 10000 bytes, expected 12345"):
        st.fetch(sha256=sha, size=12_345, download=lambda pf: LocalSource(src.as_uri(), src).download(pf, expected_size=12_345))

    def short(pf: PartialFile) -> None:  # a source that stops early without an error
        parts = pf.plan(None, None, 1)
        pf.write(parts[0], data[:4000])

    with pytest.raises(HashMismatch, match="incomplete download: expected 10000 bytes, found 4000"):
        st.fetch(sha256=sha, size=10_000, download=short)
    assert _blob_files(st) == []


def test_an_interrupted_fetch_resumes_from_its_partial_file(tmp_path):
    _, data, sha = _file(tmp_path, "a.bin", 1_000_000)
    st = Store()
    written: list[int] = []

    def first(pf: PartialFile) -> None:
        (part,) = pf.plan(len(data), '"v1"', 1)
        pf.write(part, data[:300_000])
        raise SourceError("connection dropped")

    with pytest.raises(SourceError):
        st.fetch(sha256=sha, size=len(data), download=first)
    assert not st.has_blob(sha)
    assert (st.partial_dir / f"{sha}.part").stat().st_size == 300_000

    def second(pf: PartialFile) -> None:
        parts = pf.plan(len(data), '"v1"', 4)  # a different split is ignored: the saved plan wins
        for p in parts:
            chunk = data[p.done : p.end]
            written.append(len(chunk))
            pf.write(p, chunk)

    res = st.fetch(sha256=sha, size=len(data), download=second)
    assert sum(written) == 700_000
    assert res.resumed == 300_000 and res.downloaded == 700_000
    assert res.path.read_bytes() == data
    assert _partial_files(st) == []


def test_a_resumed_partial_with_stale_bytes_is_thrown_away_and_fetched_again(tmp_path):
    _, data, sha = _file(tmp_path, "a.bin", 200_000)
    st = Store()

    def stale(pf: PartialFile) -> None:
        (part,) = pf.plan(len(data), None, 1)
        pf.write(part, b"\0" * 50_000)  # not the file's bytes
        raise SourceError("dropped")

    with pytest.raises(SourceError):
        st.fetch(sha256=sha, size=len(data), download=stale)
    calls = []

    def good(pf: PartialFile) -> None:
        parts = pf.plan(len(data), None, 1)
        calls.append(parts[0].done)
        for p in parts:
            pf.write(p, data[p.done : p.end])

    res = st.fetch(sha256=sha, size=len(data), download=good)
    assert calls == [50_000, 0]  # resumed once, hash failed, started from nothing
    assert res.path.read_bytes() == data


def test_partial_keyed_by_url_resumes_only_with_the_same_etag(tmp_path):
    st = Store()
    pf = PartialFile(st.partial_dir, "url-abc")
    (part,) = pf.plan(1000, '"e1"', 1)
    pf.write(part, b"x" * 400)
    pf.close()
    again = PartialFile(st.partial_dir, "url-abc")
    assert [p.done for p in again.plan(1000, '"e1"', 1)] == [400]
    again.close()
    changed = PartialFile(st.partial_dir, "url-abc")
    assert [p.done for p in changed.plan(1000, '"e2"', 1)] == [0]
    changed.discard()


def test_disk_full_leaves_no_blob_and_no_partial(tmp_path, monkeypatch):
    # Injected ENOSPC: a real tiny filesystem needs root to mount, so the store's write hook fails instead.
    src, data, sha = _file(tmp_path, "a.bin", 3_000_000)
    real = os.pwrite
    budget = {"left": 1_000_000}

    def full_disk(fd: int, buf, off: int) -> int:
        if budget["left"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, bytes(buf[: budget["left"]]), off)
        budget["left"] -= n
        return n

    monkeypatch.setattr(partial_mod, "_pwrite", full_disk)
    st = Store()
    with pytest.raises(StoreError, match="disk full") as ei:
        st.fetch(sha256=sha, size=len(data), download=_local_download(src), label="big 1.0: a.bin")
    assert "big 1.0: a.bin" in str(ei.value)
    assert _blob_files(st) == []
    assert _partial_files(st) == []


def test_not_enough_free_space_is_refused_before_any_byte_moves(tmp_path):
    st = Store()
    with pytest.raises(StoreError, match="not enough disk space"):
        st.fetch(sha256="1" * 64, size=1 << 60, download=lambda pf: pytest.fail("downloaded"))


def test_concurrent_fetches_of_one_blob_download_it_once(tmp_path):
    src, data, sha = _file(tmp_path, "a.bin", 2_000_000)
    st = Store()
    downloads = []
    gate = threading.Event()

    def slow(pf: PartialFile) -> None:
        downloads.append(1)
        gate.wait(5)
        _local_download(src)(pf)

    results = []
    threads = [threading.Thread(target=lambda: results.append(Store().fetch(sha256=sha, size=len(data), download=slow))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(downloads) == 1
    assert sorted(r.reused for r in results) == [False, True, True, True]


def test_verify_costs_a_stat_when_unchanged_and_rehashes_when_the_stat_changed(tmp_path):
    src, data, sha = _file(tmp_path, "a.bin", 100_000)
    st = Store()
    blob = st.fetch(sha256=sha, size=len(data), download=_local_download(src)).path
    assert [(c.ok, c.how) for c in st.verify([sha])] == [(True, "stat")]
    os.utime(blob, ns=(1, 1))  # same bytes, new mtime: rehash, still good, cache refreshed
    assert [(c.ok, c.how) for c in st.verify([sha])] == [(True, "hash")]
    assert [(c.ok, c.how) for c in st.verify([sha])] == [(True, "stat")]
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(10)
        f.write(b"\xff")
    (check,) = st.verify([sha])
    assert not check.ok and check.how == "hash" and "content changed" in check.problem
    assert st.verify(["2" * 64])[0].problem == "missing from the store"
    assert st.verify([sha], full=True)[0].problem == "missing from the store"  # set aside: fetched again next time


def test_gc_removes_only_unreferenced_blobs_and_dry_run_removes_nothing(tmp_path):
    st = Store()
    a, da, sa = _file(tmp_path, "a.bin", 10_000, seed=1)
    b, db_, sb = _file(tmp_path, "b.bin", 20_000, seed=2)
    st.fetch(sha256=sa, size=len(da), download=_local_download(a))
    st.fetch(sha256=sb, size=len(db_), download=_local_download(b))
    dry = st.gc({sa}, dry_run=True)
    assert dry.removed == [sb] and dry.freed == 20_000 and st.has_blob(sb)
    rep = st.gc({sa})
    assert rep.removed == [sb] and not st.has_blob(sb) and st.has_blob(sa)
    assert sb not in st.records()


def test_sha256_file_matches_hashlib(tmp_path):
    p, data, sha = _file(tmp_path, "a.bin", 9_000_001)
    assert sha256_file(p) == (sha, len(data))


def test_gc_waits_for_a_running_install_and_reads_references_under_the_lock(tmp_path):
    src, data, sha = _file(tmp_path, "a.bin", 10_000, seed=5)
    st = Store()
    refs: set[str] = set()
    done = threading.Event()
    waited = []

    holding = threading.Event()

    def install() -> None:
        with st.using():  # what install_packages holds while it fetches and records
            holding.set()
            st.fetch(sha256=sha, size=len(data), download=_local_download(src))
            time.sleep(0.3)
            refs.add(sha)  # recorded as installed before the lock is released
        done.set()

    t = threading.Thread(target=install)
    t.start()
    assert holding.wait(10)
    rep = st.gc(lambda: set(refs), on_wait=lambda: waited.append(1))
    t.join()
    assert waited == [1] and done.is_set()
    assert rep.removed == [] and st.has_blob(sha)
