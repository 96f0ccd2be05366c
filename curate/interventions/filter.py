"""Filter: drop pairs so a blocked concept no longer wins (dropped rows go to the ``dropped`` split)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .base import Intervention


class Filter(Intervention):
    """Mark pairs ``keep=False`` with ``reason="filter:<concept>"``.

    Two modes:

    * ``"balance"`` (default): drop the fewest pairs whose chosen response shows *more* of the concept
      (Δ > 0) so that the concept's win-rate over kept pairs becomes ``0.5`` (or moves ``strength`` of
      the way there): ``n_drop = round(strength · (n₊ − n₋))`` (weighted by the current weights),
      separately among pairs where only one response shows the concept and pairs where both do (so the
      count and the presence win-rates are both balanced). Which
      ones: pairs where the fewest *other* recipe concepts also favour the chosen response go first (the
      preference is most attributable to this concept), ties broken by a seeded shuffle;
    * ``"differ"``: drop every pair where the concept differs (Δ ≠ 0): nothing about it is left to learn.

    Args:
        concepts: blocked concept ids (handled one after the other).
        strength: share of the imbalance removed, in (0, 1].
        mode: ``"balance"`` or ``"differ"``.
        seed: seed of the tie-breaking shuffle.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Filter, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(300).dataset, ["flattery"]), ["flattery"])
        >>> f = Filter(["flattery"]).apply(state)
        >>> round(state.win_rates()["flattery"], 2)
        0.5
    """

    name = "filter"

    def __init__(self, concepts: Iterable[str], strength: float = 1.0, mode: str = "balance", seed: int = 0):
        super().__init__(concepts, strength)
        self.mode = mode
        self.seed = seed

    def params(self):
        return {**super().params(), "mode": self.mode, "seed": self.seed}

    def _apply(self, state):
        if self.mode not in ("balance", "differ"):
            raise ValueError(f"Filter mode {self.mode!r} is unknown. Allowed: ['balance', 'differ'].")
        rng = np.random.default_rng(self.seed)
        dropped = {}
        for c in self.concepts:
            d = state.delta(c)
            kept = state.keep
            if self.mode == "differ":
                dropped[c] = state.drop(kept & (d != 0), f"filter:{c}")
                continue
            w = state.weight
            others = [j for j, o in enumerate(state.concepts) if o != c]
            n = 0
            for group in state.groups(c):
                excess = float((w * kept * group * (d > 0)).sum() - (w * kept * group * (d < 0)).sum())
                target = self.strength * excess
                if target <= 0:
                    continue
                cand = np.flatnonzero(kept & group & (d > 0))
                n_other = (state.delta()[cand][:, others] > 0).sum(axis=1) if others else np.zeros(len(cand))
                order = cand[np.lexsort((rng.permutation(len(cand)), n_other))]
                cum = np.concatenate([[0.0], np.cumsum(w[order])])
                n_drop = int(np.argmin(np.abs(cum - target)))  # dropping a pair moves the balance by its weight
                mask = np.zeros(state.n, bool)
                mask[order[:n_drop]] = True
                n += state.drop(mask, f"filter:{c}")
            dropped[c] = n
        return {"rows_dropped": dropped, "rows_kept": int(state.keep.sum())}
