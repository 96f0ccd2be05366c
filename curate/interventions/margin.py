"""Margin: a per-pair reward margin from the recipe's concept Δs (TRL RewardTrainer reads ``margin``)."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from .base import Intervention


def _logit(p: float, eps: float = 0.02) -> float:
    p = min(max(p, eps), 1 - eps)
    return float(np.log(p / (1 - p)))


class Margin(Intervention):
    """Per-pair ``margin`` for reward-model training: ``loss = −log σ(r_c − r_r − margin)``.

    * **block** (product of experts with a bias-only model, Clark et al. 2019): a model that knew only
      concept c would predict the preference with logit ``β_c · sign(Δc)``, ``β_c = logit(win-rate_c)``.
      Subtracting it, ``margin −= strength · β_c · sign(Δc)``, lets the reward model get that part "for
      free": pairs the concept already explains ask for a smaller gap, pairs it contradicts ask for a
      larger one, so the gradient no longer pushes the reward towards c.
    * **amplify**: ``margin += strength · sign(Δc)``: pairs where the chosen response shows more of the
      concept must win by a larger gap (in reward units, i.e. logits).

    Args:
        concepts: mapping concept id -> ``"block"`` or ``"amplify"`` (a list means all blocked).
        strength: scale of the margin (a mapping gives one per concept).

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Margin, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(300).dataset, ["flattery"]), ["flattery"])
        >>> m = Margin({"flattery": "block"}).apply(state)
        >>> bool((state.margin[state.delta("flattery") > 0] < 0).all())
        True
    """

    name = "margin"

    def __init__(self, concepts: Mapping[str, str] | Iterable[str], strength: float | Mapping[str, float] = 1.0):
        self.actions = dict(concepts) if isinstance(concepts, Mapping) else {c: "block" for c in concepts}
        bad = {c: a for c, a in self.actions.items() if a not in ("block", "amplify")}
        if bad:
            raise ConfigError(f"Margin actions must be 'block' or 'amplify', got {bad}.")
        super().__init__(list(self.actions), strength)

    def params(self):
        return {"concepts": self.actions, "strength": self.strength}

    def _apply(self, state):
        wr = state.win_rates()
        coef = {}
        for c, action in self.actions.items():
            s = float(self.strength[c] if isinstance(self.strength, Mapping) else self.strength)
            sign = np.sign(state.delta(c))
            if action == "block":
                beta = _logit(wr[c]) if np.isfinite(wr[c]) else 0.0
                k = -s * beta
            else:
                k = s
            state.margin += np.where(state.keep, k * sign, 0.0)
            coef[c] = k
        m = state.margin[state.keep]
        return {
            "coefficient": coef,
            "margin_mean": float(m.mean()) if len(m) else 0.0,
            "margin_min": float(m.min()) if len(m) else 0.0,
            "margin_max": float(m.max()) if len(m) else 0.0,
            "rows_nonzero": int((m != 0).sum()),
        }
