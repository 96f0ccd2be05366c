"""``curate app [PATH|REPO_ID] [--port N] [--compare B]``: browse an audit, its pairs and a draft recipe in the browser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

DEMO_AUDIT = Path("outputs/demo/audit")


def _quick_demo(console_echo=typer.echo) -> str:
    """Audit 1,000 generated pairs (named concepts only, a few seconds) into outputs/demo/audit."""
    from .. import make_preference_pairs
    from ..pipeline import run_audit

    DEMO_AUDIT.parent.mkdir(parents=True, exist_ok=True)
    data = DEMO_AUDIT.parent / "pairs.jsonl"
    console_echo(
        f"No demo output yet: auditing 1,000 generated pairs into {DEMO_AUDIT} "
        "(run `curate demo` for the full flow with SAE concepts and a published folder)."
    )
    make_preference_pairs(1000, seed=0).dataset.to_json(str(data), lines=True)
    run_audit(str(data), out=DEMO_AUDIT)
    return str(DEMO_AUDIT)


def app_command(
    source: Optional[str] = typer.Argument(
        None,
        help="Folder from `curate audit --out` or `curate publish`, or a Hub dataset id. Default: the demo output.",
    ),
    port: Optional[int] = typer.Option(
        None, "--port", help="Port to serve on (default: Gradio's, 7860 or the next free one)."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind (0.0.0.0 to reach it from other machines)."
    ),
    compare: Optional[str] = typer.Option(
        None, "--compare", help="A second folder or Hub id to show side by side, concept by concept, in a Compare tab."
    ),
) -> None:
    """Open the curate app: Overview, Concept, Pairs and Recipe views of an audited dataset."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from .. import CurateError, build_app

    try:
        try:
            blocks = build_app(source, compare=compare)
        except FileNotFoundError:  # curate.errors.InputNotFoundError: no demo output yet
            if source is not None:
                raise
            blocks = build_app(_quick_demo(), compare=compare)  # no demo output yet: make a quick one
    except CurateError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    blocks.launch(server_name=host, server_port=port)


def register(cli: typer.Typer) -> None:
    """Add ``curate app`` to the command line."""
    cli.command(name="app")(app_command)
