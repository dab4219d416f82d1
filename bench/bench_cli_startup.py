"""CLI start-up figures: wall time of `hubctl --help` and `hubctl search stable-diffusion` (index already
compiled, warm) beside `python -c pass`, median of N runs each, and proof that neither command imports
torch, diffusers, transformers or peft (from `python -X importtime`).

    python bench/bench_cli_startup.py [-n 21] [--out bench/results/registry.md]

Targets (issue 2): --help <= 0.25 s, search <= 0.5 s on a 2-core machine. Runs are interleaved (pass, help,
search, pass, help, ...) so that background load hits all three alike. Uses a throw-away HUBCTL_HOME.
Exit status 1 if a heavy module is imported (the timing targets are reported, not enforced: a loaded
machine can miss them without a code change).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors.torch")
ROOT = Path(__file__).resolve().parents[1]


def hubctl_cmd() -> list[str]:
    """The installed console script beside this interpreter (not a pyenv shim), else ``python -m hubctl``."""
    exe = Path(sys.executable).parent / "hubctl"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "hubctl"]


def run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def imported_modules(args: list[str], env: dict[str, str]) -> set[str]:
    """Every module a hubctl invocation imports (parsed from -X importtime)."""
    code = "import sys; from hubctl.cli.app import main; sys.argv = ['hubctl', *sys.argv[1:]]; main()"
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], env=env, capture_output=True, text=True)
    mods = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    return mods


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=21, help="runs per command (median reported)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "registry.md"), help="markdown file to write ('' = don't)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="hubctl-bench-"))
    env = {**os.environ, "HUBCTL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    hub = hubctl_cmd()
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "hubctl --help": [*hub, "--help"],
        "hubctl search stable-diffusion": [*hub, "search", "stable-diffusion"],
    }
    try:
        # warm: compile the index, fill the page cache and __pycache__
        for cmd in cases.values():
            run(cmd, env)
            run(cmd, env)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.n):
            for name, cmd in cases.items():
                times[name].append(run(cmd, env))
        heavy = {
            "hubctl --help": sorted(m for m in imported_modules(["--help"], env) if m.split(".")[0] in HEAVY or m in HEAVY),
            "hubctl search stable-diffusion": sorted(
                m for m in imported_modules(["search", "stable-diffusion"], env) if m.split(".")[0] in HEAVY or m in HEAVY
            ),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)

    targets = {"hubctl --help": 0.25, "hubctl search stable-diffusion": 0.5}
    base = statistics.median(times["python -c pass"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        target = targets.get(name)
        verdict = "" if target is None else ("meets" if med <= target else "MISSES") + f" <= {target} s"
        rows.append((name, med, min(ts), med - base, verdict))

    cpu = f"{os.cpu_count()} cores" + (f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "")
    lines = [
        "# CLI start-up (issue 2)",
        "",
        f"Measured with `python bench/bench_cli_startup.py -n {args.n}` ({platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, {cpu}; command: `{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(hub))}`).",
        "Wall time of the whole process, median of the interleaved runs; the index is compiled beforehand.",
        "",
        "| command | median (s) | min (s) | over `python -c pass` (s) | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, med, mn, over, verdict in rows:
        lines.append(f"| `{name}` | {med:.3f} | {mn:.3f} | {over:+.3f} | {verdict} |")
    lines.append("")
    for name, mods in heavy.items():
        lines.append(f"- `{name}` imports torch/diffusers/transformers/peft: {'NO' if not mods else 'YES: ' + ', '.join(mods)}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 1 if any(heavy.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
