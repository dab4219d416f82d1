"""The typer command-line app: one module per command group. Each module parses arguments, calls the
library, and renders the result with rich (or as JSON with --json). Library imports happen inside the
command functions so that ``hubctl --help`` stays fast."""
