"""The CLI root: error lines and exit codes, --version, and a reader that leaves a pipe early."""

from __future__ import annotations

import subprocess
import sys


def test_unknown_command_is_a_usage_error_with_exit_2(cli):
    r = cli("no-such-command")
    assert r.exit_code == 2
    assert "No such command" in r.stderr


def test_version_prints_the_package_version(cli):
    r = cli("--version")
    assert r.exit_code == 0
    assert r.stdout.startswith("hubctl ")


def test_a_reader_closing_the_pipe_early_is_not_a_failure():
    # `hubctl info stable-diffusion | head -1`: the command must end with 0 and print no traceback.
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubctl", "info", "stable-diffusion"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before the command has written anything: its first write meets a closed pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr
