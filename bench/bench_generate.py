"""Benchmark: `hubctl generate` against a plain diffusers script that loads the same files and makes the same
image (CPU, the demo hub's tiny demo-sd 1.4 + kohya LoRA demo-style 1.0 + embedding demo-token).

Target (issue 6): hubctl's wall time <= 1.10x the plain script's, and the two images identical (pixel sha256).
Both run as fresh processes (imports included), alternating, N rounds each; medians compared.

    python bench/bench_generate.py [--rounds 5] [--steps 4] [--hub DIR] [--write bench/results/generate.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROMPT = "a photo of <demo-token> in the style of demo style"
SEED = 42
LORA_WEIGHT = 0.8

PLAIN = textwrap.dedent(
    """
    import hashlib, sys, torch
    from diffusers import StableDiffusionPipeline
    base, lora, emb, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    pipe = StableDiffusionPipeline.from_pretrained(base, dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.to("cpu")
    pipe.load_textual_inversion(emb, token="<demo-token>")
    pipe.load_lora_weights(lora, adapter_name="demo_style")
    pipe.set_adapters(["demo_style"], adapter_weights=[{w}])
    pipe.fuse_lora(components=["unet", "text_encoder"], adapter_names=["demo_style"], lora_scale=1.0)
    g = torch.Generator("cpu").manual_seed({seed})
    with torch.inference_mode():
        im = pipe(prompt={prompt!r}, num_inference_steps=steps, guidance_scale=7.5, width=64, height=64, generator=g).images[0]
    im.save(out)
    h = hashlib.sha256(); h.update(f"{{im.mode}}:{{im.size[0]}}x{{im.size[1]}}:".encode()); h.update(im.tobytes())
    print(h.hexdigest())
    """
).format(w=LORA_WEIGHT, seed=SEED, prompt=PROMPT)


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, float]:
    """(wall seconds, stdout, CPU seconds user+sys of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return dt, r.stdout, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--hub", type=Path, default=None, help="an existing demo hub (built if left out)")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both children (steadier on a busy machine)")
    ap.add_argument("--write", type=Path, default=None, help="write the figures as markdown here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    env = dict(os.environ, HUBCTL_HOME=str(work / "home"), HF_HUB_OFFLINE="1", HF_HOME=str(work / "hf"),
               PYTHONWARNINGS="ignore")
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    hub_root = args.hub
    if hub_root is None:
        hub_root = work / "hub"
        sh([sys.executable, "-c", f"from hubctl.demo import build_demo_hub; from pathlib import Path; build_demo_hub(Path({str(hub_root)!r}))"], work, env)
    from hubctl.demo.hub import open_demo_hub

    hub = open_demo_hub(hub_root)
    proj = work / "proj"
    proj.mkdir()
    hubctl = [sys.executable, "-m", "hubctl"]
    sh(hubctl + ["registry", "add", str(hub.registry), "--name", "demo"], proj, env)
    sh(hubctl + ["add", "demo-sd<2", "demo-style", "demo-token"], proj, env)
    sh(hubctl + ["sync"], proj, env)
    (work / "plain.py").write_text(PLAIN)
    base = hub.folder("demo-sd", "1.4", "fp32")
    lora = hub.file("demo-style", "1.0", "fp32")
    emb = hub.file("demo-token", "1.0", "fp32")

    gen = hubctl + ["generate", "--prompt", PROMPT, "--seed", str(SEED), "--steps", str(args.steps), "--guidance", "7.5",
                    "--lora", f"demo-style={LORA_WEIGHT}", "--json"]
    plain = [sys.executable, str(work / "plain.py"), str(base), str(lora), str(emb)]
    # warm the page cache and the index once each
    sh(gen + ["--out", str(work / "warm.png")], proj, env)
    sh(plain + [str(work / "warm-plain.png"), str(args.steps)], proj, env)

    t_h, t_p, c_h, c_p, hashes_h, hashes_p = [], [], [], [], set(), set()
    for i in range(args.rounds):
        order = [("h", gen + ["--out", str(work / f"h{i}.png")]), ("p", plain + [str(work / f"p{i}.png"), str(args.steps)])]
        if i % 2:
            order.reverse()
        for who, cmd in order:
            dt, out, cpu = sh(cmd, proj, env)
            if who == "h":
                t_h.append(dt)
                c_h.append(cpu)
                hashes_h.add(json.loads(out)["image_sha256"])
            else:
                t_p.append(dt)
                c_p.append(cpu)
                hashes_p.add(out.strip().splitlines()[-1])
    mh, mp = statistics.median(t_h), statistics.median(t_p)
    ratio = mh / mp
    identical = len(hashes_h) == 1 and hashes_h == hashes_p
    rows = {
        "hubctl generate, wall (median s)": f"{mh:.3f}",
        "plain diffusers script, wall (median s)": f"{mp:.3f}",
        "ratio of median walls (target <= 1.10)": f"{ratio:.3f}",
        "ratio of fastest walls": f"{min(t_h) / min(t_p):.3f}",
        "ratio of median CPU time (user+sys)": f"{statistics.median(c_h) / statistics.median(c_p):.3f}",
        "hubctl pixel sha256": ", ".join(sorted(hashes_h)),
        "plain pixel sha256": ", ".join(sorted(hashes_p)),
        "identical images": str(identical),
        "runs": f"{args.rounds} each, alternating, fresh processes; {args.steps} steps, 64x64, CPU fp32"
                + (f", OMP_NUM_THREADS={args.threads}" if args.threads else ""),
    }
    for k, v in rows.items():
        print(f"{k:36} {v}")
    print("all hubctl times:", " ".join(f"{x:.2f}" for x in t_h))
    print("all plain times: ", " ".join(f"{x:.2f}" for x in t_p))
    print("CPU s hubctl:", " ".join(f"{x:.2f}" for x in c_h), "; plain:", " ".join(f"{x:.2f}" for x in c_p))
    if args.write:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        md = [
            "# generate: hubctl generate vs plain diffusers (CPU, tiny demo set)",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average at the end {load:.1f}.",
            f"Command: `python bench/bench_generate.py --rounds {args.rounds} --steps {args.steps}"
            + (f" --threads {args.threads}" if args.threads else "") + f" --write {args.write}`",
            "",
            "Set: demo-sd 1.4 (diffusers layout) + demo-style 1.0 (kohya LoRA, weight 0.8, fused) + demo-token 1.0 (embedding).",
            "hubctl's time includes CLI start-up, lock read, store verification (stat cache), the header-only",
            "compatibility check, the PNG with its chunks and the run record; the plain script loads the same files",
            "from the demo hub and saves a PNG.",
            "",
            "| figure | value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in rows.items()],
            "",
            "Per-run wall times (s): hubctl " + " ".join(f"{x:.2f}" for x in t_h) + "; plain " + " ".join(f"{x:.2f}" for x in t_p),
            "",
            "Per-run CPU times (s, user+sys): hubctl " + " ".join(f"{x:.2f}" for x in c_h) + "; plain " + " ".join(f"{x:.2f}" for x in c_p),
            "",
        ]
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text("\n".join(md))
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
