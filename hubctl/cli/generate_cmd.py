"""`hubctl generate` (a verified inference run from the lock, or --replay of a recorded one) and
`hubctl runs list|show`. Parses options and renders; the work is in hubctl.run.generate and hubctl.run.records.
Imports nothing heavy at module level (torch/diffusers load only when generate runs)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hubctl.cli.output import JsonOpt

__all__ = ["register"]


def _parse_loras(values: list[str]) -> dict[str, float] | None:
    from hubctl.errors import BadInput

    if not values:
        return None
    out: dict[str, float] = {}
    for v in values:
        name, _, w = v.partition("=")
        name = name.strip()
        if not name:
            raise BadInput(f"--lora {v!r}: expected NAME or NAME=WEIGHT")
        if name.lower() == "none":
            continue
        try:
            out[name] = float(w) if w else 1.0
        except ValueError:
            raise BadInput(f"--lora {v!r}: weight {w!r} is not a number") from None
    return out


def check_backend_options(device: str, dtype: str, attention: str) -> None:
    """``--device``, ``--dtype`` and ``--attention`` values (``generate`` and ``serve``); BadInput naming the option."""
    from hubctl.errors import BadInput

    if device not in ("auto", "cpu", "mps") and not device.startswith("cuda"):
        raise BadInput(f"--device {device}: expected auto, cpu, cuda or mps")
    if dtype not in ("auto", "fp16", "bf16", "fp32"):
        raise BadInput(f"--dtype {dtype}: expected auto, fp16, bf16 or fp32")
    if attention not in ("auto", "sdpa", "xformers"):
        raise BadInput(f"--attention {attention}: expected auto, sdpa or xformers")


def _fast_exit() -> None:
    """End the hubctl process now, skipping the interpreter's teardown of torch/diffusers (about 1 s on a CPU).

    Only once everything is written (the PNG fsync'd and renamed, the run record committed, stdout flushed),
    and only when this process was started as ``hubctl generate``: never under an in-process runner (tests, a
    host program that calls the app, where stdout is not the process's own) nor when another command (e.g.
    ``hubctl demo``) runs generate inside its own process. ``HUBCTL_NO_FAST_EXIT=1`` turns it off."""
    import os
    import sys
    from pathlib import Path

    if os.environ.get("HUBCTL_NO_FAST_EXIT") or sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        return
    if Path(sys.argv[0]).name not in ("hubctl", "__main__.py", "hubctl.exe"):
        return
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command != "generate":
        return
    from hubctl.db import dispose_all

    dispose_all()  # close the SQLite connections cleanly (checkpoints the WAL)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def generate(
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="What to draw.")] = None,
    negative: Annotated[str, typer.Option("--negative", "-n", help="Negative prompt.")] = "",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed (random when left out; always recorded).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, max=1000, help="Denoising steps.")] = 20,
    guidance: Annotated[float, typer.Option("--guidance", "--cfg", help="Classifier-free guidance scale.")] = 7.5,
    width: Annotated[Optional[int], typer.Option("--width", "-W", min=8, help="Width in pixels (multiple of 8; default: the base's).")] = None,
    height: Annotated[Optional[int], typer.Option("--height", "-H", min=8, help="Height in pixels (multiple of 8).")] = None,
    lora: Annotated[Optional[list[str]], typer.Option("--lora", help="NAME[=WEIGHT] of a locked LoRA; repeat. Default: every locked LoRA at 1.0; `--lora none` for none.")] = None,
    controlnet: Annotated[Optional[str], typer.Option("--controlnet", help="A locked ControlNet to condition on.")] = None,
    control_image: Annotated[Optional[str], typer.Option("--control-image", help="The ControlNet's conditioning image.")] = None,
    sampler: Annotated[Optional[str], typer.Option("--sampler", help="euler, euler_a, ddim, pndm, dpmpp_2m, unipc, lms, heun (default: the base's scheduler).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="PNG path or folder (default: hubctl-out/RUN_ID.png).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, fp16, bf16 or fp32.")] = "auto",
    attention: Annotated[str, typer.Option("--attention", help="auto (xformers if it works, else sdpa), sdpa or xformers.")] = "auto",
    lock: Annotated[Optional[str], typer.Option("--lock", help="Lock file (default: ./hubctl.lock or $HUBCTL_LOCK).")] = None,
    replay: Annotated[Optional[str], typer.Option("--replay", help="Run a recorded run again and compare image hashes.")] = None,
    image: Annotated[int, typer.Option("--image", min=0, help="With --replay of a batch: which image to compare (the whole batch runs again).")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Verified inference run: check every locked file and the set's fit, then generate a PNG with its provenance."""
    from hubctl.cli.output import out as console, print_json
    from hubctl.errors import BadInput, Refused
    from hubctl.run import require_run_extra

    require_run_extra("hubctl generate")
    check_backend_options(device, dtype, attention)

    if replay:
        from hubctl.progress import make_progress
        from hubctl.run.batch import replay_image

        with make_progress(not json_, unit="steps") as prog:  # a bar on a terminal (stderr), nothing otherwise
            res = replay_image(replay, image, out=out, device=None if device == "auto" else device,
                               dtype=None if dtype == "auto" else dtype, progress=prog)
        if json_:
            print_json(res)
        else:
            c = console()
            verdict = "[green]identical[/green]" if res["match"] else "[red]different[/red]"
            which = f" image {res['image']} of {res['batch_size']}" if res.get("batch_size", 1) > 1 else ""
            c.print(f"replay of {res['run']}{which} -> {res['replay']} on {res['device']}: image {verdict}")
            c.print(f"  original {res['original_image_sha256'][:16]}  replay {res['replay_image_sha256'][:16]}")
            if not res["match"] and res.get("difference"):
                d = res["difference"]
                c.print(f"  difference: max {d.get('max_abs')} / 255 over {d.get('differing_pixels')} of {d.get('pixels')} pixels")
            c.print(f"  wrote {res['out_path']}")
        if not res["match"] and res["device"] == "cpu":
            raise Refused(f"replay of run {res['run']} on cpu gave a different image (pixel sha256 {res['replay_image_sha256'][:16]} != {res['original_image_sha256'][:16]})")
        _fast_exit()
        return

    if not prompt:
        raise BadInput("--prompt is required (or --replay RUN_ID)")
    for flag, v in (("--width", width), ("--height", height)):
        if v is not None and v % 8:
            raise BadInput(f"{flag} {v}: must be a multiple of 8")
    from hubctl.run.generate import GenerateRequest, run_generate

    req = GenerateRequest(
        prompt=prompt, negative=negative, seed=seed, steps=steps, guidance=guidance, width=width, height=height,
        loras=_parse_loras(lora or []), controlnet=controlnet, control_image=control_image, sampler=sampler, out=out,
        device=device, dtype=dtype, attention=attention,
    )
    from hubctl.progress import make_progress

    with make_progress(not json_, unit="steps") as prog:  # a bar on a terminal (stderr), nothing otherwise
        rec = run_generate(req, lock_path=lock, progress=prog)
    if not json_:
        from hubctl.cli.output import warn

        for w in rec.get("warnings", []):
            warn(w)
    if json_:
        print_json(rec)
        _fast_exit()
        return
    c = console()
    c.print(f"[green]wrote[/green] {rec['out_path']}")
    c.print(f"  run {rec['id']}  seed {rec['seed']}  {rec['width']}x{rec['height']}  {rec['steps']} steps  {rec['sampler']}  cfg {rec['guidance']:g}")
    c.print(f"  base {rec['base']} [{rec['model_hash']}]  device {rec['device']} {rec['dtype']}  attention {rec['attention']} ({rec['attention_reason']})")
    loras = rec["params"].get("loras") or {}
    if loras:
        c.print("  loras " + ", ".join(f"{k}={v:g}" for k, v in loras.items()))
    if rec["params"].get("controlnet"):
        c.print(f"  controlnet {rec['params']['controlnet']}")
    tm = rec.get("timings", {})
    c.print(f"  image sha256 {rec['image_sha256'][:16]}  ({rec['seconds']:.2f} s: verify {tm.get('verify', 0):.2f}, "
            f"load {tm.get('load', 0):.2f}, generate {tm.get('generate', 0):.2f})")
    _fast_exit()


runs_app = typer.Typer(help="Recorded inference runs: what produced each image.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
    json_: JsonOpt = False,
) -> None:
    """List recorded runs, newest first."""
    from hubctl.run import records as runs
    from hubctl.cli.output import out as console, print_json

    recs = runs.list_runs(limit)
    if json_:
        print_json([runs.record_to_dict(r, full=False) for r in recs])
        return
    if not recs:
        console().print("no runs yet (hubctl generate records one per image)")
        return
    from rich.table import Table

    from hubctl.cli.output import is_tty
    from hubctl.cli.registry_cmd import _print_table

    rows = []
    for r in recs:
        tag = f" (replay of {r.replay_of})" if r.replay_of else ""
        rows.append({"run": r.id, "created": r.created, "base": r.base, "seed": str(r.seed), "size": f"{r.width}x{r.height}",
                     "steps": str(r.steps), "device": f"{r.device} {r.dtype}", "image": r.image_sha256[:12],
                     "prompt": (r.prompt[:40] + ("..." if len(r.prompt) > 40 else "")) + tag})
    # The run id is what `generate --replay` and `runs show` take: always whole. On a narrow terminal the least
    # useful columns go first, then the prompt is cut short; the table never squeezes the id.
    cols = ["run", "created", "base", "seed", "size", "steps", "device", "image"]
    width = console().width if is_tty() else 1000
    wide = {n: max(len(n), *(len(row[n]) for row in rows)) for n in cols}
    for name in ("image", "steps", "size", "device", "seed", "base", "created"):
        if sum(wide[c] + 2 for c in cols) + 22 <= width:  # room for 20 characters of prompt
            break
        cols.remove(name)
    t = Table(box=None, header_style="bold")
    for col in [*cols, "prompt"]:
        t.add_column(col)
    for row in rows:
        t.add_row(*(row[c] for c in cols), row["prompt"])
    _print_table(t, give_way="prompt")


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix).")],
    json_: JsonOpt = False,
) -> None:
    """Everything a run used and produced."""
    from hubctl.run import records as runs
    from hubctl.cli.output import out as console, print_json

    d = runs.record_to_dict(runs.get_run(run_id))
    if json_:
        print_json(d)
        return
    c = console()
    for k in ("id", "created", "status", "replay_of", "prompt", "negative", "seed", "steps", "guidance", "sampler", "width", "height",
              "base", "model_hash", "lock_digest", "lock_path", "device", "dtype", "attention", "out_path", "image_sha256", "png_sha256", "seconds"):
        if d.get(k) not in (None, ""):
            c.print(f"{k:13} {d[k]}")
    for p in d["packages"]:
        c.print(f"package      {p['name']} {p['version']} ({p['kind']}, {p['family']})")
        for f in p["files"]:
            c.print(f"  {f['sha256'][:16]}  {f['path']}")
    if d["params"].get("loras"):
        c.print("loras        " + ", ".join(f"{k}={v:g}" for k, v in d["params"]["loras"].items()))
    c.print("versions     " + ", ".join(f"{k} {v}" for k, v in sorted(d["versions"].items())))


@runs_app.command("export")
def runs_export(
    dest: Annotated[str, typer.Argument(metavar="DIR", help="Folder to write (new, empty, or an earlier export).")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs, newest first.")] = 200,
    json_: JsonOpt = False,
) -> None:
    """Write the gallery as static HTML (images with their chunks, provenance; no server needed)."""
    from hubctl.cli.output import out as console, print_json, warn
    from hubctl.serve.export import export_gallery

    res = export_gallery(dest, limit=limit)
    if json_:
        print_json(res)
        return
    for s in res["skipped"]:
        warn(f"skipped {s}")
    console().print(f"wrote {res['path']}/index.html: {res['runs']} runs, {res['images']} images")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.add_typer(runs_app, name="runs")
