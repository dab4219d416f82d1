"""The plain Range test server behaves like a real static file server, and each fault knob does what it says.

Requests go through tests/servers/rawclient.py (http.client, raw, so that a cut or a lying Content-Length is
visible as such). The Hub-compatible server is tested in tests/servers/test_hub_server.py.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from pathlib import Path

import pytest

from tests.servers.range_server import RangeServer, parse_range
from tests.servers.rawclient import fetch

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


def test_hide_length_sends_no_content_length_and_closes_after_the_body(http_server: RangeServer, served: str) -> None:
    http_server.faults.set(hide_length=("HEAD", "GET"), cut_at=1500)
    assert "content-length" not in fetch(served, "HEAD").headers
    r = fetch(served)  # a close-delimited body cut at 1500: on the wire it looks complete
    assert "content-length" not in r.headers and r.body == DATA[:1500] and not r.incomplete
    http_server.faults.set(hide_length=("HEAD",))
    assert fetch(served).headers["content-length"] == str(len(DATA))


def test_redirect_to_sends_the_path_to_another_prefix_a_set_number_of_times(http_server: RangeServer,
                                                                          served: str) -> None:
    http_server.faults.set(redirect_to="ftp://127.0.0.1:21", redirect_times=1)
    r = fetch(served + "?a=1")
    assert r.status == 302 and r.headers["location"] == "ftp://127.0.0.1:21/f.bin?a=1"
    assert fetch(served).status == 200


def test_drip_headers_sends_the_head_of_the_reply_slowly(http_server: RangeServer, served: str) -> None:
    http_server.faults.set(drip_headers=0.002)
    t = time.monotonic()
    r = fetch(served, "HEAD")
    assert r.status == 200 and time.monotonic() - t >= 0.2  # > 100 header bytes, 2 ms each


def test_replace_after_changes_the_file_between_two_gets(http_server: RangeServer, served: str) -> None:
    etag = fetch(served, "HEAD").headers["etag"]
    http_server.replace_after("/f.bin", DATA[::-1], after=1)
    assert fetch(served, headers={"Range": "bytes=0-9"}).body == DATA[:10]
    second = fetch(served, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert second.status == 200 and second.body == DATA[::-1] and second.headers["etag"] != etag


def test_tls_server_speaks_https_and_http_on_one_port(tmp_path: Path) -> None:
    import ssl

    from tests.servers.tls import ca_file

    with RangeServer(tmp_path, tls=True) as srv:
        srv.add_file("/a", b"secret")
        ctx = ssl.create_default_context(cafile=str(ca_file()))
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5, context=ctx)
        conn.request("GET", "/a")
        assert conn.getresponse().read() == b"secret"
        conn.close()
        assert fetch(srv.url + "/a").body == b"secret"
        assert [r.scheme for r in srv.stats.requests] == ["https", "http"]


def test_vary_etag_gives_every_answer_another_etag_and_fails_if_range(http_server: RangeServer, served: str) -> None:
    http_server.faults.set(vary_etag=True)
    first, second = fetch(served, "HEAD").headers["etag"], fetch(served, "HEAD").headers["etag"]
    assert first != second
    r = fetch(served, headers={"Range": "bytes=0-9", "If-Range": second})
    assert r.status == 200 and r.body == DATA
    assert fetch(served, headers={"Range": "bytes=0-9"}).status == 206
