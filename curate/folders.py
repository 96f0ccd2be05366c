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

    {"kind": "curated", "format": 1, "curate_version": "0.1.0", "created": "...",
     "source": "pairs.jsonl", "source_fingerprint": "...", "rows": {"in": 50, "train": 35, ...},
     "made_from": {"kind": "audit", "path": "...", "source_fingerprint": "..."}, "files": [...]}

Every step reads folders only through :func:`open_folder` (or the typed ``load_*``), which refuses a folder
of another kind, a folder without a manifest (not written by curate, or by a step that was killed) and a
folder whose files do not match its manifest, with an error naming the command that makes the right one.

Writes are atomic (:func:`atomic_folder`): a step builds its folder in a hidden sibling temporary folder and
renames it into place at the end (an atomic exchange on Linux), so a step killed at any point leaves the old
complete folder, or nothing new.

Row accounting (:func:`account_rows`) is one invariant checked whenever a curated folder is saved or read:
rows in = rows in ``train`` + rows in ``dropped``, each input id exactly once (a resampled row may repeat
inside ``train``), and every ``invalid:`` row in ``dropped`` with its reason. The counts go in the manifest.

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

import contextlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _columns as C
from .errors import CurateError

__all__ = [
    "ANNOTATED",
    "APPLY_RECORD",
    "AUDIT_BY",
    "AUDIT_MEMBERS",
    "AUDIT_TABLE",
    "BEFORE_AFTER",
    "DIRECTIONS",
    "FEATURE_LABELS",
    "KINDS",
    "MANIFEST",
    "PROXY",
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
    "write_audit_files",
    "write_manifest",
]

MANIFEST = "curate.json"
FORMAT = 1

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

_REQUIRED = {
    "audit": (AUDIT_TABLE, ANNOTATED, SUMMARY),
    "curated": (DATASET_DICT, APPLY_RECORD),
    "learning": (LEARNING_TABLE, LEARNING_RECORD),
    "published": (CARD, DATA_DIR),
}
_TMP, _OLD = ".tmp-", ".old-"


class FolderError(CurateError, ValueError):
    """A folder that is missing, of another kind, incomplete or mixed (the message names the fix)."""


class RowAccountingError(CurateError, RuntimeError):
    """Rows were lost, duplicated, or an unusable (``invalid:``) row reached ``train``."""


# -- manifest ------------------------------------------------------------------------------------------
def write_manifest(
    folder: str | Path,
    *,
    kind: str,
    source: str | None = None,
    source_fingerprint: str | None = None,
    rows: dict | None = None,
    made_from: dict | str | Path | None = None,
    **extra,
) -> dict:
    """Write ``curate.json`` into ``folder`` (last, once every other file is written).

    Args:
        folder: the folder being built (usually the temporary folder of :func:`atomic_folder`).
        kind: one of :data:`KINDS`.
        source: what the rows came from (a path, Hub id or object name).
        source_fingerprint: a fingerprint of the source rows (``datasets`` fingerprint).
        rows: row counts (see :func:`account_rows`).
        made_from: the manifest (or folder path) of the folder this one was made from.
        **extra: more JSON-able keys.

    Returns:
        The manifest as a dict.
    """
    from ._version import __version__

    if kind not in KINDS:
        raise FolderError(f"Unknown folder kind {kind!r}. Kinds: {list(KINDS)}.")
    folder = Path(folder)
    if isinstance(made_from, (str, Path)):
        made_from = read_manifest(made_from)
    if isinstance(made_from, dict):
        made_from = {
            k: made_from.get(k)
            for k in ("kind", "path", "source", "source_fingerprint", "rows")
            if made_from.get(k) is not None
        }
    manifest = {
        "kind": kind,
        "format": FORMAT,
        "curate_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "source_fingerprint": source_fingerprint,
        "rows": rows or {},
        "made_from": made_from,
        **extra,
        "files": sorted(p.name for p in folder.iterdir() if p.name != MANIFEST),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The manifest of a folder curate wrote (with ``path`` added). Raises :class:`FolderError` if none."""
    path = Path(path)
    _recover(path)
    file = path / MANIFEST
    if not path.exists():
        raise FolderError(f"{str(path)!r} does not exist.")
    if not path.is_dir():
        raise FolderError(f"{str(path)!r} is a file, not a folder written by curate.")
    if not file.exists():
        raise FolderError(_no_manifest(path))
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as err:
        raise FolderError(
            f"{str(file)!r} is not valid JSON ({err}); re-run the command that made {str(path)!r}."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("kind") not in KINDS:
        raise FolderError(f"{str(file)!r} names no known folder kind (kinds: {list(KINDS)}).")
    manifest["path"] = str(path)
    return manifest


def _no_manifest(path: Path) -> str:
    found = sorted(p.name for p in path.iterdir())[:12]
    guess = _guess_kind(path)
    what = (
        f"It looks like an incomplete or older {guess} folder; re-run `{KINDS[guess]}` to write it again."
        if guess
        else "Pass a folder written by one of: " + "; ".join(f"`{c}`" for c in KINDS.values()) + "."
    )
    return (
        f"{str(path)!r} has no {MANIFEST}, so curate did not write it (or a step writing it was killed). "
        f"{what} Files there: {found}."
    )


def _guess_kind(path: Path) -> str | None:
    """Only to word the error for a folder without a manifest; nothing is read on a guess."""
    names = {p.name for p in path.iterdir()} if path.is_dir() else set()
    if AUDIT_TABLE in names or ANNOTATED in names:
        return "audit"
    if APPLY_RECORD in names or (DATASET_DICT in names and C.DROPPED_SPLIT in names):
        return "curated"
    if CARD in names and DATA_DIR in names:
        return "published"
    return None


@dataclass
class Folder:
    """A folder curate wrote: its ``path``, ``kind`` and ``manifest``."""

    path: Path
    manifest: dict

    @property
    def kind(self) -> str:
        return self.manifest["kind"]


def open_folder(path: str | Path, kind: str | tuple[str, ...] | None = None) -> Folder:
    """Check a folder curate wrote and return it as a :class:`Folder`.

    Refuses (:class:`FolderError`, naming the command that makes the right folder) a folder without a
    manifest, one of another kind than ``kind``, and one whose required files are missing or whose
    manifest lists files that are gone (a mixed or partial folder).
    """
    path = Path(path)
    manifest = read_manifest(path)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind or ())
    if kinds and manifest["kind"] not in kinds:
        want = " or ".join(f"a {k} folder (made by `{KINDS[k]}`)" for k in kinds)
        raise FolderError(
            f"{str(path)!r} is a {manifest['kind']} folder (made by `{KINDS[manifest['kind']]}`); "
            f"this step needs {want}."
        )
    missing = [f for f in (*_REQUIRED[manifest["kind"]], *manifest.get("files", ())) if not (path / f).exists()]
    if missing:
        raise FolderError(
            f"{str(path)!r} is an incomplete {manifest['kind']} folder: {missing} missing although "
            f"its {MANIFEST} lists them. Re-run `{KINDS[manifest['kind']]}` to write it again."
        )
    return Folder(path, manifest)


# -- atomic writes -------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_folder(out: str | Path, *, kind: str) -> Iterator[Path]:
    """Build a folder in a hidden sibling temporary folder, then put it in place of ``out`` in one step.

    ``out`` may not exist, be empty, or hold a folder curate wrote of the same ``kind`` (it is replaced);
    anything else is refused, so a typo in ``--out`` never deletes someone's files. The body must call
    :func:`write_manifest` on the temporary folder. On any error (or a kill) ``out`` is left as it was;
    leftover temporary folders of dead processes are removed by the next write to ``out``.

    Yields:
        The temporary folder to write into.
    """
    out = Path(out)
    if kind not in KINDS:
        raise FolderError(f"Unknown folder kind {kind!r}. Kinds: {list(KINDS)}.")
    check_target(out, kind)
    with staging_folder(out) as tmp:
        yield tmp
        if not (tmp / MANIFEST).exists():
            raise FolderError(f"internal: the {kind} step wrote no {MANIFEST}; {str(out)!r} was left as it was.")
        _swap_into_place(tmp, out)


@contextlib.contextmanager
def staging_folder(final: str | Path) -> Iterator[Path]:
    """A hidden sibling of ``final`` to build it in (``.<name>.tmp-<pid>-<random>``), removed on exit whatever
    happens; the caller moves it into place before leaving the block. The one staging step of every atomic
    write: :func:`atomic_folder` (output folders) and :func:`curate.cache.atomic_dir` (cache entries)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}{_TMP}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_target(out: str | Path, kind: str) -> Path:
    """Refuse an output folder a ``kind`` step may not replace (see :func:`atomic_folder`); call it before
    long work so the refusal comes first. Returns ``out`` as a Path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover(out)
    _clean_stale(out)
    command = " ".join(KINDS[kind].split()[:2])
    if out.exists():
        if not out.is_dir():
            raise FolderError(f"{str(out)!r} is a file; choose a folder for the output.")
        if any(out.iterdir()):
            try:
                old = read_manifest(out)["kind"]
            except FolderError:
                raise FolderError(
                    f"{str(out)!r} exists and is not a folder written by `{command}` (no {MANIFEST}); "
                    f"its files would be replaced. Choose a new or empty folder, or remove it. Files "
                    f"there: {sorted(p.name for p in out.iterdir())[:12]}."
                ) from None
            if old != kind:
                raise FolderError(
                    f"{str(out)!r} holds a {old} folder (made by `{KINDS[old]}`); writing a {kind} "
                    "folder there would replace it. Choose another output folder."
                )
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        if _exchange(tmp, out):  # out now holds the new folder, tmp the old one (removed by the caller)
            return
        old = out.parent / f".{out.name}{_OLD}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(out: Path, marker: str) -> list[Path]:
    prefix = f".{out.name}{marker}"
    return sorted(p for p in out.parent.glob(f".{out.name}{marker}*") if p.name.startswith(prefix))


def _clean_stale(out: Path) -> None:
    for p in _siblings(out, _TMP):
        try:
            pid = int(p.name[len(f".{out.name}{_TMP}") :].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _recover(out: Path) -> None:
    """A step killed between the two renames of the fallback swap left ``out`` missing and the old
    complete folder aside: put it back."""
    if out.exists() or not out.parent.is_dir():
        return
    old = [p for p in _siblings(out, _OLD) if (p / MANIFEST).exists()]
    if old:
        os.rename(old[-1], out)


# -- row accounting ------------------------------------------------------------------------------------
def account_rows(ids_in, reasons_in, train, dropped) -> dict:
    """Check that no row was lost, duplicated or let through unusable; return the counts.

    Args:
        ids_in, reasons_in: ``id`` and ``reason`` of every input row.
        train, dropped: the two splits (``datasets.Dataset``) with ``id`` and ``reason`` columns.

    Returns:
        ``{"in", "train", "train_rows", "dropped", "invalid"}``: input rows, distinct input rows in
        ``train`` (``train_rows`` counts resampled copies), rows in ``dropped``, ``invalid:`` rows.

    Raises:
        RowAccountingError: naming the ids that break ``rows in = train + dropped`` (each id once) or an
        ``invalid:`` row that is in ``train`` or lost its reason.
    """
    ids_in = [str(i) for i in ids_in]
    reasons_in = [r or "" for r in reasons_in]
    t_ids = [str(i) for i in train[C.ID]] if len(train) else []
    d_ids = [str(i) for i in dropped[C.ID]] if len(dropped) else []
    d_reasons = [r or "" for r in dropped[C.REASON]] if len(dropped) else []
    t_reasons = [r or "" for r in train[C.REASON]] if len(train) and C.REASON in train.column_names else []
    problems = []
    bad_train = sorted({i for i, r in zip(t_ids, t_reasons) if r.startswith(C.INVALID_PREFIX)})
    if bad_train:
        problems.append(f"unusable (invalid:) rows in train: ids {bad_train[:10]}")
    unique_in = len(set(ids_in)) == len(ids_in)
    n_invalid = sum(r.startswith(C.INVALID_PREFIX) for r in reasons_in)
    if unique_in:
        t_set, d_count = set(t_ids), Counter(d_ids)
        twice = sorted(i for i, n in d_count.items() if n > 1) + sorted(t_set & set(d_count))
        lost = sorted(set(ids_in) - t_set - set(d_count))
        extra = sorted((t_set | set(d_count)) - set(ids_in))
        if twice:
            problems.append(f"ids in the output more than once: {twice[:10]}")
        if lost:
            problems.append(f"ids lost (in neither train nor dropped): {lost[:10]}")
        if extra:
            problems.append(f"ids not in the input: {extra[:10]}")
        n_train = len(t_set)
        d_reason = dict(zip(d_ids, d_reasons))
        wrong = sorted(
            i for i, r in zip(ids_in, reasons_in) if r.startswith(C.INVALID_PREFIX) and d_reason.get(i, r) != r
        )
        if wrong:
            problems.append(f"invalid rows whose reason changed in dropped: {wrong[:10]}")
    else:  # ids repeat in the input: count rows, and the invalid (id, reason) pairs
        n_train = len(ids_in) - len(d_ids)
        if n_train < 0 or (len(t_ids) < n_train):
            problems.append(f"{len(ids_in)} rows in, {len(t_ids)} in train and {len(d_ids)} dropped")
        missing = Counter((i, r) for i, r in zip(ids_in, reasons_in) if r.startswith(C.INVALID_PREFIX)) - Counter(
            zip(d_ids, d_reasons)
        )
        if missing:
            problems.append(f"invalid rows not in dropped with their reason: {sorted(missing)[:10]}")
    if problems:
        raise RowAccountingError(
            "Row accounting failed (rows in = train + dropped, each id once, every invalid "
            "row dropped with its reason): " + "; ".join(problems) + ". This is a bug in "
            "curate; please report it with the command you ran."
        )
    return {
        "in": len(ids_in),
        "train": n_train,
        "train_rows": len(t_ids),
        "dropped": len(d_ids),
        "invalid": n_invalid,
        "ids_unique": unique_in,
    }


# -- audit folders -------------------------------------------------------------------------------------
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

        return load_from_disk(str(self.path / ANNOTATED))

    def files(self) -> dict[str, Path]:
        """Table files to copy when publishing (name → path); the run record as ``audit_summary.json``."""
        out = {
            n: self.path / n
            for n in (AUDIT_TABLE, AUDIT_MEMBERS, AUDIT_BY, FEATURE_LABELS, AUDIT_FINDINGS, AUDIT_AUC_BY)
            if (self.path / n).exists()
        }
        out[AUDIT_SUMMARY] = self.path / SUMMARY
        return out


def save_audit(
    out: str | Path,
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
) -> Path:
    """Write an audit folder to ``out`` in one step (see :func:`atomic_folder`). Returns ``out``."""
    out = Path(out)
    with atomic_folder(out, kind="audit") as tmp:
        write_audit_files(
            tmp,
            annotated=annotated,
            results=results,
            summary=summary,
            members=members,
            by=by,
            labels=labels,
            findings=findings,
            auc_by=auc_by,
            source=source,
            made_from=made_from,
        )
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
    results.to_parquet(tmp / AUDIT_TABLE, index=False)
    if members is not None and len(members):
        members.to_parquet(tmp / AUDIT_MEMBERS, index=False)
    if by is not None:
        by.to_parquet(tmp / AUDIT_BY, index=False)
    if auc_by is not None:
        auc_by.to_parquet(tmp / AUDIT_AUC_BY, index=False)
    if findings is not None:
        _to_parquet_safe(findings, tmp / AUDIT_FINDINGS)
    if labels is not None:
        _to_parquet_safe(labels, tmp / FEATURE_LABELS)
    annotated.save_to_disk(str(tmp / ANNOTATED))
    (tmp / SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
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

    summary = json.loads((p / SUMMARY).read_text(encoding="utf-8"))
    return AuditFolder(
        p,
        f.manifest,
        results=pd.read_parquet(p / AUDIT_TABLE),
        summary=summary,
        members=opt(AUDIT_MEMBERS),
        by=opt(AUDIT_BY),
        labels=opt(FEATURE_LABELS),
        findings=opt(AUDIT_FINDINGS),
        auc_by=opt(AUDIT_AUC_BY),
    )


def _to_parquet_safe(df, path) -> None:
    """Write ``df`` to parquet, storing nested mixed-type values (e.g. ``[["great question", 2.1]]``) as JSON."""
    import pandas as pd

    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v, default=float) if isinstance(v, (list, tuple, dict)) else v)
    pd.DataFrame(df).to_parquet(path, index=False)


# -- curated folders -----------------------------------------------------------------------------------
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
        """Every input row once, as the next step's input: distinct ``train`` rows, then ``dropped``
        (with its reasons, so they stay dropped)."""
        from datasets import concatenate_datasets

        train, dropped = self.dataset[C.TRAIN_SPLIT], self.dataset[C.DROPPED_SPLIT]
        seen, keep = set(), []
        for j, i in enumerate(train[C.ID]):
            if i not in seen:
                seen.add(i)
                keep.append(j)
        parts = [train.select(keep)] + ([dropped.cast(train.features)] if len(dropped) else [])
        return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


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
    extra_files: dict[str, bytes] | None = None,
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
        input_rows: the dataset the splits were made from (``id``, ``reason``), for :func:`account_rows`;
            default: the splits themselves.
        source: what the rows came from; made_from: the manifest of the input folder.
        before_write: ``fn(tmp)`` called before the manifest is written (extra files, e.g. directions).

    Returns:
        The manifest.
    """
    train, dropped = dataset[C.TRAIN_SPLIT], dataset[C.DROPPED_SPLIT]
    if input_rows is None:  # the splits are the whole input: distinct train rows, then dropped
        first = {}
        for i, r in zip(train[C.ID], train[C.REASON] if C.REASON in train.column_names else [""] * len(train)):
            first.setdefault(i, r)
        ids = list(first) + list(dropped[C.ID])
        reasons = list(first.values()) + list(dropped[C.REASON])
    else:
        ids = input_rows[C.ID]
        reasons = input_rows[C.REASON] if C.REASON in input_rows.column_names else [""] * len(input_rows)
    rows = account_rows(ids, reasons, train, dropped)
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


# -- published folders ---------------------------------------------------------------------------------
@dataclass
class PublishedFolder(Folder):
    """A published folder: ``data/<split>-*.parquet``, ``audit/`` tables, the card."""

    def split_files(self) -> dict[str, list[Path]]:
        return {s: sorted((self.path / DATA_DIR).glob(f"{s}-*.parquet")) for s in (C.TRAIN_SPLIT, C.DROPPED_SPLIT)}

    def audit_file(self, name: str) -> Path | None:
        p = self.path / PUBLISHED_AUDIT_DIR / name
        return p if p.exists() else None


def load_published(path: str | Path) -> PublishedFolder:
    """Open a published folder (refuses anything else, see :func:`open_folder`)."""
    f = open_folder(path, kind="published")
    return PublishedFolder(f.path, f.manifest)


# -- inputs --------------------------------------------------------------------------------------------
def resolve_input(path) -> tuple[str, Any]:
    """What a step was given: ``("audit", AuditFolder)``, ``("curated", CuratedFolder)`` or ``("raw", path)``.

    An ``annotated/`` folder inside an audit folder (or a curated folder's ``source_audit/``) is its audit
    folder. A folder that looks like curate's output but has no manifest is refused (it is partial, mixed
    or from an older version); published and learning folders are refused with the command to use.
    """
    if not isinstance(path, (str, os.PathLike)):
        return "raw", path
    p = Path(path)
    if not p.is_dir():
        return "raw", path
    _recover(p)
    if not (p / MANIFEST).exists() and p.name == ANNOTATED and (p.parent / MANIFEST).exists():
        p = p.parent
    if (p / MANIFEST).exists():
        kind = read_manifest(p)["kind"]
        if kind == "audit":
            return "audit", load_audit(p)
        if kind == "curated":
            return "curated", load_curated(p)
        raise FolderError(
            f"{str(p)!r} is a {kind} folder (made by `{KINDS[kind]}`); this step reads pairs: pass "
            "the data file, an audit folder or a curated folder."
        )
    if _guess_kind(p) is not None or (p.name == ANNOTATED and (p.parent / AUDIT_TABLE).exists()):
        raise FolderError(_no_manifest(p if p.name != ANNOTATED else p.parent))
    return "raw", path


def save_splits(dd, folder: str | Path) -> Path:
    """``dd.save_to_disk(folder)`` that also works for an empty split (datasets 5.2 writes no shard for an
    empty split and then cannot load it back); at most 500 MB per shard otherwise."""
    num_shards = {k: max(1, int(v.data.nbytes // 500_000_000) + 1) for k, v in dd.items()}
    dd.save_to_disk(str(folder), num_shards=num_shards)
    return Path(folder)
