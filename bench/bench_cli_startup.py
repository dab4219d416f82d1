"""CLI start-up figures: wall time of `hubctl --help` and `hubctl search stable-diffusion` (index already
compiled, warm) beside `python -c pass`, median of N runs each, and proof that neither command imports
torch, diffusers, transformers or peft (from `python -X importtime`).

    python bench/bench_cli_startup.py [-n 21] [--scale 100000] [--out bench/results/registry.md]

Targets (issue 2): --help <= 0.25 s, search <= 0.5 s on a 2-core machine. Runs are interleaved (pass, help,
search, pass, help, ...) so that background load hits all three alike. Uses a throw-away HUBCTL_HOME.
With ``--scale N`` it also times the index library at N packages (the resolver's benchmark size): writing
the database from N generated manifests in one transaction, ``Index.get()`` of one package, and a search.
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


def scale_figures(n: int) -> list[str]:
    """Time write_index_db / Index.get / search_rows on an index of ``n`` generated packages."""
    sys.path.insert(0, str(ROOT))
    from hubctl.registry.families import default_families
    from hubctl.registry.index import Index
    from hubctl.registry.compile import write_index_db
    from hubctl.registry.manifest import Manifest

    kinds = ["lora", "embedding", "controlnet", "checkpoint"]
    fams = ["sd1", "sd2", "sdxl"]

    def gen():  # realistic shape: 1-3 versions, one variant, one file each
        for i in range(n):
            kind, fam = kinds[i % 4], fams[i % 3]
            versions = [
                {"version": f"{v}.0", "family": fam, "requires": [] if kind == "checkpoint" else [f"base-{i % 97}>=1"],
                 "variants": [{"name": "fp16", "files": [{"path": f"m{i}.safetensors", "size": 1000 + i, "sha256": f"{i:064x}",
                                                          "source": f"hf://org/m{i}@main/m{i}.safetensors"}]}]}
                for v in range(1, 2 + i % 3)
            ]
            yield "synthetic", Manifest.model_validate({"name": f"pkg-{i:06d}", "kind": kind, "summary": f"synthetic {kind} {i}", "versions": versions})

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "index.db"
        t0 = time.perf_counter()
        write_index_db(db, default_families(), gen())
        t_write = time.perf_counter() - t0
        idx = Index(db)
        names = [f"pkg-{(i * 7919) % n:06d}" for i in range(200)]
        t_get = []
        for name in names:
            t0 = time.perf_counter()
            assert idx.get(name) is not None
            t_get.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        hits = idx.search_rows("lora 4242")
        t_search = time.perf_counter() - t0
    return [
        "",
        f"Index at scale (`--scale {n}`): {n} generated packages (1-3 versions each).",
        "",
        "| operation | time |",
        "|---|---:|",
        f"| generate + validate + write index.db (one transaction) | {t_write:.1f} s |",
        f"| `Index.get(name)` cold (indexed lookup + parse one manifest), median of 200 | {statistics.median(t_get) * 1e3:.3f} ms |",
        f"| `Index.search_rows('lora 4242')` ({len(hits)} hits, full scan) | {t_search * 1e3:.0f} ms |",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=21, help="runs per command (median reported)")
    ap.add_argument("--scale", type=int, default=0, help="also time the index library at this many packages")
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
    if args.scale:
        lines += scale_figures(args.scale)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 1 if any(heavy.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
