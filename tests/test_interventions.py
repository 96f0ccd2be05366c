"""Data interventions on the built-in generator, checked against its ground truth."""

import doctest
import importlib
import json

import numpy as np
import pytest

from curate import _columns as C
from curate.recipe import Recipe

BLOCK = ["flattery", "markdown"]


def truth_win_rate(truth, ids, weights, concept):
    t = truth.iloc[np.asarray(ids)]
    d = t[f"chosen__{concept}"].to_numpy() - t[f"rejected__{concept}"].to_numpy()
    w = np.asarray(weights, float)
    return float((w * (d > 0)).sum() / (w * (d != 0)).sum())


@pytest.fixture(scope="module")
def applied(generated):
    from curate.interventions import apply_recipe

    return apply_recipe(generated.dataset, Recipe.from_ids(block=BLOCK))


def test_acceptance_rebalance_on_ground_truth(generated, applied):
    dd, report = applied
    train = dd[C.TRAIN_SPLIT]
    for c in BLOCK:
        before = truth_win_rate(generated.truth, range(len(generated.dataset)), np.ones(len(generated.dataset)), c)
        after = truth_win_rate(generated.truth, train[C.ID], train[C.WEIGHT], c)
        assert before > 0.65
        assert abs(after - 0.5) <= 0.03, (c, after)
    assert truth_win_rate(generated.truth, train[C.ID], train[C.WEIGHT], "quality") >= 0.7
    assert report.retention["ess_fraction"] >= 0.6
    w = np.asarray(train[C.WEIGHT])
    ess = w.sum() ** 2 / (w**2).sum()
    assert ess >= 0.6 * len(generated.dataset)
    assert report.retention["ess"] == pytest.approx(ess, rel=1e-4)


def test_output_schema_and_order(generated, applied):
    dd, report = applied
    assert set(dd) == {C.TRAIN_SPLIT, C.DROPPED_SPLIT}
    train = dd[C.TRAIN_SPLIT]
    for col in (C.ID, C.PROMPT, C.CHOSEN, C.REJECTED, C.KEEP, C.REASON, C.WEIGHT, C.MARGIN):
        assert col in train.column_names
    assert train[C.ID] == sorted(train[C.ID])  # original order
    assert len(train) + len(dd[C.DROPPED_SPLIT]) == len(generated.dataset)
    assert np.mean(train[C.WEIGHT]) == pytest.approx(1.0, abs=1e-4)
    ba = report.before_after.set_index("concept")
    for c in BLOCK:
        assert ba.loc[c, "win_rate_before"] > 0.65 and ba.loc[c, "q_before"] < 0.05
        assert ba.loc[c, "win_rate_after"] == pytest.approx(0.5, abs=1e-3)
        assert ba.loc[c, "q_after"] > 0.5
    json.dumps(report.to_dict())


def test_every_step_reports_what_it_did(applied):
    _, report = applied
    step = report.steps[0]
    assert step["intervention"] == "rebalance" and step["converged"]
    assert set(step["win_rate_after"]) == set(BLOCK)
    assert step["strata"] and sum(s["rows"] for s in step["strata"]) == 600


def test_adjust_for_stops_other_rewards_travelling_with_a_blocked_concept(annotated):
    """Plain rebalancing leaves markdown's reward larger where flattery wins (the unflipped pairs); adjusting
    for every named concept equalises it, keeps the blocked win-rates at 0.5, and reports the imbalance."""
    from curate.interventions import apply_recipe

    def smd(dd, concept, other):
        t = dd[C.TRAIN_SPLIT].to_pandas()
        d = np.sign(t[f"chosen__{concept}"] - t[f"rejected__{concept}"]).to_numpy()
        x = (t[f"chosen__{other}"] - t[f"rejected__{other}"]).to_numpy(float)
        w = t[C.WEIGHT].to_numpy()
        mean = lambda m: (w * m * x).sum() / (w * m).sum()  # noqa: E731
        return (mean(d > 0) - mean(d < 0)) / x.std()

    plain, _ = apply_recipe(annotated, Recipe.from_ids(block=["flattery"]), audit=False)
    dd, report = apply_recipe(annotated, Recipe.from_ids(block=["flattery"], adjust_for="all"), audit=False)
    assert smd(plain, "flattery", "markdown") > 0.2  # 0.27 on these 600 pairs
    assert abs(smd(dd, "flattery", "markdown")) < 1e-6
    step = report.steps[0]
    assert step["adjust_for"] == "all" and step["converged"] and "markdown" in step["adjusted_for"]
    assert step["max_smd_before"] > 0.3 and step["max_smd_after"] < 1e-6
    assert step["win_rate_after"]["flattery"] == pytest.approx(0.5, abs=1e-6)
    assert list(report.before_after["concept"]) == ["flattery"]  # adjusters are not recipe concepts
    assert 0.3 < report.retention["ess_fraction"] < 1.0
    one, rep1 = apply_recipe(annotated, Recipe.from_ids(block=["flattery"], adjust_for=["markdown"]), audit=False)
    assert rep1.steps[0]["adjusted_for"] == ["markdown"] and abs(smd(one, "flattery", "markdown")) < 1e-6
    assert rep1.retention["ess"] > report.retention["ess"]
    from curate.interventions import preview

    quick = preview(annotated, recipe=Recipe.from_ids(block=["flattery"], adjust_for=["markdown"]))
    assert quick["ess"] == pytest.approx(rep1.retention["ess"]) and list(quick["table"]["concept"]) == ["flattery"]
    _, rep2 = apply_recipe(annotated, Recipe.from_ids(block=["length"], adjust_for="all"), audit=False)
    step = rep2.steps[0]  # log_length always moves with length: left out and said so, the rest adjusted
    assert step["converged"] and "length/log_length" in step["not_adjusted"] and "markdown" in step["adjusted_for"]
    assert step["win_rate_after"]["length"] == pytest.approx(0.5, abs=1e-6)


def test_balance_weights_is_max_ess():
    from curate.interventions import balance_weights, entropy_weights

    s = np.array([[1], [1], [1], [-1], [0]])
    w, info = balance_weights(s, np.ones(5))
    assert info["converged"] and np.allclose(w, [0.625, 0.625, 0.625, 1.875, 1.25])
    we, _ = entropy_weights(s, np.ones(5))
    ess = lambda x: x.sum() ** 2 / (x**2).sum()  # noqa: E731
    assert abs((we * s[:, 0]).sum()) < 1e-8 and ess(w) >= ess(we)


def _state(annotated, concepts):
    from curate.interventions import state_from_dataset

    return state_from_dataset(annotated, concepts)


def test_filter_drops_into_dropped_split(generated, annotated):
    from curate.interventions import apply_recipe

    recipe = Recipe.from_ids(block=["flattery"], block_with=["filter"])
    dd, report = apply_recipe(annotated, recipe, audit=False)
    dropped = dd[C.DROPPED_SPLIT]
    assert len(dropped) > 0 and set(dropped[C.REASON]) == {"filter:flattery"}
    assert not any(dropped[C.KEEP]) and all(dd[C.TRAIN_SPLIT][C.KEEP])
    train = dd[C.TRAIN_SPLIT]
    assert abs(truth_win_rate(generated.truth, train[C.ID], np.ones(len(train)), "flattery") - 0.5) < 0.01
    assert report.steps[0]["rows_dropped"]["flattery"] == len(dropped)


def test_filter_differ_mode(annotated):
    from curate.interventions import Filter

    state = _state(annotated, ["flattery"])
    Filter(["flattery"], mode="differ").apply(state)
    assert (state.delta("flattery")[state.keep] == 0).all()


def test_recipe_filter_mode_reaches_the_filter(annotated):
    from curate.errors import RecipeError
    from curate.interventions import apply_recipe, plan

    rules = [
        {"concepts": ["flattery"], "action": "block", "interventions": ["filter"], "filter_mode": "differ"},
        {"concepts": ["agreement"], "action": "block", "interventions": ["filter"]},
    ]
    recipe = Recipe.from_dict({"rules": rules})
    assert [(s.concepts, s.mode) for s in plan(recipe)] == [(["agreement"], "balance"), (["flattery"], "differ")]
    dd, _ = apply_recipe(annotated, recipe, audit=False)
    t = dd[C.TRAIN_SPLIT].to_pandas()
    assert (t["chosen__flattery"] == t["rejected__flattery"]).all()  # nothing about flattery is left to learn
    dropped = dd[C.DROPPED_SPLIT]
    assert len(t) + len(dropped) == len(annotated)
    assert {"filter:flattery", "filter:agreement"} <= set(dropped[C.REASON])
    with pytest.raises(RecipeError, match=r"rules\[0\]\.filter_mode: only used by the 'filter'"):
        Recipe.from_dict({"rules": [{"concepts": ["flattery"], "action": "block", "filter_mode": "differ"}]})


def test_resample_repeats_rows_in_order(generated, annotated):
    from curate.interventions import apply_recipe

    dd, report = apply_recipe(annotated, Recipe.from_ids(block=BLOCK, block_with=["resample"]), audit=False)
    train = dd[C.TRAIN_SPLIT]
    ids = train[C.ID]
    assert ids == sorted(ids) and len(ids) > len(set(ids))  # duplicates, original order
    assert set(train[C.WEIGHT]) == {1.0}
    for c in BLOCK:
        assert abs(truth_win_rate(generated.truth, ids, np.ones(len(ids)), c) - 0.5) < 0.05
    assert set(dd[C.DROPPED_SPLIT][C.REASON]) <= {"resample:not_drawn"}


def test_relabel_swaps_and_records(generated, annotated):
    from curate.interventions import apply_recipe

    dd, report = apply_recipe(annotated, Recipe.from_ids(block=["flattery"], block_with=["relabel"]), audit=False)
    train = dd[C.TRAIN_SPLIT]
    sw = np.asarray(train[C.SWAPPED])
    assert sw.sum() == report.retention["rows_swapped"] > 0
    i = int(np.flatnonzero(sw)[0])
    orig = generated.dataset[int(train[C.ID][i])]
    assert train[C.CHOSEN][i] == orig[C.REJECTED] and train[C.REJECTED][i] == orig[C.CHOSEN]
    assert train["chosen__flattery"][i] == annotated["rejected__flattery"][int(train[C.ID][i])]
    t = generated.truth.iloc[train[C.ID]]
    d = np.where(sw, -1, 1) * (t["chosen__flattery"].to_numpy() - t["rejected__flattery"].to_numpy())
    assert abs((d > 0).sum() / (d != 0).sum() - 0.5) < 0.02


def test_inoculate_updates_prompt_and_messages(annotated):
    from curate.interventions import DEFAULT_INSTRUCTIONS, apply_recipe

    dd, report = apply_recipe(annotated, Recipe.from_ids(block=["flattery"], block_with=["inoculate"]), audit=False)
    train = dd[C.TRAIN_SPLIT]
    text = DEFAULT_INSTRUCTIONS["flattery"]
    hit = [i for i, m in enumerate(train[C.PROMPT_MESSAGES]) if m[0]["role"] == "system"]
    assert len(hit) == report.retention["rows_inoculated"] > 0
    for i in hit[:5]:
        assert train[C.PROMPT_MESSAGES][i][0]["content"] == text
        assert train[C.PROMPT][i].startswith(f"system: {text}")
        assert train["chosen__flattery"][i] > train["rejected__flattery"][i]
    others = [i for i in range(len(train)) if i not in set(hit)]
    assert all(train[C.PROMPT_MESSAGES][i][0]["role"] == "user" for i in others[:50])


def test_upweight_and_margin(annotated):
    from curate.interventions import Margin, Upweight

    state = _state(annotated, ["flattery", "agreement"])
    wr = state.win_rates()["agreement"]
    Upweight(["agreement"], strength=1.0).apply(state)
    up = (state.side("agreement", "chosen") > 0) & (state.side("agreement", "rejected") == 0)
    assert state.weight[up].min() == pytest.approx(2 * state.weight[~up].max())
    assert state.win_rates()["agreement"] > wr
    m = Margin({"flattery": "block", "agreement": "amplify"}).apply(state)
    d = state.delta("flattery")
    beta = m.to_dict()["coefficient"]["flattery"]
    assert beta < 0
    only_f = state.delta("agreement") == 0
    assert np.allclose(state.margin[only_f & (d > 0)], beta)
    assert np.allclose(state.margin[only_f & (d < 0)], -beta)


def test_invalid_rows_go_to_dropped():
    from datasets import Dataset

    from curate.interventions import apply_recipe

    ds = Dataset.from_dict(
        {
            C.ID: [0, 1, 2, 3],
            C.PROMPT: ["q"] * 4,
            C.PROMPT_MESSAGES: [[{"role": "user", "content": "q"}]] * 4,
            C.CHOSEN: ["Great question! A.", "A.", "B.", None],
            C.REJECTED: ["A.", "Great question! B.", "Great question! C.", "x"],
            C.REASON: ["", "", "", "invalid:missing_chosen"],
        }
    )
    dd, report = apply_recipe(ds, Recipe.from_ids(block=["flattery"]), audit=False)
    assert dd[C.DROPPED_SPLIT][C.REASON] == ["invalid:missing_chosen"]
    assert report.retention["rows_usable"] == 3


def test_preview_is_cheap_and_matches(annotated):
    import time

    from curate.interventions import preview, state_from_dataset

    state = state_from_dataset(annotated, ["flattery", "markdown", "agreement", "refusal"])
    t = time.perf_counter()
    p = preview(None, block=BLOCK, amplify=["agreement"], state=state)
    assert time.perf_counter() - t < 0.5
    tab = p["table"].set_index("concept")
    assert tab.loc["flattery", "win_rate_after"] == pytest.approx(0.5, abs=1e-3)
    assert tab.loc["agreement", "win_rate_after"] > tab.loc["agreement", "win_rate_before"]
    assert p["rows_kept"] == 600 and 0.5 < p["ess_fraction"] <= 1


def test_unknown_concept_lists_what_exists(annotated):
    from curate.errors import ConceptError
    from curate.interventions import state_from_dataset

    with pytest.raises(ConceptError, match="Concepts present"):
        state_from_dataset(annotated, ["nope"])


def test_report_saves(tmp_path, applied):
    import pandas as pd

    _, report = applied
    report.save(tmp_path)
    assert pd.read_parquet(tmp_path / "before_after.parquet").shape[0] == 2
    assert json.loads((tmp_path / "apply.json").read_text())["retention"]["rows_kept"] == 600


def test_docs_page_matches_module_docstring():
    from pathlib import Path

    import curate.interventions as I

    page = (Path(__file__).resolve().parent.parent / "docs" / "interventions.md").read_text()
    body = I.__doc__.split("Example:")[0]
    for para in [p.strip() for p in body.split("\n\n") if p.strip()][1:]:
        first = para.splitlines()[0].strip()
        assert first in page, first


@pytest.mark.parametrize(
    "name",
    [
        "curate.recipe",
        "curate.interventions",
        "curate.interventions.apply",
        "curate.interventions.filter",
        "curate.interventions.rebalance",
        "curate.interventions.balance",
        "curate.interventions.match",
        "curate.interventions.dpo",
        "curate.interventions.relabel",
        "curate.interventions.upweight",
        "curate.interventions.margin",
        "curate.interventions.inoculate",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"


def test_proxy_probe_moves_toward_half(generated):
    from curate.interventions import apply_recipe
    from curate.reward_probe import proxy_check

    dd, _ = apply_recipe(generated.dataset, Recipe.from_ids(block=BLOCK), audit=False)
    res = proxy_check(generated.dataset, dd, BLOCK + ["agreement"], embedder="hash", n_pairs=100).set_index("concept")
    for c in BLOCK:
        assert res.loc[c, "before"] > 0.9
        assert abs(res.loc[c, "after"] - 0.5) < abs(res.loc[c, "before"] - 0.5)
        assert abs(res.loc[c, "after_logit"]) < 0.5 * abs(res.loc[c, "before_logit"])
    assert res.loc["agreement", "after"] > 0.9  # not blocked: still preferred


def test_cli_apply(tmp_path, generated):
    from datasets import load_from_disk
    from typer.testing import CliRunner

    from curate.cli import cli

    src = tmp_path / "pairs.jsonl"
    generated.dataset.to_json(str(src), lines=True)
    out = tmp_path / "curated"
    res = CliRunner().invoke(cli, ["apply", str(src), "--block", "flattery,markdown", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Before vs after" in res.output and "effective sample size" in res.output
    dd = load_from_disk(str(out))
    assert set(dd) == {C.TRAIN_SPLIT, C.DROPPED_SPLIT}
    assert {C.ID, C.KEEP, C.REASON, C.WEIGHT, C.MARGIN} <= set(dd[C.TRAIN_SPLIT].column_names)
    assert (out / "before_after.parquet").exists() and (out / "apply.json").exists()
    assert (out / "recipe.yaml").exists()
    bad = CliRunner().invoke(cli, ["apply", str(src), "--block", "flatery", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "flattery" in bad.output
    both = CliRunner().invoke(
        cli, ["apply", str(src), "--recipe", "anti_sycophancy", "--block", "emoji", "--out", str(tmp_path / "y")]
    )
    assert both.exit_code == 2
    adj = tmp_path / "adjusted"
    res = CliRunner().invoke(cli, ["apply", str(src), "--block", "flattery", "--adjust-for", "all", "--out", str(adj)])
    assert res.exit_code == 0, res.output
    assert Recipe.from_yaml((adj / "recipe.yaml").read_text()).rules[0].adjust_for == "all"
    alone = CliRunner().invoke(
        cli, ["apply", str(src), "--amplify", "hedging", "--adjust-for", "markdown", "--out", str(tmp_path / "z")]
    )
    assert alone.exit_code == 2 and "--block" in alone.output


@pytest.mark.parametrize("how", ["filter", "relabel"])
def test_filter_and_relabel_balance_jointly(generated, annotated, how):
    from curate.interventions import apply_recipe

    dd, _ = apply_recipe(annotated, Recipe.from_ids(block=BLOCK, block_with=[how]), audit=False)
    train = dd[C.TRAIN_SPLIT]
    sw = np.asarray(train[C.SWAPPED]) if C.SWAPPED in train.column_names else np.zeros(len(train), bool)
    t = generated.truth.iloc[train[C.ID]]
    for c in BLOCK:
        d = np.where(sw, -1, 1) * (t[f"chosen__{c}"].to_numpy() - t[f"rejected__{c}"].to_numpy())
        assert abs((d > 0).sum() / (d != 0).sum() - 0.5) < 0.02, (how, c)
