"""Rendering helpers shared by every command: the --json option, stdout/stderr consoles, JSON output.
Keeps rich out of the import path until something is printed.

Everything printed through these consoles passes :func:`hubctl.display.safe` (terminal control characters
from data are shown as escapes, never sent raw), and JSON output escapes C1 controls too; plain
``typer.echo`` renderers call ``safe`` on each value from data and :func:`style` for colour, which honours
``NO_COLOR`` (rich honours it by itself)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["JsonOpt", "out", "err", "make_console", "print_json", "is_tty", "warn", "style"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]

_out: "Console | None" = None
_err: "Console | None" = None


def make_console(**kwargs: Any) -> "Console":
    """A rich Console for which a closed pipe (`hubctl info x | head -1`) ends the command quietly with exit 0:
    the reader leaving early is not a failure. Text from data is made terminal-safe; ``NO_COLOR`` means no
    escape codes at all."""
    import os

    from rich.console import Console

    from hubctl.display import safe

    class _Console(Console):
        def render_str(self, text: str, **kw: Any) -> Any:  # every str printed, table cells included
            return super().render_str(safe(text, newlines=True), **kw)

        def on_broken_pipe(self) -> None:
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(0)

    if os.environ.get("NO_COLOR"):  # no-color.org: rich drops colours itself; no bold or dim codes either
        kwargs["color_system"] = None
    return _Console(**kwargs)


def out() -> "Console":
    """The stdout console (created on first use, so tests that swap sys.stdout are honoured)."""
    global _out
    if _out is None or _out.file is not sys.stdout:
        _out = make_console(file=sys.stdout, highlight=False, soft_wrap=True)
    return _out


def err() -> "Console":
    global _err
    if _err is None or _err.file is not sys.stderr:
        _err = make_console(file=sys.stderr, highlight=False, soft_wrap=True)
    return _err


def is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _default(o: Any) -> Any:
    from pathlib import PurePath

    if isinstance(o, PurePath):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (plain write: no rich markup, no wrapping)."""
    from hubctl.display import json_safe

    sys.stdout.write(json_safe(json.dumps(data, indent=2, default=_default, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    """One warning line on stderr."""
    from rich.markup import escape

    from hubctl.display import safe

    err().print(f"[yellow]warning:[/yellow] {escape(safe(message))}")


def style(text: str, **kwargs: Any) -> str:
    """``typer.style`` for plain-echo renderers, or the bare text when ``NO_COLOR`` is set (no-color.org)."""
    import os

    if os.environ.get("NO_COLOR"):
        return text
    return typer.style(text, **kwargs)
