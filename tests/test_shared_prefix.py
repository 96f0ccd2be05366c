"""Each prompt forwarded once: the shared-prefix forward equals the full prompt + response forward."""

import numpy as np
import pytest
import torch
from _tiny_lm import build_tiny_lm, build_tiny_sae, multiturn

import curate
from curate import _columns as C
from curate.concepts._shared_prefix import shared_prefix_activations
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


def test_pooled_features_equal_and_fewer_tokens(tiny_lm, data):
    cols = [C.sae_index_column(s, "t") for s in C.SIDES] + [C.sae_value_column(s, "t") for s in C.SIDES]
    outs, tokens = {}, {}
    for share in (True, False):
        ann = _ann(tiny_lm, share, batch_tokens=1024, max_batch_rows=8)  # several length buckets
        outs[share] = ann(data[:])
        tokens[share] = ann.stats_["tokens"]
    for side in C.SIDES:
        for r in range(len(data)):
            a = dict(zip(outs[True][C.sae_index_column(side, "t")][r], outs[True][C.sae_value_column(side, "t")][r]))
            b = dict(zip(outs[False][C.sae_index_column(side, "t")][r], outs[False][C.sae_value_column(side, "t")][r]))
            assert a.keys() == b.keys()
            assert all(abs(a[f] - b[f]) <= 1e-4 for f in a)
    assert outs[True][cols[0]][3] == [] and outs[True][cols[1]][5] == []  # invalid row, empty response
    assert tokens[True] < 0.75 * tokens[False]  # two-turn prompts dominate: each forwarded once


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
