"""``curate apply``: apply a recipe (or --block/--amplify ids) to a dataset, write the splits, re-audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import _columns as C


def run_apply(data, *, recipe: str | None = None, block: list[str] | None = None, amplify: list[str] | None = None,
              out: str | Path, split: str | None = None, limit: int | None = None, proxy: str = "none",
              proxy_pairs: int = 200, console=None) -> dict:
    """What ``curate apply`` does, callable from Python (the demo uses it).

    Loads ``data`` (anything :func:`curate.load_pairs` reads; annotated score columns are carried), builds
    the recipe (a YAML path / shipped recipe name, or ``block``/``amplify`` ids), runs
    :func:`curate.interventions.apply_recipe`, optionally the proxy reward check, and writes to ``out``:
    the ``DatasetDict`` (``save_to_disk``: ``train`` and ``dropped``), ``before_after.parquet``,
    ``apply.json`` (every step's ``to_dict()``, retention, the table, the proxy check) and ``recipe.yaml``;
    when a rule uses ``ablate`` or ``steer``, also ``directions.safetensors`` (:func:`curate.directions.export_directions`).

    Returns:
        ``{"out", "dataset", "report", "recipe"}``.
    """
    from .ingest import load_pairs
    from .interventions import apply_recipe, save_curated
    from .recipe import Recipe, load_recipe

    if (recipe is None) == (not (block or amplify)):
        raise ValueError("Give either a recipe (--recipe FILE) or concept ids (--block IDS [--amplify IDS]), not both.")
    rec = load_recipe(recipe) if recipe else Recipe.from_ids(block=block or [], amplify=amplify or [])
    dataset = load_pairs(data, split=split or rec.data.split, limit=limit or rec.data.limit) if data is not None else \
        load_pairs(rec.data.source, split=rec.data.split, limit=rec.data.limit)
    dd, report = apply_recipe(dataset, rec)
    if proxy and proxy != "none":
        from .proxy import proxy_check

        report.proxy = proxy_check(dataset, dd, rec.blocked() + rec.amplified(), embedder=proxy, n_pairs=proxy_pairs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_curated(dd, out)
    report.save(out)
    rec.save(out / "recipe.yaml")
    if rec.with_intervention("ablate") or rec.with_intervention("steer"):
        try:
            from .directions import export_directions

            d = export_directions(rec, dataset if len(dataset) else None, path=out / "directions.safetensors")
            report.extra["directions"] = d.to_dict()
        except Exception as err:  # the data is written; directions are an extra for training
            report.extra["directions_error"] = f"{type(err).__name__}: {err}"
        report.save(out)
    if console is not None:
        print_before_after(report, console)
        console.print(f"Wrote {out} (splits {C.TRAIN_SPLIT}: {len(dd[C.TRAIN_SPLIT])} rows, {C.DROPPED_SPLIT}: "
                      f"{len(dd[C.DROPPED_SPLIT])} rows), before_after.parquet, apply.json, recipe.yaml", highlight=False)
    return {"out": out, "dataset": dd, "report": report, "recipe": rec}


def print_before_after(report, console) -> None:
    """Print the before/after table, retention and (if run) the proxy check."""
    from rich.table import Table

    table = Table(title=f"Before vs after ({report.recipe.get('name', 'recipe')}, weighted re-audit)")
    for col in ("concept", "action", "via", "win-rate before [95% CI]", "q before", "win-rate after [95% CI]", "q after"):
        table.add_column(col)
    for r in report.before_after.itertuples():
        table.add_row(r.concept, r.action, r.interventions, _wr(r.win_rate_before, r.ci_low_before, r.ci_high_before),
                      _q(r.q_before), _wr(r.win_rate_after, r.ci_low_after, r.ci_high_after), _q(r.q_after))
    console.print(table)
    t = report.retention
    console.print(
        f"Retention: rows kept {t['rows_kept']}/{t['rows_usable']} usable (dropped {t['rows_dropped']}"
        + (f": {json.dumps(t['dropped_by_reason'])}" if t["dropped_by_reason"] else "") + f"), effective sample size "
        f"{t['ess']:.1f} = {100 * t['ess_fraction']:.1f}% of usable rows"
        + (f", swapped {t['rows_swapped']}" if t["rows_swapped"] else "")
        + (f", inoculated {t['rows_inoculated']}" if t["rows_inoculated"] else ""), highlight=False)
    if report.proxy is not None:
        p = Table(title="Proxy reward check: share of counterfactual pairs where a Bradley–Terry probe prefers the "
                        "variant with the concept (0.5 = indifferent)")
        for col in ("concept", "counterfactual", "original data", "curated data", "mean logit before → after"):
            p.add_column(col)
        for r in report.proxy.itertuples():
            p.add_row(r.concept, str(r.counterfactual), _f(r.before), _f(r.after),
                      f"{_f(r.before_logit)} → {_f(r.after_logit)}")
        console.print(p)


def _f(x) -> str:
    return "—" if x != x else f"{x:.3f}"


def _wr(w, lo, hi) -> str:
    return "—" if w != w else f"{w:.3f} [{lo:.3f}, {hi:.3f}]"


def _q(q) -> str:
    return "—" if q != q else (f"{q:.1e}" if q < 1e-3 else f"{q:.3f}")


def _ids(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def register(app: typer.Typer) -> None:
    """Add the ``apply`` command to the ``curate`` CLI."""

    @app.command("apply")
    def apply_command(
        data: Optional[str] = typer.Argument(None, help="Pairs: Hub id, file, or save_to_disk folder (e.g. an audit's "
                                                        "annotated/); defaults to the recipe's data.source."),
        out: Path = typer.Option(..., "--out", help="Output folder (DatasetDict train/dropped + reports)."),
        recipe: Optional[str] = typer.Option(None, "--recipe", help="Recipe YAML, or a shipped recipe's name "
                                                                    "(anti_sycophancy, length_debiasing, ...)."),
        block: Optional[list[str]] = typer.Option(None, "--block", help="Concept ids to block (comma-separated or repeated)."),
        amplify: Optional[list[str]] = typer.Option(None, "--amplify", help="Concept ids to amplify."),
        split: Optional[str] = typer.Option(None, help="Split of a multi-split dataset."),
        limit: Optional[int] = typer.Option(None, help="Read only the first N rows."),
        proxy: str = typer.Option("none", help="Proxy reward check embedder: none, hash (fast) or minilm."),
        proxy_pairs: int = typer.Option(200, help="Counterfactual pairs per concept for the proxy check."),
    ) -> None:
        """Apply a recipe: write train/dropped splits with keep, reason, weight, margin; re-audit before vs after."""
        from .cli import _console, _fail
        from .errors import CurateError

        if data is None and recipe is None:
            _fail("Give DATA, or a --recipe whose data.source says where the pairs are.")
        try:
            run_apply(data, recipe=recipe, block=_ids(block), amplify=_ids(amplify), out=out, split=split,
                      limit=limit, proxy=proxy, proxy_pairs=proxy_pairs, console=_console())
        except (CurateError, ValueError, KeyError, FileNotFoundError, ImportError) as err:
            _fail(str(err))
