"""Fit then annotate: an SAE fitted on the data's own response-token activations, then the columns.

:func:`fit_or_load_sae` runs the model once over the data (up to ``max_cache_tokens`` response tokens),
fits a TopK SAE on those activations (:func:`~curate.concepts.sae_source.fit_sae`, with the backend's
defaults under :class:`FitSettings`'s ``fit_kwargs``) or loads the one fitted earlier with the same key
from ``cache_dir``. :func:`annotate_local` is ``annotate_sae(engine="local")``: fit when ``sae="fit"``,
then the columns by ``Dataset.map`` — from the kept activations when they cover every usable response,
else by a forward pass. The Ray engine fits the same way on the driver (:mod:`curate.concepts.sae_ray`).

Example:

    >>> FitSettings(fit_kwargs={"epochs": 1}).fit_sae_kwargs("embedding")["epochs"]
    1
    >>> sorted(FIT_DEFAULTS)
    ['embedding', 'lm']
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _columns as C
from ..errors import ConfigError, FormatError
from .activations import ResponseActivations, _FromActivations, collect_activations
from .sae_annotator import SAEConcepts, _code_version, default_source
from .sae_config import SAEConfig
from .sae_source import FIT, fit_sae, load_sae

__all__ = ["FIT_DEFAULTS", "FitSettings", "fit_metadata", "fit_or_load_sae", "annotate_local"]

logger = logging.getLogger("curate")

#: :func:`~curate.concepts.sae_source.fit_sae`'s arguments per backend, under the user's ``fit_kwargs``
FIT_DEFAULTS = {
    "lm": {"d_sae": 2048, "k": 32, "epochs": 3, "resample_rounds": 3},
    "embedding": {"d_sae": 256, "k": 8, "epochs": 30, "batch_size": 256, "lr": 3e-3},
}


@dataclass(frozen=True)
class FitSettings:
    """How ``sae="fit"`` fits (see :func:`~curate.concepts.sae.annotate_sae` for each field).

    Args:
        fit_kwargs: :func:`~curate.concepts.sae_source.fit_sae` arguments over :data:`FIT_DEFAULTS`.
        cache_dir: where a fitted SAE is kept (keyed by data, model, layer and fit settings) for reuse.
        max_cache_tokens: most response tokens read (and kept in memory) for a fit.
    """

    fit_kwargs: dict | None = None
    cache_dir: str | Path | None = None
    max_cache_tokens: int = 500_000

    def fit_sae_kwargs(self, backend: str) -> dict:
        """The backend's defaults with ``fit_kwargs`` over them."""
        if backend not in FIT_DEFAULTS:
            raise ConfigError(f"Unknown backend {backend!r}. Choose one of {list(FIT_DEFAULTS)}.")
        return {**FIT_DEFAULTS[backend], **(self.fit_kwargs or {})}


def fit_metadata(probe: SAEConcepts) -> dict:
    """What a fitted SAE records about where its activations came from (model, layer, backend, hook)."""
    lm = probe.backend == "lm"
    return {
        "curate_model": probe.model_id_,
        "curate_layer": probe.layer if lm else None,
        "curate_backend": probe.backend,
        "model_name": probe.model_id_,
        "hook_name": f"blocks.{probe.layer - 1}.hook_resid_post" if lm else "sentence_embedding",
    }


def _fit_key(dataset, model_identity: str, layer: int, backend: str, fit_kwargs: dict) -> str:
    fp = getattr(dataset, "_fingerprint", None) or str(len(dataset))
    blob = json.dumps(
        {
            "data": fp,
            "model": model_identity,
            "layer": layer,
            "backend": backend,
            "fit": fit_kwargs,
            "version": _code_version(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fit_or_load_sae(
    dataset, probe: SAEConcepts, fit: FitSettings, *, batch_size: int = 256, record_sample: bool = False
) -> tuple[object, ResponseActivations | None]:
    """Fit an SAE on the response-token activations that ``probe`` reads from ``dataset`` (the first
    ``fit.max_cache_tokens``), or load the one fitted earlier with the same key from ``fit.cache_dir``.

    Args:
        dataset: a pair `datasets.Dataset`.
        probe: an :class:`SAEConcepts` without an SAE: its model, layer, backend and device read and fit.
        fit: the fit's settings.
        batch_size: rows per batch of the activation pass.
        record_sample: also record in the SAE's metadata how many tokens it was fitted on
            (``curate_fit_sample_tokens``).

    Returns:
        ``(sae, activations)``; the activations are None when the SAE was loaded from ``cache_dir``.
    """
    fkw = fit.fit_sae_kwargs(probe.backend)
    path = (
        Path(fit.cache_dir) / f"sae-{_fit_key(dataset, probe._model_identity(), probe.layer, probe.backend, fkw)}"
        if fit.cache_dir
        else None
    )
    from ..cache import read_entry, write_entry

    if path is not None and read_entry(path)[0] is not None:  # a damaged entry is removed and fitted again
        logger.info("Reusing the SAE fitted earlier at %s", path)
        return load_sae(path, device=probe.device), None
    cached = collect_activations(dataset, probe, batch_size=batch_size, max_tokens=fit.max_cache_tokens)
    if len(cached.acts) == 0:
        raise FormatError("No usable responses to fit an SAE on (every row is invalid or empty).")
    meta = fit_metadata(probe)
    if record_sample:
        meta["curate_fit_sample_tokens"] = int(len(cached.acts))
    sae = fit_sae(cached.acts, device=probe.device, metadata=meta, **fkw)
    if path is not None:
        write_entry(path, lambda tmp: sae.save_model(str(tmp)) and None)
    return sae, cached


def _covers_every_response(dataset, cached: ResponseActivations) -> bool:
    reasons = dataset[C.REASON] if C.REASON in dataset.column_names else [""] * len(dataset)
    return len(np.unique(cached.rows)) >= sum(1 for r in reasons if not r)


def annotate_local(
    dataset, sae, settings: dict, fit: FitSettings, *, batch_size: int = 256, desc: str = "SAE concepts"
):
    """``annotate_sae(engine="local")``: fit the SAE first when ``sae="fit"``, then ``Dataset.map``.

    Args:
        dataset: a `datasets.Dataset` in curate's pair schema.
        sae: ``"fit"``, a sae-lens folder, ``"RELEASE/SAE_ID"``, or an SAE object.
        settings: :class:`~curate.concepts.sae_config.SAEConfig` fields (``model``, ``layer``, ``pooling``,
            ``k``, ``source``, ``backend``, ``device``, ``dtype``, ``max_length``); ``source`` None: derived
            from the others (:func:`~curate.concepts.sae_annotator.default_source`).
        fit: how ``sae="fit"`` fits.
        batch_size: rows per ``map`` batch.
        desc: the map's progress label.

    Returns:
        ``(annotated dataset, annotator)``.
    """
    config = SAEConfig.from_dict(settings)
    cached = None
    fitted_here = isinstance(sae, str) and sae == FIT
    if fitted_here:
        probe = SAEConcepts.from_config(None, config)
        sae, cached = fit_or_load_sae(dataset, probe, fit, batch_size=batch_size)
        if cached is not None and not _covers_every_response(dataset, cached):
            cached = None  # partial: annotate with a forward pass
    source = config.source or default_source(config.model, config.layer, FIT if fitted_here else sae, config.backend)
    ann = SAEConcepts.from_config(sae, SAEConfig.from_dict({**config.to_dict(), "source": source}))
    ann._setup()
    if cached is not None:
        ann.stats_.update(probe.stats_)
    existing = [c for c in ann.output_columns if c in dataset.column_names]
    if existing:
        dataset = dataset.remove_columns(existing)
    fp = None
    if getattr(dataset, "_fingerprint", None) is not None:
        fp = hashlib.sha256(f"{dataset._fingerprint}|sae|{ann.fingerprint()}".encode()).hexdigest()[:32]
    if cached is not None:
        fn, extra = _FromActivations(ann, cached), {"with_indices": True}
    else:
        fn, extra = ann, {}
    from ..cache import checked_map

    out = checked_map(
        dataset,
        fn,
        batched=True,
        batch_size=batch_size,
        features=ann.features(dataset.features),
        new_fingerprint=fp,
        desc=desc,
        **extra,
    )
    return out, ann
