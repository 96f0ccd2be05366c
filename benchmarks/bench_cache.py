"""Re-runs are cheap: the same SAE audit twice (second into another --out) with a fresh cache.

Runs ``curate audit DATA --concepts named,sae`` (SmolLM2 offline, SAE fitted on the data) on N generated pairs
with two subsets, into ``a/`` and then ``b/`` with the same cache folder, and prints both wall times, their ratio
(acceptance: second ≤ 1/50 of the first) and whether every output table is identical. Progress lines of the
first run (activation collection, SAE fitting) go to stderr.

    python benchmarks/bench_cache.py [--n 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    import pandas as pd

    from curate import make_preference_pairs

    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    data = work / "pairs.jsonl"
    make_preference_pairs(
        args.n, seed=0, subset_rates={"a": {"flattery": (0.5, 0.1)}, "b": {"flattery": (0.1, 0.5)}}
    ).dataset.to_json(str(data))
    times = []
    for out in ("a", "b"):
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "curate.cli",
                "audit",
                str(data),
                "--out",
                str(work / out),
                "--concepts",
                "named,sae",
                "--cache-dir",
                str(work / "cache"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - t0)
    same = all(
        pd.read_parquet(work / "a" / f).equals(pd.read_parquet(work / "b" / f))
        for f in ("audit.parquet", "audit_findings.parquet", "audit_by.parquet", "audit_members.parquet")
    )
    print(
        f"pairs {args.n}: first run {times[0]:.1f} s, second run (other --out, same cache) {times[1]:.2f} s, "
        f"ratio 1/{times[0] / times[1]:.0f} (acceptance ≤ 1/50: {'yes' if times[1] * 50 <= times[0] else 'no'}); "
        f"identical outputs: {same}"
    )


if __name__ == "__main__":
    main()
