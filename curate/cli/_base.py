"""What every ``curate`` command shares: the Typer application, the console and the one-line failure."""

from __future__ import annotations

import os
import sys

import typer

cli = typer.Typer(
    name="curate",
    help="See what a preference dataset teaches before you train on it, and change it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _console():
    from rich.console import Console

    # emoji=False: a ":smile:" in the data prints as written (markup is escaped where data is printed: lit, cell)
    return Console(width=max(120, int(os.environ.get("COLUMNS", 120))), emoji=False)


DEBUG = False  # set by main() from --debug / CURATE_DEBUG


def lit(value) -> str:
    """``value`` as literal text inside a rich markup string: text from the data (a subset value, a reason, a
    concept id, a path) is never read as markup, so ``[/bold]`` cannot end a command and ``[red]x`` prints as is."""
    from rich.markup import escape

    return escape(str(value))


def cell(value):
    """A table cell holding ``value`` as plain text (``rich.text.Text``: never parsed as markup)."""
    from rich.text import Text

    return Text(str(value))


def _fail(message: str) -> None:
    """Print ``error: message`` and exit with code 2; with ``--debug``, re-raise the error being handled."""
    from rich.markup import escape

    if DEBUG and sys.exc_info()[1] is not None:
        raise
    _console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _show_progress() -> None:
    """Show curate's progress lines (activation collection, SAE fitting) on stderr."""
    import logging

    log = logging.getLogger("curate")
    if not any(getattr(h, "_curate_progress", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._curate_progress = True
        log.addHandler(handler)
    log.setLevel(logging.INFO)
