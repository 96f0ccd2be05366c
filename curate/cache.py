"""The user cache: fitted SAEs, annotated columns and audits, keyed by everything they depend on.

Keys hash the data's content, the concept sources, model, layer, SAE and fit settings, audit settings, and
curate's own code, so a re-run with the same inputs (another ``--out``, ``--top``; another ``--by`` reuses the
annotations) reads the results back instead of re-running the model, and any change of inputs or code misses.

The folder is ``$CURATE_CACHE`` when set, else ``$XDG_CACHE_HOME/curate`` or ``~/.cache/curate``; the CLI's
``--cache-dir`` overrides it and ``--no-cache`` turns it off.

Example:

    >>> cache_key(a=1, b="x") == cache_key(b="x", a=1)
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

__all__ = ["default_cache_dir", "cache_key", "data_fingerprint", "code_version", "atomic_dir"]

_CODE_VERSION: str | None = None


def default_cache_dir() -> Path:
    """``$CURATE_CACHE``, else ``$XDG_CACHE_HOME/curate``, else ``~/.cache/curate``."""
    if os.environ.get("CURATE_CACHE"):
        return Path(os.environ["CURATE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "curate"


def cache_key(**parts) -> str:
    """A short stable hash of keyword parts (JSON, sorted keys; objects by their ``str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def data_fingerprint(dataset) -> str:
    """Hash of a dataset's content (its Arrow table, every column), independent of where it was read from."""
    import pyarrow as pa

    table = dataset.with_format("arrow")[:] if hasattr(dataset, "with_format") else pa.Table.from_pandas(dataset)
    table = table.combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(memoryview(sink.getvalue())).hexdigest()[:24]


def code_version() -> str:
    """Hash of curate's Python sources: any code change gives new cache keys."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _CODE_VERSION = h.hexdigest()[:16]
    return _CODE_VERSION


def path_identity(value) -> str:
    """``value`` as a string; for a local path, also the names, sizes and mtimes of its files."""
    p = Path(str(value)) if value is not None else None
    if p is None or not p.exists():
        return str(value)
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
    return str(value) + "|" + ";".join(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files)


class atomic_dir:
    """Write a cache entry into a temporary folder and move it into place only when complete.

    Example:

        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with atomic_dir(root / "entry") as tmp:
        ...     _ = (tmp / "x.txt").write_text("done")
        >>> (root / "entry" / "x.txt").read_text()
        'done'
    """

    def __init__(self, final: Path):
        self.final = Path(final)

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.parent / f".tmp-{self.final.name}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or self.final.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        try:
            self.tmp.rename(self.final)
        except OSError:  # another process wrote it first
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False
