"""Blocking a magnitude on planted data (issue 31): `balance` (the new default for length) vs `rebalance`.

Generated pairs (``curate.generate.make_preference_pairs``, default planted rates: flattery, agreement,
markdown and padding preferred; padding is a cause of length), flattery and length blocked with the
recipe defaults (``Recipe.from_ids(block=["flattery", "length"])`` → ``balance``), against the same block
with ``rebalance`` (the old default) and the original data, in the same run. Measured with the generator's
ground truth, under the weights of the written ``train`` split:

* flattery's and padding's *true* win-rate (the planted indicator, not the detector), quality's true
  win-rate (the chosen answer correct and the rejected not, vs the reverse), each with a Wilson 95% CI on
  the Kish effective n;
* length's weighted mean Δ in sd of its scores (and in words), with a 95% CI (weighted sandwich SE);
* the ESS as a share of the rows.

Then a two-subset flip (padding preferred in one subset, dispreferred in the other): each subset's length
win-rate and mean Δ after the default block (within subsets) and after ``block_within: pooled``.

Acceptance (issue 31): flattery 0.5 ± 0.03, length mean Δ within ± 0.05 sd, quality ≥ 0.7, ESS ≥ 0.5.

    python benchmarks/bench_balance.py [--pairs 3000] [--seeds 3131 3132 3133]

Writes ``benchmarks/results/balance_planted.json``. The headline seed (3131) was chosen before any run and
not tuned on.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from curate import _columns as C
from curate import annotate, make_preference_pairs
from curate.interventions import apply_recipe, weighted_mean_delta
from curate.recipe import Recipe
from curate.stats import kish_n, paired_win_stats, pooled_scale

OUT = Path(__file__).resolve().parent / "results" / "balance_planted.json"


def _truth_win(gen, concept: str, rows: np.ndarray, w: np.ndarray) -> dict:
    t = gen.truth
    d = (t[f"chosen__{concept}"].to_numpy(float) - t[f"rejected__{concept}"].to_numpy(float))[rows]
    s = paired_win_stats(d[:, None], w)
    return {k: round(float(s[k][0]), 4) for k in ("win_rate", "ci_low", "ci_high")}


def _arm(gen, ds, recipe: Recipe | None, scale: float) -> dict:
    if recipe is None:
        rows, w = np.arange(len(ds)), np.ones(len(ds))
        train = ds
    else:
        dd, report = apply_recipe(ds, recipe, audit=False)
        train = dd[C.TRAIN_SPLIT]
        rows, w = np.asarray(train[C.ROW]), np.asarray(train[C.WEIGHT], float)
    d_len = np.asarray(train["chosen__length"], float) - np.asarray(train["rejected__length"], float)
    m, lo, hi = weighted_mean_delta(d_len / scale, w)
    wr = paired_win_stats(d_len[:, None], w)
    return {
        "flattery_true_win_rate": _truth_win(gen, "flattery", rows, w),
        "padding_true_win_rate": _truth_win(gen, "padding", rows, w),
        "quality_true_win_rate": _truth_win(gen, "quality", rows, w),
        "length_mean_delta_sd": {"mean": round(m, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4)},
        "length_mean_delta_words": round(m * scale, 2),
        "length_win_rate": round(float(wr["win_rate"][0]), 4),
        "ess_fraction": round(float(kish_n(w)) / len(ds), 4),
        "rows_in_train": int(len(rows)),
    }


def planted(n: int, seed: int) -> dict:
    gen = make_preference_pairs(n, seed=seed)
    ds = annotate(gen.dataset, ["flattery", "length"])
    ch, rj = np.asarray(ds["chosen__length"], float), np.asarray(ds["rejected__length"], float)
    scale = float(pooled_scale(ch[:, None], rj[:, None], np.ones(n))[0])
    arms = {
        "original": _arm(gen, ds, None, scale),
        "rebalance": _arm(gen, ds, Recipe.from_ids(block=["flattery", "length"], block_with=["rebalance"]), scale),
        "balance (default)": _arm(gen, ds, Recipe.from_ids(block=["flattery", "length"]), scale),
    }
    b = arms["balance (default)"]
    passed = {
        "flattery 0.5 ± 0.03": abs(b["flattery_true_win_rate"]["win_rate"] - 0.5) <= 0.03,
        "length mean Δ within ± 0.05 sd": abs(b["length_mean_delta_sd"]["mean"]) <= 0.05,
        "quality ≥ 0.7": b["quality_true_win_rate"]["win_rate"] >= 0.7,
        "ESS ≥ 0.5 of rows": b["ess_fraction"] >= 0.5,
    }
    return {"seed": seed, "pairs": n, "length_sd_words": round(scale, 3), "arms": arms, "acceptance": passed}


def subset_flip(n: int, seed: int) -> dict:
    gen = make_preference_pairs(
        n, seed=seed, subset_rates={"helpful": {"padding": (0.6, 0.15)}, "harmless": {"padding": (0.15, 0.6)}}
    )
    ds = annotate(gen.dataset, ["length"])
    out = {}
    recipes = {
        "within subsets (default)": Recipe.from_ids(block=["length"]),
        "pooled": Recipe.from_dict({"rules": [{"concepts": ["length"], "action": "block"}], "block_within": "pooled"}),
        "original": None,
    }
    for name, rec in recipes.items():
        if rec is None:
            train, w = ds, np.ones(n)
        else:
            train = apply_recipe(ds, rec, audit=False)[0][C.TRAIN_SPLIT]
            w = np.asarray(train[C.WEIGHT], float)
        d = np.asarray(train["chosen__length"], float) - np.asarray(train["rejected__length"], float)
        sub = np.asarray(train[C.SUBSET])
        out[name] = {}
        for s in ("helpful", "harmless"):
            k = sub == s
            wr = paired_win_stats(d[k][:, None], w[k])
            m, lo, hi = weighted_mean_delta(d[k], w[k])
            out[name][s] = {
                "length_win_rate": [round(float(wr[x][0]), 4) for x in ("win_rate", "ci_low", "ci_high")],
                "length_mean_delta_words": [round(v, 3) for v in (m, lo, hi)],
            }
        out[name]["ess_fraction"] = round(float(kish_n(w)) / n, 4)
    return {"seed": seed, "pairs": n, "arms": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3131, 3132, 3133])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = [planted(args.pairs, s) for s in args.seeds]
    flip = subset_flip(args.pairs, args.seeds[0])
    result = {
        "what": "issue 31: blocking flattery and length with the defaults (balance) vs rebalance, planted data",
        "headline_seed": args.seeds[0],
        "runs": runs,
        "subset_flip": flip,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for r in runs:
        print(f"seed {r['seed']}: acceptance {r['acceptance']}")
        for name, a in r["arms"].items():
            f, q, p, md = (
                a["flattery_true_win_rate"],
                a["quality_true_win_rate"],
                a["padding_true_win_rate"],
                a["length_mean_delta_sd"],
            )
            print(
                f"  {name:<18} flattery {f['win_rate']:.3f} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]  "
                f"padding {p['win_rate']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]  "
                f"quality {q['win_rate']:.3f} [{q['ci_low']:.3f}, {q['ci_high']:.3f}]  "
                f"length mean Δ {md['mean']:+.3f} sd [{md['ci_low']:+.3f}, {md['ci_high']:+.3f}] "
                f"({a['length_mean_delta_words']:+.2f} words), win-rate {a['length_win_rate']:.3f}  "
                f"ESS {a['ess_fraction']:.3f}"
            )
    print(json.dumps(flip["arms"], indent=1))
    print(f"wrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
