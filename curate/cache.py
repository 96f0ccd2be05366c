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
]

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
    from .folders import staging_folder

    final = Path(final)
    with staging_folder(final) as tmp:
        yield tmp
        if not final.exists():
            with contextlib.suppress(OSError):  # another process wrote it first
                tmp.rename(final)
