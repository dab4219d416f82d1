"""Timing whole commands side by side: the harness every issue-11 benchmark uses.

A benchmark names a few commands (hubctl's and its fairest peers'), each with an untimed set-up and clean-up
run before and after it. :func:`alternate` runs them in turn, A B C A B C ..., for N rounds after one
warm-up round, and measures every run as a whole process from outside: wall time, CPU time (user + sys of
the process and its children, from ``wait4``) and peak memory (the largest resident set of any process of
the run, as GNU time reports it). :func:`report` prints min / median / max of each figure, and each command's ratio to a reference
command pair by pair (round by round), so a ratio holds while the machine's speed drifts. Shell pipelines
(``curl -o F && sync``) run under ``sh -c`` so that they end the way a user's would.

Nothing here is timed in-process and nothing runs under ``nice``.
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

__all__ = ["Cmd", "Run", "alternate", "report", "machine_line", "drop_caches", "median_ratio"]


@dataclass
class Cmd:
    """One command of a comparison. ``argv`` is run as is (no shell) unless ``shell`` is set."""

    name: str
    argv: Sequence[str] | str
    env: dict[str, str] | None = None
    cwd: str | None = None
    setup: Callable[[], None] | None = None
    cleanup: Callable[[], None] | None = None
    check: Callable[[subprocess.CompletedProcess], None] | None = None  # raise when the run did not do its job
    shell: bool = False
    runs: list["Run"] = field(default_factory=list)


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mib: float
    rc: int


def machine_line() -> str:
    la = os.getloadavg()
    cpu = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu or 'unknown CPU'}), Python {platform.python_version()}, "
            f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")


def drop_caches() -> None:
    """Flush dirty pages so that one run's write-back does not land in the next run's time (untimed)."""
    subprocess.run(["sync"], check=False)


def _one(cmd: Cmd) -> tuple[Run, bytes, bytes]:
    """One run of ``cmd`` under /usr/bin/time (for its peak memory), timed from outside."""
    argv = ["sh", "-c", cmd.argv] if cmd.shell else list(cmd.argv)  # type: ignore[arg-type]
    if os.path.exists("/usr/bin/time"):
        argv = ["/usr/bin/time", "-f", "HUBCTL_BENCH_MAXRSS_KB=%M", *argv]
    env = {**os.environ, **(cmd.env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cmd.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall=wall, cpu=cpu, peak_mib=_peak(err), rc=proc.returncode), out, err


def alternate(cmds: Sequence[Cmd], rounds: int, *, warmup: int = 1, quiet: bool = False) -> None:
    """Run every command in turn for ``warmup`` + ``rounds`` rounds; keep the counted runs on each Cmd."""
    for r in range(warmup + rounds):
        for c in cmds:
            if c.setup:
                c.setup()
            run, out, err = _one(c)
            if run.rc != 0:
                sys.stderr.write(err.decode(errors="replace")[-2000:])
                raise SystemExit(f"{c.name}: exit {run.rc}")
            if c.check:
                c.check(subprocess.CompletedProcess(c.argv, run.rc, out, err))
            if c.cleanup:
                c.cleanup()
            if r >= warmup:
                c.runs.append(run)
        if not quiet and r >= warmup:
            print(f"round {r - warmup + 1}/{rounds}: " + ", ".join(f"{c.name} {c.runs[-1].wall:.3f}s" for c in cmds), flush=True)


def _peak(err: bytes) -> float:
    """The peak resident memory /usr/bin/time reported on the last line of stderr, in MiB (0 when absent)."""
    marker = b"HUBCTL_BENCH_MAXRSS_KB="
    i = err.rfind(marker)
    if i >= 0:
        try:
            return int(err[i + len(marker):].split()[0]) / 1024
        except ValueError:
            pass
    return 0.0


def _stats(xs: list[float]) -> str:
    return f"{min(xs):.3f} / {statistics.median(xs):.3f} / {max(xs):.3f}"


def report(cmds: Sequence[Cmd], *, ref: str | None = None, title: str = "") -> str:
    """A markdown table: each command's wall, CPU and peak memory (min / median / max) and, pair by pair,
    its wall ratio to ``ref`` (min / median / max)."""
    by = {c.name: c for c in cmds}
    lines = []
    if title:
        lines += [title, ""]
    lines += [f"Machine: {machine_line()} (at the end of the run).", ""]
    head = "| command | wall s (min / median / max) | CPU s | peak MiB |" + (f" wall / {ref} (pairwise min / median / max) |" if ref else "")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for c in cmds:
        row = f"| {c.name} | {_stats([r.wall for r in c.runs])} | {statistics.median([r.cpu for r in c.runs]):.2f} | " \
              f"{max(r.peak_mib for r in c.runs):.0f} |"
        if ref:
            pairs = [a.wall / b.wall for a, b in zip(c.runs, by[ref].runs)]
            row += f" {_stats(pairs)} |"
        lines.append(row)
    lines.append("")
    lines.append("Commands: " + "; ".join(f"{c.name} = `{c.argv if isinstance(c.argv, str) else shlex.join(c.argv)}`" for c in cmds))
    return "\n".join(lines)


def median_ratio(a: Cmd, b: Cmd) -> float:
    return statistics.median([x.wall / y.wall for x, y in zip(a.runs, b.runs)])
