"""`hubctl serve` refusals on the command line, before anything is bound or loaded (in-process CLI): a script's
lock that disagrees with its inline block, a script without a lock, two locks named, bad limits."""

from __future__ import annotations

import pytest

from tests._hubs import project_dir  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def _script(path, requires):  # type: ignore[no-untyped-def]
    body = "# /// hubctl\n# requires = [" + ", ".join(f'"{r}"' for r in requires) + "]\n# ///\nprint('hi')\n"
    path.write_text(body)
    return path


def test_serve_script_refuses_when_the_script_and_its_lock_disagree(cli, project_dir):  # noqa: F811
    s = _script(project_dir / "s.py", ["demo-sd==1.4"])
    assert cli("lock", "--script", "s.py").exit_code == 0
    _script(s, ["demo-sd==2.0"])
    r = cli("serve", "--script", "s.py", "--port", "0")
    assert r.exit_code == 1 and "s.py and s.py.lock disagree" in r.stderr
    assert "hubctl serve: http" not in r.stdout


def test_serve_script_without_a_lock_says_how_to_make_one(cli, project_dir):  # noqa: F811
    _script(project_dir / "t.py", ["demo-sd==1.4"])
    r = cli("serve", "--script", "t.py", "--port", "0")
    assert r.exit_code == 2 and "hubctl lock --script t.py" in r.stderr


@pytest.mark.parametrize("args,words", [
    (["--lock", "a.lock", "--script", "s.py"], "give one"),
    (["--max-images", "9", "--max-batch", "8"], "--max-images 9 is more than --max-batch 8"),
    (["--max-size", "100"], "multiple of 8"),
    (["--max-queue", "0"], "--max-queue must be at least 1"),
    (["--device", "tpu"], "--device tpu"),
    (["--port", "70000"], "--port 70000"),
])
def test_bad_serve_options_are_exit_2_with_one_line(cli, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    r = cli("serve", *args)
    assert r.exit_code == 2 and words in r.stderr and "Traceback" not in r.output
