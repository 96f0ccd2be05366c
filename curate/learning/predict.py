"""Predict, from an audit, how preference optimisation on the audited data should move each concept.

DPO raises the policy's log-probability of chosen responses relative to rejected ones. To first order,
the expected score of a concept in the policy's outputs moves in the direction of the mean chosen −
rejected difference of that concept over the training pairs, scaled by how much the concept varies.
Three estimators, each per concept over the (weighted) usable pairs, with Δᵢ = score(chosen) − score(rejected):

* ``delta_std`` (**default**): the weighted mean Δ divided by the pooled standard deviation of the
  concept's scores over all responses (chosen and rejected). It is in the same units as the observed
  shift that :func:`curate.learning_check` reports (policy − reference, divided by the same standard
  deviation), it uses the *size* of each difference (a length or a count, not only its sign), and it is
  exactly what re-weighting changes: with curated weights the weighted mean Δ of a rebalanced concept is
  0, so the prediction for the curated policy is 0.
* ``win_share``: (win_rate − 0.5) × 2 × the weighted share of pairs that differ in the concept — the net
  share of pairs that push the concept up. For a 0/1 concept it equals the mean Δ; it ignores magnitudes.
* ``length_controlled``: the audit's length-controlled Bradley–Terry coefficient (Δ scaled to unit RMS,
  Δlog-length as a covariate). It answers "does the preference reward the concept beyond length", which is
  the right question for an audit but not for what DPO learns: DPO also learns the length-mediated part.

The benchmark (``benchmarks/bench_learning.py``) prints the signed r (with its CI and the shuffled-prediction baseline) and Spearman of all three against the observed
shifts. :func:`curate.learning_check` audits each response as DPO sees it, cut to the training window
(``max_length`` tokens of prompt + response): a concept written after the window cannot be learned. All
three use the audit's weights, so an audit fitted on a curated ``train`` split with ``weights="weight"``
(rows with ``keep`` False are in the ``dropped`` split and not in it) predicts the curated policy:
``predict_learning(ConceptAudit().fit(curated_train, weights="weight"))``.

**What none of them sees.** Each is first-order and per concept: it assumes a concept's score moves by its own
Δ. A small policy trained hard (the benchmark's CPU size) instead learns how to *open* an answer and collapses
onto one rewarded opening phrase; concepts that compete for the same position (flattery, agreement, a
Markdown heading) then move together, the winner up and the others down whatever their own Δ. The learning
record's ``openings`` shows when that happened; pooling seeds (:func:`curate.learning.pool_learning`) shows
how much of it is one run's draw.

Example:

    >>> from curate import make_preference_pairs, annotate, ConceptAudit
    >>> from curate.learning import predict_learning
    >>> audit = ConceptAudit().fit(annotate(make_preference_pairs(400, seed=0).dataset))
    >>> pred = predict_learning(audit).set_index("concept")
    >>> bool(pred.loc["flattery", "predicted"] > 0.2), bool(abs(pred.loc["emoji", "predicted"]) < 0.1)
    (True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError, NotFittedError
from ..stats import pooled_scale, standardised_mean_delta

ESTIMATORS = ("delta_std", "win_share", "length_controlled")
DEFAULT_ESTIMATOR = "delta_std"
PREDICTION_COLUMNS = [
    "concept",
    "label",
    "source",
    "n_differ",
    "scale",
    "pred_delta_std",
    "pred_win_share",
    "pred_length_controlled",
    "predicted",
]


def predict_learning(audit, estimator: str = DEFAULT_ESTIMATOR) -> pd.DataFrame:
    """Per concept, the predicted direction and size of the shift that DPO on the audited data causes.

    Args:
        audit: a fitted :class:`curate.ConceptAudit` (named concepts and SAE groups, weighted if it was
            fitted with weights).
        estimator: which estimator fills ``predicted``: one of :data:`ESTIMATORS` (see the module docstring).

    Returns:
        A DataFrame with :data:`PREDICTION_COLUMNS`, one row per concept of the audit, in the audit's order.
        ``scale`` is the pooled standard deviation used to standardise (the observed shift is divided by
        the same number); ``pred_*`` are the three estimators; ``predicted`` is the chosen one.

    Raises:
        NotFittedError: the audit is not fitted.
        ValueError: an unknown estimator.
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"Unknown estimator {estimator!r}. Allowed: {list(ESTIMATORS)}.")
    if not hasattr(audit, "scores_") or not hasattr(audit, "results_"):
        raise NotFittedError(
            "This ConceptAudit is not fitted yet. Call `fit(dataset)` first, then predict_learning(audit)."
        )
    scores = audit.scores_
    w = np.asarray(scores.weights, dtype=float)
    delta = scores.delta.astype(float)
    wsum = w.sum()
    scale = pooled_scale(scores.chosen, scores.rejected, w)
    differ = delta != 0
    share_differ = (w[:, None] * differ).sum(0) / wsum if wsum > 0 else np.full(delta.shape[1], np.nan)
    up = (w[:, None] * (delta > 0)).sum(0)
    down = (w[:, None] * (delta < 0)).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = up / (up + down)
    pred_win = np.where(share_differ > 0, (win_rate - 0.5) * 2 * share_differ, 0.0)
    res = audit.results_.set_index("concept")
    ids = scores.concepts["concept"].tolist()
    lc = res["length_controlled_coef"].reindex(ids).to_numpy(dtype=float)
    out = pd.DataFrame(
        {
            "concept": ids,
            "label": scores.concepts["label"].to_numpy(),
            "source": scores.concepts["source"].to_numpy(),
            "n_differ": differ.sum(0).astype(int),
            "scale": scale,
            "pred_delta_std": standardised_mean_delta(scores.chosen, scores.rejected, w),
            "pred_win_share": np.nan_to_num(pred_win, nan=0.0),
            "pred_length_controlled": np.nan_to_num(lc, nan=0.0),
        }
    )
    out["predicted"] = out[f"pred_{estimator}"]
    return out[PREDICTION_COLUMNS]
