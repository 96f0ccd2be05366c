"""The ``curate`` command line: one command per step.

    curate audit DATA --out DIR        annotate concepts and test which ones separate chosen from rejected
    curate generate --out FILE         write the built-in generator's pairs (with planted concepts)
    curate demo --out DIR              generate → audit → apply a shipped recipe → publish locally
    curate apply / fit-sae / publish / app   (see ``curate COMMAND --help``)

Errors are one line naming the fix; ``--debug`` (anywhere on the line) shows the traceback.
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


DEBUG = False  # set by main() from --debug / CURATE_DEBUG


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


def print_result(audit, console=None, top: int = 20, by_reason: str | None = None) -> None:
    """Findings (pooled and per subset, with readable labels and a marked example) and held-out AUCs."""
    console = console or _console()
    if by_reason:
        console.print(f"[bold]Subsets[/]: {by_reason}", highlight=False)
    findings = audit.findings()
    if len(findings):
        print_findings(findings, console, top=top)
    else:
        print_audit(audit.results_, console, top=top)
    console.print(f"held-out AUC of all concepts together: {audit.auc_:.3f}")
    auc_by = getattr(audit, "auc_by_", None)
    if getattr(audit, "by_", None) and auc_by is not None:
        parts = [f"{(r['subset'] or 'pooled')} {_fmt_auc(r['heldout_auc'])} / {_fmt_auc(r['heldout_auc_interactions'])}"
                 for _, r in auc_by.iterrows()]
        console.print("held-out AUC by subset (concepts / with concept × subset terms): " + "; ".join(parts),
                      highlight=False)


def print_findings(findings, console=None, top: int = 20) -> None:
    """The findings table: where each holds, its readable label and a marked example context."""
    from rich.table import Table

    console = console or _console()
    table = Table(title="Findings: confirmed, length-controlled, |win-rate − 0.5| ≥ floor (pooled and per subset)")
    for col in ("#", "where", "concept", "label", "direction", "win_rate [95% CI]", "len-ctrl q"):
        table.add_column(col, overflow="fold")
    shown = findings.head(top)
    for _, r in shown.iterrows():
        wr = r["win_rate"]
        table.add_row(str(int(r["finding_rank"])), str(r["where"]), str(r["concept"]), str(r["label"]),
                      "chosen ↑" if wr > 0.5 else "rejected ↑", f"{wr:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                      _fmt_q(r["length_controlled_q"]))
    console.print(table)
    if "example" in shown:
        console.print("[bold]Examples[/] (the strongest word or the matched phrase «marked»):")
        for _, r in shown.iterrows():
            if r.get("example"):
                console.print(f"  #{int(r['finding_rank'])} {r['example']}", highlight=False, markup=False)


def _fmt_auc(x) -> str:
    return "—" if x is None or x != x else f"{x:.3f}"


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
    by: Optional[str] = typer.Option(None, help="Subset column: every concept is also tested within each subset "
                                           "(default: the first of source, subset, split, dataset, category "
                                           "the data has; 'none' for no subsets)."),
    top: int = typer.Option(20, help="Rows of the table to print."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache for the fitted SAE, annotations and "
                                             "audits (default: $CURATE_CACHE or ~/.cache/curate)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute everything; read and write no cache."),
    engine: str = typer.Option("local", help="Annotation engine: local (datasets.map) or ray (Ray Data actors; "
                                             "pip install 'curate[ray]')."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (--engine ray; default: a local instance)."),
    workers: int = typer.Option(2, help="Ray actors, each loading the model once (--engine ray)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per Ray actor (--engine ray)."),
) -> None:
    """Annotate concepts on every chosen and rejected response and test which ones separate them."""
    from .pipeline import run_audit

    _show_progress()
    engine_options = None
    if engine != "local":
        engine_options = {"address": address, "workers": workers, "gpus_per_worker": gpus_per_worker}
    try:
        result = run_audit(data, out=out, split=split, limit=limit, format=format, concepts=concepts,
                           model=model, layer=layer, sae=sae, by=by, cache_dir=cache_dir, use_cache=not no_cache,
                           engine=engine, engine_options=engine_options)
    except (ValueError, KeyError, ImportError, FileNotFoundError) as err:
        _fail(str(err))
    console = _console()
    cache = result["record"].get("cache") or {}
    if cache.get("dir"):
        console.print(f"[bold]Cache[/] ({cache['dir']}): annotations {cache['annotations']}, audit {cache['audit']} "
                      f"({result['record']['seconds']} s)", highlight=False)
    print_summary(result["summary"], console)
    print_result(result["audit"], console, top=top, by_reason=result["summary"].get("by_reason"))
    console.print(f"Wrote the audit folder {out} (audit.parquet, annotated/, summary.json, curate.json)")


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

    for name in ("_cli_apply", "_cli_sae", "_cli_publish", "_cli_app", "_cli_scale", "_cli_learn"):
        try:
            module = importlib.import_module(f"curate.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"curate.{name}":
                continue
            raise
        module.register(app)


_register_plugins()


#: errors a user can meet with bad input or a wrong folder: printed as one line naming the fix
EXPECTED_ERRORS = (ValueError, KeyError, LookupError, FileNotFoundError, ImportError, OSError, EOFError)


def main(argv: list[str] | None = None) -> None:
    """The ``curate`` entry point: every expected error is one line (``error: …``, exit code 2), an
    unexpected one a line asking for ``--debug`` (exit code 1), Ctrl-C a word (exit code 130).
    ``--debug`` anywhere on the command line (or ``CURATE_DEBUG=1``) shows the traceback instead."""
    from rich.markup import escape

    from .errors import CurateError

    global DEBUG
    try:  # typer >= 0.24 carries its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import exceptions as click
    from typer.exceptions import Abort

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CURATE_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    DEBUG = debug
    try:
        try:
            code = app(args=args, prog_name="curate", standalone_mode=False)
        except Abort as err:  # typer turns EOF (e.g. a truncated .gz) into Abort
            raise (err.__cause__ or KeyboardInterrupt()) from None
        if code == 130:  # typer's answer to Ctrl-C
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): the step stopped; its output folder is left as it was.", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as err:  # usage errors: click's own message
        err.show()
        sys.exit(err.exit_code)
    except (CurateError, *EXPECTED_ERRORS) as err:
        if debug:
            raise
        message = " ".join(str(err.args[0] if isinstance(err, KeyError) and err.args else err).split())
        _console().print(f"[bold red]error:[/] {escape(message or type(err).__name__)}", highlight=False,
                         soft_wrap=True)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - a bug: one line, the traceback on request
        if debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {' '.join(str(err).split())[:300]} (run again with "
              "--debug for the traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
