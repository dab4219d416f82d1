"""End to end: `python -m hubctl run s.py` in a real subprocess, the script in another; and two copies of a
script that disagree stop before the script runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests._hubs import register_file_hub

REPO = Path(__file__).resolve().parents[2]


def _hubctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "hubctl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


SCRIPT = """\
# /// hubctl
# requires = [{reqs}]
# ///
import hashlib, sys
import hubctl

for package, files in sorted(hubctl.paths().items()):
    for path, blob in sorted(files.items()):
        print(package, path, hashlib.sha256(blob.read_bytes()).hexdigest())
print("args", *sys.argv[1:])
"""


def test_run_script_end_to_end_then_a_drifted_copy_is_refused(tmp_path):
    register_file_hub(tmp_path / "hub")
    a = tmp_path / "alice"
    a.mkdir()
    (a / "s.py").write_text(SCRIPT.format(reqs='"demo-sd<2", "demo-style"'))
    r = _hubctl("run", "s.py", "one", "--two", cwd=a)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "args one --two"
    lock = json.loads(_hubctl("lock", "--check", "--script", "s.py", "--json", cwd=a).stdout)
    assert lock["fresh"] is True
    printed = {(pkg, path): sha for pkg, path, sha in (line.split() for line in lines[:-1])}
    assert ("demo-style", "demo-style.safetensors") in printed
    text = (a / "s.py.lock").read_text()
    for sha in printed.values():
        assert f'sha256 = "{sha}"' in text  # the script read exactly the locked bytes

    # Bob copies the lock but his copy of the script asks for the 2.x line
    b = tmp_path / "bob"
    b.mkdir()
    (b / "s.py").write_text(SCRIPT.format(reqs='"demo-sd>=2", "demo-style"'))
    (b / "s.py.lock").write_text(text)
    r = _hubctl("run", "s.py", cwd=b)
    assert r.returncode == 1
    assert "args" not in r.stdout  # the script never ran
    assert "demo-sd: 1.4 (demo-sd1) in s.py.lock, 2.0 (demo-sd2) for s.py" in r.stderr
    assert "demo-style: 1.0 (demo-sd1) in s.py.lock, 2.0 (demo-sd2) for s.py" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
