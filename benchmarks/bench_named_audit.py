"""Named-concept annotation throughput and audit time on 100k generated pairs.

Baselines measured in the same run: a plain Python loop of ``re`` matches per text and per concept
(annotation), and a per-concept loop of scipy's ``binomtest`` + scikit-learn's ``LogisticRegression``
(audit). Targets (issue 2): ≥ 2,000 pairs/s per core for annotation; audit of 100k pairs × ~20 concepts
in under 10 s.

    python benchmarks/bench_named_audit.py [--n 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=5_000, help="pairs for the slow baselines")
    args = parser.parse_args()

    import pyarrow as pa
    from datasets import Dataset, concatenate_datasets

    from curate import ConceptAudit, make_preference_pairs
    from curate.concepts import NamedConcepts
    from curate.concepts.named import BUILTIN_CONCEPTS
    from curate.scores import concept_scores

    base = make_preference_pairs(5_000, seed=0).dataset
    reps = -(-args.n // len(base))
    ds = concatenate_datasets([base] * reps).select(range(args.n))
    ds = Dataset(pa.Table.from_batches(ds.with_format("arrow")[:].to_batches()))  # one in-memory table
    ann = NamedConcepts()
    n_concepts = len(ann.concepts_)
    cores = 1  # Dataset.map without num_proc runs in one process

    t = time.perf_counter()
    annotated = ds.map(ann, batched=True, batch_size=2_000, features=ann.features(ds.features))
    t_ann = time.perf_counter() - t
    pairs_per_s = args.n / t_ann

    # baseline: Python's re, one text and one concept at a time
    sub = ds.select(range(args.baseline_n))
    regexes = {cid: re.compile(c.pattern, re.I | re.M) for cid, c in BUILTIN_CONCEPTS.items() if c.pattern}
    t = time.perf_counter()
    for side in ("chosen", "rejected"):
        for text in sub[side]:
            for rx in regexes.values():
                len(rx.findall(text))
            len(text.split())
    t_base = time.perf_counter() - t
    base_pairs_per_s = args.baseline_n / t_base

    t = time.perf_counter()
    audit = ConceptAudit().fit(annotated)
    t_audit = time.perf_counter() - t

    # baseline audit: per-concept scipy sign test + sklearn logistic regression
    from scipy.stats import binomtest
    from sklearn.linear_model import LogisticRegression

    scores = concept_scores(annotated)
    delta = scores.delta
    dl = scores.log_length[:, 0] - scores.log_length[:, 1]
    rng = np.random.default_rng(0)
    orient = rng.choice([-1.0, 1.0], size=len(delta))
    t = time.perf_counter()
    for j in range(delta.shape[1]):
        d = delta[:, j]
        n = int((d != 0).sum())
        if n:
            binomtest(int((d > 0).sum()), n)
            X = np.column_stack([d, dl]) * orient[:, None]
            LogisticRegression(fit_intercept=False).fit(X, orient > 0)
    t_audit_base = time.perf_counter() - t

    print(f"pairs={args.n} concepts={n_concepts} cpu_count={os.cpu_count()}")
    print(
        f"annotation: {pairs_per_s:,.0f} pairs/s on {cores} core ({t_ann:.2f} s); "
        f"naive re loop {base_pairs_per_s:,.0f} pairs/s; target >= 2,000 pairs/s per core"
    )
    print(
        f"audit: {t_audit:.2f} s for {args.n} pairs x {delta.shape[1]} concepts "
        f"(incl. held-out split, length control, multivariate AUC={audit.auc_:.3f}); "
        f"per-concept scipy+sklearn loop (tests + length model only) {t_audit_base:.2f} s; target < 10 s"
    )
    print(
        f"ratio_annotation_vs_naive={pairs_per_s / base_pairs_per_s:.2f} "
        f"ratio_audit_vs_loop={t_audit_base / t_audit:.2f} pairs_per_s_per_core={pairs_per_s / cores:.0f} "
        f"audit_s={t_audit:.2f}"
    )


if __name__ == "__main__":
    main()
