"""CLI: ``hubctl add``, ``remove``, ``lock``, ``sync`` and ``run`` (the project and shared-script verbs, as in uv).

Parses arguments, calls hubctl.lock.project / hubctl.lock.workflow, renders with rich (or JSON with --json). Library
modules are imported inside the command functions so ``hubctl --help`` stays fast.

Exit codes: 0 ok; 1 no compatible set, a stale lock (``lock --check``), a script and its lock that disagree,
a hash that does not match; 2 a malformed project file, lock, inline block or requirement; 3 a source failed.
``run`` exits with the script's own exit code once the script started.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from hubctl.cli.output import JsonOpt

if TYPE_CHECKING:
    from hubctl.registry.index import Index
    from hubctl.lock.lockfile import Lock
    from hubctl.lock.diff import Change
    from hubctl.lock.workflow import LockResult
    from hubctl.lock.project import Project

__all__ = ["register"]

_NO_PROJECT = "no hubctl.toml (or [tool.hubctl] in pyproject.toml) here or in a parent folder; start one with `hubctl add REQ`"


def _index() -> "Index":
    from hubctl.cli.output import warn
    from hubctl.registry.manage import open_index

    idx = open_index()
    for w in idx.warnings:
        warn(w)
    return idx


def _project(script: Optional[Path]) -> "Project":
    from hubctl.errors import BadInput
    from hubctl.lock.project import find_project, read_script

    if script is not None:
        return read_script(script)
    p = find_project()
    if p is None:
        raise BadInput(_NO_PROJECT)
    return p


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _print_changes(changes: list["Change"]) -> None:
    """``+ demo-sd 1.4 (demo-sd1)``, ``- ...``, ``~ demo-sd 1.4 (demo-sd1) -> 2.0 (demo-sd2)`` on stderr."""
    from rich.markup import escape

    from hubctl.cli.output import err

    for c in changes:
        if c.old is None and c.new is not None:
            line = f"+ {c.new.label()}"
        elif c.new is None and c.old is not None:
            line = f"- {c.old.label()}"
        else:
            assert c.old is not None and c.new is not None
            extra = f", variant {c.old.variant} -> {c.new.variant}" if c.what == "variant" else " (new files)" if c.what == "files" else ""
            line = f"~ {c.name} {c.old.version} ({c.old.family}) -> {c.new.version} ({c.new.family}){extra}"
        err().print(f"  {escape(line)}")


def _print_lock(lock: "Lock") -> None:
    from rich.table import Table

    from hubctl.cli.output import out

    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("package", "version", "kind", "family", "variant", "files"):
        t.add_column(col)
    from hubctl.resolve.candidates import KIND_ORDER

    for p in sorted(lock.packages, key=lambda p: (KIND_ORDER.get(p.kind, 9), p.name)):
        t.add_row(p.name, p.version, p.kind, p.family, p.variant, str(len(p.files)))
    out().print(t)


def _report_lock(res: "LockResult", verb: str, json_: bool, extra: dict[str, Any] | None = None) -> None:
    from hubctl.cli.output import err, print_json

    if json_:
        print_json({**res.to_json(), **(extra or {})})
        return
    state = "wrote" if res.written else "unchanged:"
    err().print(f"{verb}: {state} {_rel(res.path)} ({len(res.lock.packages)} package{'s' if len(res.lock.packages) != 1 else ''})")
    _print_changes(res.changes)
    _print_lock(res.lock)


# --------------------------------------------------------------------------------------------- add / remove


def add(
    requirements: list[str] = typer.Argument(..., metavar="REQ...", help="Requirements, e.g. 'stable-diffusion>=1.4,<2' pokemon-lora."),
    pre: bool = typer.Option(False, "--pre", help="Allow pre-releases."),
    json_: JsonOpt = False,
) -> None:
    """Add requirements to the project file (hubctl.toml, created if needed) and relock."""
    from hubctl.lock.lockfile import write_lock
    from hubctl.lock.workflow import lock_project
    from hubctl.lock.project import find_project, new_project, with_added, write_requires

    project = find_project() or new_project(Path.cwd())
    updated = with_added(project, list(requirements))
    res = lock_project(updated, _index(), pre=pre, write=False)  # resolve first: on refusal nothing is written
    write_requires(updated)
    res.written = write_lock(updated.lock_path, res.lock)
    _report_lock(res, f"added to {_rel(updated.path)}", json_, {"project": str(updated.path), "requires": list(updated.requires)})


def remove(
    names: list[str] = typer.Argument(..., metavar="NAME...", help="Packages to drop."),
    json_: JsonOpt = False,
) -> None:
    """Remove packages from the project file and relock; without a project file, uninstall them from the store."""
    from hubctl.lock.project import find_project, with_removed, write_requires

    project = find_project()
    if project is None:
        from hubctl.store.installed import uninstall

        from hubctl.cli.output import err, print_json

        result = uninstall(list(names))
        if json_:
            print_json(result.to_json())
        else:
            err().print(f"no project file here: uninstalled {', '.join(result.removed) or 'nothing'}"
                        + (f" (not installed: {', '.join(result.missing)})" if result.missing else ""))
        return
    from hubctl.lock.lockfile import write_lock
    from hubctl.lock.workflow import lock_project

    updated = with_removed(project, list(names))
    res = lock_project(updated, _index(), write=False)
    write_requires(updated)
    res.written = write_lock(updated.lock_path, res.lock)
    _report_lock(res, f"removed from {_rel(updated.path)}", json_, {"project": str(updated.path), "requires": list(updated.requires)})


# --------------------------------------------------------------------------------------------- lock


def lock(
    check: bool = typer.Option(False, "--check", help="Exit 1 when the lock is stale (missing, or not what `hubctl lock` would write now: other inputs, or a registry change); write nothing."),
    upgrade: bool = typer.Option(False, "--upgrade", "-U", help="Ignore existing pins: newest versions, revisions re-pinned."),
    upgrade_package: list[str] = typer.Option([], "--upgrade-package", "-P", metavar="NAME", help="Re-pin only this package (repeatable)."),
    pre: bool = typer.Option(False, "--pre", help="Allow pre-releases (remembered in the lock until --upgrade)."),
    script: Optional[Path] = typer.Option(None, "--script", metavar="S.py", help="Lock a script's inline '# /// hubctl' block into S.py.lock."),
    json_: JsonOpt = False,
) -> None:
    """Resolve the project (or a script) into its lock: hubctl.lock, or S.py.lock beside the script."""
    from hubctl.cli.output import err, print_json
    from hubctl.errors import Refused
    from hubctl.lock.freshness import freshness, stale_message
    from hubctl.lock.workflow import lock_project

    project = _project(script)
    idx = _index()
    if check:
        f = freshness(project, idx, pre=pre or None)
        if json_:
            print_json(f.to_json())
        if not f.fresh:
            raise Refused(stale_message(project, f))  # one line naming each artefact that differs
        if not json_:
            err().print(f"{_rel(f.path)} is up to date with {_rel(project.path)}")
        return
    res = lock_project(project, idx, upgrade=upgrade, upgrade_packages=upgrade_package, pre=pre or None)
    _report_lock(res, "locked", json_)


# --------------------------------------------------------------------------------------------- sync / run


def _install_summary(result: Any, lock: "Lock") -> dict[str, Any]:
    summary: dict[str, Any] = {"packages": len(lock.packages), "files": sum(len(p.files) for p in lock.packages)}
    if hasattr(result, "to_json"):
        summary["install"] = result.to_json()
    elif isinstance(result, (dict, list)):
        summary["install"] = result
    return summary


def sync(
    locked: bool = typer.Option(False, "--locked", help="Refuse (exit 1) instead of relocking when the lock is stale."),
    script: Optional[Path] = typer.Option(None, "--script", metavar="S.py", help="Sync a script's lock (S.py.lock)."),
    json_: JsonOpt = False,
) -> None:
    """Fetch what the lock pins into the store (what is missing, every hash checked) and register the lock
    as a root, so `hubctl gc` keeps its files while the lock keeps its bytes. Adds only: `hubctl gc` removes."""
    from hubctl.cli.output import err, print_json
    from hubctl.lock.workflow import ensure_lock, sync_lock

    project = _project(script)
    idx = _index()
    lk, relocked = ensure_lock(project, idx, relock_stale=not locked and script is None)
    if relocked is not None and not json_:
        err().print(f"locked: wrote {_rel(relocked.path)}")
        _print_changes(relocked.changes)
    result = sync_lock(lk, progress=not json_, lock_path=project.lock_path)
    summary = _install_summary(result, lk)
    if json_:
        print_json({"lock": str(project.lock_path), **summary})
        return
    from hubctl.display import plural

    err().print(f"synced {_rel(project.lock_path)}: {plural(summary['packages'], 'package')}, {plural(summary['files'], 'file')}, every hash checked")


def run(
    ctx: typer.Context,
    script: Path = typer.Argument(..., metavar="SCRIPT.py", help="A script with a '# /// hubctl' block."),
    pre: bool = typer.Option(False, "--pre", help="Allow pre-releases when locking for the first time."),
    json_: JsonOpt = False,
) -> None:
    """Lock the script if it has no lock, sync, then run it with HUBCTL_LOCK set (hubctl.paths() inside).
    Options for hubctl go before SCRIPT.py; everything after it goes to the script."""
    from hubctl.cli.output import err, print_json
    from hubctl.lock.workflow import ensure_lock, run_script, sync_lock

    project = _project(script)
    idx = _index()
    lk, made = ensure_lock(project, idx, pre=pre or None, relock_stale=False)  # a disagreement refuses here
    if made is not None and not json_:
        err().print(f"locked: wrote {_rel(made.path)}")
    sync_lock(lk, progress=not json_, lock_path=project.lock_path)
    if json_:
        print_json({"script": str(project.path), "lock": str(project.lock_path), "packages": [p.label() for p in lk.packages]})
    code = run_script(project.path, list(ctx.args), project.lock_path)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("add")(add)
    app.command("remove")(remove)
    app.command("lock")(lock)
    app.command("sync")(sync)
    app.command(
        "run",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
    )(run)
