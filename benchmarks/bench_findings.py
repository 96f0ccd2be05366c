"""Issue 6 before/after on the built-in generator with SAE concepts on the offline default.

Before: every SAE feature is its own row, ranked by q (the prototype's behaviour). After: features grouped,
rows ranked by the length-controlled effect, at most 20 findings. Prints the number of SAE features
confirmed, the number of findings, the rank at which each planted concept is first reached (a row whose
concept is the planted one, or whose nearest named concept is, with |r| ≥ 0.3; and by an SAE group alone),
and whether any top-10 finding is nearest to an equal-rate concept. Acceptance (as tests/test_sae.py asserts
on 600 pairs): every planted concept reached by a top-10 finding, at least one of them also by an SAE group
among the findings, and no top-10 finding that is, or is nearest to, a control. Each top-10 finding is also
checked against the generator's ground truth: the planted concept (quality included, which no named detector
sees) its per-response score correlates with most.

    python benchmarks/bench_findings.py [--n 2000]
"""

from __future__ import annotations

import argparse
import time

NAMED_OF = {
    "flattery": "flattery",
    "agreement": "agreement",
    "markdown": "markdown",
    "padding": "length",
    "emoji": "emoji",
    "hedging": "hedging",
    "sign_off": "sign_off",
    "apology": "apology",
}
MARKDOWN_FAMILY = {"markdown", "heading", "list", "bold"}


def reaches(row, named: str) -> bool:
    family = MARKDOWN_FAMILY if named == "markdown" else {"length", "log_length"} if named == "length" else {named}
    if row["concept"] in family:
        return True
    return row["nearest_named"] in family and abs(row["nearest_r"]) >= 0.3


def first_rank(table, named: str, sae_only: bool = False):
    for i, (_, row) in enumerate(table.iterrows(), 1):
        if sae_only and (row["source"] == "named" or abs(row["nearest_r"]) < 0.3):
            continue
        if reaches(row, named):
            return i
    return None


def truth_tracker(ds, gen, audit, source):
    """``concept -> (planted concept, r)``: the ground-truth concept whose per-response presence correlates most
    with the concept's per-response score (a group's score: the sum of its members' pooled activations)."""
    import numpy as np

    from curate import _columns as C

    sides = C.SIDES
    truth = np.concatenate([gen.truth[[f"{s}__{c}" for c in gen.planted]].to_numpy(float) for s in sides])
    n = len(ds)
    idx = [ds[C.sae_index_column(s, source)] for s in sides]
    val = [ds[C.sae_value_column(s, source)] for s in sides]
    d = 1 + max((max(i) for side in idx for i in side if i), default=0)
    dense = np.zeros((2 * n, d))
    for k, (si, sv) in enumerate(zip(idx, val)):
        for row, (i, v) in enumerate(zip(si, sv)):
            dense[k * n + row, i] = v
    members = audit.members_

    def score(concept):
        if concept.startswith("group:"):
            feats = [int(c.rsplit(":", 1)[1]) for c in members.loc[members["group"] == concept, "concept"]]
            return dense[:, feats].sum(1)
        return np.concatenate([np.asarray(ds[C.score_column(s, concept)], float) for s in sides])

    def track(concept):
        x = score(concept)
        r = [np.corrcoef(x, truth[:, j])[0, 1] if x.std() and truth[:, j].std() else 0.0 for j in range(truth.shape[1])]
        j = int(np.nanargmax(np.abs(r)))
        return list(gen.planted)[j], float(r[j])

    return track


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None, help="SAE fit learning rate (default: fit_sae's)")
    args = parser.parse_args()

    from curate import ConceptAudit, annotate, make_preference_pairs
    from curate.concepts.sae import annotate_sae

    gen = make_preference_pairs(args.n, seed=args.seed)
    t = time.perf_counter()
    ds, annotator = annotate_sae(annotate(gen.dataset), fit_kwargs={"lr": args.lr} if args.lr else None)
    t_sae = time.perf_counter() - t
    planted = [c for c in gen.unequal if c in NAMED_OF and c != "padding"]
    equal = [NAMED_OF[c] for c in gen.equal]

    before = ConceptAudit(group_features=False).fit(ds)
    raw = before.results_
    raw = raw[raw["source"] != "named"].sort_values(["q_value", "p_value"])  # the prototype's ranking
    n_feat = len(raw)
    n_conf = int(raw["confirmed"].sum())

    after = ConceptAudit().fit(ds)
    findings = after.findings()
    top10 = findings.head(10)
    bad = [
        r["concept"]
        for _, r in top10.iterrows()
        if (r["nearest_named"] in equal and abs(r["nearest_r"]) >= 0.3) or r["concept"] in equal
    ]

    fit = annotator.to_dict().get("fit", {})
    print(
        f"pairs={args.n} SAE annotation+fit {t_sae:.0f} s; source={annotator.source_}; fit: "
        f"{fit.get('n_samples')} tokens, FVU {fit.get('fvu')}, dead latents {fit.get('dead_latents')} of "
        f"{annotator.sae_.cfg.d_sae}"
    )
    print(
        f"before: {n_conf} of {n_feat} active SAE features confirmed ({100 * n_conf / max(n_feat, 1):.0f}%); "
        f"every confirmed feature is a candidate finding"
    )
    print(
        f"after:  {len(findings)} findings ({int(after.members_['confirmed'].sum())} confirmed member features in "
        f"{(after.results_['source'] != 'named').sum()} groups); sparse-model held-out AUC {after.sparse_auc_:.3f}"
    )
    for c in planted:
        print(
            f"  planted {c:10s} first reached at rank before={first_rank(raw, NAMED_OF[c])} "
            f"(SAE features by q) after={first_rank(findings, NAMED_OF[c])} (findings; "
            f"by an SAE group: {first_rank(findings, NAMED_OF[c], sae_only=True)})"
        )
    truth_of = truth_tracker(ds, gen, after, annotator.source_)
    print("  top-10 findings (truth: the planted concept, from the generator, that the finding's score tracks most):")
    for _, r in top10.iterrows():
        t, tr = truth_of(r["concept"])
        print(
            f"    {int(r['finding_rank']):2d} {r['concept']:22s} win={r['win_rate']:.2f} lc_q={r['length_controlled_q']:.1e} "
            f"n={int(r['n_members'])} nearest={r['nearest_named']} r={r['nearest_r']:+.2f} purity={r['purity']:.2f} "
            f"truth={t} r={tr:+.2f}"
        )
    reached = all(first_rank(top10, NAMED_OF[c]) for c in planted)
    reached_sae = all(first_rank(top10, NAMED_OF[c], sae_only=True) for c in planted)
    any_sae = any(first_rank(findings, NAMED_OF[c], sae_only=True) for c in planted)
    ok = reached and any_sae and not bad
    print(
        f"planted_reached_in_top10={reached} (by SAE groups alone: {reached_sae}) "
        f"equal_rate_in_top10={bad or 'none'} acceptance={'pass' if ok else 'fail'}"
    )


if __name__ == "__main__":
    main()
