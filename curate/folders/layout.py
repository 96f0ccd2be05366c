"""What each kind of folder is called and holds: the folder kinds, the command that makes each, the file names
inside them, the files each kind must hold, and :class:`FolderError` (a folder that is not the one a step needs).

Every module that names a file of an output folder takes the name from here (through :mod:`curate.folders`).
"""

from __future__ import annotations

from ..errors import CurateError

MANIFEST = "curate.json"
FORMAT = 2  # 2: the manifest records every file's size and SHA-256 (``checksums``)

#: the command that makes each kind of folder (quoted in refusals)
KINDS: dict[str, str] = {
    "audit": "curate audit DATA --out DIR",
    "curated": "curate apply DATA --block CONCEPT --out DIR",
    "learning": "curate learn DATA --curated CURATED --out DIR",
    "published": "curate publish CURATED --repo-id USER/NAME --local-dir DIR",
}

# audit folder
AUDIT_TABLE = "audit.parquet"
AUDIT_MEMBERS = "audit_members.parquet"
AUDIT_BY = "audit_by.parquet"
AUDIT_FINDINGS = "audit_findings.parquet"  # the findings with readable labels and marked example contexts
AUDIT_AUC_BY = "audit_auc_by.parquet"  # held-out AUC pooled and per subset (with a subset column only)
FEATURE_LABELS = "feature_labels.parquet"
ANNOTATED = "annotated"
SUMMARY = "summary.json"
# curated folder (the DatasetDict lies at its root: dataset_dict.json, train/, dropped/)
SOURCE_AUDIT = "source_audit"
APPLY_RECORD = "apply.json"
BEFORE_AFTER = "before_after.parquet"
PROXY = "proxy.parquet"
RECIPE = "recipe.yaml"
DIRECTIONS = "directions.safetensors"
DATASET_DICT = "dataset_dict.json"
# learning folder (curate learn)
LEARNING_TABLE = "learning.parquet"
LEARNING_RECORD = "learning.json"
LEARNING_SCATTER = "learning_scatter.png"
LEARNING_BARS = "learning_before_after.png"
LEARNING_GENERATIONS = "generations.parquet"
# published folder
CARD = "README.md"
DATA_DIR, PUBLISHED_AUDIT_DIR, IMAGES_DIR = "data", "audit", "images"
AUDIT_SUMMARY = "audit_summary.json"  # the source audit's summary.json, inside a published audit/

#: the files (and folders) each kind must hold
REQUIRED = {
    "audit": (AUDIT_TABLE, ANNOTATED, SUMMARY),
    "curated": (DATASET_DICT, APPLY_RECORD),
    "learning": (LEARNING_TABLE, LEARNING_RECORD),
    "published": (CARD, DATA_DIR),
}


class FolderError(CurateError, ValueError):
    """A folder that is missing, of another kind, incomplete or mixed (the message names the fix)."""
