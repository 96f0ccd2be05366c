"""WIMHF check: does a per-dataset audit rediscover the signs of the WIMHF authors' features?

Data: ``../shared/data/wimhf-demo/feature_data_for_demo.json`` (Movva et al. 2025, arXiv:2510.26202; see its
SOURCE.md): 7 datasets × 32 SAE features × ~10 top-activating example pairs, with the authors' per-feature
statistics. The pairs become one file with a ``dataset`` column (label 1 = response A preferred; duplicate pairs
within a dataset kept once) and are audited ``--by dataset`` (named concepts; ``--sae`` adds SmolLM2 SAE
features, slow on 2 CPU cores).

Each authors' feature whose interpretation names something a named concept detects (refusal, Markdown, lists,
uncertainty/deflection, clarifying questions) is matched by a rule that also reads its polarity ("fulfills
harmful requests *instead of refusing*" is refusal with polarity −1). The authors' sign for the concept is
sign(logit_coef) × polarity; ours is sign(win_rate − 0.5) of that concept within that dataset (the per-subset
row of the audit), also shown on the feature's own example pairs. The pairs are the top 2% for each feature, not
a random sample: compare signs, not sizes. The table is printed side by side with the authors' statistics,
then held-out AUC pooled and per dataset (WIMHF reports 0.647 on HH-RLHF with text-embedding-3-small features).

    python benchmarks/wimhf_check.py [--data ../shared/data/wimhf-demo] [--sae]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wimhf-demo"
FILE = "feature_data_for_demo.json"

# (pattern on the interpretation, named concept(s), polarity); the first rule that matches wins. A refusal
# feature is read by both refusal detectors: `refusal` (hard forms, "I can't help with that") and
# `discouragement` (soft forms, "it is never okay to…", PKU's usual way of declining); both rows are printed.
REFUSALS = "refusal+discouragement"
RULES: list[tuple[str, str, int]] = [
    (r"(instead of|rather than|not) (hedging or )?refus|doesn't refuse|does not refuse", REFUSALS, -1),
    (r"\brefus", REFUSALS, +1),
    (r"\bno markdown|without markdown", "markdown", -1),
    (r"markdown", "markdown", +1),
    (r"rather than uncertainty|not deflecting", "deflection", -1),
    (r"uncertain|deflect", "deflection", +1),
    (
        r"(instead of|without) asking (for )?clarif|doesn't ask|does not ask|avoids generic .*clarification",
        "clarifying_question",
        -1,
    ),
    (r"^asks (for clarification|a follow-up|clarifying)", "clarifying_question", +1),
    (r"prose,? (not|no) (numbered )?lists?|^no lists|without lists", "list", -1),
    (r"uses lists|\(lists/steps\)|structured instructions", "list", +1),
]
# the acceptance's minimum: these (dataset, concept) signs must be rediscovered
REQUIRED = [
    ("HH-RLHF", "refusal"),
    ("PKU", "discouragement"),
    ("ChatbotArena", "markdown"),
    ("ChatbotArena", "refusal"),
]


def match(interpretation: str) -> tuple[str, int] | None:
    text = interpretation.lower()
    for pattern, concept, polarity in RULES:
        if re.search(pattern, text):
            return concept, polarity
    return None


def load_pairs_table(folder: Path):
    """The demo's example pairs as a DataFrame (prompt, chosen, rejected, dataset, feature) and the features."""
    import pandas as pd

    raw = json.loads((Path(folder) / FILE).read_text())
    rows, feats = [], []
    for dataset, features in raw.items():
        for idx, f in features.items():
            feats.append(
                {
                    "dataset": dataset,
                    "feature": int(idx),
                    "interpretation": f["abbreviated_interpretation"],
                    "logit_coef": f["logit_coef"],
                    "win_rate_pp": 100 * f["win_rate_percentage"],
                    "prevalence": f["prevalence_percentage"],
                }
            )
            for e in f["examples"]["top_2_percent"]:
                a, b = e["response_A"], e["response_B"]
                chosen, rejected = (a, b) if int(e["label"]) == 1 else (b, a)
                rows.append(
                    {
                        "prompt": e["prompt"],
                        "chosen": chosen,
                        "rejected": rejected,
                        "dataset": dataset,
                        "feature": int(idx),
                    }
                )
    pairs = pd.DataFrame(rows)
    return pairs, pd.DataFrame(feats)


def strongest(table, dataset: str, concept: str):
    """The comparison row of the authors' feature with the largest |logit_coef| matched to ``concept``."""
    t = table[(table["dataset"] == dataset) & (table["concept"] == concept)]
    return t.loc[t["logit_coef"].abs().idxmax()]


def run(folder: Path = DEFAULT, out: Path | None = None, sae: bool = False, datasets: list[str] | None = None):
    """Audit the demo pairs by dataset and compare signs. Returns (comparison table, audit, seconds)."""
    import tempfile

    import pandas as pd

    from curate.pipeline import run_audit

    pairs, feats = load_pairs_table(folder)
    if datasets:
        pairs, feats = pairs[pairs["dataset"].isin(datasets)], feats[feats["dataset"].isin(datasets)]
    unique = pairs.drop_duplicates(["dataset", "prompt", "chosen", "rejected"])
    out = Path(out or tempfile.mkdtemp(prefix="wimhf-"))
    data = out / "wimhf_pairs.jsonl"
    unique.drop(columns="feature").to_json(data, orient="records", lines=True)
    t0 = time.perf_counter()
    result = run_audit(
        str(data), out=out / "audit", by="dataset", concepts="named,sae" if sae else "named", use_cache=False
    )
    seconds = time.perf_counter() - t0
    audit = result["audit"]
    by = audit.results_by_.set_index(["subset", "concept"])
    res = audit.results_
    groups = res[(res["source"] != "named") & (res["nearest_r"].abs() >= 0.3)] if sae else None
    rows = []
    for _, f in feats.iterrows():
        m = match(f["interpretation"])
        if m is None:
            continue
        concepts, polarity = m
        for concept in concepts.split("+"):
            rows.append(_compare(f, concept, polarity, by, pairs, groups))
    return pd.DataFrame(rows), audit, seconds


def _compare(f, concept, polarity, by, pairs, groups=None) -> dict:
    """One comparison row: the authors' sign vs the named concept's (and, with SAE, the nearest SAE group's)."""
    import numpy as np

    from curate.concepts.named import BUILTIN_CONCEPTS

    r = by.loc[(f["dataset"], concept)]
    own = pairs[(pairs["dataset"] == f["dataset"]) & (pairs["feature"] == f["feature"])]
    d = BUILTIN_CONCEPTS[concept].score(own["chosen"].tolist()) - BUILTIN_CONCEPTS[concept].score(
        own["rejected"].tolist()
    )
    own_wr = float((d > 0).sum() / (d != 0).sum()) if (d != 0).any() else np.nan
    theirs = int(np.sign(f["logit_coef"]) * polarity)
    ours = int(np.sign(r["win_rate"] - 0.5)) if r["n_differ"] > 0 else 0
    row = {
        "dataset": f["dataset"],
        "feature": int(f["feature"]),
        "interpretation": f["interpretation"],
        "logit_coef": f["logit_coef"],
        "win_rate_pp": round(f["win_rate_pp"], 1),
        "concept": concept,
        "polarity": polarity,
        "authors_sign": theirs,
        "ours_win_rate": round(float(r["win_rate"]), 3),
        "ours_n_differ": int(r["n_differ"]),
        "ours_q": float(r["q_value"]),
        "ours_sign": ours,
        "agree": ours == theirs,
        "own_pairs_win_rate": round(own_wr, 3),
        "own_pairs_differ": int((d != 0).sum()),
    }
    if groups is not None:  # the SAE group nearest to this named concept (|r| >= 0.3), most pairs differing
        g = groups[groups["nearest_named"] == concept]
        cand = [(by.loc[(f["dataset"], c), "n_differ"], c) for c in g["concept"] if (f["dataset"], c) in by.index]
        if cand:
            _, c = max(cand)
            gr = by.loc[(f["dataset"], c)]
            row.update(
                {
                    "sae_group": c,
                    "sae_label": str(gr["label"])[:50],
                    "sae_win_rate": round(float(gr["win_rate"]), 3),
                    "sae_n_differ": int(gr["n_differ"]),
                    "sae_sign": int(np.sign(gr["win_rate"] - 0.5)),
                }
            )
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sae", action="store_true")
    ap.add_argument("--datasets", nargs="*", default=None, help="only these datasets (e.g. HH-RLHF PKU)")
    args = ap.parse_args()
    import pandas as pd

    table, audit, seconds = run(args.data, args.out, args.sae, args.datasets)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 60)
    print(
        f"audit --by dataset of {audit.n_pairs_} unique pairs ({'named,sae' if args.sae else 'named'}): {seconds:.1f} s"
    )
    print(
        table[
            [
                "dataset",
                "feature",
                "interpretation",
                "logit_coef",
                "win_rate_pp",
                "concept",
                "authors_sign",
                "ours_win_rate",
                "ours_n_differ",
                "ours_q",
                "ours_sign",
                "agree",
                "own_pairs_win_rate",
                "own_pairs_differ",
            ]
            + [c for c in ("sae_group", "sae_label", "sae_win_rate", "sae_n_differ", "sae_sign") if c in table]
        ].to_string(index=False)
    )
    if "sae_sign" in table:
        t = table.dropna(subset=["sae_sign"])
        print(
            f"SAE groups nearest a matched named concept: signs agree {int((t['sae_sign'] == t['authors_sign']).sum())}"
            f"/{len(t)}"
        )
    print(f"\nsigns agree: {int(table['agree'].sum())}/{len(table)} matched features")
    for ds, concept in REQUIRED:
        if not ((table["dataset"] == ds) & (table["concept"] == concept)).any():
            continue
        t = strongest(table, ds, concept)
        print(
            f"  required {ds} / {concept}: authors' strongest matched feature {t['feature']} "
            f"({t['interpretation']!r}, coef {t['logit_coef']:+.3f}) sign {t['authors_sign']:+d}; ours "
            f"{t['ours_sign']:+d} (win rate {t['ours_win_rate']}, {t['ours_n_differ']} pairs differ, q {t['ours_q']:.2g})"
            f" -> {'agree' if t['agree'] else 'DISAGREE'}"
        )
    print(f"\nheld-out AUC of the sparse (L1) model, pooled: {audit.sparse_auc_:.3f}")
    print("held-out AUC (L2 model on all concept deltas; without / with concept x dataset terms):")
    for _, r in audit.auc_by_.iterrows():
        print(
            f"  {r['subset'] or 'pooled':14s} n_heldout={r['n_heldout']:4d}  {r['heldout_auc']:.3f} / "
            f"{r['heldout_auc_interactions']:.3f}"
        )
    print("  WIMHF (arXiv 2510.26202) reports 0.647 on HH-RLHF (text-embedding-3-small SAE, full data).")
    f = audit.findings()
    print(f"\nfindings: {len(f)}")
    for _, r in f.iterrows():
        print(
            f"  #{int(r['finding_rank'])} {r['where']}: {r['concept']} — {r['label']} (win rate {r['win_rate']:.2f})"
            f"\n      {r.get('example') or ''}"
        )


if __name__ == "__main__":
    main()
