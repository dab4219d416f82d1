"""The one retry policy (hubctl/sources/retry.py) as a user meets it: an install that retries says so, one line
per retry on stderr ("retrying in 2 s (3/5): connection refused"), never in --json output; the Hub's metadata
requests retry by the same policy and say so the same way. Real servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import re

import pytest

from hubctl.errors import SourceError
from tests._hubs import one_file_registry


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "4")


DATA = hashlib.sha256(b"retry").digest() * 1000


def _registry(tmp_path, url: str) -> None:
    one_file_registry(tmp_path, url, DATA)


def _retry_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if ": retrying in " in x]


def test_an_install_that_retries_says_so_one_line_per_retry(cli, http_server, tmp_path):
    url = http_server.add_file("/m/n.safetensors", DATA)
    _registry(tmp_path, url)
    http_server.faults.set(fail_times=2, fail_status=503)
    r = cli("install", "net-style")
    assert r.exit_code == 0, r.output
    lines = _retry_lines(r.stderr)
    assert len(lines) == 2
    for n, line in enumerate(lines, 1):
        assert re.fullmatch(rf"{re.escape(url)}: retrying in [0-9.]+ s \({n}/4\): server error 503 Service Unavailable",
                            line), line


def test_an_install_that_cannot_connect_says_so_for_each_retry_then_gives_up(cli, tmp_path):
    url = "http://127.0.0.1:9/m/n.safetensors"  # the discard port: nothing listens
    _registry(tmp_path, url)
    r = cli("install", "net-style")
    assert r.exit_code == 3
    lines = _retry_lines(r.stderr)
    assert [x.split(" s ", 1)[1] for x in lines] == [f"({n}/4): connection refused" for n in (1, 2, 3)]
    rest = [x for x in r.stderr.splitlines() if x.strip() and x not in lines]
    assert len(rest) == 1 and "connection refused (gave up after 4 tries)" in rest[0]


def test_retries_are_not_in_json_output(cli, http_server, tmp_path):
    url = http_server.add_file("/m/n.safetensors", DATA)
    _registry(tmp_path, url)
    http_server.faults.set(fail_times=2, fail_status=503)
    r = cli("install", "net-style", "--json")
    assert r.exit_code == 0
    assert r.json()["packages"][0]["name"] == "net-style"
    assert _retry_lines(r.stdout) == [] and _retry_lines(r.stderr) == []


def test_hub_metadata_retries_use_the_same_policy_and_say_so(hub_server, capsys):
    from hubctl.progress import make_progress
    from hubctl.registry.manifest import FileRef
    from hubctl.sources.fetch import pin_file

    hub_server.create_repo("org/m", {"a.safetensors": DATA * 2})
    hub_server.faults.set(fail_times=2, fail_status=502, fail_methods=("HEAD",))
    with make_progress(True):
        lf = pin_file(FileRef(path="a.safetensors", source="hf://org/m/a.safetensors"))
    assert lf.sha256 == hashlib.sha256(DATA * 2).hexdigest()
    lines = _retry_lines(capsys.readouterr().err)
    assert [x.split(" s ", 1)[1] for x in lines] == ["(1/4): the Hub answered 502", "(2/4): the Hub answered 502"]
    assert all(x.startswith("hf://org/m/a.safetensors: retrying in ") for x in lines)


def test_hub_metadata_gives_up_after_the_policys_tries(hub_server):
    from hubctl.registry.manifest import FileRef
    from hubctl.sources.fetch import pin_file

    hub_server.create_repo("org/m", {"a.safetensors": DATA * 2})
    hub_server.faults.set(fail_times=100, fail_status=503, fail_methods=("HEAD",))
    with pytest.raises(SourceError, match=r"the Hub answered 503 \(gave up after 4 tries\)"):
        pin_file(FileRef(path="a.safetensors", source="hf://org/m/a.safetensors"))
    assert hub_server.stats.count(method="HEAD", server="hub") == 4


def test_budget_gives_back_tries_on_progress_and_bounds_the_stall_time(monkeypatch):
    from hubctl.sources.retry import Budget, Policy

    b = Budget("x", Policy(tries=3, first_delay=0.0, stall_max=10.0))
    for _ in range(10):  # every try moves on: never gives up on tries
        b.retry_or_raise("cut", progressed=True)
    with pytest.raises(SourceError, match=r"^x: cut \(gave up after stalling for 10 s in all; HUBCTL_HTTP_STALL_MAX=10\)$"):
        b.retry_or_raise("cut", progressed=True, stalled=10.0)
    b = Budget("x", Policy(tries=3, first_delay=0.0))
    b.retry_or_raise("refused")
    b.retry_or_raise("refused")
    with pytest.raises(SourceError, match=r"^x: refused \(gave up after 3 tries\)$"):
        b.retry_or_raise("refused")


def test_the_policy_reads_the_environment_and_ignores_nonsense(monkeypatch):
    from hubctl.sources.retry import policy

    monkeypatch.setenv("HUBCTL_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("HUBCTL_HTTP_SPEED_LIMIT", "nan")
    monkeypatch.setenv("HUBCTL_HTTP_STALL_MAX", "inf")
    p = policy()
    assert (p.timeout, p.speed_time, p.speed_limit, p.stall_max) == (5.0, 5.0, 1024.0, 120.0)
    monkeypatch.setenv("HUBCTL_HTTP_SPEED_TIME", "7")
    monkeypatch.setenv("HUBCTL_HTTP_SPEED_LIMIT", "0")
    assert (policy().speed_time, policy().speed_limit) == (7.0, 0.0)
