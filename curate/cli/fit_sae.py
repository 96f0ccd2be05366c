"""``curate fit-sae``: fit a TopK SAE on a dataset's response-token activations and save it (sae-lens format)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(cli: typer.Typer) -> None:
    """Add the ``fit-sae`` command to the ``curate`` command line."""

    @cli.command("fit-sae")
    def fit_sae_command(
        data: str = typer.Argument(..., help="Preference data: a Hub id, a local file or a save_to_disk folder."),
        out: Path = typer.Option(..., "--out", help="Folder to write the SAE to (cfg.json + sae_weights.safetensors)."),
        model: Optional[str] = typer.Option(
            None, "--model", help="Causal LM id/folder (default: SmolLM2-135M-Instruct, offline)."
        ),
        layer: int = typer.Option(15, "--layer", help="Residual stream after this many decoder blocks."),
        backend: str = typer.Option("lm", "--backend", help="lm (residual stream) or embedding (all-MiniLM-L6-v2)."),
        d_sae: int = typer.Option(2048, "--d-sae", help="Number of SAE latents."),
        k: int = typer.Option(32, "--k", help="Active latents per token (TopK)."),
        epochs: int = typer.Option(3, "--epochs", help="Passes over the activations."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N pairs."),
        split: Optional[str] = typer.Option(None, "--split", help="Split of a multi-split source."),
        max_tokens: int = typer.Option(1_000_000, "--max-tokens", help="Most response tokens to collect."),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option("cpu", "--device"),
    ) -> None:
        """Fit a TopK SAE (sae-lens SAETrainer) on the response tokens of DATA; reuse it with --sae DIR."""
        import logging

        from .. import CurateError
        from ..pipeline import run_fit_sae
        from ._base import _console, lit

        console = _console()
        logging.getLogger("curate").setLevel(logging.INFO)

        def report(step: str, value) -> None:
            if step == "pairs":
                console.print(f"Collecting activations of {value} pairs ({lit(backend)}, layer {layer}) …")
            elif step == "activations":
                console.print(f"Fitting a TopK SAE (d_sae={d_sae}, k={k}) on {value} vectors …")

        try:
            sae = run_fit_sae(
                data,
                out=out,
                model=model,
                layer=layer,
                backend=backend,
                d_sae=d_sae,
                k=k,
                epochs=epochs,
                limit=limit,
                split=split,
                max_tokens=max_tokens,
                seed=seed,
                device=device,
                on_step=report,
            )
        except CurateError as err:
            console.print(f"[bold red]error:[/] {lit(err)}", highlight=False)
            raise typer.Exit(2) from None
        fit = sae.cfg.metadata.curate_fit
        console.print(
            f"Saved to {lit(out)}  (FVU {fit['fvu']}, dead latents {fit['dead_latents']}/{d_sae}). "
            f"Use it with: curate audit DATA --concepts named,sae --layer {layer} --sae {lit(out)}",
            highlight=False,
        )
