"""End-to-end runs used by the CLI and the demo: load → annotate → audit → (apply → publish)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import _columns as C

from .folders import ANNOTATED as ANNOTATED_DIR  # noqa: F401  (names of files live in curate.folders)
from .folders import AUDIT_TABLE as AUDIT_FILE  # noqa: F401
from .folders import SUMMARY as SUMMARY_FILE  # noqa: F401

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


def audit_pairs(data, *, split=None, limit=None, format=None, concepts="named", model=None, layer=15,
                sae="fit", by=None, sae_kwargs=None, audit_kwargs=None) -> dict:
    """Load, annotate and audit ``data`` without writing anything.

    Returns:
        ``{"dataset", "audit", "summary", "labels", "record", "files"}``; ``files`` are the keyword
        arguments of :func:`curate.folders.write_audit_files` (what an audit folder holds).
    """
    from .audit import ConceptAudit
    from .ingest import ingestion_summary, load_pairs

    t0 = time.perf_counter()
    pairs = load_pairs(data if not isinstance(data, Path) else str(data), split=split, limit=limit, format=format)
    summary = ingestion_summary(pairs)
    ds, labels, info = annotate_concepts(pairs, concepts=concepts, model=model, layer=layer, sae=sae,
                                         sae_kwargs=sae_kwargs)
    audit = ConceptAudit(**(audit_kwargs or {})).fit(ds, by=by, labels=labels)
    source = str(data) if isinstance(data, (str, Path)) else type(data).__name__
    record = {"source": source, "ingestion": summary, "audit": audit.to_dict(), **info,
              "fingerprint": getattr(pairs, "_fingerprint", None), "seconds": round(time.perf_counter() - t0, 2)}
    files = {"annotated": ds, "results": audit.results_, "summary": record,
             "members": audit.members_ if len(audit.members_) else None,
             "by": audit.results_by_ if by else None, "labels": labels, "source": source}
    return {"dataset": ds, "audit": audit, "summary": summary, "labels": labels, "record": record, "files": files}


def run_audit(data, *, out, split=None, limit=None, format=None, concepts="named", model=None, layer=15,
              sae="fit", by=None, sae_kwargs=None, audit_kwargs=None) -> dict:
    """Load, annotate and audit ``data``; write the audit folder ``out`` in one step (:mod:`curate.folders`:
    ``audit.parquet``, ``annotated/``, ``summary.json``, ``curate.json``)."""
    from .folders import atomic_folder, check_target, write_audit_files

    out = check_target(out, "audit")  # refuses a foreign --out before the work starts
    result = audit_pairs(data, split=split, limit=limit, format=format, concepts=concepts, model=model,
                         layer=layer, sae=sae, by=by, sae_kwargs=sae_kwargs, audit_kwargs=audit_kwargs)
    with atomic_folder(out, kind="audit") as tmp:
        write_audit_files(tmp, **result["files"])
    return result


def run_demo(*, out, n_pairs=600, sae=True, seed=0, card_example=None, console=None):
    """Generate pairs with planted concepts, audit them, apply a shipped recipe and publish locally."""
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
    return run_apply(str(out / "audit"), recipe=str(recipe), out=apply_dir, console=console)


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
