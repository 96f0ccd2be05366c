"""Audit folders (``curate audit DATA --out DIR``): the audit table, the annotated pairs (every input row,
``reason`` kept), the run record ``summary.json``, and the optional SAE members, per-subset table, feature
labels, readable findings and per-subset AUC. :func:`write_audit_files` writes them, :func:`save_audit` does
so atomically, :func:`load_audit` reads them back as an :class:`AuditFolder`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _columns as C
from . import layout as L
from .atomic import atomic_folder
from .layout import FolderError
from .manifest import Folder, open_folder, write_manifest


@dataclass
class AuditFolder(Folder):
    """An audit folder: the audit table, the annotated pairs and the run record.

    Attributes:
        results: the audit table (:data:`curate.audit.RESULT_COLUMNS`).
        summary: the run record (``summary.json``: ingestion counts, audit settings, concept sources).
        members, by, labels: SAE group members, per-subset table, SAE feature labels (or None).
        findings, auc_by: the findings with readable labels and examples; held-out AUC per subset (or None).
    """

    results: Any = None
    summary: dict = field(default_factory=dict)
    members: Any = None
    by: Any = None
    labels: Any = None
    findings: Any = None
    auc_by: Any = None

    def annotated(self):
        """The annotated pairs (every input row, ``reason`` kept) as a ``datasets.Dataset``."""
        from datasets import load_from_disk

        ds = load_from_disk(str(self.path / L.ANNOTATED))
        want = (self.manifest.get("rows") or {}).get("in")
        if want is not None and len(ds) != want:  # open_folder checked the bytes; the count is checked too
            raise FolderError(
                f"{str(self.path / L.ANNOTATED)!r} holds {len(ds)} rows, its {L.MANIFEST} recorded {want}. Re-run "
                f"`{L.KINDS['audit']}` to write it again."
            )
        return ds

    def files(self) -> dict[str, Path]:
        """Table files to copy when publishing (name → path); the run record as ``audit_summary.json``."""
        out = {
            n: self.path / n
            for n in (L.AUDIT_TABLE, L.AUDIT_MEMBERS, L.AUDIT_BY, L.FEATURE_LABELS, L.AUDIT_FINDINGS, L.AUDIT_AUC_BY)
            if (self.path / n).exists()
        }
        out[L.AUDIT_SUMMARY] = self.path / L.SUMMARY
        return out


def save_audit(out: str | Path, **files) -> Path:
    """Write an audit folder to ``out`` in one step (see :func:`~curate.folders.atomic_folder`).

    Args:
        out: the folder.
        **files: what it holds: the keyword arguments of :func:`write_audit_files` (``annotated``, ``results``,
            ``summary``, and optionally ``members``, ``by``, ``labels``, ``findings``, ``auc_by``, ``source``,
            ``made_from``).

    Returns:
        ``out``.
    """
    out = Path(out)
    with atomic_folder(out, kind="audit") as tmp:
        write_audit_files(tmp, **files)
    return out


def write_audit_files(
    tmp: Path,
    *,
    annotated,
    results,
    summary: dict,
    members=None,
    by=None,
    labels=None,
    findings=None,
    auc_by=None,
    source: str | None = None,
    made_from: dict | None = None,
) -> dict:
    """Write an audit folder's files and manifest into ``tmp`` (already inside an atomic write)."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    results.to_parquet(tmp / L.AUDIT_TABLE, index=False)
    if members is not None and len(members):
        members.to_parquet(tmp / L.AUDIT_MEMBERS, index=False)
    if by is not None:
        by.to_parquet(tmp / L.AUDIT_BY, index=False)
    if auc_by is not None:
        auc_by.to_parquet(tmp / L.AUDIT_AUC_BY, index=False)
    if findings is not None:
        _to_parquet_safe(findings, tmp / L.AUDIT_FINDINGS)
    if labels is not None:
        _to_parquet_safe(labels, tmp / L.FEATURE_LABELS)
    annotated.save_to_disk(str(tmp / L.ANNOTATED))
    (tmp / L.SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
    reasons = [r or "" for r in annotated[C.REASON]] if C.REASON in annotated.column_names else []
    rows = {
        "in": len(annotated),
        "usable": sum(not r for r in reasons) if reasons else len(annotated),
        "invalid": sum(r.startswith(C.INVALID_PREFIX) for r in reasons),
    }
    return write_manifest(
        tmp, kind="audit", source=source, source_fingerprint=summary.get("fingerprint"), rows=rows, made_from=made_from
    )


def load_audit(path: str | Path) -> AuditFolder:
    """Read an audit folder (refuses anything else, see :func:`open_folder`)."""
    import pandas as pd

    f = open_folder(path, kind="audit")
    p = f.path

    def opt(name):
        return pd.read_parquet(p / name) if (p / name).exists() else None

    summary = json.loads((p / L.SUMMARY).read_text(encoding="utf-8"))
    return AuditFolder(
        p,
        f.manifest,
        results=pd.read_parquet(p / L.AUDIT_TABLE),
        summary=summary,
        members=opt(L.AUDIT_MEMBERS),
        by=opt(L.AUDIT_BY),
        labels=opt(L.FEATURE_LABELS),
        findings=opt(L.AUDIT_FINDINGS),
        auc_by=opt(L.AUDIT_AUC_BY),
    )


def _to_parquet_safe(df, path) -> None:
    """Write ``df`` to parquet, storing nested mixed-type values (e.g. ``[["great question", 2.1]]``) as JSON."""
    import pandas as pd

    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v, default=float) if isinstance(v, (list, tuple, dict)) else v)
    pd.DataFrame(df).to_parquet(path, index=False)
