"""First contact, tried as a new user would (issue 17 items 14, 15, 16 and 20).

- 14: without the `[run]` extra, `hubctl demo`, `hubctl generate` and `hubctl.load_pipeline()` say in one line
  what is missing and the exact `pip install 'hubctl[run]'`, and leave nothing behind. The extra is made
  missing for real in a subprocess: a `sitecustomize` on its path sets ``sys.modules[name] = None`` for torch,
  diffusers and transformers, which is what Python does for a module that cannot be imported (import raises
  ModuleNotFoundError, ``importlib.util.find_spec`` answers None).
- 15: Ctrl-C (a real SIGINT to a real process) during a demo step or the hub build stops at once, exit 130,
  with nothing half-built left.
- 16: after `hubctl demo`, the README's tour resolves as on a fresh machine: the demo keeps to its own home.
- 20: `runs list` shows whole run ids on a narrow terminal, NO_COLOR, `hubctl help`, `-V`, completion, help
  examples that exist, unknown packages answered alike with names a search finds, plurals.
"""

from __future__ import annotations

import hashlib
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubctl.demo.hub import DemoHub
from tests._hubs import write_one_file_registry

REPO = Path(__file__).resolve().parents[2]
PIP = "pip install 'hubctl[run]'"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200", HUBCTL_NO_FAST_EXIT="1", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ 14: no [run] extra


@pytest.fixture
def no_run_extra(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess in which torch, diffusers and transformers cannot be imported."""
    blocker = tmp_path / "no-run-extra"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor _name in ('torch', 'diffusers', 'transformers'):\n    sys.modules[_name] = None\n"
    )
    return _env(PYTHONPATH=f"{blocker}{os.pathsep}{REPO}")


def test_the_blocker_really_hides_the_run_extra(no_run_extra: dict[str, str]) -> None:
    r = subprocess.run([sys.executable, "-c", "import torch"], env=no_run_extra, capture_output=True, text=True)
    assert r.returncode == 1 and "ModuleNotFoundError" in r.stderr


def test_demo_without_the_run_extra_says_what_is_missing_and_leaves_nothing(no_run_extra, tmp_path: Path, hubctl_home: Path) -> None:
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "hubctl", "demo", "--out", str(out)], env=no_run_extra,
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_line(r.stderr)
    assert PIP in line and "torch" in line and "hubctl demo" in line
    assert not out.exists()
    assert sorted(p.name for p in hubctl_home.iterdir()) == []


def test_generate_without_the_run_extra_says_what_is_missing(no_run_extra, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "hubctl", "generate", "--prompt", "a cat"], env=no_run_extra,
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_line(r.stderr)
    assert PIP in line and "hubctl generate" in line
    assert list(tmp_path.glob("hubctl-out*")) == []


def test_load_pipeline_without_the_run_extra_raises_one_line_that_is_an_import_error(no_run_extra, tmp_path: Path) -> None:
    code = ("import hubctl\ntry:\n    hubctl.load_pipeline()\nexcept ImportError as e:\n"
            "    print(type(e).__name__, e)\n")
    r = subprocess.run([sys.executable, "-c", code], env=no_run_extra, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("MissingExtra hubctl.load_pipeline() needs torch") and PIP in r.stdout
    assert len(r.stdout.strip().splitlines()) == 1


def test_commands_that_need_no_torch_work_without_the_run_extra(no_run_extra, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "hubctl", "search", "canny"], env=no_run_extra, capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and "controlnet-canny" in r.stdout, r.stderr


# ------------------------------------------------------------------------------------------ 15: Ctrl-C


_DRIVER = """
import sys
import hubctl.cli.demo_cmd as d
import hubctl.demo.hub as h
from hubctl.cli.demo_cmd import Step

hub_root, out, registry = sys.argv[1:4]
h.build_demo_hub = lambda _out: h.open_demo_hub(hub_root)  # the session's hub, already built


def add_net() -> str:
    from hubctl.registry.manage import add_registry

    add_registry(registry, name="net")
    return "added the net registry"


d.walk_steps = lambda hub: [
    Step("Search the index", "", ["search", "demo"]),
    Step("Install slowly", "", ["install", "net-style"], prepare=add_net),
    Step("Search again", "", ["search", "demo"]),
]
sys.argv = ["hubctl", "demo", "--out", out]
from hubctl.cli.app import main

main()
"""


def _net_registry(tmp_path: Path, url: str, data: bytes) -> Path:
    return write_one_file_registry(tmp_path / "reg", "net-style", url, data, family="demo-sd1")


def test_ctrl_c_during_a_demo_step_stops_the_demo_at_once_with_exit_130(demo_hub: DemoHub, http_server, tmp_path: Path, hubctl_home: Path) -> None:
    data = hashlib.sha256(b"slow").digest() * 20_000  # 640 KB at 20 KB/s: the step runs for half a minute
    url = http_server.add_file("/net-style.safetensors", data)
    http_server.faults.set(rate=20_000)
    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(demo_hub.root), str(out), str(_net_registry(tmp_path, url, data))],
                            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while http_server.stats.count(method="GET", path="/net-style.safetensors") == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the install step never started"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 15, "Ctrl-C took too long"
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert "Step 2: Install slowly" in stdout and "Step 3" not in stdout and "Summary" not in stdout
    assert "failed: exited 130" not in stdout
    from hubctl.store.blobs import Store

    assert not Store(out / "home" / "store").has_blob(hashlib.sha256(data).hexdigest())  # no half blob
    assert sorted(p.name for p in hubctl_home.iterdir()) == []  # the user's home was never touched


def test_ctrl_c_while_the_demo_hub_builds_leaves_no_half_built_folder(tmp_path: Path, hubctl_home: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "hubctl", "demo", "--out", str(out)], env=_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not list(out.glob(".build-*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------------ 16: the demo's own home


@pytest.mark.parametrize("state", ["home", "database-url"])
def test_after_the_demo_the_readme_tour_resolves_as_on_a_fresh_machine(cli, demo_hub: DemoHub, tmp_path: Path, monkeypatch,
                                                                        hubctl_home: Path, state: str) -> None:
    if state == "database-url":  # the user keeps their state database elsewhere: the demo must not use it either
        monkeypatch.setenv("HUBCTL_DATABASE_URL", f"sqlite:///{tmp_path / 'users-state.db'}")
    # Stand-ins, said plainly: the build opens the session's hub (the real build is tested elsewhere) and the
    # walk is the real one without its last step, generate (covered by tests/e2e/test_demo_cli.py).
    import hubctl.cli.demo_cmd as demo_cmd
    import hubctl.demo.hub as demo_mod

    real_walk = demo_cmd.walk_steps
    monkeypatch.setattr(demo_mod, "build_demo_hub", lambda out: demo_mod.open_demo_hub(demo_hub.root))
    monkeypatch.setattr(demo_cmd, "walk_steps", lambda hub: [s for s in real_walk(hub) if s.args[0] != "generate"])
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "hubctl-demo"
    r = cli("demo", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "Step 4: Install by name" in r.stdout and "0 failed" in r.stdout
    assert os.environ["HUBCTL_HOME"] == str(hubctl_home)  # given back
    assert (os.environ.get("HUBCTL_DATABASE_URL") is not None) == (state == "database-url")
    # the demo did install, in its own home
    demo_home = cli("list", "--json", env={"HUBCTL_HOME": str(out / "home"), "HUBCTL_DATABASE_URL": None})
    assert {p["name"] for p in demo_home.json()} >= {"demo-sd", "demo-style"}
    # ... and the user's own state resolves as before: nothing installed, no demo registry
    assert cli("list", "--json").json() == []
    assert [e["name"] for e in cli("registry", "list", "--json").json()] == ["default"]
    # the README's tour: resolution goes through (the download then fails offline: exit 3, not a refusal)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = cli("install", "stable-diffusion==1.5", "easynegative")
    assert r.exit_code == 3, r.output
    assert "needs family" not in r.stderr and "HF_HUB_OFFLINE" in r.stderr


# ------------------------------------------------------------------------------------------ 20: rough edges


def _pty_run(args: list[str], *, columns: int, **env: str) -> str:
    """Run ``python -m hubctl ARGS`` on a real pseudo-terminal of ``columns`` columns; its whole output."""
    master, slave = pty.openpty()
    e = _env(COLUMNS=str(columns), LINES="50", TERM="xterm-256color", **env)
    if "NO_COLOR" not in env:
        e.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "hubctl", *args], stdin=slave, stdout=slave, stderr=slave, env=e)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def runs(hubctl_home: Path) -> list[str]:
    from hubctl.run.records import RunRecord, add_run, new_run_id

    ids = []
    for i in range(2):
        rec = RunRecord(id=new_run_id(), created=f"2026-01-0{i + 1}T10:00:00Z", prompt="a photo of a cat " * 6, base="demo-sd 1.4",
                        seed=42, steps=4, width=64, height=64, device="cpu", dtype="fp32", image_sha256="ab" * 32, sampler="pndm")
        ids.append(add_run(rec).id)
    from hubctl import db

    db.dispose_all()
    return ids


@pytest.mark.parametrize("columns", [60, 80, 100, 139])
def test_runs_list_shows_whole_run_ids_on_a_narrow_terminal(runs: list[str], columns: int) -> None:
    text = _pty_run(["runs", "list"], columns=columns, NO_COLOR="1")
    for run_id in runs:
        assert run_id in text, text
    assert max(len(line) for line in text.splitlines()) <= columns


def test_runs_list_shows_whole_run_ids_when_piped(cli, runs: list[str]) -> None:
    r = cli("runs", "list", env={"COLUMNS": "80"})
    assert r.exit_code == 0
    assert all(run_id in r.stdout for run_id in runs)


@pytest.mark.parametrize("args", [["check", "demo-sd==1.4", "demo-style==2.0"], ["check", "demo-sd==1.4", "demo-style==1.0"],
                                  ["info", "demo-sd"], ["search", "demo"], ["install", "no-such-thing"]],
                         ids=["check-refused", "check-ok", "info", "search", "error-line"])
def test_no_color_is_honoured_on_a_terminal(demo_registry, args: list[str]) -> None:
    coloured = _pty_run(args, columns=120)
    assert "\x1b[" in coloured  # the terminal does get colour without NO_COLOR
    plain = _pty_run(args, columns=120, NO_COLOR="1")
    assert "\x1b[" not in plain, plain


def test_hubctl_help_and_help_for_a_command(cli) -> None:
    r = cli("help")
    assert r.exit_code == 0 and "install" in r.stdout and "Commands" in r.stdout
    r = cli("help", "registry", "add")
    assert r.exit_code == 0 and "Usage: hubctl registry add" in r.stdout
    r = cli("help", "no-such")
    assert r.exit_code == 2 and "no command 'no-such'" in r.stderr


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(cli, flag: str) -> None:
    r = cli(flag)
    assert r.exit_code == 0 and re.match(r"hubctl \S+", r.stdout)


def test_shell_completion_completes_commands() -> None:
    env = _env(_HUBCTL_COMPLETE="complete_bash", COMP_WORDS="hubctl ins", COMP_CWORD="1")
    r = subprocess.run([sys.executable, "-m", "hubctl"], env=env, capture_output=True, text=True, timeout=60)
    assert set(r.stdout.split()) == {"inspect", "install"}, r.stdout + r.stderr


@pytest.mark.parametrize("command", ["install", "add"])
def test_help_examples_name_packages_that_exist(cli, command: str) -> None:
    text = " ".join(re.sub(r"-\n\s+", "-", cli(command, "-h").stdout).split())  # help wraps after a hyphen
    m = re.search(r"e\.g\. (.*?)\.(?:\s|$)", text)
    assert m, text
    names = re.findall(r"'?([a-z][a-z0-9-]+)(?:[=<>!~][^' ]*)?'?", m.group(1))
    assert len(names) == 2, (names, text)
    for n in names:
        assert cli("info", n).exit_code == 0, n


@pytest.mark.parametrize("args", [["info"], ["install"], ["check", "X", "easynegative"]], ids=["info", "install", "check"])
def test_a_misspelt_package_is_answered_with_names_a_search_finds(cli, args: list[str]) -> None:
    args = [("stable-difusion" if a == "X" else a) for a in args]
    if args[0] != "check":
        args = [*args, "stable-difusion"]
    r = cli(*args)
    assert r.exit_code == (2 if args[0] == "check" else 1), r.output
    m = re.search(r"did you mean: ([^?]+)\?", r.stderr)
    assert m, r.stderr
    for name in m.group(1).split(", "):
        found = cli("search", name, "--json").json()
        assert name in [row["name"] for row in found]


def test_one_package_and_one_try_are_singular(cli, demo_registry, http_server, tmp_path: Path, monkeypatch) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "hubctl.toml").write_text('requires = ["demo-token"]\n')
    monkeypatch.chdir(proj)
    r = cli("sync")
    assert r.exit_code == 0, r.output
    assert "1 package, 1 file," in r.stderr
    data = b"x" * 100
    url = http_server.add_file("/flaky.safetensors", data)
    http_server.faults.set(fail_times=10, fail_status=503)
    reg = _net_registry(tmp_path, url, data)
    assert cli("registry", "add", str(reg), "--name", "net").exit_code == 0
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "1")
    r = cli("install", "net-style")
    assert r.exit_code == 3 and "gave up after 1 try)" in r.stderr, r.stderr
