"""`hubctl install` of one large file from a loopback Range server, as a whole command, against its peers
(issue 11, goal 1).

    python bench/bench_install.py [--size-mib 1024] [-n 5] [--out bench/results/install-whole.md]

Commands, run in turn (A B C ... A B C ...) after one warm-up round, each a whole process:

- `hubctl install bench-model` (default durability: the blob is fsynced before its rename) against
  `curl -s -o F URL && sync F` (the same durability: the file's bytes on disk before done);
- `HUBCTL_FSYNC=0 hubctl install bench-model` against `curl -s -o F URL` (neither waits for the disk);
- the peers that also check a hash: `curl` + `sha256sum` + `sync`, `curl` + `openssl dgst -sha256` + `sync`,
  `aria2c -x4 --checksum=sha-256=...` (when installed).

hubctl installs from a folder registry whose manifest pins the file's URL, size and sha256, into a home made
once; before each run (untimed) the blob is removed from the store (`hubctl uninstall` + `hubctl gc`) and dirty
pages are flushed, so every run downloads, hashes and commits the whole file. Targets: default <= 1.0x
`curl -o F && sync F`; HUBCTL_FSYNC=0 <= 1.25x `curl -o F`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import whole  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_file(path: Path, size: int) -> str:
    """``size`` bytes that do not compress or repeat in ways a transport could exploit; returns their sha256."""
    h = hashlib.sha256()
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        left = size
        i = 0
        while left:
            block[:8] = i.to_bytes(8, "little")
            b = bytes(block[: min(left, len(block))])
            f.write(b)
            h.update(b)
            left -= len(b)
            i += 1
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("-n", type=int, default=5, help="counted rounds")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out", help="where the store and downloads live")
    ap.add_argument("--out", type=Path, default=None, help="markdown file to append the table to")
    args = ap.parse_args()
    hubctl = shutil.which("hubctl") or sys.exit("hubctl is not on PATH (pip install -e .)")
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-install-", dir=args.work))
    www = work / "www"
    www.mkdir()
    size = args.size_mib << 20
    print(f"writing a {args.size_mib} MiB file ...", flush=True)
    sha = make_file(www / "model.safetensors", size)
    server = subprocess.Popen([sys.executable, "-m", "tests.servers.range_server", str(www)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip() + "/model.safetensors"  # type: ignore[union-attr]
        subprocess.run(["cat", str(www / "model.safetensors")], stdout=subprocess.DEVNULL, check=True)  # page cache
        reg = work / "registry" / "manifests" / "lora"
        reg.mkdir(parents=True)
        (reg / "bench-model.toml").write_text(
            'name = "bench-model"\nkind = "lora"\nsummary = "benchmark file"\n\n[[versions]]\nversion = "1.0"\n'
            'family = "sd1"\n\n[[versions.variants]]\nname = "default"\n'
            f'files = [{{ path = "model.safetensors", size = {size}, sha256 = "{sha}", source = "{url}" }}]\n')
        home = work / "home"
        env = {"HUBCTL_HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
        subprocess.run([hubctl, "registry", "add", str(work / "registry")], env={**os.environ, **env}, check=True,
                       capture_output=True)
        dest = work / "curl.bin"

        def reset_store() -> None:
            subprocess.run([hubctl, "uninstall", "bench-model"], env={**os.environ, **env}, capture_output=True)
            subprocess.run([hubctl, "gc"], env={**os.environ, **env}, capture_output=True, check=True)
            whole.drop_caches()

        def reset_file() -> None:
            dest.unlink(missing_ok=True)
            whole.drop_caches()

        def installed(cp: subprocess.CompletedProcess) -> None:
            blob = home / "store" / "sha256" / sha[:2] / sha
            if not blob.is_file() or blob.stat().st_size != size:
                raise SystemExit("hubctl install did not leave the blob in the store")

        q = f"'{dest}'"
        cmds = [
            whole.Cmd("hubctl install", [hubctl, "install", "bench-model"], env=env, setup=reset_store, check=installed),
            whole.Cmd("curl -o F && sync F", f"curl -s -o {q} '{url}' && sync {q}", shell=True, setup=reset_file),
            whole.Cmd("HUBCTL_FSYNC=0 hubctl install", [hubctl, "install", "bench-model"], env={**env, "HUBCTL_FSYNC": "0"},
                      setup=reset_store, check=installed),
            whole.Cmd("curl -o F", ["curl", "-s", "-o", str(dest), url], setup=reset_file),
            whole.Cmd("curl + sha256sum + sync", f"curl -s -o {q} '{url}' && sha256sum {q} >/dev/null && sync {q}", shell=True,
                      setup=reset_file),
            whole.Cmd("curl + openssl + sync", f"curl -s -o {q} '{url}' && openssl dgst -sha256 {q} >/dev/null && sync {q}",
                      shell=True, setup=reset_file),
        ]
        if shutil.which("aria2c"):
            cmds.append(whole.Cmd("aria2c -x4 --checksum", ["aria2c", "-q", "-x4", "-s4", "--allow-overwrite=true",
                                  f"--checksum=sha-256={sha}", "-d", str(work), "-o", dest.name, url], setup=reset_file))
        whole.alternate(cmds, args.n)
        by = {c.name: c for c in cmds}
        fs = subprocess.run(["df", "--output=fstype", str(work)], capture_output=True, text=True).stdout.split()[-1]
        text = whole.report(cmds, ref="curl -o F && sync F",
                            title=f"### `hubctl install` of a {args.size_mib} MiB file vs its peers ({fs}, loopback, "
                                  f"{args.n} alternating rounds)")
        goals = [
            f"- default durability: `hubctl install` / `curl -o F && sync F` = "
            f"{whole.median_ratio(by['hubctl install'], by['curl -o F && sync F']):.3f} (target <= 1.0)",
            f"- HUBCTL_FSYNC=0: `hubctl install` / `curl -o F` = "
            f"{whole.median_ratio(by['HUBCTL_FSYNC=0 hubctl install'], by['curl -o F']):.3f} (target <= 1.25)",
        ]
        text += "\n\nGoals (median of the pairwise ratios):\n" + "\n".join(goals) + "\n"
        print("\n" + text)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write("\n" + text)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
