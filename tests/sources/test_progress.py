"""Progress: rich bars (bytes, rate, ETA) when stderr is a terminal, nothing with --json or when piped.
A real pseudo-terminal and a real `hubctl install` subprocess against a loopback server."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _registry(tmp_path: Path, url: str, data: bytes) -> None:
    reg = tmp_path / "reg"
    (reg / "manifests" / "lora").mkdir(parents=True)
    (reg / "manifests" / "lora" / "bar-style.toml").write_text(
        'name = "bar-style"\nkind = "lora"\n[[versions]]\nversion = "1.0"\nfamily = "sd1"\n'
        '[[versions.variants]]\nname = "fp16"\n'
        f'files = [{{ path = "bar.safetensors", size = {len(data)}, sha256 = "{hashlib.sha256(data).hexdigest()}", source = "{url}" }}]\n'
    )
    from hubctl.registry.manage import add_registry

    add_registry(str(reg), name="bar")


def _run_on_tty(args: list[str]) -> tuple[int, str, str]:
    """Run hubctl with stderr on a pseudo-terminal (stdout piped); returns (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm", "PYTHONPATH": str(REPO)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "hubctl", *args], stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode()  # type: ignore[union-attr]
    proc.wait()
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_progress_bar_with_bytes_rate_and_eta(http_server, tmp_path):
    data = hashlib.sha256(b"bar").digest() * 40_000
    url = http_server.add_file("/bar.safetensors", data)
    _registry(tmp_path, url, data)
    http_server.faults.set(rate=1_000_000)  # ~1.3 s: the bar is drawn several times
    code, out, tty = _run_on_tty(["install", "bar-style"])
    assert code == 0, tty
    assert "bar-style bar.safetensors" in tty
    assert "1.3/1.3 MB" in tty  # bytes (rich's DownloadColumn)
    assert "MB/s" in tty or "kB/s" in tty  # rate
    assert "0:00:0" in tty  # ETA
    assert "installed bar-style 1.0" in tty


def test_json_and_pipes_get_no_progress(http_server, tmp_path, cli):
    data = hashlib.sha256(b"bar2").digest() * 2000
    url = http_server.add_file("/bar.safetensors", data)
    _registry(tmp_path, url, data)
    code, out, tty = _run_on_tty(["install", "bar-style", "--json"])
    assert code == 0
    assert "MB/s" not in tty and "bar.safetensors" not in tty and tty.strip() == ""
    assert '"downloaded_bytes": 64000' in out
    r = cli("uninstall", "bar-style")
    r = cli("install", "bar-style")  # CliRunner: not a terminal
    assert r.exit_code == 0 and "MB/s" not in r.stderr and "━" not in r.stderr
