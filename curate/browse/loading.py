"""Open what the app shows: an audit, curated or published folder (:mod:`curate.folders`) or a Hub dataset id.

Only the dataset's *name* leaves this module for display (:func:`dataset_name`): the folder's path never
reaches the page, its title or a downloaded file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _columns as C
from ..errors import InputNotFoundError

DEMO_DIRS = ("outputs/demo/published", "outputs/demo/audit")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_GENERIC = {"audit", "curated", "published", "data", "annotated", "source_audit", "out", "output", "outputs"}


def default_source() -> str:
    """The demo output the app opens without an argument (``outputs/demo/published``, else ``.../audit``)."""
    for d in DEMO_DIRS:
        if Path(d).exists():
            return d
    raise InputNotFoundError(
        f"No demo output found ({' or '.join(DEMO_DIRS)}). Run `curate demo` first, or pass a folder "
        "written by `curate audit DATA --out DIR` / `curate publish`, or a Hub dataset id."
    )


def dataset_name(source: str, manifest: dict | None = None) -> str:
    """A display name for a dataset: the Hub id, the card's ``repo_id``, else the last folder names.

    Never an absolute path: ``/home/me/runs/demo/published`` is shown as ``demo/published``.

    Example:

        >>> dataset_name("/home/me/runs/demo/published")
        'demo/published'
        >>> dataset_name("owner/name")
        'owner/name'
    """
    source = str(source)
    if _HUB_ID.match(source) and not Path(source).exists():
        return source
    if manifest and manifest.get("repo_id"):
        return str(manifest["repo_id"])
    parts = [p for p in Path(source).parts if p not in ("/", "\\", ".", "..")]
    if not parts:
        return "dataset"
    name = parts[-1]
    if name.lower() in _GENERIC and len(parts) > 1:
        name = f"{parts[-2]}/{name}"
    return name


def load_app_data(source: str | os.PathLike | None = None):
    """Load what the app shows from an audit, curated or published folder, or a Hub dataset id.

    Args:
        source: a folder written by ``curate audit DATA --out DIR``, ``curate apply`` or ``curate publish``,
            or a Hub dataset id (``owner/name``, downloaded with ``huggingface_hub``). ``None`` opens the demo.

    Raises:
        FileNotFoundError: the folder does not exist, or the Hub download failed (offline, unknown id).
        curate.folders.FolderError: the folder is not one the app can browse (the message says which is).
        curate.errors.RecipeError: the folder's ``recipe.yaml`` is refused (an alias bomb, deep nesting, a
            duplicate key or invalid YAML: the app never expands what it cannot bound).
    """
    source = default_source() if source is None else str(source)
    path = Path(source)
    if path.exists():
        return _load_folder(path, source)
    if _HUB_ID.match(source):
        return _load_folder(_download(source), source)
    raise InputNotFoundError(
        f"{source!r} is neither an existing folder nor a Hub dataset id (owner/name). Pass a folder written by "
        "`curate audit DATA --out DIR`, `curate apply` or `curate publish`, or a Hub id."
    )


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset"))
    except Exception as err:  # noqa: BLE001 - offline, unknown repo, no permission: all end the same way for the user
        raise InputNotFoundError(
            f"Could not download the dataset {repo_id!r} from the Hugging Face Hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no details'}). If you are offline (HF_HUB_OFFLINE=1) "
            "or the repository is private, pass a local folder written by `curate publish` or "
            "`curate audit DATA --out DIR` instead."
        ) from None


def _load_folder(path: Path, source: str):
    """Open any folder curate wrote; what it lacks is said in ``record["missing"]``."""
    from .. import folders as F
    from .queries import AppData

    manifest = F.read_manifest(path)
    kind = manifest["kind"]
    name = dataset_name(source, manifest)
    # the recipe is checked before any table is read: a hostile one is refused at once
    recipe_file = {"curated": F.RECIPE, "published": f"{F.PUBLISHED_AUDIT_DIR}/{F.RECIPE}"}.get(kind)
    if recipe_file and (path / recipe_file).is_file():
        _safe_recipe((path / recipe_file).read_text(encoding="utf-8"), f"{name}/{recipe_file}")
    if kind == "audit":
        af = F.load_audit(path)
        return AppData(
            source=name,
            kind="audit folder",
            audit=af.results,
            table=af.annotated().with_format("arrow")[:],
            record=dict(af.summary),
            labels=af.labels,
            members=af.members,
            by_audit=af.by,
        )
    if kind == "curated":
        cf = F.load_curated(path)
        table = _concat([cf.dataset[s].with_format("arrow")[:] for s in (C.TRAIN_SPLIT, C.DROPPED_SPLIT)])
        af = cf.audit
        return _with_audit(
            name,
            "curated folder",
            table,
            cf.report,
            cf.recipe_text,
            af.results if af else None,
            dict(af.summary) if af else {},
            af.labels if af else None,
            af.members if af else None,
            af.by if af else None,
            _learning(path),
            (lambda: af.annotated().with_format("arrow")[:]) if af else None,
        )
    if kind == "published":
        return _load_published_folder(F.load_published(path), name, _learning(path))
    raise F.FolderError(
        f"{name!r} is a {kind} folder: it has no pairs to browse. Open the folder it was made "
        "from, or an audit, curated or published folder."
    )


def _concat(parts):
    import pyarrow as pa

    parts = [t for t in parts if t.num_rows] or parts[:1]
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def _learning(path: Path):
    """What a model learned, when the folder holds a learning check (``learning/`` or a learning sibling)."""
    from ..learning.card import app_view, find_learning_dir

    found = app_view(path)
    if found is None and (path / "curate.json").exists():
        lf = find_learning_dir(path) if (path / "dataset_dict.json").exists() else None
        found = app_view(lf) if lf is not None else None
    return found


def _with_audit(
    name,
    kind,
    table,
    apply_record,
    recipe_text,
    audit,
    summary,
    labels,
    members,
    by_audit=None,
    learning=None,
    source_loader=None,
):
    from ..audit import RESULT_COLUMNS
    from .queries import AppData

    record = dict(summary or {})
    if audit is None:
        record["missing"] = [
            (
                "the audit of the source data (made by `curate audit`, or saved by `curate apply` "
                "from this version on): the concept views are empty"
            )
        ]
        audit = pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})
    return AppData(
        source=name,
        kind=kind,
        audit=audit,
        table=table,
        record=record,
        labels=labels,
        recipe_text=recipe_text,
        members=members,
        applied=dict(apply_record or {}),
        by_audit=by_audit,
        learning=learning,
        source_loader=source_loader,
    )


def _safe_recipe(text: str | None, where: str) -> str | None:
    """The folder's recipe YAML once it parses within curate's bounds (:func:`curate._yaml.load_yaml`): the
    editor parses it again later, so an alias bomb is refused here, before anything expands it or any table is
    read."""
    from .._yaml import load_yaml
    from ..errors import RecipeError

    if text is not None:
        try:
            load_yaml(text)
        except RecipeError as err:
            raise RecipeError(
                f"{where}: {err} The app does not open a folder whose recipe it cannot read safely; fix or remove "
                "that file (or re-run `curate apply` to write it again)."
            ) from None
    return text


def _read_json(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _load_published_folder(pf, name: str, learning=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .. import folders as F

    parts = []
    for split, files in pf.split_files().items():
        for f in files:
            t = pq.read_table(f)
            if C.KEEP not in t.column_names:
                t = t.append_column(C.KEEP, pa.array(np.full(t.num_rows, split == C.TRAIN_SPLIT)))
            parts.append(t)
    if not parts:
        raise F.FolderError(
            f"{name!r}: data/ holds no {C.TRAIN_SPLIT}-*.parquet or {C.DROPPED_SPLIT}-*.parquet "
            f"files; re-run `{F.KINDS['published']}`."
        )

    def opt(file):
        f = pf.audit_file(file)
        return pd.read_parquet(f) if f is not None else None

    recipe = pf.audit_file(F.RECIPE)
    return _with_audit(
        name,
        "published folder",
        _concat(parts),
        _read_json(pf.audit_file(F.APPLY_RECORD)),
        recipe.read_text(encoding="utf-8") if recipe else None,
        opt(F.AUDIT_TABLE),
        _read_json(pf.audit_file(F.AUDIT_SUMMARY)),
        opt(F.FEATURE_LABELS),
        opt(F.AUDIT_MEMBERS),
        opt(F.AUDIT_BY),
        learning,
    )
