"""``hubctl demo``'s walk: steps run in-process, skip when their command is not in this build, and a step
that exists but exits with the wrong code makes the demo exit 1. The full real walk runs once, as a
subprocess, in tests/e2e/test_demo_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubctl.demo.hub import DemoHub


def test_a_step_whose_command_is_missing_is_skipped_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    from hubctl.cli.demo_cmd import Step, run_step

    r = run_step(Step("Teleport", "not built yet", ["teleport", "x"]), {"search", "info"}, as_json=False)
    assert (r.status, r.exit_code) == ("skipped", None)
    assert "`hubctl teleport` is not part of this build yet" in r.note
    assert "skipped:" in capsys.readouterr().out


def test_a_step_that_exits_with_an_unexpected_code_fails(demo_registry: DemoHub) -> None:
    from hubctl.cli.demo_cmd import Step, run_step

    r = run_step(Step("Info", "", ["info", "no-such-package"]), {"info"}, as_json=True)
    assert r.status == "failed" and r.exit_code == 1 and r.note == "exited 1, expected 0"
    ok = run_step(Step("Info", "", ["info", "demo-sd"]), {"info"}, as_json=True)
    assert ok.status == "ok" and ok.exit_code == 0
    assert "demo-sd" in json.dumps(ok.output)  # --json was passed on and its output parsed


def test_walk_covers_the_main_job_with_one_refused_cross_family_check(demo_hub: DemoHub) -> None:
    from hubctl.cli.demo_cmd import walk_steps

    steps = walk_steps(demo_hub)
    assert [s.args[0] for s in steps] == ["search", "info", "inspect", "install", "check", "check", "lock", "lock", "sync", "generate"]
    refused = [s for s in steps if s.expect == 1]
    assert [s.args for s in refused] == [["check", "demo-sd==1.4", "demo-style==2.0"], ["lock"]]
    gen = steps[-1]
    assert str(demo_hub.root / "demo.png") in gen.args


def test_demo_exits_1_and_names_the_failed_step_but_runs_the_rest(
    cli, demo_hub: DemoHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-ins, said plainly: the hub build is replaced by opening the session's already-built hub (the
    # real build runs in tests/demo/test_hub.py and the e2e test), and the walk by three short real steps.
    import hubctl.cli.demo_cmd as demo_cmd
    import hubctl.demo.hub as demo_mod
    from hubctl.cli.demo_cmd import Step

    monkeypatch.setattr(demo_mod, "build_demo_hub", lambda out: demo_mod.open_demo_hub(demo_hub.root))
    monkeypatch.setattr(
        demo_cmd,
        "walk_steps",
        lambda hub: [
            Step("Look at a package", "", ["info", "no-such-package"]),
            Step("Teleport", "", ["teleport"]),
            Step("Search the index", "", ["search", "demo"]),
        ],
    )
    r = cli("demo", "--out", str(tmp_path / "unused"))
    assert r.exit_code == 1, r.output
    for heading in ("Register it as a registry", "Step 1: Look at a package", "Step 2: Teleport", "Step 3: Search the index", "Summary"):
        assert heading in r.stdout
    assert "1 step ok, 1 skipped, 1 failed" in r.stdout
    assert "failed: Look at a package: hubctl info no-such-package: exited 1, expected 0" in r.stdout
    assert "demo-style" in r.stdout  # step 3 still ran

    r = cli("demo", "--out", str(tmp_path / "unused"), "--json")
    assert r.exit_code == 1
    data = r.json()
    assert data["ok"] is False
    assert [s["status"] for s in data["steps"]] == ["failed", "skipped", "ok"]
    assert data["registry"]["name"] == "demo"


def test_demo_refuses_an_out_folder_it_did_not_make(cli, tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    r = cli("demo", "--out", str(tmp_path))
    assert r.exit_code == 2
    assert "not made by hubctl demo; choose another --out" in r.stderr
    assert "Traceback" not in r.output


def test_a_step_whose_command_crashes_fails_without_stopping_the_walk(
    cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A command with a bug, made on purpose: `search` raising NameError. The walk records the failure,
    # prints the traceback on stderr (it is a bug, not an answer) and goes on.
    import hubctl.cli.registry_cmd as registry_cmd
    from hubctl.cli.demo_cmd import Step, run_step

    def broken(*a, **k):
        raise NameError("name 'SQLModel' is not defined")

    monkeypatch.setattr(registry_cmd, "_open", broken)
    r = run_step(Step("Search", "", ["search", "demo"]), {"search"}, as_json=False)
    assert r.status == "failed"
    assert r.note == "crashed: NameError: name 'SQLModel' is not defined"
    captured = capsys.readouterr()
    assert "Traceback" in captured.err and "failed: crashed: NameError" in captured.out
