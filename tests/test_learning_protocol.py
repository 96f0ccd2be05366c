"""The learning check's measurements that do not restate the training data (held-out topics and phrasings,
length-matched placebos), the sham arm, and the frozen protocol of ``benchmarks/bench_learning.py --protocol``.

The end-to-end test runs one protocol seed on a tiny random Llama with a word-level tokenizer (as test_learning
does); it checks the code path, not the numbers of the real protocol."""

import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate import _columns as C

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "benchmarks" / "bench_learning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _all_rates(rate=0.5):
    from curate.generate import KNOWN_CONCEPTS

    return {c: (rate, rate) for c in KNOWN_CONCEPTS}


def _texts(ds):
    return list(ds[C.CHOSEN]) + list(ds[C.REJECTED])


# -- the generator: held-out topics and phrasings -------------------------------------------------------------


def test_heldout_topics_never_appear_in_training_prompts():
    from curate.generate import make_preference_pairs
    from curate.learning.heldout import heldout_topics

    prompts = make_preference_pairs(600, rates=_all_rates(0.3), seed=5).dataset[C.PROMPT]
    for seed in (0, 1, 2):
        topics = heldout_topics(240, seed=seed)
        assert len({q for q, _, _ in topics}) == 240  # distinct questions
        for q, _, _ in topics:
            assert not any(q in p or q[:-1].lower() in p.lower() for p in prompts), q
    # another seed draws another held-out set
    assert {q for q, _, _ in heldout_topics(40, seed=0)} != {q for q, _, _ in heldout_topics(40, seed=1)}


def test_heldout_phrasings_never_appear_in_training_texts():
    from curate.generate import TRAIN_BANKS, make_preference_pairs
    from curate.learning.heldout import HELDOUT_BANKS

    texts = "\n".join(_texts(make_preference_pairs(800, rates=_all_rates(0.5), seed=3).dataset))
    checked = 0
    for concept, bank in HELDOUT_BANKS.items():
        for phrase in [bank] if isinstance(bank, str) else bank:
            assert phrase not in texts, (concept, phrase)
            checked += 1
    assert checked > 60
    # not vacuous: the training phrasings are there
    assert all(any(p in texts for p in TRAIN_BANKS[c]) for c in ("flattery", "summary", "disclaimer", "code"))


def test_default_generator_draws_only_from_the_training_banks():
    """The default draw (what every fingerprint and test relies on) is unchanged: no extra concept, no held-out text."""
    from curate.generate import DEFAULT_RATES, make_preference_pairs

    gen = make_preference_pairs(300, seed=0)
    assert set(gen.planted) == {*DEFAULT_RATES, "quality"}
    assert not any("Short reply" in t or "fantastic question" in t for t in _texts(gen.dataset))


def test_placebo_pairs_are_length_matched_and_neutral():
    from curate.concepts.named import NamedConcepts
    from curate.generate import KNOWN_CONCEPTS
    from curate.learning.heldout import make_placebo_pairs, register_markers

    register_markers()
    for concept in [c for c in KNOWN_CONCEPTS if c != "markdown"]:
        ds = make_placebo_pairs(concept, 30, seed=1)
        gap = np.abs(np.array(ds["concept_tokens"]) - np.array(ds["placebo_tokens"]))
        assert np.median(gap) <= 1 and gap.max() <= 4, (concept, gap)
        assert all(v != b and p != b for v, b, p in zip(ds[C.CHOSEN], ds[C.REJECTED], ds["placebo"]))
        named = {"padding": "length"}.get(concept, concept)
        if named == "length":
            continue
        ann = NamedConcepts([named], text_columns=("text",))
        on = {
            k: np.asarray(ann({"text": list(ds[k])})[C.score_column("text", named)])
            for k in (C.CHOSEN, C.REJECTED, "placebo")
        }
        # the variant carries the concept more than the base; the placebo never adds it
        assert (on[C.CHOSEN] > on[C.REJECTED]).mean() > 0.9, concept
        assert (on["placebo"] == on[C.REJECTED]).all(), concept


def test_sham_rows_keep_size_and_ess_but_not_the_weights_rows():
    from datasets import Dataset

    from curate.learning.inputs import sham_rows

    rows = Dataset.from_dict({C.ID: list(range(200)), "x": list(range(200))})
    rng = np.random.default_rng(0)
    keep = sorted(rng.choice(200, 150, replace=False).tolist())
    w = rng.gamma(1.0, size=150)
    cur = Dataset.from_dict({C.ID: keep, C.WEIGHT: w.tolist()})
    sham = sham_rows(rows, cur, 3)
    ess = lambda v: np.sum(v) ** 2 / np.sum(np.square(v))  # noqa: E731
    assert len(sham) == 150 and set(sham[C.ID]) <= set(range(200))
    assert ess(np.array(sham[C.WEIGHT])) == pytest.approx(ess(w))
    assert set(sham[C.ID]) != set(keep)  # rows drawn at random, not the curated rows
    by_id = dict(zip(keep, w))
    same = [i for i in sham[C.ID] if i in by_id]
    assert np.mean([by_id[i] == x for i, x in zip(sham[C.ID], sham[C.WEIGHT]) if i in by_id]) < 0.2, len(same)


# -- the protocol ---------------------------------------------------------------------------------------------


def test_protocol_hash_changes_when_the_file_changes(tmp_path):
    bench = _bench()
    src = (ROOT / "benchmarks" / "learning_protocol.yaml").read_bytes()
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_bytes(src)
    b.write_bytes(src.replace(b"steps: 32", b"steps: 33"))
    assert b != a and bench.protocol_hash(a) == bench.protocol_hash(ROOT / "benchmarks" / "learning_protocol.yaml")
    assert bench.protocol_hash(a) != bench.protocol_hash(b) and len(bench.protocol_hash(a)) == 12


def test_shipped_protocols_parse_and_select_paths_that_exist():
    from curate.concepts.named import list_concepts
    from curate.generate import DETECTED_AS
    from curate.learning import LearnConfig
    from curate.learning.heldout import register_markers
    from curate.learning.train import load_reference

    bench = _bench()
    register_markers()
    for name, n_concepts, n_seeds in (("learning_protocol.yaml", 12, 3), ("learning_protocol_gpu.yaml", 30, 5)):
        proto = bench.load_protocol(ROOT / "benchmarks" / name)
        rates = proto["data"]["rates"]
        effects = [a - b for a, b in rates.values()]
        assert len(rates) >= n_concepts and len(proto["seeds"]) >= n_seeds
        assert max(effects) > 0.2 and min(effects) < -0.1 and any(e == 0 for e in effects)  # graded, zero, negative
        assert sorted(proto["concepts"]) == sorted(DETECTED_AS.get(c, c) for c in rates)
        assert set(proto["concepts"]) <= set(list_concepts())
        LearnConfig(**proto["train"])  # every training setting is a LearnConfig field
    gpu = bench.load_protocol(ROOT / "benchmarks" / "learning_protocol_gpu.yaml")
    assert (gpu["device"], gpu["dtype"]) == ("cuda", "bfloat16") and gpu["generation"]["heldout_prompts"] >= 200
    assert gpu["generation"]["max_new_tokens"] >= gpu["train"]["max_length"]
    assert "bfloat16" in inspect.getsource(load_reference)  # the CUDA path loads bf16


def test_a_protocol_with_a_device_dtype_the_code_does_not_run_is_refused(tmp_path):
    from curate.errors import CurateError

    bench = _bench()
    bad = (ROOT / "benchmarks" / "learning_protocol_gpu.yaml").read_text().replace("dtype: bfloat16", "dtype: float16")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(CurateError, match="not a path the learning code runs"):
        bench.load_protocol(tmp_path / "bad.yaml")


@pytest.fixture(scope="module")
def protocol_seed(tmp_path_factory):
    """One seed of a tiny protocol on a tiny model, through ``run_protocol_seed``."""
    import torch
    from datasets import concatenate_datasets
    from transformers import LlamaForCausalLM

    from curate.generate import make_preference_pairs
    from curate.learning.heldout import heldout_topics, make_placebo_pairs
    from tests.test_trl import build_tokenizer, tiny_config

    bench = _bench()
    tmp = tmp_path_factory.mktemp("protocol")
    text = (ROOT / "benchmarks" / "learning_protocol.yaml").read_text()
    proto = bench.load_protocol(ROOT / "benchmarks" / "learning_protocol.yaml")
    proto.update(
        seeds=[0],
        concepts=["flattery", "agreement", "length", "apology", "summary"],
        data={
            **proto["data"],
            "n_pairs": 160,
            "rates": {
                "flattery": [0.9, 0.05],
                "agreement": [0.4, 0.1],
                "padding": [0.4, 0.2],
                "apology": [0.1, 0.3],
                "summary": [0.2, 0.2],
            },
        },
        train={
            **proto["train"],
            "steps": 10,
            "batch_size": 8,
            "learning_rate": 0.01,
            "lora_r": 8,
            "max_length": 96,
            "warmup_steps": 0,
        },
        generation={**proto["generation"], "heldout_prompts": 6, "samples": 1, "max_new_tokens": 4},
        counterfactuals={**proto["counterfactuals"], "pairs": 32, "max_length": 128},
    )
    assert text  # the shipped file is the template
    seen = [
        make_preference_pairs(160, seed=1000, rates={c: tuple(v) for c, v in proto["data"]["rates"].items()}).dataset
    ]
    for c in ("neutral", "flattery", "agreement", "padding", "apology", "summary"):
        seen.append(
            make_placebo_pairs(c, 32, seed=3000).rename_column(C.REJECTED, "base").rename_column("placebo", C.REJECTED)
        )
    topics = heldout_topics(6, seed=2000)
    from datasets import Dataset

    seen.append(
        Dataset.from_dict(
            {
                C.PROMPT: [q for q, _, _ in topics],
                C.CHOSEN: [r for _, r, _ in topics],
                C.REJECTED: [w for _, _, w in topics],
            }
        )
    )
    tok = build_tokenizer(concatenate_datasets([d.select_columns([C.PROMPT, C.CHOSEN, C.REJECTED]) for d in seen]))
    torch.manual_seed(0)
    model = (LlamaForCausalLM(tiny_config(len(tok))), tok)
    folder = tmp / "results" / "abc" / "seed0"
    res = bench.run_protocol_seed(proto, 0, folder, "abc", tmp / "work", model)
    return res, folder, proto


def test_protocol_seed_writes_the_sham_arm_and_per_pair_margins(protocol_seed):
    from curate.learning import read_learning
    from curate.learning.folder import COUNTERFACTUAL_COLUMNS, COUNTERFACTUALS_FILE

    res, folder, proto = protocol_seed
    table, record = read_learning(folder)
    assert set(record["arms"]) == {"original", "curated", "sham"}
    assert record["n_used_sham"] == record["n_used_curated"]
    t = table.set_index("concept")
    assert np.isfinite(t["observed_sham"].astype(float)).all() and np.isfinite(t["reward_sham"].astype(float)).all()
    assert np.isfinite(t.loc["flattery", ["reward_adjusted_sham", "reward_placebo_original"]].astype(float)).all()
    assert record["independent_draws"] and record["protocol_hash"] == "abc" and record["counterfactuals"] == "heldout"
    assert record["git_commit"] and record["planted"]["flattery"] == [0.9, 0.05]
    cf = pd.read_parquet(folder / COUNTERFACTUALS_FILE)
    assert list(cf.columns) == COUNTERFACTUAL_COLUMNS
    assert set(cf["arm"]) == {"original", "curated", "sham"}
    assert set(cf["concept"]) == {"flattery", "agreement", "length", "apology", "summary", "neutral"}
    assert (cf.groupby(["concept", "arm"]).size() == 32).all()
    assert np.allclose(cf["adjusted"], cf["margin"] - cf["placebo_margin"])
    gens = pd.read_parquet(folder / "generations.parquet")
    assert set(gens["model"]) == {"reference", "original", "curated", "sham"}
    # the generation prompts are the held-out topics, never a training prompt
    assert set(gens["prompt"]) == set(record["heldout_topics"]) and record["heldout_by"] == "given"
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert sum(sizes.values()) < 1_000_000, sizes


def test_neutral_insertion_margin_is_zero_within_its_ci(protocol_seed):
    """A placebo against a placebo: the placebo-adjusted margin of a neutral insertion covers 0 in every arm."""
    res, folder, _ = protocol_seed
    neutral = res.record["neutral_insertion"]
    assert set(neutral) == {"original", "curated", "sham"}
    for arm, r in neutral.items():
        assert r["n"] == 32 and r["adjusted_low"] <= 0 <= r["adjusted_high"], (arm, r)
        assert r["adjusted_high"] - r["adjusted_low"] > 0


def test_heldout_prompts_that_the_data_trains_on_are_refused(tmp_path):
    from curate.errors import CurateError
    from curate.generate import make_preference_pairs
    from curate.learning import learning_check
    from curate.pipeline import run_apply

    data = make_preference_pairs(60, seed=0).dataset
    run_apply(data, block=["flattery"], out=tmp_path / "cur")
    with pytest.raises(CurateError, match="asked in the training data"):
        learning_check(
            data,
            tmp_path / "cur",
            model=("unused", None),
            eval_messages=[data[0][C.PROMPT_MESSAGES]],
            progress=False,
            log=lambda m: None,
        )


def test_protocol_targets_fail_an_anticorrelated_prediction_and_an_unseparated_sham(capsys):
    bench = _bench()
    shifts = {
        "original": {"flattery": [0.5, 0.3, 0.7]},
        "curated": {"flattery": [0.0, -0.1, 0.25]},
        "sham": {"flattery": [0.4, 0.2, 0.6]},  # overlaps the curated CI: curation not shown
    }
    pred = {"r": -0.9, "r_low": -0.97, "r_high": -0.7, "perm95": 0.3}
    bench.protocol_targets({"blocked_concepts": ["flattery"], "shifts": shifts, "prediction": {"generation": pred}})
    bench.targets(
        pd.DataFrame(
            {
                c: {"observed_original": 0.1, "observed_original_low": 0.05, "observed_curated": 0.0}
                for c in ("flattery", "agreement")
            }
        ).T,
        {**pred, "r2": 0.81, "n_concepts_supported": 20},  # R² = r² = 0.81 would have passed the old target
    )
    out = capsys.readouterr().out.splitlines()
    assert [ln for ln in out if ln.startswith("target block flattery: curated")][0].endswith("FAIL")
    assert [ln for ln in out if ln.startswith("target prediction (generation)")][0].endswith("FAIL")
    assert [ln for ln in out if ln.startswith("target prediction: ")][0].endswith("FAIL")
    shifts["sham"]["flattery"] = [0.4, 0.3, 0.6]
    bench.protocol_targets(
        {"blocked_concepts": ["flattery"], "shifts": shifts, "prediction": {"generation": {**pred, "r": 0.5}}}
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("PASS") and out[1].endswith("PASS")
