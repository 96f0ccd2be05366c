"""``curate generate --out FILE``: the built-in generator's pairs (planted concepts) and their ground truth."""

from __future__ import annotations

from pathlib import Path

import typer


def generate(
    out: Path = typer.Option(..., "--out", help="Output .jsonl (or .parquet) file."),
    n_pairs: int = typer.Option(1000, "--n-pairs", help="Number of pairs."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write the built-in generator's preference pairs (planted concepts) and their ground truth."""
    from .. import make_preference_pairs

    gen = make_preference_pairs(n_pairs, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        gen.dataset.to_parquet(str(out))
    else:
        gen.dataset.to_json(str(out), lines=True)
    truth = out.with_name(out.stem + ".truth.csv")
    gen.truth.to_csv(truth, index=False)
    typer.echo(f"Wrote {n_pairs} pairs to {out} and their ground truth to {truth}")


def register(cli: typer.Typer) -> None:
    cli.command()(generate)
