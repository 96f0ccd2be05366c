"""The ``curate`` command line: one command per step.

    curate audit DATA --out DIR        annotate concepts and test which ones separate chosen from rejected
    curate generate --out FILE         write the built-in generator's pairs (with planted concepts)
    curate demo --out DIR              generate → audit → apply a shipped recipe → publish locally
    curate apply / fit-sae / publish / app   (see ``curate COMMAND --help``)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="curate",
    help="See what a preference dataset teaches before you train on it, and change it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _console():
    from rich.console import Console

    return Console(width=max(120, int(os.environ.get("COLUMNS", 120))))


def _fail(message: str) -> None:
    _console().print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def print_summary(summary: dict, console=None) -> None:
    console = console or _console()
    reasons = ", ".join(f"{k}: {v}" for k, v in summary["reasons"].items()) or "none"
    console.print(
        f"[bold]Ingestion[/]: format={summary.get('format')}  rows={summary['n_rows']}  "
        f"usable={summary['n_usable']}  unusable by reason: {reasons}", highlight=False)


def print_audit(results, console=None, top: int = 20, title: str | None = None) -> None:
    """The audit's findings (or, when there are none, its top rows) as a readable table."""
    from rich.table import Table

    console = console or _console()
    has_findings = "finding" in results and bool(results["finding"].any())
    rows = results[results["finding"]] if has_findings else results
    title = title or ("Findings: confirmed, length-controlled, |win-rate − 0.5| ≥ floor, one per group"
                      if has_findings else "Top concepts (no findings passed every check)")
    table = Table(title=title, show_lines=False)
    for col in ("#", "concept", "label", "direction", "win_rate [95% CI]", "len-ctrl q", "held-out", "group"):
        table.add_column(col, overflow="fold")
    for i, (_, r) in enumerate(rows.head(top).iterrows(), 1):
        label = str(r["label"])
        wr = r["win_rate"]
        direction = "—" if wr != wr else ("chosen ↑" if wr > 0.5 else "rejected ↑")
        held = ("confirmed" if r["confirmed"] else "not confirmed")
        if r.get("confirmation_win_rate") == r.get("confirmation_win_rate") and r.get("confirmation_win_rate") is not None:
            held += f" ({r['confirmation_win_rate']:.2f})"
        table.add_row(
            str(i), str(r["concept"]), label[:60] + ("…" if len(label) > 60 else ""), direction,
            "—" if wr != wr else f"{wr:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
            _fmt_q(r["length_controlled_q"]), held, str(int(r.get("n_members", 1) or 1)),
        )
    console.print(table)


def _fmt_q(q) -> str:
    if q != q:
        return "—"
    return f"{q:.1e}" if q < 1e-3 else f"{q:.3f}"


@app.command()
def audit(
    data: str = typer.Argument(..., help="Hub id, local file (.jsonl/.json/.parquet/.csv[.gz]) or save_to_disk folder."),
    out: Path = typer.Option(..., "--out", help="Output folder: audit.parquet, annotated/, summary.json."),
    split: Optional[str] = typer.Option(None, help="Split of a multi-split dataset."),
    limit: Optional[int] = typer.Option(None, help="Read only the first N rows."),
    format: Optional[str] = typer.Option(None, help="Force the input format (standard, conversational, implicit, hh, rated, pairwise)."),
    concepts: str = typer.Option("named", help="Concept sources: named, sae, or named,sae."),
    model: Optional[str] = typer.Option(None, help="Model for SAE concepts (default: SmolLM2-135M-Instruct shipped offline)."),
    layer: int = typer.Option(15, help="Residual-stream layer for SAE concepts."),
    sae: str = typer.Option("fit", help="SAE: 'fit' (train on this data), RELEASE/ID (sae-lens pretrained) or a local folder."),
    by: Optional[str] = typer.Option(None, help="Column for a per-subset breakdown."),
    top: int = typer.Option(20, help="Rows of the table to print."),
) -> None:
    """Annotate concepts on every chosen and rejected response and test which ones separate them."""
    from .pipeline import run_audit

    try:
        result = run_audit(data, out=out, split=split, limit=limit, format=format, concepts=concepts,
                           model=model, layer=layer, sae=sae, by=by)
    except (ValueError, KeyError, ImportError, FileNotFoundError) as err:
        _fail(str(err))
    console = _console()
    print_summary(result["summary"], console)
    print_audit(result["audit"].results_, console, top=top)
    console.print(f"held-out AUC of all concepts together: {result['audit'].auc_:.3f}")
    console.print(f"Wrote {out / 'audit.parquet'}, {out / 'annotated'} and {out / 'summary.json'}")


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="Output .jsonl (or .parquet) file."),
    n_pairs: int = typer.Option(1000, "--n-pairs", help="Number of pairs."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write the built-in generator's preference pairs (planted concepts) and their ground truth."""
    from .generate import make_preference_pairs

    gen = make_preference_pairs(n_pairs, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        gen.dataset.to_parquet(str(out))
    else:
        gen.dataset.to_json(str(out), lines=True)
    truth = out.with_name(out.stem + ".truth.csv")
    gen.truth.to_csv(truth, index=False)
    typer.echo(f"Wrote {n_pairs} pairs to {out} and their ground truth to {truth}")


@app.command()
def demo(
    out: Path = typer.Option(Path("outputs/demo"), "--out", help="Output folder."),
    n_pairs: int = typer.Option(600, "--n-pairs", help="Generated pairs (600: the demo with SAE concepts takes "
                                                      "under 5 minutes on 2 CPU cores)."),
    sae: bool = typer.Option(True, "--sae/--no-sae", help="Include SAE concepts on the offline default model."),
    seed: int = typer.Option(0, help="Random seed."),
    card_example: Optional[Path] = typer.Option(None, help="Also copy the published card here (dataset_cards/example)."),
    learn_steps: int = typer.Option(0, "--learn-steps", help="Also run the learning check (LoRA DPO on SmolLM2, this many "
                                                           "steps per policy; see README: slow on CPU). 0 = skip."),
) -> None:
    """Run the whole flow offline on generated data: generate, audit, apply a shipped recipe, publish."""
    from .pipeline import run_demo

    run_demo(out=out, n_pairs=n_pairs, sae=sae, seed=seed, card_example=card_example, console=_console(),
             learn_steps=learn_steps)


def _register_plugins() -> None:
    import importlib

    for name in ("_cli_apply", "_cli_sae", "_cli_publish", "_cli_app", "_cli_learn"):
        try:
            module = importlib.import_module(f"curate.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"curate.{name}":
                continue
            raise
        module.register(app)


_register_plugins()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
