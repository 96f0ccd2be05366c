"""Pool learning folders of several training seeds into one: what the policies learned on average.

At CPU size one LoRA DPO run is noisy: the trained sample, the LoRA initialisation, the batch order and the
decoding all follow the seed, and the bootstrap CI of one folder covers only the held-out prompts, not the
run-to-run spread. :func:`pool_learning` reads folders that :func:`curate.learning_check` wrote with the
same data, recipe, model and settings but different ``seed`` values and writes the seed-averaged table:

* ``observed_*``: per held-out prompt, the policy − reference score difference; each seed's mean over its
  prompts, averaged over the seeds, with a 95% CI from a hierarchical bootstrap that resamples the seeds and,
  within each, its prompts (:func:`curate.learning.stats.pooled_shift`), so seeds that disagree widen it;
* ``predicted*`` / ``pred_*`` / ``scale``: the mean over seeds (each seed trains on its own sample);
* ``reward_*``: the implicit-reward shares, each seed's share averaged over seeds, with the same hierarchical
  CI over seeds and counterfactual pairs; ``reward_margin_*`` the mean margin over the pairs;
* a third arm, ``sham`` (curated rows with the curated weights permuted across rows), wherever every seed has
  it; folders written before it are pooled without it;
* ``learning.json``: ``prediction`` (:func:`curate.learning.stats.prediction_scores` against the generation
  shifts in sd and against the implicit reward, each with hierarchical CIs, the shuffled-prediction ``perm95``
  and, when the generator's ground truth is known, ``planted_r``), computed after merging the concepts that
  some seed's ``merged_concepts`` joined; ``shifts`` and ``blocked`` (per arm, the pooled shift in sd per
  concept and averaged over the blocked concepts, with CIs); ``seeds``, ``by_seed`` (each seed's own
  scores), ``observed_by_seed`` (concept → arm → one shift per seed) and ``noise_ceiling`` (per arm,
  :func:`curate.learning.measure.noise_ceiling`): how well the seeds' shifts agree with each other, with a CI.
  The ceiling is an upper bound only when the seeds are independent runs (``independent_draws``: their own
  generator draw and held-out prompts); seeds that share prompts and training rows agree more than that.

Seeds whose records say ``independent_draws: true`` may hold out different prompts; otherwise pooling
requires the same held-out prompts.

:func:`learning_check_seeds` runs the checks and pools them (``curate learn --seeds 0,1,2`` and the
benchmark's ``--seeds`` call it). Example::

    from curate.learning import learning_check_seeds
    res = learning_check_seeds(data, "curated", [0, 1, 2], out="learn", config={"steps": 48})
    res.record["prediction"]["generation"], res.record["seeds"]  # the seeds' own folders are learn_seed0, learn_seed1, learn_seed2
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from .folder import LEARNING_COLUMNS, LearningResult, read_learning, save_learning_folder
from .measure import (
    generation_record,
    noise_ceiling,
    opening_concentration,
    reward_record,
    reward_rows,
    score_predictions,
    score_texts,
)
from .stats import merge_matrix, pooled_shift, prediction_scores

__all__ = ["learning_check_seeds", "planted_effects", "pool_learning"]

#: record fields that must agree between the pooled folders (everything but the seed)
_SAME = ("estimator", "loss", "eval_prompts", "samples_per_prompt", "max_new_tokens", "temperature", "recipe")
_MEANS = ("predicted", "predicted_curated", "scale", "pred_delta_std", "pred_win_share", "pred_length_controlled")
#: the per-pair counterfactual file of a learning folder (concept, pair, arm, margin, placebo_margin, adjusted)
COUNTERFACTUALS = "counterfactuals.parquet"
#: the pseudo-concept of the counterfactual file: a neutral insertion against its placebo (no table row)
NEUTRAL = "neutral"


def _base_model(record: dict) -> str:
    """The reference model without the seed's warm-up fingerprint (``model+warmup-<fp>``)."""
    return str(record.get("model", "")).split("+warmup-")[0]


def _read(folder) -> tuple[pd.DataFrame, dict, pd.DataFrame, pd.DataFrame | None]:
    from ..folders.layout import LEARNING_GENERATIONS

    table, record = read_learning(folder)
    gens = Path(folder) / LEARNING_GENERATIONS
    if not gens.exists():
        raise CurateError(
            f"{folder} has no {LEARNING_GENERATIONS}: pooling needs the generations. Run the learning check "
            f"with samples > 0 (`curate learn --samples 4`)."
        )
    g = pd.read_parquet(gens)
    if "model" not in g.columns and "arm" in g.columns:
        g = g.rename(columns={"arm": "model"})
    cf = Path(folder) / COUNTERFACTUALS
    return table, record, g, (pd.read_parquet(cf) if cf.exists() else None)


def _per_prompt(gens: pd.DataFrame, concepts: list[str], arms) -> dict[str, pd.DataFrame]:
    """Per held-out prompt, each arm's mean score minus the reference's (``{arm: prompts × concepts}``); every
    model's generations are scored once."""
    from ..generate import MARKERS

    if set(concepts) & set(MARKERS):  # a protocol measured the generator's marker concepts: score them too
        from .heldout import register_markers

        register_markers()
    means = {}
    for name, g in gens.groupby("model"):
        means[name] = score_texts(g["text"].tolist(), concepts).groupby(g["prompt"].to_numpy()).mean()
    return {arm: means[arm] - means["reference"] for arm in arms}


def _check_poolable(folders, runs) -> tuple[list, list[str], tuple[str, ...]]:
    """``(seeds, concepts, arms)`` of runs that may be pooled; raises with the fix otherwise."""
    tables, records = [r[0] for r in runs], [r[1] for r in runs]
    seeds = [r.get("config", {}).get("seed") for r in records]
    if len(set(map(str, seeds))) != len(seeds):
        raise CurateError(f"The folders repeat a seed ({dict(zip(map(str, folders), seeds))}): pool distinct seeds.")
    first = records[0]
    for f, r in zip(folders[1:], records[1:]):
        cfg_a = {k: v for k, v in first.get("config", {}).items() if k != "seed"}
        cfg_b = {k: v for k, v in r.get("config", {}).items() if k != "seed"}
        diff = [k for k in _SAME if r.get(k) != first.get(k)] + (["config"] if cfg_a != cfg_b else [])
        diff += ["model"] if _base_model(r) != _base_model(first) else []
        if diff:
            raise CurateError(
                f"{f} differs from {folders[0]} in {diff}: pool only runs of the same check that differ in the seed."
            )
    concepts = tables[0]["concept"].tolist()
    for f, t in zip(folders[1:], tables[1:]):
        if t["concept"].tolist() != concepts:
            raise CurateError(f"{f} measured concepts {t['concept'].tolist()}, {folders[0]} measured {concepts}.")
    independent = all(r.get("independent_draws") is True for r in records)
    prompts = [set(r[2]["prompt"]) for r in runs]
    if not independent and any(p != prompts[0] for p in prompts[1:]):
        raise CurateError(
            "The folders held out different prompts: pool runs on the same data with the same eval_prompts "
            "(or independent runs whose learning.json says independent_draws: true)."
        )
    has_sham = all(
        "observed_sham" in t.columns and t["observed_sham"].notna().any() and "sham" in set(r[2]["model"])
        for t, r in zip(tables, runs)
    )
    return seeds, concepts, ("original", "curated", "sham") if has_sham else ("original", "curated")


def _reward_units(t: pd.DataFrame, concepts: list[str], arm: str) -> np.ndarray:
    """One seed's implicit-reward shares as 0/1 units per counterfactual pair (pairs × concepts, NaN padded;
    a tie counts a half), so the pooled share's CI can resample pairs within seeds."""
    n = t.loc[concepts, "reward_n"].fillna(0).to_numpy(float).astype(int)
    share = t.loc[concepts, f"reward_{arm}"].to_numpy(float)
    units = np.full((max(1, int(n.max(initial=0))), len(concepts)), np.nan)
    for j, (nn, sh) in enumerate(zip(n, share)):
        if nn > 0 and sh == sh:
            wins = sh * nn
            units[:nn, j] = 0.0
            units[: int(wins), j] = 1.0
            if wins - int(wins) > 0:
                units[int(wins), j] = wins - int(wins)
    return units


def pool_learning(folders, *, out: str | Path | None = None, planted: dict | None = None) -> LearningResult:
    """Pool learning folders of the same check run with different seeds (see the module docstring).

    Args:
        folders: two or more learning folders from :func:`curate.learning_check` (the same data, recipe, model
            and settings; different ``config.seed``).
        out: the pooled learning folder to write; None writes nothing.
        planted: the generator's ground truth, ``{concept: planted effect}`` (0 or absent: not planted); None
            reads ``planted`` from the first folder's record when it has one.

    Returns:
        :class:`LearningResult` whose record has ``seeds``, ``by_seed`` (each folder's own scores),
        ``observed_by_seed``, ``noise_ceiling``, ``prediction``, ``merged_concepts``, ``shifts`` and ``blocked``.

    Raises:
        CurateError: fewer than two folders, a repeated seed, folders whose settings or concepts differ, held-out
            prompts that differ between runs not marked ``independent_draws``, or a folder without generations.
    """
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise CurateError(f"pool_learning needs two or more learning folders (one per seed), got {len(folders)}.")
    runs = [_read(f) for f in folders]
    seeds, concepts, arms = _check_poolable(folders, runs)
    idx = [r[0].set_index("concept") for r in runs]
    records = [r[1] for r in runs]
    per_prompt = [_per_prompt(r[2], concepts, arms) for r in runs]
    pooled, observed_by_seed = _pool_table(idx, concepts, arms, per_prompt)
    adjusted, neutral = _counterfactual_pool(runs, concepts, arms)
    for col, values in adjusted.items():
        pooled[col] = values
    planted = planted if planted is not None else planted_effects(records[0])
    first = records[0]
    record = {
        **{k: first.get(k) for k in ("device", "steps", *_SAME)},
        "model": _base_model(first),
        "models_by_seed": {str(s): r.get("model") for s, r in zip(seeds, records)},
        "config": {**first.get("config", {}), "seed": seeds},
        "seeds": seeds,
        "arms": list(arms),
        "independent_draws": all(r.get("independent_draws") is True for r in records),
        "pooled_from": [str(f) for f in folders],
        "n_concepts_supported": int(pooled["supported"].sum()),
        **_pooled_scores(pooled, idx, runs, per_prompt, arms, planted),
        "by_seed": {
            str(s): {k: r.get(k) for k in ("r", "r_low", "r_high", "perm95", "spearman", "r_reward", "spearman_reward")}
            | {"r2": r.get("r2"), "r2_reward": r.get("r2_reward")}
            for s, r in zip(seeds, records)
        },
        "observed_by_seed": observed_by_seed,
        "neutral_insertion": neutral,
        "n_train_original": first.get("n_train_original"),
        "n_train_curated": first.get("n_train_curated"),
        "n_dropped": first.get("n_dropped"),
        "seconds": round(sum(float(r.get("seconds") or 0) for r in records), 1),
    }
    gens = {}
    for s, run in zip(seeds, runs):
        for name, part in run[2].groupby("model"):
            gens.setdefault(name, []).append(part.drop(columns="model").assign(seed=s))
    # the top opening over every seed's generations; the distinct share per seed, averaged (over all seeds the
    # distinct openings of n seeds are divided by n times the generations, so it would not compare with one seed's)
    record["openings"] = {
        name: {
            **opening_concentration(pd.concat(parts)["text"]),
            "distinct_share": round(
                float(np.mean([opening_concentration(p["text"])["distinct_share"] for p in parts])), 3
            ),
        }
        for name, parts in gens.items()
    }
    record["openings_by_seed"] = {str(s): r.get("openings") for s, r in zip(seeds, records)}
    result = LearningResult(
        pooled,
        json.loads(json.dumps(record, default=str)),
        None,
        {k: pd.concat(v, ignore_index=True) for k, v in gens.items()},
    )
    if out is not None:
        result.out = save_learning_folder(result, out, source=", ".join(map(str, folders)))
    return result


def _col(t: pd.DataFrame, concepts: list[str], col: str) -> np.ndarray:
    """A table column over ``concepts`` as floats; a column an older folder lacks reads as NaN."""
    return t.loc[concepts, col].to_numpy(float) if col in t.columns else np.full(len(concepts), np.nan)


def planted_effects(record: dict) -> dict[str, float] | None:
    """The generator's ground truth of a protocol seed as ``{named concept: planted effect}``: ``planted``
    maps a generator concept to its ``[rate in the better response, rate in the worse]`` (the effect is their
    difference) or to a number, and ``named_of`` names the concept that measures it. None when not recorded.

    Example:

        >>> planted_effects({"planted": {"flattery": [0.6, 0.2], "padding": 0.3}, "named_of": {"padding": "length"}})
        {'flattery': 0.4, 'length': 0.3}
    """
    planted, named = record.get("planted"), record.get("named_of") or {}
    if not planted:
        return None
    out: dict[str, float] = {}
    for g, v in planted.items():
        effect = float(v[0]) - float(v[1]) if isinstance(v, (list, tuple)) else float(v)
        key = named.get(g, g)
        out[key] = round(out.get(key, 0.0) + effect, 6)
    return out


def _pool_table(idx, concepts, arms, per_prompt) -> tuple[pd.DataFrame, dict]:
    """The seed-pooled per-concept table: shifts and reward shares with hierarchical CIs (seeds, then prompts
    or pairs), predictions averaged over seeds; and ``observed_by_seed`` (concept → arm → one shift per seed)."""
    pooled = pd.DataFrame({"concept": concepts})
    for col in ("label", "source", "action"):
        pooled[col] = idx[0].loc[concepts, col].to_numpy()
    for col in (*_MEANS, "predicted_sham", *(f"reward_placebo_{arm}" for arm in arms)):
        if all(col in t.columns for t in idx):
            pooled[col] = np.mean([t.loc[concepts, col].to_numpy(float) for t in idx], axis=0)
    pooled["n_differ"] = np.round(np.mean([t.loc[concepts, "n_differ"].to_numpy(float) for t in idx], axis=0))
    pooled["supported"] = np.all([t.loc[concepts, "supported"].to_numpy(bool) for t in idx], axis=0)
    observed_by_seed: dict[str, dict[str, list]] = {c: {} for c in concepts}
    n = np.nansum([t.loc[concepts, "reward_n"].to_numpy(float) for t in idx], axis=0)  # counterfactual pairs
    for arm in arms:
        m, lo, hi = pooled_shift([d[arm][concepts].to_numpy(float) for d in per_prompt])
        pooled[f"observed_{arm}"], pooled[f"observed_{arm}_low"], pooled[f"observed_{arm}_high"] = m, lo, hi
        pooled[f"{arm}_mean"] = np.mean([_col(t, concepts, f"{arm}_mean") for t in idx], axis=0)
        for c in concepts:
            observed_by_seed[c][arm] = [round(float(t.loc[c, f"observed_{arm}"]), 4) for t in idx]
        if all(f"reward_{arm}" in t.columns for t in idx):
            share, lo, hi = pooled_shift([_reward_units(t, concepts, arm) for t in idx])
            pooled[f"reward_{arm}"] = np.where(n > 0, share, np.nan)
            pooled[f"reward_{arm}_low"], pooled[f"reward_{arm}_high"] = (
                np.where(n > 0, lo, np.nan),
                np.where(n > 0, hi, np.nan),
            )
        m = np.sum(  # a folder written before the margin existed leaves it NaN, never 0
            [
                np.where(w > 0, _col(t, concepts, f"reward_margin_{arm}") * w, 0.0)
                for t in idx
                for w in [t.loc[concepts, "reward_n"].fillna(0).to_numpy(float)]
            ],
            0,
        )
        pooled[f"reward_margin_{arm}"] = np.where(n > 0, m / np.where(n > 0, n, 1), np.nan)
    pooled["reward_n"] = np.where(n > 0, n, np.nan)
    pooled["reference_mean"] = np.mean([t.loc[concepts, "reference_mean"].to_numpy(float) for t in idx], axis=0)
    extra = [c for c in pooled.columns if c not in LEARNING_COLUMNS]
    return pooled.reindex(columns=[*LEARNING_COLUMNS, *extra]), observed_by_seed


def _counterfactual_pool(runs, concepts, arms) -> tuple[dict, dict]:
    """With ``counterfactuals.parquet`` in every seed: per arm the pooled placebo-adjusted margin per concept
    (``reward_adjusted_<arm>`` with its hierarchical CI over seeds and pairs), and the pooled neutral insertion
    (a neutral sentence against its length-matched placebo: it should be 0) per arm. Else two empty dicts."""
    if not all(r[3] is not None for r in runs):
        return {}, {}
    columns, neutral = {}, {}
    for arm in arms:
        m, lo, hi = pooled_shift([_adjusted(r[3], arm, concepts) for r in runs])
        columns |= {f"reward_adjusted_{arm}": m, f"reward_adjusted_{arm}_low": lo, f"reward_adjusted_{arm}_high": hi}
        if all((r[3]["concept"] == NEUTRAL).any() for r in runs):
            m, lo, hi = pooled_shift([_adjusted(r[3], arm, [NEUTRAL]) for r in runs])
            neutral[arm] = {"adjusted": float(m[0]), "low": float(lo[0]), "high": float(hi[0])}
    return columns, neutral


def _adjusted(cf: pd.DataFrame, arm: str, concepts: list[str]) -> np.ndarray:
    """One seed's placebo-adjusted margins, pairs × ``concepts`` (NaN where a concept has fewer pairs)."""
    part = cf[cf["arm"] == arm]
    return (
        part.pivot_table(index="pair", columns="concept", values="adjusted").reindex(columns=concepts).to_numpy(float)
    )


def _reward_seed_units(run, t, concepts, arm) -> np.ndarray:
    """One seed's reward measurement per unit: the placebo-adjusted margin per counterfactual pair when the
    folder has ``counterfactuals.parquet``, else the 0/1 preference per pair behind ``reward_<arm>``."""
    return _reward_units(t, concepts, arm) if run[3] is None else _adjusted(run[3], arm, concepts)


def _group_max(values: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Per merged group, the largest of its members' values (a group carries a planted concept when a member is
    planted; averaging would dilute it by the unplanted names of the same thing)."""
    return np.array([values[mat[:, g] > 0].max() for g in range(mat.shape[1])])


def _predictions(pooled, idx, runs, per_prompt, arms, merged, planted) -> tuple[dict, dict, dict]:
    """``(prediction, sd, reward)``: the prediction's scores against the generation shifts and the implicit
    reward (merged concepts, hierarchical CIs, baselines); per arm the seeds' per-prompt shifts in sd over the
    merged supported concepts; per arm the seeds' per-pair reward units over the merged reward concepts."""
    concepts = pooled["concept"].tolist()
    truth = None if not planted else np.array([float(planted.get(c, 0.0)) for c in concepts])
    sup = pooled["supported"].to_numpy(bool)
    names, M = merge_matrix([c for c, s in zip(concepts, sup) if s], merged)
    sd = {
        arm: [
            (d[arm][concepts].to_numpy(float) / t.loc[concepts, "scale"].to_numpy(float))[:, sup] @ M
            for d, t in zip(per_prompt, idx)
        ]
        for arm in arms
    }
    rw = reward_rows(pooled).to_numpy(bool)
    _, RM = merge_matrix([c for c, s in zip(concepts, rw) if s], merged)
    reward = {arm: [_reward_seed_units(run, t, concepts, arm)[:, rw] @ RM for run, t in zip(runs, idx)] for arm in arms}
    prediction: dict = {"merged_names": names}
    for arm in arms:
        tail = "" if arm == "original" else f"_{arm}"
        if f"predicted{tail}" not in pooled.columns:
            continue  # a sham arm from folders that predate its prediction
        p = pooled[f"predicted{tail}"].to_numpy(float)
        plant = truth is not None and arm == "original"
        prediction[f"generation{tail}"] = prediction_scores(
            p[sup] @ M, sd[arm], planted=_group_max(truth[sup], M) if plant else None
        )
        prediction[f"reward{tail}"] = prediction_scores(
            p[rw] @ RM, reward[arm], planted=_group_max(truth[rw], RM) if plant else None
        )
    prediction["reward_measure"] = "adjusted margin" if all(r[3] is not None for r in runs) else "share of pairs"
    return prediction, sd, reward


def _pooled_scores(pooled, idx, runs, per_prompt, arms, planted) -> dict:
    """The record's statistics: ``prediction``, ``merged_concepts``, ``shifts`` and ``blocked`` (generation
    shifts in sd per arm over the merged concepts, hierarchical CIs), the noise ceilings, and the flat headline
    keys (``r``, ``r_low``, …, ``r_reward``, …) the card and older readers use."""
    merged = {name: m for r in runs for name, m in (r[1].get("merged_concepts") or {}).items() if len(m) > 1}
    prediction, sd, reward = _predictions(pooled, idx, runs, per_prompt, arms, merged, planted)
    names = prediction["merged_names"]
    sup = pooled["supported"].to_numpy(bool)
    _, M = merge_matrix(pooled.loc[sup, "concept"].tolist(), merged)
    blocked_groups = (M.T @ (pooled["action"].fillna("").to_numpy()[sup] == "block").astype(float)) > 0
    shifts, blocked = {}, {}
    for arm in arms:
        m, lo, hi = pooled_shift(sd[arm])
        shifts[arm] = {g: [float(a), float(b), float(c)] for g, a, b, c in zip(names, m, lo, hi)}
        if blocked_groups.any():
            bm, bl, bh = pooled_shift([u[:, blocked_groups].mean(1, keepdims=True) for u in sd[arm]])
            blocked[arm] = {"shift": float(bm[0]), "low": float(bl[0]), "high": float(bh[0])}
    quality, estimators = score_predictions(pooled)
    reward_quality, reward_estimators = score_predictions(pooled, against="reward")
    flat = {**generation_record(quality), **reward_record(reward_quality, reward_estimators)}
    for key, tail in (("generation", ""), ("generation_curated", "_curated"), ("reward", "_reward")):
        for k in ("r", "r_low", "r_high", "perm95", "spearman"):
            flat[f"{k}{tail}"] = prediction[key].get(k)
        r = prediction[key].get("r")
        flat[f"r2{tail}"] = None if r is None or r != r else r * r  # for older readers only; never shown as R²
    for k in ("r", "r_low", "r_high", "perm95", "spearman"):
        flat[f"{k}_reward_curated"] = prediction["reward_curated"].get(k)
    return {
        **flat,
        "estimators": estimators,
        "prediction": prediction,
        "merged_concepts": merged,
        "blocked_concepts": [g for g, b in zip(names, blocked_groups) if b],
        "shifts": shifts,
        "blocked": blocked,
        "noise_ceiling": {arm: noise_ceiling([np.nanmean(u, 0) for u in sd[arm]]) for arm in ("original", "curated")},
        "noise_ceiling_reward": {arm: noise_ceiling([np.nanmean(u, 0) for u in reward[arm]]) for arm in reward},
    }


def learning_check_seeds(data, curated, seeds, *, out, config=None, on_seed=None, **kwargs) -> LearningResult:
    """Run :func:`curate.learning_check` once per seed, each into ``<out>_seed<N>``, and pool them into ``out``.

    Args:
        data, curated: as for :func:`curate.learning_check`.
        seeds: two or more distinct training seeds.
        out: the pooled learning folder; each seed's folder is its sibling ``<out>_seed<N>``.
        config: :class:`curate.learning.LearnConfig` or a dict of its fields; its ``seed`` is replaced by each seed.
        on_seed: called as ``on_seed(seed, result)`` after each seed's check (progress, printing).
        **kwargs: the other arguments of :func:`curate.learning_check`.

    Returns:
        The pooled :class:`LearningResult` (:func:`pool_learning`).

    Raises:
        CurateError: fewer than two seeds or a repeated seed (before anything is trained).
    """
    from dataclasses import replace

    from .check import learning_check
    from .train import LearnConfig

    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise CurateError(f"Pass two or more distinct seeds such as [0, 1, 2], got {seeds} (one seed: learning_check).")
    config = LearnConfig(**config) if isinstance(config, dict) else (config or LearnConfig())
    out = Path(out)
    folders = []
    for s in seeds:
        res = learning_check(
            data, curated, out=out.with_name(f"{out.name}_seed{s}"), config=replace(config, seed=s), **kwargs
        )
        folders.append(res.out)
        if on_seed is not None:
            on_seed(s, res)
    return pool_learning(folders, out=out)
