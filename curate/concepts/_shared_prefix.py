"""Each prompt forwarded once: responses that share a prompt run on the prompt's key/value cache.

Chosen and rejected answer the same prompt, and in multi-turn data the prompt is most of the tokens. For
a micro-batch of prompts this module

1. forwards the prompts once (right-padded) with a ``DynamicCache``; the forward stops at the hooked layer,
   so the cache holds keys/values of layers ``1..layer`` only;
2. repeats each prompt's cache for each of its responses (``batch_select_indices``) and forwards the
   response tokens on it, with the prompt padding masked and position ids continuing after each prompt;
3. reads the residual stream of the response tokens at the hooked layer.

Causal attention makes a response token's activation depend only on the tokens before it, so this equals
the full prompt + response forward of :meth:`SAEConcepts._response_activations` up to float rounding
(tested within 1e-4). A response is run the plain way when its tokenization does not start with the
prompt's own tokenization (a merge across the boundary), when the input was truncated, or when it is the
only response of its prompt (nothing to share); with ``max_batch_rows < 2`` nothing is shared. Micro-batches are length-bucketed: prompts are sorted by
total length and packed up to ``batch_tokens`` padded tokens / ``max_batch_rows`` responses.
"""

from __future__ import annotations

import inspect
import json
from typing import Iterator

import torch

from ..errors import ModelError

__all__ = ["shared_prefix_activations"]


class _Stop(Exception):
    pass


def _prefix_text(ann, messages: list[dict]) -> str:
    """The rendered prompt exactly as :meth:`SAEConcepts._render` puts it before the response."""
    tok = ann.tokenizer_
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) if messages else ""
    prefix = "\n\n".join(m["content"] for m in messages)
    return prefix + "\n\n" if prefix else ""


def _cache_kwarg(model) -> str:
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@torch.inference_mode()
def _forward(ann, input_ids, attention_mask, *, position_ids=None, cache=None) -> torch.Tensor:
    """Residual stream after block ``ann.layer``; the forward stops there."""
    from ..models import decoder_layers

    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = decoder_layers(ann.model_)[ann.layer - 1].register_forward_hook(hook)
    dev = ann.device
    kwargs = {"input_ids": input_ids.to(dev), "attention_mask": attention_mask.to(dev), "use_cache": cache is not None}
    if position_ids is not None:
        kwargs["position_ids"] = position_ids.to(dev)
    if cache is not None:
        kwargs[_cache_kwarg(ann.model_)] = cache
    try:
        ann.model_(**kwargs)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ModelError(f"The hook on layer {ann.layer} never ran: is this model's forward standard?")
    return captured[0]


def _pack(
    groups: list[tuple[int, list[int]]], prefix_len: dict, suffix_len: dict, batch_tokens: int, max_rows: int
) -> Iterator[list[tuple[int, list[int]]]]:
    """Length-bucketed micro-batches of prompt groups: sorted by total length, packed by padded tokens."""
    order = sorted(groups, key=lambda g: (prefix_len[g[0]] + max(suffix_len[j] for j in g[1]), len(g[1])))
    cur: list = []
    rows = p_max = s_max = 0
    for g in order:
        p, s, m = prefix_len[g[0]], max(suffix_len[j] for j in g[1]), len(g[1])
        np_, ns_ = max(p_max, p), max(s_max, s)
        if cur and ((rows + m) * (np_ + ns_) > batch_tokens or rows + m > max_rows):
            yield cur
            cur, rows, np_, ns_ = [], 0, p, s
        cur.append(g)
        rows += m
        p_max, s_max = np_, ns_
    if cur:
        yield cur


def shared_prefix_activations(
    ann, pairs: list[tuple[list[dict], str]]
) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """Drop-in for :meth:`SAEConcepts._response_activations` (``backend="lm"``) that forwards each distinct
    prompt once: yields ``(positions, [n_tokens, d] response activations)`` per micro-batch."""
    if int(ann.max_batch_rows) < 2:  # one sequence per micro-batch was asked for: nothing can share a forward
        yield from ann._response_activations(pairs)
        return
    items = ann._tokenize(pairs)
    keys = [json.dumps(m, sort_keys=True) for m, _ in pairs]
    has_template = bool(getattr(ann.tokenizer_, "chat_template", None))
    prefixes: dict[str, list[int]] = {}
    for key, (messages, _) in zip(keys, pairs):
        if key not in prefixes:
            text = _prefix_text(ann, messages)
            prefixes[key] = list(ann.tokenizer_(text, add_special_tokens=not has_template)["input_ids"]) if text else []
    by_prompt: dict[str, list[int]] = {}
    plain: list[int] = []
    for j, (key, it) in enumerate(zip(keys, items)):
        pre = prefixes[key]
        if pre and it.start >= len(pre) and it.ids[: len(pre)] == pre and len(it.ids) > len(pre):
            by_prompt.setdefault(key, []).append(j)
        else:
            plain.append(j)
    groups = []
    for gi, js in enumerate(by_prompt.values()):
        if len(js) < 2:
            plain.extend(js)
        else:
            groups.append((gi, js))
    keys_of = {gi: key for gi, (key, _) in enumerate(by_prompt.items())}
    ann.stats_["shared_prompts"] = ann.stats_.get("shared_prompts", 0) + len(groups)
    ann.stats_["unshared_responses"] = ann.stats_.get("unshared_responses", 0) + len(plain)

    # responses without a shared prompt: today's path
    for group in ann._micro_batches([len(items[j].ids) for j in plain]):
        group = [plain[g] for g in group]
        resid, _ = ann._residuals([items[j].ids for j in group])
        acts = [resid[b, items[j].start : items[j].end] for b, j in enumerate(group)]
        ann.stats_["response_tokens"] += sum(len(a) for a in acts)
        yield group, acts

    prefix_len = {gi: len(prefixes[keys_of[gi]]) for gi, _ in groups}
    suffix_len = {j: len(items[j].ids) - prefix_len[gi] for gi, js in groups for j in js}
    pad = ann.tokenizer_.pad_token_id if ann.tokenizer_.pad_token_id is not None else 0
    from transformers import DynamicCache

    for batch in _pack(groups, prefix_len, suffix_len, int(ann.batch_tokens), int(ann.max_batch_rows)):
        # 1. the prompts, once
        P = max(prefix_len[gi] for gi, _ in batch)
        p_ids = torch.full((len(batch), P), pad, dtype=torch.long)
        p_mask = torch.zeros((len(batch), P), dtype=torch.long)
        for b, (gi, _) in enumerate(batch):
            pre = prefixes[keys_of[gi]]
            p_ids[b, : len(pre)] = torch.tensor(pre, dtype=torch.long)
            p_mask[b, : len(pre)] = 1
        cache = DynamicCache()
        _forward(ann, p_ids, p_mask, cache=cache)
        # 2. every response on its prompt's cache
        rows = [(b, gi, j) for b, (gi, js) in enumerate(batch) for j in js]
        S = max(suffix_len[j] for _, _, j in rows)
        cache.batch_select_indices(torch.tensor([b for b, _, _ in rows], device=ann.device))
        r_ids = torch.full((len(rows), S), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), P + S), dtype=torch.long)
        pos = torch.zeros((len(rows), S), dtype=torch.long)
        for r, (b, gi, j) in enumerate(rows):
            p = prefix_len[gi]
            suffix = items[j].ids[p:]
            r_ids[r, : len(suffix)] = torch.tensor(suffix, dtype=torch.long)
            mask[r, :P] = p_mask[b]
            mask[r, P : P + len(suffix)] = 1
            pos[r] = p + torch.arange(S)
        resid = _forward(ann, r_ids, mask, position_ids=pos, cache=cache)
        del cache
        acts = [
            resid[r, items[j].start - prefix_len[gi] : items[j].end - prefix_len[gi]]
            for r, (_, gi, j) in enumerate(rows)
        ]
        ann.stats_["micro_batches"] += 2
        ann.stats_["tokens"] += int(p_mask.sum()) + int(mask[:, P:].sum())
        ann.stats_["padded_tokens"] += int(p_mask.numel()) + int(r_ids.numel())
        ann.stats_["response_tokens"] += sum(len(a) for a in acts)
        yield [j for _, _, j in rows], acts
