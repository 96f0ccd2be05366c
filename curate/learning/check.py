"""``curate.learning_check``: train DPO on the original and on the curated pairs, and measure per concept
what each policy learned against the audit's prediction.

Steps: hold out a set of prompts (split by prompt, never trained on) → load one reference model → predict
each concept's shift from the audit of each arm's training pairs as the loss sees them, every response cut
to the training window (:func:`curate.learning.measure.trained_window`,
:func:`curate.learning.predict_learning`; the record's ``estimators`` also scores the prediction from the
whole responses) → train two LoRA DPO policies with the same seed, steps and hyper-parameters (reference
log-probs computed once, shared) → measure the generation shift on the held-out prompts and the implicit-reward
preference on counterfactual pairs → write the learning folder.

Example (minutes on a CPU; see docs/learning.md)::

    import curate
    res = curate.learning_check("outputs/demo/pairs.jsonl", "outputs/demo/curated", out="outputs/learning",
                                config={"steps": 48})
    res.table[["concept", "action", "predicted", "observed_original", "observed_curated"]]
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _columns as C
from ..errors import CurateError
from .folder import LEARNING_COLUMNS, LearningResult, learning_table, read_learning, save_learning_folder
from .inputs import (
    check_ids,
    curate_trained_rows,
    first_by_rank,
    load_curated,
    load_data,
    split_by_prompt,
    training_intervention,
)
from .measure import (
    generate_cached,
    generation_shift,
    implicit_reward_preference,
    opening_concentration,
    prediction_quality,
    reward_record,
    score_predictions,
    score_texts,
    trained_window,
)
from .predict import DEFAULT_ESTIMATOR, predict_learning
from .train import (
    LearnConfig,
    RefLogpMemo,
    default_cache_dir,
    fingerprint,
    load_reference,
    train_policy,
    training_pairs,
)
from .warmup import code_hash as warmup_code_hash
from .warmup import warm_up_reference, warmup_pairs

__all__ = ["LEARNING_COLUMNS", "LearningResult", "learning_check", "read_learning", "split_by_prompt"]


def learning_check(
    data,
    curated,
    *,
    out: str | Path | None = None,
    model=None,
    config: LearnConfig | dict | None = None,
    eval_prompts: int = 40,
    samples: int = 4,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    counterfactual_pairs: int = 32,
    concepts: list[str] | None = None,
    reward_concepts: list[str] | None = None,
    estimator: str = DEFAULT_ESTIMATOR,
    cache_dir: str | Path | None = "default",
    device: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    recurate: bool = True,
    log=print,
) -> LearningResult:
    """Train LoRA DPO on the original and on the curated pairs and measure what each policy learned.

    Args:
        data: the original pairs (anything :func:`curate.load_pairs` reads, or a ``Dataset``).
        curated: the ``--out`` folder of ``curate apply`` on ``data`` (or a ``DatasetDict`` with ``train`` and
            ``dropped``).
        out: the learning folder to write (``learning.parquet``, ``learning.json``, two PNGs); None writes nothing.
        model: reference model (None = SmolLM2-135M-Instruct offline; a Hub id / folder; or ``(model, tokenizer)``).
        config: :class:`LearnConfig` or a dict of its fields (steps, batch size, lr, β, LoRA, max length, seed,
            SFT weight).
        eval_prompts: distinct prompts held out of training for the generation shift.
        samples, max_new_tokens, temperature: decoding on held-out prompts (seeded; temperature 0 = greedy).
            ``samples=0`` skips generation (implicit reward only).
        counterfactual_pairs: pairs per concept for the implicit-reward preference (generator concepts only;
            0 skips it).
        reward_concepts: concepts to measure the implicit reward for (default: every measured concept the
            generator can vary alone: flattery, agreement, markdown, length (padding), emoji, hedging, sign_off,
            apology); each costs ``3 × 2 × counterfactual_pairs`` sequence forwards.
        concepts: named concepts to measure (default: every named concept with support in the data).
        estimator: which prediction fills ``predicted`` (see :mod:`curate.learning.predict`).
        cache_dir: adapter cache ("default" = ``~/.cache/curate/learning``; None disables it).
        recurate: the curated arm re-applies the folder's recipe to exactly the pairs the original arm trains
            on (:func:`curate.learning.inputs.curate_trained_rows`), so the curation holds on the trained sample;
            False trains on the folder's own rows (balanced over the whole data only).

    Returns:
        :class:`LearningResult`.

    Raises:
        CurateError: curated ids that do not match the data, too few held-out prompts.
        ModelError: the model cannot be loaded.
    """
    from ..audit import ConceptAudit
    from ..concepts.named import annotate, list_concepts
    from ..generate import DEFAULT_RATES, DETECTED_AS, make_counterfactual_pairs

    t0 = time.perf_counter()
    config = LearnConfig(**config) if isinstance(config, dict) else (config or LearnConfig())
    dataset = load_data(data, limit)
    dd, recipe, folder = load_curated(curated)
    train_cur_all, dropped = dd[C.TRAIN_SPLIT], dd[C.DROPPED_SPLIT]
    check_ids(dataset, train_cur_all, dropped)
    usable = dataset.filter(lambda r: not r, input_columns=[C.REASON]) if C.REASON in dataset.column_names else dataset
    held = split_by_prompt(usable[C.PROMPT], eval_prompts)
    orig_rows = [i for i, p in enumerate(usable[C.PROMPT]) if p not in held]
    train_orig = usable.select(orig_rows)
    held_ids = {i for i, p in zip(usable[C.ID], usable[C.PROMPT]) if p in held}
    cur_rows = [i for i, x in enumerate(train_cur_all[C.ID]) if x not in held_ids]
    train_cur = train_cur_all.select(cur_rows)
    if len(train_orig) == 0 or len(train_cur) == 0:
        raise CurateError(
            f"No training pairs left after holding out {eval_prompts} prompts "
            f"(original: {len(train_orig)}, curated: {len(train_cur)}). Pass a smaller --eval-prompts."
        )
    log(
        f"held out {len(held)} prompts ({len(usable) - len(train_orig)} pairs); training pairs: original "
        f"{len(train_orig)}, curated {len(train_cur)} (dropped split: {len(dropped)} rows)"
    )

    # predictions from the audit of the pairs each arm trains on
    n_used = config.steps * config.batch_size
    train_orig_used = first_by_rank(train_orig, n_used, config.seed)
    train_cur_used, curation = curate_trained_rows(train_orig_used, recipe, log) if recurate else (None, "off")
    if train_cur_used is None:
        log(f"curated arm: the folder's rows ({curation}); their balance holds over the whole data, not the sample")
        train_cur_used, curation = first_by_rank(train_cur, n_used, config.seed), {"recurated": False, "why": curation}
    known = list_concepts()
    names = [c for c in (concepts or known) if c in known and c != "log_length"]
    unknown = [c for c in (concepts or []) if c not in known]
    if unknown:
        raise CurateError(f"Unknown concepts {unknown}. Named concepts: {sorted(known)}.")
    timing = {"prepare": round(time.perf_counter() - t0, 1)}
    t = time.perf_counter()
    reference, tok, model_id, device = load_reference(model, device=device)
    log(f"reference model {model_id} on {device}")
    timing["load_model"] = round(time.perf_counter() - t, 1)

    # the prediction reads what the loss sees: each response cut to the training window (max_length)
    t = time.perf_counter()

    def predict(rows):
        w = C.WEIGHT if C.WEIGHT in rows.column_names else None
        return predict_learning(ConceptAudit(group_features=False).fit(annotate(rows, names), weights=w), estimator)

    win_o, cut_o = trained_window(train_orig_used, tok, config.max_length)
    win_c, cut_c = trained_window(train_cur_used, tok, config.max_length)
    pred_o, pred_c = predict(win_o), predict(win_c)
    full_o = predict(train_orig_used) if cut_o else pred_o  # the whole responses, for the record's comparison
    if cut_o:
        log(
            f"{cut_o:.0%} of the original arm's responses ({cut_c:.0%} of the curated arm's) are longer than the "
            f"training window (max_length {config.max_length}); the prediction reads the part DPO trains on"
        )
    names = [c for c in names if c in set(pred_o["concept"])]
    timing["predict"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    cache = default_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
    if isinstance(model, tuple):
        cache = None  # an in-memory model has no stable identity
    warmup = None
    if config.warmup_steps:
        # the SFT stage: both arms start from the same warmed-up reference and are measured against it
        sft_ds = warmup_pairs(first_by_rank(train_orig, config.warmup_steps * config.batch_size, config.seed), tok)
        wfp = "warmup-" + fingerprint(
            sft_ds,
            model_id=model_id,
            config=replace(config, steps=0, sft_weight=0.0, beta=LearnConfig.beta),  # the warm-up uses no β
            intervention={"warmup": warmup_code_hash()},
        )
        log(f"warming up the reference: SFT {config.warmup_steps} steps on {len(sft_ds)} responses (fingerprint {wfp})")
        reference, warmup = warm_up_reference(
            reference, tok, sft_ds, config, cache_dir=cache, fp=wfp, progress=progress
        )
        warmup = {**warmup, "fingerprint": wfp}
        model_id = f"{model_id}+{wfp}"
    timing["warmup"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    recipe_dict = recipe.to_dict() if recipe is not None else None
    ds_o = training_pairs(train_orig_used, tok, weights=True)
    ds_c = training_pairs(train_cur_used, tok, weights=True)
    intervention, inter_rec = training_intervention(recipe, folder)
    # reference log-probs persist beside the adapters: a second check on the same pairs (another recipe that
    # keeps the rows, a re-run) computes none again
    memo_path = (
        cache / f"ref_logps-{hashlib.sha1(f'{model_id}|{device}'.encode()).hexdigest()[:16]}.npz" if cache else None
    )
    memo = RefLogpMemo.load(memo_path) if memo_path else RefLogpMemo()
    arms = {}
    for arm, ds, inter, rec in (("original", ds_o, None, None), ("curated", ds_c, intervention, inter_rec)):
        fp = fingerprint(
            ds, model_id=model_id, config=config, recipe=recipe_dict if arm == "curated" else None, intervention=rec
        )
        log(f"training the {arm}-data policy ({config.steps} steps of {config.batch_size} pairs, fingerprint {fp})")
        policy, info = train_policy(
            reference, tok, ds, config, memo=memo, intervention=inter, cache_dir=cache, fp=fp, progress=progress
        )
        arms[arm] = (policy, {**info, "fingerprint": fp})
    log(f"reference log-probs: {memo.n_computed} sequences computed, {memo.n_reused} reused")
    if memo_path and memo.n_computed:
        memo.save(memo_path)
    timing["train"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()

    # implicit reward on counterfactual pairs
    reward = {}
    varied = {DETECTED_AS.get(g, g): g for g in DEFAULT_RATES}  # named concept -> the generator concept varied
    cf_concepts = (
        [c for c in names if c in varied and (reward_concepts is None or c in reward_concepts)]
        if counterfactual_pairs
        else []
    )
    for c in _progress(cf_concepts, "implicit reward (counterfactual pairs)", progress):
        pairs = make_counterfactual_pairs(varied[c], counterfactual_pairs, seed=config.seed + 1)
        ref_lp = None
        for arm, (policy, _) in arms.items():
            r = implicit_reward_preference(
                policy, reference, tok, pairs, beta=config.beta, max_length=config.max_length, ref_logps=ref_lp
            )
            ref_lp = r.pop("ref_logps")
            reward[(arm, c)] = r

    timing["implicit_reward"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    # generation shift on held-out prompts
    shifts, gens = {}, {}
    if samples > 0:
        first = {}
        msgs_all = (
            usable[C.PROMPT_MESSAGES]
            if C.PROMPT_MESSAGES in usable.column_names
            else [[{"role": "user", "content": p}] for p in usable[C.PROMPT]]
        )
        for p, m in zip(usable[C.PROMPT], msgs_all):
            if p in held and p not in first:
                first[p] = [{"role": x["role"], "content": x["content"]} for x in m]
        prompts = sorted(first)
        messages = [first[p] for p in prompts]
        prompt_index = np.repeat(np.arange(len(prompts)), samples)
        scores = {}
        identities = {
            "reference": f"{model_id}|{device}",
            **{a: f"{i['fingerprint']}|{device}" for a, (_, i) in arms.items()},
        }
        for name, m in (("reference", reference), *((a, p) for a, (p, _) in arms.items())):
            bar = _bar(len(prompts) * samples, f"generating ({name})", progress)
            texts, cached = generate_cached(
                m,
                tok,
                messages,
                identity=identities[name],
                cache_dir=cache,
                samples=samples,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=config.seed,
                progress=bar.update if bar else None,
            )
            if bar:
                bar.close()
            if cached:
                log(f"generations ({name}): read from the cache")
            flat = [t for ts in texts for t in ts]
            gens[name] = pd.DataFrame({"prompt": np.repeat(prompts, samples), "text": flat})
            scores[name] = score_texts(flat, names)
        for arm in arms:
            shifts[arm] = generation_shift(scores[arm], scores["reference"], prompt_index, seed=config.seed).set_index(
                "concept"
            )

    timing["generation"] = round(time.perf_counter() - t, 1)
    table = learning_table(names, pred_o, pred_c, shifts, reward, recipe)
    quality, estimators = score_predictions(table) if samples > 0 else ({}, {})
    reward_quality, reward_estimators = score_predictions(table, against="reward")
    if samples > 0:
        sup = table[table["supported"]]
        # the default estimator on the whole responses (what an audit of the data alone predicts)
        full = full_o.set_index("concept").reindex(sup["concept"])
        estimators["delta_std_whole_response"] = prediction_quality(
            full["pred_delta_std"].to_numpy(), sup["observed_original"].to_numpy() / full["scale"].to_numpy()
        )
    record = {
        "model": model_id,
        "device": device,
        "steps": config.steps,
        "config": config.to_dict(),
        "estimator": estimator,
        "loss": "sigmoid DPO, weighted per pair"
        + (f" + {config.sft_weight} x SFT on chosen" if config.sft_weight else "")
        + (f"; after an SFT warm-up of {config.warmup_steps} steps on both responses" if config.warmup_steps else ""),
        "warmup": warmup,
        "r2": quality.get("original", {}).get("r2"),
        "spearman": quality.get("original", {}).get("spearman"),
        "r2_curated": quality.get("curated", {}).get("r2"),
        "spearman_curated": quality.get("curated", {}).get("spearman"),
        **reward_record(reward_quality, reward_estimators),
        "n_concepts_supported": int(table["supported"].sum()),
        "responses_cut_by_window": {"original": round(cut_o, 4), "curated": round(cut_c, 4)},
        "estimators": estimators,
        "eval_prompts": len(held),
        "samples_per_prompt": samples,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "counterfactual_pairs": counterfactual_pairs,
        "n_train_original": len(train_orig),
        "n_train_curated": len(train_cur),
        "n_dropped": len(dropped),
        "n_used_original": len(ds_o),
        "n_used_curated": len(ds_c),
        "curation": curation,
        "recipe": recipe_dict,
        "training_time_intervention": inter_rec,
        "arms": {a: info for a, (_, info) in arms.items()},
        "reference_logps": {"computed": memo.n_computed, "reused": memo.n_reused},
        "seconds": round(time.perf_counter() - t0, 1),
        "timing": timing,
        "openings": {name: opening_concentration(g["text"]) for name, g in gens.items()},
    }
    result = LearningResult(table, record, None, gens)
    if out is not None:
        made_from = curated if isinstance(curated, (str, Path)) and (Path(curated) / "curate.json").exists() else None
        result.out = save_learning_folder(
            result, out, made_from=made_from, source=str(data) if isinstance(data, (str, Path)) else None
        )
    return result


def _progress(items, desc, on):
    if not on:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


def _bar(total, desc, on):
    if not on:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc)
