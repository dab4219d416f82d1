"""`hubctl generate` shows a step progress bar on a terminal (rich, on stderr) and nothing with --json or when
stderr is not a terminal. The terminal is real: a pseudo-terminal whose slave end is the process's stderr while
the command runs in-process (a reader thread drains the master end)."""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from pathlib import Path

import pytest

from tests.run.test_generate import locked, make_lock

pytestmark = pytest.mark.slow


@pytest.fixture
def project(demo_hub, tmp_path, monkeypatch):
    from hubctl.lock.lockfile import write_lock

    write_lock(tmp_path / "hubctl.lock", make_lock(locked(demo_hub, "demo-sd", "1.4")))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _on_a_terminal(monkeypatch, args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; return (exit code, stdout, what the terminal received)."""
    import pty

    from hubctl.cli.app import app

    master, slave = pty.openpty()
    term = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    got: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:
                return
            if not b:
                return
            got.append(b)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = io.StringIO()
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setattr(sys, "stdout", out)
    try:
        app(args, standalone_mode=False)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        term.flush()
        monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        term.close()
        reader.join(5)
        os.close(master)
    return code, out.getvalue(), b"".join(got).decode("utf-8", "replace")


def _finished(term: str) -> int:
    """The total of the last "n/n" the bar drew (a scheduler may run one step more than asked: PNDM)."""
    done = re.findall(r"(?<!\d)(\d+)/\1(?!\d)", term)
    return int(done[-1]) if done else 0


def test_generate_shows_a_step_bar_on_a_terminal(project, monkeypatch):
    code, out, term = _on_a_terminal(monkeypatch, ["generate", "--prompt", "a cat", "--seed", "1", "--steps", "3", "--out", "a.png"])
    assert code == 0, term
    assert "denoising" in term and _finished(term) >= 3, term
    assert "wrote" in out and Path("a.png").is_file()


def test_generate_json_on_a_terminal_shows_no_bar(project, monkeypatch):
    code, out, term = _on_a_terminal(monkeypatch, ["generate", "--prompt", "a cat", "--steps", "2", "--out", "b.png", "--json"])
    assert code == 0, term
    assert "denoising" not in term and term.strip() == "", term
    assert '"image_sha256"' in out


def test_generate_when_stderr_is_not_a_terminal_shows_no_bar(project, cli):
    r = cli("generate", "--prompt", "a cat", "--steps", "2", "--out", "c.png")
    assert r.exit_code == 0, r.output
    assert "denoising" not in r.stderr and "loading" not in r.stderr and "\x1b[" not in r.stderr


def test_the_bar_does_not_change_the_image(project, cli, monkeypatch):
    plain = cli("generate", "--prompt", "a cat", "--seed", "4", "--steps", "2", "--out", "p.png", "--json").json()
    code, out, term = _on_a_terminal(monkeypatch, ["generate", "--prompt", "a cat", "--seed", "4", "--steps", "2", "--out", "t.png"])
    assert code == 0 and _finished(term) >= 2, term
    from PIL import Image

    assert Image.open("p.png").tobytes() == Image.open("t.png").tobytes()
    assert plain["image_sha256"]
