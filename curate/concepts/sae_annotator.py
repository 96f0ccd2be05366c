"""The SAE annotator: :class:`SAEConcepts`, a batched ``datasets.map`` callable that writes the SAE features of
each response as sparse top-k columns, and its identity (the source id in column names, the fingerprint,
what travels when it is pickled).

How it reads (the residual stream of a causal LM, or a sentence embedding) is
:class:`~curate.concepts.activations.ActivationReader`'s; where the SAE comes from is
:mod:`curate.concepts.sae_source`'s; fitting an SAE on the data first is :mod:`curate.concepts.sae_fit`'s.

Example:

    >>> from curate.concepts.sae_annotator import SAEConcepts, default_source
    >>> default_source(layer=12), default_source(backend="embedding")
    ('smollm2-l12', 'minilm')
    >>> SAEConcepts(None, layer=12, k=8).output_columns[:2]
    ['chosen__sae:smollm2-l12__idx', 'chosen__sae:smollm2-l12__val']
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import _columns as C
from ..errors import ColumnError, ConfigError, ModelError
from .activations import ActivationReader, _torch_dtype
from .sae_config import SAEConfig
from .sae_source import FIT, is_sae, load_sae, sae_content_hash, sae_metadata

__all__ = ["SAEConcepts", "default_source", "POOLINGS", "BACKENDS"]

logger = logging.getLogger("curate")


def _code_version() -> str:
    """The annotation code's identity (this module, the activation reading, the shared-prefix forward and the
    SAE loading/fitting): cached activations, fits and columns made by other code are not reused. Replaces
    a hand-bumped version number."""
    from ..cache import module_hash
    from . import _shared_prefix, activations, sae_source

    return module_hash(sys.modules[__name__], activations, sae_source, _shared_prefix)


POOLINGS = ("max", "mean", "frac")
BACKENDS = ("lm", "embedding")

# in-memory SAEs by content hash, so a pickled annotator (fingerprint / worker processes) stays small
_LIVE_SAES: dict[str, object] = {}


def _short_model_name(model: str | None) -> str:
    if model is None:
        return "smollm2"
    name = str(model).rstrip("/").split("/")[-1].lower()
    return re.sub(r"-?instruct$", "", name) or "model"


def _sanitize(source: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(source)).strip("-")
    s = re.sub(r"_{2,}", "_", s)
    return s or "sae"


def default_source(model: str | None = None, layer: int = 15, sae=FIT, backend: str = "lm") -> str:
    """The short id used in column names: ``smollm2-l15`` for a fit on the default model, ``minilm`` for
    the embedding backend, ``<model>-l<layer>-<sae name>`` for a given SAE."""
    if backend == "embedding":
        base = "minilm" if model is None else _short_model_name(model)
    else:
        base = f"{_short_model_name(model)}-l{layer}"
    if isinstance(sae, str) and sae != FIT:
        base += "-" + (Path(sae).name if Path(sae).exists() else sae.replace("/", "-"))
    elif is_sae(sae):
        base += "-" + sae_content_hash(sae)[:8]
    return _sanitize(base)


class SAEConcepts(ActivationReader):
    """A batched ``datasets.map`` callable writing SAE features of each response as sparse top-k columns.

    ``function(batch: dict[str, list]) -> dict[str, list]``: reads ``chosen``, ``rejected``,
    ``prompt_messages`` (or ``prompt``) and ``reason``; returns ``<side>__sae:<source>__idx`` (int32 lists)
    and ``<side>__sae:<source>__val`` (float32 lists). Declare the output schema with
    ``features=ann.features(ds.features)``.

    Within each batch, responses are sorted by length and run in micro-batches of similar lengths (right
    padding, attention mask), then put back in order. Inputs longer than ``max_length`` lose tokens from
    the left of the prompt (counted in ``stats_["truncated"]`` and logged).

    Args:
        sae: a sae-lens SAE, a local sae-lens folder, or ``"RELEASE/SAE_ID"`` (sae-lens pretrained).
        model: a Hub id or folder of a causal LM; ``None`` = SmolLM2-135M-Instruct (offline GGUF). For
            ``backend="embedding"``: a sentence encoder, ``None`` = all-MiniLM-L6-v2.
        layer: read the residual stream after this many decoder blocks (``1..n_layers``; TransformerLens
            ``blocks.{layer-1}.hook_resid_post``).
        pooling: ``"max"``, ``"mean"`` or ``"frac"`` over response tokens.
        k: features kept per response (the strongest ``k`` with a positive pooled value).
        source: short id in column names; derived from model, layer and SAE when None.
        backend: ``"lm"`` (residual stream of a causal LM) or ``"embedding"`` (sentence embeddings).
        device: torch device (``"cuda"`` works; no GPU needed).
        dtype: model dtype (``torch.bfloat16`` on CUDA); the SAE runs in its own dtype.
        max_length: most tokens per input.
        batch_tokens: most (padded) tokens per micro-batch; inputs are sorted by length within each call and
            cut into micro-batches that waste little padding (on a GPU, raise it: 16384 or more).
        max_batch_rows: most sequences per micro-batch.
        text_columns: the response columns.
        share_prompt: forward each prompt once, its responses after it in the same sequence, wherever that
            costs less than a prompt copy per response (same activations within float rounding; see
            :mod:`curate.concepts._shared_prefix`). What was chosen is counted in ``stats_`` and
            :meth:`to_dict`.

    Attributes (after the first call):
        model_, tokenizer_, model_id_, sae_; ``stats_`` counts responses, micro-batches, tokens, padding
        and truncations.

    Example:

        >>> ann = SAEConcepts("artifacts/sae-smollm2-l15", layer=15, source="smollm2-l15")  # doctest: +SKIP
        >>> ds = ds.map(ann, batched=True, batch_size=256, features=ann.features(ds.features))  # doctest: +SKIP
    """

    def __init__(
        self,
        sae,
        *,
        model: str | None = None,
        layer: int = 15,
        pooling: str = "max",
        k: int = 32,
        source: str | None = None,
        backend: str = "lm",
        device: str = "cpu",
        dtype=None,
        max_length: int = 1024,
        batch_tokens: int = 4096,
        max_batch_rows: int = 32,
        text_columns: Sequence[str] = C.SIDES,
        share_prompt: bool = True,
    ):
        self.sae = sae
        self.model = model
        self.layer = layer
        self.pooling = pooling
        self.k = k
        self.source = source
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.max_batch_rows = max_batch_rows
        self.text_columns = tuple(text_columns)
        self.share_prompt = share_prompt

    @property
    def config(self) -> SAEConfig:
        """The annotator's :class:`SAEConfig` (everything it was built from but the SAE)."""
        return SAEConfig.from_dict({f.name: getattr(self, f.name) for f in fields(SAEConfig)})

    @classmethod
    def from_config(cls, sae, config: SAEConfig | dict) -> "SAEConcepts":
        """An annotator of ``sae`` built from a :class:`SAEConfig` (or its ``to_dict()``)."""
        config = config if isinstance(config, SAEConfig) else SAEConfig.from_dict(config)
        return cls(sae, **{f.name: getattr(config, f.name) for f in fields(SAEConfig)})

    # -- identity --------------------------------------------------------------------------------------
    @property
    def source_(self) -> str:
        return _sanitize(self.source) if self.source else default_source(self.model, self.layer, self.sae, self.backend)

    def _sae_identity(self) -> str:
        if is_sae(self.sae):
            cached = getattr(self, "_sae_hash", None)
            if cached is None or cached[0] is not self.sae:
                cached = (self.sae, "sha256:" + sae_content_hash(self.sae))
                self._sae_hash = cached
            return cached[1]
        if isinstance(self.sae, (str, Path)) and Path(self.sae).exists():
            h = hashlib.sha256()
            for f in sorted(Path(self.sae).glob("*")):
                if f.is_file() and f.suffix in (".json", ".safetensors"):
                    h.update(f.name.encode())
                    h.update(f.read_bytes())
            return "folder-sha256:" + h.hexdigest()[:16]
        return str(self.sae)

    def _model_identity(self) -> str:
        if self.model is not None:
            return str(self.model)
        if self.backend == "embedding":
            from ..models import DEFAULT_EMBEDDER

            return f"{DEFAULT_EMBEDDER}@package"
        from ..models import DEFAULT_MODEL, default_model_file

        return f"{DEFAULT_MODEL}@gguf:{default_model_file().name}"

    def identity(self) -> dict:
        """What the output depends on: model, layer, SAE, pooling, k, truncation and code version."""
        return {
            "annotator": "sae",
            "version": _code_version(),
            "backend": self.backend,
            "model": self._model_identity(),
            "layer": int(self.layer) if self.backend == "lm" else None,
            "sae": self._sae_identity(),
            "pooling": self.pooling,
            "k": int(self.k),
            "source": self.source_,
            "dtype": str(_torch_dtype(self.dtype)).replace("torch.", ""),
            "max_length": int(self.max_length),
            "text_columns": list(self.text_columns),
        }

    def fingerprint(self) -> str:
        """A short deterministic hash of :meth:`identity` (never of the weights in memory)."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def __getstate__(self) -> dict:
        # Only the configuration travels: `datasets` hashes this (fast, deterministic) and worker processes
        # rebuild the model from it. An in-memory SAE is referenced by its content hash.
        state = {k: v for k, v in self.__dict__.items() if not k.endswith("_") and not k.startswith("_")}
        if is_sae(self.sae):
            key = self._sae_identity()
            _LIVE_SAES[key] = self.sae
            state["sae"] = _SAERef(key)
        state["dtype"] = str(_torch_dtype(self.dtype)).replace("torch.", "")
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("sae"), _SAERef):
            key = state["sae"].key
            if key not in _LIVE_SAES:
                raise ModelError(
                    f"The in-memory SAE {key} is not available in this process: save it with "
                    "`sae.save_model(path)` and pass the path instead."
                )
            state = {**state, "sae": _LIVE_SAES[key]}
        self.__dict__.update(state)

    # -- schema ----------------------------------------------------------------------------------------
    @property
    def output_columns(self) -> list[str]:
        src = self.source_
        return [c for side in self.text_columns for c in (C.sae_index_column(side, src), C.sae_value_column(side, src))]

    def features(self, input_features=None):
        """The `datasets.Features` of the output: the input features plus the int32/float32 list columns."""
        from datasets import Features, Value

        try:
            from datasets import List
        except ImportError:  # datasets < 4
            from datasets import Sequence as List
        feats = dict(input_features or {})
        src = self.source_
        for side in self.text_columns:
            feats[C.sae_index_column(side, src)] = List(Value("int32"))
            feats[C.sae_value_column(side, src)] = List(Value("float32"))
        return Features(feats)

    # -- setup -----------------------------------------------------------------------------------------
    def _setup(self) -> None:
        if getattr(self, "sae_", None) is not None:
            return
        if self.pooling not in POOLINGS:
            raise ConfigError(f"Unknown pooling {self.pooling!r}. Choose one of {list(POOLINGS)}.")
        if self.backend not in BACKENDS:
            raise ConfigError(f"Unknown backend {self.backend!r}. Choose one of {list(BACKENDS)}.")
        if int(self.k) < 1:
            raise ConfigError(f"k must be at least 1, got {self.k}.")
        self.stats_ = {
            "responses": 0,
            "micro_batches": 0,
            "tokens": 0,
            "padded_tokens": 0,
            "response_tokens": 0,
            "truncated": 0,
            "truncated_response": 0,
            "shared_prompts": 0,
            "unshared_responses": 0,
            "plain_calls": 0,
        }
        dtype = _torch_dtype(self.dtype)
        if self.backend == "embedding":
            from ..models import load_embedder

            self.model_, self.tokenizer_, self.model_id_ = load_embedder(self.model, device=self.device)
        else:
            from ..models import decoder_layers, load_model

            self.model_, self.tokenizer_, self.model_id_ = load_model(self.model, device=self.device, dtype=dtype)
            n_layers = len(decoder_layers(self.model_))
            if not isinstance(self.layer, int) or not 1 <= self.layer <= n_layers:
                raise ModelError(
                    f"Unknown layer {self.layer!r} for {self.model_id_}: it has {n_layers} decoder layers, so "
                    f"layer must be an integer in 1..{n_layers} (the residual stream after that many blocks)."
                )
        d_model = int(self.model_.config.hidden_size)
        self.sae_ = self._load_sae() if self.sae is not None else None
        if self.sae_ is not None:
            d_in = int(self.sae_.cfg.d_in)
            if d_in != d_model:
                meta = sae_metadata(self.sae_)
                made_for = ", ".join(
                    f"{k}={meta[k]!r}"
                    for k in ("model_name", "hook_name", "curate_model", "curate_layer")
                    if meta.get(k) is not None
                )
                raise ModelError(
                    f"SAE/model dimension mismatch: the SAE expects d_in={d_in} but {self.model_id_} has hidden "
                    f"size {d_model}. Use the model the SAE was trained on"
                    + (f" ({made_for})" if made_for else "")
                    + ", pick an SAE trained on this model, or fit one on your data with sae='fit' (`--sae fit`)."
                )
            meta = sae_metadata(self.sae_)
            if self.backend == "lm" and meta.get("curate_layer") not in (None, self.layer):
                logger.warning(
                    "This SAE was fitted on layer %s but is applied to layer %s.", meta["curate_layer"], self.layer
                )

    def _load_sae(self):
        sae = load_sae(self.sae, device=self.device)
        sae.eval()
        return sae

    # -- encoding and pooling ------------------------------------------------------------------------
    @torch.inference_mode()
    def _encode(self, acts: torch.Tensor) -> torch.Tensor:
        sae = self.sae_
        out = [
            sae.encode(chunk.to(sae.W_dec.device if hasattr(sae, "W_dec") else self.device))
            for chunk in acts.split(4096)
        ]
        return torch.cat(out).float() if out else torch.zeros((0, int(sae.cfg.d_sae)))

    @torch.inference_mode()
    def pool(self, acts: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Encode each response's ``[n_tokens, d]`` activations with the SAE, pool over its tokens and keep
        the top ``k``. Returns ``(indices int32, values float32)`` per response, strongest first."""
        self._setup()
        lens = [len(a) for a in acts]
        empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
        if sum(lens) == 0:
            return [empty for _ in acts]
        feats = self._encode(torch.cat([a for a in acts if len(a)]))
        seg = torch.repeat_interleave(torch.arange(len(acts)), torch.tensor(lens)).to(feats.device)
        d_sae = feats.shape[1]
        if self.pooling == "max":
            pooled = torch.zeros((len(acts), d_sae), device=feats.device).scatter_reduce_(
                0, seg.unsqueeze(1).expand_as(feats), feats, "amax", include_self=True
            )
        else:
            src = feats if self.pooling == "mean" else (feats > 0).float()
            pooled = torch.zeros((len(acts), d_sae), device=feats.device).index_add_(0, seg, src)
            pooled = pooled / torch.tensor(lens, device=feats.device).clamp(min=1).unsqueeze(1)
        vals, idx = torch.topk(pooled, min(int(self.k), d_sae), dim=1)
        vals, idx = vals.cpu().numpy(), idx.cpu().numpy()
        out = []
        for j, n in enumerate(lens):
            keep = vals[j] > 0 if n else np.zeros(len(vals[j]), bool)
            out.append((idx[j][keep].astype(np.int32), vals[j][keep].astype(np.float32)))
        return out

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        missing = [c for c in self.text_columns if c not in batch]
        if missing:
            raise ColumnError(f"Columns {missing} not in the batch. Columns in the batch: {sorted(batch)}.")
        self._setup()
        if self.sae_ is None:
            raise ModelError(
                "SAEConcepts has no SAE: pass sae=<folder | 'RELEASE/ID' | SAE> or use annotate_sae(sae='fit')."
            )
        n = len(batch[self.text_columns[0]])
        src = self.source_
        out = {c: [[] for _ in range(n)] for c in self.output_columns}
        targets = self._targets(batch)
        before = self.stats_["truncated"]
        pairs = [(m, r) for _, _, m, r in targets]
        if self.backend == "lm" and getattr(self, "share_prompt", True):
            from ._shared_prefix import shared_prefix_activations

            activations = shared_prefix_activations(self, pairs)
        else:
            activations = self._response_activations(pairs)
        for group, acts in activations:
            for j, (idx, val) in zip(group, self.pool(acts)):
                side, i = targets[j][0], targets[j][1]
                out[C.sae_index_column(side, src)][i] = idx.tolist()
                out[C.sae_value_column(side, src)][i] = val.tolist()
        self.stats_["responses"] += len(targets)
        if self.stats_["truncated"] > before:
            logger.warning(
                "%d of %d inputs in this batch were longer than max_length=%d; their prompts were "
                "truncated from the left (%d so far).",
                self.stats_["truncated"] - before,
                len(targets),
                self.max_length,
                self.stats_["truncated"],
            )
        return out

    # -- token-level reading (labels, the Space) ---------------------------------------------------------
    @torch.inference_mode()
    def token_activations(
        self, pairs: list[tuple[list[dict], str]], features: Sequence[int] | None = None
    ) -> list[tuple[list[str], np.ndarray]]:
        """Per-token SAE activations of responses, for reading features.

        Args:
            pairs: ``(prompt_messages, response)`` tuples.
            features: feature indices to return (all ``d_sae`` when None).

        Returns:
            One ``(tokens, acts)`` per pair: the response's token strings and a ``[n_tokens, n_features]``
            float32 array. The embedding backend returns one pseudo-token (the whole response).
        """
        self._setup()
        cols = None if features is None else torch.as_tensor(list(features), dtype=torch.long)
        results: list = [None] * len(pairs)
        if self.backend == "embedding":
            for group, acts in self._response_activations(pairs):
                for j, a in zip(group, acts):
                    f = self._encode(a)
                    results[j] = ([pairs[j][1]], (f if cols is None else f[:, cols]).numpy())
            return results
        items = self._tokenize(pairs, keep_offsets=True)
        for group in self._micro_batches([len(it.ids) for it in items]):
            resid, _ = self._residuals([items[j].ids for j in group])
            for b, j in enumerate(group):
                it = items[j]
                f = self._encode(resid[b, it.start : it.end]).cpu()
                toks, last = [], 0
                for a, e in it.offsets[it.start : it.end]:  # a multi-token character goes to its first token
                    toks.append(it.text[max(a, last) : e] if e > last else "")
                    last = max(last, e)
                results[j] = (toks, (f if cols is None else f[:, cols]).numpy())
        return results

    def to_dict(self) -> dict:
        """Settings of this annotator (for cards and reports), with what the prompt sharing chose so far."""
        out = self.identity()
        stats = getattr(self, "stats_", None)
        if self.backend == "lm":
            out["prompt_sharing"] = {"share_prompt": bool(self.share_prompt)}
            if stats:
                out["prompt_sharing"].update(
                    shared_prompts=int(stats["shared_prompts"]),
                    plain_responses=int(stats["unshared_responses"]),
                    plain_calls=int(stats["plain_calls"]),
                    padding_waste=round(1 - stats["tokens"] / max(stats["padded_tokens"], 1), 4),
                )
        sae = getattr(self, "sae_", None)
        if sae is not None:
            out.update({"d_sae": int(sae.cfg.d_sae), "d_in": int(sae.cfg.d_in)})
            fit = sae_metadata(sae).get("curate_fit")
            if fit:
                out["fit"] = fit
        return out

    def __repr__(self) -> str:
        sae = self.sae if isinstance(self.sae, str) or self.sae is None else type(self.sae).__name__
        return (
            f"SAEConcepts(sae={sae!r}, model={self.model!r}, layer={self.layer}, pooling={self.pooling!r}, "
            f"k={self.k}, backend={self.backend!r})"
        )


@dataclass(frozen=True)
class _SAERef:
    key: str
