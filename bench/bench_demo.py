"""Benchmark: `hubctl demo` end to end (build the hub, register it, walk every step) on a fresh
HUBCTL_HOME, offline; plus the hub build alone and its determinism (two builds, same sha256 for every file).

Issue 2 item 7: the whole demo runs offline in under two minutes on a 2-core machine.

    python bench/bench_demo.py [--runs 2]

Prints one line per measurement; paste them into bench/results/demo.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _load() -> str:
    try:
        return "load average %.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        return "load average n/a"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    print(f"# {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for i in range(args.runs):
            home, out = base / f"home{i}", base / f"demo{i}"
            env = dict(os.environ, HUBCTL_HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1")
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "hubctl", "demo", "--out", str(out), "--json"],
                                  capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t
            import json

            data = json.loads(proc.stdout) if proc.stdout.strip() else {}
            steps = data.get("steps", [])
            status = ", ".join(f"{s['status']}" for s in steps)
            print(f"hubctl demo (fresh HUBCTL_HOME) run {i + 1}: {wall:.1f} s wall, exit {proc.returncode}, "
                  f"steps: {status}  [{_load()}]")
        # build only, twice, and compare every file's sha256
        code = (
            "import sys, json; from pathlib import Path; from hubctl.demo import build_demo_hub; "
            "h = build_demo_hub(Path(sys.argv[1])); "
            "print(json.dumps({'seconds': h.seconds, 'sha': {str(p.relative_to(h.files_dir)): d for p, d in h.sha256.items()}}))"
        )
        results = []
        for i in range(2):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code, str(base / f"build{i}")], capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t
            import json

            results.append(json.loads(proc.stdout))
            print(f"build_demo_hub run {i + 1}: {wall:.1f} s wall for the process (imports included), "
                  f"{results[-1]['seconds']:.1f} s in build_demo_hub  [{_load()}]")
        same = results[0]["sha"] == results[1]["sha"]
        print(f"determinism: {len(results[0]['sha'])} files, identical sha256 across two builds: {same}")


if __name__ == "__main__":
    main()
