"""Per-subset audit: each concept tested within each subset of a mixed dataset, next to the pooled test.

A real preference file often mixes subsets whose preferences point in opposite directions (HH-RLHF's
helpful-base prefers direct answers, its harmless-base prefers refusals and "I don't know"); the pooled test
averages such effects away. :meth:`curate.ConceptAudit.fit` with ``by=COLUMN`` therefore also tests every
(concept, subset):

* win rate, sign test and length-controlled effect **within** the subset; q-values by Benjamini–Hochberg
  over **all** (concept, subset) tests together;
* held-out confirmation within the subset (its own discovery/confirmation halves; BH over all carried tests);
* a heterogeneity test per concept (χ² test that the win rate is the same in every subset, BH across
  concepts): ``heterogeneous`` when q < alpha, ``sign_flip`` when in addition one subset significantly
  prefers the concept and another significantly disprefers it;
* findings chosen from pooled and subset rows together (:func:`select_findings`), each with ``where`` it holds;
* a multivariate model with concept × subset terms, held-out AUC pooled and per subset (:func:`subset_auc`).

Example:

    >>> import pandas as pd
    >>> detect_subset_column(["prompt", "chosen", "rejected", "split"])
    'split'
    >>> detect_subset_column(["prompt", "chosen", "rejected"]) is None
    True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st

from . import _columns as C
from . import stats as S
from ._columns import subset_values  # noqa: F401  (re-exported: its home is curate._columns)
from .audit_base import EVIDENCE_COLUMNS, pick_findings
from .scores import ConceptScores

__all__ = [
    "detect_subset_column",
    "subset_values",
    "subset_table",
    "heterogeneity",
    "select_findings",
    "subset_auc",
    "SUBSET_COLUMNS",
    "FINDING_COLUMNS",
    "AUC_COLUMNS",
]

SUBSET_COLUMNS = [
    C.SUBSET,
    "concept",
    "label",
    "source",
    *C.TEST_COLUMNS,
    "prevalence_chosen",
    "prevalence_rejected",
    "heterogeneity_p",
    "heterogeneity_q",
    "heterogeneous",
    "sign_flip",
    "finding",
    "finding_rank",
    *EVIDENCE_COLUMNS,
    "aliases",
]
FINDING_COLUMNS = [
    "finding_rank",
    C.SUBSET,
    C.WHERE,
    "concept",
    "label",
    "source",
    "n_members",
    "n_pairs",
    "n_differ",
    "win_rate",
    "ci_low",
    "ci_high",
    "length_controlled_coef",
    "length_controlled_q",
    "confirmation_win_rate",
    "confirmed",
    "heterogeneity_q",
    "sign_flip",
    "nearest_named",
    "nearest_r",
    "finding_q",
    "passed",
    "aliases",
]
AUC_COLUMNS = [C.SUBSET, "n_pairs", "n_heldout", "heldout_auc", "heldout_auc_interactions"]


def detect_subset_column(columns) -> str | None:
    """The first of :data:`curate._columns.SUBSET_CANDIDATES` among ``columns`` (None when there is none)."""
    cols = set(columns)
    return next((c for c in C.SUBSET_CANDIDATES if c in cols), None)


def subset_table(audit, scores, half: np.ndarray, subsets: np.ndarray) -> pd.DataFrame:
    """Univariate, length-controlled and held-out tests of every concept within every subset.

    q-values (``q_value``, ``length_controlled_q``, ``discovery_q`` and the confirmation's) are BH over all
    (concept, subset) tests together.
    """

    parts, disc_p, conf_stats = [], [], []
    for value in pd.unique(subsets):
        mask = subsets == value
        sub = _subset(scores, mask)
        uni = audit._univariate(sub, sub.weights)
        uni.insert(0, C.SUBSET, value)
        h = half[mask]
        disc = S.paired_win_stats(sub.delta[h == 0], sub.weights[h == 0])
        conf = S.paired_win_stats(sub.delta[h == 1], sub.weights[h == 1])
        uni["discovery_win_rate"] = disc["win_rate"]
        uni["confirmation_win_rate"] = conf["win_rate"]
        disc_p.append(disc["p_value"])
        conf_stats.append(conf["p_value"])
        parts.append(uni)
    res = pd.concat(parts, ignore_index=True)
    res["q_value"] = S.benjamini_hochberg(res["p_value"].to_numpy())
    res["length_controlled_q"] = S.benjamini_hochberg(res["length_controlled_p"].to_numpy())
    disc_q = S.benjamini_hochberg(np.concatenate(disc_p))
    carried = disc_q < audit.alpha
    conf_p = np.where(carried, np.concatenate(conf_stats), np.nan)
    conf_q = S.benjamini_hochberg(conf_p)
    same = np.sign(res["discovery_win_rate"] - 0.5) == np.sign(res["confirmation_win_rate"] - 0.5)
    res["discovery_q"] = disc_q
    res["confirmation_p"] = conf_p
    res["confirmed"] = np.nan_to_num(carried & (conf_q < audit.alpha) & same.to_numpy()).astype(bool)
    het = heterogeneity(res, audit.alpha)
    res = res.merge(het, on="concept", how="left")
    res["finding"] = False
    res["finding_rank"] = np.nan
    return res


def heterogeneity(by_table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per concept: χ² test that the win rate is equal across subsets, BH across concepts, and sign flips.

    Uses each subset's (effective) differing pairs as counts. ``sign_flip``: heterogeneous, and at least one
    subset with q < alpha on each side of 0.5.
    """
    t = by_table.copy()
    n = t["n_differ"].astype(float).to_numpy()
    wins = np.nan_to_num(t["win_rate"].to_numpy(dtype=float)) * n
    t["_w"], t["_n"] = wins, n
    rows = []
    for concept, g in t.groupby("concept", sort=False):
        g = g[g["_n"] > 0]
        if len(g) < 2:
            rows.append((concept, np.nan, False, False))
            continue
        w, m = g["_w"].to_numpy(), g["_n"].to_numpy()
        p0 = w.sum() / m.sum()
        if p0 <= 0 or p0 >= 1:
            rows.append((concept, np.nan, False, False))
            continue
        chi2 = (((w - m * p0) ** 2) / (m * p0 * (1 - p0))).sum()
        p = float(_st.chi2.sf(chi2, len(g) - 1))
        sig = g["q_value"].to_numpy() < alpha
        up = bool((sig & (g["win_rate"].to_numpy() > 0.5)).any())
        down = bool((sig & (g["win_rate"].to_numpy() < 0.5)).any())
        rows.append((concept, p, up, down))
    out = pd.DataFrame(rows, columns=["concept", "heterogeneity_p", "_up", "_down"])
    out["heterogeneity_q"] = S.benjamini_hochberg(out["heterogeneity_p"].to_numpy())
    out["heterogeneous"] = (out["heterogeneity_q"] < alpha).to_numpy()
    out["sign_flip"] = out["heterogeneous"] & out["_up"] & out["_down"]
    return out[["concept", "heterogeneity_p", "heterogeneity_q", "heterogeneous", "sign_flip"]]


def _direction(wr: float) -> str:
    return "chosen ↑" if wr > 0.5 else "rejected ↑"


def select_findings(audit, scores, pooled: pd.DataFrame, by_table: pd.DataFrame):
    """Choose at most ``audit.max_findings`` findings from pooled and subset rows together.

    Which rows pass is :func:`curate.audit_base.finding_evidence` over pooled and subset rows together (one
    multiplicity family per source). Per concept: when the pooled row passes and the concept's win-rate does not
    differ across subsets (heterogeneity q ≥ alpha), the pooled row is the finding and ``where`` lists the subsets where it also holds;
    otherwise every subset row that passes is a finding of its own. A finding that is one idea with a stronger
    one in the same place (pooled, or the same subset; :func:`curate.audit_base.pick_findings`) is listed in
    that finding's ``aliases`` instead. Ordered by |length-controlled effect|.

    Returns:
        ``(pooled, by_table, findings)``: the two tables with ``finding``/``finding_rank`` set, and the
        findings table (:data:`FINDING_COLUMNS`).
    """
    alpha = audit.alpha
    het = by_table.drop_duplicates("concept").set_index("concept")[["heterogeneity_q", "sign_flip", "heterogeneous"]]
    # one family of tests: pooled and subset rows together (curate.audit_base.finding_evidence)
    ev = audit.evidence(pd.concat([pooled, by_table], ignore_index=True))
    pooled, by_table = pooled.copy(), by_table.copy()
    for c in EVIDENCE_COLUMNS:
        pooled[c] = ev[c].to_numpy()[: len(pooled)]
        by_table[c] = ev[c].to_numpy()[len(pooled) :]
    ok_pool = ev["passes"].to_numpy()[: len(pooled)]
    ok_sub = ev["passes"].to_numpy()[len(pooled) :]
    cands = []  # (strength, scope, row index in its table)
    # a pooled finding only for a concept whose win-rate is the same in every subset (else: where it holds)
    varies = het["heterogeneous"].reindex(pooled["concept"]).fillna(False).to_numpy(dtype=bool)
    pooled_concepts = set()
    for i in np.flatnonzero(ok_pool & ~varies):
        cands.append((abs(pooled["length_controlled_coef"].iloc[i]), C.POOLED, i))
        pooled_concepts.add(pooled["concept"].iloc[i])
    for j in np.flatnonzero(ok_sub):
        c = by_table["concept"].iloc[j]
        if c in pooled_concepts:
            continue
        cands.append((abs(by_table["length_controlled_coef"].iloc[j]), by_table[C.SUBSET].iloc[j], j))
    cands.sort(key=lambda t: -t[0])
    ids = scores.concepts["concept"].tolist()
    col_of = {c: k for k, c in enumerate(ids)}
    stacked = np.concatenate([scores.chosen, scores.rejected], axis=0).astype(float)
    concept_of = [(pooled if sc == C.POOLED else by_table)["concept"].iloc[i] for _, sc, i in cands]
    picked, alias_of = pick_findings(
        list(range(len(cands))),
        stacked,
        [col_of.get(c) for c in concept_of],
        [(pooled if sc == C.POOLED else by_table)["source"].iloc[i] == "named" for _, sc, i in cands],
        max_findings=audit.max_findings,
        redundancy=audit.redundancy,
        scope=[sc for _, sc, _ in cands],
    )
    chosen = [(cands[k][1], cands[k][2]) for k in picked]
    aliases = {(cands[k][1], cands[k][2]): ", ".join(concept_of[a] for a in al) for k, al in alias_of.items()}
    pooled["finding"], pooled["finding_rank"], pooled["aliases"] = False, np.nan, ""
    by_table["finding"], by_table["finding_rank"], by_table["aliases"] = False, np.nan, ""
    rows = []
    for rank, (scope, i) in enumerate(chosen, 1):
        table = pooled if scope == C.POOLED else by_table
        table.loc[table.index[i], "finding"] = True
        table.loc[table.index[i], "finding_rank"] = rank
        table.loc[table.index[i], "aliases"] = aliases.get((scope, i), "")
        r = table.iloc[i].to_dict()
        c = r["concept"]
        cmask = (by_table["concept"] == c).to_numpy()
        sub_rows = by_table[cmask]
        holds = [
            s
            for s, ok, wr in zip(sub_rows[C.SUBSET], ok_sub[cmask], sub_rows["win_rate"])
            if ok and np.sign(wr - 0.5) == np.sign(r["win_rate"] - 0.5)
        ]
        opposite = [
            s
            for s, q, wr in zip(sub_rows[C.SUBSET], sub_rows["q_value"], sub_rows["win_rate"])
            if q < alpha and np.sign(wr - 0.5) == -np.sign(r["win_rate"] - 0.5)
        ]
        if scope == C.POOLED:
            where = "all pairs" + (f"; holds within {', '.join(holds)}" if holds else "")
        else:
            where = f"in {scope}"
            if opposite:
                where += f"; opposite in {', '.join(opposite)} (sign flips)"
            elif not ok_pool[(pooled["concept"] == c).to_numpy()].any():
                where += " only (pooled test: not a finding)"
        prow = pooled[pooled["concept"] == c].iloc[0]
        rows.append(
            {
                **{k: r.get(k, prow.get(k)) for k in FINDING_COLUMNS},
                "finding_rank": rank,
                C.SUBSET: scope,
                C.WHERE: where,
                "n_members": prow.get("n_members", 1),
                "nearest_named": prow.get("nearest_named"),
                "nearest_r": prow.get("nearest_r"),
                "heterogeneity_q": het["heterogeneity_q"].get(c, np.nan),
                "sign_flip": bool(het["sign_flip"].get(c, False)),
            }
        )
    findings = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    return pooled, by_table, findings


def pooled_findings(results: pd.DataFrame) -> pd.DataFrame:
    """The findings table of an audit without subsets: its finding rows, ``subset`` empty, ``where`` all pairs."""
    f = results[results["finding"]].sort_values("finding_rank").copy()
    f[C.SUBSET] = C.POOLED
    f[C.WHERE] = "all pairs"
    f["heterogeneity_q"] = np.nan
    f["sign_flip"] = False
    return f[FINDING_COLUMNS].reset_index(drop=True)


def subset_auc(scores, half: np.ndarray, subsets: np.ndarray, seed: int = 0, C_reg: float = 1.0) -> pd.DataFrame:
    """Held-out AUC of the L2 concept model, pooled and per subset, without and with concept × subset terms.

    Both models are fitted on the discovery half (random pair orientation, no intercept) and scored on the
    confirmation half; the interaction model has one extra copy of every Δ per subset (Δ · 1[subset = s]).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    X = S.scale_no_center(scores.delta)
    orient = np.random.default_rng(seed).choice([-1.0, 1.0], size=len(X))
    X = X * orient[:, None]
    y = (orient > 0).astype(int)
    values = list(pd.unique(subsets))
    Xi = np.concatenate([X] + [X * (subsets == v)[:, None] for v in values], axis=1)
    tr, te = half == 0, half == 1
    w = scores.weights
    preds = {}
    for name, M in (("heldout_auc", X), ("heldout_auc_interactions", Xi)):
        if tr.sum() < 10 or len(np.unique(y[tr])) < 2:
            preds[name] = None
            continue
        model = LogisticRegression(C=C_reg, fit_intercept=False, max_iter=1000)
        model.fit(M[tr], y[tr], sample_weight=w[tr])
        preds[name] = model.decision_function(M)

    def auc(pred, mask):
        m = mask & te
        if pred is None or m.sum() < 10 or len(np.unique(y[m])) < 2:
            return np.nan
        return float(roc_auc_score(y[m], pred[m], sample_weight=w[m]))

    rows = [
        {
            C.SUBSET: C.POOLED,
            "n_pairs": len(X),
            "n_heldout": int(te.sum()),
            **{k: auc(p, np.ones(len(X), bool)) for k, p in preds.items()},
        }
    ]
    for v in values:
        mask = subsets == v
        rows.append(
            {
                C.SUBSET: v,
                "n_pairs": int(mask.sum()),
                "n_heldout": int((mask & te).sum()),
                **{k: auc(p, mask) for k, p in preds.items()},
            }
        )
    return pd.DataFrame(rows, columns=AUC_COLUMNS)


def _subset(scores: ConceptScores, mask: np.ndarray) -> ConceptScores:
    return ConceptScores(
        scores.concepts,
        scores.chosen[mask],
        scores.rejected[mask],
        scores.rows[mask],
        [p for p, m in zip(scores.prompts, mask) if m],
        scores.log_length[mask],
        scores.weights[mask],
        {k: [v for v, m in zip(vals, mask) if m] for k, vals in scores.extra.items()},
    )
