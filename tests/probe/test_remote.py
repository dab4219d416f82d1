"""Remote header reads against real loopback servers: a plain HTTP Range server (with a knob to ignore
Range) and a Hub-compatible server read through huggingface_hub's URL and auth conventions. At most two
requests, at most header + 100 KB on the wire, whatever the file size."""

from __future__ import annotations

import pytest

from hubctl.errors import IncompleteFile, SourceError
from hubctl.registry.families import default_families
from hubctl.probe import probe
from hubctl.probe.remote import read_remote_header
from tests.fixtures.sparse import write_safetensors

FAMS = default_families()


def test_sparse_4gb_file_header_read_transfers_under_200kb(http_server, sparse, tmp_path) -> None:
    # SD2 single file in fp32 (like 768-v-ema.safetensors): 5.2 GB on paper, a 168 KB header
    src = sparse.get("sd2-ldm")
    from hubctl.probe.header import read_header

    h = read_header(src)
    big = write_safetensors(tmp_path / "sd2-fp32.safetensors", {k: ("F32", t.shape) for k, t in h.tensors.items()})
    assert big.stat().st_size > 4 * 10**9
    url = http_server.add_file("/m/sd2.safetensors", big)
    p = probe(url, families=FAMS)
    assert (p.kind, p.family, p.size) == ("checkpoint", "sd2", big.stat().st_size)
    assert http_server.stats.count(method="GET") <= 2
    header_len = h.header_len
    assert http_server.stats.total_bytes < 200_000
    assert http_server.stats.total_bytes <= 8 + header_len + 100_001  # header + 100 KB at most


def test_small_header_needs_one_request(http_server, sparse) -> None:
    url = http_server.add_file("/l.safetensors", sparse.get("sd1-emb-kohya"))
    r = read_remote_header(url)
    assert r.requests == 1 and r.header.tensors["emb_params"].shape == (4, 768)
    assert http_server.stats.count(method="GET") == 1


def test_header_longer_than_100kb_takes_a_second_range(http_server, tmp_path) -> None:
    f = write_safetensors(tmp_path / "many.safetensors", {f"tensor.number.{i:05d}.weight": ("F16", [2, 2]) for i in range(4000)})
    n = int.from_bytes(f.read_bytes()[:8], "little")
    assert n > 100_000
    url = http_server.add_file("/many.safetensors", f)
    r = read_remote_header(url)
    assert r.requests == 2 and len(r.header.tensors) == 4000
    ranges = [c[2] for c in http_server.stats.calls if c[0] == "GET"]
    assert ranges == ["bytes=0-100000", f"bytes=100001-{8 + n - 1}"]
    assert http_server.stats.total_bytes <= 8 + n


def test_server_ignoring_range_is_read_only_as_far_as_the_header(http_server, sparse) -> None:
    http_server.faults.ignore_range = True
    src = sparse.get("sd1-unet")
    url = http_server.add_file("/u.safetensors", src)
    p = probe(url, families=FAMS)
    assert (p.kind, p.family) == ("checkpoint", "sd1")
    assert http_server.stats.count(method="GET") == 1
    # the server streams 1.7 GB; we close after the header: a few hundred KB at most went out
    assert http_server.stats.total_bytes < 1_000_000


def test_truncated_remote_file_is_incomplete(http_server, tmp_path) -> None:
    f = write_safetensors(tmp_path / "t.safetensors", {"w": ("F16", [512, 512])})
    f.write_bytes(f.read_bytes()[:-100])
    url = http_server.add_file("/t.safetensors", f)
    with pytest.raises(IncompleteFile, match="incomplete download: expected"):
        read_remote_header(url)


def test_missing_remote_file_is_a_source_error_exit_3(cli, http_server) -> None:
    r = cli("inspect", http_server.url_for("/nope.safetensors"))
    assert r.exit_code == 3 and "not found" in r.stderr


def test_redirect_is_followed(http_server, sparse) -> None:
    http_server.add_file("/m/e.safetensors", sparse.get("sd2-emb-kohya"))
    http_server.add_redirect("/dl/1", "/m/e.safetensors")
    p = probe(http_server.url_for("/dl/1"), families=FAMS)
    assert (p.kind, p.family) == ("embedding", "sd2")


def test_hf_url_reads_the_header_through_the_hub(hub_server, sparse) -> None:
    lora = sparse.get("sd2-lora-kohya")
    hub_server.create_repo("org/style", {"lora/style.safetensors": lora})
    p = probe("hf://org/style/lora/style.safetensors", families=FAMS)
    assert (p.kind, p.family, p.rank, p.size) == ("lora", "sd2", 8, lora.stat().st_size)
    gets = [r for r in hub_server.stats.requests if r.method == "GET"]
    data = [r for r in gets if r.status in (200, 206)]
    assert len(data) == 2 and all(r.server == "cdn" for r in data)  # header is 136 KB: two ranges
    assert len(gets) == 3  # one redirect from the Hub to its CDN, then both ranges straight to the CDN
    assert "authorization" not in {k.lower() for r in data for k in r.headers}


def test_hf_url_with_a_revision_and_a_token_never_leaks_it(hub_server, sparse, monkeypatch, cli) -> None:
    emb = sparse.get("sd1-emb-kohya")
    sha = hub_server.create_repo("org/private", {"e.safetensors": emb}, token="hf_secretsecret123")
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecret123")
    r = cli("inspect", f"hf://org/private@{sha}/e.safetensors", "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["family"] == "sd1"
    assert "hf_secretsecret123" not in r.output
    monkeypatch.setenv("HF_TOKEN", "hf_wrongwrongwrong1")
    bad = cli("inspect", f"hf://org/private@{sha}/e.safetensors")
    assert bad.exit_code == 3 and "hf_wrongwrongwrong1" not in bad.output


def test_hub_offline_mode_is_honoured(monkeypatch) -> None:
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(SourceError, match="HF_HUB_OFFLINE"):
        probe("hf://org/x/y.safetensors", families=FAMS)


def test_url_token_never_appears_in_output(cli, http_server) -> None:
    url = http_server.url_for("/missing.safetensors") + "?token=sekrit-abc123"
    r = cli("inspect", url)
    assert r.exit_code == 3
    assert "sekrit-abc123" not in r.output and "token=***" in r.stderr


def test_protected_https_file_needs_the_hosts_token_from_the_environment(cli, http_server, sparse, monkeypatch) -> None:
    http_server.add_file("/p/e.safetensors", sparse.get("sd1-emb-kohya"), token="t0ken-xyz")
    r = cli("inspect", http_server.url_for("/p/e.safetensors"))
    assert r.exit_code == 3 and "needs authentication" in r.stderr
    port = http_server.url.rsplit(":", 1)[1]
    monkeypatch.setenv(f"HUBCTL_AUTH_127_0_0_1_{port}", "t0ken-xyz")
    ok = cli("inspect", http_server.url_for("/p/e.safetensors"), "--json")
    assert ok.exit_code == 0 and ok.json()["family"] == "sd1"
    assert "t0ken-xyz" not in ok.output
