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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _columns as C
from ..errors import CurateError
from ..generate import DEFAULT_RATES
from .folder import (
    COUNTERFACTUAL_COLUMNS,
    LEARNING_COLUMNS,
    LearningResult,
    learning_table,
    read_learning,
    save_learning_folder,
)
from .heldout import NEUTRAL_CONCEPT
from .inputs import (
    check_ids,
    curate_trained_rows,
    curated_splits,
    first_by_rank,
    load_data,
    sham_rows,
    split_by_prompt,
    training_intervention,
)
from .measure import (
    counterfactual_margins,
    generate_cached,
    generation_record,
    generation_shift,
    implicit_reward_preference,
    opening_concentration,
    prediction_quality,
    reward_record,
    score_predictions,
    score_texts,
    summarize_margins,
    trained_window,
)
from .predict import DEFAULT_ESTIMATOR, predict_learning
from .stats import merge_correlated
from .train import (
    LearnConfig,
    RefLogpMemo,
    fingerprint,
    learning_cache_dir,
    load_reference,
    train_policy,
    training_pairs,
)
from .warmup import warm_up_reference, warmup_code_hash, warmup_pairs

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
    sham: bool = False,
    eval_messages: list[list[dict]] | None = None,
    counterfactuals: str = "training",
    counterfactual_seed: int | None = None,
    reward_max_length: int | None = None,
    record_extra: dict | None = None,
    log=print,
) -> LearningResult:
    """Train LoRA DPO on the original and on the curated pairs and measure what each policy learned.

    Args:
        data: the original pairs (anything :func:`curate.load_pairs` reads, or a ``Dataset``).
        curated: the ``--out`` folder of ``curate apply`` on ``data`` (or a ``DatasetDict`` with ``train`` and
            ``dropped``).
        out: the learning folder to write (``learning.parquet``, ``learning.json``, two PNGs, the generations and,
            with ``counterfactuals="heldout"``, ``counterfactuals.parquet``); None writes nothing.
        model: reference model (None = SmolLM2-135M-Instruct offline; a Hub id / folder; or ``(model, tokenizer)``).
        config: :class:`LearnConfig` or a dict of its fields (steps, batch size, lr, β, LoRA, max length, seed,
            SFT weight).
        eval_prompts: distinct prompts held out of training for the generation shift.
        samples, max_new_tokens, temperature: decoding on held-out prompts (seeded; temperature 0 = greedy).
            ``samples=0`` skips generation (implicit reward only).
        counterfactual_pairs: pairs per concept for the implicit-reward preference (generator concepts only;
            0 skips it).
        reward_concepts: concepts to measure the implicit reward for (default: every measured concept the
            generator can vary alone); each costs ``arms × 2 × counterfactual_pairs`` sequence forwards (``× 3``
            with placebos).
        concepts: named concepts to measure (default: every named concept with support in the data).
        estimator: which prediction fills ``predicted`` (see :mod:`curate.learning.predict`).
        cache_dir: adapter cache ("default" = ``~/.cache/curate/learning``; None disables it).
        recurate: the curated arm re-applies the folder's recipe to exactly the pairs the original arm trains
            on (:func:`curate.learning.inputs.curate_trained_rows`), so the curation holds on the trained sample;
            False trains on the folder's own rows (balanced over the whole data only).
        sham: also train a third policy, ``sham``, on as many rows as the curated arm with its weights permuted
            across them (:func:`curate.learning.inputs.sham_rows`): the control for "fewer effective rows".
        eval_messages: the held-out prompts (chat messages) to generate on, e.g. questions on topics the data
            never asks (:func:`curate.learning.heldout.heldout_topics`); then every data row trains and ``eval_prompts``
            is unused. None holds out ``eval_prompts`` of the data's own prompts.
        counterfactuals: ``"training"`` builds counterfactual pairs like the training data
            (:func:`curate.generate.make_counterfactual_pairs`); ``"heldout"`` from held-out phrasings on held-out topics,
            each against a length-matched placebo (:func:`curate.learning.heldout.make_placebo_pairs`), and writes the
            per-pair margins to ``counterfactuals.parquet``.
        counterfactual_seed: the seed of the counterfactual pairs (default ``config.seed + 1``).
        reward_max_length: tokens per counterfactual sequence (default ``config.max_length``).
        record_extra: fields added to ``learning.json`` (a protocol's hash, the git commit, ``independent_draws``).

    Returns:
        :class:`LearningResult`.

    Raises:
        CurateError: curated ids that do not match the data, too few held-out prompts, held-out prompts that
            the data trains on, an unknown ``counterfactuals``.
        ModelError: the model cannot be loaded.
    """
    t0 = time.perf_counter()
    config = LearnConfig(**config) if isinstance(config, dict) else (config or LearnConfig())
    if counterfactuals not in ("training", "heldout"):
        raise CurateError(f"counterfactuals={counterfactuals!r}: use 'training' or 'heldout'.")
    inp = _inputs(data, curated, eval_prompts, eval_messages, limit, log)
    rows, curation = _arm_rows(inp, config, recurate, sham, log)
    names = _concept_names(concepts)
    timing = {"prepare": round(time.perf_counter() - t0, 1)}
    t = time.perf_counter()
    reference, tok, model_id, device = load_reference(model, device=device)
    log(f"reference model {model_id} on {device}")
    timing["load_model"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    preds, full_o, cuts, names, merged = _predict_arms(rows, tok, config, names, estimator, log)
    timing["predict"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    cache = learning_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
    if isinstance(model, tuple):
        cache = None  # an in-memory model has no stable identity
    reference, model_id, warmup = _warm_up(reference, tok, inp.train_orig, config, model_id, cache, progress, log)
    timing["warmup"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    arms, memo, train_ds = _train_arms(reference, tok, rows, config, model_id, inp, cache, device, progress, log)
    timing["train"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    cf = dict(kind=counterfactuals, n=counterfactual_pairs, concepts=reward_concepts, seed=counterfactual_seed)
    reward, cf_rows = _measure_reward(arms, reference, tok, names, config, cf, reward_max_length, progress)
    timing["implicit_reward"] = round(time.perf_counter() - t, 1)
    neutral = {a: reward.pop((a, NEUTRAL_CONCEPT)) for a in arms if (a, NEUTRAL_CONCEPT) in reward}
    t = time.perf_counter()
    decoding = dict(samples=samples, max_new_tokens=max_new_tokens, temperature=temperature, seed=config.seed)
    ids = {"reference": f"{model_id}|{device}", **{a: f"{i['fingerprint']}|{device}" for a, (_, i) in arms.items()}}
    shifts, gens = _measure_generations(reference, arms, tok, inp.messages, names, decoding, ids, cache, progress, log)
    timing["generation"] = round(time.perf_counter() - t, 1)
    table = learning_table(names, preds["original"], preds["curated"], shifts, reward, inp.recipe, preds.get("sham"))
    record = _record(table, full_o, samples, config, estimator, model_id, device, warmup)
    record.update(
        {
            "responses_cut_by_window": {a: round(c, 4) for a, c in cuts.items()},
            # concepts whose Δ correlates > 0.95 over the trained rows: one idea, scored once when pooled
            "merged_concepts": {g: m for g, m in merged.items() if len(m) > 1},
            "eval_prompts": len(inp.messages),
            "heldout_by": "given" if eval_messages is not None else "prompt",
            "samples_per_prompt": samples,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "counterfactual_pairs": counterfactual_pairs,
            "counterfactuals": counterfactuals,
            "reward_max_length": reward_max_length or config.max_length,
            "n_train_original": len(inp.train_orig),
            "n_train_curated": len(inp.train_cur),
            "n_dropped": len(inp.dropped),
            **{f"n_used_{a}": len(ds) for a, ds in train_ds.items()},
            "curation": curation,
            "neutral_insertion": neutral or None,
            "recipe": inp.recipe.to_dict() if inp.recipe is not None else None,
            "training_time_intervention": inp.intervention[1],
            "arms": {a: info for a, (_, info) in arms.items()},
            "reference_logps": {"computed": memo.n_computed, "reused": memo.n_reused},
            "seconds": round(time.perf_counter() - t0, 1),
            "timing": timing,
            "openings": {name: opening_concentration(g["text"]) for name, g in gens.items()},
            **(record_extra or {}),
        }
    )
    result = LearningResult(table, record, None, gens, cf_rows)
    if out is not None:
        made_from = curated if isinstance(curated, (str, Path)) and (Path(curated) / "curate.json").exists() else None
        result.out = save_learning_folder(
            result, out, made_from=made_from, source=str(data) if isinstance(data, (str, Path)) else None
        )
    return result


@dataclass
class _Inputs:
    """What a check trains and measures on: the usable rows, each arm's candidate rows, the held-out prompts."""

    usable: object
    train_orig: object
    train_cur: object
    dropped: object
    messages: list  # (prompt, chat messages) per held-out prompt
    recipe: object
    folder: object
    intervention: tuple = (None, None)


def _inputs(data, curated, eval_prompts, eval_messages, limit, log) -> _Inputs:
    """Load and check the data and the curated folder; hold out prompts (the data's own, or ``eval_messages``)."""
    dataset = load_data(data, limit)
    dd, recipe, folder = curated_splits(curated)
    train_cur_all, dropped = dd[C.TRAIN_SPLIT], dd[C.DROPPED_SPLIT]
    check_ids(dataset, train_cur_all, dropped)
    usable = dataset.filter(lambda r: not r, input_columns=[C.REASON]) if C.REASON in dataset.column_names else dataset
    if eval_messages is not None:
        given = [[{"role": m["role"], "content": m["content"]} for m in ms] for ms in eval_messages]
        messages = sorted((_last_user(ms), ms) for ms in given)  # (the prompt, its messages) in a stable order
        asked = {p for p, _ in messages}
        trained = sorted(asked & {_last_user(ms) for ms in _data_messages(usable)})
        if trained:
            raise CurateError(
                f"{len(trained)} held-out prompts are asked in the training data (e.g. {trained[:3]}). Pass "
                "eval_messages on topics the data never asks (curate.learning.heldout.heldout_topics)."
            )
        held = set()
    else:
        held = split_by_prompt(usable[C.PROMPT], eval_prompts)
        first = {}
        for p, m in zip(usable[C.PROMPT], _data_messages(usable)):
            if p in held and p not in first:
                first[p] = m
        messages = [(p, first[p]) for p in sorted(first)]
    train_orig = usable.select([i for i, p in enumerate(usable[C.PROMPT]) if p not in held])
    held_ids = {i for i, p in zip(usable[C.ID], usable[C.PROMPT]) if p in held}
    train_cur = train_cur_all.select([i for i, x in enumerate(train_cur_all[C.ID]) if x not in held_ids])
    if len(train_orig) == 0 or len(train_cur) == 0:
        raise CurateError(
            f"No training pairs left after holding out {eval_prompts} prompts "
            f"(original: {len(train_orig)}, curated: {len(train_cur)}). Pass a smaller --eval-prompts."
        )
    log(
        f"held out {len(messages)} prompts ({len(usable) - len(train_orig)} pairs); training pairs: original "
        f"{len(train_orig)}, curated {len(train_cur)} (dropped split: {len(dropped)} rows)"
    )
    return _Inputs(usable, train_orig, train_cur, dropped, messages, recipe, folder)


def _data_messages(usable) -> list[list[dict]]:
    if C.PROMPT_MESSAGES in usable.column_names:
        return [[{"role": x["role"], "content": x["content"]} for x in m] for m in usable[C.PROMPT_MESSAGES]]
    return [[{"role": "user", "content": p}] for p in usable[C.PROMPT]]


def _last_user(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def _arm_rows(inp: _Inputs, config: LearnConfig, recurate: bool, sham: bool, log) -> tuple[dict, dict | str]:
    """The rows each arm trains on (``{arm: Dataset}``) and how the curated arm's were made."""
    n_used = config.steps * config.batch_size
    orig = first_by_rank(inp.train_orig, n_used, config.seed)
    cur, curation = curate_trained_rows(orig, inp.recipe, log) if recurate else (None, "off")
    if cur is None:
        log(f"curated arm: the folder's rows ({curation}); their balance holds over the whole data, not the sample")
        cur, curation = first_by_rank(inp.train_cur, n_used, config.seed), {"recurated": False, "why": curation}
    rows = {"original": orig, "curated": cur}
    if sham:
        rows["sham"] = sham_rows(orig, cur, config.seed)
        log(f"sham arm: {len(rows['sham'])} of the {len(orig)} trained rows at random, the curated weights permuted")
    return rows, curation


def _concept_names(concepts) -> list[str]:
    from ..concepts.named import list_concepts

    known = list_concepts()
    unknown = [c for c in (concepts or []) if c not in known]
    if unknown:
        raise CurateError(f"Unknown concepts {unknown}. Named concepts: {sorted(known)}.")
    return [c for c in (concepts or known) if c in known and c != "log_length"]


def _predict_arms(rows: dict, tok, config: LearnConfig, names, estimator, log):
    """Each arm's predicted shifts from the audit of its pairs as the loss sees them (cut to the training window).

    Returns ``(predictions by arm, the original arm's prediction from whole responses, share cut by arm, names,
    merged)``; ``merged`` groups the concepts whose Δ correlates > 0.95 over the original arm's trained rows
    (:func:`curate.learning.stats.merge_correlated`).
    """
    from ..audit import ConceptAudit
    from ..concepts.named import annotate

    audits = {}

    def predict(r, arm=None):
        w = C.WEIGHT if C.WEIGHT in r.column_names else None
        audit = ConceptAudit(group_features=False).fit(annotate(r, names), weights=w)
        audits[arm] = audit
        return predict_learning(audit, estimator)

    preds, cuts = {}, {}
    for arm, r in rows.items():
        win, cuts[arm] = trained_window(r, tok, config.max_length)
        preds[arm] = predict(win, arm)
    full_o = predict(rows["original"]) if cuts["original"] else preds["original"]
    s = audits["original"].scores_
    merged = merge_correlated(pd.DataFrame(s.chosen - s.rejected, columns=list(s.concepts["concept"])))
    if cuts["original"]:
        log(
            f"{cuts['original']:.0%} of the original arm's responses ({cuts['curated']:.0%} of the curated arm's) are "
            f"longer than the training window (max_length {config.max_length}); the prediction reads the part DPO "
            "trains on"
        )
    return preds, full_o, cuts, [c for c in names if c in set(preds["original"]["concept"])], merged


def _warm_up(reference, tok, train_orig, config: LearnConfig, model_id, cache, progress, log):
    """The SFT stage: every arm starts from the same warmed-up reference and is measured against it."""
    if not config.warmup_steps:
        return reference, model_id, None
    sft_ds = warmup_pairs(first_by_rank(train_orig, config.warmup_steps * config.batch_size, config.seed), tok)
    wfp = "warmup-" + fingerprint(
        sft_ds,
        model_id=model_id,
        config=replace(config, steps=0, sft_weight=0.0, beta=LearnConfig.beta),  # the warm-up uses no β
        intervention={"warmup": warmup_code_hash()},
    )
    log(f"warming up the reference: SFT {config.warmup_steps} steps on {len(sft_ds)} responses (fingerprint {wfp})")
    reference, warmup = warm_up_reference(reference, tok, sft_ds, config, cache_dir=cache, fp=wfp, progress=progress)
    return reference, f"{model_id}+{wfp}", {**warmup, "fingerprint": wfp}


def _train_arms(reference, tok, rows, config, model_id, inp: _Inputs, cache, device, progress, log):
    """Train one LoRA DPO policy per arm with the same seed, steps and settings (reference log-probs shared)."""
    recipe_dict = inp.recipe.to_dict() if inp.recipe is not None else None
    inp.intervention = training_intervention(inp.recipe, inp.folder)
    ds = {arm: training_pairs(r, tok, weights=True) for arm, r in rows.items()}
    # reference log-probs persist beside the adapters: a second check on the same pairs (another recipe that
    # keeps the rows, a re-run) computes none again
    memo_path = (
        cache / f"ref_logps-{hashlib.sha1(f'{model_id}|{device}'.encode()).hexdigest()[:16]}.npz" if cache else None
    )
    memo = RefLogpMemo.load(memo_path) if memo_path else RefLogpMemo()
    arms = {}
    for arm in ds:
        inter, rec = inp.intervention if arm == "curated" else (None, None)
        extra = {"sham": "curated weights permuted over random rows"} if arm == "sham" else None
        fp = fingerprint(
            ds[arm],
            model_id=model_id,
            config=config,
            recipe=recipe_dict if arm == "curated" else None,
            intervention=rec if arm == "curated" else extra,
        )
        log(f"training the {arm}-data policy ({config.steps} steps of {config.batch_size} pairs, fingerprint {fp})")
        policy, info = train_policy(
            reference, tok, ds[arm], config, memo=memo, intervention=inter, cache_dir=cache, fp=fp, progress=progress
        )
        arms[arm] = (policy, {**info, "fingerprint": fp})
    log(f"reference log-probs: {memo.n_computed} sequences computed, {memo.n_reused} reused")
    if memo_path and memo.n_computed:
        memo.save(memo_path)
    return arms, memo, ds


def _measure_reward(arms, reference, tok, names, config, cf: dict, max_length, progress):
    """The implicit reward of every arm on counterfactual pairs: ``({(arm, concept): summary}, per-pair rows)``."""
    from ..generate import DETECTED_AS, KNOWN_CONCEPTS, make_counterfactual_pairs
    from .heldout import make_placebo_pairs

    if not cf["n"]:
        return {}, None
    heldout = cf["kind"] == "heldout"
    pool = KNOWN_CONCEPTS if heldout else [c for c in KNOWN_CONCEPTS if c in DEFAULT_RATES]
    varied = {DETECTED_AS.get(g, g): g for g in pool if g != "markdown" or not heldout}
    todo = [c for c in names if c in varied and (cf["concepts"] is None or c in cf["concepts"])]
    if heldout and cf["concepts"] and NEUTRAL_CONCEPT in cf["concepts"]:
        todo.append(NEUTRAL_CONCEPT)
    seed = config.seed + 1 if cf["seed"] is None else cf["seed"]
    max_length = max_length or config.max_length
    reward, frames = {}, []
    for c in _progress(todo, "implicit reward (counterfactual pairs)", progress):
        g = varied.get(c, c)
        if not heldout:
            pairs, ref_lp = make_counterfactual_pairs(g, cf["n"], seed=seed), None
            for arm, (policy, _) in arms.items():
                r = implicit_reward_preference(
                    policy, reference, tok, pairs, beta=config.beta, max_length=max_length, ref_logps=ref_lp
                )
                ref_lp = r.pop("ref_logps")
                reward[(arm, c)] = r
            continue
        count = _token_counter(tok)
        pairs, ref_lp = make_placebo_pairs(g, cf["n"], seed=seed, count_tokens=count), None
        for arm, (policy, _) in arms.items():
            f, ref_lp = counterfactual_margins(
                policy, reference, tok, pairs, beta=config.beta, max_length=max_length, ref_logps=ref_lp
            )
            reward[(arm, c)] = summarize_margins(f, seed=config.seed)
            frames.append(f.assign(concept=c, arm=arm))
    rows = pd.concat(frames, ignore_index=True) if frames else None
    if rows is not None:
        rows = rows[[*COUNTERFACTUAL_COLUMNS]]
    return reward, rows


def _token_counter(tok):
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def _measure_generations(reference, arms, tok, messages, names, decoding: dict, ids: dict, cache, progress, log):
    """Sample every model on the held-out prompts (same seeded decoding) and each arm's shift from the reference."""
    shifts, gens = {}, {}
    samples = decoding["samples"]
    if samples <= 0:
        return shifts, gens
    prompts = [p for p, _ in messages]
    messages = [m for _, m in messages]
    prompt_index = np.repeat(np.arange(len(prompts)), samples)
    scores = {}
    for name, m in (("reference", reference), *((a, p) for a, (p, _) in arms.items())):
        bar = _bar(len(prompts) * samples, f"generating ({name})", progress)
        texts, cached = generate_cached(
            m, tok, messages, identity=ids[name], cache_dir=cache, progress=bar.update if bar else None, **decoding
        )
        if bar:
            bar.close()
        if cached:
            log(f"generations ({name}): read from the cache")
        flat = [t for ts in texts for t in ts]
        gens[name] = pd.DataFrame({"prompt": np.repeat(prompts, samples), "text": flat})
        scores[name] = score_texts(flat, names)
    for arm in arms:
        shifts[arm] = generation_shift(scores[arm], scores["reference"], prompt_index, seed=decoding["seed"]).set_index(
            "concept"
        )
    return shifts, gens


def _record(table, full_o, samples, config: LearnConfig, estimator, model_id, device, warmup) -> dict:
    """The scores of the table (generation and implicit reward) and the settings that made it."""
    quality, estimators = score_predictions(table) if samples > 0 else ({}, {})
    reward_quality, reward_estimators = score_predictions(table, against="reward")
    if samples > 0:
        sup = table[table["supported"]]
        # the default estimator on the whole responses (what an audit of the data alone predicts)
        full = full_o.set_index("concept").reindex(sup["concept"])
        estimators["delta_std_whole_response"] = prediction_quality(
            full["pred_delta_std"].to_numpy(), sup["observed_original"].to_numpy() / full["scale"].to_numpy()
        )
    return {
        "model": model_id,
        "device": device,
        "steps": config.steps,
        "config": config.to_dict(),
        "estimator": estimator,
        "loss": "sigmoid DPO, weighted per pair"
        + (f" + {config.sft_weight} x SFT on chosen" if config.sft_weight else "")
        + (f"; after an SFT warm-up of {config.warmup_steps} steps on both responses" if config.warmup_steps else ""),
        "warmup": warmup,
        **generation_record(
            quality
        ),  # signed r with its CI and the shuffled-prediction baseline (+ r2 for old readers)
        **reward_record(reward_quality, reward_estimators),
        "n_concepts_supported": int(table["supported"].sum()),
        "estimators": estimators,
    }


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
