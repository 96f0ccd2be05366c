"""Pool learning folders of several training seeds into one: what the policies learned on average.

At CPU size one LoRA DPO run is noisy: the trained sample, the LoRA initialisation, the batch order and the
decoding all follow the seed, and the bootstrap CI of one folder covers only the held-out prompts, not the
run-to-run spread. :func:`pool_learning` reads folders that :func:`curate.learning_check` wrote with the
same data, recipe, model and settings but different ``seed`` values and writes the seed-averaged table:

* ``observed_*``: per held-out prompt, the policy − reference score difference averaged over the seeds;
  the mean over prompts with a bootstrap 95% CI over prompts (so it equals the mean of the seeds' shifts);
* ``predicted*`` / ``pred_*`` / ``scale``: the mean over seeds (each seed trains on its own sample);
* ``reward_*``: the implicit-reward shares pooled over every counterfactual pair of every seed (Wilson CI);
  ``reward_margin_*`` the mean margin over the same pairs;
* ``learning.json``: R² and Spearman of the pooled table, plus ``seeds``, each seed's own R² and Spearman,
  and ``observed_by_seed`` (concept → arm → one shift per seed) so the spread stays visible;
  ``noise_ceiling`` (per arm, :func:`curate.learning.measure.noise_ceiling`): how well the seeds' observed
  shifts agree with each other, and so the highest R² a prediction can expect against one seed
  (``r2_one_seed``) and against the pooled table (``r2_pooled``). An R² far below the ceiling is the
  prediction's error; a low ceiling says the runs are too noisy for any prediction.

:func:`learning_check_seeds` runs the checks and pools them (``curate learn --seeds 0,1,2`` and the
benchmark's ``--seeds`` call it). Example::

    from curate.learning import learning_check_seeds
    res = learning_check_seeds(data, "curated", [0, 1, 2], out="learn", config={"steps": 48})
    res.record["r2"], res.record["seeds"]  # the seeds' own folders are learn_seed0, learn_seed1, learn_seed2
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from .folder import LEARNING_COLUMNS, LearningResult, read_learning, save_learning_folder
from .measure import (
    bootstrap_shift,
    noise_ceiling,
    opening_concentration,
    reward_record,
    reward_rows,
    score_predictions,
    score_texts,
    wilson,
)

__all__ = ["learning_check_seeds", "pool_learning"]

#: record fields that must agree between the pooled folders (everything but the seed)
_SAME = ("estimator", "loss", "eval_prompts", "samples_per_prompt", "max_new_tokens", "temperature", "recipe")
_MEANS = ("predicted", "predicted_curated", "scale", "pred_delta_std", "pred_win_share", "pred_length_controlled")


def _base_model(record: dict) -> str:
    """The reference model without the seed's warm-up fingerprint (``model+warmup-<fp>``)."""
    return str(record.get("model", "")).split("+warmup-")[0]


def _read(folder) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    from ..folders.layout import LEARNING_GENERATIONS

    table, record = read_learning(folder)
    gens = Path(folder) / LEARNING_GENERATIONS
    if not gens.exists():
        raise CurateError(
            f"{folder} has no {LEARNING_GENERATIONS}: pooling needs the generations. Run the learning check "
            f"with samples > 0 (`curate learn --samples 4`)."
        )
    return table, record, pd.read_parquet(gens)


def _per_prompt(gens: pd.DataFrame, concepts: list[str]) -> dict[str, pd.DataFrame]:
    """Per held-out prompt, each arm's mean score minus the reference's (``{arm: prompts × concepts}``); every
    model's generations are scored once."""
    means = {}
    for name, g in gens.groupby("model"):
        means[name] = score_texts(g["text"].tolist(), concepts).groupby(g["prompt"].to_numpy()).mean()
    return {arm: means[arm] - means["reference"] for arm in ("original", "curated")}


def pool_learning(folders, *, out: str | Path | None = None) -> LearningResult:
    """Pool learning folders of the same check run with different seeds (see the module docstring).

    Args:
        folders: two or more learning folders from :func:`curate.learning_check` (the same data, recipe, model
            and settings; different ``config.seed``).
        out: the pooled learning folder to write; None writes nothing.

    Returns:
        :class:`LearningResult` whose record has ``seeds``, ``by_seed`` (each folder's R² and Spearman),
        ``observed_by_seed`` and ``noise_ceiling``.

    Raises:
        CurateError: fewer than two folders, a repeated seed, folders whose settings, concepts or held-out
            prompts differ, or a folder without generations.
    """
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise CurateError(f"pool_learning needs two or more learning folders (one per seed), got {len(folders)}.")
    runs = [_read(f) for f in folders]
    tables, records = [r[0] for r in runs], [r[1] for r in runs]
    seeds = [r.get("config", {}).get("seed") for r in records]
    if len(set(seeds)) != len(seeds):
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
    prompts = [set(r[2]["prompt"]) for r in runs]
    if any(p != prompts[0] for p in prompts[1:]):
        raise CurateError(
            "The folders held out different prompts: pool runs on the same data with the same eval_prompts."
        )

    idx = [t.set_index("concept") for t in tables]
    pooled = pd.DataFrame({"concept": concepts})
    for col in ("label", "source", "action"):
        pooled[col] = idx[0].loc[concepts, col].to_numpy()
    for col in _MEANS:
        pooled[col] = np.mean([t.loc[concepts, col].to_numpy(float) for t in idx], axis=0)
    pooled["n_differ"] = np.round(np.mean([t.loc[concepts, "n_differ"].to_numpy(float) for t in idx], axis=0))
    pooled["supported"] = np.all([t.loc[concepts, "supported"].to_numpy(bool) for t in idx], axis=0)
    observed_by_seed: dict[str, dict[str, list]] = {c: {} for c in concepts}
    n = np.nansum([t.loc[concepts, "reward_n"].to_numpy(float) for t in idx], axis=0)  # counterfactual pairs
    per_prompt = [_per_prompt(g, concepts) for _, _, g in runs]
    for arm in ("original", "curated"):
        mean_diff = sum(d[arm] for d in per_prompt) / len(per_prompt)
        stats = [bootstrap_shift(mean_diff[c].to_numpy(), seed=0) for c in concepts]
        pooled[f"observed_{arm}"], pooled[f"observed_{arm}_low"], pooled[f"observed_{arm}_high"] = map(
            np.array, zip(*stats)
        )
        pooled[f"{arm}_mean"] = np.mean([t.loc[concepts, f"{arm}_mean"].to_numpy(float) for t in idx], axis=0)
        for c in concepts:
            observed_by_seed[c][arm] = [round(float(t.loc[c, f"observed_{arm}"]), 4) for t in idx]
        k = np.nansum(
            [(t.loc[concepts, f"reward_{arm}"] * t.loc[concepts, "reward_n"]).to_numpy(float) for t in idx], 0
        )
        ci = [wilson(kk, nn) for kk, nn in zip(k, n)]
        pooled[f"reward_{arm}"] = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        m = np.sum(  # a folder written before the margin existed leaves it NaN, never 0
            [
                np.where(w > 0, t.loc[concepts, f"reward_margin_{arm}"].to_numpy(float) * w, 0.0)
                for t in idx
                for w in [t.loc[concepts, "reward_n"].fillna(0).to_numpy(float)]
            ],
            0,
        )
        pooled[f"reward_margin_{arm}"] = np.where(n > 0, m / np.where(n > 0, n, 1), np.nan)
        pooled[f"reward_{arm}_low"], pooled[f"reward_{arm}_high"] = (np.array(x) for x in zip(*ci))
    pooled["reward_n"] = np.where(n > 0, n, np.nan)
    pooled["reference_mean"] = np.mean([t.loc[concepts, "reference_mean"].to_numpy(float) for t in idx], axis=0)
    pooled = pooled.reindex(columns=LEARNING_COLUMNS)

    quality, estimators = score_predictions(pooled)
    reward_quality, reward_estimators = score_predictions(pooled, against="reward")
    sup = pooled.loc[pooled["supported"], "concept"].tolist()
    ceiling = {
        arm: noise_ceiling(
            [t.loc[sup, f"observed_{arm}"].to_numpy(float) / t.loc[sup, "scale"].to_numpy(float) for t in idx]
        )
        for arm in ("original", "curated")
    }
    rw = pooled.loc[reward_rows(pooled), "concept"].tolist()
    ceiling_reward = {
        arm: noise_ceiling([t.loc[rw, f"reward_{arm}"].to_numpy(float) for t in idx]) for arm in ("original", "curated")
    }
    record = {
        **{k: first.get(k) for k in ("device", "steps", *_SAME)},
        "model": _base_model(first),
        "models_by_seed": {str(s): r.get("model") for s, r in zip(seeds, records)},
        "config": {**first.get("config", {}), "seed": seeds},
        "seeds": seeds,
        "pooled_from": [str(f) for f in folders],
        "r2": quality["original"].get("r2"),
        "spearman": quality["original"].get("spearman"),
        "r2_curated": quality["curated"].get("r2"),
        "spearman_curated": quality["curated"].get("spearman"),
        "n_concepts_supported": int(pooled["supported"].sum()),
        "estimators": estimators,
        **reward_record(reward_quality, reward_estimators),
        "by_seed": {
            str(s): {
                k: r.get(k)
                for k in ("r2", "spearman", "r2_curated", "spearman_curated", "r2_reward", "spearman_reward")
            }
            for s, r in zip(seeds, records)
        },
        "observed_by_seed": observed_by_seed,
        "noise_ceiling": ceiling,
        "noise_ceiling_reward": ceiling_reward,
        "n_train_original": first.get("n_train_original"),
        "n_train_curated": first.get("n_train_curated"),
        "n_dropped": first.get("n_dropped"),
        "seconds": round(sum(float(r.get("seconds") or 0) for r in records), 1),
    }
    gens = {}
    for s, (_, _, g) in zip(seeds, runs):
        for name, part in g.groupby("model"):
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
