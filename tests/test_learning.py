"""What a model learns: predict_learning, the learning check's errors, and a CI-sized training run.

The training test builds a tiny randomly initialised Llama with a word-level tokenizer (as test_trl does),
plants flattery as a strong marker of the chosen side, and trains both arms for a few LoRA DPO steps.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from folder_helpers import record_edit

from curate import _columns as C
from curate.errors import CurateError, ModelError, NotFittedError


@pytest.fixture(scope="module")
def planted():
    from curate import make_preference_pairs

    return make_preference_pairs(160, rates={"flattery": (0.9, 0.05), "hedging": (0.3, 0.3)}, label_noise=0.0, seed=0)


@pytest.fixture(scope="module")
def curated_dir(planted, tmp_path_factory):
    from curate.pipeline import run_apply

    out = tmp_path_factory.mktemp("curated")
    run_apply(planted.dataset, block=["flattery"], out=out)
    return out


# -- prediction ------------------------------------------------------------------------------------------


def test_predict_learning_follows_the_planted_preference(annotated, generated):
    from curate import ConceptAudit, predict_learning

    pred = predict_learning(ConceptAudit().fit(annotated)).set_index("concept")
    unequal = [c for c in ("flattery", "agreement", "markdown") if c in pred.index]
    controls = [c for c in ("emoji", "hedging", "sign_off") if c in pred.index]
    assert len(unequal) == 3 and len(controls) == 3
    assert pred.loc[unequal, "predicted"].min() > 3 * pred.loc[controls, "predicted"].abs().max()
    for col in ("pred_delta_std", "pred_win_share", "pred_length_controlled"):
        assert (pred.loc[unequal, col] > 0).all(), col
    assert (pred["predicted"] == pred["pred_delta_std"]).all()
    other = predict_learning(ConceptAudit().fit(annotated), estimator="win_share")
    assert (other["predicted"].to_numpy() == other["pred_win_share"].to_numpy()).all()
    # the audit table carries the default prediction as a column
    table = ConceptAudit(group_features=False).fit(annotated).results_.set_index("concept")
    np.testing.assert_allclose(table.loc[pred.index, "predicted_shift"], pred["pred_delta_std"])


def test_predict_learning_under_curated_weights(annotated):
    from curate import ConceptAudit, predict_learning
    from curate.interventions import apply_recipe
    from curate.recipe import Recipe

    dd, _ = apply_recipe(annotated, Recipe.from_ids(block=["flattery"]), audit=False)
    train = dd[C.TRAIN_SPLIT]
    before = predict_learning(ConceptAudit().fit(annotated)).set_index("concept")
    after = predict_learning(ConceptAudit().fit(train, weights=C.WEIGHT)).set_index("concept")
    assert before.loc["flattery", "predicted"] > 0.3
    assert abs(after.loc["flattery", "predicted"]) < 0.25 * before.loc["flattery", "predicted"]
    reaudit = ConceptAudit().fit(train, weights=C.WEIGHT).results_.set_index("concept")
    assert reaudit.loc["flattery", "predicted_shift"] == pytest.approx(after.loc["flattery", "predicted"])
    # an allowed planted concept keeps most of its predicted push
    assert after.loc["agreement", "predicted"] > 0.5 * before.loc["agreement", "predicted"]


def test_predict_learning_errors(annotated):
    from curate import ConceptAudit, predict_learning

    with pytest.raises(NotFittedError, match="fit"):
        predict_learning(ConceptAudit())
    with pytest.raises(ValueError, match="delta_std"):
        predict_learning(ConceptAudit().fit(annotated), estimator="nope")


# -- errors of the check ---------------------------------------------------------------------------------


def test_too_few_held_out_prompts():
    from curate.learning import split_by_prompt

    prompts = [f"q{i}" for i in range(12)]
    assert len(split_by_prompt(prompts, 5)) == 5
    with pytest.raises(CurateError, match=r"--eval-prompts \(at most 7\)|at most 7"):
        split_by_prompt(prompts, 10)
    with pytest.raises(CurateError, match="--eval-prompts 5"):
        split_by_prompt(prompts, 2)


def test_curated_ids_must_match_the_data(curated_dir):
    from curate import make_preference_pairs
    from curate.learning import learning_check

    other = make_preference_pairs(40, seed=9).dataset  # ids 0..39, the curated folder has ids up to 159
    with pytest.raises(CurateError, match="does not match the data"):
        learning_check(other, curated_dir, model=("unused", None), progress=False, log=lambda m: None)


def test_model_that_cannot_be_loaded(planted, curated_dir, tmp_path):
    from curate.learning import learning_check

    with pytest.raises(ModelError, match="offline default"):
        learning_check(
            planted.dataset,
            curated_dir,
            model=str(tmp_path / "no-such-model"),
            eval_prompts=10,
            samples=0,
            progress=False,
            log=lambda m: None,
        )


def test_cli_learn_reports_mismatch(curated_dir, tmp_path):
    from typer.testing import CliRunner

    from curate import make_preference_pairs
    from curate.cli import cli

    data = tmp_path / "other.jsonl"
    make_preference_pairs(30, seed=4).dataset.to_json(str(data), lines=True)
    res = CliRunner().invoke(cli, ["learn", str(data), "--curated", str(curated_dir), "--out", str(tmp_path / "l")])
    assert res.exit_code == 2
    assert "does not match the data" in res.output


# -- the CI training run ---------------------------------------------------------------------------------


def _tiny_model(datasets_):
    import torch
    from datasets import concatenate_datasets
    from transformers import LlamaForCausalLM

    from tests.test_trl import build_tokenizer, tiny_config

    tok = build_tokenizer(concatenate_datasets([d.select_columns([C.PROMPT, C.CHOSEN, C.REJECTED]) for d in datasets_]))
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config(len(tok))), tok


def test_curated_arm_is_balanced_on_exactly_the_pairs_it_trains_on():
    """The folder's weights balance flattery over all rows, not over a sample; the recipe re-applied to the
    sample balances it there (win-rate 0.5 and, adjusted, markdown's Δ the same where flattery wins and loses)."""
    from curate import annotate, make_preference_pairs
    from curate.interventions import apply_recipe
    from curate.learning.inputs import curate_trained_rows, first_by_rank
    from curate.recipe import Recipe

    data = annotate(make_preference_pairs(600, seed=0).dataset)
    recipe = Recipe.from_ids(block=["flattery"], adjust_for="all")

    def balance(rows):
        t = rows.to_pandas()
        s = np.sign(t["chosen__flattery"] - t["rejected__flattery"]).to_numpy()
        md = (t["chosen__markdown"] - t["rejected__markdown"]).to_numpy(float)
        w = t[C.WEIGHT].to_numpy()
        return (w * (s > 0)).sum() / (w * (s != 0)).sum(), abs(
            (w * (s > 0) * md).sum() / (w * (s > 0)).sum() - (w * (s < 0) * md).sum() / (w * (s < 0)).sum()
        )

    whole, _ = apply_recipe(data, recipe, audit=False)
    folder_sample = first_by_rank(whole[C.TRAIN_SPLIT], 150, 0)
    rows = first_by_rank(data, 150, 0)
    cur, rec = curate_trained_rows(rows, recipe, log=lambda m: None)
    assert sorted(cur[C.ID]) == sorted(rows[C.ID]) and rec["recurated"]
    wr, gap = balance(cur)
    assert wr == pytest.approx(0.5, abs=1e-6) and gap < 1e-6
    wr_f, gap_f = balance(folder_sample)  # what training on the folder's rows would have seen
    assert abs(wr_f - 0.5) > 1e-3 or gap_f > 1e-3
    assert curate_trained_rows(rows, None, log=lambda m: None)[0] is None


def test_learning_check_original_learns_marker_curated_much_less(planted, curated_dir, tmp_path):
    from curate.generate import make_counterfactual_pairs
    from curate.learning import LEARNING_COLUMNS, LearnConfig, learning_check, read_learning

    model = _tiny_model([planted.dataset, make_counterfactual_pairs("flattery", 32, seed=1)])
    res = learning_check(
        planted.dataset,
        curated_dir,
        out=tmp_path / "learn",
        model=model,
        config=LearnConfig(steps=18, batch_size=8, learning_rate=1e-2, lora_r=8, warmup_steps=0),
        eval_prompts=10,
        samples=1,
        max_new_tokens=6,
        counterfactual_pairs=32,
        concepts=["flattery", "exclamation", "length"],
        progress=False,
        log=lambda m: None,
    )
    t = res.table.set_index("concept")
    orig, cur = t.loc["flattery", "reward_original"], t.loc["flattery", "reward_curated"]
    assert t.loc["flattery", "action"] == "block"
    # one epoch of each arm (18 x 8 >= 139 pairs), so the curated weights act as they would in training
    assert t.loc["flattery", "reward_original_low"] > 0.6, orig  # the original policy prefers the marker
    assert cur - 0.5 < 0.5 * (orig - 0.5), (orig, cur)  # the curated one at most half as much
    assert t.loc["flattery", "predicted"] > 2 * abs(t.loc["flattery", "predicted_curated"])
    # both arms trained the same number of steps; the reference log-probs of the curated arm were reused
    assert {a["steps"] for a in res.record["arms"].values()} == {18}
    assert res.record["curation"]["recurated"] and res.record["curation"]["rows"] == res.record["n_used_original"]
    assert res.record["reference_logps"]["reused"] > 0
    # the implicit reward of every measured concept the generator can vary alone: length through padding pairs
    assert t.loc["length", "reward_n"] == 32 and np.isnan(t.loc["exclamation", "reward_n"])
    assert np.isfinite(t.loc["length", "reward_margin_original"])
    assert res.record["n_concepts_reward"] == 2  # too few concepts for an R²: recorded as NaN, not guessed
    assert res.record["r2_reward"] is None or np.isnan(res.record["r2_reward"])
    assert set(res.record["openings"]) == {"reference", "original", "curated"}
    assert 0 < res.record["openings"]["original"]["top_share"] <= 1
    table, record = read_learning(tmp_path / "learn")
    assert list(table.columns) == LEARNING_COLUMNS and len(table) == 3
    assert {"r2", "spearman", "r2_curated", "spearman_curated", "model", "steps", "seconds"} <= set(record)
    assert (tmp_path / "learn" / "learning_scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / ".learn.tmp").exists()
    assert np.isfinite(table["observed_original"]).all()


# -- the card and the Space ------------------------------------------------------------------------------


def _fake_learning(folder):
    from curate.learning.folder import LEARNING_COLUMNS, LearningResult, save_learning_folder

    rows = []
    for i, (c, a) in enumerate((("flattery", "block"), ("agreement", "block"), ("length", ""), ("markdown", ""))):
        rows.append(
            {
                "concept": c,
                "label": c,
                "source": "named",
                "action": a,
                "predicted": 0.5 - 0.1 * i,
                "predicted_curated": 0.0,
                "scale": 1.0,
                "observed_original": 0.4 - 0.1 * i,
                "observed_original_low": 0.3 - 0.1 * i,
                "observed_original_high": 0.5 - 0.1 * i,
                "observed_curated": 0.01,
                "observed_curated_low": -0.05,
                "observed_curated_high": 0.07,
                "reward_original": 0.9,
                "reward_curated": 0.55,
                "n_differ": 10,
                "supported": True,
            }
        )
    table = pd.DataFrame(rows).reindex(columns=LEARNING_COLUMNS)
    record = {
        "model": "tiny",
        "steps": 3,
        "r2": 0.98,
        "spearman": 1.0,
        "r2_curated": 0.1,
        "spearman_curated": 0.2,
        "n_concepts_supported": 4,
        "seconds": 1.0,
        "device": "cpu",
        "eval_prompts": 5,
    }
    return save_learning_folder(LearningResult(table, record), folder)


def test_publish_adds_the_learning_section_and_the_app_shows_it(planted, tmp_path):
    from curate.browse import build_app
    from curate.folders import ANNOTATED
    from curate.pipeline import run_apply, run_audit
    from curate.publish import publish

    planted.dataset.to_json(str(tmp_path / "pairs.jsonl"), lines=True)
    run_audit(str(tmp_path / "pairs.jsonl"), out=tmp_path / "audit", concepts="named")
    curated_dir = tmp_path / "curated"
    run_apply(str(tmp_path / "audit" / ANNOTATED), block=["flattery"], out=curated_dir)

    learn = _fake_learning(tmp_path / "elsewhere" / "check1")
    assert sorted(p.name for p in learn.iterdir()) == [
        "curate.json",
        "learning.json",
        "learning.parquet",
        "learning_before_after.png",
        "learning_scatter.png",
    ]
    assert json.loads((learn / "curate.json").read_text())["kind"] == "learning"
    folder = publish(curated_dir, repo_id="me/x", local_dir=tmp_path / "pub", upload=False, learning_dir=learn)
    card = (folder / "README.md").read_text()
    assert "## What a model learned from it" in card and "`flattery` | block" in card
    # a record holding only the squared r (0.98): the card states the signed r from the table, never an "R²"
    section = card.split("## What a model learned from it")[1]
    assert "R²" not in section and "shuffled-prediction 95th percentile" in section
    assert (folder / "learning" / "learning_scatter.png").exists()
    demo = build_app(folder)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"learned-table", "learned-scatter"} <= ids
    # without a learning folder: no section, no tab
    plain = publish(curated_dir, repo_id="me/x", local_dir=tmp_path / "pub2", upload=False)
    assert "What a model learned" not in (plain / "README.md").read_text()
    assert "learned-table" not in {getattr(b, "elem_id", None) for b in build_app(plain).blocks.values()}


def test_ablate_rule_becomes_a_training_time_hook(tmp_path):
    """An `ablate` rule of the recipe is honoured in the curated arm as a hook on the policy during training
    (and only then): the hidden state at the recipe's layer has no component along the direction."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from curate.directions import Directions
    from curate.learning.inputs import training_intervention
    from curate.recipe import Recipe

    recipe = Recipe.from_ids(block=["flattery"], block_with=["ablate"])
    with pytest.raises(CurateError, match="directions.safetensors"):
        training_intervention(recipe, tmp_path)
    torch.manual_seed(0)
    d = Directions(torch.randn(1, 16), ["flattery"], layer=1)
    d.save(tmp_path / "directions.safetensors")
    ctx, record = training_intervention(recipe, tmp_path)
    assert record["ablate"] == ["flattery"] and record["layer"] == 1
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    ).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        with ctx(model):
            h = model(ids, output_hidden_states=True).hidden_states[1]
        after = model(ids, output_hidden_states=True).hidden_states[1]
    u = d.unit()[0]
    assert float((h @ u).abs().max()) < 1e-4
    assert float((after @ u).abs().max()) > 1e-2  # removed after training
    assert training_intervention(Recipe.from_ids(block=["flattery"]), tmp_path) == (None, None)


def test_reference_log_probs_persist_between_checks(tmp_path):
    """The memo of reference log-probs round-trips through its file, so a second check (another recipe on the
    same rows, a re-run) computes none again; a missing file is an empty memo."""
    import torch

    from curate.learning.train import RefLogpMemo

    memo = RefLogpMemo.load(tmp_path / "memo.npz")
    assert memo.values == {}
    ids, mask = torch.tensor([5, 6, 7, 8, 0]), torch.tensor([0, 0, 1, 1, 0])
    memo.values[memo.key(ids, mask)] = -3.25
    memo.save(tmp_path / "memo.npz")
    again = RefLogpMemo.load(tmp_path / "memo.npz")
    assert again.values == {memo.key(ids, mask): -3.25}
    assert [p.name for p in tmp_path.iterdir()] == ["memo.npz"]  # no temporary file left


def test_warm_up_reference_learns_both_responses_and_is_cached(planted, tmp_path):
    """The SFT stage before DPO raises the likelihood of the chosen *and* the rejected responses (no
    preference), leaves the loaded model untouched, and a second call loads the cached adapter."""
    from curate.learning.measure import sequence_logps
    from curate.learning.train import LearnConfig, train_policy, training_pairs
    from curate.learning.warmup import warm_up_reference, warmup_pairs

    model, tok = _tiny_model([planted.dataset])
    ds = planted.dataset.select(range(32))
    sft = warmup_pairs(ds, tok)
    assert len(sft) == 64 and sft["completion"][0::2] == ds[C.CHOSEN] and sft["completion"][1::2] == ds[C.REJECTED]
    msgs = [[{"role": "user", "content": p}] for p in ds[C.PROMPT]]

    def logps(m):
        return sequence_logps(m, tok, msgs, ds[C.CHOSEN]), sequence_logps(m, tok, msgs, ds[C.REJECTED])

    before = logps(model)
    config = LearnConfig(warmup_steps=8, batch_size=4, learning_rate=1e-2, lora_r=8)
    warm, info = warm_up_reference(model, tok, sft, config, cache_dir=tmp_path, fp="w", progress=False)
    after = logps(warm)
    assert not info["cached"] and info["steps"] == 8
    assert after[0].mean() > before[0].mean() + 1 and after[1].mean() > before[1].mean() + 1
    np.testing.assert_allclose(logps(model)[0], before[0])  # the loaded model is untouched
    again, info = warm_up_reference(model, tok, sft, config, cache_dir=tmp_path, fp="w", progress=False)
    assert info["cached"]
    np.testing.assert_allclose(logps(again)[0], after[0], rtol=1e-4)
    # a DPO policy trained from the warm model moves away from it (the trainer's state on the model it trained
    # once made every later policy compute the warm model's outputs unchanged)
    policy, _ = train_policy(warm, tok, training_pairs(ds, tok, weights=True), config, progress=False)
    assert np.abs(logps(policy)[0] - after[0]).max() > 0.1


def test_learning_check_with_warm_up_records_it(planted, curated_dir):
    from curate.learning import LearnConfig, learning_check

    model = _tiny_model([planted.dataset])
    res = learning_check(
        planted.dataset,
        curated_dir,
        model=model,
        config=LearnConfig(steps=2, batch_size=4, lora_r=8, warmup_steps=2),
        eval_prompts=10,
        samples=0,
        counterfactual_pairs=0,
        concepts=["flattery", "length"],
        progress=False,
        log=lambda m: None,
    )
    assert res.record["warmup"]["steps"] == 2 and res.record["warmup"]["fingerprint"].startswith("warmup-")
    assert "+warmup-" in res.record["model"] and "SFT warm-up of 2 steps" in res.record["loss"]


def test_generations_are_cached_by_model_identity_and_decoding(planted, tmp_path, monkeypatch):
    """Seeded generations are saved by model identity, prompts and decoding settings: the same call reads
    them back, another identity or setting samples again, and no cache directory means no file."""
    from curate.learning import measure

    model, tok = _tiny_model([planted.dataset])
    messages = [[{"role": "user", "content": p}] for p in planted.dataset["prompt"][:3]]
    calls = []
    real = measure.generate
    monkeypatch.setattr(measure, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    kw = dict(samples=2, max_new_tokens=4, temperature=1.0, seed=0)
    first, cached = measure.generate_cached(model, tok, messages, identity="ref", cache_dir=tmp_path, **kw)
    assert not cached and len(first) == 3 and all(len(t) == 2 for t in first)
    again, cached = measure.generate_cached(model, tok, messages, identity="ref", cache_dir=tmp_path, **kw)
    assert cached and again == first and len(calls) == 1
    _, cached = measure.generate_cached(model, tok, messages, identity="policy", cache_dir=tmp_path, **kw)
    assert not cached
    _, cached = measure.generate_cached(model, tok, messages, identity="ref", cache_dir=tmp_path, **{**kw, "seed": 1})
    assert not cached and len(calls) == 3
    assert len(list((tmp_path / "generations").glob("*.json"))) == 3
    _, cached = measure.generate_cached(model, tok, messages, identity="ref", cache_dir=None, **kw)
    assert not cached and len(calls) == 4


def test_prediction_reads_the_training_window(planted):
    """A concept written after the ``max_length`` window is invisible to DPO: the learning check's prediction
    reads each response cut the way TRL cuts it (keep_start)."""
    from curate.learning.measure import encode, trained_window

    rows = planted.dataset.select(range(40))
    _, tok = _tiny_model([rows])
    same, cut = trained_window(rows, tok, None)
    assert same is rows and cut == 0.0
    p, _ = encode(tok, [{"role": "user", "content": rows[0][C.PROMPT]}], rows[0][C.CHOSEN])
    win, cut = trained_window(rows, tok, len(p) + 3)
    assert len(win) == len(rows) and win[C.ID] == rows[C.ID] and 0 < cut <= 1
    for full, short in zip(rows[C.CHOSEN], win[C.CHOSEN]):
        assert len(short) <= len(full)
    kept = encode(tok, [{"role": "user", "content": rows[0][C.PROMPT]}], win[0][C.CHOSEN])[1]
    assert len([t for t in kept if t not in tok.all_special_ids]) <= 3


def _seed_folder(folder, seed, *, flattery_share, prompts=("p0", "p1", "p2", "p3"), gens=True, record=None):
    """A learning folder as learning_check writes it for one seed, with generations whose flattery rate is known."""
    from curate.learning.folder import LEARNING_COLUMNS, LearningResult, save_learning_folder

    n = 4  # samples per prompt
    texts = {
        "reference": ["The answer is four."] * n,
        "original": ["What a great question! The answer is four."] * round(flattery_share * n)
        + ["The answer is four."] * (n - round(flattery_share * n)),
        "curated": ["The answer is four."] * n,
    }
    generations = {
        k: pd.DataFrame({"prompt": np.repeat(prompts, n), "text": v * len(prompts)}) for k, v in texts.items()
    }
    rows = [
        {"concept": c, "label": c, "source": "named", "action": a, "predicted": p, "predicted_curated": 0.0}
        for c, a, p in (("flattery", "block", 0.6 + seed / 10), ("length", "", 0.4))
    ]
    table = pd.DataFrame(rows).assign(
        scale=1.0, observed_original=flattery_share, observed_curated=0.0, reward_original=0.9, reward_curated=0.5
    )
    table = table.assign(reward_n=32, n_differ=10, supported=True, pred_delta_std=table["predicted"])
    table = table.assign(reward_margin_original=0.2 + seed / 10, reward_margin_curated=0.0)
    table = table.assign(pred_win_share=0.1, pred_length_controlled=0.2).reindex(columns=LEARNING_COLUMNS)
    record = {
        "model": f"tiny+warmup-{seed}",
        "config": {"seed": seed, "steps": 3},
        "r2": 0.5,
        "seconds": 2.0,
        **(record or {}),
    }
    return save_learning_folder(LearningResult(table, record, None, generations if gens else {}), folder)


def test_pool_learning_averages_seeds_over_the_same_prompts(tmp_path):
    from curate.learning import LEARNING_COLUMNS, pool_learning, read_learning

    a = _seed_folder(tmp_path / "s0", 0, flattery_share=0.25)
    b = _seed_folder(tmp_path / "s1", 1, flattery_share=0.75)
    res = pool_learning([a, b], out=tmp_path / "pooled")
    t = res.table.set_index("concept")
    # every prompt: 1 of 4 and 3 of 4 flattering samples -> a shift of 0.5 on average, no spread over prompts;
    # but the two seeds disagree (0.25 vs 0.75), so the pooled CI spans them (seeds resampled, then prompts)
    assert t.loc["flattery", "observed_original"] == pytest.approx(0.5)
    assert t.loc["flattery", "observed_original_low"] < 0.25 and t.loc["flattery", "observed_original_high"] > 0.75
    assert t.loc["flattery", "observed_curated"] == pytest.approx(0.0)
    assert t.loc["flattery", "predicted"] == pytest.approx(0.65)
    assert t.loc["flattery", "reward_original"] == pytest.approx(0.9) and t.loc["flattery", "reward_n"] == 64
    assert t.loc["flattery", "reward_margin_original"] == pytest.approx(0.25)  # the mean over all 64 pairs
    assert res.record["noise_ceiling_reward"]["original"]["seeds"] == 2 and "r2_reward" in res.record
    old = _seed_folder(tmp_path / "old", 2, flattery_share=0.5)  # written before reward margins existed
    table = pd.read_parquet(old / "learning.parquet").drop(columns=["reward_margin_original", "reward_margin_curated"])
    table.to_parquet(old / "learning.parquet", index=False)
    record_edit(old)
    assert np.isnan(pool_learning([a, old]).table.set_index("concept").loc["flattery", "reward_margin_original"])
    assert res.record["seeds"] == [0, 1] and res.record["model"] == "tiny"
    assert res.record["observed_by_seed"]["flattery"]["original"] == [0.25, 0.75]
    assert res.record["noise_ceiling"]["original"]["n"] == 2  # two concepts: too few for a seed-to-seed r
    # half of the 32 original-arm generations open "what a great" (3 of 4 in one seed, 1 of 4 in the other); each
    # seed has 2 distinct openings in 16 generations
    assert res.record["openings"]["original"] == {"top": "what a great", "top_share": 0.5, "distinct_share": 0.125}
    table, record = read_learning(tmp_path / "pooled")
    assert list(table.columns) == LEARNING_COLUMNS and record["pooled_from"] == [str(a), str(b)]
    # the card section and the Space say it is pooled, and over which seeds
    from curate.learning.card import app_view, card_section

    assert "2 seeds: [0, 1]" in card_section(tmp_path / "pooled") and "r of each seed alone" in card_section(
        a.parent / "pooled"
    )
    assert "pooled over seeds [0, 1]" in app_view(tmp_path / "pooled")[0]
    assert "seeds" not in card_section(a)
    assert "implicit reward over" not in card_section(a)  # two concepts: no r to state
    signed = {"r_reward": -0.42, "r_low_reward": -0.7, "r_high_reward": -0.1, "perm95_reward": 0.3}
    c = _seed_folder(tmp_path / "s8", 8, flattery_share=0.5, record={"n_concepts_reward": 8, **signed})
    want = "r -0.42 [-0.70, -0.10] (shuffled-prediction 95th percentile +0.30)"
    assert f"Against the implicit reward over the 8 concepts with counterfactual pairs: {want}" in card_section(c)
    assert f"Against the implicit reward (8 concepts): {want}" in app_view(c)[0] and "R²" not in card_section(c)


def test_pool_learning_errors(tmp_path):
    from curate.learning import pool_learning

    a = _seed_folder(tmp_path / "s0", 0, flattery_share=0.25)
    with pytest.raises(CurateError, match="two or more"):
        pool_learning([a])
    with pytest.raises(CurateError, match="repeat a seed"):
        pool_learning([a, _seed_folder(tmp_path / "again", 0, flattery_share=0.5)])
    with pytest.raises(CurateError, match="held out different prompts"):
        pool_learning([a, _seed_folder(tmp_path / "other", 1, flattery_share=0.5, prompts=("q0", "q1", "q2", "q3"))])
    with pytest.raises(CurateError, match="samples > 0"):
        pool_learning([a, _seed_folder(tmp_path / "nogen", 2, flattery_share=0.5, gens=False)])


def test_cli_learn_pool(tmp_path):
    from typer.testing import CliRunner

    from curate.cli import cli, main

    a = _seed_folder(tmp_path / "s0", 0, flattery_share=0.25)
    b = _seed_folder(tmp_path / "s1", 1, flattery_share=0.75)
    res = CliRunner().invoke(cli, ["learn-pool", str(a), str(b), "--out", str(tmp_path / "pooled")])
    assert res.exit_code == 0, res.output
    assert "pooled over seeds [0, 1]" in res.output and (tmp_path / "pooled" / "learning.parquet").exists()
    with pytest.raises(SystemExit) as e:
        main(["learn-pool", str(a), "--out", str(tmp_path / "p2")])
    assert e.value.code == 2 and not (tmp_path / "p2").exists()


def test_noise_ceiling_is_the_r2_an_exact_prediction_reaches():
    """Seeds that observe ``μ + noise``: the seed-to-seed r estimates the R² that the exact ``μ`` reaches
    against one seed, and Spearman–Brown the R² against their mean (checked against that R² directly)."""
    from curate.learning.measure import noise_ceiling, prediction_quality

    rng = np.random.default_rng(0)
    mu = rng.normal(size=4000)
    seeds = mu + rng.normal(size=(3, 4000))  # var(μ) = var(noise): ρ = 0.5
    out = noise_ceiling(seeds)
    assert out["seeds"] == 3 and out["n"] == 4000 and len(out["pairwise_r"]) == 3
    assert out["r2_one_seed"] == pytest.approx(0.5, abs=0.03)
    assert out["r2_one_seed"] == pytest.approx(prediction_quality(mu, seeds[0])["r2"], abs=0.03)
    assert out["r2_pooled"] == pytest.approx(0.75, abs=0.03)
    assert out["r2_pooled"] == pytest.approx(prediction_quality(mu, seeds.mean(0))["r2"], abs=0.03)
    # identical runs leave everything to the prediction; unrelated runs leave nothing; too few concepts: unknown
    assert noise_ceiling(np.vstack([mu[:10], mu[:10]]))["r2_pooled"] == pytest.approx(1.0)
    assert noise_ceiling(rng.normal(size=(3, 4000)))["r2_one_seed"] == pytest.approx(0.0, abs=0.03)
    assert np.isnan(noise_ceiling(seeds[:, :2])["r2_pooled"])


def test_cli_learn_seeds_runs_one_check_per_seed_and_pools(tmp_path, monkeypatch):
    """``curate learn --seeds 0,1`` runs the check once per seed (``OUT_seed<N>``, the same settings but the
    seed) and pools them into OUT; a malformed or single ``--seeds`` is refused before any training."""
    import curate
    from curate.cli import main
    from curate.learning import read_learning

    calls = []

    def fake_check(data, curated, *, out, config, **kw):
        config = config if isinstance(config, dict) else config.to_dict()
        calls.append((Path(out).name, config))
        fields = {"n_concepts_supported": 2, "spearman": 0.4, "r2_curated": 0.1, "spearman_curated": 0.2}
        folder = _seed_folder(Path(out), config["seed"], flattery_share=0.25 + config["seed"] / 2, record=fields)
        return curate.learning.LearningResult(*read_learning(folder), folder, {})

    monkeypatch.setattr(curate, "learning_check", fake_check)
    monkeypatch.setattr(curate.learning.check, "learning_check", fake_check)  # what learning_check_seeds calls
    monkeypatch.setattr(
        curate.learning, "learning_check", fake_check
    )  # what one seed calls (curate.pipeline.run_learn)
    out = tmp_path / "learn"
    with pytest.raises(SystemExit) as e:
        main(["learn", "d.jsonl", "--curated", "c", "--out", str(out), "--seeds", "0,1", "--steps", "3"])
    assert e.value.code == 0
    assert [c[0] for c in calls] == ["learn_seed0", "learn_seed1"] and [c[1]["seed"] for c in calls] == [0, 1]
    assert calls[0][1] == {**calls[1][1], "seed": 0} and calls[0][1]["steps"] == 3
    table, record = read_learning(out)
    assert record["seeds"] == [0, 1] and table.set_index("concept").loc["flattery", "observed_original"] == 0.5
    for bad in ("0", "0,x", "1,1"):
        calls.clear()
        with pytest.raises(SystemExit) as e:
            main(["learn", "d.jsonl", "--curated", "c", "--out", str(tmp_path / "bad"), "--seeds", bad])
        assert e.value.code == 2 and not calls and not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as e:  # one seed: one folder, OUT itself
        main(["learn", "d.jsonl", "--curated", "c", "--out", str(tmp_path / "one"), "--seed", "1"])
    assert e.value.code == 0 and calls == [("one", {**calls[0][1], "seed": 1})]
    calls.clear()
    from curate.learning import learning_check_seeds

    for bad in ([0], [1, 1]):
        with pytest.raises(CurateError, match="two or more distinct seeds"):
            learning_check_seeds("d.jsonl", "c", bad, out=tmp_path / "bad")
    assert not calls
    seen = []
    res = learning_check_seeds("d.jsonl", "c", [1, 0], out=tmp_path / "api", on_seed=lambda s, r: seen.append(s))
    assert seen == [1, 0] and res.record["seeds"] == [1, 0] and (tmp_path / "api_seed1" / "learning.json").exists()


def test_score_predictions_against_the_implicit_reward():
    """Against the reward, the prediction is scored over the concepts with counterfactual pairs that differ in
    the data (no generation needed); a concept without pairs or without support is left out."""
    from curate.learning.folder import LEARNING_COLUMNS
    from curate.learning.measure import prediction_quality, score_predictions

    pred = [0.6, 0.5, -0.3, 0.1, 0.0, 0.4]
    table = pd.DataFrame(
        {
            "concept": list("abcdef"),
            "predicted": pred,
            "predicted_curated": [0.0, 0.5, -0.3, 0.1, 0.0, 0.4],
            "pred_delta_std": pred,
            "pred_win_share": [0.3, 0.2, -0.1, 0.0, 0.0, 0.2],
            "pred_length_controlled": pred,
            "scale": [1.0, 1.0, 1.0, 1.0, np.nan, 1.0],
            "n_differ": [10, 10, 10, 10, 0, 10],
            "reward_n": [32, 32, 32, 32, 32, np.nan],  # f has no counterfactual pairs, e no support
            "reward_original": [0.9, 0.8, 0.2, 0.6, 0.5, np.nan],
            "reward_curated": [0.5, 0.8, 0.3, 0.5, 0.5, np.nan],
            "observed_original": np.nan,  # samples=0: no generation
            "supported": False,
        }
    ).reindex(columns=LEARNING_COLUMNS)
    quality, estimators = score_predictions(table, against="reward")
    want = prediction_quality(pred[:4], [0.9, 0.8, 0.2, 0.6])
    assert quality["original"] == pytest.approx(want) and quality["original"]["n"] == 4
    assert quality["curated"]["n"] == 4 and set(estimators) == {"delta_std", "win_share", "length_controlled"}
    assert np.isnan(score_predictions(table)[0]["original"]["r2"])  # nothing generated, nothing to score there
    with pytest.raises(ValueError, match="'generation' or 'reward'"):
        score_predictions(table, against="rewards")
