"""``curate publish DIR --repo-id USER/NAME``: write the Hub-ready folder with its card, and upload it if possible."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer


def register(cli: typer.Typer) -> None:
    """Add the ``publish`` command to the ``curate`` CLI."""

    @cli.command()
    def publish(
        curated: Path = typer.Argument(
            ..., metavar="DIR", help="The --out folder of `curate apply` (DatasetDict + re-audit)."
        ),
        repo_id: Optional[str] = typer.Option(
            None, "--repo-id", help="Dataset repository USER/NAME (default: the recipe's publish.repo_id)."
        ),
        private: Optional[bool] = typer.Option(
            None, "--private/--public", help="Visibility of a new repository (default: the recipe's, else public)."
        ),
        local_dir: Optional[Path] = typer.Option(
            None, "--local-dir", help="Where to write the folder (default: DIR/../published)."
        ),
        token: Optional[str] = typer.Option(
            None,
            "--token",
            show_default=False,
            help="Hub token (default: HF_TOKEN or the stored `hf auth login`). Never written.",
        ),
        upload: Optional[bool] = typer.Option(
            None, "--upload/--no-upload", help="Upload (default: when a token is available and the Hub reachable)."
        ),
        audit_dir: Optional[Path] = typer.Option(
            None, "--audit-dir", help="`curate audit` folder of the source data, if not found next to DIR."
        ),
        license: Optional[str] = typer.Option(None, "--license", help="License id for the card, e.g. cc-by-4.0."),
        learning_dir: Optional[Path] = typer.Option(
            None, "--learning-dir", help="`curate learn` folder (default: DIR/learning or a learning* sibling)."
        ),
    ) -> None:
        """Write a Hub-ready folder (data/, README.md card, audit/, images/) and upload it when possible."""
        from .. import CurateError
        from ..publish import publish as run_publish
        from ._base import _console, _fail, lit

        console = _console()
        handler = _ConsoleHandler(console)
        log = logging.getLogger("curate.publish")
        log.addHandler(handler)
        previous = log.level
        log.setLevel(logging.INFO)
        try:
            folder = run_publish(
                curated,
                repo_id=repo_id,
                local_dir=local_dir,
                private=private,
                upload=upload,
                token=token,
                audit_dir=audit_dir,
                license=license,
                learning_dir=learning_dir,
            )
        except CurateError as err:
            _fail(str(err))
        finally:
            log.removeHandler(handler)
            log.setLevel(previous)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        console.print(
            f"Published folder: {lit(folder.resolve())} ({len(files)} files: {lit(', '.join(files[:8]))}"
            + (", …" if len(files) > 8 else "")
            + ")",
            highlight=False,
        )


class _ConsoleHandler(logging.Handler):
    """Print curate.publish's messages on the CLI's console (warnings in yellow)."""

    def __init__(self, console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        style = "yellow" if record.levelno >= logging.WARNING else None
        self.console.print(record.getMessage(), style=style, highlight=False, markup=False)
