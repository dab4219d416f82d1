"""`hubctl generate` shows a step progress bar on a terminal (rich, on stderr) and nothing with --json or when
stderr is not a terminal. The terminal is real: a `hubctl generate` process whose stderr is a pseudo-terminal
(tests/sources/test_progress.py's runner, shared with the transfer bars)."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from tests.run.test_generate import locked, make_lock
from tests.sources.test_progress import _run_on_tty

pytestmark = pytest.mark.slow


@pytest.fixture
def project(demo_hub, tmp_path, monkeypatch):
    from hubctl.lock.lockfile import write_lock

    write_lock(tmp_path / "hubctl.lock", make_lock(locked(demo_hub, "demo-sd", "1.4")))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _finished(term: str) -> int:
    """The total of the last "n/n" the bar drew (a scheduler may run one step more than asked: PNDM)."""
    done = re.findall(r"(?<!\d)(\d+)/\1(?!\d)", term)
    return int(done[-1]) if done else 0


def _generate(project, *args: str) -> tuple[int, str, str]:
    return _run_on_tty(["generate", "--lock", str(project / "hubctl.lock"), "--prompt", "a cat", *args])


def test_generate_shows_a_step_bar_on_a_terminal_and_the_bar_does_not_change_the_image(project, cli):
    code, out, term = _generate(project, "--seed", "4", "--steps", "3", "--out", str(project / "t.png"))
    assert code == 0, term
    assert "loading demo-sd 1.4" in term and "denoising" in term and _finished(term) >= 3, term
    assert "wrote" in out
    plain = cli("generate", "--prompt", "a cat", "--seed", "4", "--steps", "3", "--out", "p.png", "--json")
    assert plain.exit_code == 0, plain.output
    assert Image.open(project / "p.png").tobytes() == Image.open(project / "t.png").tobytes()


def test_generate_json_on_a_terminal_shows_no_bar(project):
    code, out, term = _generate(project, "--steps", "2", "--out", str(project / "b.png"), "--json")
    assert code == 0, term
    assert "denoising" not in term and term.strip() == "", term
    assert '"image_sha256"' in out


def test_generate_when_stderr_is_not_a_terminal_shows_no_bar(project, cli):
    r = cli("generate", "--prompt", "a cat", "--steps", "2", "--out", "c.png")
    assert r.exit_code == 0, r.output
    assert "denoising" not in r.stderr and "loading" not in r.stderr and "\x1b[" not in r.stderr
