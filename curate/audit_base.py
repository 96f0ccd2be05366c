"""What the in-memory and the streaming audit share: their settings (:class:`AuditSettings`, with the
checks a finding passes), how findings are marked in a results table, and the sparse preference model.

:class:`~curate.audit.ConceptAudit` and :class:`~curate.stream_audit.StreamingAudit` are both
:class:`AuditSettings` with settings of their own, so each shared argument, its default and its meaning
are written once here.

Example:

    >>> import numpy as np, pandas as pd
    >>> res = pd.DataFrame({"confirmed": [True, True, False], "length_controlled_q": [0.01, 0.2, 0.0],
    ...                     "win_rate": [0.8, 0.9, 0.9], "length_controlled_coef": [0.5, 2.0, 3.0]})
    >>> AuditSettings().finding_candidates(res)
    [0]
    >>> mark_findings(res, [0])["finding_rank"].tolist()
    [1.0, nan, nan]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats as S

__all__ = ["AuditSettings", "mark_findings", "sparse_preference_model", "oriented"]


@dataclass(eq=False, repr=False, kw_only=True)
class AuditSettings:
    """The settings both audits take (keyword arguments; the constructor only stores them).

    Args:
        alpha: significance level (q-values, held-out confirmation, findings).
        seed: seed of the models' pair orientation (and of the streaming audit's sample).
        min_active: an SAE feature enters the audit only if active in at least this many responses.
        split_salt: salt of the prompt hash that defines the discovery/confirmation halves.
        group_threshold: correlation at which SAE features are grouped (:mod:`curate.grouping`).
        max_findings: most findings.
        min_effect: a finding's least |win_rate − 0.5| (practically large).
    """

    alpha: float = 0.05
    seed: int = 0
    min_active: int = 5
    split_salt: str = "curate"
    group_threshold: float = 0.5
    max_findings: int = 20
    min_effect: float = 0.1

    def passes(self, res: pd.DataFrame) -> np.ndarray:
        """Rows that may be findings: confirmed, length-controlled q < alpha, |win_rate − 0.5| ≥ min_effect."""
        return (
            res["confirmed"].astype(bool)
            & (res["length_controlled_q"] < self.alpha)
            & ((res["win_rate"] - 0.5).abs() >= self.min_effect)
        ).to_numpy()

    def finding_candidates(self, res: pd.DataFrame) -> list[int]:
        """Positions of the rows that :meth:`passes`, strongest |length-controlled effect| first."""
        ok = self.passes(res)
        strength = np.abs(res["length_controlled_coef"].fillna(0).to_numpy())
        return [int(i) for i in np.argsort(-strength, kind="stable") if ok[i]]

    def settings(self, *names: str) -> dict:
        """``{name: value}`` of these settings, in this order (for ``to_dict``)."""
        return {name: getattr(self, name) for name in names}


def mark_findings(res: pd.DataFrame, picked: list[int]) -> pd.DataFrame:
    """Set ``finding`` (True for the rows at positions ``picked``) and ``finding_rank`` (their order, 1 first)."""
    res["finding"] = False
    res["finding_rank"] = np.nan
    res.loc[res.index[picked], "finding"] = True
    res.loc[res.index[picked], "finding_rank"] = np.arange(1, len(picked) + 1)
    return res


def oriented(delta: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: each pair's Δs scaled to unit RMS and flipped at random (seeded), and whether the chosen
    response still comes first — a preference model without an intercept."""
    X = S.scale_no_center(delta)
    rng = np.random.default_rng(seed)
    orient = rng.choice([-1.0, 1.0], size=len(X))
    return X * orient[:, None], (orient > 0).astype(int)


def sparse_preference_model(
    delta: np.ndarray, half: np.ndarray, seed: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """L1 logistic regression of the preference on every concept's Δ together.

    Fitted on the discovery half (``half == 0``) with the penalty chosen by 3-fold CV (AUC); scored on the
    confirmation half.

    Args:
        delta: ``[pairs, concepts]`` Δ = score(chosen) − score(rejected).
        half: 0 (discovery) or 1 (confirmation) per pair.
        seed: seed of the pair orientation and the CV folds.
        weights: per-pair weights (None: all 1).

    Returns:
        ``(coefficients, held-out AUC)``: 0 for a concept the others explain away; zeros and NaN when a
        half is too small or one-sided.
    """
    import inspect

    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import roc_auc_score

    X, y = oriented(delta, seed)
    tr, te = half == 0, half == 1
    if tr.sum() < 30 or te.sum() < 10 or len(np.unique(y[tr])) < 2 or len(np.unique(y[te])) < 2:
        return np.zeros(delta.shape[1]), float("nan")
    params = inspect.signature(LogisticRegressionCV).parameters
    l1 = (
        {"l1_ratios": (1.0,), "use_legacy_attributes": True} if "use_legacy_attributes" in params else {"penalty": "l1"}
    )  # scikit-learn >= 1.8 spells the L1 penalty as l1_ratios
    model = LogisticRegressionCV(
        Cs=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
        solver="liblinear",
        cv=3,
        fit_intercept=False,
        scoring="roc_auc",
        random_state=seed,
        **l1,
    )
    w_tr, w_te = (None, None) if weights is None else (weights[tr], weights[te])
    model.fit(X[tr], y[tr], sample_weight=w_tr)
    auc = roc_auc_score(y[te], model.decision_function(X[te]), sample_weight=w_te)
    return model.coef_[0].copy(), float(auc)
