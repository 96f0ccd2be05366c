import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from curate import ConceptAudit, annotate, make_preference_pairs
from curate import stats as S
from curate.errors import NotFittedError
from curate.scores import concept_scores, prompt_halves

PLANTED_NAMED = {"flattery": "flattery", "agreement": "agreement", "markdown": "markdown", "padding": "length"}
EQUAL_NAMED = {"emoji": "emoji", "hedging": "hedging", "sign_off": "sign_off", "apology": "apology"}


@pytest.fixture(scope="module")
def audit(annotated):
    return ConceptAudit().fit(annotated)


def test_results_have_the_documented_columns(audit):
    required = [
        "concept",
        "label",
        "source",
        "n_pairs",
        "n_differ",
        "win_rate",
        "ci_low",
        "ci_high",
        "effect_size",
        "p_value",
        "q_value",
        "length_controlled_coef",
        "length_controlled_p",
        "confirmed",
    ]
    assert set(required) <= set(audit.results_.columns)
    assert audit.results_["concept"].is_unique
    assert audit.n_pairs_ == 600 and audit.n_discovery_ + audit.n_confirmation_ == 600


def test_recovers_planted_concepts(audit):
    res = audit.results_.set_index("concept")
    for planted, concept in PLANTED_NAMED.items():
        row = res.loc[concept]
        assert row["q_value"] < 0.05 and row["confirmed"], planted
        assert row["win_rate"] > 0.5 and row["ci_low"] > 0.5, planted


def test_does_not_flag_equal_rate_concepts(audit):
    res = audit.results_.set_index("concept")
    for concept in EQUAL_NAMED.values():
        assert not res.loc[concept, "confirmed"], concept
        assert res.loc[concept, "q_value"] > 0.05, concept


def test_win_rate_matches_a_direct_count(annotated, audit):
    df = annotated.to_pandas()
    d = df["chosen__flattery"] - df["rejected__flattery"]
    row = audit.results_.set_index("concept").loc["flattery"]
    assert row["n_differ"] == (d != 0).sum()
    assert row["win_rate"] == pytest.approx((d > 0).sum() / (d != 0).sum())
    assert row["p_value"] == pytest.approx(st.binomtest(int((d > 0).sum()), int((d != 0).sum())).pvalue, rel=1e-6)
    assert row["effect_size"] == pytest.approx(d.mean() / d.std(ddof=0))


def test_heldout_confirmation_rejects_chance_findings():
    rng = np.random.default_rng(0)
    gen = make_preference_pairs(800, seed=3)
    df = gen.dataset.to_pandas()
    half = prompt_halves(df["prompt"].tolist())
    # 1) a concept that separates chosen from rejected only in the discovery half
    df["chosen__fluke"] = np.where(half == 0, rng.random(len(df)) < 0.5, rng.random(len(df)) < 0.3).astype("float32")
    df["rejected__fluke"] = (rng.random(len(df)) < 0.3).astype("float32")
    # 2) 200 null concepts: some are significant in discovery by chance
    nulls = {
        f"{side}__null{k}": (rng.random(len(df)) < 0.3).astype("float32")
        for k in range(200)
        for side in ("chosen", "rejected")
    }
    # 3) a concept significant in both halves, in opposite directions (the halves must agree in direction)
    nulls["chosen__flip"], nulls["rejected__flip"] = (half == 0).astype("float32"), (half == 1).astype("float32")
    df = pd.concat([df, pd.DataFrame(nulls)], axis=1)
    audit = ConceptAudit().fit(df)
    res = audit.results_.set_index("concept")
    assert res.loc["fluke", "discovery_q"] < 0.05 and not res.loc["fluke", "confirmed"]
    assert res.loc["flip", "discovery_q"] < 0.05 and res.loc["flip", "confirmation_p"] < 0.05
    assert not res.loc["flip", "confirmed"] and not res.loc["flip", "halves_agree"]
    nulls = res[res.index.str.startswith("null")]
    assert nulls["confirmed"].sum() == 0
    assert (nulls["p_value"] < 0.05).sum() >= 1  # chance findings exist before correction …
    assert (nulls["q_value"] < 0.05).sum() <= 1  # … and BH removes (nearly) all of them


def test_length_control_separates_length_proxies_from_length_independent_concepts(generated):
    from curate.concepts import NamedConcepts

    ann = NamedConcepts(["length", "log_length", "flattery"]).add(
        "wordiness", lambda texts: [len(t.split()) + (hash(t) % 3) * 0.01 for t in texts]
    )
    audit = ConceptAudit().fit(annotate(generated.dataset, ann))
    res = audit.results_.set_index("concept")
    assert res.loc["wordiness", "q_value"] < 1e-10  # raw: strongly "preferred"
    assert res.loc["wordiness", "length_controlled_q"] > 0.05  # nothing left once length is in the model
    assert res.loc["flattery", "length_controlled_q"] < 0.05  # flattery survives length control


def test_multivariate_heldout_auc(audit):
    assert 0.7 < audit.auc_ <= 1.0


def test_weighted_reaudit(annotated):
    df = annotated.to_pandas()
    d = (df["chosen__flattery"] - df["rejected__flattery"]).to_numpy()
    w = np.where(d > 0, 0.25, 1.0)
    res = ConceptAudit().fit(annotated, weights=w).results_.set_index("concept").loc["flattery"]
    expected = (w * (d > 0)).sum() / (w * (d != 0)).sum()
    assert res["win_rate"] == pytest.approx(expected)
    zero = ConceptAudit().fit(annotated, weights=np.where(d > 0, 0.0, 1.0)).results_.set_index("concept")
    assert zero.loc["flattery", "win_rate"] == 0.0


def test_by_breakdown(annotated):
    df = annotated.to_pandas()
    df["bucket"] = np.where(df["id"] % 2 == 0, "even", "odd")
    audit = ConceptAudit().fit(df, by="bucket")
    assert set(audit.results_by_["subset"]) == {"even", "odd"}
    assert set(audit.results_by_.groupby("subset")["n_pairs"].first()) == {300}


def test_invalid_rows_are_excluded_and_counted(generated):
    ds = annotate(generated.dataset).map(lambda r, i: {"reason": "invalid:tie" if i < 10 else ""}, with_indices=True)
    audit = ConceptAudit().fit(ds)
    assert audit.n_pairs_ == 590


def test_unfitted_and_unannotated_errors(generated):
    with pytest.raises(NotFittedError, match="call|Call"):
        ConceptAudit().significant()
    with pytest.raises(ValueError, match="Annotate it first"):
        ConceptAudit().fit(generated.dataset)


def test_nearest_named_concept(audit):
    res = audit.results_.set_index("concept")
    assert res.loc["heading", "nearest_named"] in {"list", "bold", "markdown"}
    assert res.loc["heading", "nearest_r"] > 0.9


# ---- the statistics themselves -------------------------------------------------------------------------
def test_wilson_interval_known_values():
    lo, hi = S.wilson_interval(np.array([8]), np.array([10]))
    assert lo[0] == pytest.approx(0.4902, abs=1e-4) and hi[0] == pytest.approx(0.9433, abs=1e-4)
    lo, hi = S.wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])


def test_sign_test_matches_scipy():
    for k, n in [(3, 10), (50, 100), (90, 120), (0, 5)]:
        assert S.sign_test(np.array([k]), np.array([n]))[0] == pytest.approx(st.binomtest(k, n).pvalue, rel=1e-9)


def test_benjamini_hochberg_matches_reference():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    ref = st.false_discovery_control(p[:4], method="bh")
    q = S.benjamini_hochberg(p)
    np.testing.assert_allclose(q[:4], ref)
    assert np.isnan(q[4])


def test_logistic_matches_sklearn_unpenalised():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n = 2000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-(0.8 * x1 - 0.5 * x2)))
    # curate's form: every pair is "chosen" with Δ oriented towards the chosen side
    sgn = np.where(y, 1.0, -1.0)
    b1, se, p, b2 = S.logistic_two((sgn * x1)[:, None], sgn * x2, np.ones(n), ridge=0.0)
    ref = LogisticRegression(fit_intercept=False, C=np.inf).fit(np.column_stack([x1, x2]), y)
    assert b1[0] == pytest.approx(ref.coef_[0, 0], rel=2e-3) and b2[0] == pytest.approx(ref.coef_[0, 1], rel=2e-3)


def test_concept_scores_reads_dataframes_and_datasets_alike(annotated):
    a = concept_scores(annotated)
    b = concept_scores(annotated.to_pandas())
    assert a.concepts.equals(b.concepts)
    np.testing.assert_array_equal(a.chosen, b.chosen)
    assert isinstance(a.concepts, pd.DataFrame)
