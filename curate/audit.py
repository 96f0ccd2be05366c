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

Making SAE findings few and readable:

* **grouping** — SAE features whose pooled activations correlate (average linkage on 1 − r, cut at
  ``group_threshold``) become one row ``group:<source>:<n>`` with ``n_members``; the per-feature rows stay in
  ``members_`` (with their ``group``) for drill-down (:mod:`curate.grouping`);
* **length control by default** — rows are ranked by the length-controlled effect; ``length_controlled_q``
  is BH across all concepts;
* **beyond the obvious** — a sparse (L1) logistic regression of the preference on the Δs of all groups,
  named concepts and length together, penalty by 3-fold CV on the discovery half, held-out AUC in
  ``sparse_auc_``; per concept ``multivariate_coef`` and ``survives_controls`` (non-zero once length and
  the named concepts are in the model);
* **purity** — the share of a concept's activation mass on responses that carry its nearest named concept;
* **findings** — at most ``max_findings`` rows (``finding`` and ``finding_rank``) that pass the findings rule,
  :func:`curate.audit_base.finding_evidence` (full-data BH per source family, halves agree, length-controlled,
  practically large; ``passed`` says how), one per idea (a duplicate is listed in ``aliases``), ordered by the
  length-controlled effect; every other row is ranked by evidence (:func:`curate.audit_base.evidence_order`).

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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _columns as C
from . import stats as S
from .audit_base import (
    EVIDENCE_COLUMNS,
    MEASURED,
    AuditSettings,
    evidence_order,
    mark_findings,
    oriented,
    pick_findings,
    sparse_preference_model,
)
from .errors import FormatError, NotFittedError
from .grouping import group_scores
from .scores import LENGTH_CONCEPTS, ConceptScores, concept_scores, prompt_halves
from .subsets import SUBSET_COLUMNS

RESULT_COLUMNS = [
    "concept",
    "label",
    "source",
    "finding",
    "finding_rank",
    "n_members",
    *C.TEST_COLUMNS,
    "nearest_named",
    "nearest_r",
    "purity",
    "multivariate_coef",
    "survives_controls",
    "prevalence_chosen",
    "prevalence_rejected",
    "predicted_shift",
    *EVIDENCE_COLUMNS,
    "aliases",
]
MEMBER_COLUMNS = [
    c
    for c in RESULT_COLUMNS
    if c
    not in (
        "finding",
        "finding_rank",
        "n_members",
        "multivariate_coef",
        "survives_controls",
        *EVIDENCE_COLUMNS,
        "aliases",
    )
] + ["group"]


@dataclass(eq=False, repr=False, kw_only=True)
class ConceptAudit(AuditSettings):
    """Test which concepts separate chosen from rejected responses.

    Args:
        alpha, seed, min_active, split_salt, group_threshold, max_findings, min_effect: as
            :class:`~curate.audit_base.AuditSettings` (``seed`` orients the pairs of the multivariate models).
        group_features: group correlated SAE features into one row each (``group:<source>:<n>``).
        redundancy: a finding correlating at |r| ≥ this with a stronger one is shown as its alias.

    Attributes (after :meth:`fit`):
        results_: pandas DataFrame, one row per concept (see :data:`RESULT_COLUMNS`), ranked by evidence
            (:func:`~curate.audit_base.evidence_order`: findings, then by q — never by raw win-rate).
        auc_: held-out AUC of predicting the preference from all concept Δs together.
        n_pairs_: number of usable pairs audited; ``n_discovery_``, ``n_confirmation_`` their halves.
        findings_: the findings (pooled and, with ``by``, within subsets), see :meth:`findings`.
        results_by_: with ``by``, one row per (subset, concept) (:data:`curate.subsets.SUBSET_COLUMNS`):
            tests within the subset, q-values BH over all (concept, subset) tests, held-out confirmation
            within the subset, heterogeneity across subsets and ``sign_flip``.
        auc_by_: with ``by``, held-out AUC pooled and per subset, without and with concept × subset terms.
    """

    group_features: bool = True
    redundancy: float = 0.9

    # -- fitting ---------------------------------------------------------------------------------------
    def fit(self, data, *, weights=None, by: str | None = None, labels: pd.DataFrame | None = None) -> "ConceptAudit":
        """Audit an annotated dataset (or precomputed :class:`~curate.scores.ConceptScores`).

        Args:
            data: a `datasets.Dataset` annotated by curate, a DataFrame with its columns, or ConceptScores.
            weights: per-pair weights (column name or array over all rows) for a weighted re-audit.
            by: a subset column (e.g. ``split``, ``dataset``): every concept is also tested within each
                subset, and findings are chosen from pooled and subset rows (see :mod:`curate.subsets`).
            labels: optional DataFrame with ``concept`` and ``label`` (e.g. SAE feature labels) that
                replaces the default labels.

        Returns:
            self
        """
        scores = (
            data
            if isinstance(data, ConceptScores)
            else concept_scores(data, weights=weights, extra_columns=[by] if by else (), min_active=self.min_active)
        )
        if scores.n_pairs == 0:
            raise FormatError(
                "No usable pairs to audit: every row has a non-empty `reason` (see the ingestion summary)."
            )
        if scores.chosen.shape[1] == 0:
            raise FormatError("The dataset has no concept scores. Annotate it first, e.g. `curate.annotate(ds)`.")
        half = prompt_halves(scores.prompts, self.split_salt)
        self.n_pairs_ = scores.n_pairs
        self.n_discovery_, self.n_confirmation_ = int((half == 0).sum()), int((half == 1).sum())
        membership = None
        if self.group_features and (scores.concepts["source"] != "named").any():
            grouped, membership = group_scores(scores, self.group_threshold, labels)
            members = self._table(scores, half, labels)
            members["purity"] = self._purity(scores, members)
            members = members.merge(membership, on="concept", how="inner")
            self.members_ = members[MEMBER_COLUMNS].sort_values(["group", "q_value"]).reset_index(drop=True)
            scores = grouped
        else:
            self.members_ = pd.DataFrame(columns=MEMBER_COLUMNS)
        self.scores_ = scores
        res = self._table(scores, half, labels)
        sizes = membership["group"].value_counts() if membership is not None else pd.Series(dtype=int)
        res["n_members"] = [int(sizes.get(c, 1)) for c in res["concept"]]
        res["purity"] = self._purity(scores, res)
        coef, self.sparse_auc_ = sparse_preference_model(scores.delta, half, self.seed, scores.weights)
        res["multivariate_coef"] = coef
        res["survives_controls"] = coef != 0
        self.auc_ = self._multivariate_auc(scores, half)
        res = self._mark_findings(scores, res)
        self.results_ = res.iloc[evidence_order(res)][RESULT_COLUMNS].reset_index(drop=True)
        self.by_ = by
        if by:
            from .subsets import select_findings, subset_auc, subset_table, subset_values

            subsets = subset_values(scores.extra[by])
            by_table = subset_table(self, scores, half, subsets)
            pooled, by_table, self.findings_ = select_findings(self, scores, res, by_table)
            pooled = pooled.merge(
                by_table.drop_duplicates("concept")[["concept", "heterogeneity_q", "sign_flip"]],
                on="concept",
                how="left",
            )
            cols = RESULT_COLUMNS + ["heterogeneity_q", "sign_flip"]
            self.results_ = pooled.iloc[evidence_order(pooled)][cols].reset_index(drop=True)
            self.results_by_ = by_table.iloc[evidence_order(by_table)][SUBSET_COLUMNS].reset_index(drop=True)
            self.auc_by_ = subset_auc(scores, half, subsets, seed=self.seed)
        else:
            from .subsets import pooled_findings

            self.findings_ = pooled_findings(self.results_)
        return self

    def _table(self, scores: ConceptScores, half: np.ndarray, labels) -> pd.DataFrame:
        res = self._univariate(scores, scores.weights)
        res = pd.concat([res, self._confirm(scores, half), self._nearest_named(scores)], axis=1)
        if labels is not None and len(labels):
            lab = labels.set_index("concept")["label"]
            res["label"] = [lab.get(c, old) for c, old in zip(res["concept"], res["label"])]
        return res

    @staticmethod
    def _purity(scores: ConceptScores, res: pd.DataFrame) -> np.ndarray:
        """Share of a concept's activation mass on responses that carry its nearest named concept."""
        ids = scores.concepts["concept"].tolist()
        stacked = np.concatenate([scores.chosen, scores.rejected], axis=0)
        out = np.full(len(res), np.nan)
        for i, (src, near) in enumerate(zip(res["source"], res["nearest_named"])):
            if src == "named" or near is None or near not in ids:
                continue
            act = np.abs(stacked[:, i])
            total = act.sum()
            if total > 0:
                out[i] = act[stacked[:, ids.index(near)] > 0].sum() / total
        return out

    def _mark_findings(self, scores: ConceptScores, res: pd.DataFrame) -> pd.DataFrame:
        """At most ``max_findings`` rows that pass :func:`~curate.audit_base.finding_evidence`, strongest
        length-controlled effect first; one idea said twice is one finding with ``aliases``."""
        ev = self.evidence(res)
        res = res.copy()
        for c in EVIDENCE_COLUMNS:
            res[c] = ev[c].to_numpy()
        strength = np.abs(res["length_controlled_coef"].fillna(0).to_numpy())
        ok = ev["passes"].to_numpy()
        order = [int(i) for i in np.argsort(-strength, kind="stable") if ok[i]]
        stacked = np.concatenate([scores.chosen, scores.rejected], axis=0).astype(float)
        picked, aliases = pick_findings(
            order,
            stacked,
            list(range(len(res))),
            (res["source"] == "named").tolist(),
            max_findings=self.max_findings,
            redundancy=self.redundancy,
        )
        res["aliases"] = ""
        ids = res["concept"].to_numpy()
        for k, al in aliases.items():
            res.loc[res.index[k], "aliases"] = ", ".join(ids[al])
        return mark_findings(res, picked)

    def findings(self) -> pd.DataFrame:
        """The short list: the rows that pass :func:`~curate.audit_base.finding_evidence`, one per idea.

        One row per finding (:data:`curate.subsets.FINDING_COLUMNS`), best first: ``subset`` is empty for a
        pooled finding and names the subset for a within-subset one; ``where`` says where it holds.
        """
        self._check_fitted()
        return self.findings_

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
        return pd.DataFrame(
            {
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
                # what DPO on these pairs should do to the concept (curate.learning.predict, ``delta_std``)
                "predicted_shift": S.standardised_mean_delta(scores.chosen, scores.rejected, w),
            }
        )

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
        return pd.DataFrame(
            {
                "discovery_win_rate": disc["win_rate"],
                "discovery_q": disc_q,
                "confirmation_win_rate": conf["win_rate"],
                "confirmation_p": conf_p,
                "confirmed": np.nan_to_num(confirmed).astype(bool),
            }
        )

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

        X, y = oriented(scores.delta, self.seed)
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
        out = {
            "type": "ConceptAudit",
            **self.settings(
                "alpha",
                "seed",
                "min_active",
                "split_salt",
                "group_features",
                "group_threshold",
                "max_findings",
                "min_effect",
                "min_differ",
                "redundancy",
                "rule",
            ),
            "findings_rule": {"rule": self.rule, **MEASURED.get(self.rule, {})},
        }
        if hasattr(self, "results_"):
            out.update(
                {
                    "n_pairs": self.n_pairs_,
                    "n_discovery": self.n_discovery_,
                    "n_confirmation": self.n_confirmation_,
                    "n_concepts": len(self.results_),
                    "n_significant": int((self.results_["q_value"] < self.alpha).sum()),
                    "n_confirmed": int(self.results_["confirmed"].sum()),
                    "n_findings": int(len(self.findings_)),
                    "by": self.by_,
                    "n_features": int(len(self.members_)),
                    "n_features_confirmed": int(self.members_["confirmed"].sum()) if len(self.members_) else 0,
                    "sparse_heldout_auc": None if np.isnan(self.sparse_auc_) else round(self.sparse_auc_, 4),
                    "heldout_auc": None if np.isnan(self.auc_) else round(self.auc_, 4),
                }
            )
            if self.by_:
                out["n_subset_findings"] = int((self.findings_["subset"] != "").sum())
                out["heldout_auc_by_subset"] = {
                    (r["subset"] or "pooled"): {
                        k: (None if r[k] != r[k] else round(float(r[k]), 4))
                        for k in ("heldout_auc", "heldout_auc_interactions")
                    }
                    for _, r in self.auc_by_.iterrows()
                }
        return out

    def __repr__(self) -> str:
        return (
            f"ConceptAudit(alpha={self.alpha}, seed={self.seed}, group_features={self.group_features}, "
            f"max_findings={self.max_findings}, min_effect={self.min_effect})"
        )
