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

    ``data`` is raw pairs (anything :func:`curate.load_pairs` reads), an audit folder (or its
    ``annotated/``) or a curated folder (:func:`curate.folders.resolve_input`). Raw data is audited first,
    exactly as ``curate audit`` does, and that audit is saved in the curated folder's ``source_audit/``;
    an audit folder is copied there; a curated folder's rows (``train`` once each, then ``dropped``, which
    stay dropped) are the input and its source audit is carried. Builds the recipe (a YAML path / shipped
    recipe name, or ``block``/``amplify`` ids), runs :func:`curate.interventions.apply_recipe`, optionally
    the proxy reward check, checks the row accounting (:func:`curate.folders.account_rows`) and writes the
    curated folder ``out`` in one step (:func:`curate.folders.save_curated`): ``train``/``dropped``,
    ``before_after.parquet``, ``apply.json``, ``recipe.yaml``, ``source_audit/``, ``curate.json``; when a
    rule uses ``ablate`` or ``steer``, also ``directions.safetensors``.

    Returns:
        ``{"out", "dataset", "report", "recipe", "warnings", "rows"}``.
    """
    from .folders import FolderError, check_target, resolve_input, save_curated
    from .interventions import apply_recipe
    from .pipeline import audit_pairs
    from .recipe import Recipe, load_recipe

    if (recipe is None) == (not (block or amplify)):
        raise ValueError("Give either a recipe (--recipe FILE) or concept ids (--block IDS [--amplify IDS]), not both.")
    rec = load_recipe(recipe) if recipe else Recipe.from_ids(block=block or [], amplify=amplify or [])
    out = check_target(out, "curated")
    source = data if data is not None else rec.data.source
    kind, opened = resolve_input(source)
    audit_files = source_audit = made_from = None
    if kind == "raw":
        audited = audit_pairs(source, split=split or rec.data.split, limit=limit or rec.data.limit)
        dataset, audit_files = audited["dataset"], audited["files"]
    else:
        if split or limit:
            raise FolderError(f"--split/--limit select rows of raw data; {source!r} is a {kind} folder whose rows "
                              "are fixed. Pass the data file instead, or leave them out.")
        made_from = opened.manifest
        if kind == "audit":
            dataset, source_audit = opened.annotated(), opened
        else:
            dataset, source_audit = opened.source_rows(), opened.audit
    dd, report = apply_recipe(dataset, rec)
    warnings = recipe_warnings(rec, report)
    report.extra["warnings"] = warnings
    if proxy and proxy != "none":
        from .proxy import proxy_check

        report.proxy = proxy_check(dataset, dd, rec.blocked() + rec.amplified(), embedder=proxy, n_pairs=proxy_pairs)

    def directions(tmp: Path) -> None:
        if rec.with_intervention("ablate") or rec.with_intervention("steer"):
            try:
                from .directions import export_directions

                d = export_directions(rec, dataset if len(dataset) else None, path=tmp / "directions.safetensors")
                report.extra["directions"] = d.to_dict()
            except Exception as err:  # the data is written; directions are an extra for training
                report.extra["directions_error"] = f"{type(err).__name__}: {err}"

    manifest = save_curated(out, dd, report=report, recipe=rec, source_audit=source_audit, audit_result=audit_files,
                            input_rows=dataset, source=str(source), made_from=made_from, before_write=directions)
    if console is not None:
        for w in warnings:
            console.print(f"[yellow]warning:[/] {w}", highlight=False)
        print_before_after(report, console)
        rows = manifest["rows"]
        console.print(f"Rows: {rows['in']} in = {rows['train']} in {C.TRAIN_SPLIT} + {rows['dropped']} in "
                      f"{C.DROPPED_SPLIT} ({rows['invalid']} unusable at ingestion, all in {C.DROPPED_SPLIT})",
                      highlight=False)
        console.print(f"Wrote {out} (splits {C.TRAIN_SPLIT}: {len(dd[C.TRAIN_SPLIT])} rows, {C.DROPPED_SPLIT}: "
                      f"{len(dd[C.DROPPED_SPLIT])} rows), before_after.parquet, apply.json, recipe.yaml, "
                      "source_audit/", highlight=False)
    return {"out": out, "dataset": dd, "report": report, "recipe": rec, "warnings": warnings,
            "rows": manifest["rows"]}


def recipe_warnings(rec, report) -> list[str]:
    """What a recipe did not do: no rules at all, or a concept that never differs between chosen and rejected."""
    out = []
    if not rec.rules:
        out.append("the recipe has no rules: every usable row is kept unchanged.")
    table = report.before_after
    for r in table.itertuples():
        if r.n_differ_before == 0:
            out.append(f"{r.action} {r.concept!r}: no usable pair differs in this concept (it never occurs, or "
                       "occurs equally on both sides), so this rule changes nothing.")
    return out


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
            _fail(str(err))  # other errors reach curate.cli.main, which prints one line (traceback with --debug)
