"""Tiny models for cheap tests: a random Llama with SmolLM2's tokenizer and chat template saved to a folder (SAE
tests), and a word-level tokenizer + tiny Llama config built from the data (TRL and directions tests)."""

from __future__ import annotations

from pathlib import Path


def build_tiny_lm(folder: Path, *, hidden: int = 64, layers: int = 4, seed: int = 0) -> str:
    """Save a random ``LlamaForCausalLM`` (``hidden`` wide, ``layers`` deep) + SmolLM2's tokenizer to ``folder``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from curate.models import default_model_file

    folder = Path(folder)
    if (folder / "config.json").exists():
        return str(folder)
    gguf = default_model_file()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # a residual stream of norm ~10 rather than ~0.2
        model.model.embed_tokens.weight.normal_(0, 1.0)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return str(folder)


def build_tiny_sae(d_in: int = 64, d_sae: int = 128, k: int = 16, seed: int = 0):
    import torch
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(seed)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def multiturn(dataset, *, turns: int = 2, seed: int = 0):
    from curate.generate import add_history

    return add_history(dataset, turns=turns, seed=seed)


def build_tokenizer(dataset):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = set()
    pre = pre_tokenizers.Whitespace()
    from curate import _columns as C

    for col in (C.PROMPT, C.CHOSEN, C.REJECTED):
        for text in dataset[col]:
            words.update(w for w, _ in pre.pre_tokenize_str(text))
    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2}
    for w in sorted(words):
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")


def tiny_config(vocab_size, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=2,
        **kw,
    )
