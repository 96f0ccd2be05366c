"""``curate apply``: apply a recipe (or --block/--amplify ids) to a dataset, write the splits, re-audit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._tables import print_apply


def _ids(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def register(cli: typer.Typer) -> None:
    """Add the ``apply`` command to the ``curate`` CLI."""

    @cli.command("apply")
    def apply_command(
        data: Optional[str] = typer.Argument(
            None,
            help="Pairs: Hub id, file, or save_to_disk folder (e.g. an audit's "
            "annotated/); defaults to the recipe's data.source.",
        ),
        out: Path = typer.Option(..., "--out", help="Output folder (DatasetDict train/dropped + reports)."),
        recipe: Optional[str] = typer.Option(
            None, "--recipe", help="Recipe YAML, or a shipped recipe's name (anti_sycophancy, length_debiasing, ...)."
        ),
        block: Optional[list[str]] = typer.Option(
            None, "--block", help="Concept ids to block (comma-separated or repeated)."
        ),
        amplify: Optional[list[str]] = typer.Option(None, "--amplify", help="Concept ids to amplify."),
        adjust_for: Optional[list[str]] = typer.Option(
            None,
            "--adjust-for",
            help="With --block: concept ids whose reward must not travel with a blocked concept (their mean Δ "
            "is equalised where it wins and loses), or 'all' for every named concept.",
        ),
        split: Optional[str] = typer.Option(None, help="Split of a multi-split dataset."),
        limit: Optional[int] = typer.Option(None, help="Read only the first N rows."),
        proxy: str = typer.Option("none", help="Proxy reward check embedder: none, hash (fast) or minilm."),
        proxy_pairs: int = typer.Option(200, help="Counterfactual pairs per concept for the proxy check."),
    ) -> None:
        """Apply a recipe: write train/dropped splits with keep, reason, weight, margin; re-audit before vs after."""
        from .. import CurateError, load_recipe
        from ._base import _console, _fail

        if data is None and recipe is None:
            _fail("Give DATA, or a --recipe whose data.source says where the pairs are.")
        try:
            if recipe is not None:  # a bad recipe (a typo, an alias bomb) fails before the pipeline is even imported
                load_recipe(recipe, validate_ids=False)
            from .. import run_apply

            result = run_apply(
                data,
                recipe=recipe,
                block=_ids(block),
                amplify=_ids(amplify),
                adjust_for="all" if _ids(adjust_for) == ["all"] else _ids(adjust_for),
                out=out,
                split=split,
                limit=limit,
                proxy=proxy,
                proxy_pairs=proxy_pairs,
            )
        except CurateError as err:
            _fail(str(err))  # any other exception is a bug: curate.cli.main shows its traceback
        print_apply(result, _console())
