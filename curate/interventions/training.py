"""Training-time interventions recorded by a recipe: concept ablation, preventative steering, the R-DPO
length penalty.

They do not change the data; ``apply_recipe`` records them so the training script (and the card) know
to wrap training in :func:`curate.directions.ablate` or :func:`curate.directions.steer` with the
directions exported by :func:`curate.directions.export_directions`.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import ConfigError
from .base import Intervention


class Ablate(Intervention):
    """Record: project the concepts' directions out of the residual stream during training
    (concept-ablation fine-tuning, ``h ← h − QQᵀh``; see :func:`curate.directions.ablate`)."""

    name = "ablate"

    def __init__(self, concepts: Iterable[str], layer: int | None = None):
        super().__init__(concepts, 1.0)
        self.layer = layer

    def params(self):
        return {"concepts": self.concepts, "layer": self.layer}

    def _apply(self, state):
        return {"data_changed": False, "how": "with curate.directions.ablate(model, directions): trainer.train()"}


class Steer(Intervention):
    """Record: add the concepts' directions to the residual stream during training (preventative
    steering, ``h ← h + αv``; see :func:`curate.directions.steer`), so the model need not learn them."""

    name = "steer"

    def __init__(self, concepts: Iterable[str], alpha: float = 4.0, layer: int | None = None):
        super().__init__(concepts, 1.0)
        self.alpha = alpha
        self.layer = layer

    def params(self):
        return {"concepts": self.concepts, "alpha": self.alpha, "layer": self.layer}

    def _apply(self, state):
        return {"data_changed": False, "how": "with curate.directions.steer(model, directions, alpha): trainer.train()"}


class LengthPenalty(Intervention):
    """Record: train with the length-regularised DPO loss (R-DPO, Park et al. 2024).

    DPO lengthens answers even when the data has no length preference; no weighting of the data removes
    that. The R-DPO term moves the margin by the length difference,
    ``ℓᵢ = −log σ(β[log π/π_ref(y⁺) − log π/π_ref(y⁻)] − α(|y⁺| − |y⁻|))`` with ``|y|`` in completion tokens,
    so a longer chosen answer must earn its extra length. ``WeightedDPOTrainer(..., length_penalty=α)``
    applies it; the data are unchanged.
    """

    name = "length_penalty"

    def __init__(self, concepts: Iterable[str], alpha: float = 0.01):
        super().__init__(concepts, 1.0)
        if not alpha >= 0:
            raise ConfigError(f"length_penalty alpha must be ≥ 0, got {alpha}.")
        self.alpha = float(alpha)

    def params(self):
        return {"concepts": self.concepts, "alpha": self.alpha}

    def _apply(self, state):
        return {
            "data_changed": False,
            "how": f"WeightedDPOTrainer(..., length_penalty={self.alpha}): margin − α(|y⁺| − |y⁻|) in tokens",
        }
