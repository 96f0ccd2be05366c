"""Per-pair weights for DPO: a small :class:`trl.DPOTrainer` subclass (TRL is imported lazily).

TRL's DPOTrainer has no per-example weight column: extra columns are dropped and the loss is a plain
mean over pairs. :class:`WeightedDPOTrainer` keeps the ``weight`` column (``curate apply`` writes it),
passes it through the collator, leaves it out of the reference log-prob pass, and multiplies each
pair's loss by it — ``L = mean_i( wᵢ · ℓᵢ )``; with weights of mean 1 (what curate writes) this is the
weighted estimate of the DPO loss. ``length_penalty=α`` adds the R-DPO term (Park et al. 2024): the
margin becomes ``β·Δ − α(|y⁺| − |y⁻|)``, so DPO's own drift towards longer answers is penalised. Supported loss types: ``sigmoid`` (the default) and ``robust``; the
f-divergence must be ``reverse_kl`` (the default).

Example (needs ``pip install trl``)::

    from trl import DPOConfig
    from curate.interventions import WeightedDPOTrainer

    dd = datasets.load_from_disk("outputs/curated")
    trainer = WeightedDPOTrainer(model=model, args=DPOConfig(output_dir="out", precompute_ref_log_probs=True),
                                 train_dataset=dd["train"], processing_class=tokenizer)
    trainer.train()
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import _columns as C
from ..errors import ConfigError, require

SUPPORTED_LOSSES = ("sigmoid", "robust")


class WeightedPreferenceCollator:
    """Wrap a preference collator so it also returns the ``weight`` of each example as a float tensor."""

    def __init__(self, inner, column: str = C.WEIGHT):
        self.inner = inner
        self.column = column

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        weights = [ex.get(self.column) for ex in examples]
        out = self.inner([{k: v for k, v in ex.items() if k != self.column} for ex in examples])
        if all(w is not None for w in weights):
            out[self.column] = torch.tensor(weights, dtype=torch.float32)
        return out


class _WeightedF:
    """Stands in for ``torch.nn.functional`` inside one DPO loss call: ``logsigmoid`` is multiplied by
    the batch's pair weights (the sigmoid/robust losses are linear in it) and, with a length penalty, its
    argument (the scaled margin ``β·Δ``) is moved by ``shift = α(|y⁺| − |y⁻|)`` first (R-DPO)."""

    def __init__(self, F, weight=None, shift=None):
        self._F = F
        self._w = weight
        self._shift = shift

    def logsigmoid(self, x, *args, **kwargs):
        per_pair = x.dim() >= 1 and any(t is not None and x.shape[0] == t.shape[0] for t in (self._w, self._shift))
        if per_pair and self._shift is not None:
            x = x - self._shift.to(x.device, x.dtype)
        out = self._F.logsigmoid(x, *args, **kwargs)
        if per_pair and self._w is not None:
            return out * self._w.to(out.device, out.dtype)
        return out

    def __getattr__(self, name):
        return getattr(self._F, name)


def _build():
    require("trl", package="trl")
    from trl import DPOTrainer
    from trl.trainer import dpo_trainer as _dpo_module

    class WeightedDPOTrainer(DPOTrainer):
        """:class:`trl.DPOTrainer` that multiplies each pair's loss by its ``weight`` column.

        Takes DPOTrainer's arguments and ``length_penalty`` (α, default 0): the R-DPO term, so each pair's
        loss is ``−log σ(β[log π/π_ref(y⁺) − log π/π_ref(y⁻)] − α(|y⁺| − |y⁻|))`` with ``|y|`` the number of
        completion tokens (sigmoid loss only). Rows without a ``weight`` column train unweighted.
        """

        weight_column = C.WEIGHT

        def __init__(self, *args, length_penalty: float = 0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.length_penalty = float(length_penalty)
            if self.length_penalty and self.loss_types != ["sigmoid"]:
                raise ConfigError(
                    f"length_penalty (R-DPO) is implemented for loss_type='sigmoid' only; got {self.loss_types}."
                )
            unsupported = [t for t in self.loss_types if t not in SUPPORTED_LOSSES]
            if unsupported or self.f_divergence_type != "reverse_kl":
                raise ConfigError(
                    f"WeightedDPOTrainer supports loss_type in {list(SUPPORTED_LOSSES)} with "
                    f"f_divergence_type='reverse_kl'; got loss_type={self.loss_types}, "
                    f"f_divergence_type={self.f_divergence_type!r}."
                )
            self.data_collator = WeightedPreferenceCollator(self.data_collator, self.weight_column)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if self.weight_column not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, self.weight_column]

        def compute_ref_log_probs(self, model, inputs):
            inputs = {k: v for k, v in inputs.items() if k != self.weight_column}
            return super().compute_ref_log_probs(model, inputs)

        def _compute_loss(self, model, inputs, return_outputs):
            weight = inputs.pop(self.weight_column, None) if isinstance(inputs, dict) else None
            shift = length_shift(inputs, self.length_penalty) if isinstance(inputs, dict) else None
            if weight is None and shift is None:
                return super()._compute_loss(model, inputs, return_outputs)
            with _patched_functional(_dpo_module, weight, shift):
                return super()._compute_loss(model, inputs, return_outputs)

    return WeightedDPOTrainer


def length_shift(inputs: dict, alpha: float):
    """The R-DPO margin shift ``α(|y⁺| − |y⁻|)`` per pair of a DPO batch (``None`` for α = 0).

    TRL stacks a batch as chosen rows then rejected rows; ``|y|`` is the row's number of completion tokens
    (``completion_mask``).

    Example:

        >>> import torch
        >>> cm = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1]])
        >>> length_shift({"completion_mask": cm}, 0.5).tolist()
        [1.0, -1.0]
    """
    if not alpha:
        return None
    mask = inputs["completion_mask"]
    lengths = mask.sum(dim=1).float()
    b = lengths.shape[0] // 2
    return alpha * (lengths[:b] - lengths[b:])


@contextlib.contextmanager
def _patched_functional(module, weight, shift=None):
    original = module.F
    module.F = _WeightedF(original, weight, shift)
    try:
        yield
    finally:
        module.F = original


_CLASS = None


def __getattr__(name):
    global _CLASS
    if name == "WeightedDPOTrainer":
        if _CLASS is None:
            _CLASS = _build()
        return _CLASS
    raise AttributeError(name)
