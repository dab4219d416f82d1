"""The root ``hubctl`` command: registers every command module and is the CLI's one edge: hubctl's errors,
and the OS, SQLite and parser failures that :func:`hubctl.errors.from_exception` knows, become one line on
stderr and the exit code of hubctl.errors (1 no, 2 bad input, 3 a source or the machine failed, 130
Ctrl-C). No traceback for any of those; an exception the mapping does not know is a bug and keeps its
traceback."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

from hubctl.errors import HubctlError, from_exception, redact

# Each module exposes ``register(app: typer.Typer) -> None``. Imported at start-up, so they must be cheap:
# library imports go inside the command functions.
COMMAND_MODULES = [
    "hubctl.cli.registry_cmd",   # registry add|list|remove|update|build, search, info
    "hubctl.cli.inspect_cmd",    # inspect, check, convert
    "hubctl.cli.install_cmd",    # install, list, verify, uninstall, gc, export
    "hubctl.cli.project_cmd",    # add, remove, lock, sync, run
    "hubctl.cli.generate_cmd",   # generate, runs list|show
    "hubctl.cli.demo_cmd",       # demo
    "hubctl.cli.serve_cmd",      # serve
    "hubctl.cli.adopt_cmd",      # adopt, import
]


def report_error(e: HubctlError) -> None:
    """Print the one-line message for an expected error on stderr."""
    from rich.markup import escape

    from hubctl.cli.output import err
    from hubctl.display import safe

    err().print(f"[bold red]error:[/bold red] {escape(safe(redact(str(e))))}")


def _interrupted() -> "SystemExit":
    from hubctl.cli.output import err

    err().print("interrupted")
    return SystemExit(130)


class HubctlGroup(TyperGroup):
    """Click group that turns HubctlError into its exit code, also under CliRunner in tests."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # keep registration order in --help
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HubctlError as e:
            report_error(e)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:
            raise _interrupted() from None
        except Exception as e:  # OS, SQLite and parser failures: one line and their code; a bug re-raises
            mapped = from_exception(e)
            if mapped is None:
                raise
            report_error(mapped)
            raise SystemExit(mapped.exit_code) from None


app = typer.Typer(
    cls=HubctlGroup,
    name="hubctl",
    help="A package manager for diffusion models: install, check, lock and run Stable Diffusion "
    "checkpoints, LoRAs, embeddings and ControlNets, with every hash verified.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("hubctl")
        except PackageNotFoundError:  # running from a checkout without install
            v = "0+unknown"
        typer.echo(f"hubctl {v}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version_callback, is_eager=True, help="Show the version and exit."),
) -> None:
    """hubctl: a package manager for diffusion models."""


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _e:  # a command group not built yet
        if _e.name != _name:
            raise
        continue
    _mod.register(app)


def _help(ctx: typer.Context, command: list[str] = typer.Argument(None, metavar="[COMMAND]...", help="A command, e.g. `install` or `registry add`.")) -> None:
    """Show help for hubctl, or for one command (`hubctl help install` is `hubctl install --help`)."""
    from hubctl.errors import BadInput

    info: Any = ctx.parent
    assert info is not None
    for word in command or []:
        get = getattr(info.command, "get_command", None)  # a group (typer vendors click: no isinstance)
        sub = get(info, word) if get is not None else None
        if sub is None:
            raise BadInput(f"no command '{' '.join(command)}' (see `hubctl help`)")
        info = type(ctx)(sub, info_name=word, parent=info)
    typer.echo(info.get_help())


app.command("help")(_help)  # registered last: it comes last in the command list


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="hubctl")
    except KeyboardInterrupt:  # outside a command (arguments, start-up)
        raise _interrupted() from None
    except BrokenPipeError:  # `hubctl info x | head -1`: the reader left; that is not a failure
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as e:  # raised outside a command (e.g. in a callback)
        mapped = from_exception(e)
        if mapped is None:
            raise
        report_error(mapped)
        sys.exit(mapped.exit_code)
