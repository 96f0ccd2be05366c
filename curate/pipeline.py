"""End-to-end runs used by the CLI and the demo: load → annotate → audit → (apply → publish)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import _columns as C

AUDIT_FILE = "audit.parquet"
MEMBERS_FILE = "audit_members.parquet"
ANNOTATED_DIR = "annotated"
SUMMARY_FILE = "summary.json"
LABELS_FILE = "feature_labels.parquet"


def annotate_concepts(pairs, *, concepts: str = "named", model=None, layer: int = 15, sae: str = "fit",
                      sae_kwargs: dict | None = None):
    """Add every requested concept source to a pair dataset. Returns (dataset, labels DataFrame or None, info)."""
    from .concepts.named import annotate

    sources = [s.strip() for s in concepts.split(",") if s.strip()]
    unknown = sorted(set(sources) - {"named", "sae"})
    if unknown or not sources:
        raise ValueError(f"Unknown concept sources {unknown or sources}. Choose from: named, sae (comma-separated).")
    info: dict = {"concept_sources": sources}
    # named concepts are always scored: length control and nearest_named need them
    ds = annotate(pairs)
    labels = None
    if "sae" in sources:
        from .concepts.sae import annotate_sae
        from .concepts.labels import label_features

        ds, annotator = annotate_sae(ds, model=model, layer=layer, sae=sae, **(sae_kwargs or {}))
        # the annotator gives the top examples token-level activations (one short extra forward)
        labels = label_features(ds, annotator.source, annotator=annotator)
        info["sae"] = annotator.to_dict() if hasattr(annotator, "to_dict") else {"source": annotator.source}
    return ds, labels, info


def run_audit(data, *, out, split=None, limit=None, format=None, concepts="named", model=None, layer=15,
              sae="fit", by=None, sae_kwargs=None, audit_kwargs=None) -> dict:
    """Load, annotate and audit ``data``; write ``audit.parquet``, ``annotated/`` and ``summary.json`` to ``out``."""
    from .audit import ConceptAudit
    from .ingest import ingestion_summary, load_pairs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pairs = load_pairs(data if not isinstance(data, Path) else str(data), split=split, limit=limit, format=format)
    summary = ingestion_summary(pairs)
    ds, labels, info = annotate_concepts(pairs, concepts=concepts, model=model, layer=layer, sae=sae,
                                         sae_kwargs=sae_kwargs)
    audit = ConceptAudit(**(audit_kwargs or {})).fit(ds, by=by, labels=labels)
    audit.results_.to_parquet(out / AUDIT_FILE, index=False)
    if len(audit.members_):
        audit.members_.to_parquet(out / MEMBERS_FILE, index=False)
    if by:
        audit.results_by_.to_parquet(out / "audit_by.parquet", index=False)
    if labels is not None:
        _to_parquet_safe(labels, out / LABELS_FILE)
    ds.save_to_disk(str(out / ANNOTATED_DIR))
    record = {"source": str(data) if isinstance(data, (str, Path)) else type(data).__name__, "ingestion": summary,
              "audit": audit.to_dict(), **info, "fingerprint": getattr(pairs, "_fingerprint", None),
              "seconds": round(time.perf_counter() - t0, 2)}
    (out / SUMMARY_FILE).write_text(json.dumps(record, indent=2, default=str))
    return {"dataset": ds, "audit": audit, "summary": summary, "labels": labels, "record": record}


def _to_parquet_safe(df, path) -> None:
    """Write ``df`` to parquet, storing nested mixed-type values (e.g. ``[["great question", 2.1]]``) as JSON."""
    import pandas as pd

    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v, default=float) if isinstance(v, (list, tuple, dict)) else v)
    pd.DataFrame(df).to_parquet(path, index=False)


def run_demo(*, out, n_pairs=600, sae=True, seed=0, card_example=None, console=None, learn_steps=0):
    """Generate pairs with planted concepts, audit them, apply a shipped recipe and publish locally.

    With ``learn_steps > 0`` the learning check (:func:`curate.learning_check`, LoRA DPO on SmolLM2 on the
    original and the curated pairs) runs before publishing, so the card gets "What a model learned from it"."""
    from rich.console import Console

    from .cli import print_audit, print_summary
    from .generate import make_preference_pairs

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gen = make_preference_pairs(n_pairs, seed=seed)
    data_file = out / "pairs.jsonl"
    gen.dataset.to_json(str(data_file), lines=True)
    gen.truth.to_csv(out / "truth.csv", index=False)
    console.print(f"[bold]1/4 generate[/]: {n_pairs} pairs with planted concepts → {data_file}")
    console.print("    planted (rate in better vs worse response): " + ", ".join(
        f"{c} {a:.2f}/{b:.2f}" for c, (a, b) in gen.planted.items()), highlight=False)
    audit_dir = out / "audit"
    result = run_audit(str(data_file), out=audit_dir, concepts="named,sae" if sae else "named")
    console.print(f"[bold]2/4 audit[/] ({result['record']['seconds']} s)")
    print_summary(result["summary"], console)
    print_audit(result["audit"].results_, console, top=15)
    console.print(f"    held-out AUC of all concepts together: {result['audit'].auc_:.3f}; outputs in {audit_dir}")
    applied = _demo_apply(result, out, console)
    if learn_steps and applied is not None:
        from .learning import LearnConfig, learning_check

        console.print(f"[bold]3b/4 learn[/]: LoRA DPO, {learn_steps} steps per policy, original vs curated pairs")
        res = learning_check(str(data_file), out / "curated", out=out / "learning", config=LearnConfig(steps=learn_steps),
                             eval_prompts=20, samples=2, max_new_tokens=32, counterfactual_pairs=32,
                             log=lambda m: console.print("    " + m, highlight=False, markup=False))
        console.print(f"    R² {res.record['r2']}, Spearman {res.record['spearman']} ({res.record['seconds']} s); "
                      f"outputs in {out / 'learning'}", highlight=False)
    published = _demo_publish(applied, out, console, card_example)
    console.print(f"[bold green]Demo finished in {time.perf_counter() - t0:.0f} s.[/] Outputs under {out.resolve()}")
    if published:
        console.print(f"Published folder: {Path(published).resolve()}")
    return {"audit": result, "applied": applied, "published": published}


def _demo_apply(result, out: Path, console):
    try:
        from .interventions import apply_recipe  # noqa: F401
    except ImportError:
        console.print("[yellow]3/4 apply: interventions are not available in this build; skipped[/]")
        return None
    from ._cli_apply import run_apply

    recipe = Path(__file__).resolve().parent.parent / "recipes" / "anti_sycophancy.yaml"
    apply_dir = out / "curated"
    return run_apply(str(out / "audit" / ANNOTATED_DIR), recipe=str(recipe), out=apply_dir, console=console)


def _demo_publish(applied, out: Path, console, card_example):
    if applied is None:
        return None
    try:
        from .publish import publish
    except ImportError:
        console.print("[yellow]4/4 publish: not available in this build; skipped[/]")
        return None
    folder = publish(out / "curated", repo_id="your-name/curate-demo", local_dir=out / "published", upload=False)
    if card_example:
        import shutil

        Path(card_example).mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(folder) / "README.md", Path(card_example) / "README.md")
        if (Path(folder) / "images").exists():
            shutil.copytree(Path(folder) / "images", Path(card_example) / "images", dirs_exist_ok=True)
    return folder
