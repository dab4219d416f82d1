"""``hubctl inspect``, ``hubctl check`` and ``hubctl convert``: parse arguments, call hubctl.probe /
hubctl.compat / hubctl.probe.convert, render. Library imports live inside the command functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

import typer

from hubctl.cli.output import JsonOpt, style
from hubctl.display import safe

if TYPE_CHECKING:
    from hubctl.probe.types import Probe

_SHOWN_METADATA = ("modelspec.architecture", "modelspec.title", "modelspec.prediction_type", "modelspec.trigger_phrase",
                   "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_sd_model_name",
                   "ss_v2", "ss_v_parameterization", "name")


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def render_probe(p: "Probe") -> None:
    """Human output of one probe: plain lines through click (no rich import: inspect must start fast). Every
    value from the file (metadata, keys, tokens, notes) goes through ``safe``: a header cannot drive the terminal."""
    lines = [style(safe(p.path), bold=True)]
    rows: list[tuple[str, Any]] = [("kind", p.kind), ("family", p.family or "unknown"), ("layout", p.layout)]
    if p.family is None and p.family_candidates:
        rows.append(("could be", ", ".join(p.family_candidates)))
    rows += [("prediction", p.prediction), ("variant", p.variant)]
    if p.components:
        rows.append(("components", ", ".join(p.components)))
    if p.kind == "lora":
        rows += [("rank", p.rank), ("alpha", p.alpha), ("modules", len(p.lora_modules))]
    if p.kind == "embedding":
        rows += [("tokens", ", ".join(p.tokens)), ("vectors", p.vectors), ("width", p.width)]
    rows += [("dtypes", ", ".join(f"{k} x{v}" for k, v in p.dtypes.items())),
             ("parameters", f"{p.parameters:,}"), ("size", f"{_fmt_size(p.size)} ({p.size} bytes)" if p.size is not None else "?"),
             ("format", p.format)]
    if p.hashes:
        for k in ("sha256", "autov2", "data_sha256", "autov1"):
            if k in p.hashes:
                rows.append((k, p.hashes[k]))
    lines += [f"  {k:<11} {safe(str(v))}" for k, v in rows if v is not None and v != ""]
    shown = {k: p.metadata[k] for k in _SHOWN_METADATA if k in p.metadata}
    if p.metadata:
        rest = len(p.metadata) - len(shown)
        lines.append(f"  metadata    {len(p.metadata)} entries" + (f" ({rest} more with --json)" if rest and shown else ""))
        lines += [f"    {k} = {safe(v[:100])}" for k, v in shown.items()]
    if p.evidence:
        lines.append("  evidence")
        for e in p.evidence[:8]:
            shape = f" {list(e.shape)}" if e.shape is not None else ""
            lines.append(f"    {safe(e.key)}{shape}: {safe(e.means)}")
    lines += [f"  {style('note', fg='yellow')}        {safe(n)}" for n in p.notes]
    typer.echo("\n".join(lines))


def inspect(
    targets: List[str] = typer.Argument(..., metavar="PATH-OR-URL...", help="Files, diffusers folders, https:// or hf://org/repo[@rev]/path."),
    hash: bool = typer.Option(False, "--hash", help="Also compute sha256, AutoV2 and the data-only hash (reads the whole file)."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Read pickled files with torch.load(weights_only=True)."),
    json_: JsonOpt = False,
) -> None:
    """What each artefact is (kind, family, layout, prediction, rank, tokens, ...), from its header alone.

    --json prints one object per argument (an array when there are several)."""
    from hubctl.cli.output import print_json
    from hubctl.errors import HubctlError, redact
    from hubctl.probe import default_family_table, probe

    fams = default_family_table()
    results: list[dict[str, Any]] = []
    worst = 0
    for i, t in enumerate(targets):
        try:
            p = probe(t, families=fams, allow_pickle=allow_pickle, hash=hash)
        except HubctlError as e:
            if len(targets) == 1:
                raise
            typer.echo(style("error:", fg="red", bold=True) + " " + safe(redact(str(e))), err=True)
            worst = max(worst, e.exit_code)
            results.append({"path": t, "error": redact(str(e))})
            continue
        if p.format == "pickle" and not allow_pickle:
            typer.echo(style("warning:", fg="yellow") + " " + safe(p.notes[0] if p.notes else f"{t}: pickled file not read"), err=True)
        if json_:
            results.append(p.to_json())
        else:
            if i:
                typer.echo("")
            render_probe(p)
    if json_:
        print_json(results[0] if len(targets) == 1 else results)
    if worst:
        raise typer.Exit(worst)


def check(
    base: str = typer.Argument(..., metavar="BASE", help="The base model: a package name (e.g. stable-diffusion==2.0), a path or a URL."),
    adapters: List[str] = typer.Argument(..., metavar="ADAPTER...", help="LoRAs, embeddings, ControlNets: names, paths or URLs."),
    offline: bool = typer.Option(False, "--offline", help="Never read headers over the network (packages not installed are checked by their declared family)."),
    json_: JsonOpt = False,
) -> None:
    """Does this set fit together? Declared (manifests) and structural (shapes) checks; exit 1 if not."""
    from hubctl.cli.output import print_json
    from hubctl.compat.gather import gather_and_check

    verdict = gather_and_check(base, adapters, offline=offline)
    if json_:
        print_json(verdict.to_json())
    else:
        lines = [safe(x) for x in verdict.summary_lines()]
        lines += [style("problem:", fg="red") + " " + safe(pr.reason) for pr in verdict.problems]
        lines += [style("warning:", fg="yellow") + " " + safe(w) for w in verdict.warnings]
        lines.append(style("compatible", fg="green") if verdict.compatible else style("not compatible", fg="red", bold=True))
        typer.echo("\n".join(lines))
    if not verdict.compatible:
        raise typer.Exit(1)


def convert(
    file: str = typer.Argument(..., metavar="FILE", help="A pickled checkpoint (.ckpt .pt .bin .pth)."),
    out_path: Optional[str] = typer.Option(None, "--out", "-o", help="Where to write (default: FILE with .safetensors)."),
    json_: JsonOpt = False,
) -> None:
    """Write a safetensors copy of a pickled checkpoint, read with torch.load(weights_only=True)."""
    from hubctl.cli.output import out, print_json
    from hubctl.probe.convert import convert_to_safetensors

    dst = convert_to_safetensors(file, out_path)
    if json_:
        print_json({"source": file, "written": str(dst)})
    else:
        out().print(f"wrote {dst}")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
    app.command("check")(check)
    app.command("convert")(convert)
