"""Concept directions in a model's residual stream, and hooks that ablate or add them during training.

* Export: :func:`sae_directions` takes the decoder rows of an SAE's features (blocked/amplified SAE
  concepts); :func:`mean_difference_directions` computes, for named concepts, the mean residual
  activation of responses that show the concept minus that of responses that do not. Both give a
  :class:`Directions` (``vectors`` of shape ``[k, d_model]``, concept ids, layer) that
  :meth:`Directions.save` writes to safetensors with its metadata; :func:`load_directions` reads it.
* Use: :func:`ablate` (concept-ablation fine-tuning, ``h ← h − QQᵀh`` with ``Q`` an orthonormal basis of
  the directions) and :func:`steer` (preventative steering, ``h ← h + αv`` with ``v`` the unit
  directions) are context managers that hook a transformers decoder layer and remove the hooks on exit,
  also when an exception escapes.

**Layer convention.** ``layer=L`` is the residual stream after ``L`` decoder blocks, i.e.
``hidden_states[L]`` of ``model(..., output_hidden_states=True)``; the hook sits on the output of block
``L − 1`` (``curate.models.decoder_layers(model)[L - 1]``, registered first so output recorders such as
``output_hidden_states`` see the edited stream), so every later block reads the edited stream.

Example:

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> from curate.directions import Directions, ablate
    >>> torch.manual_seed(0) and None
    >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)).eval()
    >>> d = Directions(torch.randn(2, 16), ["a", "b"], layer=1)
    >>> ids = torch.tensor([[1, 2, 3]])
    >>> with torch.no_grad(), ablate(model, d):
    ...     h = model(ids, output_hidden_states=True).hidden_states[1]
    >>> float((h @ d.basis().T).abs().max()) < 1e-4
    True
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .errors import ConceptError, ConfigError, FormatError, ModelError

__all__ = [
    "Directions",
    "ablate",
    "export_directions",
    "load_directions",
    "mean_difference_directions",
    "sae_directions",
    "steer",
]

DEFAULT_LAYER = 15


@dataclass
class Directions:
    """Concept directions at one layer.

    Args:
        vectors: ``Float[Tensor, "k d_model"]``, one row per concept (any norm).
        concepts: the concept ids, one per row.
        layer: the residual-stream layer (see the module docstring), or None if unknown.
        meta: free-form metadata (model id, SAE source, how they were computed).
    """

    vectors: torch.Tensor
    concepts: list[str]
    layer: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.vectors = torch.as_tensor(self.vectors, dtype=torch.float32).detach().cpu()
        if self.vectors.ndim == 1:
            self.vectors = self.vectors[None]
        if self.vectors.shape[0] != len(self.concepts):
            raise ConfigError(f"{self.vectors.shape[0]} vectors but {len(self.concepts)} concept ids.")

    @property
    def d_model(self) -> int:
        return int(self.vectors.shape[1])

    def unit(self) -> torch.Tensor:
        """Rows scaled to unit norm."""
        return torch.nn.functional.normalize(self.vectors, dim=-1)

    def basis(self) -> torch.Tensor:
        """``Q``ᵀ: an orthonormal basis of the span of the directions, ``[r, d_model]`` (r ≤ k)."""
        q, r = torch.linalg.qr(self.vectors.T.double())
        keep = r.diagonal().abs() > 1e-8 * max(float(r.abs().max()), 1e-30)
        return q[:, keep].T.float()

    def select(self, concepts: Iterable[str]) -> "Directions":
        concepts = list(concepts)
        missing = [c for c in concepts if c not in self.concepts]
        if missing:
            raise ConceptError(f"No directions for {missing}. Directions available: {self.concepts}.")
        idx = [self.concepts.index(c) for c in concepts]
        return Directions(self.vectors[idx], concepts, self.layer, dict(self.meta))

    def save(self, path: str | Path) -> Path:
        """Write ``{"directions": [k, d]}`` to safetensors; concept ids, layer and meta go in its metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(
            {"directions": self.vectors.contiguous()},
            str(path),
            metadata={
                "concepts": json.dumps(self.concepts),
                "layer": json.dumps(self.layer),
                "meta": json.dumps(self.meta),
            },
        )
        return path

    def to_dict(self) -> dict:
        return {
            "concepts": self.concepts,
            "layer": self.layer,
            "d_model": self.d_model,
            "norms": [round(float(n), 4) for n in self.vectors.norm(dim=-1)],
            **self.meta,
        }


def load_directions(path: str | Path) -> Directions:
    """Read a file written by :meth:`Directions.save`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        md = f.metadata() or {}
        vectors = f.get_tensor("directions")
    return Directions(
        vectors,
        json.loads(md.get("concepts", "[]")),
        json.loads(md.get("layer", "null")),
        json.loads(md.get("meta", "{}")),
    )


def sae_directions(
    sae, features: Sequence[int | str], *, layer: int | None = None, source: str | None = None
) -> Directions:
    """Decoder rows ``W_dec[f]`` of SAE features (ints, or concept ids ``sae:<source>:<f>``).

    ``sae`` is a sae-lens SAE (anything with ``W_dec`` of shape ``[d_sae, d_model]``).
    """
    idx, ids = [], []
    for f in features:
        if isinstance(f, str):
            parts = f.split(":")
            if len(parts) != 3 or parts[0] != "sae":
                raise ConfigError(f"{f!r} is not an SAE concept id (expected 'sae:<source>:<feature>').")
            source = source or parts[1]
            idx.append(int(parts[2]))
            ids.append(f)
        else:
            idx.append(int(f))
            ids.append(f"sae:{source or 'sae'}:{int(f)}")
    W = getattr(sae, "W_dec", None)
    if W is None:
        raise ModelError(f"{type(sae).__name__} has no W_dec; expected a sae-lens SAE.")
    bad = [i for i in idx if not 0 <= i < W.shape[0]]
    if bad:
        raise ConfigError(f"Features {bad} are out of range: the SAE has {W.shape[0]} features.")
    return Directions(W.detach()[idx].float().cpu(), ids, layer, {"kind": "sae_decoder", "source": source})


@torch.no_grad()
def mean_difference_directions(
    model,
    tokenizer,
    texts_with: dict[str, list[str]] | None = None,
    *,
    dataset=None,
    concepts: Sequence[str] = (),
    layer: int,
    max_texts: int = 128,
    batch_size: int = 16,
    max_length: int = 128,
) -> Directions:
    """Mean-difference directions: ``mean h(with c) − mean h(without c)`` at ``layer``, mean-pooled over tokens.

    Give either ``texts_with={concept: (texts_with, texts_without)}`` or an annotated ``dataset`` and
    ``concepts``: responses (chosen and rejected) with ``score > 0`` vs ``score == 0``, at most
    ``max_texts`` of each.
    """
    from . import _columns as C

    groups: dict[str, tuple[list[str], list[str]]] = {}
    if texts_with:
        groups.update({c: (list(a), list(b)) for c, (a, b) in texts_with.items()})
    if dataset is not None:
        for c in concepts:
            texts, scores = [], []
            for side in C.SIDES:
                texts += list(dataset[side])
                scores += list(dataset[C.score_column(side, c)])
            s = np.asarray(scores, float)
            pos = [texts[i] for i in np.flatnonzero(s > 0)[:max_texts]]
            neg = [texts[i] for i in np.flatnonzero(s == 0)[:max_texts]]
            groups[c] = (pos, neg)
    vecs, ids = [], []
    for c, (pos, neg) in groups.items():
        if not pos or not neg:
            raise FormatError(f"Concept {c!r}: need texts with and without it (got {len(pos)} and {len(neg)}).")
        vecs.append(
            _mean_activation(model, tokenizer, pos, layer, batch_size, max_length)
            - _mean_activation(model, tokenizer, neg, layer, batch_size, max_length)
        )
        ids.append(c)
    return Directions(
        torch.stack(vecs), ids, layer, {"kind": "mean_difference", "model": getattr(model.config, "_name_or_path", "")}
    )


def export_directions(
    recipe,
    dataset=None,
    *,
    concepts: Sequence[str] | None = None,
    model=None,
    tokenizer=None,
    sae=None,
    layer: int | None = None,
    path: str | Path | None = None,
    max_texts: int = 64,
) -> Directions:
    """The directions of a recipe's concepts, ready for :func:`ablate` / :func:`steer`.

    Args:
        recipe: a :class:`~curate.recipe.Recipe`.
        dataset: the annotated pairs (needed for named concepts: mean differences of responses with and
            without the concept).
        concepts: which ids; default: those whose rule lists ``ablate`` or ``steer``, else every blocked
            and amplified concept.
        model, tokenizer: the transformers model for named concepts (default: ``curate.models.load_model``
            of the named source's ``model``, i.e. SmolLM2-135M-Instruct offline).
        sae: the SAE for ``sae:<source>:<f>`` ids (default: the ``path`` of that source in the recipe),
            anything :func:`curate.concepts.sae_source.load_sae` reads.
        layer: residual-stream layer (default: the source's ``layer``, else 15).
        path: if given, also save to this safetensors file.
    """
    from .recipe import Recipe  # noqa: F401  (type only)

    ids = (
        list(concepts)
        if concepts is not None
        else (
            recipe.with_intervention("ablate") + recipe.with_intervention("steer")
            or recipe.blocked() + recipe.amplified()
        )
    )
    ids = list(dict.fromkeys(ids))
    sae_ids = [c for c in ids if c.startswith("sae:")]
    named = [c for c in ids if not c.startswith("sae:")]
    parts: list[Directions] = []
    for src in sorted({c.split(":")[1] for c in sae_ids}):
        spec = next((s for s in recipe.concepts if s.kind == "sae" and s.source == src), None)
        obj = sae if sae is not None else (spec.path if spec is not None else None)
        if obj is None:
            raise ModelError(f"No SAE for source {src!r}: pass sae=... or set `path` of that source in the recipe.")
        from .concepts.sae_source import load_sae

        lay = (
            layer
            if layer is not None
            else (spec.layer if spec is not None and spec.layer is not None else DEFAULT_LAYER)
        )
        parts.append(
            sae_directions(load_sae(obj), [c for c in sae_ids if c.split(":")[1] == src], layer=lay, source=src)
        )
    if named:
        if dataset is None:
            raise ConfigError(f"Named concepts {named} need the annotated dataset for mean-difference directions.")
        spec = next((s for s in recipe.concepts if s.kind == "named"), None)
        lay = (
            layer
            if layer is not None
            else (spec.layer if spec is not None and spec.layer is not None else DEFAULT_LAYER)
        )
        if model is None:
            from .models import load_model

            model, tokenizer, _ = load_model(spec.model if spec is not None else None)
        parts.append(
            mean_difference_directions(
                model, tokenizer, dataset=dataset, concepts=named, layer=lay, max_texts=max_texts
            )
        )
    if not parts:
        raise ConfigError("No concepts to export directions for.")
    layers = {p.layer for p in parts}
    if len(layers) > 1:
        raise ConfigError(f"Directions come from different layers {sorted(layers)}; export them separately.")
    out = Directions(
        torch.cat([p.vectors for p in parts]),
        sum((p.concepts for p in parts), []),
        parts[0].layer,
        {"parts": [p.meta for p in parts], "recipe": recipe.name},
    )
    if path is not None:
        out.save(path)
    return out


def _mean_activation(model, tokenizer, texts, layer, batch_size, max_length) -> torch.Tensor:
    total, count = None, 0
    device = next(model.parameters()).device
    for s in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[s : s + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_length
        ).to(device)
        h = model(**batch, output_hidden_states=True).hidden_states[layer].float()
        m = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1)
        total = pooled.sum(0) if total is None else total + pooled.sum(0)
        count += pooled.shape[0]
    return (total / count).cpu()


def _layer_module(model, layer: int | None, directions: Directions):
    from .models import decoder_layers

    layer = directions.layer if layer is None else layer
    if layer is None:
        raise ConfigError("No layer: pass layer=... or use directions that record their layer.")
    blocks = decoder_layers(model)
    if not 1 <= layer <= len(blocks):
        raise ConfigError(
            f"layer must be in 1..{len(blocks)} (the residual stream after that many blocks), got {layer}."
        )
    hidden = getattr(model.config, "hidden_size", None)
    if hidden is not None and hidden != directions.d_model:
        raise ModelError(f"Directions have d_model {directions.d_model} but the model's hidden size is {hidden}.")
    return blocks[layer - 1]


def _edit_output(output, fn):
    if isinstance(output, torch.Tensor):
        return fn(output)
    if isinstance(output, tuple):
        return (fn(output[0]), *output[1:])
    if hasattr(output, "last_hidden_state"):  # a ModelOutput
        output.last_hidden_state = fn(output.last_hidden_state)
        return output
    raise ModelError(f"Unexpected decoder layer output type {type(output).__name__}.")


@contextlib.contextmanager
def ablate(model, directions: Directions, layer: int | None = None):
    """Project the directions out of the residual stream at ``layer``: ``h ← h − QQᵀh``.

    Concept-ablation fine-tuning: while the context is active the model cannot carry information along
    these directions past the layer, so training cannot make the reward depend on them. Gradients flow
    through the projection. Hooks are removed on exit.

    Args:
        model: a transformers causal LM (Llama-like, GPT-2, GPT-NeoX, OPT).
        directions: the directions (their ``layer`` is used unless ``layer`` is given).
        layer: residual-stream layer (see the module docstring).
    """
    module = _layer_module(model, layer, directions)
    Qt = directions.basis()

    def fn(h):
        q = Qt.to(h.device, h.dtype)
        return h - (h @ q.T) @ q

    handle = module.register_forward_hook(lambda _m, _i, out: _edit_output(out, fn), prepend=True)
    try:
        yield model
    finally:
        handle.remove()


@contextlib.contextmanager
def steer(model, directions: Directions, alpha: float | Sequence[float] = 4.0, layer: int | None = None):
    """Add the (unit) directions to the residual stream at ``layer``: ``h ← h + Σ αᵢ vᵢ``.

    Preventative steering: supplying the trait from outside during training removes the pressure on the
    weights to learn it. ``alpha`` is one coefficient for all directions or one per direction. Hooks are
    removed on exit.
    """
    module = _layer_module(model, layer, directions)
    a = torch.as_tensor(
        np.broadcast_to(np.asarray(alpha, float), (len(directions.concepts),)).copy(), dtype=torch.float32
    )
    v = (a[:, None] * directions.unit()).sum(0)

    def fn(h):
        return h + v.to(h.device, h.dtype)

    handle = module.register_forward_hook(lambda _m, _i, out: _edit_output(out, fn), prepend=True)
    try:
        yield model
    finally:
        handle.remove()
