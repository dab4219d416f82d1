"""Verification figures: `hubctl verify` of an unchanged installed set of about 4 GB (fast path: one stat per
file against the (device, inode, size, mtime_ns, ctime_ns) cache), and `hubctl verify --full` throughput beside
`sha256sum` on a real (non-sparse) 1 GiB file.

    python bench/bench_verify.py [--set-gib 4] [--full-mib 1024] [-n 20] [--out bench/results/install.md]

The 4 GB set is an SD 1.5 pipeline's file sizes (UNet 3.44 GB fp32, text encoder, VAE, configs), written
sparse (a hole costs nothing on disk) straight into a throw-away store and recorded as one installed package,
exactly as an install leaves them. Timed: the library call `verify_installed()` in a warm process (median of
N; the first call, which opens the database, is reported separately) and the whole `hubctl verify` command
(wall, python start-up and imports included). --full: `Store.verify(full=True)` against `sha256sum`, both
reading the same blob from the page cache, interleaved, best of 3. Targets (issue 4): fast path <= 50 ms;
--full >= 90% of sha256sum's speed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SD15 = [  # (path, size): the file sizes of runwayml/stable-diffusion-v1-5's fp32 diffusers folder
    ("unet/diffusion_pytorch_model.safetensors", 3_438_167_536),
    ("text_encoder/model.safetensors", 492_265_168),
    ("vae/diffusion_pytorch_model.safetensors", 334_643_268),
    ("unet/config.json", 743),
    ("text_encoder/config.json", 617),
    ("vae/config.json", 547),
    ("tokenizer/vocab.json", 1_059_962),
    ("tokenizer/merges.txt", 524_619),
    ("tokenizer/tokenizer_config.json", 806),
    ("tokenizer/special_tokens_map.json", 472),
    ("scheduler/scheduler_config.json", 342),
    ("model_index.json", 541),
]


def _sparse_blob(store, size: int, seed: int) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    """A sparse file of ``size`` bytes with a few real bytes at the start, put into the store as a blob."""
    tmp = store.partial_dir / f"bench-{seed}"
    store.partial_dir.mkdir(parents=True, exist_ok=True)
    head = hashlib.sha256(str(seed).encode()).digest()
    with open(tmp, "wb") as f:
        f.write(head[: min(size, 32)])
        f.truncate(size)
    from hubctl.store.hashes import sha256_file

    sha, n = sha256_file(tmp)
    store._commit(tmp, sha)  # chmod 0444, atomic rename, stat recorded: what a fetch does
    return sha, n


def build_set(home: Path, scale: float) -> int:
    os.environ["HUBCTL_HOME"] = str(home)
    from hubctl.store.installed import record_installed
    from hubctl.lock.lockfile import LockedFile, LockedPackage
    from hubctl.store.blobs import Store

    store = Store()
    files = []
    for i, (path, size) in enumerate(SD15):
        size = max(1, int(size * scale))
        sha, n = _sparse_blob(store, size, i)
        files.append(LockedFile(path=path, url=f"hf://runwayml/stable-diffusion-v1-5@{'0' * 40}/{path}", size=n, sha256=sha))
    record_installed([LockedPackage("stable-diffusion", "1.5", "checkpoint", "sd1", "fp32", tuple(files))])
    return sum(f.size for f in files)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set-gib", type=float, default=4.0)
    ap.add_argument("--full-mib", type=int, default=1024)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    base = ROOT / "bench" / "out"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hubctl-bench-verify-", dir=base))
    try:
        home = work / "home"
        total_sd15 = sum(s for _, s in SD15)
        scale = args.set_gib * 1e9 / total_sd15
        print(f"building a sparse {args.set_gib} GB installed set ...", flush=True)
        total = build_set(home, scale)

        from hubctl import db
        from hubctl.store.installed import verify_installed

        db.dispose_all()
        t0 = time.perf_counter()
        first = verify_installed()
        first_s = time.perf_counter() - t0
        assert first.ok and first.hashed == 0, first.problems
        times = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            rep = verify_installed()
            times.append(time.perf_counter() - t0)
            assert rep.ok and rep.hashed == 0
        exe = Path(sys.executable).parent / "hubctl"
        cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "hubctl"]
        env = {**os.environ, "HUBCTL_HOME": str(home)}
        walls = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([*cmd, "verify"], env=env, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        passes = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            passes.append(time.perf_counter() - t0)

        # --full on a real file
        print(f"writing a real {args.full_mib} MiB blob ...", flush=True)
        from hubctl.store.blobs import Store

        store = Store()
        real = store.partial_dir / "bench-real"
        with open(real, "wb") as f:
            block = os.urandom(1 << 20)
            for i in range(args.full_mib):
                f.write(block)
                block = hashlib.sha256(block[:64]).digest() * (1 << 15)
        sha, _ = __import__("hubctl.store.hashes", fromlist=["sha256_file"]).sha256_file(real)
        store._commit(real, sha)
        blob = store.blob_path(sha)
        subprocess.run(["cat", str(blob)], stdout=subprocess.DEVNULL, check=True)  # page cache, for both
        ours, theirs, ossl = [], [], []
        for _ in range(3):
            if shutil.which("openssl"):
                t0 = time.perf_counter()
                subprocess.run(["openssl", "dgst", "-sha256", str(blob)], check=True, capture_output=True)
                ossl.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = subprocess.run(["sha256sum", str(blob)], check=True, capture_output=True, text=True).stdout
            theirs.append(time.perf_counter() - t0)
            assert out.split()[0] == sha
            t0 = time.perf_counter()
            (check,) = store.verify([sha], full=True)
            ours.append(time.perf_counter() - t0)
            assert check.ok and check.how == "hash"
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mib = args.full_mib
    med = statistics.median(times)
    lines = [
        f"### Verify (bench/bench_verify.py, sparse {total / 1e9:.2f} GB set of {len(SD15)} files; real {mib} MiB file for --full)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average at end "
        f"{os.getloadavg()[0]:.1f}. Command: `python bench/bench_verify.py --set-gib {args.set_gib} --full-mib {mib} -n {args.n}`.",
        "",
        "| what | figure | target |",
        "|---|---|---|",
        f"| `verify_installed()`, unchanged set, warm (median of {args.n}) | {med * 1000:.1f} ms (min {min(times) * 1000:.1f} ms) | <= 50 ms |",
        f"| `verify_installed()`, first call in the process (opens the database) | {first_s * 1000:.1f} ms | |",
        f"| `hubctl verify` command, wall (median of 5; `python -c pass`: {statistics.median(passes) * 1000:.0f} ms) | {statistics.median(walls) * 1000:.0f} ms | |",
        f"| `--full` rehash, best of 3 | {mib / min(ours):.0f} MiB/s ({min(ours):.2f} s) | |",
        f"| `sha256sum`, best of 3 | {mib / min(theirs):.0f} MiB/s ({min(theirs):.2f} s) | |",
        f"| `--full` vs `sha256sum` | {min(theirs) / min(ours) * 100:.0f}% | >= 90% |",
    ]
    if ossl:
        lines.append(f"| (for reference: `openssl dgst -sha256`, SHA-NI like hashlib) | {mib / min(ossl):.0f} MiB/s; "
                     f"`--full` at {min(ossl) / min(ours) * 100:.0f}% of it | |")
    lines += [
        "",
        "The fast path is one SELECT of the installed files and the stat cache (sqlite3, no SQLAlchemy import) and",
        "one stat per file; the CLI wall is mostly Python start-up and typer/rich imports.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from bench.bench_download import _merge

        _merge(args.out, "### Verify", text)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
