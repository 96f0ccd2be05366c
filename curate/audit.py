"""The concept audit: which concepts separate chosen from rejected responses, and how sure we are.

For each concept over usable pairs, with Δ = score(chosen) − score(rejected):

* ``n_differ`` pairs where Δ ≠ 0, and ``win_rate`` = share of those where the response with more of the
  concept was chosen, with a 95% Wilson interval (``ci_low``, ``ci_high``);
* ``effect_size``: Cohen's d_z = mean(Δ) / sd(Δ); ``p_value``: two-sided exact sign test;
  ``q_value``: Benjamini–Hochberg across all concepts;
* a length-controlled effect: the Bradley–Terry logistic model P(chosen) = σ(b·Δconcept + c·Δlog-length)
  (pair orientation randomised, equivalently no intercept), Δ scaled to unit RMS, giving
  ``length_controlled_coef``, ``length_controlled_p`` (Wald) and ``length_controlled_q`` (BH);
* held-out confirmation: pairs are split by a hash of their prompt into a discovery and a confirmation
  half; a concept is ``confirmed`` when it is significant in discovery (BH q < alpha) and the confirmation
  half agrees in direction and is significant (BH over the concepts carried forward);
* ``nearest_named``/``nearest_r``: the named concept whose scores correlate most with this concept's
  (over all responses), for reading SAE features;
* a multivariate model: an L2 logistic regression of the preference on all concept Δs, fitted on the
  discovery half and scored on the confirmation half (``auc_``).

With ``weights`` (e.g. from a rebalancing intervention) every statistic is weighted, and intervals and
tests use the Kish effective number of pairs.

Example:

    >>> from curate import make_preference_pairs, annotate, ConceptAudit
    >>> ds = annotate(make_preference_pairs(400, seed=0).dataset)
    >>> audit = ConceptAudit().fit(ds)
    >>> row = audit.results_.set_index("concept").loc["flattery"]
    >>> bool(row["win_rate"] > 0.6), bool(row["confirmed"])
    (True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats as S
from .errors import NotFittedError
from .scores import LENGTH_CONCEPTS, ConceptScores, concept_scores, prompt_halves

RESULT_COLUMNS = [
    "concept", "label", "source", "n_pairs", "n_differ", "win_rate", "ci_low", "ci_high", "effect_size",
    "mean_delta", "p_value", "q_value", "length_controlled_coef", "length_controlled_p", "length_controlled_q",
    "discovery_win_rate", "discovery_q", "confirmation_win_rate", "confirmation_p", "confirmed",
    "nearest_named", "nearest_r", "prevalence_chosen", "prevalence_rejected",
]


class ConceptAudit:
    """Test which concepts separate chosen from rejected responses.

    Args:
        alpha: significance level for q-values and held-out confirmation.
        seed: seed for the multivariate model's split-free parts (orientation).
        min_active: an SAE feature enters the audit only if active in at least this many responses.
        split_salt: salt of the prompt hash that defines the discovery/confirmation halves.

    Attributes (after :meth:`fit`):
        results_: pandas DataFrame, one row per concept (see :data:`RESULT_COLUMNS`), most significant
            first.
        auc_: held-out AUC of predicting the preference from all concept Δs together.
        n_pairs_: number of usable pairs audited; ``n_discovery_``, ``n_confirmation_`` their halves.
        results_by_: per-subset results when ``fit(..., by=column)`` was used.
    """

    def __init__(self, alpha: float = 0.05, seed: int = 0, min_active: int = 5, split_salt: str = "curate"):
        self.alpha = alpha
        self.seed = seed
        self.min_active = min_active
        self.split_salt = split_salt

    # -- fitting ---------------------------------------------------------------------------------------
    def fit(self, data, *, weights=None, by: str | None = None, labels: pd.DataFrame | None = None) -> "ConceptAudit":
        """Audit an annotated dataset (or precomputed :class:`~curate.scores.ConceptScores`).

        Args:
            data: a `datasets.Dataset` annotated by curate, a DataFrame with its columns, or ConceptScores.
            weights: per-pair weights (column name or array over all rows) for a weighted re-audit.
            by: a column for a per-subset breakdown in ``results_by_``.
            labels: optional DataFrame with ``concept`` and ``label`` (e.g. SAE feature labels) that
                replaces the default labels.

        Returns:
            self
        """
        scores = data if isinstance(data, ConceptScores) else concept_scores(
            data, weights=weights, extra_columns=[by] if by else (), min_active=self.min_active)
        if scores.n_pairs == 0:
            raise ValueError("No usable pairs to audit: every row has a non-empty `reason` (see the ingestion summary).")
        if scores.chosen.shape[1] == 0:
            raise ValueError("The dataset has no concept scores. Annotate it first, e.g. `curate.annotate(ds)`.")
        self.scores_ = scores
        self.n_pairs_ = scores.n_pairs
        res = self._univariate(scores, scores.weights)
        half = prompt_halves(scores.prompts, self.split_salt)
        self.n_discovery_, self.n_confirmation_ = int((half == 0).sum()), int((half == 1).sum())
        res = pd.concat([res, self._confirm(scores, half)], axis=1)
        res = pd.concat([res, self._nearest_named(scores)], axis=1)
        if labels is not None and len(labels):
            lab = labels.set_index("concept")["label"]
            res["label"] = [lab.get(c, l) for c, l in zip(res["concept"], res["label"])]
        self.auc_ = self._multivariate_auc(scores, half)
        order = np.lexsort((-np.abs(res["win_rate"].fillna(0.5).to_numpy() - 0.5), res["q_value"].fillna(1).to_numpy()))
        self.results_ = res.iloc[order][RESULT_COLUMNS].reset_index(drop=True)
        if by:
            parts = []
            values = np.asarray(scores.extra[by], dtype=object)
            for value in pd.unique(values):
                mask = values == value
                sub = self._univariate(_subset(scores, mask), scores.weights[mask])
                sub.insert(0, "by", value)
                parts.append(sub)
            self.results_by_ = pd.concat(parts, ignore_index=True)
        return self

    def _univariate(self, scores: ConceptScores, w: np.ndarray) -> pd.DataFrame:
        delta = scores.delta
        win = S.paired_win_stats(delta, w)
        d, mean = S.paired_effect_size(delta, w)
        # length control: Δconcept and Δlog-length, each scaled to unit RMS; none for the length concepts
        x1 = S.scale_no_center(delta)
        dl = S.scale_no_center(scores.log_length[:, 0] - scores.log_length[:, 1])
        x2 = np.broadcast_to(dl[:, None], delta.shape).copy()
        is_len = scores.concepts["concept"].isin(LENGTH_CONCEPTS).to_numpy()
        x2[:, is_len] = 0.0
        coef, _, lc_p, _ = S.logistic_two(x1, x2, w)
        active = win["n_differ"] > 0
        coef = np.where(active, coef, np.nan)
        lc_p = np.where(active, lc_p, np.nan)
        pos = w > 0
        return pd.DataFrame({
            "concept": scores.concepts["concept"].to_numpy(),
            "label": scores.concepts["label"].to_numpy(),
            "source": scores.concepts["source"].to_numpy(),
            "n_pairs": int(pos.sum()),
            "n_differ": win["n_differ"].astype(int),
            "win_rate": win["win_rate"],
            "ci_low": win["ci_low"],
            "ci_high": win["ci_high"],
            "effect_size": d,
            "mean_delta": mean,
            "p_value": win["p_value"],
            "q_value": S.benjamini_hochberg(win["p_value"]),
            "length_controlled_coef": coef,
            "length_controlled_p": lc_p,
            "length_controlled_q": S.benjamini_hochberg(lc_p),
            "prevalence_chosen": ((scores.chosen[pos] > 0).mean(0) if pos.any() else np.nan),
            "prevalence_rejected": ((scores.rejected[pos] > 0).mean(0) if pos.any() else np.nan),
        })

    def _confirm(self, scores: ConceptScores, half: np.ndarray) -> pd.DataFrame:
        delta, w = scores.delta, scores.weights
        disc = S.paired_win_stats(delta[half == 0], w[half == 0])
        conf = S.paired_win_stats(delta[half == 1], w[half == 1])
        disc_q = S.benjamini_hochberg(disc["p_value"])
        carried = disc_q < self.alpha
        conf_p = np.where(carried, conf["p_value"], np.nan)
        conf_q = S.benjamini_hochberg(conf_p)
        same_dir = np.sign(disc["win_rate"] - 0.5) == np.sign(conf["win_rate"] - 0.5)
        confirmed = carried & (conf_q < self.alpha) & same_dir
        return pd.DataFrame({
            "discovery_win_rate": disc["win_rate"],
            "discovery_q": disc_q,
            "confirmation_win_rate": conf["win_rate"],
            "confirmation_p": conf_p,
            "confirmed": np.nan_to_num(confirmed).astype(bool),
        })

    @staticmethod
    def _nearest_named(scores: ConceptScores) -> pd.DataFrame:
        ids = scores.concepts["concept"].to_numpy()
        named = np.flatnonzero((scores.concepts["source"] == "named").to_numpy())
        named = np.array([j for j in named if ids[j] != "log_length"], dtype=int)
        K = len(ids)
        if len(named) == 0:
            return pd.DataFrame({"nearest_named": [None] * K, "nearest_r": np.full(K, np.nan)})
        stacked = np.concatenate([scores.chosen, scores.rejected], axis=0)
        r = S.correlation_matrix(stacked, stacked[:, named])  # (K, n_named)
        r[named, np.arange(len(named))] = 0.0  # a named concept is not its own neighbour
        best = np.argmax(np.abs(r), axis=1)
        best_r = r[np.arange(K), best]
        nearest = np.where(np.abs(best_r) > 0, ids[named][best], None)
        return pd.DataFrame({"nearest_named": nearest, "nearest_r": np.where(np.abs(best_r) > 0, best_r, np.nan)})

    def _multivariate_auc(self, scores: ConceptScores, half: np.ndarray) -> float:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score

        X = S.scale_no_center(scores.delta)
        rng = np.random.default_rng(self.seed)
        orient = rng.choice([-1.0, 1.0], size=len(X))
        X = X * orient[:, None]
        y = (orient > 0).astype(int)
        tr, te = half == 0, half == 1
        if tr.sum() < 10 or te.sum() < 10 or len(np.unique(y[tr])) < 2 or len(np.unique(y[te])) < 2:
            return float("nan")
        model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=500)
        model.fit(X[tr], y[tr], sample_weight=scores.weights[tr])
        return float(roc_auc_score(y[te], model.decision_function(X[te]), sample_weight=scores.weights[te]))

    # -- reading ---------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "results_"):
            raise NotFittedError("This ConceptAudit is not fitted yet. Call `fit(dataset)` first.")

    def significant(self, confirmed_only: bool = True) -> pd.DataFrame:
        """Rows with q < alpha (and confirmed on the held-out half, by default)."""
        self._check_fitted()
        res = self.results_
        mask = res["q_value"] < self.alpha
        if confirmed_only:
            mask &= res["confirmed"]
        return res[mask]

    def to_dict(self) -> dict:
        """Settings and summary numbers of this audit (for cards and reports)."""
        out = {"type": "ConceptAudit", "alpha": self.alpha, "seed": self.seed, "min_active": self.min_active,
               "split_salt": self.split_salt}
        if hasattr(self, "results_"):
            out.update({"n_pairs": self.n_pairs_, "n_discovery": self.n_discovery_,
                        "n_confirmation": self.n_confirmation_, "n_concepts": len(self.results_),
                        "n_significant": int((self.results_["q_value"] < self.alpha).sum()),
                        "n_confirmed": int(self.results_["confirmed"].sum()),
                        "heldout_auc": None if np.isnan(self.auc_) else round(self.auc_, 4)})
        return out

    def __repr__(self) -> str:
        return f"ConceptAudit(alpha={self.alpha}, seed={self.seed}, min_active={self.min_active})"


def _subset(scores: ConceptScores, mask: np.ndarray) -> ConceptScores:
    return ConceptScores(scores.concepts, scores.chosen[mask], scores.rejected[mask], scores.rows[mask],
                         [p for p, m in zip(scores.prompts, mask) if m], scores.log_length[mask],
                         scores.weights[mask], {k: [v for v, m in zip(vals, mask) if m] for k, vals in scores.extra.items()})
