"""SAE annotation on Ray: ``annotate_sae(engine="ray")``, the SAE annotator run by :mod:`curate.ray_engine`.

A fitted SAE (``sae="fit"``) is trained **once** on the driver, on the activations of a sample of the data
(the first ``max_cache_tokens`` response tokens), and shipped to the workers as its saved files; a
pretrained SAE (``RELEASE/ID`` or a folder that every worker can read) is loaded by each worker. The
workers rebuild the annotator from its :class:`~curate.concepts.sae_config.SAEConfig` (:class:`_SAEFactory`).

Example:

    >>> from curate import make_preference_pairs
    >>> from curate.concepts.sae import annotate_sae
    >>> ds = make_preference_pairs(50).dataset
    >>> out, ann = annotate_sae(ds, backend="embedding", engine="ray", engine_options={"workers": 2})  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..ray_engine import run_annotator
from .sae_annotator import SAEConcepts, default_source
from .sae_fit import FitSettings, fit_or_load_sae
from .sae_source import FIT, is_sae, load_sae

__all__ = ["annotate_sae_ray", "fit_sae_on_sample"]


class _SAEFactory:
    """Builds an :class:`~curate.concepts.sae_annotator.SAEConcepts` in a worker: the configuration travels,
    and an in-memory SAE travels as its saved files (a string SAE is loaded by each worker)."""

    def __init__(self, sae, config: dict, sae_files: dict[str, bytes] | None):
        self.sae = sae  # a path or release id; None when the SAE travels as files
        self.config = config  # SAEConfig.to_dict()
        self.sae_files = sae_files

    def __call__(self):
        import torch

        config = dict(self.config)
        if config.get("device", "cpu").startswith("cuda") and not torch.cuda.is_available():
            config["device"] = "cpu"
        sae = self.sae
        if self.sae_files is not None:
            folder = Path(tempfile.mkdtemp(prefix="curate-sae-"))
            for name, blob in self.sae_files.items():
                (folder / name).write_bytes(blob)
            sae = load_sae(str(folder), device=config["device"])
        return SAEConcepts.from_config(sae, config)


def _sae_files(sae) -> dict[str, bytes]:
    folder = Path(tempfile.mkdtemp(prefix="curate-sae-ship-"))
    try:
        sae.save_model(str(folder))
        return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _as_dataset(data):
    """A `datasets.Dataset` of pair-schema parquet/jsonl path(s) (a dataset is returned as it is)."""
    if hasattr(data, "select_columns"):
        return data
    from datasets import load_dataset

    paths = [str(p) for p in (data if isinstance(data, (list, tuple)) else [data])]
    kind = "parquet" if all(p.endswith(".parquet") or Path(p).is_dir() for p in paths) else "json"
    return load_dataset(kind, data_files=paths, split="train")


def fit_sae_on_sample(dataset, settings: dict, fit: FitSettings, *, batch_size: int = 256):
    """Fit the SAE once, on the driver, on the response-token activations of the first ``max_cache_tokens``
    tokens of ``dataset`` (the same defaults and cache key as the local engine); the SAE records how many
    tokens it was fitted on (``curate_fit_sample_tokens``).

    The driver fits on its own GPU when it has one (the workers' CUDA device may not exist here), else on
    the CPU in float32.
    """
    import torch

    device = settings["device"]
    fit_device = device if not device.startswith("cuda") or torch.cuda.is_available() else "cpu"
    probe = SAEConcepts(
        None,
        **{k: settings[k] for k in ("model", "layer", "backend", "max_length")},
        device=fit_device,
        dtype=settings["dtype"] if fit_device == device else None,
    )
    sae, _ = fit_or_load_sae(dataset, probe, fit, batch_size=batch_size, record_sample=True)
    return sae


def annotate_sae_ray(dataset, sae, settings: dict, fit: FitSettings, *, batch_size: int = 256, **engine_options):
    """SAE annotation on Ray (what ``curate.annotate_sae(..., engine="ray")`` runs).

    With ``gpus_per_worker > 0`` each actor runs the model on CUDA in bfloat16 (unless ``dtype`` is given).

    Args:
        dataset: a `datasets.Dataset` or pair-schema parquet/jsonl path(s).
        sae, settings, fit, batch_size: as :func:`~curate.concepts.sae_fit.annotate_local`.
        **engine_options: :func:`~curate.ray_engine.run_annotator`'s ``out`` and ``stop_after``, and
            :class:`~curate.ray_engine.RayEngine`'s arguments (``address``, ``workers``, ...).

    Returns:
        ``(annotated dataset, annotator)`` like the local engine.
    """
    settings = dict(settings)
    if float(engine_options.get("gpus_per_worker") or 0) > 0:
        settings["device"] = "cuda"
        settings["dtype"] = settings["dtype"] or "bfloat16"
    fitted_here = isinstance(sae, str) and sae == FIT
    if fitted_here:
        dataset = _as_dataset(dataset)
        sae = fit_sae_on_sample(dataset, settings, fit, batch_size=batch_size)
    if not settings["source"]:
        used = FIT if fitted_here else sae
        settings["source"] = default_source(settings["model"], settings["layer"], used, settings["backend"])
    ann = SAEConcepts(sae, **settings)
    build = _SAEFactory(None if is_sae(sae) else sae, ann.config.to_dict(), _sae_files(sae) if is_sae(sae) else None)
    key = (ann.fingerprint(),)
    ds = run_annotator(ann, dataset, kind="sae", key=key, build=build, batch_size=batch_size, **engine_options)
    return ds, ann
