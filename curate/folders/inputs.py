"""What a command accepts as input: :func:`resolve_input` tells an audit folder, a curated folder and raw data
apart, and refuses curate's other folders (and partial ones) with the command to use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .audit_folder import load_audit
from .curated_folder import load_curated
from .layout import ANNOTATED, AUDIT_TABLE, KINDS, MANIFEST, FolderError
from .manifest import guess_kind, no_manifest_message, read_manifest
from .staging import recover


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
    recover(p)
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
    if guess_kind(p) is not None or (p.name == ANNOTATED and (p.parent / AUDIT_TABLE).exists()):
        raise FolderError(no_manifest_message(p if p.name != ANNOTATED else p.parent))
    return "raw", path
