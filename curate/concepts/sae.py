"""SAE concepts: sparse-autoencoder features of a real transformer, as a cached ``datasets.map`` step.

For every response, :class:`SAEConcepts` runs a causal LM on prompt + response (the tokenizer's chat
template when it has one), reads the residual stream after decoder block ``layer`` with a forward hook,
**stops the forward pass there**, encodes the response tokens with a sae-lens SAE, pools over the
response tokens only (``max``, ``mean`` or ``frac``: the share of response tokens where a feature fires)
and keeps a sparse top-k per response::

    chosen__sae:<source>__idx    list[int32]    feature indices, strongest first
    chosen__sae:<source>__val    list[float32]  their pooled activations
    (and the same for rejected)

Rows whose ``reason`` is non-empty (invalid pairs) get empty lists. The audit reads these columns as
concepts ``sae:<source>:<feature>``.

A second, faster backend (``backend="embedding"``) encodes each whole response with all-MiniLM-L6-v2
and an SAE fitted on those sentence embeddings, writing the same columns.

Example:

    >>> from curate import make_preference_pairs
    >>> from curate.concepts.sae import annotate_sae
    >>> ds = make_preference_pairs(100, seed=0).dataset
    >>> out, ann = annotate_sae(ds, sae="fit", layer=15)  # doctest: +SKIP
    >>> out.column_names[-4:]  # doctest: +SKIP
    ['chosen__sae:smollm2-l15__idx', 'chosen__sae:smollm2-l15__val', 'rejected__sae:smollm2-l15__idx', 'rejected__sae:smollm2-l15__val']

Where each part lives: :mod:`~curate.concepts.sae_annotator` (the annotator, :class:`SAEConcepts`),
:mod:`~curate.concepts.sae_fit` (fit then annotate, the local engine), :mod:`~curate.concepts.sae_ray`
(the same on Ray), :mod:`~curate.concepts.sae_source` (where an SAE comes from) and
:mod:`~curate.concepts.sae_config` (the annotator's configuration); this module holds the entry point
:func:`annotate_sae` and re-exports what callers use.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .activations import ResponseActivations, collect_activations
from .sae_annotator import BACKENDS, POOLINGS, SAEConcepts, default_source
from .sae_config import SAEConfig
from .sae_fit import FitSettings, annotate_local, fit_metadata
from .sae_ray import annotate_sae_ray
from .sae_source import FIT

__all__ = [
    "SAEConfig",
    "SAEConcepts",
    "annotate_sae",
    "collect_activations",
    "ResponseActivations",
    "POOLINGS",
    "BACKENDS",
    "default_source",
    "fit_metadata",
]


def annotate_sae(
    dataset,
    *,
    model: str | None = None,
    layer: int = 15,
    sae=FIT,
    pooling: str = "max",
    k: int = 32,
    source: str | None = None,
    backend: str = "lm",
    batch_size: int = 256,
    fit_kwargs: dict | None = None,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    dtype=None,
    max_length: int = 1024,
    max_cache_tokens: int = 500_000,
    desc: str = "SAE concepts",
    engine: str = "local",
    engine_options: dict | None = None,
):
    """Add sparse SAE feature columns to a pair dataset; fit the SAE on the data first when ``sae="fit"``.

    With ``sae="fit"`` the model runs **once**: the response-token activations are kept (up to
    ``max_cache_tokens``, ~1.2 GB per 500k tokens at d=576), a TopK SAE is fitted on them with sae-lens's
    trainer (:func:`~curate.concepts.sae_source.fit_sae`), and the columns are computed from the kept
    activations. Larger datasets are fitted on their first ``max_cache_tokens`` tokens and annotated by a
    regular forward pass. The map's fingerprint is the annotator's identity (model, layer, SAE content
    hash, pooling, k, version) plus the input's, so a re-run hits the `datasets` cache.

    Args:
        dataset: a `datasets.Dataset` in curate's pair schema.
        model: causal LM id/folder (``None``: offline SmolLM2-135M-Instruct); for ``backend="embedding"``
            a sentence encoder (``None``: all-MiniLM-L6-v2).
        layer: residual-stream layer (``1..n_layers``).
        sae: ``"fit"``, a sae-lens folder, ``"RELEASE/SAE_ID"``, or an SAE object.
        pooling: ``"max"``, ``"mean"`` or ``"frac"``.
        k: features kept per response.
        source: short id for column names (default e.g. ``smollm2-l15``).
        backend: ``"lm"`` or ``"embedding"``.
        batch_size: rows per ``map`` batch.
        fit_kwargs: arguments of :func:`~curate.concepts.sae_source.fit_sae` (``d_sae``, ``k``, ``epochs``, ...).
            Defaults: d_sae 2048, k 32, 3 epochs, 3 dead-latent resampling rounds for ``lm``; d_sae 256,
            k 8, 30 epochs for ``embedding`` (:data:`~curate.concepts.sae_fit.FIT_DEFAULTS`).
        cache_dir: where to keep a fitted SAE (keyed by data, model, layer and fit settings) for reuse.
        device, dtype: where and in which dtype the model runs.
        max_length: most tokens per input (longer prompts are truncated from the left).
        max_cache_tokens: most response tokens kept in memory for a fit.
        engine: ``"local"`` (``Dataset.map``) or ``"ray"`` (Ray Data actors; a fitted SAE is trained once on
            the first ``max_cache_tokens`` tokens and shipped to the workers; see :mod:`curate.concepts.sae_ray`).
        engine_options: for ``engine="ray"``: ``out``, ``address``, ``workers``, ``gpus_per_worker``, ...

    Returns:
        ``(annotated dataset, annotator)``; ``annotator.sae_`` is the SAE used, ``annotator.to_dict()``
        records the settings (and the fit's statistics).

    Example:

        >>> from curate import make_preference_pairs
        >>> out, ann = annotate_sae(make_preference_pairs(60).dataset, backend="embedding")
        >>> ann.source_, len(out[0]["chosen__sae:minilm__idx"]) > 0
        ('minilm', True)
    """
    settings = dict(
        model=model,
        layer=layer,
        pooling=pooling,
        k=k,
        source=source,
        backend=backend,
        device=device,
        dtype=dtype,
        max_length=max_length,
    )
    fit = FitSettings(fit_kwargs=fit_kwargs, cache_dir=cache_dir, max_cache_tokens=max_cache_tokens)
    if engine == "local":
        return annotate_local(dataset, sae, settings, fit, batch_size=batch_size, desc=desc)
    if engine == "ray":
        return annotate_sae_ray(dataset, sae, settings, fit, batch_size=batch_size, **(engine_options or {}))
    raise ConfigError(f"Unknown engine {engine!r}. Choose 'local' or 'ray'.")
