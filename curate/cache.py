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

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "default_cache_dir",
    "cache_key",
    "data_fingerprint",
    "code_version",
    "code_hash",
    "module_hash",
    "atomic_dir",
    "checked_map",
    "read_entry",
    "write_entry",
]

_CODE_VERSION: str | None = None
logger = logging.getLogger("curate")


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
    """Hash of a dataset's content (its Arrow table, every column, and its features), independent of where it
    was read from."""
    import pyarrow as pa

    table = dataset.with_format("arrow")[:] if hasattr(dataset, "with_format") else pa.Table.from_pandas(dataset)
    # the schema's metadata holds datasets' fingerprint, which hashes where the file was read from: keep only
    # the features, so a copy of a file under another name or folder has the same fingerprint
    meta = json.loads((table.schema.metadata or {}).get(b"huggingface", b"{}") or b"{}")
    features = (meta.get("info") or {}).get("features")
    table = table.combine_chunks().replace_schema_metadata({"features": json.dumps(features, sort_keys=True)})
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


def code_hash(fn) -> str:
    """A hash of what a callable computes: its code (bytecode, constants, nested functions), the values of
    the constants and the code of the functions it reads from its globals or closure, recursively.

    ``datasets``' :class:`~datasets.fingerprint.Hasher` pickles a function defined in an importable module by
    reference (module and name), so an edited scorer would keep its old hash; this follows the code itself.
    Editing a function (or a helper it calls) changes the hash; the same code gives the same hash in every
    process.

    Example:

        >>> def f(texts):
        ...     return [len(t) for t in texts]
        >>> def g(texts):
        ...     return [len(t) * 2 for t in texts]
        >>> code_hash(f) == code_hash(f), code_hash(f) == code_hash(g)
        (True, False)
    """
    h = hashlib.sha256()
    _hash_callable(fn, h, set())
    return h.hexdigest()[:16]


def module_hash(*modules) -> str:
    """A hash of the source files of ``modules`` (the built-in detectors' and annotators' code)."""
    h = hashlib.sha256()
    for m in modules:
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()[:16]


def _hash_callable(fn, h, seen: set) -> None:
    import functools
    import types

    if id(fn) in seen:
        return
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        h.update(b"partial")
        _hash_callable(fn.func, h, seen)
        h.update(repr((fn.args, sorted(fn.keywords.items()))).encode())
        return
    if isinstance(fn, (types.MethodType,)):
        _hash_callable(fn.__func__, h, seen)
        return
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: its class's __call__, and its state when it can be pickled
        call = type(fn).__dict__.get("__call__")
        if call is not None and hasattr(call, "__code__"):
            _hash_callable(call, h, seen)
        from datasets.fingerprint import Hasher

        try:
            h.update(Hasher.hash(fn).encode())
        except Exception:  # noqa: BLE001 - unpicklable state: the code alone identifies it
            h.update(type(fn).__qualname__.encode())
        return
    _hash_code(code, h)
    scope = dict(getattr(fn, "__globals__", {}))
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            scope[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    for name in sorted(_names(code) | set(code.co_freevars)):
        if name not in scope:
            continue
        value = scope[name]
        if isinstance(value, (types.FunctionType, functools.partial)):
            h.update(name.encode())
            _hash_callable(value, h, seen)
        elif isinstance(value, (str, bytes, int, float, bool, tuple, frozenset)) or value is None:
            h.update(f"{name}={value!r}".encode())
        elif hasattr(value, "pattern") and hasattr(value, "flags"):  # a compiled regular expression
            h.update(f"{name}=re({value.pattern!r},{value.flags})".encode())


def _names(code) -> set:
    out = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            out |= _names(const)
    return out


def _hash_code(code, h) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _hash_code(const, h)
        else:
            h.update(repr(const).encode())


def path_identity(value) -> str:
    """``value`` as a string; for a local path, also the names, sizes and mtimes of its files."""
    p = Path(str(value)) if value is not None else None
    if p is None or not p.exists():
        return str(value)
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
    return str(value) + "|" + ";".join(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files)


ENTRY_RECORD = "entry.json"


def checked_map(dataset, function, **kwargs):
    """``dataset.map(function, **kwargs)`` for a map that keeps every row, checked: ``datasets`` reads a cache
    file cut at a record-batch boundary back as fewer rows without a word, so a result of another length is
    logged and computed again without the cache file.

    Example:

        >>> import datasets
        >>> ds = datasets.Dataset.from_dict({"x": [1, 2, 3]})
        >>> list(checked_map(ds, lambda b: {"y": [v * 2 for v in b["x"]]}, batched=True)["y"])
        [2, 4, 6]
    """
    out = dataset.map(function, **kwargs)
    if len(out) == len(dataset):
        return out
    files = [f.get("filename") for f in getattr(out, "cache_files", [])]
    logger.warning(
        "The datasets cache file %s holds %d of %d rows (cut short): computing it again.", files, len(out), len(dataset)
    )
    out = dataset.map(function, **{**kwargs, "load_from_cache_file": False})
    if len(out) != len(dataset):  # not a cache problem: a map that changes the row count is a bug
        raise RuntimeError(f"internal: a map returned {len(out)} rows for {len(dataset)}; please report it.")
    return out


def read_entry(path: str | Path) -> tuple[dict | None, str | None]:
    """Open the cache entry ``path`` written by :func:`write_entry`: ``(record, None)`` when it is complete and
    every file has the size and SHA-256 it was written with; ``(None, None)`` when there is none; ``(None,
    problem)`` when it is damaged — the entry is then removed (and the problem logged), so the caller recomputes
    and writes it again. The cache is never trusted over the data.

    Example:

        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> write_entry(root / "e", lambda tmp: (tmp / "x.txt").write_text("done") and {"n": 1})
        >>> read_entry(root / "e")[0]["n"]
        1
        >>> _ = (root / "e" / "x.txt").write_text("do")
        >>> read_entry(root / "e")
        (None, 'x.txt holds 2 bytes, 4 were written')
        >>> (root / "e").exists()
        False
    """
    import shutil

    from .folders.checksums import check_files

    path = Path(path)
    if not path.exists():
        return None, None
    try:
        record = json.loads((path / ENTRY_RECORD).read_text(encoding="utf-8"))
        problems = check_files(path, record["checksums"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        problems = [f"its record {ENTRY_RECORD} is missing or unreadable ({type(err).__name__})"]
    if not problems:
        return record, None
    problem = "; ".join(problems[:3])
    logger.warning("The cache entry %s is damaged (%s): removed, computing it again.", path, problem)
    shutil.rmtree(path, ignore_errors=True)
    return None, problem


def write_entry(path: str | Path, write) -> str | None:
    """Write the cache entry ``path``: ``write(tmp)`` writes its files into a staging folder and may return a
    dict to keep in the entry's record; the record (with every file's size and SHA-256) is written last and the
    folder moved into place in one step (:func:`atomic_dir`). The cache is optional: a cache that cannot be
    written (disk full, read-only) is logged and the reason returned instead of raised; None when written.
    """
    from .folders.checksums import record_files

    try:
        with atomic_dir(path) as tmp:
            extra = write(tmp)
            record = {**(extra if isinstance(extra, dict) else {}), "checksums": record_files(tmp)}
            (tmp / ENTRY_RECORD).write_text(json.dumps(record, default=str), encoding="utf-8")
    except OSError as err:
        reason = f"{type(err).__name__}: {err}"
        logger.warning("Could not write the cache entry %s (%s); continuing without it.", path, reason)
        return reason
    return None


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Write a cache entry into a staging folder (:func:`curate.folders.staging_folder`) and move it into place
    only when complete; the first writer wins (an entry is never replaced: its key says what it holds).

    Example:

        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with atomic_dir(root / "entry") as tmp:
        ...     _ = (tmp / "x.txt").write_text("done")
        >>> (root / "entry" / "x.txt").read_text()
        'done'
    """
    from .folders.staging import clean_stale, staging_folder

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)  # what an interrupted write of this entry left behind
    with staging_folder(final) as tmp:
        yield tmp
        if not final.exists():
            with contextlib.suppress(OSError):  # another process wrote it first
                tmp.rename(final)
