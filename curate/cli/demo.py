"""``curate demo --out DIR``: generate → audit → apply a shipped recipe → publish locally, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .._format import signed_r
from ._base import _console, lit
from ._tables import print_apply, print_result, print_summary


def demo(
    out: Path = typer.Option(Path("outputs/demo"), "--out", help="Output folder."),
    n_pairs: int = typer.Option(
        600, "--n-pairs", help="Generated pairs (600: the demo with SAE concepts takes under 5 minutes on 2 CPU cores)."
    ),
    sae: bool = typer.Option(True, "--sae/--no-sae", help="Include SAE concepts on the offline default model."),
    seed: int = typer.Option(0, help="Random seed."),
    card_example: Optional[Path] = typer.Option(
        None, help="Also copy the published card here (dataset_cards/example)."
    ),
    learn_steps: int = typer.Option(
        0,
        "--learn-steps",
        help="Also run the learning check (LoRA DPO on SmolLM2, this many steps per policy; "
        "see docs/learning.md: slow on CPU). 0 = skip.",
    ),
) -> None:
    """Run the whole flow offline on generated data: generate, audit, apply a shipped recipe, publish."""
    from ..pipeline import run_demo

    console = _console()

    def report(step: str, value) -> None:
        if step == "generate":
            console.print(f"[bold]1/4 generate[/]: {n_pairs} pairs with planted concepts → {lit(out / 'pairs.jsonl')}")
            console.print(
                "    planted (rate in better vs worse response): "
                + lit(", ".join(f"{c} {a:.2f}/{b:.2f}" for c, (a, b) in value.planted.items())),
                highlight=False,
            )
        elif step == "audit":
            console.print(f"[bold]2/4 audit[/] ({value['record']['seconds']} s)")
            print_summary(value["summary"], console)
            print_result(value["audit"], console, top=15)
            console.print(f"    outputs in {lit(out / 'audit')}", highlight=False)
        elif step == "apply":
            console.print("[bold]3/4 apply[/]: the shipped recipe anti_sycophancy")
            print_apply(value, console)
        elif step == "learn":
            rec = value.record
            console.print(
                f"[bold]3b/4 learn[/]: LoRA DPO, {learn_steps} steps per policy, original vs curated pairs: "
                f"{signed_r(rec)}, Spearman {rec['spearman']} ({rec['seconds']} s); outputs in "
                f"{lit(out / 'learning')}",
                highlight=False,
            )
        elif step == "publish":
            console.print(f"[bold]4/4 publish[/] (local, no upload): {lit(value)}")

    result = run_demo(
        out=out, n_pairs=n_pairs, sae=sae, seed=seed, card_example=card_example, on_step=report, learn_steps=learn_steps
    )
    console.print(
        f"[bold green]Demo finished in {result['seconds']:.0f} s.[/] Outputs under {lit(Path(out).resolve())}"
    )
    console.print(f"Published folder: {lit(Path(result['published']).resolve())}")


def register(cli: typer.Typer) -> None:
    cli.command()(demo)
