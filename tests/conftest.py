"""Test-wide set-up: every test gets its own HUBCTL_HOME and HF cache, no network, and an in-process CLI.

Fixture modules live in tests/fixtures/ (one concern each) and are loaded as plugins below:
  servers.py  real HTTP servers on 127.0.0.1 (a Hub-compatible server and a plain Range server)
  demo.py     the offline demo hub (tiny real diffusers models), built once per session
  sparse.py   real-shaped SD1/SD2/SDXL safetensors headers written as sparse files
  serve.py    `hubctl serve` as a real process on 127.0.0.1 with the demo's tiny models
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# Two xdist workers share two cores: one torch thread each keeps tiny generations fast (and the same
# bytes: results do not depend on the thread count for the tiny models, but timings do by 10x).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# Property tests explore new inputs on every local run; under CI they replay a fixed sequence so a
# submission's result does not depend on the draw (run locally to keep exploring).
from hypothesis import settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hyp_settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.demo",
    "tests.fixtures.sparse",
    "tests.fixtures.serve",
]


@pytest.fixture(autouse=True)
def hubctl_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HUBCTL_HOME and HF cache for each test; no token, no real Hub."""
    home = tmp_path_factory.mktemp("hubctl-home")
    monkeypatch.setenv("HUBCTL_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUBCTL_DATABASE_URL", "CIVITAI_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    isolate_huggingface_hub(monkeypatch)
    yield home
    from hubctl import db

    db.dispose_all()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.stdout)


@pytest.fixture
def cli():
    """Run the hubctl CLI in-process: ``cli("search", "sd", "--json")`` -> CliResult."""
    from typer.testing import CliRunner

    from hubctl.cli.app import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        r = runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)
        return CliResult(r.exit_code, r.stdout, r.stderr)

    return run


def isolate_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub reads its cache and token paths once, at import: point them at this test's HF_HOME
    so no test sees another test's cache, or the user's real cache and stored token."""
    import huggingface_hub.constants as constants

    home = os.environ["HF_HOME"]
    hub_cache = os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub"))
    monkeypatch.setattr(constants, "HF_HOME", home)
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "default_cache_path"):
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, hub_cache)
    for name, value in (("HF_ASSETS_CACHE", "assets"), ("HF_XET_CACHE", "xet"), ("HF_TOKEN_PATH", "token"),
                        ("HF_STORED_TOKENS_PATH", "stored_tokens"), ("AGENT_HARNESSES_PATH", ".agent_harnesses.json")):
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, os.path.join(home, value))
