"""A test that edits a folder curate wrote on purpose (a hostile label, an older column layout) records the edit,
as curate would have written it: every manifest under the folder gets its files' sizes and hashes again (the
innermost first), so the read-back check sees the edit as written, not as damage."""

from __future__ import annotations

import json
from pathlib import Path

from curate.folders import MANIFEST
from curate.folders.checksums import record_files


def record_edit(folder: str | Path) -> Path:
    folder = Path(folder)
    manifests = sorted(folder.rglob(MANIFEST), key=lambda p: -len(p.parts))
    for m in manifests:
        manifest = json.loads(m.read_text())
        manifest["checksums"] = record_files(m.parent, exclude=(MANIFEST,))
        m.write_text(json.dumps(manifest, indent=2))
    return folder
