"""Each prompt forwarded once: the responses to a prompt ride on one sequence, ``prompt | response 1 | response 2``.

Chosen and rejected answer the same prompt, and in multi-turn data the prompt is most of the tokens. Each
prompt group becomes one row of a micro-batch: the prompt's tokens (the *trunk*), then each response's
tokens (a *branch*: what follows the prompt, up to the response's last token). A 4-D attention mask lets a
trunk token see the trunk before it, and a branch token see the trunk and its own branch before it; the
position ids of every branch continue after the trunk. Causal attention makes a response token's activation
depend only on the tokens before it, so this equals the full prompt + response forward of
:meth:`SAEConcepts._response_activations` up to float rounding (tested within 1e-4) — with no key/value
cache, and nothing re-padded or copied per response.

Rows (shared groups and plain responses alike) are sorted by length within the call's window and cut into
micro-batches of at most ``batch_tokens`` padded tokens and ``max_batch_rows`` rows
(:func:`~curate.concepts.activations.length_buckets`); each activation is returned with its position, so
the caller puts them back in order.

Sharing is chosen per prompt (:func:`_pays`): a group is one row where that costs less than forwarding each
response with its own copy of the prompt (a cost model of the linear layers and the dense masked attention);
otherwise — a short prompt, a tokenization that does not start with the prompt's own tokens (a merge across
the boundary), a truncated input, a single response — its responses are plain rows. Where no row in a call
shares, or the model's attention cannot take a 4-D mask, the plain path runs. Counts land in
``stats_`` (``shared_prompts``, ``unshared_responses``, ``plain_calls``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..errors import ModelError

__all__ = ["shared_prefix_activations"]

# attention implementations that take an arbitrary 4-D mask (flash kernels do not)
_MASKABLE = ("sdpa", "eager")


class _Stop(Exception):
    pass


@dataclass
class _Row:
    """One sequence of a micro-batch: a trunk (the shared prompt, or a whole plain input) and branches."""

    trunk: list[int]
    branches: list[list[int]] = field(default_factory=list)
    spans: list[tuple[int, int, int]] = field(default_factory=list)  # (position j, first column, end column)

    def __len__(self) -> int:
        return len(self.trunk) + sum(len(b) for b in self.branches)


def _prefix_text(ann, messages: list[dict]) -> str:
    """The rendered prompt exactly as :meth:`SAEConcepts._render` puts it before the response."""
    tok = ann.tokenizer_
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) if messages else ""
    prefix = "\n\n".join(m["content"] for m in messages)
    return prefix + "\n\n" if prefix else ""


def _cost_model(model) -> tuple[float, float]:
    """Per-layer multiply-adds ``(per token, per token and attended position)`` of a decoder layer."""
    cfg = model.config
    d = int(cfg.hidden_size)
    heads = int(getattr(cfg, "num_attention_heads", 1) or 1)
    head_dim = int(getattr(cfg, "head_dim", None) or d // heads)
    kv = int(getattr(cfg, "num_key_value_heads", None) or heads) * head_dim
    ff = int(getattr(cfg, "intermediate_size", None) or 4 * d)
    return float(d * (heads * head_dim * 2 + 2 * kv) + 3 * d * ff), float(2 * heads * head_dim)


def _pays(prefix: int, responses: list[int], per_token: float, per_pair: float, margin: float = 0.97) -> bool:
    """Whether one row ``prefix + responses`` costs less than each response with its own prompt copy (dense
    masked attention makes the shared row pay for every position pair in it)."""
    shared = prefix + sum(responses)
    cost_shared = shared * (per_token + per_pair * shared)
    cost_plain = sum((prefix + s) * (per_token + per_pair * (prefix + s)) for s in responses)
    return cost_shared < margin * cost_plain


def _plan(ann, items, pairs) -> tuple[list[_Row], int]:
    """Rows of this call: one per prompt group where sharing pays, one per response otherwise."""
    has_template = bool(getattr(ann.tokenizer_, "chat_template", None))
    keys = [json.dumps(m, sort_keys=True) for m, _ in pairs]
    prefixes: dict[str, list[int]] = {}
    for key, (messages, _) in zip(keys, pairs):
        if key not in prefixes:
            text = _prefix_text(ann, messages)
            prefixes[key] = list(ann.tokenizer_(text, add_special_tokens=not has_template)["input_ids"]) if text else []
    by_prompt: dict[str, list[int]] = {}
    plain: list[int] = []
    for j, (key, it) in enumerate(zip(keys, items)):
        pre = prefixes[key]
        if pre and it.end > it.start >= len(pre) and it.ids[: len(pre)] == pre:
            by_prompt.setdefault(key, []).append(j)
        else:
            plain.append(j)
    per_token, per_pair = _cost_model(ann.model_)
    rows: list[_Row] = []
    for key, js in by_prompt.items():
        P = len(prefixes[key])
        if len(js) < 2 or not _pays(P, [items[j].end - P for j in js], per_token, per_pair):
            plain.extend(js)
            continue
        row = _Row(prefixes[key])
        col = P
        for j in js:
            branch = items[j].ids[P : items[j].end]  # tokens after the response's last one change nothing
            row.branches.append(branch)
            row.spans.append((j, col + items[j].start - P, col + items[j].end - P))
            col += len(branch)
        rows.append(row)
    shared = len(rows)
    for j in sorted(plain):
        it = items[j]
        rows.append(_Row(it.ids[: max(it.end, 1)], spans=[(j, it.start, it.end)]))
    return rows, shared


def _batch_tensors(rows: list[_Row], pad: int, attn: str, dtype: torch.dtype):
    """``input_ids``, ``position_ids`` and the 4-D mask of right-padded rows (a padding query sees itself
    only, so no softmax row is empty)."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    pos = torch.zeros((len(rows), T), dtype=torch.long)
    seg = torch.full((len(rows), T), -1, dtype=torch.long)  # -1 padding, 0 trunk, b > 0 branch b
    for b, row in enumerate(rows):
        P = len(row.trunk)
        ids[b, :P] = torch.tensor(row.trunk, dtype=torch.long)
        pos[b, :P] = torch.arange(P)
        seg[b, :P] = 0
        col = P
        for k, branch in enumerate(row.branches, start=1):
            n = len(branch)
            ids[b, col : col + n] = torch.tensor(branch, dtype=torch.long)
            pos[b, col : col + n] = torch.arange(P, P + n)
            seg[b, col : col + n] = k
            col += n
    q, k = seg.unsqueeze(2), seg.unsqueeze(1)
    causal = torch.ones((T, T), dtype=torch.bool).tril()
    allowed = causal & (k >= 0) & ((k == 0) | (k == q))
    allowed |= torch.eye(T, dtype=torch.bool)
    mask = allowed.unsqueeze(1)
    if attn == "eager":  # eager attention adds its mask to the scores
        mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    return ids, pos, mask, int((seg >= 0).sum())


@torch.inference_mode()
def _forward(ann, input_ids, position_ids, mask) -> torch.Tensor:
    """Residual stream after block ``ann.layer``; the forward stops there."""
    from ..models import decoder_layers

    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = decoder_layers(ann.model_)[ann.layer - 1].register_forward_hook(hook)
    dev = ann.device
    try:
        ann.model_(
            input_ids=input_ids.to(dev), attention_mask=mask.to(dev), position_ids=position_ids.to(dev), use_cache=False
        )
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ModelError(f"The hook on layer {ann.layer} never ran: is this model's forward standard?")
    return captured[0]


def _count(ann, key: str, n: int) -> None:
    ann.stats_[key] = ann.stats_.get(key, 0) + n


def shared_prefix_activations(
    ann, pairs: list[tuple[list[dict], str]]
) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """Drop-in for :meth:`SAEConcepts._response_activations` (``backend="lm"``) that forwards each distinct
    prompt once: yields ``(positions, [n_tokens, d] response activations)`` per micro-batch."""
    attn = str(getattr(ann.model_.config, "_attn_implementation", None) or "eager")
    if int(ann.max_batch_rows) < 2 or attn not in _MASKABLE:  # nothing can share a forward
        _count(ann, "plain_calls", 1)
        yield from ann._response_activations(pairs)
        return
    items = ann._tokenize(pairs)
    rows, shared = _plan(ann, items, pairs)
    _count(ann, "shared_prompts", shared)
    _count(ann, "unshared_responses", len(rows) - shared)
    if not shared:  # sharing pays nowhere in this window: the plain path (a 2-D mask) is as fast
        _count(ann, "plain_calls", 1)
        yield from ann._response_activations(pairs, items=items)
        return
    pad = ann.tokenizer_.pad_token_id if ann.tokenizer_.pad_token_id is not None else 0
    dtype = next(ann.model_.parameters()).dtype
    for batch in ann._micro_batches([len(r) for r in rows]):
        part = [rows[b] for b in batch]
        ids, pos, mask, real = _batch_tensors(part, pad, attn, dtype)
        resid = _forward(ann, ids, pos, mask)
        positions, acts = [], []
        for b, row in enumerate(part):
            for j, s, e in row.spans:
                positions.append(j)
                acts.append(resid[b, s:e])
        ann.stats_["micro_batches"] += 1
        ann.stats_["tokens"] += real
        ann.stats_["padded_tokens"] += int(ids.numel())
        ann.stats_["response_tokens"] += sum(len(a) for a in acts)
        yield positions, acts
