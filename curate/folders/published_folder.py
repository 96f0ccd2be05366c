"""Published folders (``curate publish CURATED --local-dir DIR``): the card ``README.md``, the splits as
``data/<split>-*.parquet``, the ``audit/`` tables and ``images/``; :func:`load_published` opens one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import _columns as C
from .layout import DATA_DIR, PUBLISHED_AUDIT_DIR
from .manifest import Folder, open_folder


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
