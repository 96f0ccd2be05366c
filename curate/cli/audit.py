"""``curate audit DATA --out DIR``: annotate concepts and test which ones separate chosen from rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._base import _console, _fail, _show_progress, lit
from ._tables import print_result, print_summary


def audit(
    data: str = typer.Argument(
        ..., help="Hub id, local file (.jsonl/.json/.parquet/.csv[.gz]) or save_to_disk folder."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: audit.parquet, annotated/, summary.json."),
    split: Optional[str] = typer.Option(None, help="Split of a multi-split dataset."),
    limit: Optional[int] = typer.Option(None, help="Read only the first N rows."),
    format: Optional[str] = typer.Option(
        None, help="Force the input format (standard, conversational, implicit, hh, rated, pairwise)."
    ),
    concepts: str = typer.Option("named", help="Concept sources: named, sae, or named,sae."),
    model: Optional[str] = typer.Option(
        None, help="Model for SAE concepts (default: SmolLM2-135M-Instruct shipped offline)."
    ),
    layer: int = typer.Option(15, help="Residual-stream layer for SAE concepts."),
    sae: str = typer.Option(
        "fit", help="SAE: 'fit' (train on this data), RELEASE/ID (sae-lens pretrained) or a local folder."
    ),
    by: Optional[str] = typer.Option(
        None,
        help="Subset column: every concept is also tested within each subset "
        "(default: the first of source, subset, split, dataset, category "
        "the data has; 'none' for no subsets).",
    ),
    top: int = typer.Option(20, help="Rows of the table to print."),
    cache_dir: Optional[Path] = typer.Option(
        None,
        "--cache-dir",
        help="Cache for the fitted SAE, annotations and audits (default: $CURATE_CACHE or ~/.cache/curate).",
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute everything; read and write no cache."),
    engine: str = typer.Option(
        "local",
        help="Annotation engine: local (datasets.map) or ray (Ray Data actors; pip install 'curate-prefs[ray]').",
    ),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (--engine ray; default: a local instance)."),
    workers: int = typer.Option(2, help="Ray actors, each loading the model once (--engine ray)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per Ray actor (--engine ray)."),
) -> None:
    """Annotate concepts on every chosen and rejected response and test which ones separate them."""
    from .. import CurateError, run_audit

    _show_progress()
    engine_options = None
    if engine != "local":
        engine_options = {"address": address, "workers": workers, "gpus_per_worker": gpus_per_worker}
    try:
        result = run_audit(
            data,
            out=out,
            split=split,
            limit=limit,
            format=format,
            concepts=concepts,
            model=model,
            layer=layer,
            sae=sae,
            by=by,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            engine=engine,
            engine_options=engine_options,
        )
    except CurateError as err:
        _fail(str(err))
    console = _console()
    cache = result["record"].get("cache") or {}
    if cache.get("dir"):
        console.print(
            f"[bold]Cache[/] ({lit(cache['dir'])}): annotations {lit(cache['annotations'])}, audit "
            f"{lit(cache['audit'])} "
            f"({result['record']['seconds']} s)",
            highlight=False,
        )
    print_summary(result["summary"], console)
    print_result(result["audit"], console, top=top, by_reason=result["summary"].get("by_reason"))
    console.print(
        f"Wrote the audit folder {lit(out)} (audit.parquet, annotated/, summary.json, curate.json)", highlight=False
    )


def register(cli: typer.Typer) -> None:
    cli.command()(audit)
