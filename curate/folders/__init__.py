"""The layout of every folder ``curate`` writes, in one place: names, manifest, atomic writes, typed load/save.

Four kinds of folder, each made by one command and described by a small manifest ``curate.json``::

    kind        made by                                   holds
    audit       curate audit DATA --out DIR               audit.parquet, annotated/, summary.json (+ members,
                                                          by-subset table, SAE feature labels)
    curated     curate apply DATA --out DIR               the DatasetDict (train/, dropped/), apply.json,
                                                          before_after.parquet, recipe.yaml, source_audit/
                                                          (the audit of the rows it started from)
    learning    curate learn ... --out DIR                whatever that step writes (see its own module)
    published   curate publish CURATED --local-dir DIR    README.md, data/, audit/ (source audit, re-audit,
                                                          recipe, apply record), images/

The manifest (:func:`write_manifest` / :func:`read_manifest`)::

    {"kind": "curated", "format": 2, "curate_version": "0.1.0", "created": "...",
     "source": "pairs.jsonl", "source_fingerprint": "...", "rows": {"in": 50, "train": 35, ...},
     "made_from": {"kind": "audit", "path": "...", "source_fingerprint": "..."}, "files": [...],
     "checksums": {"train/data-00000-of-00001.arrow": {"size": 81234, "sha256": "..."}, ...}}

Every step reads folders only through :func:`open_folder` (or the typed ``load_*``), which refuses a folder
of another kind, a folder without a manifest (not written by curate, or by a step that was killed), a
folder whose files do not match its manifest, and a folder whose files differ from the sizes and SHA-256 the
manifest recorded (:mod:`~curate.folders.checksums`: a file cut short or changed after it was written), with an
error naming the command that makes the right one.

Writes are atomic (:func:`atomic_folder`): a step builds its folder in a hidden sibling temporary folder and
renames it into place at the end (an atomic exchange on Linux), so a step killed at any point leaves the old
complete folder, or nothing new.

Row accounting (:func:`account_rows`) is one invariant checked whenever a curated folder is saved or read:
rows in = rows in ``train`` + rows in ``dropped``, each input row exactly once (known by its ``row`` index, its
position in the source: ids may repeat or be null; a resampled row may repeat inside ``train``), and every
``invalid:`` row in ``dropped`` with its reason. The counts go in the manifest.

The package, one module per idea (everything is imported from ``curate.folders``)::

    layout           the folder kinds, the command that makes each, the file names, FolderError
    staging          the hidden sibling a folder is built in, the swap into place, clean-up after a kill
    manifest         curate.json: write_manifest, read_manifest, open_folder (the checked Folder)
    checksums        each file's size and SHA-256, recorded when written and checked when read
    atomic           atomic_folder (build aside, swap in), check_target (refuse an output it may not replace)
    rows             account_rows: rows in = train + dropped (RowAccountingError); ensure_row_index
    audit_folder     AuditFolder, write_audit_files, save_audit, load_audit
    curated_folder   CuratedFolder, save_curated, load_curated, save_splits
    published_folder PublishedFolder, load_published
    inputs           resolve_input: what a step was given (an audit folder, a curated folder or raw data)

A new step that writes its own kind of folder (e.g. ``curate learn``)::

    from curate import folders

    with folders.atomic_folder(out, kind="learning") as tmp:
        ...                                            # write files into tmp
        folders.write_manifest(tmp, kind="learning", made_from=folders.read_manifest(curated_dir),
                               source=str(curated_dir), rows={"train": n})
    info = folders.open_folder(out, kind="learning")   # later: refuses anything else

Example:

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> with atomic_folder(out, kind="learning") as tmp:
    ...     _ = (tmp / LEARNING_TABLE).write_bytes(b"")   # the files a learning folder must hold
    ...     _ = (tmp / LEARNING_RECORD).write_text("{}")
    ...     _ = write_manifest(tmp, kind="learning", rows={"train": 3})
    >>> read_manifest(out)["kind"], open_folder(out, kind="learning").manifest["rows"]
    ('learning', {'train': 3})
"""

from __future__ import annotations

from .atomic import atomic_folder, check_target
from .audit_folder import AuditFolder, load_audit, save_audit, write_audit_files
from .audit_folder import _to_parquet_safe as _to_parquet_safe  # curate.pipeline writes its findings with it
from .curated_folder import CuratedFolder, load_curated, save_curated, save_splits
from .inputs import resolve_input
from .layout import (
    ANNOTATED,
    APPLY_RECORD,
    AUDIT_AUC_BY,
    AUDIT_BY,
    AUDIT_FINDINGS,
    AUDIT_MEMBERS,
    AUDIT_SUMMARY,
    AUDIT_TABLE,
    BEFORE_AFTER,
    CARD,
    DATA_DIR,
    DATASET_DICT,
    DIRECTIONS,
    FEATURE_LABELS,
    FORMAT,
    IMAGES_DIR,
    KINDS,
    LEARNING_BARS,
    LEARNING_GENERATIONS,
    LEARNING_RECORD,
    LEARNING_SCATTER,
    LEARNING_TABLE,
    MANIFEST,
    PROXY,
    PUBLISHED_AUDIT_DIR,
    RECIPE,
    SOURCE_AUDIT,
    SUMMARY,
    FolderError,
)
from .manifest import Folder, open_folder, read_manifest, write_manifest
from .published_folder import PublishedFolder, load_published
from .rows import RowAccountingError, account_rows
from .staging import staging_folder

__all__ = [
    "ANNOTATED",
    "APPLY_RECORD",
    "AUDIT_AUC_BY",
    "AUDIT_BY",
    "AUDIT_FINDINGS",
    "AUDIT_MEMBERS",
    "AUDIT_SUMMARY",
    "AUDIT_TABLE",
    "BEFORE_AFTER",
    "CARD",
    "DATASET_DICT",
    "DATA_DIR",
    "DIRECTIONS",
    "FEATURE_LABELS",
    "FORMAT",
    "IMAGES_DIR",
    "KINDS",
    "LEARNING_BARS",
    "LEARNING_GENERATIONS",
    "LEARNING_RECORD",
    "LEARNING_SCATTER",
    "LEARNING_TABLE",
    "MANIFEST",
    "PROXY",
    "PUBLISHED_AUDIT_DIR",
    "RECIPE",
    "SOURCE_AUDIT",
    "SUMMARY",
    "AuditFolder",
    "CuratedFolder",
    "Folder",
    "FolderError",
    "PublishedFolder",
    "RowAccountingError",
    "account_rows",
    "atomic_folder",
    "check_target",
    "load_audit",
    "load_curated",
    "load_published",
    "open_folder",
    "read_manifest",
    "resolve_input",
    "save_audit",
    "save_curated",
    "save_splits",
    "staging_folder",
    "write_audit_files",
    "write_manifest",
]
