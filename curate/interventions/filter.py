"""Filter: drop pairs so a blocked concept no longer wins (dropped rows go to the ``dropped`` split)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import ConfigError
from ._balance import balance_in_passes
from .base import Intervention


class Filter(Intervention):
    """Mark pairs ``keep=False`` with ``reason="filter:<concept>"``.

    Two modes:

    * ``"balance"`` (default): drop the fewest pairs from the winning side (for a preferred concept,
      pairs whose chosen response shows *more* of it) so that the concept's win-rate over kept pairs
      becomes ``0.5`` (or moves ``strength`` of the way there): ``n_drop = round(strength · |n₊ − n₋|)``
      (weighted by the current weights), separately among pairs where only one response shows the
      concept and pairs where both do (so the count and the presence win-rates are both balanced).
      Which pairs: those where no other blocked concept differs go first (dropping them leaves the
      others' balance alone), then those where the fewest other recipe concepts point the same way (the
      preference is most attributable to this concept), ties broken by a seeded shuffle. Several
      concepts are handled in cyclic passes, like iterative proportional fitting, until none needs
      more than half a pair dropped;
    * ``"differ"``: drop every pair where the concept differs (Δ ≠ 0): nothing about it is left to learn.

    Args:
        concepts: blocked concept ids.
        strength: share of the imbalance removed, in (0, 1].
        mode: ``"balance"`` or ``"differ"``.
        seed: seed of the tie-breaking shuffle.
        max_rounds: most cyclic passes over the concepts.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Filter, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(300).dataset, ["flattery"]), ["flattery"])
        >>> f = Filter(["flattery"]).apply(state)
        >>> round(state.win_rates()["flattery"], 2)
        0.5
    """

    name = "filter"

    def __init__(
        self, concepts: Iterable[str], strength: float = 1.0, mode: str = "balance", seed: int = 0, max_rounds: int = 10
    ):
        super().__init__(concepts, strength)
        self.mode = mode
        self.seed = seed
        self.max_rounds = max_rounds

    def params(self):
        return {**super().params(), "mode": self.mode, "seed": self.seed}

    def _apply(self, state):
        if self.mode not in ("balance", "differ"):
            raise ConfigError(f"Filter mode {self.mode!r} is unknown. Allowed: ['balance', 'differ'].")
        rng = np.random.default_rng(self.seed)
        if self.mode == "differ":
            dropped = {c: state.drop(state.keep & (state.delta(c) != 0), f"filter:{c}") for c in self.concepts}
        else:
            dropped = balance_in_passes(
                state,
                self.concepts,
                self.strength,
                rng,
                self.max_rounds,
                lambda mask, c: state.drop(mask, f"filter:{c}"),
                swap=False,
            )
        return {"rows_dropped": dropped, "rows_kept": int(state.keep.sum())}
