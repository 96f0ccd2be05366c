"""Curated folders (``curate apply DATA --out DIR``): the ``DatasetDict`` (``train``, ``dropped``) at the root,
the apply record, the recipe, the before/after re-audit and proxy tables, and ``source_audit/`` (the audit of
the rows it started from). :func:`save_curated` checks the row accounting and writes it atomically;
:func:`load_curated` reads it back as a :class:`CuratedFolder` and checks the counts again.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _columns as C
from .atomic import atomic_folder
from .audit_folder import AuditFolder, load_audit, write_audit_files
from .layout import APPLY_RECORD, BEFORE_AFTER, KINDS, MANIFEST, PROXY, RECIPE, SOURCE_AUDIT, FolderError
from .manifest import Folder, open_folder, write_manifest
from .rows import account_rows


@dataclass
class CuratedFolder(Folder):
    """A curated folder: the splits, what was done, and the audit of the source rows.

    Attributes:
        dataset: ``DatasetDict`` with ``train`` and ``dropped``.
        report: the apply record (``apply.json``), or {}.
        recipe_text: the recipe YAML, or None.
        before_after: the before/after re-audit table, or None.
        proxy: the proxy reward check table, or None.
        audit: the source audit (:class:`AuditFolder` in ``source_audit/``), or None.
    """

    dataset: Any = None
    report: dict = field(default_factory=dict)
    recipe_text: str | None = None
    before_after: Any = None
    proxy: Any = None
    audit: AuditFolder | None = None

    def source_rows(self):
        """Every input row once, as the next step's input: distinct ``train`` rows (by ``row`` index: a resampled
        row repeats in ``train``), then ``dropped`` (with its reasons, so they stay dropped). Rows keep their
        ``swapped`` mark, so a relabelled row stays known as relabelled through any chain of steps."""
        from datasets import concatenate_datasets

        train, dropped = self.dataset[C.TRAIN_SPLIT], self.dataset[C.DROPPED_SPLIT]
        key = _row_key(self.path, train)
        seen, keep = set(), []
        for j, i in enumerate(train[key]):
            if i not in seen:
                seen.add(i)
                keep.append(j)
        parts = [train.select(keep)] + ([dropped.cast(train.features)] if len(dropped) else [])
        out = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
        return out.select(np.argsort(np.asarray(out[C.ROW]), kind="stable").tolist()).flatten_indices()


def _row_key(path, train, *, writing: bool = False) -> str:
    if C.ROW in train.column_names:
        return C.ROW
    if writing:
        raise FolderError(
            f"The splits to write to {str(path)!r} have no {C.ROW!r} column (each row's position in the source, "
            "which the row accounting checks). Make them with curate.apply_recipe, or add the column to the data "
            "first with curate.ingest.ensure_row_index."
        )
    raise FolderError(
        f"{str(path)!r} was written without a row index (an older curate); re-run `{KINDS['curated']}` "
        "on the original data to write it again."
    )


def save_curated(
    out: str | Path,
    dataset,
    *,
    report=None,
    recipe=None,
    source_audit: AuditFolder | None = None,
    audit_result: dict | None = None,
    input_rows=None,
    source: str | None = None,
    made_from: dict | None = None,
    before_write=None,
) -> dict:
    """Write a curated folder to ``out`` in one step, after checking the row accounting.

    Args:
        out: the folder.
        dataset: ``DatasetDict`` with ``train`` and ``dropped``.
        report: the :class:`~curate.interventions.ApplyReport` (or None).
        recipe: the :class:`~curate.recipe.Recipe` (or None).
        source_audit: the source audit folder to copy into ``source_audit/``; or ``audit_result``, the
            dict :func:`curate.pipeline.audit_pairs` returns, to write it there.
        input_rows: the dataset the splits were made from (``row``, ``reason``), for :func:`account_rows`;
            default: the splits themselves.
        source: what the rows came from; made_from: the manifest of the input folder.
        before_write: ``fn(tmp)`` called before the manifest is written (extra files, e.g. directions).

    Returns:
        The manifest.
    """
    train, dropped = dataset[C.TRAIN_SPLIT], dataset[C.DROPPED_SPLIT]
    key = _row_key(out, train, writing=True)
    if input_rows is None:  # the splits are the whole input: distinct train rows, then dropped
        first = {}
        for i, r in zip(train[key], train[C.REASON] if C.REASON in train.column_names else [""] * len(train)):
            first.setdefault(i, r)
        ids = list(first) + list(dropped[key])
        reasons = list(first.values()) + list(dropped[C.REASON])
    else:
        ids = input_rows[key]
        reasons = input_rows[C.REASON] if C.REASON in input_rows.column_names else [""] * len(input_rows)
    rows = account_rows(ids, reasons, train, dropped, key=key)
    out = Path(out)
    with atomic_folder(out, kind="curated") as tmp:
        save_splits(dataset, tmp)
        if before_write is not None:
            before_write(tmp)
        if report is not None:
            report.extra["rows"] = rows
            report.save(tmp)
        else:
            (tmp / APPLY_RECORD).write_text(json.dumps({"rows": rows}, indent=2))
        if recipe is not None:
            recipe.save(tmp / RECIPE)
        fp = None
        if audit_result is not None:
            write_audit_files(tmp / SOURCE_AUDIT, **audit_result)
        elif source_audit is not None:
            shutil.copytree(source_audit.path, tmp / SOURCE_AUDIT, copy_function=_link_or_copy)
        if (tmp / SOURCE_AUDIT / MANIFEST).exists():
            sm = json.loads((tmp / SOURCE_AUDIT / MANIFEST).read_text())
            fp, source = sm.get("source_fingerprint"), source or sm.get("source")
        return_manifest = write_manifest(
            tmp, kind="curated", source=source, source_fingerprint=fp, rows=rows, made_from=made_from
        )
    return return_manifest


def _link_or_copy(src, dst) -> None:
    """Hard-link a file (curate never rewrites a written file in place), else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def load_curated(path: str | Path) -> CuratedFolder:
    """Read a curated folder, check its row accounting (refuses anything else, see :func:`open_folder`)."""
    import datasets
    import pandas as pd

    f = open_folder(path, kind="curated")
    p = f.path
    dd = datasets.load_from_disk(str(p))
    if set(dd) != {C.TRAIN_SPLIT, C.DROPPED_SPLIT}:
        raise FolderError(
            f"{str(p)!r}: the splits are {sorted(dd)}, not train and dropped; re-run `{KINDS['curated']}`."
        )
    report = json.loads((p / APPLY_RECORD).read_text(encoding="utf-8"))
    rows = f.manifest.get("rows") or {}
    got = {"train_rows": len(dd[C.TRAIN_SPLIT]), "dropped": len(dd[C.DROPPED_SPLIT])}
    if any(rows.get(k) != v for k, v in got.items()):
        raise FolderError(
            f"{str(p)!r} is a mixed curated folder: its {MANIFEST} counts {rows} rows but the "
            f"splits hold {got}. Re-run `{KINDS['curated']}`."
        )
    audit = None
    if (p / SOURCE_AUDIT).exists():
        audit = load_audit(p / SOURCE_AUDIT)

    def opt(name):
        return pd.read_parquet(p / name) if (p / name).exists() else None

    return CuratedFolder(
        p,
        f.manifest,
        dataset=dd,
        report=report,
        recipe_text=(p / RECIPE).read_text(encoding="utf-8") if (p / RECIPE).exists() else None,
        before_after=opt(BEFORE_AFTER),
        proxy=opt(PROXY),
        audit=audit,
    )


def save_splits(dd, folder: str | Path) -> Path:
    """``dd.save_to_disk(folder)`` that also works for an empty split (datasets 5.2 writes no shard for an
    empty split and then cannot load it back); at most 500 MB per shard otherwise."""
    num_shards = {k: max(1, int(v.data.nbytes // 500_000_000) + 1) for k, v in dd.items()}
    dd.save_to_disk(str(folder), num_shards=num_shards)
    return Path(folder)
