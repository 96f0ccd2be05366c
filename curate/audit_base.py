"""What the in-memory and the streaming audit share: their settings (:class:`AuditSettings`, with the
checks a finding passes), how findings are marked in a results table, and the sparse preference model.

:class:`~curate.audit.ConceptAudit` and :class:`~curate.stream_audit.StreamingAudit` are both
:class:`AuditSettings` with settings of their own, so each shared argument, its default and its meaning
are written once here.

Example:

    >>> import numpy as np, pandas as pd
    >>> res = pd.DataFrame({"confirmed": [True, True, False], "length_controlled_q": [0.01, 0.2, 0.0],
    ...                     "win_rate": [0.8, 0.9, 0.9], "length_controlled_coef": [0.5, 2.0, 3.0]})
    >>> AuditSettings(rule="held_out").finding_candidates(res)
    [0]
    >>> mark_findings(res, [0])["finding_rank"].tolist()
    [1.0, nan, nan]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats as S
from .errors import ConfigError

__all__ = [
    "AuditSettings",
    "finding_evidence",
    "finding_family",
    "mark_findings",
    "pick_findings",
    "evidence_order",
    "measured_summary",
    "MEASURED",
    "sparse_preference_model",
    "oriented",
    "RULES",
    "EVIDENCE_COLUMNS",
]

RULES = ("evidence", "held_out")
#: an SAE group correlating at least this much with a named detector (over all responses) is that detector's idea
NAMED_ALIAS_R = 0.5
#: what :func:`finding_evidence` adds to a results table
EVIDENCE_COLUMNS = ["finding_q", "halves_agree", "length_robust", "passed"]


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
        min_differ: a test enters the findings' multiplicity family only with at least this many differing
            pairs (an independent filter: label swaps do not change it).
        rule: the findings rule, ``evidence`` (default) or ``held_out`` (the rule before issue 30, kept to
            compare; see :func:`finding_evidence`).
    """

    alpha: float = 0.05
    seed: int = 0
    min_active: int = 5
    split_salt: str = "curate"
    group_threshold: float = 0.5
    max_findings: int = 20
    min_effect: float = 0.1
    min_differ: int = 20
    rule: str = "evidence"

    def __post_init__(self):
        if self.rule not in RULES:
            raise ConfigError(f"Unknown findings rule {self.rule!r}. Rules: {list(RULES)} (see finding_evidence).")

    def passes(self, res: pd.DataFrame) -> np.ndarray:
        """Rows of ``res`` (one table holding every test of the audit) that may be findings
        (:func:`finding_evidence` with these settings, or today's ``held_out`` rule)."""
        return self.evidence(res)["passes"].to_numpy()

    def evidence(self, res: pd.DataFrame) -> pd.DataFrame:
        """:func:`finding_evidence` of ``res`` with this audit's ``rule``, ``alpha``, ``min_effect`` and ``min_differ``."""
        return finding_evidence(
            res, alpha=self.alpha, min_effect=self.min_effect, min_differ=self.min_differ, rule=self.rule
        )

    def finding_candidates(self, res: pd.DataFrame) -> list[int]:
        """Positions of the rows that :meth:`passes`, strongest |length-controlled effect| first."""
        ok = self.passes(res)
        strength = np.abs(res["length_controlled_coef"].fillna(0).to_numpy())
        return [int(i) for i in np.argsort(-strength, kind="stable") if ok[i]]

    def settings(self, *names: str) -> dict:
        """``{name: value}`` of these settings, in this order (for ``to_dict``)."""
        return {name: getattr(self, name) for name in names}


NULL_SETS = (
    "false_findings_wimhf",
    "false_findings_wimhf_named",
    "false_findings_generated",
    "false_findings_generated_sae",
    "false_findings_generated_fresh",
    "false_findings_generated_sae_fresh",
)


def measured_summary(bench: dict) -> dict:
    """Per rule, what the audit summary states about it, from ``benchmarks/results/findings_power.json``: the mean
    number of false findings per audit of label-permuted data — the largest over the data sets measured (WIMHF demo
    pairs, generated pairs; named and SAE concepts, with subsets), with its 95% CI and which data set that was —
    and the power per planted within-subset effect (``"<win-rate>@<differing pairs>"``, of 800 pairs), from the
    fresh seeds (``power_fresh``: seeds the rule was never adjusted on) when they were measured."""
    out = {}
    power = bench["power_fresh"] if "power_fresh" in bench else bench["power"]
    for rule in RULES:
        sets = {k.removeprefix("false_findings_"): bench[k] for k in NULL_SETS if k in bench}
        worst = max(sets, key=lambda k: sets[k][rule]["mean"])
        out[rule] = {
            "false_findings_per_audit": sets[worst][rule]["mean"],
            "false_findings_ci95": list(sets[worst][rule]["ci95"]),
            "false_findings_data": worst,
            "permutations": sets[worst]["permutations"],
            "power": {f"{c['win_rate']:.2f}@{c['n_differ']}": c["power"] for c in power[rule]},
            "seeds": power["seeds"],
            "first_seed": power.get("first_seed", 0),
            "benchmark": "benchmarks/bench_findings_power.py",
        }
    return out


#: :func:`measured_summary` of the committed benchmark result (a test checks the two agree)
MEASURED: dict = {
    "evidence": {
        "false_findings_per_audit": 0.1,
        "false_findings_ci95": [0.012, 0.361],
        "false_findings_data": "wimhf_named",
        "permutations": 20,
        "power": {
            "0.62@50": 0.0,
            "0.65@50": 0.0,
            "0.70@50": 1.0,
            "0.62@100": 0.75,
            "0.65@100": 0.95,
            "0.70@100": 1.0,
            "0.62@150": 0.95,
            "0.65@150": 1.0,
            "0.70@150": 1.0,
            "0.62@200": 1.0,
            "0.65@200": 1.0,
            "0.70@200": 1.0,
        },
        "seeds": 20,
        "first_seed": 1000,
        "benchmark": "benchmarks/bench_findings_power.py",
    },
    "held_out": {
        "false_findings_per_audit": 0.0,
        "false_findings_ci95": [0.0, 0.184],
        "false_findings_data": "wimhf",
        "permutations": 20,
        "power": {
            "0.62@50": 0.0,
            "0.65@50": 0.0,
            "0.70@50": 0.0,
            "0.62@100": 0.0,
            "0.65@100": 0.0,
            "0.70@100": 0.75,
            "0.62@150": 0.0,
            "0.65@150": 0.75,
            "0.70@150": 0.95,
            "0.62@200": 0.3,
            "0.65@200": 0.9,
            "0.70@200": 1.0,
        },
        "seeds": 20,
        "first_seed": 1000,
        "benchmark": "benchmarks/bench_findings_power.py",
    },
}


def finding_family(source: str) -> str:
    """The multiplicity family of a test: ``named`` for the named detectors, the SAE source for its groups."""
    return "named" if source == "named" else str(source)


def finding_evidence(
    table: pd.DataFrame, *, alpha: float = 0.05, min_effect: float = 0.1, min_differ: int = 20, rule: str = "evidence"
) -> pd.DataFrame:
    """The findings rule, written once: which tests may become findings, and how each passed.

    ``table`` holds every test of one audit (pooled rows and, with subsets, every (concept, subset) row):
    ``concept``, ``source``, ``n_differ``, ``win_rate``, ``p_value``, ``discovery_win_rate``,
    ``confirmation_win_rate``, ``length_controlled_coef``, ``length_controlled_p`` (and for ``held_out``,
    ``confirmed`` and ``length_controlled_q``).

    Rule ``evidence`` (chosen by measured error rates, ``benchmarks/bench_findings_power.py``), all of:

    * **full data** — ``finding_q`` < alpha: Benjamini–Hochberg over the tests of one family (the named
      detectors; each SAE source's concept groups), pooled and subset tests together; a test enters its
      family only with at least ``min_differ`` differing pairs (an independent filter: swapping a pair's labels
      leaves it unchanged). The few named detectors are not charged for the hundreds of SAE groups;
    * **halves agree** — the win-rate lies on the same side of 0.5 in the discovery and the confirmation
      half as on all pairs (the held-out idea: it replicates);
    * **length-controlled** — the Bradley–Terry effect with Δlog-length in the model has the same sign and is
      significant one-sided in that direction (two-sided p < 2·alpha): a length proxy loses its effect there;
    * **practically large** — |win_rate − 0.5| ≥ ``min_effect``.

    Rule ``held_out`` (before issue 30): confirmed (BH over every test in the discovery half, then in the
    confirmation half), length-controlled q < alpha, practically large.

    Returns:
        a DataFrame on ``table``'s index: ``finding_q``, ``halves_agree``, ``length_robust``, ``passes`` and
        ``passed`` (how a passing row passed, in words; "" otherwise).

    Example:

        >>> t = pd.DataFrame({"concept": ["a", "b"], "source": "named", "n_differ": [120, 8],
        ...     "win_rate": [0.68, 0.9], "p_value": [1e-4, 0.04], "discovery_win_rate": [0.7, 0.9],
        ...     "confirmation_win_rate": [0.66, 0.9], "length_controlled_coef": [0.4, 1.0],
        ...     "length_controlled_p": [2e-4, 0.05]})
        >>> e = finding_evidence(t)
        >>> e["passes"].tolist(), e["passed"].iloc[0]
        ([True, False], 'full data q 1.0e-04 (1 named tests); halves agree (0.70, 0.66); length-controlled p 2.0e-04')
    """
    from ._format import fmt_q

    if rule not in RULES:
        raise ConfigError(f"Unknown findings rule {rule!r}. Rules: {list(RULES)}.")

    def col(name):  # a column missing from the table (e.g. an old rule's) reads as NaN
        return table[name].to_numpy(dtype=float) if name in table else np.full(len(table), np.nan)

    wr = col("win_rate")
    side = np.sign(wr - 0.5)
    with np.errstate(invalid="ignore"):
        large = np.abs(wr - 0.5) >= min_effect
    disc, conf = col("discovery_win_rate"), col("confirmation_win_rate")
    halves = (np.sign(disc - 0.5) == side) & (np.sign(conf - 0.5) == side) & (side != 0)
    lc_p = col("length_controlled_p")
    # one-sided in the direction the full data fixed: p/2 < alpha
    lc_robust = (lc_p < 2 * alpha) & (np.sign(col("length_controlled_coef")) == side)
    if rule == "held_out":
        q = col("discovery_q")
        ok = table["confirmed"].astype(bool).to_numpy() & (col("length_controlled_q") < alpha)
        ok &= large
        passed = ["confirmed in the held-out half; length-controlled q < alpha" if o else "" for o in ok]
        return pd.DataFrame(
            {"finding_q": q, "halves_agree": halves, "length_robust": lc_robust, "passes": ok, "passed": passed},
            index=table.index,
        )
    family = np.array([finding_family(s) for s in table["source"]], dtype=object)
    p = table["p_value"].to_numpy(dtype=float)
    enter = (table["n_differ"].to_numpy(dtype=float) >= min_differ) & ~np.isnan(p)
    q = np.full(len(table), np.nan)
    size = np.zeros(len(table), dtype=int)
    for fam in pd.unique(family):
        idx = np.flatnonzero(enter & (family == fam))
        q[idx] = S.benjamini_hochberg(p[idx])
        size[family == fam] = len(idx)
    ok = (q < alpha) & halves & lc_robust & large
    passed = [
        f"full data q {fmt_q(q[i])} ({size[i]} {family[i]} tests); halves agree ({disc[i]:.2f}, {conf[i]:.2f}); "
        f"length-controlled p {fmt_q(lc_p[i])}"
        if ok[i]
        else ""
        for i in range(len(table))
    ]
    return pd.DataFrame(
        {"finding_q": q, "halves_agree": halves, "length_robust": lc_robust, "passes": ok, "passed": passed},
        index=table.index,
    )


def evidence_order(res: pd.DataFrame) -> np.ndarray:
    """Positions of ``res``'s rows ranked by evidence, never by raw win-rate: findings by rank, then by the
    findings' q (``finding_q``; tests with too few differing pairs last), then by the full-data q, then by the
    length-controlled q. What every table that ranks concepts shows first.

    Example:

        >>> t = pd.DataFrame({"finding_rank": [None, None, 1], "finding_q": [None, 0.01, 1e-9],
        ...                   "q_value": [0.85, 0.02, 1e-9], "length_controlled_q": [1e-6, 0.03, 1e-8]})
        >>> evidence_order(t).tolist()
        [2, 1, 0]
    """

    def col(name):
        return (
            pd.to_numeric(res[name], errors="coerce").fillna(np.inf).to_numpy() if name in res else np.zeros(len(res))
        )

    return np.lexsort((col("length_controlled_q"), col("q_value"), col("finding_q"), col("finding_rank")))


def ranks(x: np.ndarray) -> np.ndarray:
    """Column-wise average ranks (ties share their mean rank), for rank correlations."""
    from scipy.stats import rankdata

    return rankdata(x, axis=0)


def pick_findings(
    order: list[int],
    stacked: np.ndarray,
    column: list[int | None],
    named: list[bool],
    *,
    max_findings: int,
    redundancy: float,
    scope: list[str] | None = None,
) -> tuple[list[int], dict[int, list[int]]]:
    """Walk the candidates ``order`` (strongest first) and keep at most ``max_findings``; a candidate that is one
    idea with a kept finding in the same place becomes that finding's alias instead of a finding of its own.

    One idea: scores (``stacked[:, column[i]]``, all responses) correlating (Pearson or rank: ``length`` and
    ``log_length`` are one idea) at |r| ≥ ``redundancy``, or at
    |r| ≥ :data:`NAMED_ALIAS_R` between an SAE group and a named detector (``named[i]``; the named detector then
    leads, in the group's rank, and the group is its alias). Places: ``scope[i]``
    ("" pooled, or a subset); a pooled finding shares its place with every subset.

    Returns:
        ``(picked positions, {picked position: [its aliases' positions]})``.
    """
    scope = scope or [""] * len(column)
    picked: list[int] = []
    aliases: dict[int, list[int]] = {}
    for i in order:
        if len(picked) >= max_findings:
            break
        peers = [k for k in picked if column[k] is not None and (scope[k] == scope[i] or "" in (scope[k], scope[i]))]
        if peers and column[i] is not None:
            cols = [column[k] for k in peers]
            r = np.fmax(
                np.abs(S.correlation_matrix(stacked[:, [column[i]]], stacked[:, cols])[0]),
                np.abs(S.correlation_matrix(ranks(stacked[:, [column[i]]]), ranks(stacked[:, cols]))[0]),
            )
            need = np.array([redundancy if named[k] == named[i] else min(redundancy, NAMED_ALIAS_R) for k in peers])
            same = np.flatnonzero(np.nan_to_num(r) >= need)
            if len(same):
                k = peers[int(same[np.argmax(r[same])])]
                if named[i] and not named[k]:  # the readable named detector leads, the SAE group is its alias
                    picked[picked.index(k)] = i
                    aliases[i] = aliases.pop(k, []) + [k]
                else:
                    aliases.setdefault(k, []).append(i)
                continue
        picked.append(i)
    return picked, aliases


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
