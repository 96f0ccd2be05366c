"""What a folder held when curate wrote it, and the check that it still holds it.

Every folder curate writes (output folders through their manifest, cache entries through their record) lists
each of its files with its size and SHA-256 (:func:`record_files`); every reader compares the files against that
list (:func:`check_files`) before it uses them. A file cut short (a copy that stopped, a full disk, an Arrow file
truncated at a record-batch boundary, which ``datasets`` would read as fewer rows without a word), changed or
missing is found before a single row is read.

Example:

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("hello")
    >>> rec = record_files(d)
    >>> check_files(d, rec)
    []
    >>> _ = (d / "a.txt").write_text("hell")
    >>> check_files(d, rec)
    ['a.txt holds 4 bytes, 5 were written']
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def record_files(folder: str | Path, *, exclude: tuple[str, ...] = ()) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` for every file under ``folder`` (sub-folders included), except the
    top-level names in ``exclude`` (the record's own file)."""
    folder = Path(folder)
    out = {}
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).as_posix()
        if f.is_file() and rel not in exclude:
            out[rel] = {"size": f.stat().st_size, "sha256": file_sha256(f)}
    return out


def check_files(folder: str | Path, recorded: dict[str, dict]) -> list[str]:
    """The differences between the files under ``folder`` and what :func:`record_files` recorded (empty when
    every recorded file is there, of the recorded size and content). Files added later are not checked."""
    folder = Path(folder)
    problems = []
    for rel, want in recorded.items():
        f = folder / rel
        if not f.is_file():
            problems.append(f"{rel} is missing")
            continue
        size = f.stat().st_size
        if size != want.get("size"):
            problems.append(f"{rel} holds {size} bytes, {want.get('size')} were written")
        elif file_sha256(f) != want.get("sha256"):
            problems.append(f"{rel} differs from what was written (same size, other content)")
    return problems
