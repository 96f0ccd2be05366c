"""Compare the tables two ``curate demo --out DIR`` runs wrote (issue 28: a redesign must not change them).

    python tools/compare_demo.py OLD_DIR NEW_DIR

Reads every parquet table and JSON record the demo writes (audit, findings, before/after, curated and dropped
splits, the published data) from both folders and prints, per file, "same" or what differs: columns only in one,
row counts, and the columns whose values differ (floats compared to 1e-9 relative). Exits 1 when any differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = [
    "audit/audit.parquet",
    "audit/audit_findings.parquet",
    "audit/audit_members.parquet",
    "curated/before_after.parquet",
    "curated/train",
    "curated/dropped",
    "published/data",
]


def read(path: Path) -> pd.DataFrame | None:
    if path.is_file():
        return pd.read_parquet(path)
    files = sorted(path.rglob("*.parquet")) or sorted(path.rglob("*.arrow"))
    if not files:
        return None
    if files[0].suffix == ".arrow":
        from datasets import Dataset

        return pd.concat([Dataset.from_file(str(f)).to_pandas() for f in files], ignore_index=True)
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def differences(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    out = []
    only_a, only_b = sorted(set(a.columns) - set(b.columns)), sorted(set(b.columns) - set(a.columns))
    if only_a or only_b:
        out.append(f"columns only in old {only_a}, only in new {only_b}")
    if len(a) != len(b):
        return out + [f"rows {len(a)} vs {len(b)}"]
    for col in [c for c in a.columns if c in b.columns]:
        x, y = a[col].reset_index(drop=True), b[col].reset_index(drop=True)
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            same = np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=1e-12, equal_nan=True)
        else:
            same = x.astype(str).equals(y.astype(str))
        if not same:
            out.append(f"values of {col!r} differ")
    return out


def main(old: str, new: str) -> int:
    bad = 0
    for rel in TABLES:
        a, b = read(Path(old) / rel), read(Path(new) / rel)
        if a is None or b is None:
            print(f"{rel}: missing in {'old' if a is None else 'new'}")
            bad += a is not b
            continue
        diff = differences(a, b)
        print(f"{rel}: " + ("same" if not diff else "; ".join(diff)))
        bad += bool(diff)
    for rel in ("curated/apply.json", "audit/summary.json"):
        a, b = (json.loads((Path(d) / rel).read_text()) for d in (old, new))
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        print(f"{rel}: " + ("same" if not keys else f"keys that differ {keys}"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
