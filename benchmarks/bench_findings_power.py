"""Issue 30: the findings rule's measured false-finding rate and power, today's rule and the new one side by side.

Rules compared (all on the same fitted audit tables; :func:`curate.audit_base.finding_evidence`):

* ``held_out`` — before issue 30: BH over every test in the discovery half, then in the confirmation half,
  length-controlled q < alpha, |win-rate − 0.5| ≥ 0.1;
* ``one_family`` — the issue's first candidate as written: full-data BH over all tests (concept groups × places,
  one family), halves agree, length-controlled (same sign, one-sided p < alpha), |win-rate − 0.5| ≥ 0.1;
* ``evidence`` — the new rule: as ``one_family``, but one BH family per source (named detectors; each SAE source's
  groups) and only tests with ≥ 20 differing pairs enter a family.

Measurements (configuration fixed before the first run; ``--quick`` only for trying the script):

1. **False findings** on label-permuted data: chosen and rejected swapped at random per pair (their concept scores
   and lengths swapped with them; the annotation is done once), ``--perms`` permutations each of
   (a) the WIMHF demo pairs (``../shared/data/wimhf-demo``) of three datasets (:data:`SAE_DATASETS`, 921 pairs)
   with named + SAE concepts, ``--by dataset``, annotated once and cached under ``--cache`` (SAE annotation of all
   2,166 pairs would take over two hours on the shared 2-core CPU: the size was cut before any result was seen),
   (a') all seven datasets with named concepts, (b) generated pairs (1,600 pairs in two subsets of 800, named concepts,
   ``--by subset``) and (b') the same with 335 SAE-like sparse features (:func:`generated_sae_scores`). Mean number of findings per audit with an exact Poisson 95% CI (findings counted as the audit
   counts them: a concept's pooled row, else its passing subset rows; the ``evidence`` rule's count is the audit's
   own ``findings()``).
2. **Power**: generated pairs (two subsets of 800, the generator's default planted concepts and planted nulls) plus
   one planted concept in subset A only: ``n`` pairs of A's 800 differ on it, the chosen response carries it in
   ``round(w·n)`` of them (``power``: the win-rate in the data is ``w``) or each with probability ``w``
   (``power_sampled``: the true rate is ``w``; even one uncorrected sign test at 0.05 finds 0.65 on 100 pairs
   only 83% of the time) (``n`` ∈ {50, 100, 150, 200}, ``w`` ∈ {0.62, 0.65, 0.70}); in subset B ``n`` pairs differ at 0.5.
   One planted effect per audit, ``--seeds`` seeds per cell; share of seeds in which it becomes a finding
   (pooled, or within A), with a Wilson 95% interval.
3. **WIMHF signs**: findings of the unpermuted demo pairs (``--by dataset``; all seven datasets with named
   concepts, and the three with named + SAE concepts; a pooled finding is compared in each dataset where its
   concept differs in ≥ 20 pairs, a subset finding in its dataset) whose concept (or, for an SAE group,
   its nearest named concept at |r| ≥ 0.3) matches an authors' feature in that dataset
   (``benchmarks/wimhf_check.py``'s rules): how many agree in sign, how many contradict a feature with |coef| ≥ 0.1.

Writes ``benchmarks/results/findings_power.json`` (read by README.md, docs/audit.md and ``curate.audit_base.MEASURED``).

    python benchmarks/bench_findings_power.py [--perms 20] [--seeds 20] [--cache /tmp/curate-findings-power]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "findings_power.json"
RULES = ("held_out", "one_family", "evidence")
CELLS_N = (50, 100, 150, 200)
CELLS_W = (0.62, 0.65, 0.70)
#: SAE annotation of real text is ~4 s per pair on a shared 2-core CPU: the SAE part of the benchmark reads these
#: three WIMHF datasets (those ``tests/test_wimhf.py`` requires), each response cut at this many tokens
SAE_DATASETS = ["HH-RLHF", "PKU", "ChatbotArena"]
SAE_MAX_LENGTH = 384
#: first seed of the fresh draws (``power_fresh``, ``generated_fresh``): fixed before they were run, after the
#: ``evidence`` rule had been adjusted on seeds 0-19 (power) and the seed-0 draw (false findings)
FRESH = 1000


def rule_passes(audit, table: pd.DataFrame, rule: str) -> np.ndarray:
    from curate.audit_base import finding_evidence

    if rule == "one_family":
        t = table.assign(source="named")
        return finding_evidence(t, alpha=audit.alpha, min_effect=audit.min_effect, min_differ=0)["passes"].to_numpy()
    return finding_evidence(
        table, alpha=audit.alpha, min_effect=audit.min_effect, min_differ=audit.min_differ, rule=rule
    )["passes"].to_numpy()


def rule_findings(audit, rule: str) -> pd.DataFrame:
    """(subset, concept, win_rate) of the findings under ``rule``: a concept's pooled row when it passes and its
    win-rate does not vary across subsets, else its passing subset rows (aliases and the 20-finding cap not applied; the ``evidence`` rule: the audit's own)."""
    if rule == audit.rule:
        return audit.findings()[["subset", "concept", "win_rate", "source", "nearest_named", "nearest_r"]]
    pooled = audit.results_.assign(subset="")
    by = audit.results_by_
    table = pd.concat([pooled, by], ignore_index=True)
    ok = rule_passes(audit, table, rule)
    varies = table["concept"].map(by.drop_duplicates("concept").set_index("concept")["heterogeneous"]).fillna(False)
    ok_pooled = ok[: len(pooled)] & ~varies.to_numpy(dtype=bool)[: len(pooled)]
    pooled_hit = set(pooled["concept"][ok_pooled])
    sub = by[ok[len(pooled) :] & ~by["concept"].isin(pooled_hit).to_numpy()]
    near = pooled.set_index("concept")[["nearest_named", "nearest_r"]]
    out = pd.concat([pooled[ok_pooled], sub], ignore_index=True)[["subset", "concept", "win_rate", "source"]]
    return out.join(near, on="concept")


def permuted(scores, rng):
    """The same pairs with chosen and rejected swapped at random per pair (scores and lengths with them)."""
    from curate.scores import ConceptScores

    flip = rng.random(scores.n_pairs) < 0.5
    ch = np.where(flip[:, None], scores.rejected, scores.chosen)
    rj = np.where(flip[:, None], scores.chosen, scores.rejected)
    ll = np.where(flip[:, None], scores.log_length[:, ::-1], scores.log_length)
    return ConceptScores(scores.concepts, ch, rj, scores.rows, scores.prompts, ll, scores.weights, scores.extra)


def count_ci(total: int, audits: int) -> list[float]:
    """95% CI of the mean number of findings per audit from ``total`` findings in ``audits`` audits (exact Poisson,
    Garwood): an upper bound even when no audit made a finding."""
    from scipy.stats import chi2

    lo = chi2.ppf(0.025, 2 * total) / 2 if total else 0.0
    hi = chi2.ppf(0.975, 2 * total + 2) / 2
    return [round(float(lo) / audits, 3), round(float(hi) / audits, 3)]


def wilson(k: int, n: int) -> list[float]:
    from curate.stats import wilson_interval

    lo, hi = wilson_interval(k, n)
    return [round(float(lo), 3), round(float(hi), 3)]


# -- data --------------------------------------------------------------------------------------------------------
def wimhf_annotated(cache: Path, datasets: list[str] | None = None, sae: bool = True):
    """The WIMHF demo pairs (of ``datasets``; all when None) annotated with named (+ SAE) concepts, once: cached
    under ``cache``. SAE annotation reads at most :data:`SAE_MAX_LENGTH` tokens per response."""
    from datasets import load_from_disk

    sys.path.insert(0, str(HERE))
    import wimhf_check as w

    name = ("sae-" if sae else "named-") + ("-".join(datasets) if datasets else "all")
    folder = cache / "wimhf" / name
    if not (folder / "annotated").exists():
        from curate.pipeline import run_audit

        pairs, _ = w.load_pairs_table(w.DEFAULT)
        if datasets:
            pairs = pairs[pairs["dataset"].isin(datasets)]
        unique = pairs.drop_duplicates(["dataset", "prompt", "chosen", "rejected"])
        data = cache / "wimhf" / f"{name}.jsonl"
        data.parent.mkdir(parents=True, exist_ok=True)
        unique.drop(columns="feature").to_json(data, orient="records", lines=True)
        run_audit(
            str(data),
            out=folder,
            by="dataset",
            concepts="named,sae" if sae else "named",
            sae_kwargs={"max_length": SAE_MAX_LENGTH} if sae else None,
            cache_dir=str(cache / "cache"),
        )
    return load_from_disk(str(folder / "annotated"))


def generated_scores(seed: int):
    from curate import annotate, make_preference_pairs
    from curate.scores import concept_scores

    gen = make_preference_pairs(1600, seed=seed, subset_rates={"A": {}, "B": {}})
    return concept_scores(annotate(gen.dataset), extra_columns=["subset"])


def generated_sae_scores(seed: int, n_noise: int = 300):
    """Generated pairs (two subsets of 800) with named concepts and SAE-like sparse features: flattery split across
    20 features, markdown across 10, emoji (a planted null) across 5, and ``n_noise`` features firing at random (4
    per response) — the many-feature multiplicity of an SAE without the hours of SAE annotation."""
    from curate import _columns as C
    from curate import annotate, make_preference_pairs
    from curate.scores import concept_scores

    gen = make_preference_pairs(1600, seed=seed, subset_rates={"A": {}, "B": {}})
    df = annotate(gen.dataset).to_pandas()
    rng = np.random.default_rng(seed)
    for side in C.SIDES:
        idx, val = [], []
        for i in range(len(df)):
            feats = {}
            for concept, first, k in (("flattery", 0, 20), ("markdown", 20, 10), ("emoji", 30, 5)):
                if gen.truth[f"{side}__{concept}"].iat[i]:
                    feats.update({f: 1.0 + rng.random() for f in range(first, first + k) if rng.random() < 0.7})
            feats.update({int(f): float(rng.random()) for f in 100 + rng.choice(n_noise, size=4, replace=False)})
            idx.append(list(feats))
            val.append([float(v) for v in feats.values()])
        df[C.sae_index_column(side, "synthetic")] = idx
        df[C.sae_value_column(side, "synthetic")] = val
    return concept_scores(df, extra_columns=["subset"])


def planted(scores, n: int, w: float, seed: int, exact: bool = True):
    """``scores`` plus concept ``planted``: ``n`` pairs of subset A differ on it and the chosen response carries it
    in ``round(w·n)`` of them (``exact``; else each with probability ``w``); ``n`` pairs of subset B differ at 0.5."""
    from curate.scores import ConceptScores

    rng = np.random.default_rng(10_000 + seed)
    sub = np.asarray(scores.extra["subset"])
    ch, rj = np.zeros(scores.n_pairs, np.float32), np.zeros(scores.n_pairs, np.float32)
    for name, rate in (("A", w), ("B", 0.5)):
        rows = rng.choice(np.flatnonzero(sub == name), size=n, replace=False)  # in random order
        win = np.arange(n) < round(rate * n) if exact else rng.random(n) < rate
        ch[rows[win]], rj[rows[~win]] = 1.0, 1.0
    concepts = pd.concat(
        [scores.concepts, pd.DataFrame({"concept": ["planted"], "label": ["planted"], "source": ["named"]})],
        ignore_index=True,
    )
    return ConceptScores(
        concepts,
        np.column_stack([scores.chosen, ch]),
        np.column_stack([scores.rejected, rj]),
        scores.rows,
        scores.prompts,
        scores.log_length,
        scores.weights,
        scores.extra,
    )


# -- measurements ------------------------------------------------------------------------------------------------
def false_findings(scores, by: str, perms: int, label: str, first: int = 0) -> dict:
    from curate import ConceptAudit

    counts = {r: [] for r in RULES}
    for k in range(first, first + perms):
        audit = ConceptAudit().fit(permuted(scores, np.random.default_rng(k)), by=by)
        for r in RULES:
            counts[r].append(len(rule_findings(audit, r)))
        print(f"  {label} permutation {k}: " + " ".join(f"{r}={counts[r][-1]}" for r in RULES), flush=True)
    return {
        r: {
            "mean": round(float(np.mean(c)), 3),
            "ci95": count_ci(int(np.sum(c)), len(c)),
            "any": round(float(np.mean(np.array(c) > 0)), 3),
            "counts": [int(x) for x in c],
        }
        for r, c in counts.items()
    } | {"permutations": perms, "n_pairs": int(scores.n_pairs), "n_concepts": int(scores.chosen.shape[1])}


def power(seeds: int, exact: bool = True, first: int = 0) -> dict:
    """Share of seeds in which the planted effect becomes a finding, per rule and cell; ``unadjusted``: the planted
    row of subset A has a sign-test p < 0.05 (no multiplicity, no other check: the most any rule could find)."""
    from curate import ConceptAudit

    names = (*RULES, "unadjusted")
    found = {(r, n, w): 0 for r in names for n in CELLS_N for w in CELLS_W}
    for s in range(first, first + seeds):
        base = generated_scores(100 + s)
        for n in CELLS_N:
            for w in CELLS_W:
                audit = ConceptAudit().fit(planted(base, n, w, s * 100 + n, exact), by="subset")
                for r in RULES:
                    f = rule_findings(audit, r)
                    found[(r, n, w)] += bool(((f["concept"] == "planted") & f["subset"].isin(["", "A"])).any())
                by = audit.results_by_
                found[("unadjusted", n, w)] += bool(
                    (by.loc[(by["concept"] == "planted") & (by["subset"] == "A"), "p_value"] < 0.05).any()
                )
        print(f"  power seed {s}: " + " ".join(f"{k}={v}" for k, v in found.items() if k[1] == 100), flush=True)
    return {
        r: [
            {
                "n_differ": n,
                "win_rate": w,
                "found": found[(r, n, w)],
                "power": round(found[(r, n, w)] / seeds, 3),
                "ci95": wilson(found[(r, n, w)], seeds),
            }
            for n in CELLS_N
            for w in CELLS_W
        ]
        for r in names
    } | {"seeds": seeds, "first_seed": first, "subset_pairs": 800, "planting": "exact" if exact else "sampled"}


def sign_test_power(n: int, w: float, alpha: float = 0.05) -> float:
    """Power of one two-sided exact sign test at ``alpha`` (no multiplicity) when each of ``n`` differing pairs is
    won with probability ``w``: the ceiling for a planted effect whose wins are sampled."""
    from scipy import stats

    k = np.arange(n + 1)
    p = np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(k, n, 0.5), stats.binom.sf(k - 1, n, 0.5)))
    return float(stats.binom.pmf(k, n, w)[p < alpha].sum())


def wimhf_signs(ds) -> dict:
    """Findings of the unpermuted demo pairs that match an authors' feature: agree / contradict (|coef| ≥ 0.1)."""
    from curate import ConceptAudit

    sys.path.insert(0, str(HERE))
    import wimhf_check as w

    _, feats = w.load_pairs_table(w.DEFAULT)
    matched = []
    for _, f in feats.iterrows():
        m = w.match(f["interpretation"])
        if m:
            for c in m[0].split("+"):
                matched.append((f["dataset"], c, int(np.sign(f["logit_coef"]) * m[1]), abs(f["logit_coef"])))
    audit = ConceptAudit().fit(ds, by="dataset")
    by = audit.results_by_
    differ = dict(zip(zip(by["subset"], by["concept"]), by["n_differ"]))
    out = {}
    for r in RULES:
        f = rule_findings(audit, r)
        agree, contra, rows, agreeing = 0, 0, [], set()
        for j, row in f.iterrows():
            concept, sign = row["concept"], int(np.sign(row["win_rate"] - 0.5))
            if row["source"] != "named":
                if not isinstance(row["nearest_named"], str) or abs(row["nearest_r"]) < 0.3:
                    continue
                concept, sign = row["nearest_named"], sign * int(np.sign(row["nearest_r"]))
            # a pooled finding speaks for the datasets where its concept differs in >= min_differ pairs
            places = (
                [row["subset"]]
                if row["subset"]
                else [
                    d for d in sorted({m[0] for m in matched}) if differ.get((d, row["concept"]), 0) >= audit.min_differ
                ]
            )
            for ds_name, c, theirs, coef in matched:
                if c == concept and ds_name in places:
                    agree += theirs == sign
                    contra += theirs != sign and coef >= 0.1
                    if theirs == sign:
                        agreeing.add(j)
                    rows.append(f"{ds_name}/{row['concept']}: ours {sign:+d} theirs {theirs:+d} (coef {coef:.2f})")
        out[r] = {
            "findings": len(f),
            "findings_sign_agree": len(agreeing),
            "sign_agree": agree,
            "contradict_coef_ge_0.1": contra,
            "matches": rows,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--perms", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/curate-findings-power"))
    ap.add_argument("--parts", default="wimhf,wimhf_named,generated,generated_sae,power,power_sampled,signs,signs_sae")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    from curate.scores import concept_scores

    parts = args.parts.split(",")
    t0 = time.perf_counter()
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["rules"] = list(RULES)
    result["sae_datasets"], result["sae_max_length"] = SAE_DATASETS, SAE_MAX_LENGTH
    if "wimhf" in parts:  # named + SAE, --by dataset
        sc = concept_scores(wimhf_annotated(args.cache, SAE_DATASETS), extra_columns=["dataset"])
        result["false_findings_wimhf"] = false_findings(sc, "dataset", args.perms, "wimhf")
    if "wimhf_named" in parts:  # named, all seven datasets, --by dataset
        sc = concept_scores(wimhf_annotated(args.cache, sae=False), extra_columns=["dataset"])
        result["false_findings_wimhf_named"] = false_findings(sc, "dataset", args.perms, "wimhf named")
    if "generated" in parts:
        result["false_findings_generated"] = false_findings(generated_scores(0), "subset", args.perms, "generated")
    if "generated_sae" in parts:
        sc = generated_sae_scores(0)
        result["false_findings_generated_sae"] = false_findings(sc, "subset", args.perms, "generated+SAE-like")
    if "power" in parts:  # the acceptance's reading: round(w·n) of the n differing pairs are won
        result["power"] = power(args.seeds)
    if "power_fresh" in parts:  # seeds the rule was never adjusted on (issue 30's rule was tuned on seeds 0-19)
        result["power_fresh"] = power(args.seeds, first=FRESH)
    if "generated_fresh" in parts:  # a generator draw and permutations the rule was never adjusted on
        sc = generated_scores(FRESH)
        result["false_findings_generated_fresh"] = false_findings(sc, "subset", args.perms, "generated (fresh)", FRESH)
    if "generated_sae_fresh" in parts:
        sc = generated_sae_scores(FRESH)
        result["false_findings_generated_sae_fresh"] = false_findings(
            sc, "subset", args.perms, "generated+SAE-like (fresh)", FRESH
        )
    if "power_sampled" in parts:  # each differing pair won with probability w
        result["power_sampled"] = power(args.seeds, exact=False)
    if "signs" in parts:
        result["wimhf_signs"] = wimhf_signs(wimhf_annotated(args.cache, sae=False))
    if "signs_sae" in parts:
        result["wimhf_signs_sae"] = wimhf_signs(wimhf_annotated(args.cache, SAE_DATASETS))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    report(result)


def report(result: dict) -> None:
    print(f"\n{'':52s}" + "".join(f"{r:>22s}" for r in RULES))
    from curate.audit_base import NULL_SETS  # the null data sets the audit's stated rate is the largest of

    for key in NULL_SETS:
        if key in result:
            d = result[key]
            print(
                f"false findings per audit, {key.removeprefix('false_findings_'):19s} ({d['permutations']} perms)"
                + "".join(f"{d[r]['mean']:>8.2f} [{d[r]['ci95'][0]:.2f}, {d[r]['ci95'][1]:.2f}]" for r in RULES)
            )
    for key in ("power", "power_fresh", "power_sampled"):
        if key not in result:
            continue
        print(
            f"{key} ({result[key].get('planting', 'exact')} planting, {result[key]['seeds']} seeds from "
            f"{result[key].get('first_seed', 0)}):"
        )
        for i, cell in enumerate(result[key]["held_out"]):
            n, w = cell["n_differ"], cell["win_rate"]
            ceiling = result[key]["unadjusted"][i]["power"] if "unadjusted" in result[key] else sign_test_power(n, w)
            print(
                f"  win-rate {w:.2f} on {n:3d} of 800 differ (unadjusted {ceiling:.2f})      "
                + "".join(
                    f"{result[key][r][i]['power']:>8.2f} [{result[key][r][i]['ci95'][0]:.2f}, "
                    f"{result[key][r][i]['ci95'][1]:.2f}]"
                    for r in RULES
                )
            )
    for key in ("wimhf_signs", "wimhf_signs_sae"):
        if key in result:
            s = result[key]
            print(
                f"{key:16s} findings (agreeing) / matches agree / contradict"
                + "".join(
                    f"{s[r]['findings']:>7d} ({s[r]['findings_sign_agree']}) /{s[r]['sign_agree']:3d} /"
                    f"{s[r]['contradict_coef_ge_0.1']:2d}"
                    for r in RULES
                )
            )


if __name__ == "__main__":
    main()
