"""The tables and lines the ``curate`` commands print (rich); the library returns data, the CLI prints it."""

from __future__ import annotations

import json

from .._columns import DROPPED_SPLIT, TRAIN_SPLIT
from .._format import fmt_num, fmt_q
from ._base import _console, cell, lit


def print_summary(summary: dict, console=None) -> None:
    console = console or _console()
    reasons = ", ".join(f"{k}: {v}" for k, v in summary["reasons"].items()) or "none"
    dup, null = summary.get("n_duplicate_ids", 0), summary.get("n_null_ids", 0)
    ids = f"  ids: {dup} repeated, {null} missing (rows are told apart by position)" if dup or null else ""
    console.print(
        f"[bold]Ingestion[/]: format={lit(summary.get('format'))}  rows={summary['n_rows']}  "
        f"usable={summary['n_usable']}  unusable by reason: {lit(reasons)}{ids}",
        highlight=False,
    )


def print_audit(results, console=None, top: int = 20, title: str | None = None) -> None:
    """The audit's findings (or, when there are none, its top rows) as a readable table."""
    from rich.table import Table

    console = console or _console()
    has_findings = "finding" in results and bool(results["finding"].any())
    rows = results[results["finding"]] if has_findings else results
    title = title or (
        "Findings: full-data q, halves agree, length-controlled, |win-rate − 0.5| ≥ floor, one per idea"
        if has_findings
        else "Top concepts (no findings passed every check)"
    )
    table = Table(title=title, show_lines=False)
    for col in ("#", "concept", "label", "direction", "win_rate [95% CI]", "len-ctrl q", "held-out", "group"):
        table.add_column(col, overflow="fold")
    for i, (_, r) in enumerate(rows.head(top).iterrows(), 1):
        label = str(r["label"])
        wr = r["win_rate"]
        direction = "—" if wr != wr else ("chosen ↑" if wr > 0.5 else "rejected ↑")
        held = "confirmed" if r["confirmed"] else "not confirmed"
        if (
            r.get("confirmation_win_rate") == r.get("confirmation_win_rate")
            and r.get("confirmation_win_rate") is not None
        ):
            held += f" ({r['confirmation_win_rate']:.2f})"
        table.add_row(
            *map(
                cell,
                (
                    i,
                    r["concept"],
                    label[:60] + ("…" if len(label) > 60 else ""),
                    direction,
                    "—" if wr != wr else f"{wr:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                    _fmt_q(r["length_controlled_q"]),
                    held,
                    int(r.get("n_members", 1) or 1),
                ),
            )
        )
    console.print(table)


def print_result(audit, console=None, top: int = 20, by_reason: str | None = None) -> None:
    """Findings (pooled and per subset, with readable labels and a marked example) and held-out AUCs."""
    console = console or _console()
    if by_reason:
        console.print(f"[bold]Subsets[/]: {lit(by_reason)}", highlight=False)
    findings = audit.findings()
    if len(findings):
        print_findings(findings, console, top=top)
    else:
        print_audit(audit.results_, console, top=top)
    rule = audit.to_dict().get("findings_rule") or {}
    if "false_findings_per_audit" in rule:
        lo, hi = rule["false_findings_ci95"]
        console.print(
            f"findings rule '{rule['rule']}': {rule['false_findings_per_audit']:.2f} false findings per audit on "
            f"label-permuted data (95% CI {lo:.2f}–{hi:.2f}); a within-subset win-rate of 0.65 on 100 of 800 pairs "
            f"is found in {rule['power']['0.65@100']:.0%} of seeds ({rule['benchmark']})",
            highlight=False,
        )
    console.print(f"held-out AUC of all concepts together: {audit.auc_:.3f}")
    auc_by = getattr(audit, "auc_by_", None)
    if getattr(audit, "by_", None) and auc_by is not None:
        parts = [
            f"{(r['subset'] or 'pooled')} {_fmt_auc(r['heldout_auc'])} / {_fmt_auc(r['heldout_auc_interactions'])}"
            for _, r in auc_by.iterrows()
        ]
        console.print(
            "held-out AUC by subset (concepts / with concept × subset terms): " + lit("; ".join(parts)), highlight=False
        )


def print_findings(findings, console=None, top: int = 20) -> None:
    """The findings table: where each holds, its readable label and a marked example context."""
    from rich.table import Table

    console = console or _console()
    table = Table(title="Findings (pooled and per subset) and how each passed the findings rule")
    for col in ("#", "where", "concept", "label", "direction", "win_rate [95% CI]", "len-ctrl q", "how it passed"):
        table.add_column(col, overflow="fold")
    shown = findings.head(top)
    for _, r in shown.iterrows():
        wr = r["win_rate"]
        table.add_row(
            *map(
                cell,
                (
                    int(r["finding_rank"]),
                    r["where"],
                    " = ".join([str(r["concept"])] + ([str(r["aliases"])] if r.get("aliases") else [])),
                    r["label"],
                    "chosen ↑" if wr > 0.5 else "rejected ↑",
                    f"{wr:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                    _fmt_q(r["length_controlled_q"]),
                    r.get("passed") or "",
                ),
            )
        )
    console.print(table)
    if "example" in shown:
        console.print("[bold]Examples[/] (the strongest word or the matched phrase «marked»):")
        for _, r in shown.iterrows():
            if r.get("example"):
                console.print(f"  #{int(r['finding_rank'])} {r['example']}", highlight=False, markup=False)


_fmt_auc = fmt_num
_fmt_q = fmt_q


def print_before_after(report, console) -> None:
    """Print the before/after table, retention and (if run) the proxy check."""
    from rich.table import Table

    table = Table(title=f"Before vs after ({lit(report.recipe.get('name', 'recipe'))}, weighted re-audit)")
    ba = report.before_after
    # a magnitude (length, an SAE feature): its weighted mean Δ beside the win-rate; both must be balanced
    magnitudes = "scale" in ba and ba["scale"].notna().any()
    cols = ["concept", "action", "via", "win-rate before [95% CI]", "q before", "win-rate after [95% CI]", "q after"]
    cols += ["mean Δ before [95% CI]", "mean Δ after [95% CI]"] if magnitudes else []
    for col in cols:
        table.add_column(col)
    for row in ba.to_dict("records"):
        values = [
            row["concept"],
            row["action"],
            row["interventions"],
            _wr(row["win_rate_before"], row["ci_low_before"], row["ci_high_before"]),
            _q(row["q_before"]),
            _wr(row["win_rate_after"], row["ci_low_after"], row["ci_high_after"]),
            _q(row["q_after"]),
        ]
        if magnitudes:
            values += [report.mean_delta(row, "before") or "—", report.mean_delta(row, "after") or "—"]
        table.add_row(*map(cell, values))
    console.print(table)
    by_subset = report.extra.get("by_subset") or []
    if by_subset:
        console.print(
            "Within subsets (a blocked concept is balanced in each): "
            + "; ".join(
                f"{lit(r['subset'])} {lit(r['concept'])} {_f(r['win_rate_before'])} → {_f(r['win_rate_after'])}"
                + (
                    f" (mean Δ {r['mean_delta_before']:+.3f} → {r['mean_delta_after']:+.3f} sd)"
                    if "mean_delta_after" in r
                    else ""
                )
                for r in by_subset
            ),
            highlight=False,
        )
    t = report.retention
    console.print(
        f"Retention: rows kept {t['rows_kept']}/{t['rows_usable']} usable (dropped {t['rows_dropped']}"
        + (f": {lit(json.dumps(t['dropped_by_reason']))}" if t["dropped_by_reason"] else "")
        + f"), effective sample size "
        f"{t['ess']:.1f} = {100 * t['ess_fraction']:.1f}% of usable rows"
        + (f", swapped {t['rows_swapped']}" if t["rows_swapped"] else "")
        + (f", inoculated {t['rows_inoculated']}" if t["rows_inoculated"] else ""),
        highlight=False,
    )
    if report.proxy is not None:
        p = Table(
            title="Proxy reward check: share of counterfactual pairs where a Bradley–Terry probe prefers the "
            "variant with the concept (0.5 = indifferent)"
        )
        for col in ("concept", "counterfactual", "original data", "curated data", "mean logit before → after"):
            p.add_column(col)
        for r in report.proxy.itertuples():
            p.add_row(
                *map(
                    cell,
                    (
                        r.concept,
                        r.counterfactual,
                        _f(r.before),
                        _f(r.after),
                        f"{_f(r.before_logit)} → {_f(r.after_logit)}",
                    ),
                )
            )
        console.print(p)


def _f(x) -> str:
    return "—" if x != x else f"{x:.3f}"


def _wr(w, lo, hi) -> str:
    return "—" if w != w else f"{w:.3f} [{lo:.3f}, {hi:.3f}]"


_q = fmt_q


def print_apply(result: dict, console) -> None:
    """What ``curate apply`` prints for :func:`curate.pipeline.run_apply`'s result."""
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/] {lit(w)}", highlight=False)
    print_before_after(result["report"], console)
    rows, dd, out = result["rows"], result["dataset"], result["out"]
    console.print(
        f"Rows: {rows['in']} in = {rows['train']} in {TRAIN_SPLIT} + {rows['dropped']} in "
        f"{DROPPED_SPLIT} ({rows['invalid']} unusable at ingestion, all in {DROPPED_SPLIT})",
        highlight=False,
    )
    console.print(
        f"Wrote {lit(out)} (splits {TRAIN_SPLIT}: {len(dd[TRAIN_SPLIT])} rows, {DROPPED_SPLIT}: "
        f"{len(dd[DROPPED_SPLIT])} rows), before_after.parquet, apply.json, recipe.yaml, "
        "source_audit/",
        highlight=False,
    )
