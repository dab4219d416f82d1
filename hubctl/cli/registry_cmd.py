"""CLI: ``hubctl registry add|list|remove|update|build``, ``hubctl search`` and ``hubctl info``.

Parses arguments, calls hubctl.registry (manage, configured, index), renders with rich (or JSON with --json).
Library modules are imported inside the command functions so ``hubctl --help`` stays fast; ``search``
answers from the index's plain-sqlite read path without parsing manifests.

Exit codes: ``search`` with no match exits 0 and says so on stderr (like ``apt search``/``npm search``: an
empty result is an answer, not an error); ``info`` of a package the index does not have exits 1 ("no such
package", like ``pip show``), a malformed name exits 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import typer

from hubctl.cli.output import JsonOpt

if TYPE_CHECKING:
    from hubctl.registry.index import Index
    from hubctl.registry.manifest import Manifest

__all__ = ["register", "human_size"]

registry_app = typer.Typer(
    name="registry",
    help="Manage registries: the bundled default plus folders, index files or URLs you add.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def human_size(n: int | None) -> str:
    """Bytes in IEC units: 4265146304 -> '3.97 GiB'; None -> '?'."""
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} B"  # pragma: no cover


def _print_table(table: Any, give_way: Optional[str] = None) -> None:
    """Print a rich table: fitted to a terminal, or one line per row, nothing cut, when piped. On a terminal,
    the column named ``give_way`` (a summary, a prompt) is the one cut short with "…"; the others keep their
    width (rich would otherwise squeeze every column, names and ids included, down to "…")."""
    import sys

    from hubctl.cli.output import is_tty, make_console, out

    if is_tty():
        if give_way is not None:
            _give_way(table, give_way, out().width)
        out().print(table)
        return
    make_console(file=sys.stdout, width=1000, highlight=False, color_system=None).print(table)


def _give_way(table: Any, name: str, width: int) -> None:
    from rich.cells import cell_len

    used = 0
    flex = None
    for col in table.columns:
        if col.header == name:
            flex = col
            continue
        w = max([cell_len(str(col.header)), *(cell_len(str(c)) for c in col.cells)])
        col.no_wrap, col.min_width = True, w
        used += w + 2  # one space of padding a side
    if flex is not None:
        flex.no_wrap, flex.overflow, flex.max_width = True, "ellipsis", max(8, width - used - 2)


def _open(strict: bool = False) -> "Index":
    from hubctl.cli.output import warn
    from hubctl.registry.manage import open_index

    idx = open_index(strict=strict)
    for w in idx.warnings:
        warn(w)
    return idx


# --------------------------------------------------------------------------------------------- registry


@registry_app.command("list")
def registry_list(json_: JsonOpt = False) -> None:
    """List configured registries (the bundled 'default' first) with their package counts and the families
    each one defines."""
    from hubctl.cli.output import print_json
    from hubctl.registry.configured import list_registries

    entries = list_registries()
    idx = _open()
    counts = {r["name"]: r["packages"] for r in idx.registries()}
    fams = idx.families_by_registry()
    rows = [{**e.to_json(), "packages": counts.get(e.name), "families": fams.get(e.name, [])} for e in entries]
    if json_:
        print_json(rows)
        return
    from rich.table import Table

    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("name", "kind", "packages", "families", "location"):
        t.add_column(col, justify="right" if col == "packages" else "left")
    from rich.markup import escape

    for r in rows:
        t.add_row(r["name"], r["kind"], "?" if r["packages"] is None else str(r["packages"]),
                  escape(",".join(r["families"]) or "-"), escape(r["location"]))
    _print_table(t)


@registry_app.command("add")
def registry_add(
    location: str = typer.Argument(..., help="A registry folder, an index file from `registry build`, or an http(s) URL of one."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Name for the registry (default: from the location)."),
    override_families: bool = typer.Option(
        False, "--override-families",
        help="Let this registry redefine families that an earlier registry (the bundled default included) defines."),
    json_: JsonOpt = False,
) -> None:
    """Add a registry. It is validated first: a bad manifest leaves everything as it was (exit 2). A registry
    served over HTTP may name only remote sources (hf://, https://, http://); no registry may put credentials in a
    source URL (use HUBCTL_AUTH_<HOST>)."""
    from hubctl.cli.output import out, print_json, warn
    from hubctl.registry.manage import add_registry, open_index

    entry = add_registry(location, name, override_families=override_families)
    idx = open_index(strict=True)
    for w in [*idx.warnings, *idx.compile_warnings()]:
        warn(w)
    count = next((r["packages"] for r in idx.registries() if r["name"] == entry.name), 0)
    if json_:
        print_json({**entry.to_json(), "packages": count})
        return
    out().print(f"added registry [bold]{entry.name}[/bold] ({entry.kind}, {count} package{'s' if count != 1 else ''}): {entry.location}")


@registry_app.command("remove")
def registry_remove(name: str = typer.Argument(..., help="Registry name (see `hubctl registry list`)."), json_: JsonOpt = False) -> None:
    """Remove an added registry; its packages leave the index."""
    from hubctl.cli.output import out, print_json
    from hubctl.registry.manage import remove_registry

    entry = remove_registry(name)
    _open()
    if json_:
        print_json({**entry.to_json(), "removed": True})
        return
    out().print(f"removed registry [bold]{entry.name}[/bold] ({entry.location})")


@registry_app.command("update")
def registry_update(
    name: Optional[str] = typer.Argument(None, help="Only this registry (default: all)."), json_: JsonOpt = False
) -> None:
    """Re-fetch URL registries and recompile the index now. A registry that no longer validates is reported
    (exit 2) and the previous index stays in place."""
    from hubctl.cli.output import out, print_json, warn
    from hubctl.registry.manage import open_index, update_registries

    targets = update_registries(name)
    idx = open_index(strict=True)
    for w in [*idx.warnings, *idx.compile_warnings()]:
        warn(w)
    counts = {r["name"]: r["packages"] for r in idx.registries()}
    rows = [{**e.to_json(), "packages": counts.get(e.name, 0)} for e in targets]
    if json_:
        print_json(rows)
        return
    for r in rows:
        out().print(f"updated [bold]{r['name']}[/bold]: {r['packages']} package{'s' if r['packages'] != 1 else ''}")


@registry_app.command("build")
def registry_build(
    folder: str = typer.Argument(..., help="A registry folder (families.toml optional, manifests/<kind>/<name>.toml)."),
    out_file: Optional[str] = typer.Option(None, "--out", "-o", help="Index file to write (default: FOLDER/index.json)."),
    json_: JsonOpt = False,
) -> None:
    """Validate a registry folder and write it as one static index file, to serve over HTTP or add by path."""
    from pathlib import Path

    from hubctl.cli.output import out, print_json
    from hubctl.errors import BadInput
    from hubctl.registry.compile import build_index_file

    src = Path(folder).expanduser()
    if not src.is_dir():
        raise BadInput(f"'{folder}' is not a folder")
    dest = Path(out_file).expanduser() if out_file else src / "index.json"
    n_fam, n_man = build_index_file(src, dest)
    if json_:
        print_json({"folder": str(src.resolve()), "out": str(dest.resolve()), "families": n_fam, "manifests": n_man})
        return
    out().print(f"wrote {dest} ({n_man} manifest{'s' if n_man != 1 else ''}, {n_fam} famil{'ies' if n_fam != 1 else 'y'})")


# --------------------------------------------------------------------------------------------- search


def search(
    text: str = typer.Argument("", help="Words to look for in names, summaries, tags, triggers and tokens (empty: everything)."),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="checkpoint | lora | embedding | controlnet | vae"),
    family: Optional[str] = typer.Option(None, "--family", "-f", help="Family id, e.g. sd1, sd2, sdxl."),
    json_: JsonOpt = False,
) -> None:
    """Search the index. No match is not an error: it says so and exits 0."""
    import sys

    from hubctl.cli.output import print_json
    from hubctl.errors import BadInput

    kinds = ("checkpoint", "lora", "embedding", "controlnet", "vae")
    if kind is not None and kind not in kinds:
        raise BadInput(f"--kind: '{kind}' is not one of: {', '.join(kinds)}")
    idx = _open()
    if family is not None:
        fams = idx.family_ids()
        if family not in fams:
            raise BadInput(f"--family: unknown family '{family}' (known: {', '.join(sorted(fams))})")
    rows = idx.search_rows(text, kind=kind, family=family)
    if json_:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        what = f"'{text}'" if text else "the filters"
        from hubctl.display import safe

        sys.stderr.write(safe(f"no packages match {what}") + "\n")
        return
    from rich.markup import escape
    from rich.table import Table

    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("name", no_wrap=True)
    t.add_column("kind")
    t.add_column("latest")
    t.add_column("families")
    t.add_column("summary", no_wrap=True, overflow="ellipsis")
    multi = len({r.registry for r in rows}) > 1
    if multi:
        t.add_column("registry")
    for r in rows:
        cells = [escape(r.name), r.kind, escape(r.latest), ",".join(r.families), escape(r.summary)]
        if multi:
            cells.append(r.registry)
        t.add_row(*cells)
    _print_table(t, give_way="summary")


# --------------------------------------------------------------------------------------------- info


_ADAPTER_SCAN_LIMIT = 500  # info lists fitting adapters from at most this many candidates of the family


def adapters_fitting(idx: "Index", base: "Manifest", version: Any) -> list[str]:
    """Adapters in the index declared for this base version: same family, and any ``requires`` on the base's
    package admits this version (declared fit only; `hubctl check` does the structural check)."""
    from packaging.utils import canonicalize_name

    if base.kind != "checkpoint":
        return []
    out = []
    for row in idx.search_rows("", family=version.family)[:_ADAPTER_SCAN_LIMIT]:
        if row.kind == "checkpoint":
            continue
        adapter = idx.get(row.name)
        if adapter is None:
            continue
        for av in sorted(adapter.versions, key=lambda x: x.parsed, reverse=True):
            if av.family != version.family:
                continue
            on_bases = [r for r in av.requirements if (b := idx.get(r.name)) is not None and b.kind == "checkpoint"]
            on_this = [r for r in on_bases if canonicalize_name(r.name) == base.canonical_name]
            if on_bases and not on_this:
                continue  # declared for another base package
            if all(r.specifier.contains(version.parsed, prereleases=True) for r in on_this):
                out.append(f"{adapter.name} {av.version}")
                break
    return out


def _info_json(m: "Manifest", registry: str, versions: list[Any], idx: "Index") -> dict[str, Any]:
    data = m.model_dump(mode="json", exclude_none=True)
    data["registry"] = registry
    data["versions"] = []
    for v in versions:
        vd = v.model_dump(mode="json", exclude_none=True)
        vd["prerelease"] = v.parsed.is_prerelease
        if m.kind == "checkpoint":
            vd["adapters"] = adapters_fitting(idx, m, v)
        for var, vard in zip(v.variants, vd["variants"]):
            vard["size"] = var.size
            for f, fd in zip(var.files, vard["files"]):
                if f.sha256:
                    fd["autov2"] = f.sha256[:10]
        data["versions"].append(vd)
    return data


def info(
    name: str = typer.Argument(..., help="Package name, optionally with a version specifier: 'stable-diffusion>=2'."),
    json_: JsonOpt = False,
) -> None:
    """Show a package: versions (newest first), family, prediction, what each fits, variants, files, sizes,
    licence, triggers/tokens. A package the index does not have exits 1."""
    from packaging.requirements import InvalidRequirement, Requirement

    from hubctl.cli.output import print_json
    from hubctl.errors import BadInput, Refused

    try:
        req = Requirement(name)
    except InvalidRequirement:
        raise BadInput(f"'{name}' is not a package name or requirement") from None
    idx = _open()
    m = idx.get(req.name)
    if m is None:
        from hubctl.registry.index import no_such_package

        raise no_such_package(req.name, idx.names())
    versions = sorted(m.versions, key=lambda v: v.parsed, reverse=True)
    if req.specifier:
        versions = [v for v in versions if req.specifier.contains(v.parsed, prereleases=True)]
        if not versions:
            raise Refused(f"{m.name} has no version matching '{req.specifier}' (versions: {', '.join(v.version for v in m.versions)})")
    registry = idx.registry_of(m.name)
    if json_:
        print_json(_info_json(m, registry, versions, idx))
        return
    _render_info(m, registry, versions, idx)


def _render_info(m: "Manifest", registry: str, versions: list[Any], idx: "Index") -> None:
    from rich.markup import escape

    from hubctl.cli.output import out

    con = out()
    con.print(f"[bold]{escape(m.name)}[/bold] ({m.kind}) {escape(m.summary)}")
    facts = [("registry", registry)]
    if m.license:
        facts.append(("licence", m.license))
    if m.homepage:
        facts.append(("homepage", m.homepage))
    if m.authors:
        facts.append(("authors", ", ".join(m.authors)))
    if m.tags:
        facts.append(("tags", ", ".join(m.tags)))
    for k, v in facts:
        con.print(f"  {k}: {escape(v)}")
    if m.description:
        con.print(f"  {escape(m.description)}")
    for v in versions:
        fam = idx.families.get(v.family)
        fam_text = v.family + (f" ({fam.title}, cross-attention {fam.cross_attention_dim})" if fam and fam.title else "")
        flags = []
        if v.parsed.is_prerelease:
            flags.append("pre-release")
        if v.yanked:
            flags.append("yanked")
        con.print()
        con.print(f"[bold]{escape(v.version)}[/bold]" + (f"  [yellow]{', '.join(flags)}[/yellow]" if flags else ""))
        lines = [("family", fam_text)]
        if v.prediction:
            lines.append(("prediction", v.prediction))
        if v.task != "normal":
            lines.append(("task", v.task))
        if v.resolution:
            lines.append(("resolution", f"{v.resolution} px"))
        if v.requires:
            lines.append(("fits", ", ".join(v.requires)))
        elif m.kind != "checkpoint":
            lines.append(("fits", f"any {v.family} base"))
        else:
            fitting = adapters_fitting(idx, m, v)
            if fitting:
                lines.append(("adapters", f"{len(fitting)} declared for it: " + ", ".join(fitting)))
        if v.trigger:
            lines.append(("trigger", ", ".join(v.trigger)))
        if v.tokens:
            lines.append(("tokens", ", ".join(v.tokens)))
        if v.license:
            lines.append(("licence", v.license))
        if v.released:
            lines.append(("released", v.released))
        if v.notes:
            lines.append(("notes", v.notes))
        for k, val in lines:
            con.print(f"  {k}: {escape(val)}")
        for var in v.variants:
            detail = ", ".join(x for x in (var.dtype, var.layout) if x)
            count = f"{len(var.files)} files, " if len(var.files) > 1 else ""
            total = human_size(var.size) if var.size is not None else "size pinned at lock"
            con.print(f"  variant [bold]{escape(var.name)}[/bold] ({escape(detail) + ', ' if detail else ''}{count}{total})")
            for f in var.files:
                sha = f"sha256 {f.sha256[:10]}" if f.sha256 else "sha256 pinned at lock"
                size = f"  {human_size(f.size)}" if f.size is not None else ""
                con.print(f"    {escape(f.path)}{size}  [dim]{sha}[/dim]")
                con.print(f"      [dim]from {escape(f.source)}[/dim]")


def register(app: typer.Typer) -> None:
    """Attach ``registry``, ``search`` and ``info`` to the root app."""
    app.add_typer(registry_app, name="registry")
    app.command("search")(search)
    app.command("info")(info)
