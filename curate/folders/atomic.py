"""Atomic writes of output folders: :func:`atomic_folder` builds a folder in a hidden sibling and swaps it in
(a step killed at any point leaves the old complete folder, or nothing new); :func:`check_target` refuses an
output path a step may not replace, so a typo in ``--out`` never deletes someone's files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .layout import KINDS, MANIFEST, FolderError
from .manifest import read_manifest
from .staging import clean_stale, recover, staging_folder, swap_into_place


@contextlib.contextmanager
def atomic_folder(out: str | Path, *, kind: str) -> Iterator[Path]:
    """Build a folder in a hidden sibling temporary folder, then put it in place of ``out`` in one step.

    ``out`` may not exist, be empty, or hold a folder curate wrote of the same ``kind`` (it is replaced);
    anything else is refused, so a typo in ``--out`` never deletes someone's files. The body must call
    :func:`~curate.folders.write_manifest` on the temporary folder. On any error (or a kill) ``out`` is left as it was;
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
        swap_into_place(tmp, out)


def check_target(out: str | Path, kind: str) -> Path:
    """Refuse an output folder a ``kind`` step may not replace (see :func:`atomic_folder`); call it before
    long work so the refusal comes first. Returns ``out`` as a Path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    clean_stale(out)
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
