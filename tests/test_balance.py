"""Blocking a magnitude (issue 31): `balance` zeroes a blocked concept's weighted mean Δ, not only its
win-rate; `match` keeps a symmetric Δ; blocking works within subsets; `length_penalty` is R-DPO."""

import numpy as np
import pytest

from curate import _columns as C
from curate.errors import CurateError
from curate.interventions import Balance, Match, PairState, Rebalance, apply_recipe, plan, weighted_mean_delta
from curate.interventions.balance import concept_scale
from curate.recipe import Recipe


def _state(chosen, rejected, concepts=("length",), subsets=None) -> PairState:
    chosen = np.asarray(chosen, float).reshape(len(chosen), -1)
    rejected = np.asarray(rejected, float).reshape(len(rejected), -1)
    n = len(chosen)
    return PairState(
        list(concepts),
        chosen,
        rejected,
        np.ones(n, bool),
        np.ones(n, bool),
        np.array([""] * n, object),
        np.ones(n),
        np.zeros(n),
        np.zeros(n, bool),
        np.ones(n, np.int64),
        subsets=None if subsets is None else np.asarray(subsets, object),
    )


def _rare_big_wins(n=3000, seed=0, sign=1.0):
    """Word counts where the longer answer wins 25% of the time, by ~250 words; it loses by ~40 (``sign=-1``:
    the shorter answer wins rarely but by a lot)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(200, 40, n).clip(20)
    big = rng.random(n) < 0.25
    gap = np.where(big, rng.gamma(4, 60, n), -rng.gamma(3, 14, n)) * sign
    return base + gap.clip(0), base + (-gap).clip(0)


def _mean_sd(state, concept="length", prior=None):
    prior = np.ones(state.n) if prior is None else prior
    w = state.weight * state.keep
    return weighted_mean_delta(state.delta(concept), w)[0] / concept_scale(state, concept, prior)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rebalance_leaves_mean_delta_balance_zeroes_it(sign):
    chosen, rejected = _rare_big_wins(sign=sign)
    reb = _state(chosen, rejected)
    Rebalance(["length"]).apply(reb)
    assert reb.win_rates()["length"] == pytest.approx(0.5, abs=1e-6)
    assert sign * _mean_sd(reb) > 0.3  # the sign is balanced, the magnitude is not
    bal = _state(chosen, rejected)
    step = Balance(["length"]).apply(bal)
    assert abs(_mean_sd(bal)) < 0.02
    assert abs(step.stats_["mean_delta_after"]["length"]) < 0.02
    assert sign * step.stats_["mean_delta_before"]["length"] > 0.3
    assert 0 < step.stats_["ess_after"] <= bal.n  # ESS reported
    if "win_rate_not_balanced" not in step.stats_:
        assert bal.win_rates()["length"] == pytest.approx(0.5, abs=1e-6)


def test_balance_keeps_the_win_rate_where_both_can_hold():
    rng = np.random.default_rng(1)
    gap = rng.normal(8, 40, 2000)  # wins 58%, mean +8 words: both constraints feasible together
    chosen, rejected = 200 + gap.clip(0), 200 + (-gap).clip(0)
    st = _state(chosen, rejected)
    step = Balance(["length"]).apply(st)
    assert "win_rate_not_balanced" not in step.stats_
    assert st.win_rates()["length"] == pytest.approx(0.5, abs=1e-6)
    assert abs(_mean_sd(st)) < 1e-6


def test_joint_balance_of_two_correlated_concepts():
    rng = np.random.default_rng(2)
    n = 2500
    z = rng.normal(0.3, 1.0, n)
    a = 30 * z + rng.normal(0, 10, n)  # length
    b = 2.0 * z + rng.normal(0.4, 1.0, n)  # an SAE feature that moves with length, plus its own push
    st = _state(
        np.column_stack([a.clip(0), b.clip(0)]),
        np.column_stack([(-a).clip(0), (-b).clip(0)]),
        concepts=("length", "sae:s:1"),
    )
    one = st.copy()
    Balance(["length"]).apply(one)
    assert abs(_mean_sd(one, "sae:s:1")) > 0.1  # balancing length alone leaves the feature's mean Δ
    step = Balance(["length", "sae:s:1"]).apply(st)
    assert abs(_mean_sd(st, "length")) < 0.02 and abs(_mean_sd(st, "sae:s:1")) < 0.02
    assert set(step.stats_["mean_delta_after"]) == {"length", "sae:s:1"}


def test_infeasible_target_names_the_concept_and_the_closest_value():
    rng = np.random.default_rng(3)
    gap = rng.normal(0, 30, 500)
    st = _state(200 + gap.clip(0), 200 + (-gap).clip(0))
    top = float((st.delta("length") / concept_scale(st, "length", np.ones(st.n))).max())
    with pytest.raises(
        CurateError, match=r"'length'.*closest achievable value is \+" + f"{top:.3f}".replace(".", r"\.")
    ):
        Balance(["length"], targets={"length": top + 1.0}).apply(st)
    one_sided = _state(200 + np.abs(gap) + 1, np.full(500, 200.0))
    with pytest.raises(CurateError, match="'length'.*closest achievable"):
        Balance(["length"]).apply(one_sided)
    mixed = np.where(np.arange(500) < 250, gap, np.abs(gap) + 1)  # subset "b": the chosen is always longer
    in_subsets = _state(200 + mixed.clip(0), 200 + (-mixed).clip(0), subsets=np.repeat(["a", "b"], 250))
    with pytest.raises(CurateError, match="'length' within subset 'b'.*block_within: pooled"):
        Balance(["length"]).apply(in_subsets)


def test_amplify_target_reaches_the_wanted_mean():
    rng = np.random.default_rng(4)
    gap = rng.normal(0, 30, 1500)
    st = _state(200 + gap.clip(0), 200 + (-gap).clip(0))
    Balance(["length"], targets={"length": 0.25}).apply(st)
    assert _mean_sd(st) == pytest.approx(0.25, abs=1e-4)


def test_entropy_method_balances_the_mean_with_no_zero_weights():
    chosen, rejected = _rare_big_wins(n=1500, seed=5)
    st = _state(chosen, rejected)
    Balance(["length"], method="entropy").apply(st)
    assert abs(_mean_sd(st)) < 0.02 and (st.weight > 0).all()


def test_two_subset_flip_default_block_balances_each_subset():
    from curate import annotate, make_preference_pairs

    gen = make_preference_pairs(
        800, seed=5, subset_rates={"helpful": {"padding": (0.7, 0.1)}, "harmless": {"padding": (0.1, 0.7)}}
    )
    ds = annotate(gen.dataset, ["length"])

    def per_subset(recipe):
        dd, report = apply_recipe(ds, recipe, audit=False)
        tr = dd[C.TRAIN_SPLIT]
        w = np.asarray(tr[C.WEIGHT], float)
        d = np.asarray(tr["chosen__length"], float) - np.asarray(tr["rejected__length"], float)
        sub = np.asarray(tr[C.SUBSET])
        out = {}
        for s in ("helpful", "harmless"):
            m = sub == s
            out[s] = ((w[m] * (d[m] > 0)).sum() / (w[m] * (d[m] != 0)).sum(), weighted_mean_delta(d[m], w[m])[0])
        return out, report

    default, report = per_subset(Recipe.from_ids(block=["length"]))
    assert report.steps[0]["intervention"] == "balance"
    assert report.steps[0]["within_subsets"] == ["harmless", "helpful"]
    for wr, md in default.values():
        assert wr == pytest.approx(0.5, abs=1e-4) and abs(md) < 0.05  # words
    by = {r["subset"]: r for r in report.extra["by_subset"]}  # what apply.json and the CLI report
    assert by["helpful"]["win_rate_before"] > 0.6 and by["harmless"]["win_rate_before"] < 0.45
    for r in by.values():
        assert r["win_rate_after"] == pytest.approx(0.5, abs=1e-4) and abs(r["mean_delta_after"]) < 0.01
    pooled, _ = per_subset(
        Recipe.from_dict({"rules": [{"concepts": ["length"], "action": "block"}], "block_within": "pooled"})
    )
    assert pooled["helpful"][0] > 0.6 and pooled["harmless"][0] < 0.4  # pooled leaves both preferences


def test_default_intervention_is_balance_for_magnitudes_only():
    assert Recipe.from_ids(block=["length"]).rules[0].interventions == ["balance"]
    assert Recipe.from_ids(block=["flattery"]).rules[0].interventions == ["rebalance"]
    mixed = Recipe.from_dict(
        {"rules": [{"concepts": ["flattery"], "action": "block"}, {"concepts": ["length"], "action": "block"}]}
    )
    steps = plan(mixed)
    assert len(steps) == 1 and isinstance(steps[0], Balance)  # one joint weighting, not two that undo each other
    assert steps[0].concepts == ["flattery", "length"] and steps[0].magnitudes == ["length"]
    assert type(plan(Recipe.from_ids(block=["flattery"]))[0]) is Rebalance


def _length_pairs(chosen, rejected, **extra):
    """Pairs whose only scored concept is ``length`` (rounded word counts), plus ``extra`` score columns."""
    from datasets import Dataset

    n = len(chosen)
    cols = {C.PROMPT: ["p"] * n, C.CHOSEN: ["c"] * n, C.REJECTED: ["r"] * n}
    return Dataset.from_dict({**cols, "chosen__length": chosen.round(), "rejected__length": rejected.round(), **extra})


def test_before_after_reports_mean_delta_in_sd_and_words():
    ds = _length_pairs(*_rare_big_wins(n=600, seed=6))
    _, report = apply_recipe(ds, Recipe.from_ids(block=["length"]), audit=False, annotate_missing=False)
    row = report.before_after.iloc[0]
    assert row["unit"] == "words" and row["scale"] > 0
    assert row["mean_delta_before"] > 0.1 and row["mean_delta_low_before"] > 0
    assert abs(row["mean_delta_after"]) < 0.02
    assert row["mean_delta_low_after"] < row["mean_delta_after"] < row["mean_delta_high_after"]
    assert "mean Δ" in report.table() and "words" in report.table()
    _, reb = apply_recipe(
        ds, Recipe.from_ids(block=["length"], block_with=["rebalance"]), audit=False, annotate_missing=False
    )
    assert reb.before_after.iloc[0]["mean_delta_low_after"] > 0  # rebalance: the CI says the block is not done


def test_match_keeps_a_symmetric_delta_and_drops_the_rest_with_a_reason():
    rng = np.random.default_rng(7)
    gap = rng.normal(15, 40, 1200)  # the longer answer wins 65%, by more than it loses by
    st = _state(200 + gap.clip(0), 200 + (-gap).clip(0))
    assert weighted_mean_delta(st.delta("length"), np.ones(st.n))[1] > 0
    step = Match(["length"], tolerance=0.05).apply(st)
    z = st.delta("length") / concept_scale(st, "length", np.ones(st.n))
    pos = np.sort(z[st.keep & (z > 0)])
    neg = np.sort(-z[st.keep & (z < 0)])
    assert len(pos) == len(neg) > 100
    assert np.abs(pos - neg).max() <= 0.05 + 1e-9  # mirror images within the tolerance
    assert abs(z[st.keep].mean()) <= 0.05
    assert set(st.reason[~st.keep]) == {"match:length"}
    assert step.stats_["dropped"]["length"] == int((~st.keep).sum())
    assert st.win_rates()["length"] == pytest.approx(0.5)


def test_match_in_a_recipe_accounts_for_every_row():
    from curate import annotate, make_preference_pairs

    ds = annotate(make_preference_pairs(400, seed=8).dataset, ["length"])
    recipe = Recipe.from_dict(
        {"rules": [{"concepts": ["length"], "action": "block", "interventions": ["match"], "tolerance": 0.1}]}
    )
    dd, report = apply_recipe(ds, recipe, audit=False)
    rows = sorted(list(dd[C.TRAIN_SPLIT][C.ROW]) + list(dd[C.DROPPED_SPLIT][C.ROW]))
    assert rows == list(range(400))  # rows in = train + dropped, every row once
    assert set(dd[C.DROPPED_SPLIT][C.REASON]) == {"match:length"}
    assert report.retention["dropped_by_reason"] == {"match:length": len(dd[C.DROPPED_SPLIT])}


def test_registry_builds_every_intervention_a_recipe_allows():
    from curate.interventions.apply import BUILDERS, ORDER
    from curate.recipe import ALLOWED_INTERVENTIONS, INTERVENTIONS

    assert ORDER == tuple(BUILDERS)
    assert set(INTERVENTIONS) - {"balance"} == set(BUILDERS)  # balance is built with rebalance (one step)
    assert set(ALLOWED_INTERVENTIONS["block"]) | set(ALLOWED_INTERVENTIONS["amplify"]) == set(INTERVENTIONS)
    rec = Recipe.from_dict(
        {
            "rules": [
                {"concepts": ["length"], "action": "block", "interventions": ["length_penalty"], "length_alpha": 0.02}
            ]
        }
    )
    (step,) = plan(rec)
    assert step.name == "length_penalty" and step.alpha == 0.02
    with pytest.raises(CurateError, match=r"rules\[0\]\.length_alpha: only used by the 'length_penalty'"):
        Recipe.from_dict({"rules": [{"concepts": ["length"], "action": "block", "length_alpha": 0.02}]})
    with pytest.raises(CurateError, match=r"rules\[0\]\.tolerance: only used by the 'match'"):
        Recipe.from_dict({"rules": [{"concepts": ["length"], "action": "block", "tolerance": 0.1}]})


def test_length_penalty_changes_the_loss_exactly_as_written(tmp_path):
    """At step 0 the policy is the reference, so β·Δ = 0 for every pair and each pair's loss is
    −log σ(0 − α(|y⁺| − |y⁻|)) · w — computed here by hand from the completion lengths."""
    import torch
    from _tiny_lm import build_tokenizer, tiny_config
    from transformers import LlamaForCausalLM
    from trl import DPOConfig

    from curate import make_preference_pairs
    from curate.interventions import WeightedDPOTrainer

    dd, _ = apply_recipe(make_preference_pairs(24, seed=3).dataset, Recipe.from_ids(block=["flattery"]), audit=False)
    train = dd[C.TRAIN_SPLIT]
    tok = build_tokenizer(train)
    args = DPOConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, bf16=False, use_cpu=True,
        report_to="none", save_strategy="no", precompute_ref_log_probs=True, gradient_checkpointing=False,
        max_length=128, dataloader_num_workers=0, seed=0, beta=0.1,
    )  # fmt: skip

    def trainer(alpha):
        torch.manual_seed(0)
        model = LlamaForCausalLM(tiny_config(len(tok)))
        return WeightedDPOTrainer(
            model=model, args=args, train_dataset=train, processing_class=tok, length_penalty=alpha
        )

    t = trainer(0.05)
    batch = next(iter(t.get_train_dataloader()))
    b = len(batch[C.WEIGHT])
    lengths = batch["completion_mask"].sum(1).double()
    dlen = (lengths[:b] - lengths[b:]).numpy()
    w = batch[C.WEIGHT].double().numpy()
    assert np.abs(dlen).max() > 0  # the hand case must have unequal lengths
    with torch.no_grad():
        loss = float(t.compute_loss(t.model, {k: (v.clone() if hasattr(v, "clone") else v) for k, v in batch.items()}))
    by_hand = np.mean(w * np.log1p(np.exp(0.05 * dlen)))  # −log σ(−x) = log(1 + eˣ)
    assert loss == pytest.approx(by_hand, rel=1e-5)
    plain = trainer(0.0)
    with torch.no_grad():
        base = float(
            plain.compute_loss(plain.model, {k: (v.clone() if hasattr(v, "clone") else v) for k, v in batch.items()})
        )
    assert base == pytest.approx(np.mean(w) * np.log(2), rel=1e-5)
    args.loss_type = ["robust"]
    with pytest.raises(ValueError, match="sigmoid"):
        trainer(0.1)


def test_cli_card_and_app_show_mean_delta_beside_the_win_rate():
    import io

    from rich.console import Console

    from curate.browse.render_recipe import _wr
    from curate.cli._tables import print_before_after
    from curate.publish.sections import _before_after_rows

    chosen, rejected = _rare_big_wins(n=400, seed=9)
    n = len(chosen)
    ds = _length_pairs(
        chosen, rejected, chosen__flattery=np.zeros(n), rejected__flattery=(np.arange(n) % 3 == 0).astype(float)
    )
    _, report = apply_recipe(ds, Recipe.from_ids(block=["length", "flattery"]), audit=False, annotate_missing=False)
    buf = io.StringIO()
    print_before_after(report, Console(file=buf, width=250, color_system=None))
    text = buf.getvalue()
    assert "mean Δ after [95% CI]" in text and "words)" in text
    rows = {r["concept"]: r for r in _before_after_rows(report.before_after, {"length": "block"})}
    length_row = next(r for c, r in rows.items() if "length" in c)
    assert "mean Δ" in length_row["after"] and "words" in length_row["after"]
    assert all("mean Δ" not in r["after"] for c, r in rows.items() if "flattery" in c)  # a count: win-rate only
    recs = report.before_after.to_dict("records")
    assert "mean Δ" in _wr(recs[0], "after") and "mean Δ" not in _wr(recs[1], "after")


def test_amplify_rule_with_a_target_mean():
    from curate import annotate, make_preference_pairs

    ds = annotate(make_preference_pairs(600, seed=10).dataset, ["flattery", "length"])
    recipe = Recipe.from_dict(
        {
            "rules": [
                {"concepts": ["flattery"], "action": "block"},
                {
                    "concepts": ["length"],
                    "action": "amplify",
                    "strength": 2.0,
                    "interventions": ["balance"],
                    "target": 0.3,
                },
            ]
        }
    )
    (step,) = plan(recipe)
    assert step.targets == {"length": 0.3} and step.magnitudes == ["length"]
    _, report = apply_recipe(ds, recipe, audit=False)
    row = report.before_after.set_index("concept").loc["length"]
    assert row["mean_delta_after"] == pytest.approx(0.3, abs=1e-3)
    assert report.before_after.set_index("concept").loc["flattery", "win_rate_after"] == pytest.approx(0.5, abs=1e-6)


def test_a_presence_that_differs_one_way_is_still_balanced():
    """Blocking flattery where the chosen response alone carries it (never the rejected one): the presence
    constraint is met by moving weight onto the pairs where presence does not differ — as before issue 31; a
    balance step that skipped it as 'one way only' left a policy trained on the weights learning flattery (the
    learning check's curated arm preferred it in 0.94 of counterfactual pairs, the original arm in 0.97)."""
    from curate import annotate, apply_recipe, make_preference_pairs
    from curate.recipe import Recipe

    gen = make_preference_pairs(160, rates={"flattery": (0.9, 0.05)}, label_noise=0.0, seed=0)
    ds = annotate(gen.dataset, ["flattery"])
    df = ds.to_pandas()
    pres = (df["chosen__flattery"] > 0).astype(float) - (df["rejected__flattery"] > 0).astype(float)
    assert (pres > 0).sum() > 100 and (pres < 0).sum() == 0  # one way only
    dd, report = apply_recipe(ds, Recipe.from_ids(block=["flattery"]), audit=False)
    step = report.steps[0]
    assert "flattery/presence" not in step.get("skipped", {}), step.get("skipped")
    w = np.asarray(dd["train"]["weight"])
    train_ids = dd["train"]["row"]
    p = pres.to_numpy()[np.asarray(train_ids)]
    assert abs(float((w * p).sum()) / w.sum()) < 1e-6
