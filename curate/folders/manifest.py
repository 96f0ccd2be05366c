"""The manifest ``curate.json`` of every folder curate writes, and the checked opening of a folder.

:func:`write_manifest` writes it (last, once every other file is written); :func:`read_manifest` reads it;
:func:`open_folder` refuses a folder without one, of another kind, or whose files do not match it, with an
error naming the command that makes the right folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .. import _columns as C
from .checksums import check_files, record_files
from .layout import (
    ANNOTATED,
    APPLY_RECORD,
    AUDIT_TABLE,
    CARD,
    DATA_DIR,
    DATASET_DICT,
    FORMAT,
    KINDS,
    MANIFEST,
    REQUIRED,
    FolderError,
)
from .staging import recover


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
    from .._version import __version__

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
        "checksums": record_files(folder, exclude=(MANIFEST,)),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The manifest of a folder curate wrote (with ``path`` added). Raises :class:`FolderError` if none."""
    path = Path(path)
    recover(path)
    file = path / MANIFEST
    if not path.exists():
        raise FolderError(f"{str(path)!r} does not exist.")
    if not path.is_dir():
        raise FolderError(f"{str(path)!r} is a file, not a folder written by curate.")
    if not file.exists():
        raise FolderError(no_manifest_message(path))
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


def no_manifest_message(path: Path) -> str:
    """The refusal for a folder without a manifest: what it looks like, the command to re-run, its files."""
    found = sorted(p.name for p in path.iterdir())[:12]
    guess = guess_kind(path)
    what = (
        f"It looks like an incomplete or older {guess} folder; re-run `{KINDS[guess]}` to write it again."
        if guess
        else "Pass a folder written by one of: " + "; ".join(f"`{c}`" for c in KINDS.values()) + "."
    )
    return (
        f"{str(path)!r} has no {MANIFEST}, so curate did not write it (or a step writing it was killed). "
        f"{what} Files there: {found}."
    )


def guess_kind(path: Path) -> str | None:
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
    manifest, one of another kind than ``kind``, one whose required files are missing or whose manifest lists
    files that are gone (a mixed or partial folder), and one whose files differ from the sizes and hashes its
    manifest recorded (:func:`check_written`: a file cut short or changed after curate wrote it; ``datasets``
    would read an Arrow file cut at a record-batch boundary as fewer rows without a word).
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
    missing = [f for f in (*REQUIRED[manifest["kind"]], *manifest.get("files", ())) if not (path / f).exists()]
    if missing:
        raise FolderError(
            f"{str(path)!r} is an incomplete {manifest['kind']} folder: {missing} missing although "
            f"its {MANIFEST} lists them. Re-run `{KINDS[manifest['kind']]}` to write it again."
        )
    check_written(path, manifest)
    return Folder(path, manifest)


def check_written(path: Path, manifest: dict) -> None:
    """Refuse a folder whose files differ from what its manifest recorded (:mod:`curate.folders.checksums`)."""
    command = KINDS[manifest["kind"]]
    if manifest.get("format", 1) < FORMAT or "checksums" not in manifest:
        raise FolderError(
            f"{str(path)!r} was written by an older curate (folder format {manifest.get('format', 1)}, before "
            f"{FORMAT}) that recorded no checksums, so what it holds cannot be checked. Re-run `{command}` to "
            "write it again."
        )
    problems = check_files(path, manifest["checksums"])
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise FolderError(
            f"{str(path)!r} is damaged: {shown} (its {MANIFEST}, written {manifest.get('created')}, recorded "
            f"{len(manifest['checksums'])} files). It was cut short or changed after curate wrote it; re-run "
            f"`{command}` to write it again."
        )
