"""Each prompt forwarded once: the shared-prefix forward equals the full prompt + response forward."""

import numpy as np
import pytest
import torch
from _tiny_lm import build_tiny_lm, build_tiny_sae, multiturn

import curate
from curate import _columns as C
from curate.concepts._shared_prefix import _pays, shared_prefix_activations
from curate.concepts.activations import length_buckets
from curate.concepts.sae import SAEConcepts


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tinylm") / "lm")


@pytest.fixture(scope="module")
def data():
    ds = multiturn(curate.make_preference_pairs(40, seed=5).dataset, turns=2)
    return ds.map(
        lambda r, i: {"reason": "invalid:x" if i == 3 else "", "rejected": "" if i == 5 else r["rejected"]},
        with_indices=True,
    )


def _ann(tiny_lm, share, **kw):
    return SAEConcepts(
        build_tiny_sae(),
        model=tiny_lm,
        layer=3,
        k=128,
        source="t",
        share_prompt=share,
        batch_tokens=kw.pop("batch_tokens", 2048),
        **kw,
    )


def _pairs(ann, data):
    ann._setup()
    targets = ann._targets(data[:])
    return [(m, r) for _, _, m, r in targets]


def test_activations_equal_the_full_forward(tiny_lm, data):
    ann = _ann(tiny_lm, True)
    pairs = _pairs(ann, data)
    want, got = {}, {}
    for group, acts in ann._response_activations(pairs):
        want.update({j: a.clone() for j, a in zip(group, acts)})
    for group, acts in shared_prefix_activations(ann, pairs):
        got.update({j: a.clone() for j, a in zip(group, acts)})
    assert sorted(got) == sorted(want) == list(range(len(pairs)))
    assert ann.stats_["shared_prompts"] >= 30  # the prompts were really shared
    for j in want:
        assert got[j].shape == want[j].shape and len(want[j]) > 0
        torch.testing.assert_close(got[j], want[j], atol=1e-4, rtol=0)
    assert max(float(a.abs().max()) for a in want.values()) > 1.0  # a scale at which 1e-4 means something


def _rows(out, i):
    return {c: out[c][i] for c in out}


def test_bucketed_and_shared_pooled_features_equal_the_plain_path_row_for_row(tiny_lm, data):
    """One input at a time (no bucketing, no sharing) is the reference; the shared and the unshared paths,
    through ``datasets.map`` windows of 16 rows and several length buckets, give the same pooled features in
    the original row order."""
    ref = _ann(tiny_lm, False, max_batch_rows=1)
    want = [_rows(ref(data[i : i + 1]), 0) for i in range(len(data))]
    tokens = {}
    for share in (True, False):
        ann = _ann(tiny_lm, share, batch_tokens=1024, max_batch_rows=8)
        out = data.map(ann, batched=True, batch_size=16, features=ann.features(data.features))
        tokens[share] = ann.stats_["tokens"]
        assert ann.stats_["micro_batches"] >= 6  # several length buckets per window
        for i, row in enumerate(out):
            for side in C.SIDES:
                idx, val = C.sae_index_column(side, "t"), C.sae_value_column(side, "t")
                assert row[idx] == want[i][idx], (share, i, side)  # same features, same order, same row
                assert np.allclose(row[val], want[i][val], atol=1e-4, rtol=0), (share, i, side)
    assert want[3][C.sae_index_column("chosen", "t")] == [] and want[5][C.sae_value_column("rejected", "t")] == []
    assert tokens[True] < 0.75 * tokens[False]  # two-turn prompts dominate: each forwarded once


def test_length_buckets_pack_similar_lengths_within_the_caps():
    rng = np.random.default_rng(0)  # lengths in clusters, as rows of a prompt and its responses come
    lengths = np.concatenate([rng.integers(c, c + 8, size=5) for c in rng.integers(20, 400, size=24)])
    lengths = rng.permutation(lengths).tolist()
    batches = length_buckets(lengths, batch_tokens=2048, max_rows=16)
    assert sorted(j for b in batches for j in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[j] for j in b)
        assert len(b) <= 16 and (len(b) == 1 or len(b) * longest <= 2048)
    padded = sum(len(b) * max(lengths[j] for j in b) for b in batches)
    assert padded <= 1.03 * sum(lengths)  # cut where the lengths jump (filling each batch up wastes ~5%)
    assert len(batches) <= 2 * sum(lengths) / 2048 + 8  # not one input per micro-batch


def test_sharing_is_chosen_where_it_pays_and_recorded(tiny_lm):
    """Short prompts before long responses: one row per prompt would attend over more than it saves, so the
    plain path runs, is counted, and gives the same features."""
    assert _pays(400, [50, 50], 1000.0, 10.0) and not _pays(5, [400, 400], 1000.0, 10.0)
    long = curate.make_preference_pairs(6, seed=3).dataset.map(
        lambda r: {"chosen": r["chosen"] * 4, "rejected": r["rejected"] * 4}
    )
    outs = {}
    for share in (True, False):
        ann = _ann(tiny_lm, share)
        outs[share] = ann(long[:])
    assert ann.to_dict()["prompt_sharing"]["share_prompt"] is False
    shared = _ann(tiny_lm, True)
    shared(long[:])
    info = shared.to_dict()["prompt_sharing"]
    assert info["shared_prompts"] == 0 and info["plain_calls"] == 1 and info["plain_responses"] == 12
    assert shared.stats_["truncated"] == 0
    for col in outs[True]:
        for a, b in zip(outs[True][col], outs[False][col]):
            assert np.allclose(a, b, atol=1e-4)


def test_eager_attention_takes_the_additive_mask(tiny_lm, data):
    ann = _ann(tiny_lm, True)
    pairs = _pairs(ann, data.select(range(12)))
    want = {j: a.clone() for group, acts in ann._response_activations(pairs) for j, a in zip(group, acts)}
    ann.model_.set_attn_implementation("eager")
    try:
        got = {j: a.clone() for group, acts in shared_prefix_activations(ann, pairs) for j, a in zip(group, acts)}
    finally:
        ann.model_.set_attn_implementation("sdpa")
    assert ann.stats_["shared_prompts"] >= 10
    for j in want:
        torch.testing.assert_close(got[j], want[j], atol=1e-4, rtol=0)


def test_truncated_inputs_fall_back_to_the_full_forward(tiny_lm, data):
    ann = _ann(tiny_lm, True, max_length=96)
    pairs = _pairs(ann, data)
    got = {j: a for group, acts in shared_prefix_activations(ann, pairs) for j, a in zip(group, acts)}
    want = {j: a for group, acts in ann._response_activations(pairs) for j, a in zip(group, acts)}
    assert ann.stats_["truncated"] > 0 and ann.stats_["unshared_responses"] > 0
    for j in want:
        torch.testing.assert_close(got[j], want[j], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_smollm2_layer15_shared_equals_full():
    ds = multiturn(curate.make_preference_pairs(6, seed=1).dataset, turns=1)
    ann = SAEConcepts(None, layer=15)
    pairs = _pairs(ann, ds)
    got = {j: a.clone() for group, acts in shared_prefix_activations(ann, pairs) for j, a in zip(group, acts)}
    want = {j: a.clone() for group, acts in ann._response_activations(pairs) for j, a in zip(group, acts)}
    for j in want:
        scale = float(want[j].abs().max())
        assert float((got[j] - want[j]).abs().max()) <= 1e-4 * max(1.0, scale)
    assert np.isfinite(scale)


def test_bfloat16_takes_the_same_path(tiny_lm, data):
    """The CUDA + bf16 configuration runs the same code; on CPU, bf16 rounding bounds the agreement."""
    small = data.select(range(8))
    outs = {}
    for share in (True, False):
        ann = _ann(tiny_lm, share, dtype="bfloat16")
        outs[share] = ann(small[:])
    assert ann.model_.dtype == torch.bfloat16 and _ann(tiny_lm, True, dtype="bfloat16").to_dict()["dtype"] == "bfloat16"
    col = C.sae_value_column("chosen", "t")
    a = np.concatenate([np.sort(v) for v in outs[True][col] if v])
    b = np.concatenate([np.sort(v) for v in outs[False][col] if v])
    assert a.shape == b.shape and np.abs(a - b).max() <= 0.05 * np.abs(b).max()
