"""Start-up order of the app (in-process, Starlette's TestClient running the app's lifespan): `/v1/health` and
`POST /v1/generate` answer 503 until the verified set is loaded, then 200; a load that fails stops the server
(the CLI then prints its one line). The real load_set runs; the test only holds it back until it has looked."""

from __future__ import annotations

import threading
import time

import pytest

from hubctl.errors import Refused

pytestmark = pytest.mark.slow


@pytest.fixture
def app_parts(serve_home, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    import hubctl.run.batch as batch
    from hubctl.run.verify import verify_locked_set

    monkeypatch.setenv("HUBCTL_HOME", str(serve_home.home))
    return batch, verify_locked_set(serve_home.lock), tmp_path


def test_health_and_generate_answer_503_until_the_pipeline_is_loaded(app_parts, monkeypatch):
    from fastapi.testclient import TestClient

    from hubctl.serve.app import ServeState, create_app

    batch, vset, out = app_parts
    gate = threading.Event()
    real = batch.load_set

    def held_load(*a, **kw):  # type: ignore[no-untyped-def]
        gate.wait(120)
        return real(*a, **kw)

    monkeypatch.setattr(batch, "load_set", held_load)
    with TestClient(create_app(ServeState(vset=vset, out_dir=out, device="cpu")), base_url="http://127.0.0.1") as c:
        h = c.get("/v1/health")
        assert h.status_code == 503 and h.json()["status"] == "loading"
        r = c.post("/v1/generate", json={"prompt": "too early", "steps": 1})
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        gate.set()
        end = time.monotonic() + 120
        while c.get("/v1/health").status_code != 200:
            assert time.monotonic() < end
            time.sleep(0.1)
        r = c.post("/v1/generate", json={"prompt": "now", "steps": 1, "seed": 1})
        assert r.status_code == 200, r.text


def test_a_pipeline_that_cannot_load_stops_the_server_with_its_reason(app_parts, monkeypatch):
    from fastapi.testclient import TestClient

    from hubctl.serve.app import ServeState, create_app

    batch, vset, out = app_parts

    def failing_load(*a, **kw):  # type: ignore[no-untyped-def]  # stands in for a diffusers load failure (no way to cause one here)
        raise Refused("demo-sd 1.4: diffusers could not load it (OSError: disk on fire)")

    monkeypatch.setattr(batch, "load_set", failing_load)
    stopped = threading.Event()
    state = ServeState(vset=vset, out_dir=out, device="cpu", on_fatal=stopped.set)
    with TestClient(create_app(state), base_url="http://127.0.0.1") as c:
        assert stopped.wait(30)
        h = c.get("/v1/health")
        assert h.status_code == 503 and h.json()["status"] == "failed"
    assert isinstance(state.load_error, Refused) and "disk on fire" in str(state.load_error)
