"""`hubctl adopt` of a large A1111 folder, as a whole command, beside `sha256sum` of the same files (issue 15).

    python bench/bench_adopt.py [--gib 100] [-n 3] [--out bench/results/adopt.md]

The folder is A1111-shaped and SPARSE (real safetensors headers from tests/fixtures/sparse.py: SDXL and SD 1.x
checkpoints, LoRAs and embeddings, each made distinct by one byte of tensor data; a tenth of the checkpoints
duplicated): gigabytes on paper, nothing on disk, so the figure is hashing and bookkeeping, not the disk. Reading
a hole costs the kernel a zeroed page, as a page-cache hit does.

Commands, in turn after one warm-up round, each a whole process:
- `hubctl adopt DIR` into an empty HUBCTL_HOME (removed before each run, untimed): header probe, one read per
  file for every hash form, hard links into the store, roots, the local registry;
- `sha256sum FILES` (one read per file, one hash): the floor;
- `hubctl adopt DIR` run again (the no-op: a stat per file).

Reported: wall, CPU, peak memory (min / median / max), files/s and GB/s hashed; and the peak memory of adopt on a
quarter of the folder beside the whole one (it must stay flat: files are streamed through one buffer).
Target: adopt within 1.5x of `sha256sum` (it computes more than one hash per read).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import whole  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GiB = 1 << 30


def _distinct(src: Path, dst: Path, i: int) -> int:
    from tests.adopt._folders import sparse_copy

    sparse_copy(src, dst)
    with open(dst, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(bytes([1 + i % 255]))
    return dst.stat().st_size


def build(root: Path, gib: float, fraction: float = 1.0) -> tuple[list[Path], int]:
    """An A1111 folder of about ``gib`` GiB (on paper), or ``fraction`` of each kind of its files; returns its
    files and their total size."""
    from tests.fixtures.sparse import SparseFiles

    sp = SparseFiles(root.parent / "sparse-src")
    (root.parent / "sparse-src").mkdir(parents=True, exist_ok=True)
    plan = []  # (source, folder, count)
    xl, sd1 = sp.get("sdxl-ldm"), sp.get("sd1-ldm")
    budget = gib * GiB
    n_xl = max(1, int(budget * 0.65 / xl.stat().st_size))
    n_sd1 = max(1, int(budget * 0.30 / sd1.stat().st_size))
    plan += [(xl, "models/Stable-diffusion", n_xl, "xl"), (sd1, "models/Stable-diffusion", n_sd1, "sd1")]
    plan += [(sp.get("sd1-lora-kohya"), "models/Lora", max(4, int(gib * 2)), "lora"),
             (sp.get("sd1-emb-a1111"), "embeddings", max(4, int(gib)), "emb")]
    plan = [(src, sub, max(1, round(count * fraction)), tag) for src, sub, count, tag in plan]
    n_xl, n_sd1 = plan[0][2], plan[1][2]
    files, total, i = [], 0, 0
    for src, sub, count, tag in plan:
        for k in range(count):
            dst = root / sub / f"{tag}-{k}.safetensors"
            total += _distinct(src, dst, i)
            files.append(dst)
            i += 1
    for k, p in enumerate([f for f in files if f.name.startswith(("xl-", "sd1-"))][: max(1, (n_xl + n_sd1) // 10)]):
        dup = p.with_name(f"copy-{k}-{p.name}")
        from tests.adopt._folders import sparse_copy

        sparse_copy(p, dup)
        files.append(dup)
        total += dup.stat().st_size
    (root / "webui.py").write_text("")
    return files, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=100.0, help="size of the folder on paper")
    ap.add_argument("-n", type=int, default=3, help="counted rounds")
    ap.add_argument("--work", type=Path, default=None, help="where the folder and the store live (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="markdown file to append the table to")
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="hubctl-bench-adopt-"))
    root, small = work / "webui", work / "webui-quarter"
    for d in (root, small):
        shutil.rmtree(d, ignore_errors=True)
    files, total = build(root, args.gib)
    qfiles, qtotal = build(small, args.gib, 0.25)
    home, qhome = work / "home", work / "home-quarter"
    env = {"HUBCTL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    py = sys.executable

    def fresh(h: Path):  # type: ignore[no-untyped-def]
        def go() -> None:
            shutil.rmtree(h, ignore_errors=True)
            whole.drop_caches()
        return go

    listing = work / "files.txt"
    listing.write_text("\0".join(str(f) for f in files))
    cmds = [
        whole.Cmd("hubctl adopt", [py, "-m", "hubctl", "adopt", str(root)], env=env, setup=fresh(home)),
        whole.Cmd("sha256sum", f"xargs -0 sha256sum < {listing} > /dev/null", shell=True, setup=whole.drop_caches),
    ]
    print(f"{len(files)} files, {total / GiB:.1f} GiB on paper ({sum(f.stat().st_blocks for f in files) * 512 / 2**20:.0f} MiB on disk)")
    whole.alternate(cmds, args.n)
    noop = whole.Cmd("hubctl adopt (again: no-op)", [py, "-m", "hubctl", "adopt", str(root)], env=env)
    whole.alternate([noop], args.n, warmup=0)
    quarter = whole.Cmd("hubctl adopt (a quarter)", [py, "-m", "hubctl", "adopt", str(small)],
                        env={"HUBCTL_HOME": str(qhome), "PYTHONPATH": str(ROOT)}, setup=fresh(qhome))
    whole.alternate([quarter], args.n, warmup=0)
    table = whole.report(cmds + [noop, quarter], ref="sha256sum",
                         title=f"### hubctl adopt: {len(files)} files, {total / GiB:.1f} GiB (sparse), vs sha256sum")
    lines = [table, ""]
    for c, n, size in ((cmds[0], len(files), total), (cmds[1], len(files), total), (quarter, len(qfiles), qtotal)):
        w = statistics.median(r.wall for r in c.runs)
        lines.append(f"- {c.name}: {n / w:.1f} files/s, {size / w / 1e9:.2f} GB/s hashed (median wall {w:.2f} s)")
    peak_all = max(r.peak_mib for r in cmds[0].runs)
    peak_q = max(r.peak_mib for r in quarter.runs)
    lines.append(f"- peak memory: {peak_all:.0f} MiB for {total / GiB:.1f} GiB, {peak_q:.0f} MiB for a quarter of it")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
