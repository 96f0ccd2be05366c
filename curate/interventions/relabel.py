"""Relabel: swap chosen and rejected where the preference is attributable to a blocked concept."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ._balance import balance_in_passes
from .base import Intervention


class Relabel(Intervention):
    """Swap chosen and rejected in the pairs most attributable to a blocked concept (``swapped`` column).

    **Rule.** For a blocked concept c with imbalance ``E = n₊ − n₋`` (weighted; ``n₊`` pairs whose chosen
    response shows more of c), swap ``round(strength · |E| / 2)`` pairs from the winning side: each swap
    turns one c-win into one c-loss, so at ``strength=1`` the win-rate becomes 0.5. Which pairs: the
    ones whose preference is most attributable to c — first those where no other blocked concept
    differs (a swap leaves their balance alone), then those where the fewest other recipe concepts
    point the same way (c is the only visible reason the pair was decided), ties broken by a seeded
    shuffle. This is done separately among pairs where only one response shows c and pairs where both
    do (so count and presence win-rates are both balanced), for each concept in cyclic passes until no
    concept needs a swap. Relabelling assumes the swapped pairs carried no other preference; where they
    did (e.g. a correct answer that also flattered), that signal is inverted — rebalancing avoids this
    at the cost of ESS.

    Args:
        concepts: blocked concept ids.
        strength: share of the imbalance removed, in (0, 1].
        seed: seed of the tie-breaking shuffle.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Relabel, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(300).dataset, ["flattery"]), ["flattery"])
        >>> r = Relabel(["flattery"]).apply(state)
        >>> abs(state.win_rates()["flattery"] - 0.5) < 0.01, int(state.swapped.sum()) == r.stats_["swapped"]["flattery"]
        (True, True)
    """

    name = "relabel"

    def __init__(self, concepts: Iterable[str], strength: float = 1.0, seed: int = 0, max_rounds: int = 10):
        super().__init__(concepts, strength)
        self.seed = seed
        self.max_rounds = max_rounds

    def params(self):
        return {**super().params(), "seed": self.seed}

    def _apply(self, state):
        rng = np.random.default_rng(self.seed)
        before = state.win_rates()

        def swap_pairs(mask, c):
            state.swap(mask)
            return int(mask.sum())

        swapped = balance_in_passes(state, self.concepts, self.strength, rng, self.max_rounds, swap_pairs, swap=True)
        after = state.win_rates()
        return {
            "swapped": swapped,
            "rows_swapped": int(state.swapped.sum()),
            "win_rate_before": {c: before[c] for c in self.concepts},
            "win_rate_after": {c: after[c] for c in self.concepts},
        }
