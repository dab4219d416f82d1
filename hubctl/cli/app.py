"""The root ``hubctl`` command: registers every command module and maps hubctl's errors to one line
on stderr and the exit code of hubctl.errors (1 no, 2 bad input, 3 source failed). No traceback for
an expected error; an unexpected one is a bug and keeps its traceback."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

from hubctl.errors import HubctlError, redact

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
]


def report_error(e: HubctlError) -> None:
    """Print the one-line message for an expected error on stderr."""
    from rich.markup import escape

    from hubctl.cli.output import err

    err().print(f"[bold red]error:[/bold red] {escape(redact(str(e)))}")


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
            from hubctl.cli.output import err

            err().print("interrupted")
            raise SystemExit(130) from None


app = typer.Typer(
    cls=HubctlGroup,
    name="hubctl",
    help="A package manager for diffusion models: install, check, lock and run Stable Diffusion "
    "checkpoints, LoRAs, embeddings and ControlNets, with every hash verified.",
    no_args_is_help=True,
    add_completion=False,
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
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
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


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="hubctl")
    except HubctlError as e:  # raised outside a command (e.g. in a callback)
        report_error(e)
        sys.exit(e.exit_code)
    except BrokenPipeError:  # `hubctl info x | head -1`: the reader left; that is not a failure
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
