"""The statistics of the learning check (:mod:`curate.learning.stats`, the scores of :mod:`curate.learning.measure`
and :func:`curate.learning.pool_learning`): fast, generated data, no model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.learning.stats import (
    hierarchical_bootstrap,
    merge_correlated,
    merge_matrix,
    noise_ceiling_ci,
    pooled_shift,
    prediction_scores,
    summary_line,
)


def _runs(rng, rho, *, concepts=30, seeds=3, prompts=40, seed_sd=0.3, prompt_sd=1.0):
    """A prediction and ``seeds`` runs of per-prompt observations whose expected shift correlates ``rho`` with it."""
    p, mu = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=concepts).T
    runs = [mu + rng.normal(0, seed_sd, concepts) + rng.normal(0, prompt_sd, (prompts, concepts)) for _ in range(seeds)]
    return p, runs


def test_the_ci_of_r_covers_the_true_r():
    """A 30-concept table whose prediction correlates 0.6 with the expected shift, measured by 3 seeds × 40
    prompts with seed and prompt noise: the 95% CI of r covers 0.6 in at least 90% of 200 draws."""
    rng = np.random.default_rng(29)
    hits = []
    for draw in range(200):
        p, runs = _runs(rng, 0.6)
        s = prediction_scores(p, runs, n_boot=400, n_perm=100, seed=draw)
        hits.append(s["r_low"] <= 0.6 <= s["r_high"])
    assert np.mean(hits) >= 0.9, np.mean(hits)


def test_an_anti_correlated_prediction_fails_every_target():
    rng = np.random.default_rng(1)
    p, runs = _runs(rng, 0.9)
    good = prediction_scores(p, runs, n_boot=500)
    bad = prediction_scores(-p, runs, n_boot=500)
    assert good["r"] > good["perm95"] and good["r_low"] > 0
    assert bad["r"] < bad["perm95"] and bad["r_high"] < 0  # the sign counts: r² would pass it
    assert bad["spearman_high"] < 0 and bad["slope_high"] < 0
    assert bad["r2"] < 0 < good["r2"]  # 1 − SSE/SST on the standardised scale: worse than the mean is negative
    assert good["r2"] == pytest.approx(2 * good["r"] - 1)
    # the perm95 baseline is computed on the data at hand: about 0.3 for 30 concepts, whatever the prediction
    assert 0.15 < bad["perm95"] < 0.45 and bad["perm95"] == pytest.approx(good["perm95"], abs=0.1)


def test_the_measure_scores_are_signed():
    """The single-run scores that ``learning_check`` records (``prediction_quality``) keep the sign."""
    from curate.learning.measure import generation_record, prediction_quality, reward_record

    x = np.linspace(-1, 1, 12)
    q = prediction_quality(x, -x + np.sin(7 * x) * 0.1)
    assert q["r"] < -0.9 and q["r_high"] < 0 and q["r"] < q["perm95"] and q["r2_std"] < 0
    rec = generation_record({"original": q, "curated": q})
    assert rec["r"] == q["r"] and rec["r_low"] == q["r_low"] and rec["perm95_curated"] == q["perm95"]
    rec = reward_record({"original": q}, {})
    assert rec["r_reward"] == q["r"] and rec["n_concepts_reward"] == 12


def test_the_pooled_ci_widens_when_seeds_disagree():
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.1, (40, 1))
    agree = [noise + 0.5, noise[::-1] + 0.5, noise + 0.5]
    disagree = [noise + 0.0, noise[::-1] + 0.5, noise + 1.0]
    _, lo_a, hi_a = pooled_shift(agree)
    m, lo_d, hi_d = pooled_shift(disagree)
    assert m[0] == pytest.approx(0.5, abs=0.05)
    assert hi_d[0] - lo_d[0] > 10 * (hi_a[0] - lo_a[0])
    assert lo_d[0] < 0.2 and hi_d[0] > 0.8


def test_the_pooled_ci_covers_the_true_shift_with_three_seeds():
    """Seeds that disagree (seed sd = prompt sd): the pooled CI covers the true shift in at least 90% of 200
    draws; averaging the seeds first and resampling prompts only (the former pooling) covers it far less often."""
    from curate.learning.measure import bootstrap_shift

    rng = np.random.default_rng(11)
    hits, old = [], []
    for draw in range(200):
        runs = [rng.normal(0, 1.0) + rng.normal(0, 1.0, (40, 1)) for _ in range(3)]
        _, lo, hi = pooled_shift(runs, n_boot=300, seed=draw)
        hits.append(lo[0] <= 0 <= hi[0])
        _, lo_old, hi_old = bootstrap_shift(np.mean([r[:, 0] for r in runs], axis=0), n_boot=300, seed=draw)
        old.append(lo_old <= 0 <= hi_old)
    assert np.mean(hits) >= 0.9 and np.mean(old) < 0.5, (np.mean(hits), np.mean(old))


def test_seeds_with_their_own_units():
    """Independent draws: each seed has its own number of prompts; a NaN unit (a concept without that pair)
    is skipped, never counted as 0; a statistic of the resampled seeds can be passed."""
    a = np.array([[1.0, np.nan], [1.0, 2.0], [1.0, 2.0]])
    b = np.array([[3.0, 4.0]])
    m, lo, hi = pooled_shift([a, b], n_boot=300)
    assert m.tolist() == [2.0, 3.0] and lo[0] <= 1.0 and hi[0] >= 3.0
    assert pooled_shift([a, b], n_boot=300, seed_t=False)[1][0] == 1.0  # the bootstrap alone: the seeds' means
    reps = hierarchical_bootstrap([a, b], lambda seeds: [len(s) for s in seeds], n_boot=50)
    assert reps.shape == (50, 2) and set(reps.ravel()) <= {1.0, 3.0}
    with pytest.raises(ValueError, match="one column per concept"):
        pooled_shift([a, np.ones((2, 3))])


def test_a_concept_duplicated_four_times_counts_once():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(200, 6))
    deltas = pd.DataFrame(base, columns=[f"c{i}" for i in range(6)])
    for name in ("list", "bold", "markdown"):
        deltas[name] = deltas["c0"] + rng.normal(0, 0.01, 200)  # one planted concept, four names
    groups = merge_correlated(deltas)
    assert groups["c0+list+bold+markdown"] == ["c0", "list", "bold", "markdown"]
    assert len(groups) == 6 and groups["c3"] == ["c3"]
    names, mat = merge_matrix(list(deltas.columns), {k: v for k, v in groups.items() if len(v) > 1})
    assert names[0] == "c0+list+bold+markdown" and len(names) == 6
    # scored after the merge, the duplicate counts once: 6 concepts, not 9
    pred = np.r_[np.full(1, 2.0), rng.normal(size=5), np.full(3, 2.0)]
    obs = [np.r_[np.full(1, 2.0), rng.normal(size=5), np.full(3, 2.0)][None, :]]
    assert prediction_scores(pred @ mat, [o @ mat for o in obs], n_boot=50)["n"] == 6
    assert prediction_scores(pred, obs, n_boot=50)["n"] == 9
    assert merge_correlated(deltas[["c1", "c2"]]) == {"c1": ["c1"], "c2": ["c2"]}


def test_planted_indicator_and_noise_ceiling():
    rng = np.random.default_rng(7)
    planted = (rng.random(30) < 0.4).astype(float)
    runs = [planted + rng.normal(0, 0.3, (20, 30)) for _ in range(3)]
    s = prediction_scores(rng.normal(size=30), runs, planted=planted, n_boot=300)
    assert s["planted_r"] > 0.8 and s["planted_r_low"] > 0.5 and s["planted_r"] > s["r"]
    per_seed = np.array([r.mean(0) for r in runs])
    c = noise_ceiling_ci(per_seed, n_boot=300)
    assert c["rho_low"] <= c["rho"] <= c["rho_high"] and c["rho"] > 0.8 and 0.9 < c["r_pooled"] <= 1
    assert np.isnan(noise_ceiling_ci(per_seed[:, :2])["rho"])


def test_summary_line_from_a_pooled_record():
    rec = {
        "prediction": {"generation": {"r": 0.5, "r_low": 0.1, "r_high": 0.8, "perm95": 0.3}},
        "blocked": {"original": {"shift": 1.0}, "curated": {"shift": 0.2}, "sham": {"shift": 0.6}},
    }
    assert summary_line(rec) == (
        "r=0.500 r_low=0.100 r_high=0.800 perm95=0.300 blocked_original=1.000 blocked_curated=0.200 blocked_sham=0.600"
    )
    assert summary_line({}).endswith("blocked_sham=nan")


def test_too_few_concepts_give_nan_not_an_error():
    s = prediction_scores([1.0, 2.0], [np.array([[1.0, 2.0]])], n_boot=10)
    assert s["n"] == 2 and np.isnan(s["r"]) and np.isnan(s["perm95"])
    with pytest.raises(ValueError, match="one per concept"):
        prediction_scores([1.0, 2.0, 3.0], [np.ones((2, 4))])


CONCEPTS = ["flattery", "heading", "list", "emoji", "length"]
#: the expected shift per arm (sd); heading and list are one concept under two names
SHIFT = {"original": [1.0, 0.3, 0.3, 0.0, 0.5], "curated": [0.1, 0.3, 0.3, 0.0, 0.5], "sham": [0.8, 0.3, 0.3, 0.0, 0.5]}


def _fake_scores(texts, concepts):
    """Texts are written as ``concept=value;…`` (the test's own scorer, no annotator)."""
    rows = [dict(kv.split("=") for kv in t.split(";")) for t in texts]
    return pd.DataFrame({c: [float(r[c]) for r in rows] for c in concepts})


def _folder(path, seed, *, arms=("original", "curated", "sham"), independent=True, wobble=0.0, counterfactuals=False):
    from curate.learning.folder import LEARNING_COLUMNS, LearningResult, save_learning_folder

    rng = np.random.default_rng(seed)
    prompts = [f"s{seed}p{i}" for i in range(6)]  # each seed its own held-out prompts
    gens = {"reference": pd.DataFrame({"prompt": np.repeat(prompts, 2), "text": ";".join(f"{c}=0" for c in CONCEPTS)})}
    table = pd.DataFrame({"concept": CONCEPTS, "label": CONCEPTS, "source": "named", "action": ""})
    table.loc[0, "action"] = "block"
    table = table.assign(predicted=[0.9, 0.25, 0.25, 0.05, 0.4], predicted_curated=0.0, scale=1.0, n_differ=10)
    table = table.assign(supported=True, reward_n=8, reference_mean=0.0)
    for arm in arms:
        shift = np.array(SHIFT[arm]) + wobble * (seed - 1)
        texts = [";".join(f"{c}={v + rng.normal(0, 0.05):.4f}" for c, v in zip(CONCEPTS, shift)) for _ in range(12)]
        gens[arm] = pd.DataFrame({"prompt": np.repeat(prompts, 2), "text": texts})
        table = table.assign(**{f"observed_{arm}": shift, f"reward_{arm}": 0.5 + shift / 4, f"{arm}_mean": shift})
        table = table.assign(**{f"reward_margin_{arm}": shift / 10})
    extra = [c for c in table.columns if c not in LEARNING_COLUMNS]
    record = {"model": "tiny", "config": {"seed": seed}, "seconds": 1.0, "independent_draws": independent}
    record["merged_concepts"] = {"heading+list": ["heading", "list"], "emoji": ["emoji"]}
    record["planted"] = {"flattery": [0.7, 0.2], "markdown": [0.4, 0.1], "padding": [0.5, 0.0]}  # better, worse
    record["named_of"] = {"markdown": "heading", "padding": "length"}
    table = table.reindex(columns=[*LEARNING_COLUMNS, *extra])
    folder = save_learning_folder(LearningResult(table, record, None, gens), path)
    if counterfactuals:  # per pair: the concept's margin over its placebo; "neutral" (no table row) is 0 on average
        rows = [
            {
                "concept": c,
                "pair": i,
                "arm": arm,
                "adjusted": (shift / 2 if c != "neutral" else 0.0) + rng.normal(0, 0.1),
            }
            for arm in arms
            for c, shift in zip([*CONCEPTS, "neutral"], [*SHIFT[arm], 0.0])
            for i in range(8 + seed)  # independent draws: each seed its own number of pairs
        ]
        pd.DataFrame(rows).assign(margin=np.nan, placebo_margin=np.nan).to_parquet(folder / "counterfactuals.parquet")
    return folder


@pytest.fixture
def fake_scorer(monkeypatch):
    import curate.learning.pool as pool

    monkeypatch.setattr(pool, "score_texts", _fake_scores)


def test_pool_independent_draws_with_a_sham_arm(tmp_path, fake_scorer):
    from curate.errors import CurateError
    from curate.learning import pool_learning

    folders = [_folder(tmp_path / f"s{s}", s) for s in range(3)]
    res = pool_learning(
        folders, out=tmp_path / "pooled", planted={"flattery": 1.0, "heading": 0.3, "list": 0.3, "length": 0.5}
    )
    rec, t = res.record, res.table.set_index("concept")
    assert rec["arms"] == ["original", "curated", "sham"] and rec["independent_draws"] is True
    assert t.loc["flattery", "observed_sham"] == pytest.approx(0.8, abs=0.03)
    assert t.loc["flattery", "observed_sham_low"] < 0.8 < t.loc["flattery", "observed_sham_high"]
    assert rec["merged_concepts"] == {"heading+list": ["heading", "list"]}
    gen = rec["prediction"]["generation"]
    assert gen["n"] == 4 and rec["prediction"]["merged_names"][1] == "heading+list"  # 5 names, 4 concepts
    assert gen["r"] > 0.9 and gen["planted_r"] > 0.9 and np.isfinite(gen["perm95"])
    assert rec["r"] == gen["r"] and rec["r_low"] == gen["r_low"]  # the flat headline is the pooled one
    assert rec["blocked_concepts"] == ["flattery"]
    for arm, want in (("original", 1.0), ("curated", 0.1), ("sham", 0.8)):
        b = rec["blocked"][arm]
        assert b["shift"] == pytest.approx(want, abs=0.03) and b["low"] <= b["shift"] <= b["high"]
    assert rec["blocked"]["curated"]["high"] < rec["blocked"]["sham"]["low"]
    line = dict(kv.split("=") for kv in summary_line(rec).split())
    assert float(line["blocked_sham"]) == pytest.approx(0.8, abs=0.03) and float(line["r"]) == pytest.approx(
        gen["r"], abs=1e-3
    )
    assert set(rec["shifts"]["sham"]) == {"flattery", "heading+list", "emoji", "length"}
    # seeds that are not marked independent must hold out the same prompts
    dep = [_folder(tmp_path / f"d{s}", s, independent=False) for s in range(2)]
    with pytest.raises(CurateError, match="independent_draws"):
        pool_learning(dep)


def test_pool_folders_without_a_sham_arm(tmp_path, fake_scorer):
    """Folders written before the sham arm pool without it: no sham anywhere, nothing fails."""
    from curate.learning import pool_learning
    from curate.learning.card import card_section

    folders = [_folder(tmp_path / f"s{s}", s, arms=("original", "curated")) for s in range(2)]
    rec = pool_learning(folders, out=tmp_path / "pooled").record
    assert rec["arms"] == ["original", "curated"] and set(rec["blocked"]) == {"original", "curated"}
    assert summary_line(rec).endswith("blocked_sham=nan")
    text = card_section(tmp_path / "pooled")
    assert "sham" not in text and "R²" not in text and f"r {rec['r']:+.2f} [" in text


def test_pooled_ci_grows_with_seed_disagreement(tmp_path, fake_scorer):
    """The same within-seed noise; seeds that disagree by ±0.3 sd give a far wider pooled CI."""
    from curate.learning import pool_learning

    same = pool_learning([_folder(tmp_path / f"a{s}", s) for s in range(3)]).table.set_index("concept")
    apart = pool_learning([_folder(tmp_path / f"b{s}", s, wobble=0.3) for s in range(3)]).table.set_index("concept")
    width = {
        k: t.loc["emoji", "observed_original_high"] - t.loc["emoji", "observed_original_low"]
        for k, t in (("same", same), ("apart", apart))
    }
    assert width["apart"] > 5 * width["same"] and width["apart"] > 0.4


@pytest.mark.parametrize("name", ["curate.learning.stats", "curate.learning.measure", "curate._format"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_card_of_an_old_single_seed_folder_is_signed(tmp_path):
    """A folder whose record has only the squared r (written before signed scores): the card and the CLI compute
    the signed r from its table, so an anti-correlated prediction reads as negative, never as a good R²."""
    from curate.learning.card import card_section, with_signed_scores
    from curate.learning.folder import LearningResult, read_learning, save_learning_folder

    table, rec = read_learning(_folder(tmp_path / "seed", 0, arms=("original", "curated")))
    table["predicted"] = -table["observed_original"]  # exactly anti-correlated
    old = LearningResult(table, {**rec, "r2": 1.0, "n_concepts_supported": 5}, None, {})
    text = card_section(save_learning_folder(old, tmp_path / "old"))
    assert "r -1.00 [" in text and "R²" not in text
    assert with_signed_scores(table, {"r": 0.5})["r"] == 0.5  # a recorded r is kept


def test_pool_reads_the_protocol_counterfactuals_and_ground_truth(tmp_path, fake_scorer):
    """Protocol folders: the reward is scored on the per-pair placebo-adjusted margins (pairs resampled within
    seeds), the neutral insertion is pooled (its CI covers 0), and the planted truth comes from the records."""
    from curate.learning import pool_learning
    from curate.learning.pool import planted_effects

    folders = [_folder(tmp_path / f"s{s}", s, counterfactuals=True) for s in range(3)]
    rec = pool_learning(folders).record
    assert planted_effects(rec | {"planted": {"padding": [0.5, 0.0]}, "named_of": {"padding": "length"}}) == {
        "length": 0.5
    }
    pred = rec["prediction"]
    assert pred["reward_measure"] == "adjusted margin" and pred["reward"]["n"] == 4 and pred["reward"]["r"] > 0.9
    assert pred["reward"]["intercept"] == pytest.approx(-0.01, abs=0.05)  # margins (shift / 2), not shares (0.5 + …)
    # the truth per merged concept: flattery 0.7 − 0.2, heading(+list) 0.3 (a group carries its planted member's
    # effect), emoji 0 (not planted), length 0.5 (the generator's padding)
    names = pred["merged_names"]
    assert names == ["flattery", "heading+list", "emoji", "length"]
    observed = [rec["shifts"]["original"][g][0] for g in names]
    assert pred["generation"]["planted_r"] == pytest.approx(np.corrcoef([0.5, 0.3, 0.0, 0.5], observed)[0, 1])
    for arm in ("original", "curated", "sham"):
        n = rec["neutral_insertion"][arm]
        assert n["low"] <= 0 <= n["high"] and abs(n["adjusted"]) < 0.1
    t = pool_learning(folders).table.set_index("concept")
    assert t.loc["flattery", "reward_adjusted_sham"] == pytest.approx(0.4, abs=0.05)
    assert t.loc["flattery", "reward_adjusted_curated_high"] < t.loc["flattery", "reward_adjusted_sham_low"]
