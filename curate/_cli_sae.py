"""``curate fit-sae``: fit a TopK SAE on a dataset's response-token activations and save it (sae-lens format)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``fit-sae`` command to the ``curate`` app."""

    @app.command("fit-sae")
    def fit_sae_command(
        data: str = typer.Argument(..., help="Preference data: a Hub id, a local file or a save_to_disk folder."),
        out: Path = typer.Option(..., "--out", help="Folder to write the SAE to (cfg.json + sae_weights.safetensors)."),
        model: Optional[str] = typer.Option(None, "--model", help="Causal LM id/folder (default: SmolLM2-135M-Instruct, offline)."),
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

        from rich.console import Console

        from .concepts.sae import SAEConcepts, collect_activations
        from .concepts.sae_source import fit_sae
        from .errors import CurateError
        from .ingest import load_pairs

        console = Console()
        logging.getLogger("curate").setLevel(logging.INFO)
        try:
            ds = load_pairs(data, split=split, limit=limit)
            probe = SAEConcepts(None, model=model, layer=layer, backend=backend, device=device)
            console.print(f"Collecting activations of {len(ds)} pairs ({backend}, layer {layer}) …")
            acts = collect_activations(ds, probe, max_tokens=max_tokens)
            meta = {"curate_model": probe.model_id_, "curate_layer": layer if backend == "lm" else None,
                    "curate_backend": backend, "model_name": probe.model_id_,
                    "hook_name": f"blocks.{layer - 1}.hook_resid_post" if backend == "lm" else "sentence_embedding"}
            console.print(f"Fitting a TopK SAE (d_sae={d_sae}, k={k}) on {len(acts.acts)} vectors …")
            sae = fit_sae(acts.acts, d_sae=d_sae, k=k, epochs=epochs, seed=seed, device=device, metadata=meta, out=out)
        except CurateError as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(2)
        fit = sae.cfg.metadata.curate_fit
        console.print(f"Saved to {out}  (FVU {fit['fvu']}, dead latents {fit['dead_latents']}/{d_sae}). "
                      f"Use it with: curate audit DATA --concepts named,sae --layer {layer} --sae {out}", highlight=False)
