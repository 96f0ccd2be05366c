"""Statistics of the learning check: how well a prediction agrees with what the policies learned, with
uncertainty that covers every source of noise, and the baselines a score must beat.

* :func:`hierarchical_bootstrap`: resample seeds, then units (held-out prompts, counterfactual pairs) within
  each resampled seed. A run's seed sets the trained sample, the LoRA initialisation, the batch order and the
  decoding, so a CI over prompts alone (one seed, or seeds averaged first) leaves out the run-to-run spread.
* :func:`prediction_scores`: signed Pearson r, Spearman ρ and the calibration line (slope, intercept) of
  observed on predicted, each with a 95% CI from the hierarchical bootstrap crossed with a bootstrap over
  concepts (the concepts are a sample too); ``r2`` is ``1 − SSE/SST`` of the standardised observed against the
  standardised prediction (``2r − 1``: negative once the prediction does worse than predicting the mean), never
  a squared correlation. Beside them, computed in the same call: ``perm95``, the 95th percentile of r when the
  predictions are shuffled over the concepts, and ``planted_r``, the r of the generator's ground truth (which
  concepts it planted) when that is given. A prediction earns trust when ``r > perm95`` and ``r_low > 0``.
* :func:`merge_correlated`: concepts whose Δ (chosen − rejected) correlates above 0.95 over the trained rows
  measure one thing (a heading, a list, bold text and "markdown" planted together) and are merged into one,
  named after its members, before any score, so one planted concept is not counted four times.
* :func:`pooled_shift`: per concept the seed-pooled shift with its hierarchical CI, never narrower than the
  Student-t interval over the seeds' means (few seeds: a bootstrap over 3 seeds undercovers).
* :func:`prediction_quality`: the same scores for one run (one value per concept), plus the keys older
  ``learning.json`` readers use.
* :func:`noise_ceiling` / :func:`noise_ceiling_ci`: the seed-to-seed agreement of independent runs, with a CI
  over concepts.
* :func:`summary_line`: the one line a protocol run ends with.

Example:

    >>> import numpy as np
    >>> from curate.learning.stats import prediction_scores
    >>> rng = np.random.default_rng(0)
    >>> mu = rng.normal(size=30)
    >>> seeds = [mu + rng.normal(scale=0.5, size=(40, 30)) for _ in range(3)]  # 3 seeds x 40 prompts
    >>> s = prediction_scores(mu, seeds, n_boot=500)
    >>> bool(s["r"] > s["perm95"]), bool(s["r_low"] > 0.5), bool(s["r"] <= s["r_high"])
    (True, True, True)
    >>> bool(prediction_scores(-mu, seeds, n_boot=500)["r_high"] < 0)  # anti-correlated: fails, sign and all
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = [
    "hierarchical_bootstrap",
    "merge_correlated",
    "merge_matrix",
    "noise_ceiling",
    "noise_ceiling_ci",
    "pooled_shift",
    "prediction_quality",
    "prediction_scores",
    "summary_line",
]

#: the keys of :func:`prediction_scores` that hold a number (the CI bounds included)
SCORE_KEYS = ("r", "spearman", "slope", "intercept")


def _as_units(units_by_seed) -> list[np.ndarray]:
    """Each seed's units as a 2-D float array (units × columns); a 1-D seed is one unit per column."""
    out = []
    for u in units_by_seed:
        a = np.asarray(u, dtype=float)
        out.append(a[None, :] if a.ndim == 1 else a)
    if not out:
        raise ConfigError("No seeds: pass one array of units (prompts or pairs × concepts) per seed.")
    widths = {a.shape[1] for a in out}
    if len(widths) != 1:
        raise ConfigError(f"The seeds have different numbers of columns ({sorted(widths)}): one column per concept.")
    return out


def _seed_means(units: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """``n_boot`` means over a bootstrap resample of ``units``' rows (NaN entries skipped): ``(n_boot, columns)``."""
    n = units.shape[0]
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    ok = np.isfinite(units)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ np.where(ok, units, 0.0)) / (counts @ ok)


def _point(units: list[np.ndarray]) -> np.ndarray:
    """The pooled estimate: each seed's mean over its units, averaged over seeds (every seed weighs the same)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean([np.nanmean(u, axis=0) if np.isfinite(u).any() else u[0] for u in units], axis=0)


def hierarchical_bootstrap(
    units_by_seed: Sequence, statistic: Callable | None = None, n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    """Bootstrap replicates of a statistic of runs: resample the seeds, then the units within each drawn seed.

    Args:
        units_by_seed: one array per seed, units (held-out prompts, counterfactual pairs) × columns (concepts);
            seeds may have different units and different numbers of them (independent draws). NaN entries
            are skipped (a pair measured for some concepts only).
        statistic: ``statistic(list_of_resampled_seed_arrays) -> array``; None (the fast path) gives the
            pooled mean: each resampled seed's mean over its units, averaged over the resampled seeds.
        n_boot: number of replicates.
        seed: the random seed of the resampling.

    Returns:
        ``(n_boot, …)``: one replicate per row.

    Example:

        >>> import numpy as np
        >>> agree = [np.array([[1.0], [1.0]]), np.array([[1.0], [1.0]])]
        >>> disagree = [np.array([[0.0], [0.0]]), np.array([[2.0], [2.0]])]
        >>> float(np.ptp(hierarchical_bootstrap(agree, n_boot=200))), float(np.ptp(hierarchical_bootstrap(disagree, n_boot=200)))
        (0.0, 2.0)
    """
    units = _as_units(units_by_seed)
    rng = np.random.default_rng(seed)
    k = len(units)
    picks = rng.integers(0, k, size=(n_boot, k))
    if statistic is None:
        out = np.zeros((n_boot, units[0].shape[1]))
        for slot in range(k):  # every slot draws its own prompt resample of the seed it picked
            means = np.stack([_seed_means(u, n_boot, rng) for u in units])  # seeds × n_boot × columns
            out += means[picks[:, slot], np.arange(n_boot)]
        return out / k
    reps = []
    for b in range(n_boot):
        drawn = [units[s][rng.integers(0, len(units[s]), size=len(units[s]))] for s in picks[b]]
        reps.append(np.asarray(statistic(drawn), dtype=float))
    return np.stack(reps)


def _pearson(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of two ``(n_boot, n)`` arrays (NaN where either is constant)."""
    pc, oc = p - p.mean(1, keepdims=True), o - o.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pc * oc).sum(1) / np.sqrt((pc * pc).sum(1) * (oc * oc).sum(1))


def _line(p: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise least-squares ``o ≈ intercept + slope · p``."""
    pc = p - p.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (pc * (o - o.mean(1, keepdims=True))).sum(1) / (pc * pc).sum(1)
    return slope, o.mean(1) - slope * p.mean(1)


def _scores(p: np.ndarray, o: np.ndarray) -> dict[str, np.ndarray]:
    from scipy.stats import rankdata

    slope, intercept = _line(p, o)
    return {
        "r": _pearson(p, o),
        "spearman": _pearson(rankdata(p, axis=1), rankdata(o, axis=1)),
        "slope": slope,
        "intercept": intercept,
    }


def _ci(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))


def prediction_scores(
    predicted, observed_by_seed: Sequence, *, planted=None, n_boot: int = 2000, n_perm: int = 2000, seed: int = 0
) -> dict:
    """How well ``predicted`` agrees with the observed shifts, with hierarchical CIs and two baselines.

    Args:
        predicted: one prediction per concept (standardised units), length ``C``.
        observed_by_seed: one array per seed, units × ``C`` (per held-out prompt differences, or per pair
            margins, in the prediction's units); a 1-D array is one value per concept for that seed.
        planted: the generator's ground truth per concept (planted rate or a 0/1 indicator), or None.
        n_boot, n_perm: bootstrap replicates and shuffles.
        seed: the random seed of the resampling.

    Returns:
        ``{"r", "r_low", "r_high", "spearman", "spearman_low", "spearman_high", "slope", "slope_low",
        "slope_high", "intercept", "intercept_low", "intercept_high", "r2", "perm95", "n", "seeds"}`` and, with
        ``planted``, ``"planted_r", "planted_r_low", "planted_r_high"``. Concepts whose prediction or pooled
        observation is not finite are left out (``n`` counts the rest); fewer than 3 give NaN scores.
    """
    p = np.asarray(predicted, dtype=float)
    units = _as_units(observed_by_seed)
    if units[0].shape[1] != len(p):
        raise ConfigError(f"{len(p)} predictions but {units[0].shape[1]} observed columns: one per concept.")
    obs = _point(units)
    ok = np.isfinite(p) & np.isfinite(obs)
    truth = None if planted is None else np.asarray(planted, dtype=float)
    if truth is not None:
        ok &= np.isfinite(truth)
    n = int(ok.sum())
    out: dict = {"n": n, "seeds": len(units)}
    if n < 3 or np.ptp(p[ok]) == 0 or np.ptp(obs[ok]) == 0:
        return {**out, **{f"{k}{e}": float("nan") for k in SCORE_KEYS for e in ("", "_low", "_high")}} | {
            "r2": float("nan"),
            "perm95": float("nan"),
        }
    rng = np.random.default_rng(seed + 1)
    reps = hierarchical_bootstrap([u[:, ok] for u in units], n_boot=n_boot, seed=seed)
    cidx = rng.integers(0, n, size=(n_boot, n))  # the concepts are a sample too
    o_b = np.take_along_axis(reps, cidx, axis=1)
    point = _scores(p[ok][None], obs[ok][None])
    boot = _scores(p[ok][cidx], o_b)
    for k in SCORE_KEYS:
        out[k] = float(point[k][0])
        out[f"{k}_low"], out[f"{k}_high"] = _ci(boot[k])
    zp = (p[ok] - p[ok].mean()) / p[ok].std()
    zo = (obs[ok] - obs[ok].mean()) / obs[ok].std()
    out["r2"] = float(1 - ((zo - zp) ** 2).sum() / (zo**2).sum())
    shuffled = p[ok][np.argsort(rng.random((n_perm, n)), axis=1)]
    out["perm95"] = float(np.nanquantile(_pearson(shuffled, np.broadcast_to(obs[ok], shuffled.shape)), 0.95))
    if truth is not None:
        t = truth[ok]
        out["planted_r"] = float(_pearson(t[None], obs[ok][None])[0]) if np.ptp(t) > 0 else float("nan")
        out["planted_r_low"], out["planted_r_high"] = _ci(_pearson(t[cidx], o_b)) if np.ptp(t) > 0 else (np.nan,) * 2
    return out


def pooled_shift(
    units_by_seed: Sequence, *, n_boot: int = 2000, seed: int = 0, seed_t: bool = True
) -> tuple[np.ndarray, ...]:
    """Per column (concept): the seed-pooled mean and its 95% CI ``(mean, low, high)``.

    The CI is the hierarchical bootstrap's (:func:`hierarchical_bootstrap`) widened, with ``seed_t``, to at least
    the Student-t interval over the seeds' own means (``k − 1`` degrees of freedom): with 3 seeds a percentile
    bootstrap over seeds covers a nominal 95% only about 70–75% of the time when the seeds disagree (simulated in
    ``tests/test_learning_stats.py``), the t interval about 95%.

    Example:

        >>> import numpy as np
        >>> m, lo, hi = pooled_shift([np.full((4, 1), 0.25), np.full((4, 1), 0.75)], n_boot=400)
        >>> float(m[0]), bool(lo[0] < 0.25), bool(hi[0] > 0.75)  # the seeds disagree: the CI spans them
        (0.5, True, True)
        >>> pooled_shift([np.full((4, 1), 0.5), np.full((4, 1), 0.5)], n_boot=400)[1].tolist()  # they agree
        [0.5]
    """
    from scipy.stats import t as student_t

    units = _as_units(units_by_seed)
    reps = hierarchical_bootstrap(units, n_boot=n_boot, seed=seed)
    point = _point(units)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no finite unit
        lo, hi = np.nanquantile(reps, 0.025, axis=0), np.nanquantile(reps, 0.975, axis=0)
        means = np.array([np.nanmean(u, axis=0) for u in units])
        k = np.isfinite(means).sum(0)
        if seed_t and len(units) >= 2:
            half = student_t.ppf(0.975, np.maximum(k - 1, 1)) * np.nanstd(means, axis=0, ddof=1) / np.sqrt(k)
            half = np.where(k >= 2, half, 0.0)
            lo, hi = np.fmin(lo, point - half), np.fmax(hi, point + half)
    return point, lo, hi


def merge_correlated(deltas: pd.DataFrame, threshold: float = 0.95) -> dict[str, list[str]]:
    """Group the concepts whose Δ correlates above ``threshold`` over the trained rows.

    Args:
        deltas: rows × concepts, each row's Δ = score(chosen) − score(rejected).
        threshold: the Pearson r above which two concepts count as one (linked groups merge transitively).

    Returns:
        ``{group name: members}`` for every group in the order the concepts come, singletons included
        (``{"emoji": ["emoji"]}``); a merged group's name joins its members with ``+``.

    Example:

        >>> import pandas as pd
        >>> d = pd.DataFrame({"heading": [1, 0, 1, 0], "list": [1, 0, 1, 0], "emoji": [0, 1, 1, 0]})
        >>> merge_correlated(d)
        {'heading+list': ['heading', 'list'], 'emoji': ['emoji']}
    """
    names = [str(c) for c in deltas.columns]
    corr = deltas.astype(float).corr().to_numpy()
    parent = list(range(len(names)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(np.nan_to_num(corr, nan=0.0) > threshold, k=1))):
        parent[root(int(j))] = root(int(i))
    groups: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        groups.setdefault(root(i), []).append(name)
    return {"+".join(m): m for m in groups.values()}


def merge_matrix(concepts: Sequence[str], groups: dict[str, list[str]] | None) -> tuple[list[str], np.ndarray]:
    """``(group names, concepts × groups averaging matrix)``: ``values @ matrix`` averages each group's members.

    Concepts that no group names stay on their own; ``groups`` from several seeds may overlap (they are
    joined transitively). None merges nothing.
    """
    concepts = [str(c) for c in concepts]
    pos = {c: i for i, c in enumerate(concepts)}
    parent = list(range(len(concepts)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for members in (groups or {}).values():
        idx = [pos[m] for m in members if m in pos]
        for j in idx[1:]:
            a, b = root(idx[0]), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    order: dict[int, list[int]] = {}
    for i in range(len(concepts)):
        order.setdefault(root(i), []).append(i)
    names = ["+".join(concepts[i] for i in m) for m in order.values()]
    mat = np.zeros((len(concepts), len(order)))
    for g, members in enumerate(order.values()):
        mat[members, g] = 1.0 / len(members)
    return names, mat


def noise_ceiling_ci(per_seed: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """The seed-to-seed agreement of independent runs (seeds × concepts), with a 95% CI over concepts.

    ``rho`` is the mean Pearson r over pairs of seeds; ``r_pooled`` = √(kρ / (1 + (k − 1)ρ)) is the highest r an
    exact prediction of the expected shift can expect against the mean of ``k`` seeds (Spearman–Brown).
    """
    from itertools import combinations

    obs = np.asarray(per_seed, dtype=float)
    k = obs.shape[0]
    ok = np.isfinite(obs).all(0)
    x = obs[:, ok]
    n = x.shape[1]
    if k < 2 or n < 3:
        return {"seeds": k, "n": n, "rho": float("nan"), "rho_low": float("nan"), "rho_high": float("nan")}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    pairs = list(combinations(range(k), 2))
    point = float(np.nanmean([_pearson(x[a][None], x[b][None])[0] for a, b in pairs]))
    with warnings.catch_warnings():  # a resample whose concepts are all alike gives no r: skipped
        warnings.simplefilter("ignore", RuntimeWarning)
        boot = np.nanmean([_pearson(x[a][idx], x[b][idx]) for a, b in pairs], axis=0)
    lo, hi = _ci(boot)

    def pooled(rho: float) -> float:
        rho = max(0.0, rho)
        return float(np.sqrt(k * rho / (1 + (k - 1) * rho))) if rho == rho else float("nan")

    return {
        "seeds": k,
        "n": n,
        "rho": point,
        "rho_low": lo,
        "rho_high": hi,
        "r_pooled": pooled(point),
        "r_pooled_low": pooled(lo),
        "r_pooled_high": pooled(hi),
    }


def prediction_quality(predicted, observed, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Signed agreement of predicted vs observed over the finite entries of one run (one value per concept).

    The scores and their 95% CIs are those of :func:`prediction_scores` (``r``,
    ``spearman``, ``slope``, ``intercept``, each with ``_low``/``_high``; ``perm95``, the 95th percentile of r
    under shuffled predictions); with one run the CI resamples the concepts (prompt noise is inside each
    observed value). ``r2_std`` is ``1 − SSE/SST`` on the standardised scale (negative when worse than the
    mean). ``r2`` (the squared r) and ``pearson`` are kept for readers of older ``learning.json`` files; a
    squared correlation is blind to the sign and is never shown as an R².

    Example:

        >>> q = prediction_quality([1.0, 2.0, 3.0, 4.0], [-1.0, -2.1, -2.9, -4.0])
        >>> round(q["r"], 2), bool(q["r"] < q["perm95"]), q["r2_std"] < 0
        (-1.0, True, True)
    """
    p, o = np.asarray(predicted, float), np.asarray(observed, float)
    ok = np.isfinite(p) & np.isfinite(o)
    s = prediction_scores(p[ok], [o[ok]], n_boot=n_boot, n_perm=n_boot, seed=seed)
    r = s["r"]
    return {**{k: v for k, v in s.items() if k != "r2"}, "r2_std": s["r2"], "r2": r * r, "pearson": r}


def noise_ceiling(observed) -> dict:
    """The seed-to-seed agreement of observed shifts and the agreement it leaves to any prediction.

    ``observed`` is seeds × concepts (standardised shifts of runs that differ only in the seed). If each run
    observes ``μ + noise`` (the same expected shift ``μ``, independent run noise of equal variance), two
    runs correlate with ``ρ = var(μ) / (var(μ) + var(noise))``, and a prediction that is exactly right about
    ``μ`` reaches an expected squared r of ``ρ`` against one run and ``kρ / (1 + (k − 1)ρ)`` (Spearman–Brown)
    against the mean of ``k`` runs: the noise ceiling (``r2_one_seed``, ``r2_pooled``; their square roots
    ``r_one_seed``, ``r_pooled`` are the ceiling of the signed r). ``ρ`` is the mean Pearson r over pairs of
    seeds (negative values count as 0); ``rho_low``/``rho_high`` and ``r_pooled_low``/``r_pooled_high`` are
    its 95% CI over concepts (:func:`noise_ceiling_ci`). It is only a ceiling when the
    seeds are independent runs (their own training rows and held-out prompts); runs that share them agree
    more and the ceiling runs high.

    Example:

        >>> import numpy as np
        >>> out = noise_ceiling(np.array([[1.0, 0.5, 0.0, -0.5], [0.9, 0.6, 0.1, -0.4], [1.1, 0.4, -0.1, -0.6]]))
        >>> out["r2_one_seed"] > 0.9, out["seeds"]
        (True, 3)
    """
    from itertools import combinations

    obs = np.asarray(observed, float)
    k = obs.shape[0]
    ok = np.isfinite(obs).all(0)
    rs = (
        [float(np.corrcoef(obs[a, ok], obs[b, ok])[0, 1]) for a, b in combinations(range(k), 2)]
        if ok.sum() >= 3
        else []
    )
    rs = [r for r in rs if np.isfinite(r)]
    rho = max(0.0, float(np.mean(rs))) if rs else float("nan")  # too few concepts: unknown
    ci = noise_ceiling_ci(obs)
    return {
        "seeds": k,
        "n": int(ok.sum()),
        "pairwise_r": [round(r, 3) for r in rs],
        "r2_one_seed": round(rho, 3),
        "r2_pooled": round(k * rho / (1 + (k - 1) * rho), 3),
        "r_one_seed": round(float(np.sqrt(rho)), 3) if rho == rho else float("nan"),
        **{key: round(v, 3) for key, v in ci.items() if key not in ("seeds", "n")},
    }


def _num(x) -> str:
    return "nan" if x is None or x != x else f"{float(x):.3f}"


def summary_line(record: dict) -> str:
    """The last line of a protocol run (also its ``summary.txt``), from a pooled record
    (:func:`curate.learning.pool_learning`): the generation prediction's r with its CI and ``perm95``, and
    the mean generation shift (sd) of the blocked concepts per arm (``nan`` for an arm that was not run).

    Example:

        >>> summary_line({"prediction": {"generation": {"r": 0.61, "r_low": 0.2, "r_high": 0.8, "perm95": 0.31}},
        ...               "blocked": {"original": {"shift": 0.9}, "curated": {"shift": 0.1}}})
        'r=0.610 r_low=0.200 r_high=0.800 perm95=0.310 blocked_original=0.900 blocked_curated=0.100 blocked_sham=nan'
    """
    gen = (record.get("prediction") or {}).get("generation") or {}
    blocked = record.get("blocked") or {}
    parts = [f"{k}={_num(gen.get(k))}" for k in ("r", "r_low", "r_high", "perm95")]
    parts += [f"blocked_{arm}={_num((blocked.get(arm) or {}).get('shift'))}" for arm in ("original", "curated", "sham")]
    return " ".join(parts)
