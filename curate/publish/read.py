"""Reading a curated folder (what ``curate apply`` wrote) with its source audit: :func:`read_curated`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import _columns as C

DATA_DIR, AUDIT_DIR, IMAGES_DIR = "data", "audit", "images"
VOLCANO_PNG, BEFORE_AFTER_PNG = "volcano.png", "before_after.png"
SPLITS = (C.TRAIN_SPLIT, C.DROPPED_SPLIT)


def _written_splits(dataset) -> list[str]:
    """The splits that get a data file: ``train`` always, ``dropped`` when it has rows (``datasets`` cannot
    load an empty split from parquet)."""
    return [s for s in SPLITS if s == C.TRAIN_SPLIT or dataset[s].num_rows > 0]


@dataclass
class CuratedData:
    """Everything :func:`publish` found in a curated folder (see :func:`read_curated`).

    Attributes:
        folder: the curated folder.
        dataset: the ``DatasetDict`` with ``train`` and (possibly empty) ``dropped`` splits.
        recipe: the recipe as a plain dict (``Recipe.to_dict()`` layout), or None.
        recipe_text: the recipe YAML as written by ``curate apply`` (comments kept), or None.
        report: the apply record (intervention ``to_dict()``\\ s, retention, proxy check...), or {}.
        before_after: one row per concept with ``win_rate_before``/``_after`` (and CIs, q), or None.
        audit: the audit of the source data (``audit.parquet``), or None.
        audit_summary: the source audit's ``summary.json``, or None.
        labels: SAE feature labels (``feature_labels.parquet``), or None.
        proxy: the proxy reward check table (``proxy*.parquet``), or None (then read from ``report``).
        annotated_dir: the annotated source pairs (``annotated/`` of the audit), for quoted examples.
        files: extra files to copy into ``audit/`` (name in the folder → source path).
    """

    folder: Path
    dataset: Any
    recipe: dict | None = None
    recipe_text: str | None = None
    report: dict = field(default_factory=dict)
    before_after: pd.DataFrame | None = None
    audit: pd.DataFrame | None = None
    audit_summary: dict | None = None
    labels: pd.DataFrame | None = None
    proxy: pd.DataFrame | None = None
    annotated_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)


def read_curated(curated_dir: str | Path, *, audit_dir: str | Path | None = None) -> CuratedData:
    """Read a curated folder (:func:`curate.folders.load_curated`) and the audit of its source rows.

    The source audit is the one ``curate apply`` saved in the curated folder (``source_audit/``);
    ``audit_dir`` (an audit folder) replaces it, and is refused when it audited other rows than the
    curated folder was made from.

    Args:
        curated_dir: the output folder of ``curate apply``.
        audit_dir: the output folder of ``curate audit`` on the same source data (optional).

    Returns:
        A :class:`CuratedData`.
    """
    from .. import folders as F

    cur = F.load_curated(curated_dir)
    out = CuratedData(
        folder=cur.path, dataset=cur.dataset, report=cur.report, recipe_text=cur.recipe_text, proxy=cur.proxy
    )
    out.files[F.APPLY_RECORD] = cur.path / F.APPLY_RECORD
    if cur.proxy is not None:
        out.files[F.PROXY] = cur.path / F.PROXY
    out.recipe = _recipe_dict(cur.recipe_text, cur.path / F.RECIPE) if cur.recipe_text else None
    if out.recipe is None and isinstance(cur.report.get("recipe"), dict):
        out.recipe = cur.report["recipe"]
    out.before_after = _normalize_before_after(cur.before_after) if cur.before_after is not None else None
    if out.before_after is None:
        out.before_after = _before_after_from_report(cur.report)
    audit = cur.audit
    if audit_dir is not None:
        audit = F.load_audit(audit_dir)
        ours, theirs = cur.manifest.get("source_fingerprint"), audit.manifest.get("source_fingerprint")
        if ours and theirs and ours != theirs:
            raise F.FolderError(
                f"{str(audit_dir)!r} audited other rows (fingerprint {theirs}) than "
                f"{str(cur.path)!r} was made from ({ours}); leave out --audit-dir to use the "
                "audit saved with it."
            )
    if audit is not None:
        out.audit, out.labels, out.audit_summary = audit.results, audit.labels, audit.summary
        out.annotated_dir = audit.path / F.ANNOTATED
        out.files.update(audit.files())
    return out


def _recipe_dict(text: str, path: Path) -> dict | None:
    """The recipe as a dict; YAML that :func:`curate._yaml.load_yaml` refuses (an alias bomb, deep nesting, a
    duplicate key) is an error naming the file, never published."""
    from .._yaml import load_yaml
    from ..errors import RecipeError
    from ..recipe import Recipe

    try:
        value = load_yaml(text)
    except RecipeError as err:
        raise RecipeError(f"{path}: {err} Re-run `curate apply` to write the recipe again.") from None
    try:
        return Recipe.from_dict(value, validate_ids=False).to_dict()
    except RecipeError:  # an older or hand-written recipe: kept as plain YAML
        return value if isinstance(value, dict) else None


def _normalize_before_after(table: pd.DataFrame) -> pd.DataFrame | None:
    """The before/after table as ``curate apply`` writes it (:data:`curate.interventions.apply.BEFORE_AFTER_COLUMNS`),
    or None when it is not that table."""
    if not {"concept", "win_rate_before", "win_rate_after"} <= set(table.columns):
        return None
    return table.rename(columns={"q_value_before": "q_before", "q_value_after": "q_after"})


def _before_after_from_report(report: dict) -> pd.DataFrame | None:
    """The table from ``apply.json``'s ``before_after`` records (when ``before_after.parquet`` is absent)."""
    value = report.get("before_after")
    return _normalize_before_after(pd.DataFrame(value)) if isinstance(value, list) and value else None
