"""CLI: ``hubctl adopt DIR`` (the model folders of A1111/Forge, ComfyUI, InvokeAI into the store) and ``hubctl import
SOURCE`` (a PNG, its text, a ComfyUI workflow or a list of AIRs -> hubctl.toml and hubctl.lock).

Parses arguments, calls hubctl.adopt, renders (or prints JSON with --json). Exit codes: 0 ok; 1 ``import`` left
references unresolved (each listed); 2 bad input; 3 a source failed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hubctl.cli.output import JsonOpt

__all__ = ["register"]


def _size(n: int) -> str:
    from hubctl.cli.registry_cmd import human_size

    return human_size(n)


_ACTIONS = {"reflink": "taken in (reflink)", "hardlink": "taken in (hard link)", "copy": "copied in",
            "present": "already in the store", "unchanged": "unchanged", "skipped": "skipped", "pickle": "left alone",
            "planned": "would take in"}


def adopt(
    folder: Path = typer.Argument(..., metavar="DIR", help="An A1111/Forge, ComfyUI or InvokeAI folder (or its models folder)."),
    replace: bool = typer.Option(False, "--replace", help="Swap each file for a link to its blob once the blob is verified (reclaims duplicates)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; write nothing."),
    json_: JsonOpt = False,
) -> None:
    """Take the models a tool's folders hold into the store: classify each file from its header, hash it once,
    match it against the registries, link (or copy) it in, one blob per unique file. Files no registry knows
    become packages of the local registry `adopted`. A second run is a no-op; an interrupted one resumes."""
    from hubctl.adopt.adopt import adopt_folder
    from hubctl.cli.output import err, out, print_json

    rep = adopt_folder(folder, replace=replace, dry_run=dry_run, progress=not json_)
    if json_:
        print_json(rep.to_json())
        return
    from rich.markup import escape

    c = err()
    for line in rep.problems:
        c.print(escape(f"problem: {line}"))
    for line in rep.warnings:
        c.print(escape(f"warning: {line}"))
    o = out()
    o.print(f"{rep.layout.tool} layout at {rep.layout.root}: {len(rep.layout.folders)} model folder(s)")
    for f in rep.files:
        what = f.package + (f" {f.version}" if f.version else "") if f.package else (f.kind or "?")
        where = f" [{f.known_as}]" if f.known_as else ""
        extra = f", replaced by a {f.replaced}" if f.replaced else ""
        note = f" ({f.note})" if f.note and f.action in ("skipped", "pickle", "planned", "unchanged") else ""
        fam = f" ({f.family})" if f.family else ""
        o.print(escape(f"{_ACTIONS.get(f.action, f.action)}: {f.path} -> {what}{fam}{where}{extra}{note}"))
    verb = "would take" if dry_run else "took"
    o.print(f"{verb} {len(rep.files)} file(s), {rep.unique_blobs} unique blob(s); copied {_size(rep.copied)}; "
            f"reclaimed {_size(rep.reclaimed)}" + (f"; {_size(rep.reclaimable)} more with --replace" if rep.reclaimable else ""))


def import_(
    source: str = typer.Argument(..., metavar="SOURCE", help="A PNG, a text file of A1111 parameters, a ComfyUI workflow/prompt JSON, or a file of AIRs (- reads stdin)."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write hubctl.toml and hubctl.lock."),
    force: bool = typer.Option(False, "--force", help="Replace an existing hubctl.toml."),
    civitai: bool = typer.Option(True, "--civitai/--no-civitai", help="Ask Civitai about hashes nothing local knows."),
    json_: JsonOpt = False,
) -> None:
    """Write a hubctl.toml and lock that reproduce what SOURCE used: every model, LoRA, embedding, VAE and
    ControlNet it names is resolved by hash (registries, the store, adopted files, then Civitai). What cannot be
    resolved is listed, never guessed (exit 1, nothing written)."""
    from rich.markup import escape

    from hubctl.adopt.importer import import_source
    from hubctl.cli.output import err, out, print_json

    res = import_source(source, directory=directory, force=force, civitai=civitai, progress=not json_)
    if json_:
        print_json(res.to_json())
    else:
        o = out()
        for r in res.resolved:
            o.print(escape(f"{r.ref.role}: {r.ref.describe()} -> {r.name} {r.version} ({r.variant}; from {r.where})"))
        for r in res.unresolved:
            err().print(escape(f"unresolved: {r.ref.role}: {r.ref.describe()}: {r.why}"))
        if res.written:
            o.print(f"wrote {res.project} and {res.lock}")
            if res.generate:
                o.print(escape("replay: " + res.generate_command()))
    if res.unresolved:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("adopt")(adopt)
    app.command("import")(import_)
