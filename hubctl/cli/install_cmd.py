"""CLI: ``hubctl install``, ``list``, ``verify``, ``uninstall``, ``gc`` and ``export``.

Parses arguments, calls hubctl.sources.fetch / hubctl.store.views, renders with rich (or JSON with --json). Progress
bars appear only on a terminal and never with --json. Library modules are imported inside the command
functions so ``hubctl --help`` stays fast.

Exit codes: 0 ok; 1 "no" (verify found drift, no compatible set); 2 bad input; 3 a source failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hubctl.cli.output import JsonOpt

__all__ = ["register"]


def _size(n: int) -> str:
    from hubctl.cli.registry_cmd import human_size

    return human_size(n)


def _table(table: Any) -> None:
    from hubctl.cli.registry_cmd import _print_table

    _print_table(table)


def install(
    requirements: list[str] = typer.Argument(..., metavar="NAME[SPEC]...", help="Packages to install, e.g. 'stable-diffusion==1.4' easynegative."),
    pre: bool = typer.Option(False, "--pre", help="Allow pre-releases."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Preferred precision of variants: fp16, bf16, fp32."),
    vram: Optional[str] = typer.Option(None, "--vram", help="VRAM budget for the set, e.g. '10GiB'."),
    family: Optional[str] = typer.Option(None, "--family", help="Only versions of this family (sd1, sd2, sdxl, ...)."),
    json_: JsonOpt = False,
) -> None:
    """Install packages by name: the newest versions and variants that fit what is installed, every file
    fetched once into the store and hash-checked.

    Sources: hf:// (HF_ENDPOINT, HF_TOKEN or `hf auth login`, HF_HUB_OFFLINE, HF_HOME; files already in the
    HF cache are reused), https:// (credentials per host from HUBCTL_AUTH_<HOST>, or CIVITAI_TOKEN for
    civitai.com; sent only as a header, never shown), file:// and paths."""
    from hubctl.cli.output import err, print_json
    from hubctl.lock.workflow import install as do_install

    report = do_install(list(requirements), pre=pre, dtype=dtype, vram=vram, family=family, progress=not json_)
    if json_:
        print_json(report.to_json())
        return
    c = err()
    for p in report.packages:
        status = report.status(p)
        size = _size(sum(f.size for f in p.files))
        what = f"{p.name} {p.version} ({p.variant}, {p.family} {p.kind}): {len(p.files)} file{'s' if len(p.files) != 1 else ''}, {size}"
        if status == "unchanged":
            c.print(f"already installed: {what}")
        elif status == "replaced":
            c.print(f"installed {what} (was {report.previous[p.name]})")
        else:
            c.print(f"installed {what}")
    parts = [f"downloaded {_size(report.downloaded_bytes)}"]
    if report.count("resumed"):
        parts.append(f"{report.count('resumed')} resumed")
    parts.append(f"reused {report.count('store')} from the store, {report.count('hf-cache')} from the HF cache")
    c.print("; ".join(parts))


def _root_label(key: str) -> str:
    """A root as the user reads it: ``installed``, or the lock's path (with ~ for the home folder)."""
    home = str(Path.home())
    return "~" + key[len(home):] if key.startswith(home + "/") else key


def list_(json_: JsonOpt = False) -> None:
    """List every package version in the store's roots, with the roots that use it: `installed` (hubctl
    install) and each synced lock (hubctl sync / run); a root gc will no longer honour is marked stale."""
    from hubctl.cli.output import err, print_json
    from hubctl.store.installed import package_roots

    uses = package_roots()
    if json_:
        print_json(
            [
                {"name": u.package.name, "version": u.package.version, "variant": u.package.variant, "kind": u.package.kind,
                 "family": u.package.family, "files": len(u.package.files), "size": sum(f.size for f in u.package.files),
                 "roots": u.roots, "stale_roots": u.stale}
                for u in uses
            ]
        )
        return
    if not uses:
        err().print("nothing installed (try `hubctl install NAME`)")
        return
    from rich.table import Table

    t = Table(box=None, pad_edge=False)
    for col in ("name", "version", "variant", "kind", "family", "files", "size", "roots"):
        t.add_column(col, justify="right" if col in ("files", "size") else "left", overflow="fold")
    for u in uses:
        p = u.package
        roots = ", ".join(_root_label(r) + (" (stale)" if r in u.stale else "") for r in u.roots)
        t.add_row(p.name, p.version, p.variant, p.kind, p.family, str(len(p.files)), _size(sum(f.size for f in p.files)), roots)
    _table(t)


def _lock_packages(lock: Optional[Path]) -> tuple[Optional[Path], list[Any]]:
    """The packages of ``lock``, or of the project's lock when there is one (else none)."""
    from hubctl.lock.lockfile import read_lock

    if lock is None:
        from hubctl.lock.project import find_project

        project = find_project()
        if project is None or not project.lock_path.is_file():
            return None, []
        lock = project.lock_path
    return lock, list(read_lock(lock).packages)


def verify(
    full: bool = typer.Option(False, "--full", help="Rehash every file, not only those whose stat changed."),
    lock: Optional[Path] = typer.Option(None, "--lock", metavar="FILE", help="Also check this lock's files (default: the project's hubctl.lock, if any)."),
    json_: JsonOpt = False,
) -> None:
    """Re-check installed files, and the project's lock: an unchanged file costs a stat; a changed one is
    rehashed. Exit 1 on drift, with one line per bad file."""
    from hubctl.cli.output import err, print_json
    from hubctl.errors import Refused
    from hubctl.store.installed import installed_packages, verify_installed

    lock_path, locked = _lock_packages(lock)
    packages = installed_packages()
    have = {(p.name, p.version, p.variant) for p in packages}
    packages += [p for p in locked if (p.name, p.version, p.variant) not in have]
    rep = verify_installed(full=full, packages=packages, progress=not json_)
    if json_:
        print_json({**rep.to_json(), "lock": str(lock_path) if lock_path else None})
    else:
        for line in rep.problems:
            err().print(f"[red]bad:[/red] {_escape(line)}")
    if not rep.ok:
        n = len(rep.problems)
        raise Refused(f"{n} file{'s' if n != 1 else ''} differ from their sha256 or are missing; run `hubctl install` or `hubctl sync` to fetch them again")
    if not json_:
        also = f", including {lock_path.name}" if lock_path else ""
        from hubctl.display import plural

        err().print(f"ok: {plural(rep.checked, 'file')}, {_size(rep.bytes)} ({rep.hashed} rehashed){also}")


def _escape(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def uninstall(
    names: list[str] = typer.Argument(..., metavar="NAME...", help="Installed packages to forget."),
    json_: JsonOpt = False,
) -> None:
    """Forget installed packages (their blobs stay in the store until `hubctl gc`)."""
    from hubctl.cli.output import err, print_json, warn
    from hubctl.store.installed import uninstall as do_uninstall

    rep = do_uninstall(list(names))
    if json_:
        print_json(rep.to_json())
        return
    for n in rep.missing:
        warn(f"{n} is not installed")
    if rep.removed:
        err().print(f"uninstalled {', '.join(rep.removed)} (run `hubctl gc` to free their files)")


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only say what would be removed."),
    json_: JsonOpt = False,
) -> None:
    """Remove blobs that no root pins (the install set, and each synced lock whose file still has the bytes it
    was synced with), and abandoned partial downloads. Says which roots it honoured and which it dropped (a
    lock gone or changed: `hubctl sync` there registers it again)."""
    from hubctl.cli.output import err, print_json, warn
    from hubctl.errors import Refused
    from hubctl.store.installed import gc as do_gc

    rep = do_gc(dry_run=dry_run, on_wait=None if json_ else lambda: err().print("waiting for a running install to finish ..."))
    bad = [f"{sha[:12]}… {problem}; set aside: run `hubctl install` or `hubctl sync` to fetch it again"
           for sha, problem in sorted(rep.bad.items())]
    if json_:
        print_json({"dry_run": rep.dry_run, "removed": rep.removed, "partials": rep.partials_removed, "freed": rep.freed,
                    "roots": {"honoured": [r.to_json() for r in rep.honoured], "dropped": [r.to_json() for r in rep.dropped]},
                    "bad": [{"sha256": sha, "problem": p} for sha, p in sorted(rep.bad.items())]})
    else:
        c = err()
        kept = "; ".join(_root_label(r.key) + (f" ({r.why})" if r.why else "") for r in rep.honoured) or "none"
        c.print(f"roots honoured: {_escape(kept)}")
        for r in rep.dropped:
            verb = "would drop" if dry_run else "dropped"
            warn(f"{verb} root {r.key}: {r.why}; what only it pinned is no longer kept (`hubctl sync` there registers it again)")
        verb = "would remove" if dry_run else "removed"
        if dry_run:
            for sha in rep.removed:
                c.print(f"would remove {sha[:12]}… {_size(rep.sizes.get(sha, 0))}" + _escape(f"  {rep.was[sha]}" if sha in rep.was else ""))
        c.print(f"{verb} {len(rep.removed)} blob{'s' if len(rep.removed) != 1 else ''}"
                + (f" and {rep.partials_removed} partial download{'s' if rep.partials_removed != 1 else ''}" if rep.partials_removed else "")
                + f", {_size(rep.freed)}")
    if bad:
        raise Refused(bad[0] if len(bad) == 1 else f"{len(bad)} pinned blobs were not regular files of the store: " + "; ".join(bad))


def export(
    directory: Path = typer.Argument(..., metavar="DIR", help="The tool's folder (e.g. the stable-diffusion-webui root; for ComfyUI its root or its models folder)."),
    layout: str = typer.Option(..., "--layout", help="diffusers | a1111 | comfyui | invokeai"),
    packages: list[str] = typer.Option([], "--package", "-p", metavar="NAME", help="Only these installed packages (repeatable)."),
    json_: JsonOpt = False,
) -> None:
    """Lay installed packages out the way a tool expects, as links into the store (hardlinks on the same
    filesystem, else symlinks). Idempotent; never overwrites or deletes a file it did not create, and never
    writes outside DIR or through a symlink it did not make."""
    from hubctl.cli.output import err, print_json, warn
    from hubctl.errors import BadInput
    from hubctl.store.installed import installed_package, installed_packages
    from hubctl.store.views import export as do_export

    if packages:
        chosen = []
        for n in packages:
            p = installed_package(n)
            if p is None:
                raise BadInput(f"'{n}' is not installed")
            chosen.append(p)
    else:
        chosen = installed_packages()
    rep = do_export(layout, directory, chosen)
    if json_:
        print_json(rep.to_json())
        return
    for n in rep.notes:
        warn(n)
    for s in rep.skipped:
        warn(s)
    err().print(
        f"{layout} view in {rep.root}: {len(rep.created)} created, {len(rep.replaced)} updated, "
        f"{len(rep.kept)} unchanged, {len(rep.removed)} removed ({rep.link}s)"
    )


def register(app: typer.Typer) -> None:
    """Attach install, list, verify, uninstall, gc and export to the root app."""
    app.command("install")(install)
    app.command("list")(list_)
    app.command("verify")(verify)
    app.command("uninstall")(uninstall)
    app.command("gc")(gc)
    app.command("export")(export)
