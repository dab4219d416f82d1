"""Large folder registries as a user meets them (issue 11, goal 2): whole commands at 1k, 10k and 100k
manifests.

    python bench/bench_registry_scale.py [--sizes 1000,10000,100000] [-n 5] [--out bench/results/registry-scale.md]

For each size, a folder registry of that many TOML manifests (the synthetic mix of bench/synth_index.py:
checkpoints, LoRAs, embeddings, ControlNets, VAEs across sd1/sd2/sdxl, with the fixed ``bench-*`` packages) is
written once under bench/out/ and reused. Then, in a fresh HUBCTL_HOME, each as a whole process:

- `hubctl registry add DIR`: wall and peak memory (targets <= 10 s and <= 300 MB at 100k);
- `hubctl registry build DIR --out F`: peak memory (target <= 500 MB);
- `hubctl search bench-sd`, `hubctl info bench-sd`, `hubctl lock` (a project asking for bench-sd>=1.4,<2 and
  bench-lora-1), each `-n` times on the compiled index: wall (target <= 0.3 s each at 100k);
- correctness: `hubctl info bench-sd --json` lists, for version 1.5, exactly the adapters the manifests declare
  for it (computed here from the same manifests), at every size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import whole  # noqa: E402
from synth_index import synth_dicts  # noqa: E402


def write_folder(n: int) -> Path:
    """The folder registry of ``n`` synthetic manifests (reused when already complete)."""
    import tomli_w

    root = ROOT / "bench" / "out" / f"registry-{n}"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for d in synth_dicts(n):
        folder = root / "manifests" / d["kind"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{d['name']}.toml").write_text(tomli_w.dumps(d), "utf-8")
    done.write_text("")
    return root


def expected_adapters(n: int, base: str, version: str, family: str) -> set[str]:
    """Adapters whose newest version of ``family`` is declared for ``base`` ``version`` (as `info` defines it)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    kinds = {d["name"]: d["kind"] for d in synth_dicts(n)}
    out = set()
    for d in synth_dicts(n):
        if d["kind"] == "checkpoint":
            continue
        for v in sorted(d["versions"], key=lambda v: Version(v["version"]), reverse=True):
            if v["family"] != family:
                continue
            reqs = [Requirement(r) for r in v.get("requires", [])]
            on_bases = [r for r in reqs if kinds.get(canonicalize_name(r.name)) == "checkpoint"]
            on_this = [r for r in on_bases if canonicalize_name(r.name) == base]
            if on_bases and not on_this:
                continue
            if all(r.specifier.contains(Version(version), prereleases=True) for r in on_this):
                out.add(d["name"])
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    hubctl = shutil.which("hubctl") or sys.exit("hubctl is not on PATH (pip install -e .)")
    sections = [f"### Folder registries at scale (whole commands, median of {args.n})", "",
                f"Machine: {whole.machine_line()} (at the start).", "",
                "| manifests | registry add s | add peak MiB | build peak MiB | search s | info s | lock s | info adapters (listed / declared) |",
                "|---|---|---|---|---|---|---|---|"]
    for n in [int(s) for s in args.sizes.split(",")]:
        print(f"{n} manifests: writing the folder (once) ...", flush=True)
        reg = write_folder(n)
        work = Path(tempfile.mkdtemp(prefix=f"bench-reg-{n}-", dir=ROOT / "bench" / "out"))
        try:
            env = {"HUBCTL_HOME": str(work / "home"), "NO_COLOR": "1", "COLUMNS": "200"}
            add = whole.Cmd("registry add", [hubctl, "registry", "add", str(reg)], env=env)
            whole.alternate([add], 1, warmup=0, quiet=True)
            build = whole.Cmd("registry build", [hubctl, "registry", "build", str(reg), "--out", str(work / "index.json")], env=env)
            whole.alternate([build], 1, warmup=0, quiet=True)
            proj = work / "proj"
            proj.mkdir()
            (proj / "hubctl.toml").write_text('requires = ["bench-sd>=1.4,<2", "bench-lora-1"]\n')
            search = whole.Cmd("search", [hubctl, "search", "bench-sd"], env=env)
            info = whole.Cmd("info", [hubctl, "info", "bench-sd"], env=env)
            lock = whole.Cmd("lock", [hubctl, "lock"], env=env, cwd=str(proj))
            whole.alternate([search, info, lock], args.n, quiet=True)
            r = subprocess.run([hubctl, "info", "bench-sd==1.5", "--json"], env={**os.environ, **env}, capture_output=True, text=True, check=True)
            listed = {a.split()[0] for a in json.loads(r.stdout)["versions"][0].get("adapters", [])}
            declared = expected_adapters(n, "bench-sd", "1.5", "sd1")
            ok = "exact" if listed == declared else "WRONG"
            med = lambda c: statistics.median(x.wall for x in c.runs)  # noqa: E731
            row = (f"| {n:,} | {add.runs[0].wall:.2f} | {add.runs[0].peak_mib:.0f} | {build.runs[0].peak_mib:.0f} | "
                   f"{med(search):.3f} | {med(info):.3f} | {med(lock):.3f} | {len(listed)} / {len(declared)} ({ok}) |")
            print(row, flush=True)
            sections.append(row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    sections += ["", "Targets at 100,000: search, info, lock <= 0.3 s; registry add <= 10 s and <= 300 MB; registry build "
                 "<= 500 MB; info lists every declared adapter at every size.", ""]
    text = "\n".join(sections)
    print("\n" + text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
