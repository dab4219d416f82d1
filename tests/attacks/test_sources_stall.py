"""Servers that never quite fail: a body dripped a few bytes a second, headers dripped a byte at a time, an answer
that never comes. Every network path (install downloads, remote `inspect` header reads, `registry add`/`update`
of a URL registry) must give up with exit 3 and one line, in seconds, not run for as long as the server likes
(issue 17, item 10: the low-speed rule HUBCTL_HTTP_SPEED_LIMIT/HUBCTL_HTTP_SPEED_TIME and the stall bound
HUBCTL_HTTP_STALL_MAX; before, HUBCTL_HTTP_TIMEOUT alone let a 1-byte/s server run on past 40 s).

The settings are small so each case takes about a second: a transfer must keep 2000 bytes/s over any
0.5 s window. Real servers on 127.0.0.1 (tests/servers: the `rate`, `drip_headers` and `delay` knobs)."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from hubctl.store.blobs import Store
from tests._hubs import one_file_registry

LIMIT_S = 12.0  # every case must end well within this (the server would keep going for minutes)


@pytest.fixture(autouse=True)
def _low_speed_rule(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_TIMEOUT", "2")
    monkeypatch.setenv("HUBCTL_HTTP_SPEED_LIMIT", "2000")
    monkeypatch.setenv("HUBCTL_HTTP_SPEED_TIME", "0.5")
    monkeypatch.setenv("HUBCTL_HTTP_STALL_MAX", "4")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "2")
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.05")


def _data(n: int) -> bytes:
    return (hashlib.sha256(b"stall").digest() * (n // 32 + 1))[:n]


def _error_line(r) -> str:
    assert "Traceback" not in r.output
    lines = [x for x in r.stderr.splitlines() if x.strip() and ": retrying in " not in x]
    assert len(lines) == 1, r.stderr
    return lines[0]


SLOW = {  # fault knobs -> words the one line must carry
    "body-drip": ({"rate": 40}, "slower than 2000 bytes/s for 0.5 s"),
    "header-drip": ({"drip_headers": 0.05}, "slower than 2000 bytes/s for 0.5 s"),
    "no-answer": ({"delay": 30.0}, "slower than 2000 bytes/s for 0.5 s"),
}


@pytest.mark.parametrize("case", list(SLOW), ids=list(SLOW))
def test_install_from_a_slow_server_gives_up_with_exit_3_in_seconds(cli, http_server, tmp_path, case):
    knobs, words = SLOW[case]
    data = _data(200_000)
    url = http_server.add_file("/m/d.safetensors", data)
    one_file_registry(tmp_path, url, data, name="drip-style")
    http_server.faults.set(**knobs, path="/m/")
    t = time.monotonic()
    r = cli("install", "drip-style")
    took = time.monotonic() - t
    assert r.exit_code == 3, r.output
    line = _error_line(r)
    assert url in line and words in line
    assert took < LIMIT_S, took
    assert cli("list", "--json").json() == []
    assert not Store().has_blob(hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("case", list(SLOW), ids=list(SLOW))
def test_inspect_of_a_slow_url_gives_up_with_exit_3_in_seconds(cli, http_server, sparse, case):
    knobs, words = SLOW[case]
    url = http_server.add_file("/m/e.safetensors", sparse.get("sd1-emb-kohya"))
    http_server.faults.set(**knobs, path="/m/")
    t = time.monotonic()
    r = cli("inspect", url)
    took = time.monotonic() - t
    assert r.exit_code == 3, r.output
    assert words in _error_line(r)
    assert took < LIMIT_S, took


def _index() -> bytes:
    m = {"name": "paper-cut", "kind": "lora", "summary": "s", "versions": [{"version": "1.0", "family": "sd1",
         "variants": [{"name": "fp16", "files": [{"path": "p.safetensors", "size": 10, "sha256": "ab" * 32,
                                                   "source": "https://example.org/p.safetensors"}]}]}]}
    return json.dumps({"hubctl-index": 1, "families": [], "manifests": [m], "pad": "x" * 20_000}).encode()


@pytest.mark.parametrize("case", list(SLOW), ids=list(SLOW))
def test_registry_add_of_a_slow_url_gives_up_with_exit_3_and_adds_nothing(cli, http_server, hubctl_home, case):
    knobs, words = SLOW[case]
    url = http_server.add_file("/reg/index.json", _index())
    http_server.faults.set(**knobs, path="/reg/")
    t = time.monotonic()
    r = cli("registry", "add", url, "--name", "web")
    took = time.monotonic() - t
    assert r.exit_code == 3 and words in _error_line(r)
    assert took < LIMIT_S, took
    assert not (hubctl_home / "registries.toml").exists()


@pytest.mark.parametrize("case", list(SLOW), ids=list(SLOW))
def test_registry_update_of_a_slow_url_gives_up_with_exit_3_and_keeps_the_index(cli, http_server, case):
    knobs, words = SLOW[case]
    url = http_server.add_file("/reg/index.json", _index())
    assert cli("registry", "add", url, "--name", "web").exit_code == 0
    http_server.faults.set(**knobs, path="/reg/")
    t = time.monotonic()
    r = cli("registry", "update", "web")
    took = time.monotonic() - t
    assert r.exit_code == 3 and words in _error_line(r)
    assert took < LIMIT_S, took
    assert cli("info", "paper-cut").exit_code == 0


def test_a_server_that_drips_forever_is_bounded_by_the_stall_limit_not_the_tries(cli, http_server, tmp_path,
                                                                               monkeypatch):
    """With many tries allowed, the total stall bound still ends it."""
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "1000")
    monkeypatch.setenv("HUBCTL_HTTP_STALL_MAX", "2")
    data = _data(200_000)
    url = http_server.add_file("/m/d.safetensors", data)
    one_file_registry(tmp_path, url, data, name="drip-style")
    http_server.faults.set(rate=400, path="/m/")
    t = time.monotonic()
    r = cli("install", "drip-style")
    assert r.exit_code == 3
    line = _error_line(r)
    assert "gave up after stalling for" in line and "HUBCTL_HTTP_STALL_MAX=2" in line
    assert time.monotonic() - t < LIMIT_S


def test_a_slow_but_steady_download_above_the_limit_completes(cli, http_server, tmp_path):
    data = _data(150_000)
    url = http_server.add_file("/m/d.safetensors", data)
    one_file_registry(tmp_path, url, data, name="drip-style")
    http_server.faults.set(rate=100_000, path="/m/")  # 1.5 s, 50 times the limit
    r = cli("install", "drip-style")
    assert r.exit_code == 0, r.output
    assert ": retrying in " not in r.stderr
    assert Store().blob_path(hashlib.sha256(data).hexdigest()).read_bytes() == data
