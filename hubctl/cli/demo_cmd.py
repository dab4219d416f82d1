"""CLI: ``hubctl demo [--out DIR] [--json]``: build the offline demo hub, register it, and walk a newcomer
through the main job on it.

The walk is a list of :class:`Step`s. Each step is a real ``hubctl`` command line, run in-process through
the root app exactly as a user would type it, and printed under a heading with what it shows. A step
whose command (or library module) is not part of this build is skipped with a note, so the demo stays
green while capabilities land; a step that exists and exits with another code than the one it expects
makes ``hubctl demo`` exit 1 after the walk (every step still runs, so one failure does not hide others).
Ctrl-C is not a step's answer: it stops the demo at once with exit 130.

The demo keeps to its own HUBCTL_HOME, ``DIR/home``: its registry, index, installed packages and store
live there, so the user's own installs resolve exactly as before (the README's tour works after the demo).
Without the ``[run]`` extra it says so in one line before anything is written.

Owns only the walk and its rendering; building the hub is :mod:`hubctl.demo.hub`. Nothing heavy is imported
at module level (``hubctl --help`` stays fast).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import typer

from hubctl.cli.output import JsonOpt

if TYPE_CHECKING:
    from hubctl.demo.hub import DemoHub

__all__ = ["register", "Step", "walk_steps"]

PROMPT = "a photo of <demo-token>, demo style"


@dataclass
class Step:
    """One step of the walk: a heading, why it matters, and the hubctl command line it runs."""

    title: str
    why: str
    args: list[str]
    expect: int = 0
    cwd: Optional[Path] = None
    needs_modules: tuple[str, ...] = ()
    prepare: Optional[Callable[[], str]] = None  # runs first; returns a note to print (e.g. a file it wrote)
    check: Optional[Callable[[], Optional[str]]] = None  # runs after; returns a problem or None


@dataclass
class StepResult:
    title: str
    command: str
    status: str  # ok | failed | skipped
    exit_code: Optional[int] = None
    expected: int = 0
    note: str = ""
    output: Any = None  # the command's JSON output in --json mode

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


def _write_project(folder: Path, requires: list[str]) -> str:
    from hubctl.fsutil import atomic_write_text

    body = "requires = [" + ", ".join(f'"{r}"' for r in requires) + "]\n"
    atomic_write_text(folder / "hubctl.toml", "# Written by `hubctl demo`: what this project needs.\n" + body)
    (folder / "hubctl.lock").unlink(missing_ok=True)
    return f"wrote {folder / 'hubctl.toml'}: {body.strip()}"


def walk_steps(hub: "DemoHub") -> list[Step]:
    """The walk on a built and registered hub, in order."""
    project = hub.root / "project"
    conflict = hub.root / "project-conflict"
    image = hub.root / "demo.png"
    single = str(hub.file("demo-sd", "1.4", "single-file"))
    kohya = str(hub.file("demo-style", "1.0"))

    def image_written() -> Optional[str]:
        return None if image.is_file() and image.stat().st_size > 0 else f"no image at {image}"

    return [
        Step("Search the index", "The demo registry joins the bundled one; search finds its packages.", ["search", "demo"]),
        Step("Look at a package", "Versions (2.1b1 is a pre-release), families, what each fits, files and sizes.", ["info", "demo-sd"]),
        Step(
            "Inspect files from their headers alone",
            "An A1111-layout checkpoint and a kohya LoRA: kind, family, layout, rank, without loading weights.",
            ["inspect", single, kohya],
        ),
        Step(
            "Install by name",
            "Every file fetched once into the content-addressed store, its sha256 checked.",
            ["install", "demo-sd==1.4", "demo-style"],
        ),
        Step(
            "Check a set that fits",
            "demo-style 1.0 and demo-token are made for demo-sd 1.x (cross-attention 32).",
            ["check", "demo-sd==1.4", "demo-style==1.0", "demo-token"],
        ),
        Step(
            "Check a set that does not fit (refused, exit 1)",
            "demo-style 2.0 is a demo-sd 2.x LoRA (cross-attention 64): it cannot apply to demo-sd 1.4.",
            ["check", "demo-sd==1.4", "demo-style==2.0"],
            expect=1,
        ),
        Step(
            "Lock a project",
            "The project asks for demo-sd 1.x with the style and the token; the lock pins versions, files and hashes.",
            ["lock"],
            cwd=project,
            prepare=lambda: _write_project(project, ["demo-sd>=1.4,<2", "demo-style", "demo-token"]),
        ),
        Step(
            "Ask for a set that cannot exist (exit 1)",
            "demo-style>=2 needs demo-sd 2.x, but the project asks for demo-sd<2: the resolver says why.",
            ["lock"],
            cwd=conflict,
            expect=1,
            prepare=lambda: _write_project(conflict, ["demo-sd<2", "demo-style>=2"]),
        ),
        Step("Sync the store to the lock", "Installs what the lock pins, every hash checked.", ["sync"], cwd=project),
        Step(
            "Generate an image",
            "Files verified against the lock and the set checked before anything loads; the PNG records what made it.",
            ["generate", "--prompt", PROMPT, "--seed", "42", "--steps", "4", "--width", "64", "--height", "64", "--out", str(image)],
            cwd=project,
            check=image_written,
        ),
    ]


def _invoke(args: list[str], capture: bool) -> tuple[int, str]:
    """Run ``hubctl ARGS`` in-process; return (exit code, captured stdout when ``capture``)."""
    import contextlib
    import io
    import sys

    import click
    from typer.main import get_command

    from hubctl.cli.app import app

    cmd = get_command(app)
    buf = io.StringIO()
    redirect = contextlib.redirect_stdout(buf) if capture else contextlib.nullcontext()
    code = 0
    with redirect:
        try:
            rv = cmd.main(args=args, prog_name="hubctl", standalone_mode=False)
            code = rv if isinstance(rv, int) else 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if code == 130:  # Ctrl-C inside the step's command (the root group said "interrupted"): stop the demo
                raise
        except click.exceptions.Exit as e:
            code = e.exit_code
        except click.ClickException as e:
            e.show(file=sys.stderr)
            code = e.exit_code
        except click.exceptions.Abort:
            code = 1
        except Exception as e:  # a bug in the step's command: report it, keep walking, exit 1 at the end
            import traceback

            traceback.print_exc(file=sys.stderr)
            raise _StepCrashed(f"crashed: {type(e).__name__}: {e}") from None
    return code, buf.getvalue()


class _StepCrashed(Exception):
    """A step's command raised an unexpected exception (a bug, not an answer)."""


def _available(step: Step, commands: set[str]) -> Optional[str]:
    import importlib.util

    if step.args[0] not in commands:
        return f"`hubctl {step.args[0]}` is not part of this build yet"
    for mod in step.needs_modules:
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not part of this build yet"
    return None


def run_step(step: Step, commands: set[str], as_json: bool) -> StepResult:
    """Run one step (or skip it) and say how it went."""
    import json
    import os
    import shlex

    from hubctl.cli.output import out

    shown = "hubctl " + " ".join(shlex.quote(a) for a in step.args)
    if step.cwd is not None:
        shown = f"(cd {shlex.quote(str(step.cwd))} && {shown})"
    result = StepResult(step.title, shown, "ok", expected=step.expect)
    missing = _available(step, commands)
    if missing:
        result.status, result.note = "skipped", missing
        if not as_json:
            out().print(f"[yellow]skipped:[/yellow] {missing}")
        return result
    if step.prepare is not None:
        note = step.prepare()
        if not as_json:
            out().print(f"[dim]{note}[/dim]")
    if not as_json:
        out().print(f"[bold cyan]$ {shown}[/bold cyan]")
    old = Path.cwd()
    try:
        if step.cwd is not None:
            step.cwd.mkdir(parents=True, exist_ok=True)
            os.chdir(step.cwd)
        code, captured = _invoke(step.args + (["--json"] if as_json else []), capture=as_json)
    except _StepCrashed as e:
        result.status, result.note = "failed", str(e)
        if not as_json:
            out().print(f"[bold red]failed:[/bold red] {e}")
        return result
    finally:
        os.chdir(old)
    result.exit_code = code
    if as_json and captured.strip():
        try:
            result.output = json.loads(captured)
        except ValueError:
            result.output = captured
    problem = None if code == step.expect else f"exited {code}, expected {step.expect}"
    if problem is None and step.check is not None:
        problem = step.check()
    if problem:
        result.status, result.note = "failed", problem
    if not as_json:
        if problem:
            out().print(f"[bold red]failed:[/bold red] {problem}")
        else:
            extra = " (refused, as it should be)" if step.expect else ""
            out().print(f"[green]ok[/green]{extra}")
    return result


def demo(
    out_dir: Path = typer.Option(Path("hubctl-demo"), "--out", help="Folder to build the demo hub in.", metavar="DIR"),
    json_: JsonOpt = False,
) -> None:
    """Build the offline demo hub (tiny real models) under DIR, register it, and walk the main job on it:
    search, info, inspect, install, check, lock, generate. The demo keeps to its own HUBCTL_HOME (DIR/home):
    your own installs and registries are untouched."""
    import time

    from typer.main import get_command

    from hubctl.cli.app import app
    from hubctl.cli.output import out, print_json
    from hubctl.demo.hub import DEMO_REGISTRY_NAME, build_demo_hub, register_demo_hub
    from hubctl.display import plural
    from hubctl.run import require_run_extra

    require_run_extra("hubctl demo")  # before anything is written
    start = time.perf_counter()
    as_json = json_
    if not as_json:
        out().rule("[bold]hubctl demo: build the offline demo hub")
        out().print(f"Building tiny real models with fixed seeds under [bold]{out_dir}[/bold] (no network needed) ...")
    hub = build_demo_hub(out_dir)
    if not as_json:
        n_files = sum(len(v) for v in hub.files.values())
        size = sum(p.stat().st_size for v in hub.files.values() for p in v)
        out().print(f"[green]built[/green] {len(hub.manifests)} packages, {n_files} files, {size / 1e6:.1f} MB in {hub.seconds:.1f} s")
        for (pkg, ver, var), files in sorted(hub.files.items()):
            out().print(f"  {pkg} {ver} [dim]{var}[/dim]: {len(files)} file{'s' if len(files) != 1 else ''}")
        out().rule("[bold]Register it as a registry")
    home = Path(out_dir).expanduser().resolve() / "home"  # beside the hub: files/, registry/, home/
    with _own_home(home):
        entry = register_demo_hub(hub)
        if not as_json:
            out().print(f"[bold cyan]$ hubctl registry add {hub.registry} --name {DEMO_REGISTRY_NAME}[/bold cyan]")
            out().print(f"[green]ok[/green] registry '{entry.name}' -> {entry.location}")
            out().print(f"[dim]The demo uses its own HUBCTL_HOME, {home}: your own installs and registries are untouched.[/dim]")

        commands = set(get_command(app).commands)  # type: ignore[attr-defined]
        results: list[StepResult] = []
        for i, step in enumerate(walk_steps(hub), start=1):
            if not as_json:
                out().rule(f"[bold]Step {i}: {step.title}")
                out().print(step.why)
            results.append(run_step(step, commands, as_json))

    failed = [r for r in results if r.status == "failed"]
    seconds = time.perf_counter() - start
    image = hub.root / "demo.png"
    if as_json:
        print_json(
            {
                "ok": not failed,
                "out": str(hub.root),
                "home": str(home),
                "registry": {"name": entry.name, "location": entry.location},
                "packages": sorted(hub.manifests),
                "image": str(image) if image.is_file() else None,
                "seconds": round(seconds, 1),
                "steps": [r.to_json() for r in results],
            }
        )
    else:
        out().rule("[bold]Summary")
        done = sum(r.status == "ok" for r in results)
        skipped = [r for r in results if r.status == "skipped"]
        out().print(f"{plural(done, 'step')} ok, {len(skipped)} skipped, {len(failed)} failed in {seconds:.1f} s.")
        for r in failed:
            out().print(f"[bold red]failed:[/bold red] {r.title}: {r.command}: {r.note}")
        if image.is_file():
            out().print(f"Image: [bold]{image}[/bold]")
        out().print(f"Everything the demo registered and installed is in its own HUBCTL_HOME, {home}; look around with "
                    f"`HUBCTL_HOME={home} hubctl list`, or delete {hub.root} to remove it all.")
    if failed:
        raise typer.Exit(1)


@contextmanager
def _own_home(home: Path) -> Iterator[None]:
    """``HUBCTL_HOME=home`` (and no ``HUBCTL_DATABASE_URL``) while the demo registers its hub and walks, so the
    user's own state is untouched; the previous values come back after, also on Ctrl-C."""
    import os

    from hubctl.db import dispose_all

    home.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("HUBCTL_HOME", "HUBCTL_DATABASE_URL")}
    os.environ["HUBCTL_HOME"] = str(home)
    os.environ.pop("HUBCTL_DATABASE_URL", None)
    dispose_all()
    try:
        yield
    finally:
        dispose_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def register(app: typer.Typer) -> None:
    """Attach ``demo`` to the root app."""
    app.command("demo")(demo)
