"""Upweight (amplify): give more weight to pairs where the chosen response shows an amplified concept."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Intervention


class Upweight(Intervention):
    """Multiply the weight of pairs where the chosen response shows the concept and the rejected does not.

    ``wᵢ ← wᵢ · (1 + strength)`` where ``score_chosen > 0`` and ``score_rejected == 0``; several amplified
    concepts multiply. Weights are then rescaled so they sum to the number of kept pairs. Applied before
    :class:`Rebalance`, which takes these weights as its prior (blocked concepts stay balanced).

    Args:
        concepts: amplified concept ids.
        strength: extra weight (1 = double), > 0.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Upweight, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(300).dataset, ["flattery"]), ["flattery"])
        >>> wr = state.win_rates()["flattery"]
        >>> u = Upweight(["flattery"]).apply(state)
        >>> state.win_rates()["flattery"] > wr
        True
    """

    name = "upweight"

    def _apply(self, state):
        if not self.strength > 0:
            raise ConfigError(f"Upweight strength must be > 0, got {self.strength}.")
        before = state.win_rates()
        up = {}
        for c in self.concepts:
            mask = state.keep & (state.side(c, "chosen") > 0) & (state.side(c, "rejected") == 0)
            state.weight[mask] *= 1 + self.strength
            up[c] = int(mask.sum())
        kept = state.keep
        total = state.weight[kept].sum()
        if total > 0:
            state.weight[kept] *= kept.sum() / total
        after = state.win_rates()
        return {
            "rows_upweighted": up,
            "win_rate_before": {c: before[c] for c in self.concepts},
            "win_rate_after": {c: after[c] for c in self.concepts},
            "ess_after": state.ess(),
        }
