"""Small, vectorised statistics used by the audit (no state, arrays in, arrays out)."""

from __future__ import annotations

import numpy as np
from scipy import stats as _st


def wilson_interval(wins, n, z: float = 1.959963984540054):
    """95% Wilson score interval for a proportion ``wins / n`` (element-wise; NaN where n == 0)."""
    wins = np.asarray(wins, float)
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = wins / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    lo, hi = centre - half, centre + half
    bad = n <= 0
    return np.where(bad, np.nan, np.clip(lo, 0, 1)), np.where(bad, np.nan, np.clip(hi, 0, 1))


def sign_test(wins, n):
    """Two-sided exact binomial (sign) test of ``wins`` out of ``n`` against 0.5 (element-wise).

    Non-integer counts (weighted data) are rounded to the nearest integer first.
    """
    k = np.rint(np.asarray(wins, float))
    n = np.rint(np.asarray(n, float))
    with np.errstate(invalid="ignore"):
        lo = _st.binom.cdf(k, n, 0.5)
        hi = _st.binom.sf(k - 1, n, 0.5)
        p = np.minimum(1.0, 2 * np.minimum(lo, hi))
    return np.where(n > 0, p, np.nan)


def benjamini_hochberg(p):
    """Benjamini–Hochberg adjusted q-values; NaN p-values stay NaN and do not count as tests."""
    p = np.asarray(p, float)
    q = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return q
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q[order] = np.minimum(ranked, 1.0)
    return q


def kish_n(w):
    """Kish effective sample size ``(Σw)² / Σw²`` along axis 0 (works with a mask folded into ``w``)."""
    w = np.asarray(w, float)
    s2 = (w**2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s2 > 0, w.sum(axis=0) ** 2 / s2, 0.0)


def paired_win_stats(delta, weights=None):
    """Per concept (columns of ``delta``): n_differ, weighted wins, effective n, win rate, CI and sign test.

    ``win_rate`` is the (weighted) share of differing pairs whose chosen response has more of the concept.
    With weights, the CI and test use the Kish effective number of differing pairs.
    """
    delta = np.asarray(delta, float)
    w = np.ones(delta.shape[0]) if weights is None else np.asarray(weights, float)
    differ = delta != 0
    n_differ = (differ & (w[:, None] > 0)).sum(axis=0)
    wd = w[:, None] * differ
    wins_w = (w[:, None] * (delta > 0)).sum(axis=0)
    tot_w = wd.sum(axis=0)
    n_eff = kish_n(wd)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(tot_w > 0, wins_w / tot_w, np.nan)
    lo, hi = wilson_interval(win_rate * n_eff, n_eff)
    p = sign_test(win_rate * n_eff, n_eff)
    return {"n_differ": n_differ, "n_eff": n_eff, "win_rate": win_rate, "ci_low": lo, "ci_high": hi, "p_value": p}


def paired_effect_size(delta, weights=None):
    """Cohen's d_z of paired differences: mean(Δ) / sd(Δ) (weighted), 0 where Δ is constant."""
    delta = np.asarray(delta, float)
    w = np.ones(delta.shape[0]) if weights is None else np.asarray(weights, float)
    sw = w.sum()
    mean = (w[:, None] * delta).sum(0) / sw
    var = (w[:, None] * (delta - mean) ** 2).sum(0) / sw
    sd = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, mean / sd, 0.0), mean


def logistic_two(x1, x2, w, *, n_iter: int = 30, ridge: float = 1e-4, chunk: int = 256):
    """Bradley–Terry fits of P(chosen) = σ(b₁·x₁ + b₂·x₂) for many concepts at once (no intercept).

    ``x1`` is ``(n, K)`` (one column per concept), ``x2`` is ``(n,)`` (shared) or ``(n, K)``; ``w`` are pair
    weights. Pair orientation is symmetric, so every pair is an observation with outcome "chosen" and
    the model needs no intercept (equivalent to a logistic regression with random orientation). Newton's
    method with a small ridge keeps separable cases finite. Returns (b₁, se₁, p₁, b₂).
    """
    x1 = np.asarray(x1, float)
    n, K = x1.shape
    x2 = np.asarray(x2, float)
    if x2.ndim == 1:
        x2 = np.broadcast_to(x2[:, None], (n, K))
    w = np.asarray(w, float)
    lam = ridge * max(w.sum(), 1.0)
    b1 = np.zeros(K)
    b2 = np.zeros(K)
    se = np.full(K, np.nan)
    for s in range(0, K, chunk):
        X = np.stack([x1[:, s : s + chunk].T, x2[:, s : s + chunk].T], axis=-1)  # (k, n, 2)
        beta = np.zeros((X.shape[0], 2))
        eye = np.eye(2) * lam
        for _ in range(n_iter):
            eta = np.einsum("knj,kj->kn", X, beta)
            p = 1 / (1 + np.exp(-eta))
            grad = np.einsum("knj,kn->kj", X, w * (1 - p)) - lam * beta
            wh = w * p * (1 - p)
            H = np.einsum("kni,kn,knj->kij", X, wh, X) + eye
            step = np.linalg.solve(H, grad[..., None])[..., 0]
            beta += step
            if np.max(np.abs(step)) < 1e-8:
                break
        eta = np.einsum("knj,kj->kn", X, beta)
        p = 1 / (1 + np.exp(-eta))
        H = np.einsum("kni,kn,knj->kij", X, w * p * (1 - p), X) + eye
        cov = np.linalg.inv(H)
        b1[s : s + chunk], b2[s : s + chunk] = beta[:, 0], beta[:, 1]
        se[s : s + chunk] = np.sqrt(np.maximum(cov[:, 0, 0], 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = b1 / se
    pval = 2 * _st.norm.sf(np.abs(z))
    return b1, se, np.where(np.isfinite(pval), pval, np.nan), b2


def standardize(x, axis=0):
    """(x − mean) / sd along ``axis``; columns with sd 0 become 0."""
    x = np.asarray(x, float)
    sd = x.std(axis=axis, keepdims=True)
    return np.where(sd > 0, (x - x.mean(axis=axis, keepdims=True)) / np.where(sd > 0, sd, 1), 0.0)


def scale_no_center(x, axis=0):
    """x / root-mean-square along ``axis`` (keeps 0 at 0, so the sign of a Δ keeps its meaning)."""
    x = np.asarray(x, float)
    rms = np.sqrt((x**2).mean(axis=axis, keepdims=True))
    return np.where(rms > 0, x / np.where(rms > 0, rms, 1), 0.0)


def correlation_matrix(a, b):
    """Pearson correlation between every column of ``a`` (n, K) and every column of ``b`` (n, M)."""
    za = standardize(a)
    zb = standardize(b)
    return za.T @ zb / a.shape[0]


def pooled_scale(chosen, rejected, weights):
    """Weighted standard deviation of each concept's scores over all responses, chosen and rejected together
    (NaN where a concept is constant)."""
    x = np.concatenate([chosen, rejected], axis=0).astype(float)
    w = np.concatenate([weights, weights]).astype(float)
    if w.sum() <= 0:
        return np.full(x.shape[1], np.nan)
    mean = (w[:, None] * x).sum(0) / w.sum()
    sd = np.sqrt((w[:, None] * (x - mean) ** 2).sum(0) / w.sum())
    return np.where(sd > 1e-12, sd, np.nan)


def standardised_mean_delta(chosen, rejected, weights):
    """Per concept: the weighted mean chosen − rejected difference divided by :func:`pooled_scale` — the shift
    that preference optimisation on these pairs is predicted to cause, in standard deviations
    (:mod:`curate.learning.predict`, estimator ``delta_std``). 0 where the concept is constant.

    Example:

        >>> import numpy as np
        >>> c, r = np.array([[1.0], [1.0], [0.0]]), np.array([[0.0], [0.0], [0.0]])
        >>> round(float(standardised_mean_delta(c, r, np.ones(3))[0]), 3)
        1.414
    """
    w = np.asarray(weights, dtype=float)
    delta = np.asarray(chosen, dtype=float) - np.asarray(rejected, dtype=float)
    if w.sum() <= 0:
        return np.zeros(delta.shape[1])
    mean_delta = (w[:, None] * delta).sum(0) / w.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(mean_delta / pooled_scale(chosen, rejected, w), nan=0.0)
