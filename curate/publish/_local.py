"""Nothing local leaves the machine: what :func:`curate.publish.publish` writes names the data by its Hub id or
file name, never by a local path (the author's home, folders, cache directory).

:func:`public_name` turns one value into what may be published; :class:`Scrubber` applies it to the records
publish reads (the recipe, the apply record, the audit summary, the manifest it made from) and, last, to every
text and JSON file in the folder it wrote — the data rows themselves are never touched.

Example:

    >>> public_name("/home/me/runs/pairs.jsonl"), public_name("owner/name"), public_name("~/d/x.csv")
    ('pairs.jsonl', 'owner/name', 'x.csv')
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

#: suffixes of data files: a relative ``data/pairs.jsonl`` is a local file, not the Hub id ``data/pairs.jsonl``
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".arrow", ".txt", ".gz", ".zst", ".yaml", ".yml")
_TEXT_SUFFIXES = {".md", ".yaml", ".yml", ".txt", ".csv", ".html"}
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


def looks_local(value: str) -> bool:
    """Whether ``value`` (a whole string) is a local path: absolute, home-relative, ``./``-relative, or a relative
    path that exists here or names a data file. Hub ids (``owner/name``, ``org/repo/sub/id``) and URLs are not."""
    s = value.strip()
    if not s or "\n" in s or "://" in s or len(s) > 4096:
        return False
    if s.startswith(("/", "~", "./", "../", ".\\", "..\\")) or _WINDOWS_ABS.match(s) or s.startswith("\\\\"):
        return len(s) > 1
    if "/" not in s and "\\" not in s:
        return False
    try:
        exists = Path(s).exists()
    except OSError:
        exists = False
    return exists or s.lower().endswith(_DATA_SUFFIXES)


def public_name(value: str) -> str:
    """A local path becomes its file (or folder) name; anything else is kept as it is."""
    if not isinstance(value, str) or not looks_local(value):
        return value
    path = PureWindowsPath(value) if ("\\" in value and "/" not in value) else PurePosixPath(value)
    return path.name or value.strip("/\\~.") or "data"


class Scrubber:
    """Replace local paths by their names in records and written files.

    Args:
        folders: local folders the published files may mention (the curated and audit folders, the cache...);
            each one, its parent, the working directory and the home directory are searched for in texts.
    """

    def __init__(self, folders=()):
        self._roots: set[str] = set()
        self._found: set[str] = set()  # local paths met in records, replaced wherever a text repeats them
        for f in [*folders, os.getcwd(), Path.home()]:
            if f:
                self.add_root(f)

    def add_root(self, folder) -> None:
        """Search texts for paths under ``folder`` (absolute; a root that is ``/`` or one folder deep is skipped)."""
        p = Path(os.path.abspath(os.path.expanduser(str(folder))))
        for q in (p, p.parent):
            if len(q.parts) > 2:  # never "/" or "/tmp": that would match inside every path
                self._roots.add(str(q))

    def value(self, obj):
        """``obj`` (a JSON-able value) with every local path in it replaced by its name."""
        self.learn(obj)
        return self._apply(obj)

    def learn(self, *objs) -> None:
        """Note the local paths in ``objs`` (and their folders) before any text is cleaned."""
        for obj in objs:
            if isinstance(obj, str) and looks_local(obj):
                self._found.add(obj.strip())
                self.add_root(Path(os.path.expanduser(obj.strip())).parent)
            elif isinstance(obj, dict):
                self.learn(*obj.values())
            elif isinstance(obj, (list, tuple)):
                self.learn(*obj)

    def _apply(self, obj):
        if isinstance(obj, str):
            return public_name(obj) if looks_local(obj) else self.text(obj)
        if isinstance(obj, dict):
            return {self.text(k) if isinstance(k, str) else k: self._apply(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self._apply(v) for v in obj]
        return obj

    def text(self, text: str) -> str:
        """Free text with every path under a known root (also in its markdown-escaped form) cut to its name."""
        for found in sorted(self._found, key=len, reverse=True):
            text = text.replace(found, public_name(found))
        for root in sorted(self._roots, key=len, reverse=True):
            for form in (root, _MD_SPECIAL.sub(r"\\\1", root)):
                if form not in text:
                    continue
                pattern = re.compile(r"(?<![\w:/.])" + re.escape(form) + r"(?:[\\/][^\s'\"`|,;)\]}<>]*)?")
                text = pattern.sub(lambda m: _last_part(m.group(0)), text)
        return text

    def folder(self, folder: Path, *, skip: tuple[str, ...] = ("data",)) -> None:
        """Rewrite the JSON and text files under ``folder`` (not those under ``skip``) without local paths."""
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.relative_to(folder).parts[0] in skip:
                continue
            if path.suffix == ".json":
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                except (UnicodeDecodeError, ValueError):
                    continue
                clean = self.value(record)
                if clean != record:
                    path.write_text(json.dumps(clean, indent=2, default=str), encoding="utf-8")
            elif path.suffix in _TEXT_SUFFIXES or path.name == "README.md":
                try:
                    text = path.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    continue
                clean = self.text(text)
                if clean != text:
                    path.write_text(clean, encoding="utf-8")


def _last_part(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if len(parts) == 1 and "\\" in path:  # a Windows path
        parts = [p for p in path.split("\\") if p]
    return parts[-1] if parts else path
