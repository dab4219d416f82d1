"""Redirects a hostile (or careless) server answers with: credentials must never follow a change of scheme, host
or port (HUBCTL_AUTH_<HOST>, CIVITAI_TOKEN, HF_TOKEN through HF_ENDPOINT), and only http(s) targets are followed.

Real servers on 127.0.0.1 (tests/servers): with `tls=True` one port speaks both https and http, so a redirect can
change the scheme alone, as an https page redirecting to http on the same host does. The client trusts the test
CA through SSL_CERT_FILE, as a user behind a company CA would (tests/servers/tls.py). One test per attack."""

from __future__ import annotations

import hashlib

import pytest

from hubctl.errors import SourceError
from hubctl.store.blobs import Store
from tests.servers.range_server import RangeServer

DATA = hashlib.sha256(b"redirect").digest() * 2000  # 64 000 bytes


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "2")


@pytest.fixture
def trust_test_ca(monkeypatch):
    """hubctl (and huggingface_hub) trust the test servers' CA, read from SSL_CERT_FILE like any other."""
    import huggingface_hub.utils as hfu

    import hubctl.sources.http as http
    from tests.servers.tls import ca_file

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file()))
    monkeypatch.setattr(http, "_ssl_ctx", None)
    hfu.close_session()
    yield
    hfu.close_session()


@pytest.fixture
def tls_server(tmp_path_factory, trust_test_ca):
    srv = RangeServer(tmp_path_factory.mktemp("tls"), tls=True).start()
    try:
        yield srv
    finally:
        srv.stop()


def _fetch(url: str):
    from hubctl.sources import source_for

    src = source_for(url)
    sha = hashlib.sha256(DATA).hexdigest()
    return Store().fetch(sha256=sha, size=len(DATA), label=url,
                         download=lambda pf: src.download(pf, expected_size=len(DATA)))


def _auth(rec) -> str | None:
    return rec.headers.get("authorization")


@pytest.mark.parametrize("variable", ["HUBCTL_AUTH_127_0_0_1_{port}", "HUBCTL_AUTH_127_0_0_1"])
def test_a_host_token_never_follows_an_https_to_http_redirect_on_the_same_host_and_port(tls_server, monkeypatch,
                                                                                        variable):
    tls_server.add_file("/m/a.safetensors", DATA)
    monkeypatch.setenv(variable.format(port=tls_server.port), "s3cret-host-token")
    tls_server.faults.set(redirect_to=tls_server.url, redirect_times=1)  # https://h:p/x -> http://h:p/x
    res = _fetch(tls_server.https_url + "/m/a.safetensors")
    assert res.path.read_bytes() == DATA
    first, *rest = tls_server.stats.requests
    assert (first.scheme, first.status, _auth(first)) == ("https", 302, "Bearer s3cret-host-token")
    plain = [r for r in rest if r.scheme == "http"]
    assert plain and all(_auth(r) is None for r in plain)


def test_a_host_token_never_follows_a_redirect_to_another_port(http_server, monkeypatch):
    other = RangeServer(name="other").start()
    try:
        other.add_file("/m/a.safetensors", DATA)
        http_server.add_file("/m/a.safetensors", DATA)
        monkeypatch.setenv("HUBCTL_AUTH_127_0_0_1", "s3cret-host-token")
        http_server.faults.set(redirect_to=other.url, redirect_times=1)
        _fetch(http_server.url + "/m/a.safetensors")
        assert other.stats.requests and all(_auth(r) is None for r in other.stats.requests)
    finally:
        other.stop()


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:{port}", "file://", "gopher://127.0.0.1:{port}"])
def test_a_redirect_to_anything_but_http_or_https_is_refused(http_server, target):
    http_server.add_file("/m/a.safetensors", DATA)
    http_server.faults.set(redirect_to=target.format(port=http_server.port), redirect_times=None)
    with pytest.raises(SourceError) as ei:
        _fetch(http_server.url + "/m/a.safetensors")
    msg = str(ei.value)
    assert ei.value.exit_code == 3 and "only http:// and https:// redirects are followed" in msg and "\n" not in msg
    assert [r.status for r in http_server.stats.requests] == [302]  # nothing spoke HTTP to the "ftp" port
    assert not any(Store().iter_blobs())


def test_civitai_token_is_not_sent_to_http_after_an_https_civitai_url_redirects_there(monkeypatch):
    """civitai.com cannot be served here: the header decision itself, for the URL pair a redirect would make."""
    from hubctl.sources.http import HttpSource

    monkeypatch.setenv("CIVITAI_TOKEN", "civ-s3cret")
    src = HttpSource("https://civitai.com/api/download/models/1")
    assert src._headers_for("https://civitai.com/api/download/models/1", {})[0]["Authorization"] == "Bearer civ-s3cret"
    for after in ("http://civitai.com/api/download/models/1", "https://civitai.com:8443/x",
                  "https://cdn.civitai.com/x"):
        assert "Authorization" not in src._headers_for(after, {})[0], after


@pytest.fixture
def tls_hub(tmp_path_factory, monkeypatch, trust_test_ca):
    from tests.fixtures.servers import point_huggingface_hub_at
    from tests.servers.hub_server import HubServer

    hub = HubServer(tmp_path_factory.mktemp("hub"), tls=True).start()
    point_huggingface_hub_at(hub.https_endpoint, monkeypatch)
    try:
        yield hub
    finally:
        hub.stop()


def test_hf_token_never_follows_the_hubs_redirect_from_https_to_http_on_the_same_host(tls_hub, monkeypatch):
    """HF_ENDPOINT is https; the Hub sends an LFS file to http:// on its own host and port."""
    from hubctl.lock.lockfile import LockedPackage
    from hubctl.registry.manifest import FileRef
    from hubctl.sources.fetch import install_packages, pin_file

    token = "hf_RedirectTestToken0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    tls_hub.create_repo("org/m", {"w.safetensors": DATA * 20})
    tls_hub.cdn_base = tls_hub.url  # LFS redirects point at http://127.0.0.1:<the Hub's own port>
    lf = pin_file(FileRef(path="w.safetensors", source="hf://org/m/w.safetensors"))
    install_packages([LockedPackage("m", "1.0", "checkpoint", "sd1", "fp16", (lf,))], progress=False)
    assert Store().blob_path(lf.sha256).read_bytes() == DATA * 20
    hub_https = [r for r in tls_hub.stats.matching(server="hub") if r.scheme == "https"]
    plain = [r for r in tls_hub.stats.requests if r.scheme == "http"]
    assert hub_https and all(_auth(r) == f"Bearer {token}" for r in hub_https)
    assert plain and all(_auth(r) is None for r in plain)


def test_hf_token_never_follows_a_download_redirect_from_https_to_http_on_the_same_host(tls_hub, monkeypatch):
    """A small (non-LFS) file is fetched from the Hub itself with the token; its GET is redirected to http."""
    from hubctl.sources import source_for

    token = "hf_RedirectTestToken0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    config = b'{"a": 1}\n'
    commit = tls_hub.create_repo("org/c", {"config.json": config})
    src = source_for(f"hf://org/c@{commit}/config.json")
    src.stat()  # the metadata (HEAD, over https, with the token)
    tls_hub.faults.set(redirect_to=tls_hub.url, redirect_times=1)
    res = Store().fetch(sha256=hashlib.sha256(config).hexdigest(), size=len(config),
                        download=lambda pf: src.download(pf, expected_size=len(config)))
    assert res.path.read_bytes() == config
    plain = [r for r in tls_hub.stats.requests if r.scheme == "http"]
    assert plain and all(_auth(r) is None for r in plain)


def test_hf_token_never_follows_an_inspect_redirect_from_https_to_http_on_the_same_host(tls_hub, monkeypatch, cli,
                                                                                        sparse):
    """`hubctl inspect hf://...` reads the header through the same engine: the Hub's https -> http redirect of
    an LFS file loses the token."""
    token = "hf_RedirectTestToken0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    tls_hub.create_repo("org/e", {"e.safetensors": sparse.get("sd1-emb-kohya")})
    tls_hub.cdn_base = tls_hub.url
    r = cli("inspect", "hf://org/e/e.safetensors", "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["family"] == "sd1"
    hub_https = [r for r in tls_hub.stats.matching(server="hub") if r.scheme == "https"]
    plain = [r for r in tls_hub.stats.requests if r.scheme == "http"]
    assert hub_https and all(_auth(r) == f"Bearer {token}" for r in hub_https)
    assert plain and all(_auth(r) is None for r in plain)
