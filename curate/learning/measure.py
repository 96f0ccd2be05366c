"""Measure what a policy learned, per concept, against its reference model.

* :func:`generation_shift`: sample responses to held-out prompts from the policy and from the reference
  (same seeded decoding), score each with the named concepts, and report the mean per-prompt difference
  (policy − reference) with a bootstrap 95% CI over prompts.
* :func:`implicit_reward_preference`: on counterfactual pairs that differ only in one concept
  (:func:`curate.generate.make_counterfactual_pairs`), the share of pairs where the policy's implicit reward
  β·log(π/π_ref) is higher for the variant that carries the concept, with a Wilson 95% interval. It needs
  no generation (two forward passes per pair), so it is the cheap and sensitive measurement.
* :func:`counterfactual_margins`: on held-out placebo pairs (:func:`curate.learning.heldout.make_placebo_pairs`),
  per pair the β·log-ratio margin of the concept variant over the base, of its length-matched placebo over
  the base, and their difference (``adjusted``: the concept's own reward, length and position cancelled);
  :func:`summarize_margins` reports the mean adjusted margin with a bootstrap 95% CI over pairs, the share of
  pairs the concept wins against its placebo, and the placebo's own share against the base.
* :func:`opening_concentration`: how many generations open with the same words — a policy that collapsed onto
  one opening phrase moves every concept in that phrase at once, which no per-concept prediction foresees.
* :func:`score_predictions`: the prediction's agreement with a learning table's generation shifts or
  implicit-reward shares (signed r with a 95% CI and the shuffled-prediction baseline ``perm95``, Spearman's ρ
  and the calibration line: :func:`curate.learning.stats.prediction_quality`, importable from here as before,
  like :func:`curate.learning.stats.noise_ceiling`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import _columns as C
from ..errors import ConfigError
from .predict import ESTIMATORS
from .stats import noise_ceiling, prediction_quality  # the statistics live in stats; kept importable from here
from .train import uses_chat_template

__all__ = [
    "bootstrap_shift",
    "counterfactual_margins",
    "encode",
    "generate",
    "generate_cached",
    "generation_record",
    "generation_shift",
    "implicit_reward_preference",
    "noise_ceiling",
    "opening_concentration",
    "prediction_quality",
    "reward_record",
    "score_predictions",
    "score_texts",
    "sequence_logps",
    "summarize_margins",
    "trained_window",
]


def encode(tokenizer, messages: list[dict], response: str | None = None) -> tuple[list[int], list[int]]:
    """``(prompt_ids, completion_ids)`` the way TRL's DPOTrainer tokenizes a pair (chat template when the
    tokenizer has one, else the prompt text and the response plus EOS)."""
    if uses_chat_template(tokenizer):
        p = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        p = list(p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p)
        if response is None:
            return p, []
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=True)
        full = list(full["input_ids"] if isinstance(full, dict) or hasattr(full, "keys") else full)
        n = 0
        while n < min(len(p), len(full)) and p[n] == full[n]:
            n += 1
        return p[:n], full[n:]
    text = "\n\n".join(m["content"] for m in messages if m["role"] != "system") if messages else ""
    p = tokenizer(text)["input_ids"]
    if response is None:
        return p, []
    full = tokenizer(text + response + (tokenizer.eos_token or ""))["input_ids"]
    n = 0
    while n < min(len(p), len(full)) and p[n] == full[n]:
        n += 1
    return p[:n], full[n:]


def trained_window(dataset, tokenizer, max_length: int | None):
    """``dataset`` with each response cut to the part DPO trains on: TRL keeps the first ``max_length`` tokens
    of prompt + response (``truncation_mode="keep_start"``), so a concept written after the window (a heading
    after two openers, a sign-off) is invisible to the loss and cannot be learned. The prediction of the
    learning check is computed on these texts. ``max_length=None`` returns ``dataset`` unchanged.

    Returns:
        ``(dataset, share_cut)``: the windowed pairs and the share of responses (chosen and rejected) cut.
    """
    if max_length is None:
        return dataset, 0.0
    msgs = _messages(dataset)
    cut, out = 0, {C.CHOSEN: [], C.REJECTED: []}
    for m, c, r in zip(msgs, dataset[C.CHOSEN], dataset[C.REJECTED]):
        for col, text in ((C.CHOSEN, c), (C.REJECTED, r)):
            p, comp = encode(tokenizer, m, text)
            keep = max(0, max_length - len(p))
            if keep < len(comp):
                cut += 1
                text = tokenizer.decode(comp[:keep], skip_special_tokens=True).strip()
            out[col].append(text)
    windowed = dataset.remove_columns([C.CHOSEN, C.REJECTED])
    windowed = windowed.add_column(C.CHOSEN, out[C.CHOSEN]).add_column(C.REJECTED, out[C.REJECTED])
    return windowed, cut / (2 * len(dataset)) if len(dataset) else 0.0


def sequence_logps(
    model, tokenizer, messages: list[list[dict]], responses: list[str], *, max_length: int = 128, batch_size: int = 16
) -> np.ndarray:
    """Sum of the log-probs of each response's tokens given its prompt (truncated to ``max_length``)."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = np.zeros(len(responses))
    encoded = [encode(tokenizer, m, r) for m, r in zip(messages, responses)]
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        seqs = [(p + c)[:max_length] for p, c in chunk]
        masks = [([0] * len(p) + [1] * len(c))[:max_length] for p, c in chunk]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), pad, dtype=torch.long)
        att = torch.zeros((len(seqs), L), dtype=torch.long)
        cm = torch.zeros((len(seqs), L), dtype=torch.float32)
        for i, (s, m) in enumerate(zip(seqs, masks)):
            ids[i, : len(s)] = torch.tensor(s)
            att[i, : len(s)] = 1
            cm[i, : len(m)] = torch.tensor(m, dtype=torch.float32)
        ids, att, cm = ids.to(device), att.to(device), cm.to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=att, use_cache=False).logits.float()
        lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
        out[start : start + len(chunk)] = (lp * cm[:, 1:]).sum(1).cpu().numpy()
    return out


def wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(mid - half), float(mid + half)


def implicit_reward_preference(
    policy,
    reference,
    tokenizer,
    pairs,
    *,
    beta: float = 0.1,
    max_length: int = 128,
    ref_logps: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Share of counterfactual pairs where β·log(π/π_ref) prefers ``chosen`` (the variant with the concept).

    Args:
        policy, reference: the trained policy and its reference (same tokenizer).
        pairs: a pair dataset (``prompt_messages`` or ``prompt``, ``chosen``, ``rejected``).
        ref_logps: the reference's ``(chosen, rejected)`` log-probs if already computed (shared between arms).

    Returns:
        ``{"share", "low", "high", "n", "mean_margin", "ref_logps"}``; ``mean_margin`` is the mean of
        β·(log π/π_ref(chosen) − log π/π_ref(rejected)).
    """
    msgs = _messages(pairs)
    if ref_logps is None:
        ref_logps = (
            sequence_logps(reference, tokenizer, msgs, pairs[C.CHOSEN], max_length=max_length),
            sequence_logps(reference, tokenizer, msgs, pairs[C.REJECTED], max_length=max_length),
        )
    pc = sequence_logps(policy, tokenizer, msgs, pairs[C.CHOSEN], max_length=max_length)
    pr = sequence_logps(policy, tokenizer, msgs, pairs[C.REJECTED], max_length=max_length)
    margin = beta * ((pc - ref_logps[0]) - (pr - ref_logps[1]))
    n = len(margin)
    k = float((margin > 0).sum() + 0.5 * (margin == 0).sum())
    lo, hi = wilson(k, n)
    return {
        "share": k / n if n else float("nan"),
        "low": lo,
        "high": hi,
        "n": n,
        "mean_margin": float(margin.mean()) if n else float("nan"),
        "ref_logps": ref_logps,
    }


def counterfactual_margins(
    policy, reference, tokenizer, pairs, *, beta: float = 0.1, max_length: int = 128, ref_logps: dict | None = None
) -> tuple[pd.DataFrame, dict]:
    """Per pair of :func:`curate.learning.heldout.make_placebo_pairs`: the implicit-reward margins β·log(π/π_ref).

    Returns:
        ``(frame, ref_logps)``: ``frame`` has one row per pair with ``pair``, ``margin`` (concept variant minus
        base), ``placebo_margin`` (placebo minus base), ``adjusted`` (``margin - placebo_margin``: concept
        variant minus its length-matched placebo), ``concept_tokens`` and ``placebo_tokens``; ``ref_logps`` are
        the reference's log-probs of the three texts, to pass back for the next arm.
    """
    msgs = _messages(pairs)
    cols = {"variant": C.CHOSEN, "base": C.REJECTED, "placebo": "placebo"}
    if ref_logps is None:
        ref_logps = {
            k: sequence_logps(reference, tokenizer, msgs, pairs[c], max_length=max_length) for k, c in cols.items()
        }
    pol = {k: sequence_logps(policy, tokenizer, msgs, pairs[c], max_length=max_length) for k, c in cols.items()}
    ratio = {k: beta * (pol[k] - ref_logps[k]) for k in cols}
    margin, placebo = ratio["variant"] - ratio["base"], ratio["placebo"] - ratio["base"]
    frame = pd.DataFrame(
        {
            "pair": np.arange(len(margin)),
            "margin": margin,
            "placebo_margin": placebo,
            "adjusted": margin - placebo,
            "concept_tokens": pairs["concept_tokens"],
            "placebo_tokens": pairs["placebo_tokens"],
        }
    )
    return frame, ref_logps


def summarize_margins(frame: pd.DataFrame, *, seed: int = 0) -> dict:
    """One arm's counterfactual measurement of one concept from :func:`counterfactual_margins` rows.

    Returns:
        ``share`` / ``low`` / ``high``: the share of pairs where the concept variant beats its placebo (Wilson
        95%); ``adjusted`` / ``adjusted_low`` / ``adjusted_high``: the mean placebo-adjusted margin with a
        bootstrap 95% CI over pairs; ``placebo_share``: the share where the placebo beats the base (what length
        alone earns); ``mean_margin``: the mean unadjusted margin; ``n``.

    Example:

        >>> import pandas as pd
        >>> f = pd.DataFrame({"margin": [0.3, 0.1, 0.2], "placebo_margin": [0.1, 0.1, -0.1],
        ...                   "adjusted": [0.2, 0.0, 0.3]})
        >>> out = summarize_margins(f)
        >>> out["n"], round(out["adjusted"], 3), round(out["placebo_share"], 3)
        (3, 0.167, 0.667)
    """
    adj, plc = frame["adjusted"].to_numpy(float), frame["placebo_margin"].to_numpy(float)
    n = len(adj)
    k = float((adj > 0).sum() + 0.5 * (adj == 0).sum())
    lo, hi = wilson(k, n)
    m, mlo, mhi = bootstrap_shift(adj, seed=seed)
    return {
        "share": k / n if n else float("nan"),
        "low": lo,
        "high": hi,
        "n": n,
        "adjusted": m,
        "adjusted_low": mlo,
        "adjusted_high": mhi,
        "placebo_share": float(((plc > 0).sum() + 0.5 * (plc == 0).sum()) / n) if n else float("nan"),
        "mean_margin": float(frame["margin"].mean()) if n else float("nan"),
    }


def _messages(pairs) -> list[list[dict]]:
    cols = pairs.column_names
    if C.PROMPT_MESSAGES in cols:
        return [[{"role": m["role"], "content": m["content"]} for m in ms] for ms in pairs[C.PROMPT_MESSAGES]]
    return [[{"role": "user", "content": p}] for p in pairs[C.PROMPT]]


def generate(
    model,
    tokenizer,
    messages: list[list[dict]],
    *,
    samples: int = 4,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    progress=None,
) -> list[list[str]]:
    """``samples`` responses per prompt, sampled at ``temperature`` (0 = greedy) with a fixed seed per batch,
    so two models see the same random stream."""
    import torch

    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prompts = [encode(tokenizer, m)[0] for m in messages]
    flat = [(i, p) for i, p in enumerate(prompts) for _ in range(samples)]
    out: list[list[str]] = [[] for _ in prompts]
    try:
        for b, start in enumerate(range(0, len(flat), batch_size)):
            chunk = flat[start : start + batch_size]
            L = max(len(p) for _, p in chunk)
            ids = torch.full((len(chunk), L), pad, dtype=torch.long)
            att = torch.zeros_like(ids)
            for j, (_, p) in enumerate(chunk):
                ids[j, L - len(p) :] = torch.tensor(p)
                att[j, L - len(p) :] = 1
            torch.manual_seed(seed * 100003 + b)
            kwargs = dict(do_sample=temperature > 0, max_new_tokens=max_new_tokens, pad_token_id=pad)
            if temperature > 0:
                kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
            with torch.no_grad():
                gen = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **kwargs)
            texts = tokenizer.batch_decode(gen[:, L:], skip_special_tokens=True)
            for (i, _), t in zip(chunk, texts):
                out[i].append(t.strip())
            if progress is not None:
                progress(len(chunk))
    finally:
        tokenizer.padding_side = side
    return out


def generate_cached(model, tokenizer, messages: list[list[dict]], *, identity: str, cache_dir=None, **kwargs):
    """:func:`generate`, with the texts saved under ``cache_dir/generations`` by a hash of the model's
    ``identity`` (its adapter fingerprint, or the reference's model id), the prompts and the decoding
    settings. Decoding is seeded, so a second check that shares a model (the reference, the original-data
    arm under another recipe) reads its generations instead of sampling them again.

    Returns:
        ``(texts, cached)``: the responses per prompt and whether they came from the cache.
    """
    import hashlib
    import json
    import os
    from pathlib import Path

    if cache_dir is None:
        return generate(model, tokenizer, messages, **kwargs), False
    settings = {k: v for k, v in kwargs.items() if k != "progress"}
    key = json.dumps({"model": identity, "messages": messages, "settings": settings}, sort_keys=True, default=str)
    path = Path(cache_dir) / "generations" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    if path.exists():
        texts = json.loads(path.read_text())
        if len(texts) == len(messages):
            return texts, True
    texts = generate(model, tokenizer, messages, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(texts))
    os.replace(tmp, path)  # a killed run leaves the old file or none
    return texts, False


def score_texts(texts: list[str], concepts: list[str]) -> pd.DataFrame:
    """Named-concept scores of ``texts`` (one row per text, one column per concept)."""
    from ..concepts.named import NamedConcepts

    ann = NamedConcepts(concepts, text_columns=("text",))
    out = ann({"text": list(texts)})
    return pd.DataFrame({c: out[C.score_column("text", c)] for c in concepts})


def bootstrap_shift(diff: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-prompt differences and its percentile bootstrap 95% CI (resampling prompts)."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[idx].mean(1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def generation_shift(
    policy_scores: pd.DataFrame, reference_scores: pd.DataFrame, prompt_index: np.ndarray, *, seed: int = 0
) -> pd.DataFrame:
    """Per concept: mean per-prompt (policy − reference) score with a bootstrap 95% CI over prompts.

    ``policy_scores`` / ``reference_scores`` have one row per generation; ``prompt_index`` says which prompt
    each row answers (the same for both).
    """
    rows = []
    for c in policy_scores.columns:
        pol = pd.Series(policy_scores[c].to_numpy(float)).groupby(prompt_index).mean()
        ref = pd.Series(reference_scores[c].to_numpy(float)).groupby(prompt_index).mean()
        m, lo, hi = bootstrap_shift((pol - ref).to_numpy(), seed=seed)
        rows.append(
            {
                "concept": c,
                "shift": m,
                "low": lo,
                "high": hi,
                "policy_mean": float(pol.mean()),
                "reference_mean": float(ref.mean()),
            }
        )
    return pd.DataFrame(rows)


def opening_concentration(texts, n_words: int = 3) -> dict:
    """How concentrated the openings of ``texts`` are: the most common first ``n_words`` words (case-folded),
    the share of texts that open with it, and the number of distinct openings over the number of texts.

    Example:

        >>> opening_concentration(["You ask such good ones.", "you ask such things", "The sky is blue."])
        {'top': 'you ask such', 'top_share': 0.667, 'distinct_share': 0.667}
    """
    heads = [" ".join(str(t).lower().split()[:n_words]) for t in texts]
    if not heads:
        return {"top": "", "top_share": float("nan"), "distinct_share": float("nan")}
    counts = pd.Series(heads).value_counts()
    return {
        "top": str(counts.index[0]),
        "top_share": round(float(counts.iloc[0]) / len(heads), 3),
        "distinct_share": round(len(counts) / len(heads), 3),
    }


def reward_rows(table: pd.DataFrame) -> pd.Series:
    """The concepts a prediction is scored on against the implicit reward: measured on counterfactual pairs and
    with support in the data (pairs that differ, a finite scale)."""
    scale = table["scale"].astype(float)
    return (table["reward_n"].astype(float) > 0) & (table["n_differ"].astype(float) > 0) & np.isfinite(scale)


def score_predictions(table: pd.DataFrame, against: str = "generation") -> tuple[dict, dict]:
    """Prediction quality of a learning table: ``({arm: {r, r_low, r_high, perm95, …}}, {estimator: {r, …}})``
    (:func:`prediction_quality`).

    ``against="generation"`` scores the observed generation shifts (divided by ``scale``, the predictions'
    units) over the supported concepts; ``against="reward"`` scores the implicit-reward shares
    (``reward_*``, what the policy learned to prefer with everything else held fixed) over the concepts that
    have counterfactual pairs and differ in the data. The reward needs no sampling, so it is far less noisy
    than a generation shift at CPU size; a concept can be preferred and still seldom generated (a heading
    that a flattery opener crowds out of a 48-token answer).
    """
    if against not in ("generation", "reward"):
        raise ConfigError(f"against={against!r}: use 'generation' or 'reward'.")
    if against == "generation":
        rows = table[table["supported"].astype(bool)]
        observed = {arm: rows[f"observed_{arm}"] / rows["scale"] for arm in ("original", "curated")}
    else:
        rows = table[reward_rows(table)]
        observed = {arm: rows[f"reward_{arm}"].astype(float) for arm in ("original", "curated")}
    quality = {
        arm: prediction_quality(rows["predicted" if arm == "original" else "predicted_curated"], observed[arm])
        for arm in ("original", "curated")
    }
    estimators = {est: prediction_quality(rows[f"pred_{est}"], observed["original"]) for est in ESTIMATORS}
    return quality, estimators


def reward_record(quality: dict, estimators: dict) -> dict:
    """The ``learning.json`` fields of :func:`score_predictions` ``(…, against="reward")``: ``r_reward``,
    ``r_reward_low``, ``r_reward_high``, ``perm95_reward``, ``spearman_reward`` and their ``_curated`` twins,
    ``n_concepts_reward``, ``estimators_reward`` (and ``r2_reward``, the squared r, for older readers)."""
    return {
        **_headline(quality, "_reward"),
        "estimators_reward": estimators,
        "n_concepts_reward": quality.get("original", {}).get("n", 0),
    }


def generation_record(quality: dict) -> dict:
    """The ``learning.json`` fields of :func:`score_predictions` against the generation shifts: ``r``, ``r_low``,
    ``r_high``, ``perm95``, ``spearman`` and their ``_curated`` twins (and ``r2``, the squared r, for older
    readers)."""
    return _headline(quality, "")


def _headline(quality: dict, suffix: str) -> dict:
    out = {}
    for arm, tail in (("original", ""), ("curated", "_curated")):
        q = quality.get(arm, {})
        for key in ("r", "r_low", "r_high", "perm95", "spearman", "r2"):
            out[f"{key}{suffix}{tail}"] = q.get(key)
    return out
