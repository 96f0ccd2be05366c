"""Audit the real AlpacaEval-2 annotations in ../shared/data (not a test: the data is not shipped).

AlpacaEval's GPT-4 Turbo judge is known to prefer longer outputs; this prints, per model, the length
concept's win-rate with its CI and the top concepts.

    python benchmarks/alpaca_eval_audit.py [--data ../shared/data/alpaca-eval-2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca-eval-2")
    )
    args = parser.parse_args()
    root = Path(args.data)
    files = sorted(root.glob("results/*/weighted_alpaca_eval_gpt4_turbo/annotations.json"))
    if not files:
        print(f"skipped: no AlpacaEval-2 annotations under {root}")
        return 0
    from curate import ConceptAudit, annotate, load_pairs
    from curate.ingest import ingestion_summary

    for path in files:
        model = path.parts[-3]
        pairs = load_pairs(str(path))
        summary = ingestion_summary(pairs)
        audit = ConceptAudit().fit(annotate(pairs))
        res = audit.results_.set_index("concept")
        ln = res.loc["length"]
        top = ", ".join(f"{c} {r.win_rate:.2f}" for c, r in res[res.confirmed].head(6).iterrows())
        print(
            f"{model:28s} usable={summary['n_usable']:4d} length win_rate={ln.win_rate:.3f} "
            f"[{ln.ci_low:.3f}, {ln.ci_high:.3f}] q={ln.q_value:.1e} confirmed={bool(ln.confirmed)} "
            f"AUC={audit.auc_:.3f} | confirmed: {top}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
