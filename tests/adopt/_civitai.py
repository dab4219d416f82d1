"""The `civitai` fixture: a Civitai-compatible API and CDN on 127.0.0.1 (tests/servers/civitai_server.py), with
HUBCTL_CIVITAI_URL pointing at it and quick retries. Import it into a test module to use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.civitai_server import CivitaiServer


@pytest.fixture
def civitai(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[CivitaiServer]:
    srv = CivitaiServer(tmp_path_factory.mktemp("civitai-cdn")).start()
    monkeypatch.setenv("HUBCTL_CIVITAI_URL", srv.url)
    monkeypatch.setenv("HUBCTL_HTTP_BACKOFF", "0.01")
    try:
        yield srv
    finally:
        srv.stop()
