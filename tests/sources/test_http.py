"""The https:// source against a real HTTP server on 127.0.0.1 (tests/servers/range_server.py): redirects,
per-host credentials, Range/If-Range resume, parallel parts, retries and one-line errors."""

from __future__ import annotations

import hashlib

import pytest

from hubctl.errors import SourceError
from hubctl.sources import source_for
from hubctl.sources.http import HttpSource, auth_header_for
from hubctl.store.blobs import Store
from tests.servers.range_server import RangeServer


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "4")


def _data(n: int, seed: int = 7) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (n // 32 + 1))[:n]


def _fetch(url: str, data: bytes):
    src = source_for(url)
    sha = hashlib.sha256(data).hexdigest()
    return Store().fetch(sha256=sha, size=len(data), download=lambda pf: src.download(pf, expected_size=len(data)), label=url)


def _auth(rec) -> str | None:
    return next((v for k, v in rec.headers.items() if k.lower() == "authorization"), None)


def test_a_small_locked_file_is_one_get_and_an_unknown_one_a_head_and_a_get(http_server):
    data = _data(100_000)
    url = http_server.add_file("/m/a.safetensors", data)
    res = _fetch(url, data)  # size and sha256 known (a lock): no HEAD needed
    assert res.path.read_bytes() == data
    assert [c[0] for c in http_server.stats.calls] == ["GET"]
    assert http_server.stats.total_bytes == len(data)
    http_server.stats.reset()
    from hubctl.sources.base import url_key

    src = source_for(url)
    other = Store().fetch(sha256=None, size=None, key=url_key(url), download=lambda pf: src.download(pf))
    assert other.sha256 == hashlib.sha256(data).hexdigest()
    assert [c[0] for c in http_server.stats.calls] == ["HEAD", "GET"]


def test_large_files_come_in_four_ranged_parts_in_parallel(http_server, monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_PARALLEL_MIN", str(1 << 20))
    data = _data(3_000_001)
    url = http_server.add_file("/big.bin", data)
    res = _fetch(url, data)
    assert res.path.read_bytes() == data
    ranges = sorted(r for m, _, r in http_server.stats.calls if m == "GET")
    assert ranges == sorted(["bytes=0-750000", "bytes=750001-1500001", "bytes=1500002-2250002", "bytes=2250003-3000000"])
    assert http_server.stats.total_bytes == len(data)


def test_redirects_are_followed(http_server):
    data = _data(5000)
    http_server.add_file("/files/x.bin", data)
    res = _fetch(http_server.url_for("/redirect/redirect/files/x.bin"), data)
    assert res.path.read_bytes() == data


def test_per_host_token_is_sent_as_a_header_and_dropped_on_a_redirect_to_another_host(http_server, monkeypatch):
    other = RangeServer(name="cdn").start()
    try:
        data = _data(4000)
        other.add_file("/blob", data)
        http_server.add_file("/private.bin", data, token="s3cret-token")
        monkeypatch.setenv(f"HUBCTL_AUTH_127_0_0_1_{http_server.port}", "s3cret-token")
        res = _fetch(http_server.url_for("/private.bin"), data)
        assert res.path.read_bytes() == data
        Store().remove_blob(res.sha256)
        http_server.add_redirect("/dl/1", other.url_for("/blob"))
        _fetch(http_server.url_for("/dl/1"), data)
        sent = [_auth(r) for r in other.stats.requests]
        assert sent and all(a is None for a in sent)
        first = [_auth(r) for r in http_server.stats.matching(path="/dl/1")]
        assert first and all(a == "Bearer s3cret-token" for a in first)
    finally:
        other.stop()


def test_auth_header_comes_from_the_environment_per_host(monkeypatch):
    monkeypatch.setenv("CIVITAI_TOKEN", "civ-123")
    monkeypatch.setenv("HUBCTL_AUTH_EXAMPLE_ORG", "Basic dXNlcjpwYXNz")
    assert auth_header_for("civitai.com") == ("Bearer civ-123", "CIVITAI_TOKEN")
    assert auth_header_for("cdn.civitai.com")[0] == "Bearer civ-123"
    assert auth_header_for("example.org") == ("Basic dXNlcjpwYXNz", "HUBCTL_AUTH_EXAMPLE_ORG")
    assert auth_header_for("evilcivitai.com") == (None, None)


@pytest.mark.parametrize(
    ("path", "env", "expect"),
    [
        ("/auth/a.bin", None, r"401 Unauthorized: the server wants credentials: set HUBCTL_AUTH_127_0_0_1"),
        ("/auth/a.bin", "wrong-token", r"401|403 Forbidden: the credentials from HUBCTL_AUTH_127_0_0_1 do not grant access"),
        ("/missing.bin", None, r"404 Not Found"),
    ],
)
def test_http_errors_are_one_line_and_never_show_the_token(http_server, monkeypatch, path, env, expect):
    http_server.add_file("/a.bin", b"abc")
    if env:
        monkeypatch.setenv("HUBCTL_AUTH_127_0_0_1", env)
    with pytest.raises(SourceError) as ei:
        HttpSource(http_server.url_for(path)).stat()
    msg = str(ei.value)
    assert ei.value.exit_code == 3
    assert "\n" not in msg and http_server.url_for(path) in msg
    assert pytest.importorskip("re").search(expect, msg), msg
    if env:
        assert env not in msg


def test_server_errors_are_retried_with_backoff_then_succeed(http_server):
    data = _data(20_000)
    url = http_server.add_file("/flaky.bin", data)
    http_server.faults.set(fail_times=2, fail_status=503)
    res = _fetch(url, data)
    assert res.path.read_bytes() == data
    assert [r.status for r in http_server.stats.matching(method="GET")] == [503, 503, 206]


def test_a_server_that_keeps_failing_gives_up_after_the_bounded_tries(http_server):
    data = _data(1000)
    url = http_server.add_file("/down.bin", data)
    http_server.faults.set(fail_times=100, fail_status=502)
    with pytest.raises(SourceError, match=r"server error 502 Bad Gateway \(gave up after 4 tries\)"):
        _fetch(url, data)
    assert http_server.stats.count(method="GET") == 4
    assert not Store().has_blob(hashlib.sha256(data).hexdigest())


def test_a_connection_refused_is_a_clear_source_error():
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:9/x\.bin: connection refused \(gave up after 4 tries\)"):
        HttpSource("http://127.0.0.1:9/x.bin").stat()


def test_open_range_reads_only_the_asked_bytes_even_when_the_server_ignores_range(http_server):
    data = _data(200_000)
    url = http_server.add_file("/h.safetensors", data)
    with source_for(url).open_range(8, 1008) as f:
        assert f.read(2000) == data[8:1008]
    http_server.faults.set(ignore_range=True)
    with source_for(url).open_range(100, 300) as f:
        assert f.read() == data[100:300]


def test_a_changed_file_on_the_server_restarts_a_resumed_download(http_server):
    """If-Range: the partial was made from ETag v1; the server now has other bytes (v2) and answers 200."""
    old, new = _data(50_000, seed=1), _data(50_000, seed=2)
    url = http_server.add_file("/moving.bin", old, etag="v1")
    http_server.faults.set(cut_at=20_000)
    with pytest.raises(SourceError):
        src = source_for(url)
        # unknown sha256 (keyed by URL), so the partial is resumed only with the same ETag
        from hubctl.sources.base import url_key

        Store().fetch(sha256=None, size=None, key=url_key(url), download=lambda pf: (src.download(pf), (_ for _ in ()).throw(SourceError("stop"))))
    http_server.faults.reset()
    http_server.add_file("/moving.bin", new, etag="v2")
    from hubctl.sources.base import url_key

    src = source_for(url)
    res = Store().fetch(sha256=None, size=None, key=url_key(url), download=lambda pf: src.download(pf))
    assert res.sha256 == hashlib.sha256(new).hexdigest() and res.resumed == 0
