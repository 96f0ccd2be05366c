"""curate.stats against independent computations (scipy, scikit-learn, numpy), so a changed formula fails a test.

The mutation run of ``make mutation`` scores these tests: each statistic is checked on values where a change of
one constant, operator or argument changes the answer.
"""

import numpy as np
import pytest
from scipy import stats as st

from curate import stats as S


@pytest.mark.parametrize("wins,n", [(0, 5), (3, 5), (5, 5), (37, 80), (1, 2), (120, 121)])
def test_wilson_interval_matches_scipy(wins, n):
    lo, hi = S.wilson_interval(np.array([wins]), np.array([n]))
    ref = st.binomtest(wins, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert lo[0] == pytest.approx(ref.low, abs=1e-12) and hi[0] == pytest.approx(ref.high, abs=1e-12)


def test_wilson_interval_other_z_and_no_pairs():
    lo, hi = S.wilson_interval([30.0, 0.0, 2.0], [40.0, 0.0, -1.0], z=st.norm.ppf(0.995))
    ref = st.binomtest(30, 40).proportion_ci(confidence_level=0.99, method="wilson")
    assert (lo[0], hi[0]) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert np.isnan(lo[1:]).all() and np.isnan(hi[1:]).all()


def test_sign_test_matches_scipy():
    wins = np.array([0, 3, 5, 37, 41, 60, 7])
    n = np.array([5, 5, 5, 80, 80, 80, 7])
    ref = [st.binomtest(int(k), int(m)).pvalue for k, m in zip(wins, n)]
    assert S.sign_test(wins, n) == pytest.approx(ref, rel=1e-10)
    # weighted counts are rounded first; no pairs: NaN
    assert S.sign_test([36.6, 1.0], [80.4, 0.0])[0] == pytest.approx(st.binomtest(37, 80).pvalue, rel=1e-10)
    assert np.isnan(S.sign_test([1.0], [0.0])[0])


def test_benjamini_hochberg_matches_scipy():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.001, 0.5, 0.04])
    assert S.benjamini_hochberg(p) == pytest.approx(st.false_discovery_control(p), rel=1e-12)
    # NaN p-values stay NaN and are not counted as tests
    with_nan = np.array([0.01, np.nan, 0.03, np.nan, 0.02])
    q = S.benjamini_hochberg(with_nan)
    assert np.isnan(q[[1, 3]]).all()
    assert q[[0, 2, 4]] == pytest.approx(st.false_discovery_control([0.01, 0.03, 0.02]), rel=1e-12)
    assert np.isnan(S.benjamini_hochberg([np.nan, np.nan])).all()
    assert S.benjamini_hochberg([0.6, 0.7]).tolist() == pytest.approx([0.7, 0.7])  # monotone in p


def test_kish_n():
    assert S.kish_n(np.array([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)
    w = np.array([[1.0, 0.0], [3.0, 0.0]])
    assert S.kish_n(w).tolist() == [pytest.approx(16 / 10), 0.0]


def test_paired_win_stats_counts_and_weights():
    delta = np.array([[1.0, 0.0], [2.0, -1.0], [-1.0, 0.0], [0.0, 0.0], [3.0, 1.0]])
    out = S.paired_win_stats(delta)
    assert out["n_differ"].tolist() == [4, 2]
    assert out["win_rate"].tolist() == [0.75, 0.5]
    assert out["n_eff"].tolist() == [4.0, 2.0]
    lo, hi = S.wilson_interval(3, 4)
    assert (out["ci_low"][0], out["ci_high"][0]) == (lo, hi)
    assert out["p_value"][0] == pytest.approx(st.binomtest(3, 4).pvalue)
    w = np.array([2.0, 1.0, 1.0, 5.0, 0.0])  # the last pair has weight 0: not a differing pair
    out = S.paired_win_stats(delta, w)
    assert out["n_differ"].tolist() == [3, 1]
    assert out["win_rate"][0] == pytest.approx(3 / 4)  # weighted wins 2 + 1 of weight 4
    assert out["n_eff"][0] == pytest.approx(16 / 6)
    assert np.isnan(S.paired_win_stats(np.zeros((3, 1)))["win_rate"][0])


def test_paired_effect_size_matches_numpy():
    rng = np.random.default_rng(0)
    delta = rng.normal(0.3, 1.0, size=(50, 2))
    delta[:, 1] = 2.0  # constant: d is 0
    d, mean = S.paired_effect_size(delta)
    assert d[0] == pytest.approx(delta[:, 0].mean() / delta[:, 0].std()) and d[1] == 0.0
    assert mean == pytest.approx(delta.mean(0))
    w = rng.random(50)
    d, mean = S.paired_effect_size(delta, w)
    m = np.average(delta[:, 0], weights=w)
    assert mean[0] == pytest.approx(m)
    assert d[0] == pytest.approx(m / np.sqrt(np.average((delta[:, 0] - m) ** 2, weights=w)))


def _oriented_fit(x1, x2, w, lam):
    """scikit-learn's L2 logistic regression on randomly oriented pairs: the same likelihood as logistic_two."""
    from sklearn.linear_model import LogisticRegression

    X = np.stack([x1, x2], 1)
    s = np.where(np.arange(len(X)) % 2 == 0, 1.0, -1.0)
    model = LogisticRegression(C=1 / lam, fit_intercept=False, tol=1e-12, max_iter=10_000)
    model.fit(X * s[:, None], (s > 0).astype(int), sample_weight=w)
    return model.coef_[0]


def _numeric_se(x1, x2, w, lam, b):
    """Standard error of b₁ from a finite-difference Hessian of the penalised negative log-likelihood."""

    def f(beta):
        eta = x1 * beta[0] + x2 * beta[1]
        return np.sum(w * np.logaddexp(0, -eta)) + lam / 2 * beta @ beta

    h, H = 1e-4, np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            H[i, j] = (f(b + e_i + e_j) - f(b + e_i - e_j) - f(b - e_i + e_j) + f(b - e_i - e_j)) / (4 * h * h)
    return np.sqrt(np.linalg.inv(H)[0, 0])


def test_logistic_two_matches_scikit_learn_and_the_wald_test():
    rng = np.random.default_rng(1)
    n = 400
    x2 = rng.normal(size=n)
    x1 = np.stack([rng.normal(size=n) for _ in range(3)], 1)
    eta = 0.8 * x1[:, 0] - 0.5 * x1[:, 1] + 0.6 * x2
    chosen_first = rng.random(n) < 1 / (1 + np.exp(-eta))
    sign = np.where(chosen_first, 1.0, -1.0)  # orient each pair so that its outcome is "chosen"
    x1, x2 = x1 * sign[:, None], x2 * sign
    w = rng.uniform(0.5, 1.5, n)
    lam = 1e-4 * w.sum()
    b1, se, p, b2 = S.logistic_two(x1, x2, w, chunk=2)  # two chunks
    for k in range(3):
        ref = _oriented_fit(x1[:, k], x2, w, lam)
        assert (b1[k], b2[k]) == pytest.approx(tuple(ref), abs=1e-5)
        assert se[k] == pytest.approx(_numeric_se(x1[:, k], x2, w, lam, ref), rel=1e-3)
        assert p[k] == pytest.approx(2 * st.norm.sf(abs(b1[k] / se[k])), rel=1e-9)
    assert p[0] < 1e-6 and p[2] > 0.01
    # a shared x2 given as (n,) and as (n, K) is the same model
    b1_k, _, _, _ = S.logistic_two(x1, np.broadcast_to(x2[:, None], x1.shape), w)
    assert b1_k == pytest.approx(b1, abs=1e-10)


def test_logistic_two_separable_data_stays_finite():
    x1 = np.ones((20, 1))
    b1, se, p, _ = S.logistic_two(x1, np.zeros(20), np.ones(20))
    assert np.isfinite(b1).all() and np.isfinite(se).all() and b1[0] > 3


def test_standardize_scale_and_correlation_match_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(2.0, 3.0, size=(30, 3))
    a[:, 2] = 5.0
    z = S.standardize(a)
    assert z[:, :2] == pytest.approx((a[:, :2] - a[:, :2].mean(0)) / a[:, :2].std(0))
    assert (z[:, 2] == 0).all()
    s = S.scale_no_center(a)
    assert s == pytest.approx(a / np.sqrt((a**2).mean(0)))
    assert (S.scale_no_center(np.zeros((4, 1))) == 0).all()
    assert S.standardize(a.T, axis=1) == pytest.approx(z.T)
    b = rng.normal(size=(30, 2))
    r = S.correlation_matrix(a[:, :2], b)
    assert r == pytest.approx(np.corrcoef(a[:, :2].T, b.T)[:2, 2:])


def test_pooled_scale_and_standardised_mean_delta():
    rng = np.random.default_rng(3)
    c, r = rng.normal(1.0, 2.0, size=(40, 2)), rng.normal(0.0, 1.0, size=(40, 2))
    c[:, 1] = r[:, 1] = 4.0  # constant
    w = rng.random(40)
    x, ww = np.concatenate([c, r]), np.concatenate([w, w])
    m = np.average(x[:, 0], weights=ww)
    sd = np.sqrt(np.average((x[:, 0] - m) ** 2, weights=ww))
    scale = S.pooled_scale(c, r, w)
    assert scale[0] == pytest.approx(sd) and np.isnan(scale[1])
    smd = S.standardised_mean_delta(c, r, w)
    assert smd[0] == pytest.approx(np.average(c[:, 0] - r[:, 0], weights=w) / sd) and smd[1] == 0.0
    assert np.isnan(S.pooled_scale(c, r, np.zeros(40))).all()
    assert (S.standardised_mean_delta(c, r, np.zeros(40)) == 0).all()


def test_edge_counts_small_weights_and_scales():
    """Boundaries where a changed comparison (> 0 vs > 1, < vs <=) changes the answer."""
    # one pair, two pairs split evenly (p = 1), one test (BH leaves it alone)
    assert S.sign_test([1.0, 2.0], [1.0, 4.0]) == pytest.approx([1.0, 1.0])
    assert S.wilson_interval([1.0], [1.0])[0][0] == pytest.approx(st.binomtest(1, 1).proportion_ci(method="wilson").low)
    assert S.benjamini_hochberg([0.03]).tolist() == [0.03]
    # weights and values below 1
    assert S.kish_n(np.array([0.25, 0.25])) == pytest.approx(2.0)
    out = S.paired_win_stats(np.array([[1.0], [-1.0], [1.0]]), np.array([0.1, 0.1, 0.2]))
    assert out["win_rate"][0] == pytest.approx(0.75)
    small = np.array([[0.1, 0.2], [-0.1, 0.05], [0.05, 0.0]])
    assert S.scale_no_center(small) == pytest.approx(small / np.sqrt((small**2).mean(0)))
    assert S.scale_no_center(small, axis=1) == pytest.approx(small / np.sqrt((small**2).mean(1, keepdims=True)))
    c, r, w = small, np.zeros_like(small), np.full(3, 0.1)
    x = np.concatenate([c, r])
    sd = np.sqrt(np.average((x - np.average(x, axis=0, weights=np.tile(w, 2))) ** 2, axis=0, weights=np.tile(w, 2)))
    assert S.pooled_scale(c, r, w) == pytest.approx(sd)
    assert S.standardised_mean_delta(c, r, w) == pytest.approx(c.mean(0) / sd)


def test_degenerate_inputs_raise_no_warnings():
    """No pairs, no weight, constant columns: NaN or 0 as documented, and no numpy RuntimeWarning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(S.wilson_interval([0.0], [0.0])).all()
        assert np.isnan(S.sign_test([0.0], [0.0])).all()
        assert S.kish_n(np.zeros(3)) == 0.0
        assert np.isnan(S.paired_win_stats(np.zeros((2, 1)))["win_rate"]).all()
        assert (S.paired_effect_size(np.ones((3, 1)))[0] == 0).all()
        assert (S.standardize(np.ones((3, 1))) == 0).all() and (S.scale_no_center(np.zeros((3, 1))) == 0).all()
        assert S.standardised_mean_delta(np.ones((3, 1)), np.ones((3, 1)), np.ones(3)).tolist() == [0.0]
        b1, se, p, _ = S.logistic_two(np.zeros((5, 1)), np.zeros(5), np.ones(5))
        assert b1[0] == 0 and p[0] == pytest.approx(1.0)
