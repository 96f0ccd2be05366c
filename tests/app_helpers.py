"""Shared helpers of the app tests: a tiny audit folder with hostile text, and a running app."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from folder_helpers import record_edit

XSS_SCRIPT = "<script>window.__xss = 1</script>"
XSS_IMG = '<img src=x onerror="window.__xss = 2">'
XSS_TEXT = f"Great question! {XSS_SCRIPT} then {XSS_IMG} and ${{window.__xss = 3}} done."
XSS_LABEL = '<img src=x onerror="window.__xss = 4">label'


def make_audit_folder(out: Path, n_pairs: int = 240) -> Path:
    """Generated pairs + one hostile pair + two unusable rows, audited into ``out`` (named concepts only)."""
    import pandas as pd

    from curate import make_preference_pairs
    from curate.pipeline import run_audit

    out = Path(out)
    rows = make_preference_pairs(n_pairs, seed=0).dataset.to_list()
    for r in rows:
        r.pop("prompt_messages", None)
        r.pop("reason", None)
    rows[0]["prompt"] = f"Tell me about {XSS_IMG} please"
    rows[0]["chosen"] = XSS_TEXT
    rows.append({"id": "empty-1", "prompt": "Say something.", "chosen": "Something.", "rejected": ""})
    rows.append({"id": "same-1", "prompt": "Echo.", "chosen": "Echo.", "rejected": "Echo."})
    data = out.parent / f"{out.name}-pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_audit(str(data), out=out)
    audit = pd.read_parquet(out / "audit.parquet")
    audit.loc[audit["concept"] == "emoji", "label"] = XSS_LABEL  # a hostile label, shown in tables and menus
    audit.to_parquet(out / "audit.parquet", index=False)
    return record_edit(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(folder: Path):
    """Build and launch the app on a free local port; returns (blocks, url)."""
    from curate import build_app

    blocks = build_app(str(folder))
    blocks.queue()
    _, url, _ = blocks.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, show_error=True
    )
    return blocks, url
