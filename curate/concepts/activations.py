"""Reading activations: responses rendered with the chat template, tokenized, run through the model up to the
hooked layer (or a sentence encoder) in length-sorted micro-batches, and the response tokens' activations
returned. :class:`ActivationReader` is what :class:`~curate.concepts.sae.SAEConcepts` reads with;
:func:`collect_activations` keeps them once so an SAE can be fitted and applied without a second forward."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .. import _columns as C
from ..errors import ConfigError, ModelError

logger = logging.getLogger("curate")


class _StopForward(Exception):
    """Raised by the layer hook to end the forward pass once the hooked layer has run."""


@dataclass
class _Item:
    """One response to encode: rendered text, its token ids and where the response tokens are."""

    ids: list[int]
    start: int  # first response token
    end: int  # one past the last response token
    offsets: list[tuple[int, int]] | None = None
    text: str = ""


@dataclass
class ResponseActivations:
    """Response-token activations of a dataset, kept once so an SAE can be fitted and applied without a
    second forward pass.

    Attributes:
        acts: ``[n_tokens, d]`` float32, all response tokens one response after another.
        offsets: ``[n_responses + 1]`` int64; response ``j`` owns ``acts[offsets[j]:offsets[j + 1]]``.
        rows: dataset row of each response; ``sides``: its side (``chosen``/``rejected``).
    """

    acts: torch.Tensor
    offsets: np.ndarray
    rows: np.ndarray
    sides: list[str]

    def of(self, j: int) -> torch.Tensor:
        return self.acts[int(self.offsets[j]) : int(self.offsets[j + 1])]


def _torch_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, aliases.get(name, name), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f"Unknown dtype {dtype!r}: use float32, bfloat16 or float16.")
    return value


def length_buckets(lengths: Sequence[int], batch_tokens: int, max_rows: int) -> list[list[int]]:
    """Split inputs into micro-batches of similar length: sorted by length, then cut where it minimizes the
    padded tokens plus a fixed cost per micro-batch (``batch_tokens / 64`` tokens), each micro-batch holding
    at most ``batch_tokens`` padded tokens (a longer input goes alone) and ``max_rows`` inputs.

    Example:

        >>> length_buckets([5, 100, 6, 98, 7], batch_tokens=1024, max_rows=8)
        [[0, 2, 4], [3, 1]]
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    lens = [max(1, int(lengths[j])) for j in order]
    per_batch = batch_tokens / 64
    best = [0.0] + [float("inf")] * len(lens)  # best[j]: cost of the first j sorted inputs
    cut = [0] * (len(lens) + 1)
    for j in range(1, len(lens) + 1):
        for i in range(j - 1, max(-1, j - 1 - max(1, max_rows)), -1):  # inputs i..j-1, the longest is j-1
            if j - i > 1 and (j - i) * lens[j - 1] > batch_tokens:
                break
            cost = best[i] + (j - i) * lens[j - 1] + per_batch
            if cost < best[j]:
                best[j], cut[j] = cost, i
    batches, j = [], len(lens)
    while j > 0:
        batches.append([int(x) for x in order[cut[j] : j]])
        j = cut[j]
    return batches[::-1]


class ActivationReader:
    """The reading half of an SAE annotator: needs ``model_``, ``tokenizer_``, ``backend``, ``layer``,
    ``device``, ``max_length``, ``batch_tokens``, ``max_batch_rows``, ``share_prompt``, ``text_columns`` and
    ``stats_`` on the instance (set by :meth:`SAEConcepts._setup`)."""

    # -- tokenization ----------------------------------------------------------------------------------
    def _messages(self, batch: dict, i: int) -> list[dict]:
        msgs = batch.get(C.PROMPT_MESSAGES)
        if msgs is not None and isinstance(msgs[i], list) and msgs[i]:
            return [{"role": str(m.get("role") or "user"), "content": str(m.get("content") or "")} for m in msgs[i]]
        prompts = batch.get(C.PROMPT)
        if prompts is not None and isinstance(prompts[i], str) and prompts[i]:
            return [{"role": "user", "content": prompts[i]}]
        return []

    def _render(self, messages: list[dict], response: str) -> tuple[str, int, int]:
        """Text of prompt + response and the character span of the response in it."""
        tok = self.tokenizer_
        if getattr(tok, "chat_template", None):
            full = tok.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
            prefix = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) if messages else ""
            if full.startswith(prefix) and full[len(prefix) :].startswith(response):
                return full, len(prefix), len(prefix) + len(response)
            pos = full.rfind(response)
            if pos >= 0 and response:
                return full, pos, pos + len(response)
            text = prefix + response
            return text, len(prefix), len(text)
        prefix = "\n\n".join(m["content"] for m in messages)
        prefix = prefix + "\n\n" if prefix else ""
        return prefix + response, len(prefix), len(prefix) + len(response)

    def _tokenize(self, pairs: list[tuple[list[dict], str]], keep_offsets: bool = False) -> list[_Item]:
        if not pairs:
            return []
        rendered = [self._render(m, r) for m, r in pairs]
        has_template = bool(getattr(self.tokenizer_, "chat_template", None))
        enc = self.tokenizer_(
            [t for t, _, _ in rendered], add_special_tokens=not has_template, return_offsets_mapping=True
        )
        items = []
        for (text, cs, ce), ids, offs in zip(rendered, enc["input_ids"], enc["offset_mapping"]):
            resp = [j for j, (a, b) in enumerate(offs) if b > a and b > cs and a < ce]
            start, end = (resp[0], resp[-1] + 1) if resp else (len(ids), len(ids))
            ids = list(ids)
            offs = [tuple(o) for o in offs]
            if len(ids) > self.max_length:
                cut = min(len(ids) - self.max_length, start)
                if cut < len(ids) - self.max_length:
                    self.stats_["truncated_response"] += 1
                self.stats_["truncated"] += 1
                ids, offs = ids[cut : cut + self.max_length], offs[cut : cut + self.max_length]
                start, end = start - cut, min(end - cut, len(ids))
            items.append(_Item(ids, start, end, offs if keep_offsets else None, text if keep_offsets else ""))
        return items

    # -- forward ---------------------------------------------------------------------------------------
    def _micro_batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Length-bucketed micro-batches of the inputs of one call: see :func:`length_buckets`."""
        yield from length_buckets(lengths, int(self.batch_tokens), int(self.max_batch_rows))

    @torch.inference_mode()
    def _residuals(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual stream after block ``layer`` for right-padded ``ids``: ``([B, T, d], [B, T] mask)``."""
        from ..models import decoder_layers

        T = max(len(x) for x in ids)
        pad = self.tokenizer_.pad_token_id if self.tokenizer_.pad_token_id is not None else 0
        input_ids = torch.full((len(ids), T), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), T), dtype=torch.long)
        for b, x in enumerate(ids):
            input_ids[b, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[b, : len(x)] = 1
        captured: list[torch.Tensor] = []

        def hook(module, args, output):
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _StopForward

        handle = decoder_layers(self.model_)[self.layer - 1].register_forward_hook(hook)
        try:
            self.model_(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ModelError(f"The hook on layer {self.layer} never ran: is this model's forward standard?")
        self.stats_["micro_batches"] += 1
        self.stats_["tokens"] += int(mask.sum())
        self.stats_["padded_tokens"] += int(mask.numel())
        return captured[0], mask

    @torch.inference_mode()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer_(
            texts, padding=True, truncation=True, max_length=min(self.max_length, 512), return_tensors="pt"
        ).to(self.device)
        hidden = self.model_(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        self.stats_["micro_batches"] += 1
        self.stats_["tokens"] += int(enc["attention_mask"].sum())
        self.stats_["padded_tokens"] += int(enc["attention_mask"].numel())
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def _response_activations(
        self, pairs: list[tuple[list[dict], str]], items: list[_Item] | None = None
    ) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
        """Yield ``(positions, activations)`` per micro-batch: the ``[n_tokens, d]`` response-token
        activations (one row per response for the embedding backend) of ``pairs[positions[j]]``. Each input
        is forwarded up to its response's last token (what follows cannot change it); ``items``: ``pairs``
        already tokenized."""
        if self.backend == "embedding":
            texts = [r for _, r in pairs]
            lengths = [len(t) // 4 + 1 for t in texts]
            for group in self._micro_batches(lengths):
                emb = self._embed([texts[j] for j in group])
                yield group, [emb[i : i + 1] for i in range(len(group))]
            return
        items = self._tokenize(pairs) if items is None else items
        needed = [it.ids[: max(it.end, 1)] for it in items]
        for group in self._micro_batches([len(x) for x in needed]):
            resid, _ = self._residuals([needed[j] for j in group])
            acts = [resid[b, items[j].start : items[j].end] for b, j in enumerate(group)]
            self.stats_["response_tokens"] += sum(len(a) for a in acts)
            yield group, acts

    # -- the map ---------------------------------------------------------------------------------------
    def _targets(self, batch: dict) -> list[tuple[str, int, list[dict], str]]:
        n = len(batch[self.text_columns[0]])
        reasons = batch.get(C.REASON) or [""] * n
        out = []
        for side in self.text_columns:
            for i in range(n):
                text = batch[side][i]
                if reasons[i] or not isinstance(text, str) or not text:
                    continue
                out.append((side, i, self._messages(batch, i) if self.backend == "lm" else [], text))
        return out


def collect_activations(
    dataset, annotator: ActivationReader, *, batch_size: int = 256, max_tokens: int | None = None
) -> ResponseActivations:
    """Run the model once over the usable responses of ``dataset`` and keep their response-token
    activations (float32, CPU).

    Args:
        dataset: a pair dataset.
        annotator: the :class:`SAEConcepts` whose model, layer and backend to use (its SAE is not needed).
        batch_size: rows per batch.
        max_tokens: stop after this many response tokens (the result then covers a prefix of the rows).

    Example:

        >>> ann = SAEConcepts(None, layer=15)                                   # doctest: +SKIP
        >>> acts = collect_activations(make_preference_pairs(50).dataset, ann)  # doctest: +SKIP
    """
    annotator._setup()
    chunks, lengths, rows, sides = [], [], [], []
    total = 0
    cols = [c for c in (*annotator.text_columns, C.PROMPT, C.PROMPT_MESSAGES, C.REASON) if c in dataset.column_names]
    data = dataset.select_columns(cols)
    from .._progress import Progress

    n_resp = len(data) * len(annotator.text_columns)
    progress = Progress(f"Collecting activations ({annotator.backend}, layer {annotator.layer})", n_resp, "responses")
    for start in range(0, len(data), batch_size):
        batch = data[start : start + batch_size]
        targets = annotator._targets(batch)
        got: list = [None] * len(targets)
        for group, acts in annotator._response_activations([(m, r) for _, _, m, r in targets]):
            for j, a in zip(group, acts):
                got[j] = a.detach().to("cpu", torch.float32).clone()
            progress.update(len(group))
        progress.update(len(annotator.text_columns) * len(batch[next(iter(batch))]) - len(targets))  # unusable rows
        for (side, i, _, _), a in zip(targets, got):
            chunks.append(a)
            lengths.append(len(a))
            rows.append(start + i)
            sides.append(side)
            total += len(a)
        if max_tokens is not None and total >= max_tokens:
            break
    d = int(annotator.model_.config.hidden_size)
    acts = torch.cat(chunks) if chunks else torch.zeros((0, d))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return ResponseActivations(acts, offsets, np.asarray(rows, dtype=np.int64), sides)


class _FromActivations:
    """Map function that pools precomputed activations (same output as the annotator's forward)."""

    def __init__(self, annotator: ActivationReader, cached: ResponseActivations):
        self.annotator = annotator
        self.cached = cached
        self.where = {(int(r), s): j for j, (r, s) in enumerate(zip(cached.rows, cached.sides))}

    def __call__(self, batch: dict, indices: list[int]) -> dict:
        ann = self.annotator
        src = ann.source_
        out = {c: [[] for _ in indices] for c in ann.output_columns}
        reasons = batch.get(C.REASON) or [""] * len(indices)
        want = []
        for side in ann.text_columns:
            for i, row in enumerate(indices):
                j = self.where.get((int(row), side))
                if j is not None and not reasons[i]:
                    want.append((side, i, j))
        for start in range(0, len(want), 64):
            part = want[start : start + 64]
            for (side, i, _), (idx, val) in zip(part, ann.pool([self.cached.of(j) for _, _, j in part])):
                out[C.sae_index_column(side, src)][i] = idx.tolist()
                out[C.sae_value_column(side, src)][i] = val.tolist()
        return out

    def __getstate__(self):  # hashed by `datasets` only when no new_fingerprint is given
        return {"annotator": self.annotator.identity(), "n": len(self.cached.rows)}
