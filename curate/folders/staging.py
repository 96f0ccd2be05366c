"""Build a folder in a hidden sibling and swap it into place: the staging folder, the swap (an atomic exchange
on Linux, two renames elsewhere), and the clean-up of what a killed step left behind (stale temporary folders,
an old folder set aside between the two renames).

The one staging step of every atomic write: :func:`curate.folders.atomic_folder` (output folders) and
:func:`curate.cache.atomic_dir` (cache entries).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from .layout import MANIFEST

_TMP, _OLD = ".tmp-", ".old-"

#: the output folders this process has put in place (:func:`swap_into_place`), in order: what an interrupted
#: command reports it wrote
WRITTEN: list[Path] = []


@contextlib.contextmanager
def staging_folder(final: str | Path) -> Iterator[Path]:
    """A hidden sibling of ``final`` to build it in (``.<name>.tmp-<pid>-<random>``), removed on exit whatever
    happens; the caller moves it into place before leaving the block. The one staging step of every atomic
    write: :func:`~curate.folders.atomic_folder` (output folders) and :func:`curate.cache.atomic_dir` (cache
    entries)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}{_TMP}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def swap_into_place(tmp: Path, out: Path) -> None:
    """Put the built folder ``tmp`` in place of ``out`` (the old one, if any, ends up in ``tmp`` or aside)."""
    if out.exists():
        if not _exchange(tmp, out):  # else out now holds the new folder, tmp the old one (removed by the caller)
            old = out.parent / f".{out.name}{_OLD}{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)
    WRITTEN.append(out)


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


def clean_stale(out: Path) -> None:
    """Remove the temporary siblings of ``out`` left by processes that are no longer running."""
    for p in _siblings(out, _TMP):
        try:
            pid = int(p.name[len(f".{out.name}{_TMP}") :].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def recover(out: Path) -> None:
    """A step killed between the two renames of the fallback swap left ``out`` missing and the old
    complete folder aside: put it back."""
    if out.exists() or not out.parent.is_dir():
        return
    old = [p for p in _siblings(out, _OLD) if (p / MANIFEST).exists()]
    if old:
        os.rename(old[-1], out)
